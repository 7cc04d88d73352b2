"""The claude-haiku verdict from the usage checks: every check must pass."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from deploy.ledger import Counts, Verdict
from evals.usage import UsageCheck


class UsageVerdict(BaseModel):
    verdict: Verdict
    summary: str
    reason: str
    counts: Counts


def judge_usage(checks: Sequence[UsageCheck], convention: str) -> UsageVerdict:
    """FAIL when a reply is wrongly normalized; ERROR when the platform did not answer a probe.

    A check that could not run proves nothing either way, so any error makes the verdict ERROR.
    """
    passed = [c for c in checks if c.outcome == "pass"]
    failed = [c for c in checks if c.outcome == "fail"]
    errors = [c for c in checks if c.outcome == "error"]
    counts = Counts(passed=len(passed), failed=len(failed), errors=len(errors), total=len(checks))
    summary = f"usage normalization {len(passed)}/{len(checks)} checks ({convention} usage)"
    if not checks:
        return UsageVerdict(verdict="error", summary=summary, reason="no check ran", counts=counts)
    if errors:
        reason = "; ".join(f"{c.name}: {c.reason}" for c in errors)
        return UsageVerdict(verdict="error", summary=summary, reason=reason[:500], counts=counts)
    if failed:
        reason = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        return UsageVerdict(verdict="fail", summary=summary, reason=reason[:500], counts=counts)
    return UsageVerdict(verdict="pass", summary=summary, reason="", counts=counts)
