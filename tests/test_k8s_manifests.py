"""Manifests built from the catalog, validated offline against the Kubernetes schema."""

from __future__ import annotations

import kubernetes_validate
import pytest
from pydantic import ValidationError

from deploy.catalog import load_catalog
from deploy.k8s.errors import ManifestError
from deploy.k8s.isvc_schema import InferenceServiceShape
from deploy.k8s.manifests import (
    DEPLOYMENT_MODE,
    GPU,
    inference_service,
    plan,
    raw_vllm_manifests,
    tei_manifests,
)
from deploy.serve_args import tei_args, vllm_args

K8S_VERSION = "1.33"
CATALOG = load_catalog()


def _by_kind(manifests: list[dict]) -> dict[str, dict]:
    return {m["kind"]: m for m in manifests}


def _validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.mark.parametrize("alias", ["qwen-local", "coder-chat", "coder-fim", "coder-agent"])
def test_raw_vllm_manifests_are_valid_and_use_the_shared_builder(alias: str) -> None:
    entry = CATALOG.get(alias)
    manifests = raw_vllm_manifests(entry, "models")
    assert sorted(m["kind"] for m in manifests) == ["Deployment", "PersistentVolumeClaim", "Service"]
    for manifest in manifests:
        _validate(manifest)
    dep = _by_kind(manifests)["Deployment"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == entry.image
    assert container["args"] == vllm_args(entry, model=f"/models/{entry.served_model_name}", port=8000)
    assert container["resources"]["limits"] == {GPU: "1"}
    assert container["resources"]["requests"] == {GPU: "1"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    claim = dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == _by_kind(manifests)["PersistentVolumeClaim"]["metadata"]["name"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # no surge pod on a single GPU
    assert dep["spec"]["progressDeadlineSeconds"] == entry.ready_timeout_s
    svc = _by_kind(manifests)["Service"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_catalog_serve_flags_reach_the_container() -> None:
    entry = CATALOG.get("coder-agent")
    args = _by_kind(raw_vllm_manifests(entry, "models"))["Deployment"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert args[args.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in args
    assert args[args.index("--served-model-name") + 1] == entry.served_model_name


def test_tei_runs_on_cpu() -> None:
    entry = CATALOG.get("embeddings")
    manifests = tei_manifests(entry, "models")
    assert sorted(m["kind"] for m in manifests) == ["Deployment", "Service"]
    for manifest in manifests:
        _validate(manifest)
    pod = _by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    container = pod["containers"][0]
    assert GPU not in str(container.get("resources", {}))
    assert container["args"] == tei_args(entry, model="BAAI/bge-base-en-v1.5", port=8080)


def test_inference_service_shape_and_mode() -> None:
    entry = CATALOG.get("qwen-local")
    isvc = inference_service(entry, "models")
    shape = InferenceServiceShape.model_validate(isvc)
    assert shape.metadata.annotations[DEPLOYMENT_MODE] == "RawDeployment"
    assert shape.spec.predictor.model.storage_uri == entry.kserve.storage_uri
    assert shape.spec.predictor.model.resources.limits == {GPU: "1"}
    assert shape.spec.predictor.model.args == vllm_args(entry, model="/mnt/models", port=8080)
    assert shape.metadata.name == "qwen-oci"


def test_autoscaler_class_annotation_when_keda() -> None:
    entry = CATALOG.get("qwen-local")
    entry = entry.model_copy(update={"kserve": entry.kserve.model_copy(
        update={"autoscaler_class": "keda", "deployment_mode": "Standard"})})
    annotations = inference_service(entry, "models")["metadata"]["annotations"]
    assert annotations == {DEPLOYMENT_MODE: "Standard", "serving.kserve.io/autoscalerClass": "keda"}


def test_the_isvc_shape_check_catches_a_misplaced_field() -> None:
    isvc = inference_service(CATALOG.get("qwen-local"), "models")
    isvc["spec"]["predictor"]["storageUri"] = isvc["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(ValidationError):
        InferenceServiceShape.model_validate(isvc)


@pytest.mark.parametrize("uri", [
    "oci://registry.example.internal/models/qwen:latest",
    "oci://registry.example.internal/models/qwen@sha256:abc",
    "s3://bucket/qwen",
])
def test_unpinned_storage_uri_is_rejected(uri: str) -> None:
    entry = CATALOG.get("qwen-local")
    entry = entry.model_copy(update={"kserve": entry.kserve.model_copy(update={"storage_uri": uri})})
    with pytest.raises(ManifestError, match=r"'qwen-local'.*kserve\.storage_uri.*digest-pinned"):
        inference_service(entry, "models")


@pytest.mark.parametrize("image", ["vllm/vllm-openai", "vllm/vllm-openai:latest",
                                   "registry:5000/vllm-openai"])
def test_floating_image_is_rejected(image: str) -> None:
    entry = CATALOG.get("coder-chat").model_copy(update={"image": image})
    with pytest.raises(ManifestError, match=r"'coder-chat'.*'image'.*not pinned"):
        raw_vllm_manifests(entry, "models")


def test_digest_pinned_image_is_accepted() -> None:
    image = "registry:5000/vllm-openai@sha256:" + "a" * 64
    entry = CATALOG.get("coder-chat").model_copy(update={"image": image})
    assert _by_kind(raw_vllm_manifests(entry, "models"))["Deployment"]["spec"]["template"]["spec"][
        "containers"][0]["image"] == image


def test_plans_per_backend() -> None:
    assert plan(CATALOG.get("claude-haiku"), "models").manifests == []
    raw = plan(CATALOG.get("qwen-local"), "models")
    assert (raw.kind, raw.target_kind, raw.gpu) == ("raw-vllm", "Deployment", True)
    via = plan(CATALOG.get("qwen-local"), "models", prefer_kserve=True)
    assert (via.kind, via.target_kind, via.target_name) == ("kserve", "InferenceService", "qwen-oci")
    tei = plan(CATALOG.get("embeddings"), "models")
    assert (tei.gpu, tei.backend_url) == (False, "http://embeddings.models.svc.cluster.local:8080/v1")


def test_model_source_override() -> None:
    entry = CATALOG.get("coder-chat")
    dep = _by_kind(raw_vllm_manifests(entry, "models", {"coder-chat": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"}))
    assert dep["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == \
        "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"


def test_the_schema_check_catches_a_wrong_field() -> None:
    dep = _by_kind(raw_vllm_manifests(CATALOG.get("coder-chat"), "models"))["Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(dep)
