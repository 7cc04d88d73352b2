"""Kubernetes manifests for one catalog alias, as plain dicts ready for server-side apply.

Raw vLLM: PVC (model cache) + Deployment + Service. KServe: one InferenceService.
TEI: Deployment + Service on CPU. External: nothing. Serve arguments come only from
`deploy.serve_args`, the builder the local deployer uses too.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from deploy.catalog import AliasEntry
from deploy.k8s.errors import ManifestError
from deploy.serve_args import tei_args, vllm_args

# The catalog has no field for these; module defaults until it does.
MODEL_CACHE_SIZE = "50Gi"
MODEL_CACHE_MOUNT = "/models"
HEALTH_PATH = "/health"
VLLM_PORT = 8000
TEI_PORT = 8080
KSERVE_PORT = 8080  # KServe's predictor container port; the Service maps 80 -> 8080
KSERVE_MODEL_DIR = "/mnt/models"  # where KServe mounts a modelcar's /models
SHM_SIZE = "2Gi"
GPU = "nvidia.com/gpu"
MANAGED_BY = "modelgate"

ISVC_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"

_PINNED_OCI = re.compile(r"^oci://[^\s@]+@sha256:[0-9a-f]{64}$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

Kind = Literal["raw-vllm", "kserve", "tei", "external"]


class Plan(BaseModel):
    """What deploying one alias means: its manifests and the object whose readiness counts."""

    alias: str
    kind: Kind
    namespace: str
    manifests: list[dict[str, Any]]
    # The object waited on: a Deployment or an InferenceService name (None for external).
    target_kind: Literal["Deployment", "InferenceService"] | None
    target_name: str | None
    gpu: bool
    pod_selector: dict[str, str]
    backend_url: str | None  # for InferenceServices it comes from status.url once ready


def labels(alias: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": alias, "app.kubernetes.io/managed-by": MANAGED_BY}


def _selector(alias: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": alias}


def require_pinned_image(entry: AliasEntry) -> str:
    """The image, refusing floating references: a tag other than `latest`, or a digest."""
    image = entry.image or ""
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last and "@" not in last else None
    if not (_DIGEST.search(image) or (tag and tag != "latest")):
        raise ManifestError(
            f"catalog alias {entry.alias!r}: field 'image' {image!r} is not pinned "
            "(give a version tag other than 'latest' or an @sha256 digest)"
        )
    return image


def model_reference(entry: AliasEntry, sources: dict[str, str] | None = None) -> str:
    """What vLLM/TEI load. The catalog names models for humans ("..., AWQ 4-bit"), so a hub id
    is used only when `model` looks like one; otherwise the weights are expected, staged, on the
    model-cache volume under the served name. `sources` overrides per alias."""
    if sources and entry.alias in sources:
        return sources[entry.alias]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", entry.model):
        return entry.model
    return f"{MODEL_CACHE_MOUNT}/{entry.served_model_name}"


def _gpu_resources(count: int) -> dict[str, Any]:
    if count <= 0:
        return {}
    # Extended resources need requests == limits.
    return {"requests": {GPU: str(count)}, "limits": {GPU: str(count)}}


def _meta(name: str, namespace: str, alias: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(alias)}


def _deployment(
    entry: AliasEntry, namespace: str, container: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if entry.gpu_count > 0:
        pod_spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(entry.alias, namespace, entry.alias),
        "spec": {
            "replicas": 1,
            # A rolling update would need a second GPU for the surge pod; there is one.
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": entry.ready_timeout_s,
            "selector": {"matchLabels": _selector(entry.alias)},
            "template": {"metadata": {"labels": labels(entry.alias)}, "spec": pod_spec},
        },
    }


def _service(entry: AliasEntry, namespace: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(entry.alias, namespace, entry.alias),
        "spec": {
            "selector": _selector(entry.alias),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _probe(port_name: str = "http") -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": port_name},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def raw_vllm_manifests(
    entry: AliasEntry, namespace: str, sources: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    pvc_name = f"{entry.alias}-model-cache"
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(pvc_name, namespace, entry.alias),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": MODEL_CACHE_SIZE}},
        },
    }
    container = {
        "name": "vllm",
        "image": require_pinned_image(entry),
        "args": vllm_args(entry, model=model_reference(entry, sources), port=VLLM_PORT),
        "env": [{"name": "HF_HOME", "value": f"{MODEL_CACHE_MOUNT}/hf"}],
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe(),
        "resources": _gpu_resources(entry.gpu_count),
        "volumeMounts": [
            {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},  # vLLM's workers share tensors via shm
        ],
    }
    volumes = [
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc_name}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]
    return [pvc, _deployment(entry, namespace, container, volumes), _service(entry, namespace, VLLM_PORT)]


def tei_manifests(
    entry: AliasEntry, namespace: str, sources: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    container = {
        "name": "tei",
        "image": require_pinned_image(entry),
        "args": tei_args(entry, model=model_reference(entry, sources), port=TEI_PORT),
        "ports": [{"name": "http", "containerPort": TEI_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe(),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],  # TEI's hub cache
    }
    volumes = [{"name": "data", "emptyDir": {}}]
    return [_deployment(entry, namespace, container, volumes), _service(entry, namespace, TEI_PORT)]


def inference_service(entry: AliasEntry, namespace: str) -> dict[str, Any]:
    spec = entry.kserve
    if spec is None:
        raise ManifestError(f"catalog alias {entry.alias!r}: backend kserve needs a 'kserve' block")
    if not _PINNED_OCI.match(spec.storage_uri):
        raise ManifestError(
            f"catalog alias {entry.alias!r}: field 'kserve.storage_uri' {spec.storage_uri!r} is not "
            "a digest-pinned modelcar (expected oci://registry/repo@sha256:<64 hex>)"
        )
    annotations = {DEPLOYMENT_MODE: spec.deployment_mode}
    if spec.autoscaler_class:
        annotations[AUTOSCALER_CLASS] = spec.autoscaler_class
    model: dict[str, Any] = {
        "modelFormat": {"name": "vLLM"},
        "storageUri": spec.storage_uri,
        # The same pinned engine as the raw path, so raw and KServe are engine-identical.
        "image": require_pinned_image(entry),
        "args": vllm_args(entry, model=KSERVE_MODEL_DIR, port=KSERVE_PORT),
    }
    resources = _gpu_resources(entry.gpu_count)
    if resources:
        model["resources"] = resources
    return {
        "apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}",
        "kind": "InferenceService",
        "metadata": {**_meta(spec.name, namespace, entry.alias), "annotations": annotations},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "model": model}},
    }


def kind_of(entry: AliasEntry, prefer_kserve: bool = False) -> Kind:
    if entry.backend == "raw-vllm" and prefer_kserve and entry.kserve is not None:
        return "kserve"
    return entry.backend


def plan(
    entry: AliasEntry,
    namespace: str,
    *,
    prefer_kserve: bool = False,
    sources: dict[str, str] | None = None,
) -> Plan:
    kind = kind_of(entry, prefer_kserve)
    common = {"alias": entry.alias, "kind": kind, "namespace": namespace, "gpu": entry.gpu_count > 0}
    if kind == "external":
        return Plan(**common, manifests=[], target_kind=None, target_name=None,
                    pod_selector={}, backend_url=None)
    if kind == "kserve":
        isvc = inference_service(entry, namespace)
        name = isvc["metadata"]["name"]
        return Plan(**common, manifests=[isvc], target_kind="InferenceService", target_name=name,
                    pod_selector={"serving.kserve.io/inferenceservice": name}, backend_url=None)
    if kind == "raw-vllm":
        manifests, port = raw_vllm_manifests(entry, namespace, sources), VLLM_PORT
    else:
        manifests, port = tei_manifests(entry, namespace, sources), TEI_PORT
    return Plan(
        **common, manifests=manifests, target_kind="Deployment", target_name=entry.alias,
        pod_selector=_selector(entry.alias),
        backend_url=f"http://{entry.alias}.{namespace}.svc.cluster.local:{port}/v1",
    )
