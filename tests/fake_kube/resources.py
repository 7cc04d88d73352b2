"""The REST resources the stand-in serves: URL prefix, apiVersion and kind per plural."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    plural: str
    prefix: str  # "/api/v1" or "/apis/<group>/<version>"
    api_version: str
    kind: str
    custom: bool = False  # CRDs reject strategic merge patches (415)


RESOURCES = {
    r.plural: r
    for r in (
        Resource("deployments", "/apis/apps/v1", "apps/v1", "Deployment"),
        Resource("replicasets", "/apis/apps/v1", "apps/v1", "ReplicaSet"),
        Resource("services", "/api/v1", "v1", "Service"),
        Resource("persistentvolumeclaims", "/api/v1", "v1", "PersistentVolumeClaim"),
        Resource("pods", "/api/v1", "v1", "Pod"),
        Resource("events", "/api/v1", "v1", "Event"),
        Resource("inferenceservices", "/apis/serving.kserve.io/v1beta1",
                 "serving.kserve.io/v1beta1", "InferenceService", custom=True),
    )
}
