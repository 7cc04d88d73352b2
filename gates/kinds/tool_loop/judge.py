"""The coder-agent verdict: tool loops per scenario in both modes, their agreement, the key's spend.

A scenario passes when its non-streamed and its streamed run both pass. FAIL is the model's
doing (no tool call, malformed arguments, wrong answer, looping, or streaming that tells a
different story); ERROR is the platform's (no answer after retries, or a key whose spend does
not match the response costs), and an ERROR never hides a FAIL that the answers already prove.
"""

from __future__ import annotations

from pydantic import BaseModel

from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts, Verdict
from evals.intervals import wilson
from evals.tool_loop import (
    ScenarioResult,
    compare_modes,
    describe_kinds,
    failure_kinds,
    judge_tool_loops,
)
from gates.kinds.tool_loop.budget import SpendCheck

REASON_LIMIT = 600  # the reason ends up in the catalog's status on ERROR: keep it readable


class CoderAgentVerdict(BaseModel):
    verdict: Verdict
    summary: str
    reason: str
    pass_rate: float
    counts: Counts
    invalid_calls: int
    failure_kinds: dict[str, int]
    disagreements: list[str]
    judged: list[JudgedRate] = []  # the scenario pass rate with its 95% Wilson interval
    other_checks: Verdict = "pass"  # valid tool calls, modes agree, key accounting


def _platform_errors(results: list[ScenarioResult]) -> str:
    """Distinct platform errors with how often each came (the same one usually repeats)."""
    seen: dict[str, list[str]] = {}
    for r in results:
        if r.platform_error:
            # "step 2: APIError: ..." -> the error without its step, so repeats group together.
            error = r.platform_error.split(": ", 1)[-1]
            seen.setdefault(error, []).append(r.label)
    parts = [f"{error} (×{len(labels)}, first in {labels[0]})" for error, labels in seen.items()]
    return "; ".join(parts[:3]) + (f"; and {len(parts) - 3} other errors" if len(parts) > 3 else "")


def _clip(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def judge_coder_agent(
    plain: list[ScenarioResult],
    streamed: list[ScenarioResult],
    *,
    min_pass_rate: float,
    spend: SpendCheck,
) -> CoderAgentVerdict:
    loops = judge_tool_loops(plain + streamed, min_pass_rate)
    disagreements = compare_modes(plain, streamed)
    by_name = {r.scenario: r for r in streamed}
    errored = {r.scenario for r in plain + streamed if r.platform_error}
    passed = sum(r.passed and r.scenario in by_name and by_name[r.scenario].passed for r in plain)
    total = len(plain)
    counts = Counts(passed=passed, errors=len(errored), failed=total - passed - len(errored), total=total)
    rate = passed / total if total else 0.0
    kinds = failure_kinds(plain + streamed)
    interval = wilson(passed, total, "scenario pass rate") if total else None
    bracket = f" {interval.bracket()}" if interval is not None else ""
    summary = (f"Tool loops {passed}/{total} = {rate:.0%}{bracket} "
               f"(≥{min_pass_rate:.0%} gate; streamed and not)")
    accounting = f"key accounting: {spend.problem}" if spend.problem else ""
    base = dict(pass_rate=rate, counts=counts, invalid_calls=loops.invalid_calls,
                failure_kinds=kinds, disagreements=disagreements,
                judged=[JudgedRate.of(interval, min_pass_rate)] if interval is not None else [],
                other_checks=("fail" if loops.invalid_calls or disagreements
                              else "error" if accounting else "pass"))

    if total == 0:
        return CoderAgentVerdict(verdict="error", summary=summary, reason="no scenario was run", **base)
    if loops.platform_errors:
        runs = len(plain) + len(streamed)
        return CoderAgentVerdict(
            verdict="error", reason=_clip(_platform_errors(plain + streamed)),
            summary=f"Tool loops not judged: no answer in {loops.platform_errors} of {runs} runs", **base,
        )

    problems = []
    if rate < min_pass_rate:
        problems.append(f"pass rate {passed}/{total} = {rate:.0%} is below {min_pass_rate:.0%}")
    if loops.invalid_calls:
        problems.append(f"{loops.invalid_calls} invalid tool call(s), none allowed")
    if disagreements:
        problems.append("streamed runs disagree with non-streamed ones: " + "; ".join(disagreements[:3]))

    if problems:
        examples = "; ".join(f"{label}: {why}" for label, why in list(loops.failures.items())[:3])
        reason = ", ".join(problems)
        if kinds:
            reason += f". Why: {describe_kinds(kinds)}"
        if examples:
            reason += f". E.g. {examples}"
        if accounting:
            reason += f". Also {accounting}"
        summary += f": {describe_kinds(kinds)}" if kinds else ""
        return CoderAgentVerdict(verdict="fail", summary=summary, reason=_clip(reason), **base)
    if accounting:
        return CoderAgentVerdict(verdict="error", summary=summary, reason=_clip(accounting), **base)
    reason = "no invalid tool call, streamed runs agree, key spend = sum of response costs"
    if kinds:
        reason += f"; failed runs: {describe_kinds(kinds)}"
    return CoderAgentVerdict(verdict="pass", summary=summary, reason=reason, **base)


def scenario_items(rows: list[dict]) -> dict[str, bool]:
    """{`scenario[plain]` / `scenario[stream]`: passed}; runs the platform broke are left out."""
    return {f"{row['scenario']}[{'stream' if row.get('stream') else 'plain'}]": bool(row["passed"])
            for row in rows if not row.get("platform_error")}
