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


def isvc_readiness(obj: dict[str, Any]) -> Readiness:
    """Ready=True for the current generation (a stale Ready belongs to the previous spec)."""
    generation = obj.get("metadata", {}).get("generation") or 0
    observed = (obj.get("status") or {}).get("observedGeneration") or 0
    ready = _condition(obj, "Ready")
    if ready and ready.get("status") == "True" and observed >= generation:
        return Readiness(ready=True)
    if ready is None:
        return Readiness(ready=False, reason="NoReadyCondition", message="no Ready condition yet")
    if observed < generation:
        return Readiness(ready=False, reason="NotObserved",
                         message=f"generation {generation} not yet observed (observed {observed})")
    return Readiness(ready=False, reason=ready.get("reason") or "NotReady",
                     message=ready.get("message") or "condition Ready is not True")
