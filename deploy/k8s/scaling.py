"""Things whose replica count the suite changes: a Deployment (via its /scale subresource) or an
InferenceService's minReplicas (Knative/Serverless mode or the KEDA autoscaler only)."""

from __future__ import annotations

from typing import Protocol

from kubernetes import client

from deploy.k8s.apply import MERGE_PATCH, Cluster
from deploy.k8s.manifests import ISVC_GROUP, ISVC_PLURAL, ISVC_VERSION


class ScaleTarget(Protocol):
    key: str  # e.g. "Deployment/ns/name"; unique per thing scaled

    def replicas(self) -> int | None:
        """Current desired replicas; None when the object does not exist."""
        ...

    def scale(self, replicas: int) -> None: ...

    def settled(self) -> bool:
        """No pods left running beyond what is desired (used after a scale-down)."""
        ...


class DeploymentScale:
    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.key = f"Deployment/{namespace}/{name}"

    def replicas(self) -> int | None:
        try:
            scale = self.cluster.apps.read_namespaced_deployment_scale(
                self.name, self.namespace, _request_timeout=self.cluster.timeout)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return (scale.spec.replicas if scale.spec else 0) or 0

    def scale(self, replicas: int) -> None:
        self.cluster.apps.patch_namespaced_deployment_scale(
            self.name, self.namespace, {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH, _request_timeout=self.cluster.timeout,
        )

    def settled(self) -> bool:
        obj = self.cluster.deployment(self.namespace, self.name)
        if obj is None:
            return True
        wanted = obj["spec"].get("replicas", 1)
        return (obj.get("status") or {}).get("replicas", 0) <= wanted


class InferenceServiceMinReplicas:
    """Scale-to-zero an InferenceService the way KServe allows it: minReplicas 0."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.key = f"InferenceService/{namespace}/{name}"

    def replicas(self) -> int | None:
        obj = self.cluster.inference_service(self.namespace, self.name)
        if obj is None:
            return None
        return obj["spec"]["predictor"].get("minReplicas", 1)

    def scale(self, replicas: int) -> None:
        self.cluster.custom.patch_namespaced_custom_object(
            ISVC_GROUP, ISVC_VERSION, self.namespace, ISVC_PLURAL, self.name,
            {"spec": {"predictor": {"minReplicas": replicas}}},
            _content_type=MERGE_PATCH, _request_timeout=self.cluster.timeout,
        )

    def settled(self) -> bool:
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"serving.kserve.io/inferenceservice={self.name}",
            _request_timeout=self.cluster.timeout,
        ).items
        return not pods or (self.replicas() or 0) > 0
