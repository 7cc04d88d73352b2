"""Readiness judgements per CONTRACTS.md section 7, on hand-written object JSON."""

from __future__ import annotations

from deploy.k8s.readiness import deployment_readiness, isvc_readiness


def _dep(generation=2, observed=2, replicas=1, updated=1, total=1, available=1, avail="True",
         progressing=None):
    conds = [{"type": "Available", "status": avail}]
    if progressing:
        conds.append({"type": "Progressing", "status": "False", "reason": progressing,
                      "message": 'ReplicaSet "x-1" has timed out progressing.'})
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "replicas": total, "availableReplicas": available, "conditions": conds}}


def test_rolled_out_deployment_is_ready() -> None:
    assert deployment_readiness(_dep()).ready


def test_deployment_not_ready_cases() -> None:
    assert deployment_readiness(_dep(observed=1)).reason == "NotObserved"
    assert deployment_readiness(_dep(updated=0)).reason == "RollingOut"
    assert deployment_readiness(_dep(total=2)).reason == "RollingOut"  # old pod still there
    assert deployment_readiness(_dep(available=0)).reason == "RollingOut"
    state = deployment_readiness(_dep(avail="False"))
    assert not state.ready and not state.failed


def test_progress_deadline_is_a_failure() -> None:
    state = deployment_readiness(_dep(available=0, progressing="ProgressDeadlineExceeded"))
    assert state.failed and state.reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in state.message


def _isvc(generation=3, observed=1, ready="True", url="http://qwen-oci.models.example", model=None):
    status = {"observedGeneration": observed,
              "conditions": [{"type": "Ready", "status": ready, "reason": "Stale"}]}
    if url:
        status["url"] = url
    if model:
        status["modelStatus"] = model
    return {"metadata": {"generation": generation}, "status": status}


def test_isvc_ready_is_the_ready_condition_and_the_url() -> None:
    # observedGeneration is the predictor Deployment's counter in Standard mode: not compared.
    assert isvc_readiness(_isvc(observed=1)).ready
    assert isvc_readiness(_isvc(url=None)).reason == "NoURL"
    assert isvc_readiness(_isvc(ready="False")).reason == "Stale"
    assert isvc_readiness({"metadata": {"generation": 1}, "status": {}}).reason == "NoReadyCondition"


def test_isvc_failure_reasons_end_the_wait() -> None:
    invalid = isvc_readiness(_isvc(ready="False", url=None, model={
        "transitionStatus": "InvalidSpec", "lastFailureInfo": {
            "reason": "InvalidPredictorSpec", "message": "specified runtime does not support "
            "specified framework/version"}}))
    assert (invalid.failed, invalid.reason) == (True, "InvalidSpec")
    assert "does not support" in invalid.message
    load = isvc_readiness(_isvc(ready="False", url=None, model={
        "transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {
            "reason": "ModelLoadFailed", "location": "qwen-oci-predictor-0",
            "message": "CUDA out of memory"}}))
    assert (load.failed, load.reason) == (True, "ModelLoadFailed")
    assert "qwen-oci-predictor-0" in load.message
    # Control: an update in progress is not a failure.
    assert not isvc_readiness(_isvc(ready="False", model={"transitionStatus": "InProgress"})).failed


def test_replica_failure_is_a_failure() -> None:
    dep = _dep(available=0)
    dep["status"]["conditions"].append({"type": "ReplicaFailure", "status": "True",
                                        "reason": "FailedCreate", "message": "exceeded quota"})
    state = deployment_readiness(dep)
    assert (state.failed, state.reason, state.message) == (True, "FailedCreate", "exceeded quota")
