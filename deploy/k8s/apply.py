"""Server-side apply and reads, through the kubernetes client, for the kinds this suite emits."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from deploy.k8s.manifests import ISVC_GROUP, ISVC_PLURAL, ISVC_VERSION

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class Cluster:
    """Typed API groups over one ApiClient; every answer is returned as plain JSON dicts."""

    def __init__(self, api: client.ApiClient, field_manager: str, timeout: float) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.field_manager = field_manager
        self.timeout = timeout

    def _json(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (idempotent): field manager ours, conflicts forced."""
        kind, meta = manifest["kind"], manifest["metadata"]
        name, ns = meta["name"], meta["namespace"]
        opts = {"field_manager": self.field_manager, "force": True, "_content_type": APPLY_PATCH,
                "_request_timeout": self.timeout}
        if kind == "Deployment":
            return self._json(self.apps.patch_namespaced_deployment(name, ns, manifest, **opts))
        if kind == "Service":
            return self._json(self.core.patch_namespaced_service(name, ns, manifest, **opts))
        if kind == "PersistentVolumeClaim":
            return self._json(
                self.core.patch_namespaced_persistent_volume_claim(name, ns, manifest, **opts)
            )
        if kind == "InferenceService":
            return self.custom.patch_namespaced_custom_object(
                ISVC_GROUP, ISVC_VERSION, ns, ISVC_PLURAL, name, manifest, **opts
            )
        raise ValueError(f"cannot apply kind {kind!r} ({name})")

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self.timeout))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def inference_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(
                ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name,
                _request_timeout=self.timeout,
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "InferenceService":
            return self.inference_service(namespace, name)
        return self.deployment(namespace, name)
