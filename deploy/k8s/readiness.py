"""Readiness of a Deployment or an InferenceService, read from its JSON (CONTRACTS.md section 7)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Readiness(BaseModel):
    ready: bool
    failed: bool = False  # a condition that waiting will not fix
    reason: str | None = None
    message: str = ""


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def deployment_readiness(obj: dict[str, Any]) -> Readiness:
    """Rolled out as `kubectl rollout status` judges it; ProgressDeadlineExceeded is a failure."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Readiness(ready=False, failed=True, reason="ProgressDeadlineExceeded",
                         message=progressing.get("message") or "")
    failure = _condition(obj, "ReplicaFailure")
    if failure and failure.get("status") == "True":  # quota, admission webhook: pods never come
        return Readiness(ready=False, failed=True, reason=failure.get("reason") or "ReplicaFailure",
                         message=failure.get("message") or "condition ReplicaFailure is True")
    generation = obj.get("metadata", {}).get("generation") or 0
    observed = status.get("observedGeneration") or 0
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    replicas = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if generation > observed:
        return Readiness(ready=False, reason="NotObserved",
                         message=f"generation {generation} not yet observed (observed {observed})")
    if updated < wanted or replicas > updated or available < updated:
        return Readiness(ready=False, reason="RollingOut",
                         message=f"{available}/{wanted} available, {updated} updated, {replicas} total")
    avail = _condition(obj, "Available")
    if wanted > 0 and not (avail and avail.get("status") == "True"):
        return Readiness(ready=False, reason=(avail or {}).get("reason") or "NotAvailable",
                         message=(avail or {}).get("message") or "condition Available is not True")
    return Readiness(ready=True)


# KServe's model failure reasons (FailureReason and TransitionStatus in its v1beta1 status):
# a new spec or a runtime fix is needed, waiting will not help.
ISVC_FAILURES = {"ModelLoadFailed", "RuntimeUnhealthy", "RuntimeDisabled", "NoSupportingRuntime",
                 "RuntimeNotRecognized", "InvalidPredictorSpec"}
ISVC_BLOCKED = {"InvalidSpec", "BlockedByFailedLoad"}


def isvc_readiness(obj: dict[str, Any]) -> Readiness:
    """Ready=True with a status.url (CONTRACTS.md section 5). In Standard mode observedGeneration
    is copied from the predictor Deployment, so it is not compared with metadata.generation."""
    status = obj.get("status") or {}
    model = status.get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    transition = model.get("transitionStatus")
    if transition in ISVC_BLOCKED or info.get("reason") in ISVC_FAILURES:
        reason = transition if transition == "InvalidSpec" else info.get("reason") or transition
        where = f" ({info['location']})" if info.get("location") else ""
        return Readiness(ready=False, failed=True, reason=reason,
                         message=(info.get("message") or f"modelStatus.transitionStatus "
                                  f"{transition}") + where)
    ready = _condition(obj, "Ready")
    if ready and ready.get("status") == "True" and status.get("url"):
        return Readiness(ready=True)
    if ready is None:
        return Readiness(ready=False, reason="NoReadyCondition", message="no Ready condition yet")
    if ready.get("status") == "True":
        return Readiness(ready=False, reason="NoURL", message="Ready but status.url is not set")
    return Readiness(ready=False, reason=ready.get("reason") or "NotReady",
                     message=ready.get("message") or "condition Ready is not True")
