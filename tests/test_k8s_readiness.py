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


def _isvc(generation=3, observed=3, ready="True"):
    return {"metadata": {"generation": generation},
            "status": {"observedGeneration": observed,
                       "conditions": [{"type": "Ready", "status": ready, "reason": "Stale"}]}}


def test_isvc_ready_needs_the_current_generation() -> None:
    assert isvc_readiness(_isvc()).ready
    assert not isvc_readiness(_isvc(observed=2)).ready  # Ready belongs to the previous spec
    assert isvc_readiness(_isvc(ready="False")).reason == "Stale"
    assert isvc_readiness({"metadata": {"generation": 1}, "status": {}}).reason == "NoReadyCondition"
