"""Manifests built from the catalog, validated offline: Kubernetes kinds with kubernetes-validate,
the InferenceService with KServe's published CRD schema."""

from __future__ import annotations

import kubernetes_validate
import pytest

from deploy.catalog import AliasEntry, load_catalog
from deploy.k8s.errors import ManifestError
from deploy.k8s.isvc_validate import schema_document, validate_inference_service
from deploy.k8s.manifests import (
    DEPLOYMENT_MODE,
    GPU,
    RUN_ID_LABEL,
    inference_service,
    plan,
    raw_vllm_manifests,
    tei_manifests,
)
from deploy.serve_args import tei_args, vllm_args

K8S_VERSION = "1.33"
CATALOG = load_catalog()
TEST_SHA = "1" * 40  # for aliases whose catalog revision is still to be pinned


def pinned(alias: str) -> AliasEntry:
    entry = CATALOG.get(alias)
    if entry.kubernetes and entry.kubernetes.revision is None:
        entry = entry.model_copy(update={"kubernetes": entry.kubernetes.model_copy(
            update={"revision": TEST_SHA})})
    return entry


def _by_kind(manifests: list[dict]) -> dict[str, dict]:
    return {m["kind"]: m for m in manifests}


def _validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("alias", ["qwen-local", "coder-chat", "coder-fim", "coder-agent"])
def test_raw_vllm_serves_the_pinned_hub_revision_from_the_cache(alias: str) -> None:
    entry = pinned(alias)
    k8s = entry.kubernetes
    manifests = raw_vllm_manifests(entry, "models", run_id="run-1")
    assert [m["kind"] for m in manifests] == ["PersistentVolumeClaim", "Deployment", "Service"]
    for manifest in manifests:
        _validate(manifest)
        assert manifest["metadata"]["labels"][RUN_ID_LABEL] == "run-1"
    dep = _by_kind(manifests)["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == entry.image
    assert container["args"] == vllm_args(entry, model=k8s.hub_id, port=8000, revision=k8s.revision)
    assert container["args"][:1] == [k8s.hub_id]
    assert container["args"][container["args"].index("--revision") + 1] == k8s.revision
    env = _env(container)
    assert env["HF_HOME"]["value"] == "/models/hf"  # the Hub cache lives on the PVC
    assert "HF_HUB_OFFLINE" not in env  # nothing is cached yet on a new claim
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"model-cache": "/models", "dshm": "/dev/shm"}
    pvc = _by_kind(manifests)["PersistentVolumeClaim"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == k8s.cache_size
    res = container["resources"]
    assert res["requests"] == {"cpu": k8s.requests.cpu, "memory": k8s.requests.memory, GPU: "1"}
    assert res["limits"] == {"cpu": k8s.limits.cpu, "memory": k8s.limits.memory, GPU: "1"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= k8s.startup_budget_s
    assert pod["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # no surge pod on a single GPU
    assert "replicas" not in dep["spec"]  # the scale subresource owns it after creation
    assert dep["spec"]["progressDeadlineSeconds"] == entry.ready_timeout_s
    svc = _by_kind(manifests)["Service"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("alias", ["coder-fim", "coder-agent"])
def test_an_unpinned_revision_is_refused(alias: str) -> None:
    with pytest.raises(ManifestError, match=rf"'{alias}'.*kubernetes\.revision.*full commit sha"):
        raw_vllm_manifests(CATALOG.get(alias), "models")


def test_prestaged_weights_run_offline() -> None:
    entry = CATALOG.get("coder-fim")  # no revision needed: the weights are already there
    manifests = raw_vllm_manifests(entry, "models", {"coder-fim": "pvc:weights/coder-1.5b"})
    container = _by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "/models/weights/coder-1.5b"
    assert "--revision" not in container["args"]
    assert _env(container)["HF_HUB_OFFLINE"]["value"] == "1"
    with pytest.raises(ManifestError, match="neither 'hub' nor 'pvc:PATH'"):
        raw_vllm_manifests(entry, "models", {"coder-fim": "s3://bucket"})


def test_hf_token_comes_from_an_optional_secret() -> None:
    entry = pinned("coder-chat")
    entry = entry.model_copy(update={"kubernetes": entry.kubernetes.model_copy(
        update={"hf_token_secret": "hf-token-secret"})})
    container = _by_kind(raw_vllm_manifests(entry, "models"))["Deployment"]["spec"]["template"][
        "spec"]["containers"][0]
    assert _env(container)["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {
        "name": "hf-token-secret", "key": "token", "optional": True}}
    _validate(_by_kind(raw_vllm_manifests(entry, "models"))["Deployment"])


def test_catalog_serve_flags_reach_the_container() -> None:
    entry = pinned("coder-agent")
    args = _by_kind(raw_vllm_manifests(entry, "models"))["Deployment"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert args[args.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in args
    assert args[args.index("--served-model-name") + 1] == entry.served_model_name


def test_tei_pins_its_revision_and_keeps_a_cache_on_cpu() -> None:
    entry = CATALOG.get("embeddings")
    k8s = entry.kubernetes
    manifests = tei_manifests(entry, "models")
    assert [m["kind"] for m in manifests] == ["PersistentVolumeClaim", "Deployment", "Service"]
    for manifest in manifests:
        _validate(manifest)
    pod = _by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    container = pod["containers"][0]
    assert container["args"] == tei_args(entry, model="BAAI/bge-base-en-v1.5", port=8080,
                                         revision=k8s.revision)
    assert container["args"][:4] == ["--model-id", "BAAI/bge-base-en-v1.5", "--revision",
                                     k8s.revision]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "embeddings-model-cache"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert GPU not in str(container["resources"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_inference_service_names_its_runtime_and_adds_only_extra_args() -> None:
    entry = CATALOG.get("qwen-local")
    isvc = inference_service(entry, "models", run_id="run-1")
    validate_inference_service(isvc)
    assert isvc["metadata"]["annotations"][DEPLOYMENT_MODE] == "RawDeployment"
    assert isvc["metadata"]["labels"][RUN_ID_LABEL] == "run-1"
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == "kserve-huggingfaceserver"
    assert model["modelFormat"] == {"name": "huggingface"}
    assert model["storageUri"] == entry.kserve.storage_uri
    assert "image" not in model  # the runtime's image, which knows its own args
    # The runtime's container already sets the model location and the port: never repeated.
    joined = " ".join(model["args"])
    for flag in ("--port", "--host", "/mnt/models", "--model_dir", "--model_id", entry.model):
        assert flag not in joined
    assert model["args"] == ["--served-model-name", entry.served_model_name,
                             "--max-model-len", "8192"]
    assert model["resources"]["limits"][GPU] == "1" == model["resources"]["requests"][GPU]
    assert predictor["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]


def test_the_crd_schema_is_the_published_one() -> None:
    doc = schema_document()
    assert doc["source"].startswith("KServe v0.20.0")
    model = doc["openAPIV3Schema"]["properties"]["spec"]["properties"]["predictor"][
        "properties"]["model"]
    assert {"runtime", "modelFormat", "storageUri", "args"} <= set(model["properties"])


@pytest.mark.parametrize("break_it", [
    lambda isvc: isvc["spec"]["predictor"].__setitem__(
        "storageUri", isvc["spec"]["predictor"]["model"].pop("storageUri")),  # misplaced
    lambda isvc: isvc["spec"]["predictor"]["model"].__setitem__(
        "modelFromat", isvc["spec"]["predictor"]["model"].pop("modelFormat")),  # typo
    lambda isvc: isvc["spec"]["predictor"].__setitem__("minReplicas", "one"),  # wrong type
    lambda isvc: isvc["metadata"].__setitem__("name", "Qwen_OCI"),  # not DNS-1035
])
def test_the_crd_schema_catches_a_broken_inference_service(break_it) -> None:
    isvc = inference_service(CATALOG.get("qwen-local"), "models")
    validate_inference_service(isvc)  # control: the unbroken one passes
    break_it(isvc)
    with pytest.raises(ManifestError, match="does not match the KServe CRD schema"):
        validate_inference_service(isvc)


def test_autoscaler_class_annotation_when_keda() -> None:
    entry = CATALOG.get("qwen-local")
    entry = entry.model_copy(update={"kserve": entry.kserve.model_copy(
        update={"autoscaler_class": "keda", "deployment_mode": "Standard"})})
    annotations = inference_service(entry, "models")["metadata"]["annotations"]
    assert annotations == {DEPLOYMENT_MODE: "Standard", "serving.kserve.io/autoscalerClass": "keda"}


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
    assert (raw.kind, raw.target_kind, raw.gpu, raw.cache_pvc) == (
        "raw-vllm", "Deployment", True, "qwen-local-model-cache")
    via = plan(CATALOG.get("qwen-local"), "models", prefer_kserve=True)
    assert (via.kind, via.target_kind, via.target_name, via.runtime) == (
        "kserve", "InferenceService", "qwen-oci", "kserve-huggingfaceserver")
    tei = plan(CATALOG.get("embeddings"), "models")
    assert (tei.gpu, tei.backend_url) == (False, "http://embeddings.models.svc.cluster.local:8080/v1")


def test_the_schema_check_catches_a_wrong_field() -> None:
    dep = _by_kind(raw_vllm_manifests(pinned("coder-chat"), "models"))["Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(dep)


@pytest.mark.parametrize("alias", [e.alias for e in CATALOG.aliases if e.kubernetes])
def test_the_wait_outlasts_the_startup_budget(alias: str) -> None:
    # progressDeadlineSeconds (= ready_timeout_s) must not end a start-up the probe still allows.
    entry = CATALOG.get(alias)
    assert entry.kubernetes.startup_budget_s <= entry.ready_timeout_s


def test_runtime_class_for_gpu_pods_only() -> None:
    dep = _by_kind(raw_vllm_manifests(pinned("coder-chat"), "models", runtime_class="nvidia"))
    assert dep["Deployment"]["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    _validate(dep["Deployment"])
    isvc = inference_service(CATALOG.get("qwen-local"), "models", runtime_class="nvidia")
    validate_inference_service(isvc)
    assert isvc["spec"]["predictor"]["runtimeClassName"] == "nvidia"
    tei = plan(CATALOG.get("embeddings"), "models", runtime_class="nvidia").manifests[1]
    assert "runtimeClassName" not in tei["spec"]["template"]["spec"]
    plain = _by_kind(raw_vllm_manifests(pinned("coder-chat"), "models"))["Deployment"]
    assert "runtimeClassName" not in plain["spec"]["template"]["spec"]
