"""The coder-chat verdict from a HumanEval result and the catalog's threshold."""

from __future__ import annotations

from pydantic import BaseModel

from deploy.ledger import Counts, Verdict
from evals.intervals import Interval, wilson


class HumanEvalVerdict(BaseModel):
    verdict: Verdict
    pass_rate: float
    summary: str
    reason: str
    counts: Counts


def judge_humaneval(
    *, passed: int, failed: int, errors: int, min_pass_rate: float, sandbox_errors: int = 0,
    first_error: str | None = None, interval: Interval | None = None,
) -> HumanEvalVerdict:
    """FAIL is wrong code; ERROR is a platform that did not answer for some task.

    A run with platform errors proves nothing about the model either way, so any error makes
    the verdict ERROR even when the answered tasks would clear the gate. `first_error` (the
    first failed request and what was wrong) goes into the reason. `interval` is the pass
    rate's 95% interval (default: Wilson over the samples; with several samples per task the
    gate passes a bootstrap over tasks).
    """
    total = passed + failed + errors
    rate = passed / total if total else 0.0
    if interval is None and total:
        interval = wilson(passed, total, "pass rate")
    bracket = f" {interval.bracket()}" if interval is not None else ""
    summary = f"HumanEval {passed}/{total} = {rate:.0%}{bracket} (≥{min_pass_rate:.0%} gate)"
    counts = Counts(passed=passed, failed=failed, errors=errors, total=total)
    if total == 0:
        return HumanEvalVerdict(verdict="error", pass_rate=0.0, summary=summary,
                                reason="no task was evaluated", counts=counts)
    if sandbox_errors:
        return HumanEvalVerdict(
            verdict="error", pass_rate=rate, summary=summary, counts=counts,
            reason=f"the sandbox could not judge {sandbox_errors} of {total} samples",
        )
    if errors:
        return HumanEvalVerdict(
            verdict="error", pass_rate=rate, summary=summary, counts=counts,
            reason=f"{errors} of {total} requests got no answer from the platform after retries"
            + (f"; first: {first_error[:300]}" if first_error else ""),
        )
    if rate >= min_pass_rate:
        return HumanEvalVerdict(verdict="pass", pass_rate=rate, summary=summary, reason="", counts=counts)
    return HumanEvalVerdict(
        verdict="fail", pass_rate=rate, summary=summary, counts=counts,
        reason=f"pass rate {rate:.1%} is below the {min_pass_rate:.0%} gate",
    )


def sample_items(rows: list[dict]) -> dict[str, bool]:
    """{task id: passed} per sample from the ledger's rows (`HumanEval/3`, `HumanEval/3#1` for a
    second sample); samples the platform or the sandbox never judged are left out."""
    out = {}
    for row in rows:
        if row.get("verdict") in ("passed", "failed"):
            sample = int(row.get("sample") or 0)
            out[row["task_id"] + (f"#{sample}" if sample else "")] = row["verdict"] == "passed"
    return out
