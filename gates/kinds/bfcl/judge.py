"""The BFCL verdict: per-category and overall accuracy against the catalog's threshold.

Accuracy is BFCL's per-entry verdict counted without weights: passed entries over all entries
of the chosen categories (the public leaderboard weights categories; this gate does not). An
entry the platform did not answer is an ERROR, and as for HumanEval any ERROR makes the verdict
ERROR: a run with platform faults proves nothing about the model either way.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts, Verdict
from evals.bfcl.items import BfclItem
from evals.intervals import wilson

# Short names in the summary line (BFCL's file names otherwise).
SHORT = {"simple_python": "simple", "parallel_multiple": "parallel_multiple",
         "multi_turn_miss_func": "miss_func", "multi_turn_miss_param": "miss_param"}
REASON_LIMIT = 600  # the reason ends up in the catalog's status on ERROR: keep it readable


class CategoryFigures(BaseModel):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.passed / self.total if self.total else 0.0


class BfclVerdict(BaseModel):
    verdict: Verdict
    accuracy: float
    summary: str
    reason: str
    counts: Counts
    per_category: dict[str, dict[str, float | int]]
    # The overall accuracy with its 95% Wilson interval (judged), each category's (reported).
    judged: list[JudgedRate] = []


def figures(items: list[BfclItem]) -> dict[str, CategoryFigures]:
    """Counts per category, in the order the categories first appear."""
    out: dict[str, CategoryFigures] = {}
    for item in items:
        f = out.setdefault(item.category, CategoryFigures())
        f.total += 1
        if item.outcome == "passed":
            f.passed += 1
        elif item.outcome == "failed":
            f.failed += 1
        else:
            f.errors += 1
    return out


def _clip(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def judge_bfcl(items: list[BfclItem], *, min_accuracy: float) -> BfclVerdict:
    per = figures(items)
    passed = sum(f.passed for f in per.values())
    failed = sum(f.failed for f in per.values())
    errors = sum(f.errors for f in per.values())
    total = len(items)
    accuracy = passed / total if total else 0.0
    parts = ", ".join(f"{SHORT.get(c, c)} {f.passed}/{f.total}" for c, f in per.items())
    judged = []
    bracket = ""
    if total:
        overall = wilson(passed, total, "BFCL accuracy")
        bracket = f" {overall.bracket()}"
        judged = [JudgedRate.of(overall, min_accuracy)] + [
            JudgedRate.of(wilson(f.passed, f.total, f"BFCL {SHORT.get(c, c)} accuracy"), None)
            for c, f in per.items() if f.total
        ]
    summary = (f"BFCL {passed}/{total} = {accuracy:.0%}{bracket} ({parts}) "
               f"(≥{min_accuracy:.0%} gate)")
    base = dict(
        accuracy=accuracy, summary=summary, judged=judged,
        counts=Counts(passed=passed, failed=failed, errors=errors, total=total),
        per_category={c: {**f.model_dump(), "accuracy": f.accuracy} for c, f in per.items()},
    )
    if total == 0:
        return BfclVerdict(verdict="error", reason="no BFCL entry was evaluated", **base)
    if errors:
        first = next(item for item in items if item.outcome == "error")
        return BfclVerdict(verdict="error", **base, reason=_clip(
            f"{errors} of {total} entries got no answer from the platform; first: {first.id}: "
            f"{first.reason}"))
    if accuracy >= min_accuracy:
        return BfclVerdict(verdict="pass", reason="", **base)
    # The failure kind: BFCL's error type ("multi_turn:empty_turn_model_response") or text before ": ".
    kinds = Counter(item.reason.split(": ", 1)[0] for item in items if item.outcome == "failed")
    why = ", ".join(f"{kind} ×{n}" for kind, n in kinds.most_common(3))
    example = next(item for item in items if item.outcome == "failed")
    return BfclVerdict(verdict="fail", **base, reason=_clip(
        f"accuracy {accuracy:.1%} is below the {min_accuracy:.0%} gate. Why: {why}. "
        f"E.g. {example.id}: {example.reason}"))


def entry_items(rows: list[dict]) -> dict[str, bool]:
    """{BFCL entry id: passed} for the candidate-against-incumbent comparison; entries the
    platform never answered are left out."""
    return {row["id"]: row["outcome"] == "passed" for row in rows if row.get("outcome") != "error"}
