"""KubernetesDeployer against the Kubernetes API stand-in (tests/fake_kube), through the real
kubernetes client: apply, readiness, failure reasons, one GPU at a time, restore on interrupt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from deploy.catalog import AliasEntry, load_catalog
from deploy.k8s import ClusterUnavailable, DeployError, KubernetesDeployer, KubeSettings
from deploy.k8s.apply import Cluster
from deploy.k8s.manifests import raw_vllm_manifests
from fixtures.platform.loopback import ThreadedServer, free_port
from tests.fake_kube import UNSCHEDULABLE, FakeKube

NS = "models"
CATALOG = load_catalog()
CRASH_LOGS = [f"INFO engine step {i}" for i in range(30)] + [
    "ValueError: The model's max seq len (16384) is larger than the maximum number of tokens "
    "that can be stored in KV cache",
]


class Cube:
    """The stand-in and its URL."""

    def __init__(self, kube: FakeKube, url: str) -> None:
        self.kube, self.url = kube, url


@pytest.fixture
def cube(request: pytest.FixtureRequest) -> Iterator[Cube]:
    kube = FakeKube(**getattr(request, "param", {}))
    server = ThreadedServer(kube.app).start()
    try:
        yield Cube(kube, server.url)
    finally:
        server.stop()


def api_for(url: str) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=url))


def deployer(url: str, *, prefer_kserve: bool = False, sleep=None) -> KubernetesDeployer:
    settings = KubeSettings(namespace=NS, poll_interval_s=0.01, scale_down_timeout_s=2,
                            request_timeout_s=5, prefer_kserve=prefer_kserve)
    extra = {"sleep": sleep} if sleep else {}
    return KubernetesDeployer(settings, api_client=api_for(url), **extra)


def entry(alias: str, timeout: int = 5) -> AliasEntry:
    """A catalog entry, its Hub revision pinned where the catalog has none yet."""
    base = CATALOG.get(alias)
    update: dict = {"ready_timeout_s": timeout}
    if base.kubernetes and base.kubernetes.revision is None:
        update["kubernetes"] = base.kubernetes.model_copy(update={"revision": "1" * 40})
    return base.model_copy(update=update)


def test_deploy_waits_until_rolled_out(cube: Cube) -> None:
    cube.kube.script("coder-chat", "ready", after_reads=4)
    dep = deployer(cube.url)
    result = dep.deploy(entry("coder-chat"))
    assert result.kind == "kubernetes"
    assert result.backend_url == "http://coder-chat.models.svc.cluster.local:8000/v1"
    assert result.target == "Deployment/models/coder-chat"
    assert result.served_model_name == "qwen2.5-coder-7b-instruct-awq"
    assert cube.kube.reads_of("deployments", "coder-chat") >= 4  # it polled, not returned at once
    stored = cube.kube.get("deployments", NS, "coder-chat")
    assert stored["status"]["availableReplicas"] == 1
    assert {c.path.rsplit("/", 2)[-2] for c in cube.kube.calls if c.method == "PATCH"} == {
        "persistentvolumeclaims", "deployments", "services"}
    dep.close()
    # It did not exist before the suite: deleted, all but the model cache.
    assert cube.kube.get("deployments", NS, "coder-chat") is None
    assert cube.kube.deleted == ["Service/models/coder-chat", "Deployment/models/coder-chat"]
    assert cube.kube.get("persistentvolumeclaims", NS, "coder-chat-model-cache") is not None


def test_server_side_apply_twice_changes_nothing(cube: Cube) -> None:
    cluster = Cluster(api_for(cube.url), "modelgate", 5)
    manifests = raw_vllm_manifests(entry("coder-fim"), NS)
    first = [cluster.apply(m) for m in manifests]
    stored = {m["kind"]: cube.kube.get(p, NS, m["metadata"]["name"]) for m, p in
              zip(manifests, ["persistentvolumeclaims", "deployments", "services"], strict=True)}
    second = [cluster.apply(m) for m in manifests]
    assert second == first  # same generation, resourceVersion, managedFields, everything
    assert first[1]["metadata"]["generation"] == 1
    for m, p in zip(manifests, ["persistentvolumeclaims", "deployments", "services"], strict=True):
        assert cube.kube.get(p, NS, m["metadata"]["name"]) == stored[m["kind"]]
    applies = [c for c in cube.kube.calls if c.method == "PATCH"]
    assert len(applies) == 6
    for call in applies:
        assert call.content_type == "application/apply-patch+yaml"
        assert call.query == {"fieldManager": "modelgate"}  # never forced by default
    # Control: a changed spec is a new generation.
    manifests[1]["spec"]["template"]["spec"]["containers"][0]["args"].append("--max-num-seqs=8")
    assert cluster.apply(manifests[1])["metadata"]["generation"] == 2


def test_redeploy_does_not_bump_generation(cube: Cube) -> None:
    dep = deployer(cube.url)
    dep.deploy(entry("embeddings"))
    before = cube.kube.get("deployments", NS, "embeddings")["metadata"]["generation"]
    dep.deploy(entry("embeddings"))
    assert cube.kube.get("deployments", NS, "embeddings")["metadata"]["generation"] == before


@pytest.mark.parametrize(
    ("scenario", "timeout", "reason", "needles"),
    [
        ("unschedulable", 1, "Unschedulable", [UNSCHEDULABLE]),
        ("image_pull", 5, "ImagePullBackOff",
         ['Failed to pull image "vllm/vllm-openai:v0.23.0"', "not found"]),
        ("crash_loop", 5, "CrashLoopBackOff",
         ["last exit code 1", "restarted 3 times", "larger than the maximum number of tokens",
          "INFO engine step 29"]),
        ("progress_deadline", 5, "ProgressDeadlineExceeded", ["has timed out progressing"]),
    ],
)
def test_each_failure_names_its_reason(
    cube: Cube, scenario: str, timeout: int, reason: str, needles: list[str]
) -> None:
    cube.kube.script("coder-chat", scenario, after_reads=2, logs=CRASH_LOGS)
    dep = deployer(cube.url)
    with pytest.raises(DeployError) as info:
        dep.deploy(entry("coder-chat", timeout))
    err = info.value
    assert err.reason == reason, str(err)
    assert err.alias == "coder-chat" and "Deployment/models/coder-chat" in str(err)
    for needle in needles:
        assert needle in str(err)
    if scenario == "crash_loop":
        assert "INFO engine step 9\n" not in str(err)  # only the last lines
    # A failed alias gives the GPU back at once.
    assert cube.kube.replicas_of("coder-chat") == 0


def test_unschedulable_is_waited_out_not_fatal(cube: Cube) -> None:
    # Pods pending for a GPU that a scale-down is freeing: not a failure before the timeout.
    cube.kube.script("coder-chat", "unschedulable", after_reads=0)
    with pytest.raises(DeployError) as info:
        deployer(cube.url).deploy(entry("coder-chat", 1))
    assert "gave up after 1s" in str(info.value)
    assert cube.kube.reads_of("deployments", "coder-chat") > 5


def test_kserve_ready_flips(cube: Cube) -> None:
    cube.kube.script("qwen-oci", "ready", after_reads=3)
    dep = deployer(cube.url, prefer_kserve=True)
    result = dep.deploy(entry("qwen-local"))
    assert result.target == "InferenceService/models/qwen-oci"
    # kserve-huggingfaceserver serves the OpenAI routes under /openai/v1.
    assert result.backend_url == "http://qwen-oci-predictor.models.svc.cluster.local/openai/v1"
    assert result.revision == "kserve-huggingfaceserver sha256:" + "0" * 64
    assert cube.kube.reads_of("inferenceservices", "qwen-oci") >= 3
    isvc = cube.kube.get("inferenceservices", NS, "qwen-oci")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    # Standard/RawDeployment mode: minReplicas 0 would become 1, so the predictor is scaled.
    dep.release("qwen-local")
    assert cube.kube.replicas_of("qwen-oci-predictor") == 0
    assert cube.kube.get("inferenceservices", NS, "qwen-oci")["spec"]["predictor"]["minReplicas"] == 1
    dep.close()  # created by the suite: deleted, with the predictor KServe made for it
    assert cube.kube.get("inferenceservices", NS, "qwen-oci") is None
    assert cube.kube.get("deployments", NS, "qwen-oci-predictor") is None


def test_kserve_serverless_scales_with_min_replicas(cube: Cube) -> None:
    base = entry("qwen-local")
    serverless = base.model_copy(update={"kserve": base.kserve.model_copy(
        update={"deployment_mode": "Serverless"})})
    dep = deployer(cube.url, prefer_kserve=True)
    dep.deploy(serverless)
    dep.deploy(entry("coder-chat"))
    isvc = cube.kube.get("inferenceservices", NS, "qwen-oci")
    assert isvc["spec"]["predictor"]["minReplicas"] == 0
    assert cube.kube.get("deployments", NS, "qwen-oci-predictor") is None
    assert cube.kube.max_gpu_up_at_once() == 1
    dep.close()


def test_three_gpu_aliases_never_overlap(cube: Cube) -> None:
    for alias in ("coder-chat", "coder-fim", "coder-agent"):
        cube.kube.script(alias, "ready", after_reads=2)
    dep = deployer(cube.url)
    try:
        for alias in ("coder-chat", "embeddings", "coder-fim", "coder-agent", "coder-chat"):
            dep.deploy(entry(alias))
            up = [a for a in ("coder-chat", "coder-fim", "coder-agent")
                  if (cube.kube.replicas_of(a) or 0) > 0]
            if alias != "embeddings":
                assert up == [alias]
        assert cube.kube.replicas_of("embeddings") == 1  # CPU aliases are left alone
    finally:
        dep.close()
    gpu_events = [e for e in cube.kube.history if e.gpu]
    assert {e.name for e in gpu_events if e.replicas > 0} == {"coder-chat", "coder-fim", "coder-agent"}
    assert cube.kube.max_gpu_up_at_once() == 1
    assert all(cube.kube.replicas_of(a) is None for a in ("coder-chat", "coder-fim", "coder-agent"))


def test_raw_and_kserve_paths_of_one_alias_take_turns(cube: Cube) -> None:
    raw, via_kserve = deployer(cube.url), deployer(cube.url, prefer_kserve=True)
    raw.book = via_kserve.book  # one session, one book
    raw.deploy(entry("qwen-local"))
    via_kserve.deploy(entry("qwen-local"))
    assert cube.kube.replicas_of("qwen-local") == 0
    assert cube.kube.replicas_of("qwen-oci-predictor") == 1
    raw.deploy(entry("qwen-local"))
    assert cube.kube.replicas_of("qwen-oci-predictor") == 0
    via_kserve.deploy(entry("qwen-local"))  # the apply alone would leave the predictor at 0
    assert cube.kube.replicas_of("qwen-oci-predictor") == 1
    assert cube.kube.max_gpu_up_at_once() == 1
    raw.release("qwen-local")
    assert cube.kube.replicas_of("qwen-local") == 0 and cube.kube.replicas_of("qwen-oci-predictor") == 0


def test_stand_in_refuses_an_unforced_apply_over_another_manager(cube: Cube) -> None:
    cube.kube.put(_running("coder-fim", 1))
    changed = _running("coder-fim", 1)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:v0.24.0"
    apps = client.AppsV1Api(api_for(cube.url))
    with pytest.raises(client.ApiException) as info:
        apps.patch_namespaced_deployment("coder-fim", NS, changed, field_manager="other",
                                         _content_type="application/apply-patch+yaml")
    assert info.value.status == 409
    forced = apps.patch_namespaced_deployment("coder-fim", NS, changed, field_manager="other",
                                              force=True,
                                              _content_type="application/apply-patch+yaml")
    assert forced.metadata.generation == 2


@pytest.mark.parametrize("cube", [{"gpus": 2}], indirect=True)
def test_history_check_would_catch_an_overlap(cube: Cube) -> None:
    # Control for the assertion above: two GPU deployers that do not know each other overlap
    # where the node has room for both.
    deployer(cube.url).deploy(entry("coder-chat"))
    deployer(cube.url).deploy(entry("coder-fim"))
    assert cube.kube.max_gpu_up_at_once() == 2


def test_a_deployer_that_did_not_start_the_holder_names_it(cube: Cube) -> None:
    # The same two deployers on one GPU: the second stops before applying, naming the first.
    deployer(cube.url).deploy(entry("coder-chat"))
    with pytest.raises(DeployError, match=r"GPUHeld.*owner Deployment/models/coder-chat"):
        deployer(cube.url).deploy(entry("coder-fim"))
    assert cube.kube.get("deployments", NS, "coder-fim") is None
    assert cube.kube.max_gpu_up_at_once() == 1


def _running(name: str, replicas: int) -> dict:
    manifest = raw_vllm_manifests(entry(name), NS)[1]
    manifest["spec"]["replicas"] = replicas
    return manifest


def test_interrupt_mid_deploy_restores_replicas(cube: Cube) -> None:
    cube.kube.put(_running("coder-fim", 1))  # already serving before the suite
    cube.kube.script("coder-chat", "ready", after_reads=50)
    armed = {"on": False}

    def sleep(_: float) -> None:
        if armed["on"]:
            raise KeyboardInterrupt

    dep = deployer(cube.url, sleep=sleep)
    dep.deploy(entry("coder-fim"))
    armed["on"] = True
    with pytest.raises(KeyboardInterrupt):
        dep.deploy(entry("coder-chat"))
    assert cube.kube.replicas_of("coder-fim") == 1
    assert cube.kube.replicas_of("coder-chat") is None  # created by the run: deleted
    assert [(e.name, e.replicas) for e in cube.kube.history] == [
        ("coder-fim", 1), ("coder-fim", 0), ("coder-chat", 1), ("coder-chat", 0), ("coder-fim", 1)]
    assert cube.kube.max_gpu_up_at_once() == 1
    calls = len(cube.kube.calls)
    dep.close()  # again, e.g. from a finally: nothing left to do
    assert len(cube.kube.calls) == calls


def test_release_restores_one_alias(cube: Cube) -> None:
    cube.kube.put(_running("coder-agent", 0))
    dep = deployer(cube.url)
    dep.deploy(entry("coder-agent"))
    assert cube.kube.replicas_of("coder-agent") == 1
    dep.release("coder-agent")
    assert cube.kube.replicas_of("coder-agent") == 0
    assert dep.book.keys() == []


def test_external_alias_deploys_nothing(cube: Cube) -> None:
    result = deployer(cube.url).deploy(entry("claude-haiku"))
    assert (result.kind, result.backend_url, result.target) == ("external", None, "external")
    assert cube.kube.calls == []


def test_preflight_passes_on_a_live_api(cube: Cube) -> None:
    deployer(cube.url).preflight([entry("qwen-local")])
    assert any(c.path.startswith("/version") for c in cube.kube.calls)


@pytest.mark.parametrize("cube", [{"kserve": False}], indirect=True)
def test_preflight_without_kserve_crds(cube: Cube) -> None:
    dep = deployer(cube.url, prefer_kserve=True)
    dep.preflight([entry("coder-chat")])  # no KServe alias: fine
    with pytest.raises(ClusterUnavailable, match=r"inferenceservices.*qwen-local.*404"):
        dep.preflight([entry("qwen-local")])


def test_preflight_unreachable_cluster() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    with pytest.raises(ClusterUnavailable, match=r"127\.0\.0\.1.*unreachable"):
        deployer(url).preflight()


def test_preflight_unknown_namespace(cube: Cube) -> None:
    cube.kube.namespaces.discard(NS)
    with pytest.raises(ClusterUnavailable, match=r"refused namespace 'models': 404"):
        deployer(cube.url).preflight()


def test_apply_error_is_a_deploy_error(cube: Cube) -> None:
    cube.kube.namespaces.discard(NS)
    with pytest.raises(DeployError, match=r'PersistentVolumeClaim/models/embeddings-model-cache.*'
                       r'404: namespaces "models" not found'):
        deployer(cube.url).deploy(entry("embeddings"))


def test_no_kubeconfig_is_cluster_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "kubeconfig"
    dep = KubernetesDeployer(KubeSettings(kubeconfig=str(missing)))
    with pytest.raises(ClusterUnavailable, match=r"kubeconfig .*does not exist"):
        dep.preflight()


def test_unknown_context_is_cluster_unavailable(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: a, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: a, user: {}}]\n"
        "contexts: [{name: a, context: {cluster: a, user: a}}]\n")
    dep = KubernetesDeployer(KubeSettings(kubeconfig=str(kubeconfig), kube_context="nope"))
    with pytest.raises(ClusterUnavailable, match=r"context 'nope'"):
        dep.preflight()


def test_sigterm_restores_then_unwinds(cube: Cube) -> None:
    import os
    import signal
    import time

    from deploy.k8s.signals import close_on_signals

    cube.kube.put(_running("coder-agent", 1))
    dep = deployer(cube.url)
    dep.deploy(entry("coder-agent"))
    dep.deploy(entry("coder-chat"))
    assert cube.kube.replicas_of("coder-agent") == 0
    before = signal.getsignal(signal.SIGTERM)
    uninstall = close_on_signals(dep)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs in this thread at the next check
                time.sleep(0.01)
    finally:
        uninstall()
    assert cube.kube.replicas_of("coder-agent") == 1
    assert cube.kube.replicas_of("coder-chat") is None
    assert signal.getsignal(signal.SIGTERM) == before
