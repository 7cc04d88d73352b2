"""The deployer's rules against the Kubernetes API stand-in, through the real kubernetes client:
no silent takeover (SSA conflicts), GPUs held by others, failures that end the wait with the whole
diagnosis, what the run created is labelled and deleted, KServe preflight, server dry runs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client

from deploy.k8s import ClusterUnavailable, DeployError, KubernetesDeployer, KubeSettings
from deploy.k8s.apply import Cluster, Conflict
from deploy.k8s.errors import ApplyConflict, GpuHeld
from deploy.k8s.manifests import RUN_ID_LABEL, raw_vllm_manifests
from fixtures.platform.loopback import ThreadedServer
from tests.fake_kube import FakeKube
from tests.test_k8s_deploy import CRASH_LOGS, NS, Cube, api_for, entry


@pytest.fixture
def cube(request: pytest.FixtureRequest) -> Iterator[Cube]:
    kube = FakeKube(**getattr(request, "param", {}))
    server = ThreadedServer(kube.app).start()
    try:
        yield Cube(kube, server.url)
    finally:
        server.stop()


def deployer(url: str, sleep=None, **settings) -> KubernetesDeployer:
    base = {"namespace": NS, "poll_interval_s": 0.01, "scale_down_timeout_s": 2,
            "request_timeout_s": 5, "run_id": "run-7"}
    extra = {"sleep": sleep} if sleep else {}
    return KubernetesDeployer(KubeSettings(**{**base, **settings}), api_client=api_for(url),
                              **extra)


def _gitops_deployment(image: str = "vllm/vllm-openai:v0.22.0") -> dict:
    """coder-chat as a GitOps controller keeps it: same name, its own image and args."""
    manifest = raw_vllm_manifests(entry("coder-chat"), NS)[1]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["args"] = ["/models/coder", "--max-model-len", "4096"]
    return manifest


def _container(cube: Cube, name: str) -> dict:
    return cube.kube.get("deployments", NS, name)["spec"]["template"]["spec"]["containers"][0]


# -- 5. no silent takeover ----------------------------------------------------------------------

def test_a_gitops_owned_object_is_an_error_naming_the_manager_and_fields(cube: Cube) -> None:
    cube.kube.put(_gitops_deployment(), manager="argocd-controller", operation="Apply")
    with pytest.raises(ApplyConflict) as info:
        deployer(cube.url).deploy(entry("coder-chat"))
    err = info.value
    assert err.reason == "FieldManagerConflict"
    assert err.managers == ["argocd-controller"]
    assert ".spec.template.spec.containers" in err.fields
    assert "argocd-controller" in str(err) and "--force-conflicts" in str(err)
    assert err.diagnosis["managers"] == ["argocd-controller"]
    # Nothing of the GitOps spec was touched.
    assert _container(cube, "coder-chat")["image"] == "vllm/vllm-openai:v0.22.0"
    applies = [c for c in cube.kube.calls if c.method == "PATCH" and "deployments" in c.path]
    assert all("force" not in c.query for c in applies)


def test_force_conflicts_takes_over_explicitly(cube: Cube) -> None:
    cube.kube.put(_gitops_deployment(), manager="argocd-controller", operation="Apply")
    dep = deployer(cube.url, force_conflicts=True)
    dep.deploy(entry("coder-chat"))
    assert _container(cube, "coder-chat")["image"] == "vllm/vllm-openai:v0.23.0"
    owners = {m["manager"]: m for m in
              cube.kube.get("deployments", NS, "coder-chat")["metadata"]["managedFields"]}
    assert "f:containers" in json.dumps(owners["modelgate"]["fieldsV1"])
    assert "f:containers" not in json.dumps(owners.get("argocd-controller", {}).get("fieldsV1"))
    assert any(c.query.get("force") == "true" for c in cube.kube.calls if c.method == "PATCH")
    dep.close()
    # It existed before the run: only its replica count is put back, it is not deleted.
    assert cube.kube.get("deployments", NS, "coder-chat") is not None
    assert "Deployment/models/coder-chat" not in cube.kube.deleted


def test_same_values_under_another_manager_do_not_conflict(cube: Cube) -> None:
    # Control: a conflict needs a different value; a shared, equal field is fine.
    cube.kube.put(raw_vllm_manifests(entry("coder-chat"), NS)[1], manager="argocd-controller",
                  operation="Apply")
    deployer(cube.url).deploy(entry("coder-chat"))


def test_server_dry_run_stores_nothing(cube: Cube) -> None:
    cluster = Cluster(api_for(cube.url), "modelgate", 5)
    for manifest in raw_vllm_manifests(entry("coder-chat"), NS):
        answer = cluster.apply(manifest, dry_run=True)
        assert answer["metadata"]["name"] == manifest["metadata"]["name"]
    assert cube.kube.objects == {}
    assert {c.query.get("dryRun") for c in cube.kube.calls} == {"All"}
    cube.kube.put(_gitops_deployment(), manager="argocd-controller", operation="Apply")
    with pytest.raises(Conflict):  # a dry run reports the conflict a real apply would hit
        cluster.apply(raw_vllm_manifests(entry("coder-chat"), NS)[1], dry_run=True)


# -- 5. what the run created carries its id and goes away ---------------------------------------

@pytest.mark.parametrize("delete_cache", [False, True])
def test_created_objects_are_labelled_and_deleted(cube: Cube, delete_cache: bool) -> None:
    dep = deployer(cube.url, delete_cache=delete_cache)
    dep.deploy(entry("embeddings"))
    for plural, name in (("deployments", "embeddings"), ("services", "embeddings"),
                         ("persistentvolumeclaims", "embeddings-model-cache")):
        assert cube.kube.get(plural, NS, name)["metadata"]["labels"][RUN_ID_LABEL] == "run-7"
    dep.close()
    assert cube.kube.get("deployments", NS, "embeddings") is None
    assert cube.kube.get("services", NS, "embeddings") is None
    cache = cube.kube.get("persistentvolumeclaims", NS, "embeddings-model-cache")
    assert (cache is None) == delete_cache
    calls = len(cube.kube.calls)
    dep.close()
    assert len(cube.kube.calls) == calls  # idempotent


# -- 4. a GPU held by a workload the suite did not start ----------------------------------------

def _vision_batch(replicas: int = 1) -> dict:
    manifest = raw_vllm_manifests(entry("coder-agent"), "research")[1]
    manifest["metadata"].update(name="vision-batch", labels={"app": "vision-batch"})
    manifest["spec"]["selector"] = {"matchLabels": {"app": "vision-batch"}}
    manifest["spec"]["template"]["metadata"]["labels"] = {"app": "vision-batch"}
    manifest["spec"]["replicas"] = replicas
    return manifest


def test_a_gpu_held_by_another_workload_is_an_error_naming_it(cube: Cube) -> None:
    cube.kube.put(_vision_batch())
    with pytest.raises(GpuHeld) as info:
        deployer(cube.url).deploy(entry("coder-chat"))
    err = info.value
    assert err.reason == "GPUHeld"
    assert "owner Deployment/research/vision-batch" in str(err)
    assert "pod research/vision-batch-" in str(err) and "--scale-gpu-holder" in str(err)
    holders = err.diagnosis["gpu"]["holders"]
    assert [h["owner"] for h in holders] == ["Deployment/research/vision-batch"]
    assert (err.diagnosis["gpu"]["allocatable"], err.diagnosis["gpu"]["in_use"]) == (1, 1)
    # Preflight: nothing was applied, the holder untouched.
    assert not [c for c in cube.kube.calls if c.method == "PATCH"]
    assert cube.kube.replicas_of("vision-batch", "research") == 1


def test_scale_gpu_holder_scales_it_down_and_restores_it(cube: Cube) -> None:
    cube.kube.put(_vision_batch())
    dep = deployer(cube.url, scale_gpu_holder=True)
    dep.deploy(entry("coder-chat"))
    assert cube.kube.replicas_of("vision-batch", "research") == 0
    dep.deploy(entry("coder-fim"))  # the next GPU alias: the holder stays down meanwhile
    assert cube.kube.replicas_of("vision-batch", "research") == 0
    dep.release("coder-fim")  # releasing an alias does not bring the holder back mid-run
    assert cube.kube.replicas_of("vision-batch", "research") == 0
    dep.close()
    assert cube.kube.replicas_of("vision-batch", "research") == 1
    assert cube.kube.max_gpu_up_at_once() == 1


def test_scale_gpu_holder_restores_also_on_ctrl_c(cube: Cube) -> None:
    cube.kube.put(_vision_batch())
    cube.kube.script("coder-chat", "ready", after_reads=50)
    armed = {"on": True}

    def sleep(_: float) -> None:
        if armed["on"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deployer(cube.url, sleep=sleep, scale_gpu_holder=True).deploy(entry("coder-chat"))
    assert cube.kube.replicas_of("vision-batch", "research") == 1
    assert cube.kube.get("deployments", NS, "coder-chat") is None
    assert cube.kube.max_gpu_up_at_once() == 1


@pytest.mark.parametrize("cube", [{"gpus": 0}], indirect=True)
def test_no_gpu_node_at_all(cube: Cube) -> None:
    with pytest.raises(GpuHeld, match="NoGPU: no schedulable node has allocatable nvidia.com/gpu"):
        deployer(cube.url).deploy(entry("coder-chat"))


# -- 2, 6. failures end the wait, with the whole diagnosis --------------------------------------

def test_crash_loop_final_exception_reaches_the_diagnosis(cube: Cube) -> None:
    logs = [*CRASH_LOGS[:-1], "Traceback (most recent call last):",
            '  File "/usr/lib/python3/vllm/engine.py", line 812, in _init_cache',
            *[f"    frame {i}" for i in range(600)],  # a long traceback: > 500 characters
            CRASH_LOGS[-1]]
    cube.kube.script("coder-chat", "crash_loop", after_reads=1, logs=logs)
    with pytest.raises(DeployError) as info:
        deployer(cube.url).deploy(entry("coder-chat"))
    err = info.value
    final = CRASH_LOGS[-1]
    assert err.diagnosis["final_exception"] == final
    assert final in err.short and "\n" not in err.short and err.short.startswith("coder-chat:")
    assert err.diagnosis["last_log_lines"][-1] == final
    pod = err.diagnosis["pods"][0]
    assert pod["containers"][0]["restartCount"] == 3
    assert any(e["reason"] == "BackOff" for e in pod["events"])
    assert {c["type"] for c in err.diagnosis["conditions"]} >= {"Available", "Progressing"}
    json.dumps(err.diagnosis)  # plain data, ready for the ledger's details


@pytest.mark.parametrize(("scenario", "reason", "needle"), [
    ("invalid_spec", "InvalidSpec", "does not support"),
    ("model_load_failed", "ModelLoadFailed", "failed to load"),
])
def test_an_inference_service_failure_ends_the_wait(cube: Cube, scenario: str, reason: str,
                                                   needle: str) -> None:
    cube.kube.script("qwen-oci", scenario, after_reads=2)
    with pytest.raises(DeployError) as info:
        deployer(cube.url, prefer_kserve=True).deploy(entry("qwen-local", timeout=60))
    err = info.value
    assert err.reason == reason and needle in str(err)
    assert err.diagnosis["model_status"]["lastFailureInfo"]["location"] == "qwen-oci-predictor-0"
    assert "gave up" not in str(err)  # ended by the reason, not the 60 s timeout
    assert cube.kube.reads_of("inferenceservices", "qwen-oci") < 10


def test_replica_failure_ends_the_wait(cube: Cube) -> None:
    cube.kube.script("coder-chat", "replica_failure", after_reads=1)
    with pytest.raises(DeployError, match="FailedCreate.*exceeded quota") as info:
        deployer(cube.url).deploy(entry("coder-chat", timeout=60))
    assert "gave up" not in str(info.value)


# -- 4. KServe support checked before anything is applied ---------------------------------------

@pytest.mark.parametrize(("cube", "needle"), [
    ({"runtimes": ()}, "runtime 'kserve-huggingfaceserver' is neither"),
    ({"modelcar": False}, "enableModelcar: true"),
], indirect=["cube"])
def test_kserve_preflight(cube: Cube, needle: str) -> None:
    with pytest.raises(ClusterUnavailable, match="KServe cannot run qwen-local") as info:
        deployer(cube.url, prefer_kserve=True).preflight([entry("qwen-local")])
    assert needle in str(info.value)


def test_kserve_preflight_passes_with_runtime_and_modelcars(cube: Cube) -> None:
    deployer(cube.url, prefer_kserve=True).preflight([entry("qwen-local"), entry("coder-fim")])


def test_the_api_error_body_is_kept() -> None:
    # The 409 shape the API server sends (details.causes), parsed without the stand-in.
    from deploy.k8s.apply import conflict_of

    exc = client.ApiException(status=409, reason="Conflict")
    exc.body = json.dumps({"kind": "Status", "code": 409, "reason": "Conflict",
                           "message": 'Apply failed with 1 conflict: conflict with "flux" using '
                                      "apps/v1: .spec.replicas",
                           "details": {"causes": [{"reason": "FieldManagerConflict",
                                                   "message": 'conflict with "flux" using apps/v1',
                                                   "field": ".spec.replicas"}]}})
    conflict = conflict_of(exc)
    assert (conflict.managers, conflict.fields) == (["flux"], [".spec.replicas"])


def _bare_gpu_pod(terminating: bool) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "notebook-0", "namespace": "research", "labels": {"app": "nb"}},
           "spec": {"nodeName": "gpu-node-1", "containers": [{
               "name": "jupyter", "image": "jupyter/base:2026-01",
               "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    stored = {"status": {"phase": "Running"}}
    if terminating:
        stored["metadata"] = {"deletionTimestamp": "2026-01-01T00:00:00Z"}
    return pod, stored


@pytest.mark.parametrize("terminating", [False, True])
def test_a_bare_pod_holder(cube: Cube, terminating: bool) -> None:
    pod, stored = _bare_gpu_pod(terminating)
    cube.kube.put(pod)
    obj = cube.kube.objects[("pods", "research", "notebook-0")]
    obj["status"] = stored["status"]
    obj["metadata"].update(stored.get("metadata", {}))
    dep = deployer(cube.url, scale_gpu_holder=True, scale_down_timeout_s=0.2)
    with pytest.raises(GpuHeld) as info:
        dep.deploy(entry("coder-chat"))
    if terminating:  # waited out for a while, then reported as not released
        assert info.value.reason == "GPUNotReleased" and "still held after 0.2s" in str(info.value)
    else:  # nothing the option may scale: a bare Pod is not restorable
        assert "scales Deployments only, not a bare Pod" in str(info.value)
    assert "pod research/notebook-0" in str(info.value)
