"""Kubernetes manifests for one catalog alias, as plain dicts ready for server-side apply.

Raw vLLM: cache PVC + Deployment + Service (vLLM "Using Kubernetes", production-stack chart).
KServe: one InferenceService on an explicit runtime. TEI: cache PVC + Deployment + Service on
CPU. External: nothing. Serve arguments come only from `deploy.serve_args`, the builder the
local deployer uses too; weights, resources and probes from the alias's `kubernetes:` block.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel

from deploy.catalog import AliasEntry
from deploy.catalog_k8s import KubernetesFields
from deploy.k8s.errors import ManifestError
from deploy.serve_args import runtime_extra_args, tei_args, vllm_args

CACHE_MOUNT = "/models"  # vLLM: the cache PVC; HF_HOME lives on it
TEI_CACHE_MOUNT = "/data"  # TEI's image keeps its Hub cache in /data
HEALTH_PATH = "/health"
VLLM_PORT = 8000
TEI_PORT = 8080
SHM_SIZE = "2Gi"
GPU = "nvidia.com/gpu"
MANAGED_BY = "modelgate"
RUN_ID_LABEL = "modelgate.dev/run-id"
TOKEN_KEY = "token"  # the key of the HF token Secret, as in vLLM's Kubernetes guide

ISVC_GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
HF_OPENAI_PREFIX = "/openai/v1"  # kserve-huggingfaceserver's OpenAI routes

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
    gpu_count: int = 0
    pod_selector: dict[str, str]
    backend_url: str | None  # for InferenceServices it comes from status.url once ready
    cache_pvc: str | None = None  # kept at the end unless the user asks to delete it
    runtime: str | None = None  # KServe: the ServingRuntime named
    model_format: str | None = None
    storage_uri: str | None = None


def labels(alias: str, run_id: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": alias, "app.kubernetes.io/managed-by": MANAGED_BY}
    if run_id:
        out[RUN_ID_LABEL] = run_id
    return out


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


def parse_source(alias: str, value: str) -> dict[str, str]:
    """`--model-source ALIAS=hub` or `ALIAS=pvc:PATH` as an update of the kubernetes block."""
    if value == "hub":
        return {"source": "hub"}
    if value.startswith("pvc:") and value[4:].strip("/"):
        return {"source": "pvc", "pvc_path": value[4:].strip("/")}
    raise ManifestError(f"model source for {alias!r}: {value!r} is neither 'hub' nor 'pvc:PATH'")


def k8s_fields(entry: AliasEntry, sources: dict[str, str] | None = None) -> KubernetesFields:
    """The alias's `kubernetes:` block, with a `--model-source` override applied."""
    fields = entry.kubernetes
    if fields is None:
        raise ManifestError(f"catalog alias {entry.alias!r}: backend {entry.backend!r} needs a "
                            "'kubernetes' block (hub_id, revision, requests, limits)")
    if sources and entry.alias in sources:
        update = parse_source(entry.alias, sources[entry.alias])
        fields = KubernetesFields.model_validate({**fields.model_dump(), **update})
    if fields.source == "hub" and fields.revision is None:
        raise ManifestError(
            f"catalog alias {entry.alias!r}: field 'kubernetes.revision' is not set: the Hub "
            f"weights of {fields.hub_id} must be pinned to a full commit sha (or pass "
            f"--model-source {entry.alias}=pvc:PATH for weights staged on the cache PVC)")
    return fields


def _resources(fields: KubernetesFields, gpus: int) -> dict[str, Any]:
    def block(cm: Any) -> dict[str, str]:
        out = {"cpu": cm.cpu} if cm.cpu else {}
        out["memory"] = cm.memory
        if gpus > 0:
            out[GPU] = str(gpus)  # extended resources need requests == limits
        return out
    return {"requests": block(fields.requests), "limits": block(fields.limits)}


def _meta(name: str, namespace: str, alias: str, run_id: str | None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(alias, run_id)}


def _gpu_tolerations(entry: AliasEntry) -> list[dict[str, str]]:
    # The taint the NVIDIA GPU operator and the managed GPU node pools put on GPU nodes.
    return [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}] if entry.gpu_count else []


def _probes(fields: KubernetesFields) -> dict[str, Any]:
    """production-stack's shape: a long startup probe, then liveness and readiness on /health."""
    def probe(period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": period,
                "timeoutSeconds": 5, "failureThreshold": failures}
    return {
        "startupProbe": probe(10, math.ceil(fields.startup_budget_s / 10)),
        "livenessProbe": probe(10, 3),
        "readinessProbe": probe(5, 3),
    }


def _hf_env(fields: KubernetesFields, hf_home: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if hf_home:
        env.append({"name": "HF_HOME", "value": hf_home})
    if fields.hf_token_secret:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": fields.hf_token_secret, "key": TOKEN_KEY, "optional": True}}})
    if fields.source == "pvc":
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})  # staged: never reach the Hub
    return env


def _cache_pvc(entry: AliasEntry, fields: KubernetesFields, namespace: str,
               run_id: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(f"{entry.alias}-model-cache", namespace, entry.alias, run_id),
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": fields.cache_size}}},
    }


def _deployment(entry: AliasEntry, namespace: str, container: dict[str, Any],
                volumes: list[dict[str, Any]], run_id: str | None,
                runtime_class: str | None = None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if entry.gpu_count > 0:
        pod_spec["tolerations"] = _gpu_tolerations(entry)
        if runtime_class:  # clusters whose GPU containers run under the NVIDIA runtime class
            pod_spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(entry.alias, namespace, entry.alias, run_id),
        "spec": {
            # No `replicas`: it defaults to 1 on create, and later the scale subresource owns
            # it (an applied value would conflict with the suite's own scale-downs).
            # A rolling update would need a second GPU for the surge pod; there is one.
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": entry.ready_timeout_s,
            "selector": {"matchLabels": _selector(entry.alias)},
            "template": {"metadata": {"labels": labels(entry.alias)}, "spec": pod_spec},
        },
    }


def _service(entry: AliasEntry, namespace: str, port: int, run_id: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(entry.alias, namespace, entry.alias, run_id),
        "spec": {
            "selector": _selector(entry.alias),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def raw_vllm_manifests(entry: AliasEntry, namespace: str, sources: dict[str, str] | None = None,
                       run_id: str | None = None, runtime_class: str | None = None
                       ) -> list[dict[str, Any]]:
    fields = k8s_fields(entry, sources)
    pvc = _cache_pvc(entry, fields, namespace, run_id)
    if fields.source == "pvc":
        model, revision = f"{CACHE_MOUNT}/{fields.pvc_path}", None
    else:
        model, revision = fields.hub_id or "", fields.revision
    container = {
        "name": "vllm",
        "image": require_pinned_image(entry),
        "args": vllm_args(entry, model=model, port=VLLM_PORT, revision=revision),
        "env": _hf_env(fields, f"{CACHE_MOUNT}/hf"),
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        **_probes(fields),
        "resources": _resources(fields, entry.gpu_count),
        "volumeMounts": [
            {"name": "model-cache", "mountPath": CACHE_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},  # vLLM's workers share tensors via shm
        ],
    }
    volumes = [
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]
    return [pvc, _deployment(entry, namespace, container, volumes, run_id, runtime_class),
            _service(entry, namespace, VLLM_PORT, run_id)]


def tei_manifests(entry: AliasEntry, namespace: str, sources: dict[str, str] | None = None,
                  run_id: str | None = None) -> list[dict[str, Any]]:
    fields = k8s_fields(entry, sources)
    pvc = _cache_pvc(entry, fields, namespace, run_id)
    if fields.source == "pvc":
        model, revision = f"{TEI_CACHE_MOUNT}/{fields.pvc_path}", None
    else:
        model, revision = fields.hub_id or "", fields.revision
    container = {
        "name": "tei",
        "image": require_pinned_image(entry),
        "args": tei_args(entry, model=model, port=TEI_PORT, revision=revision),
        "env": _hf_env(fields, None),  # the image sets HUGGINGFACE_HUB_CACHE=/data
        "ports": [{"name": "http", "containerPort": TEI_PORT, "protocol": "TCP"}],
        **_probes(fields),
        "resources": _resources(fields, 0),
        "volumeMounts": [{"name": "data", "mountPath": TEI_CACHE_MOUNT}],
    }
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}}]
    if not container["env"]:
        del container["env"]
    return [pvc, _deployment(entry, namespace, container, volumes, run_id),
            _service(entry, namespace, TEI_PORT, run_id)]


def inference_service(entry: AliasEntry, namespace: str, run_id: str | None = None,
                      runtime_class: str | None = None) -> dict[str, Any]:
    """An InferenceService on the named runtime: only extra args, weights from the modelcar."""
    spec = entry.kserve
    if spec is None:
        raise ManifestError(f"catalog alias {entry.alias!r}: backend kserve needs a 'kserve' block")
    if not _PINNED_OCI.match(spec.storage_uri):
        raise ManifestError(
            f"catalog alias {entry.alias!r}: field 'kserve.storage_uri' {spec.storage_uri!r} is not "
            "a digest-pinned modelcar (expected oci://registry/repo@sha256:<64 hex>)"
        )
    fields = entry.kubernetes
    if fields is None:
        raise ManifestError(f"catalog alias {entry.alias!r}: KServe needs a 'kubernetes' block "
                            "(runtime, requests, limits)")
    annotations = {DEPLOYMENT_MODE: spec.deployment_mode}
    if spec.autoscaler_class:
        annotations[AUTOSCALER_CLASS] = spec.autoscaler_class
    model: dict[str, Any] = {
        "modelFormat": {"name": fields.kserve_model_format},
        "runtime": fields.kserve_runtime,
        "storageUri": spec.storage_uri,
        "args": runtime_extra_args(entry),
        # The modelcar holds the weights: the runtime must not reach for the Hub.
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
        "resources": _resources(fields, entry.gpu_count),
    }
    predictor: dict[str, Any] = {"minReplicas": 1, "maxReplicas": 1, "model": model}
    if entry.gpu_count:
        predictor["tolerations"] = _gpu_tolerations(entry)
        if runtime_class:
            predictor["runtimeClassName"] = runtime_class
    return {
        "apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}",
        "kind": "InferenceService",
        "metadata": {**_meta(spec.name, namespace, entry.alias, run_id),
                     "annotations": annotations},
        "spec": {"predictor": predictor},
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
    run_id: str | None = None,
    runtime_class: str | None = None,
) -> Plan:
    kind = kind_of(entry, prefer_kserve)
    common = {"alias": entry.alias, "kind": kind, "namespace": namespace,
              "gpu": entry.gpu_count > 0, "gpu_count": entry.gpu_count}
    if kind == "external":
        return Plan(**common, manifests=[], target_kind=None, target_name=None,
                    pod_selector={}, backend_url=None)
    if kind == "kserve":
        from deploy.k8s.isvc_validate import validate_inference_service

        isvc = inference_service(entry, namespace, run_id, runtime_class)
        validate_inference_service(isvc)
        name = isvc["metadata"]["name"]
        model = isvc["spec"]["predictor"]["model"]
        return Plan(**common, manifests=[isvc], target_kind="InferenceService", target_name=name,
                    pod_selector={"serving.kserve.io/inferenceservice": name}, backend_url=None,
                    runtime=model["runtime"], model_format=model["modelFormat"]["name"],
                    storage_uri=model["storageUri"])
    if kind == "raw-vllm":
        manifests = raw_vllm_manifests(entry, namespace, sources, run_id, runtime_class)
        port = VLLM_PORT
    else:
        manifests, port = tei_manifests(entry, namespace, sources, run_id), TEI_PORT
    return Plan(
        **common, manifests=manifests, target_kind="Deployment", target_name=entry.alias,
        pod_selector=_selector(entry.alias), cache_pvc=manifests[0]["metadata"]["name"],
        backend_url=f"http://{entry.alias}.{namespace}.svc.cluster.local:{port}/v1",
    )
