"""Server-side apply, reads and deletes through the kubernetes client, as plain JSON dicts."""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes import client

from deploy.k8s.manifests import ISVC_GROUP, ISVC_PLURAL, ISVC_VERSION

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

_MANAGER = re.compile(r'conflict with "([^"]+)"')


class Conflict(Exception):
    """A 409 from server-side apply: who owns what (from the Status `details.causes`)."""

    def __init__(self, managers: list[str], fields: list[str], message: str) -> None:
        super().__init__(message)
        self.managers, self.fields, self.message = managers, fields, message


def conflict_of(exc: client.ApiException) -> Conflict:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    causes = (body.get("details") or {}).get("causes") or []
    managers: list[str] = []
    fields: list[str] = []
    for cause in causes:
        for name in _MANAGER.findall(cause.get("message") or ""):
            if name not in managers:
                managers.append(name)
        if cause.get("field"):
            fields.append(cause["field"])
    message = body.get("message") or str(exc.reason)
    if not managers:
        managers = list(dict.fromkeys(_MANAGER.findall(message)))
    return Conflict(managers, fields, message)


class Cluster:
    """Typed API groups over one ApiClient; every answer is returned as plain JSON dicts."""

    def __init__(self, api: client.ApiClient, field_manager: str, timeout: float) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.field_manager = field_manager
        self.timeout = timeout

    def json(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    def apply(self, manifest: dict[str, Any], *, force: bool = False,
              dry_run: bool = False) -> dict[str, Any] | None:
        """Server-side apply as our field manager. Never forced unless asked: another
        manager's fields raise Conflict. `dry_run` sends dryRun=All (validated, not stored).
        Returns the object (None for a custom object the apply created: the client does not
        decode its 201)."""
        kind, meta = manifest["kind"], manifest["metadata"]
        name, ns = meta["name"], meta["namespace"]
        opts: dict[str, Any] = {"field_manager": self.field_manager, "_content_type": APPLY_PATCH,
                                "_request_timeout": self.timeout}
        if force:
            opts["force"] = True
        if dry_run:
            opts["dry_run"] = "All"
        try:
            if kind == "Deployment":
                return self.json(self.apps.patch_namespaced_deployment(name, ns, manifest, **opts))
            if kind == "Service":
                return self.json(self.core.patch_namespaced_service(name, ns, manifest, **opts))
            if kind == "PersistentVolumeClaim":
                return self.json(
                    self.core.patch_namespaced_persistent_volume_claim(name, ns, manifest, **opts))
            if kind == "InferenceService":
                return self.custom.patch_namespaced_custom_object(
                    ISVC_GROUP, ISVC_VERSION, ns, ISVC_PLURAL, name, manifest, **opts)
        except client.ApiException as exc:
            if exc.status == 409:
                raise conflict_of(exc) from None
            raise
        raise ValueError(f"cannot apply kind {kind!r} ({name})")

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        readers = {
            "Deployment": self.apps.read_namespaced_deployment,
            "Service": self.core.read_namespaced_service,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
        }
        try:
            if kind == "InferenceService":
                self.custom.get_namespaced_custom_object(
                    ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name,
                    _request_timeout=self.timeout)
            else:
                readers[kind](name, namespace, _request_timeout=self.timeout)
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete (foreground, so pods go with their Deployment); a missing object is fine."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        opts = {"_request_timeout": self.timeout}
        try:
            if kind == "Deployment":
                self.apps.delete_namespaced_deployment(name, namespace, body=body, **opts)
            elif kind == "Service":
                self.core.delete_namespaced_service(name, namespace, **opts)
            elif kind == "PersistentVolumeClaim":
                self.core.delete_namespaced_persistent_volume_claim(name, namespace, **opts)
            elif kind == "InferenceService":
                self.custom.delete_namespaced_custom_object(
                    ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name, **opts)
            else:
                raise ValueError(f"cannot delete kind {kind!r}")
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.json(self.apps.read_namespaced_deployment(
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
