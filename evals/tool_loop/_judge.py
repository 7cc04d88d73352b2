"""The tool-loop gate: pass rate at least the catalog's, no malformed call, FAIL vs ERROR kept apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from rich.table import Table

from evals.tool_loop._model import ScenarioResult


class ToolLoopVerdict(BaseModel):
    verdict: Literal["pass", "fail", "error"]
    reason: str
    passed: int
    total: int
    pass_rate: float
    min_pass_rate: float
    invalid_calls: int
    platform_errors: int
    failures: dict[str, str] = Field(default_factory=dict)
    cost_usd: float = 0.0
    # False when some response had no cost header: the sum then understates the key's spend.
    cost_reported: bool = True


# Reason prefixes (as the driver words them) and the kind of failure each names.
FAILURE_KINDS: tuple[tuple[str, str], ...] = (
    ("platform error", "platform error"),
    ("no tool call", "no tool call"),
    ("malformed arguments", "malformed arguments"),
    ("unknown tool", "unknown tool"),
    ("step limit", "step limit (looping)"),
    ("wrong answer", "wrong answer"),
    ("only ", "too few tool calls"),
    ("no parallel", "no parallel tool calls"),
    ("unneeded tool call", "unneeded tool call"),
)


def failure_kind(result: ScenarioResult) -> str | None:
    """The kind of failure of one run (None when it passed)."""
    if result.passed:
        return None
    reason = result.reason or ""
    return next((kind for prefix, kind in FAILURE_KINDS if reason.startswith(prefix)), "other")


def failure_kinds(results: list[ScenarioResult]) -> dict[str, int]:
    """How many runs failed in each way, most frequent first (ties in FAILURE_KINDS order)."""
    order = [kind for _, kind in FAILURE_KINDS] + ["other"]
    counts: dict[str, int] = {}
    for result in results:
        kind = failure_kind(result)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0]))))


def describe_kinds(kinds: dict[str, int]) -> str:
    """`no tool call ×5, wrong answer ×2`."""
    return ", ".join(f"{kind} ×{count}" for kind, count in kinds.items())


def _list(items: list[str], limit: int = 4) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def judge_tool_loops(results: list[ScenarioResult], min_pass_rate: float) -> ToolLoopVerdict:
    """Gate over scenario results (one or both modes): error if the platform failed any run."""
    if not 0.0 <= min_pass_rate <= 1.0:
        raise ValueError(f"min_pass_rate must be within [0, 1], got {min_pass_rate}")
    total = len(results)
    passed = sum(r.passed for r in results)
    invalid = [(r, c) for r in results for c in r.invalid_calls]
    errored = [r for r in results if r.platform_error]
    failures = {r.label: r.reason or "failed" for r in results if not r.passed}
    rate = passed / total if total else 0.0
    base = dict(
        passed=passed, total=total, pass_rate=rate, min_pass_rate=min_pass_rate,
        invalid_calls=len(invalid), platform_errors=len(errored), failures=failures,
        cost_usd=sum(r.cost_usd for r in results),
        cost_reported=all(r.cost_reported for r in results),
    )
    score = f"{passed}/{total} = {rate:.0%}"
    if total == 0:
        return ToolLoopVerdict(verdict="error", reason="no scenario was run", **base)
    if errored:
        reason = f"platform error in {len(errored)} of {total} runs: " + _list(
            [f"{r.label}: {r.platform_error}" for r in errored]
        )
        return ToolLoopVerdict(verdict="error", reason=reason, **base)
    problems = []
    if invalid:
        problems.append(
            f"{len(invalid)} invalid tool call(s), none allowed: "
            + _list([f"{r.label}: {c.problem}" for r, c in invalid])
        )
    if rate < min_pass_rate:
        problems.append(
            f"pass rate {score} below {min_pass_rate:.0%}: "
            + _list([f"{label}: {why}" for label, why in failures.items()])
        )
    if problems:
        return ToolLoopVerdict(verdict="fail", reason=" | ".join(problems), **base)
    return ToolLoopVerdict(
        verdict="pass", reason=f"pass rate {score} (gate {min_pass_rate:.0%}), no invalid tool call",
        **base,
    )


def _outcome(result: ScenarioResult) -> dict[str, object]:
    """What both modes must agree on; call ids are random per run and usage may differ by a token."""
    data = result.model_dump(include={
        "completed", "steps", "calls_valid", "max_parallel", "answer", "answer_correct", "passed",
        "reason", "platform_error",
    })
    data["calls"] = [call.model_dump(exclude={"id"}) for call in result.calls]
    return data


def compare_modes(non_stream: list[ScenarioResult], stream: list[ScenarioResult]) -> list[str]:
    """Where streaming and non-streaming runs of the same scenarios disagree (empty: they agree)."""
    differences = []
    by_name = {r.scenario: r for r in stream}
    for a in non_stream:
        b = by_name.get(a.scenario)
        if b is None:
            differences.append(f"{a.scenario}: no streaming result")
            continue
        left, right = _outcome(a), _outcome(b)
        fields = [key for key in left if left[key] != right[key]]
        if fields:
            differences.append(f"{a.scenario}: {', '.join(fields)} differ")
    missing = sorted(set(by_name) - {r.scenario for r in non_stream})
    differences += [f"{name}: no non-streaming result" for name in missing]
    return differences


def results_table(results: list[ScenarioResult]) -> Table:
    """A rich table of the runs for the gate summary."""
    table = Table(title="tool loops")
    for column in ("scenario", "mode", "result", "steps", "calls", "cost USD", "reason"):
        table.add_column(column)
    for r in results:
        outcome = "error" if r.platform_error else ("pass" if r.passed else "fail")
        table.add_row(
            r.scenario, "stream" if r.stream else "plain", outcome, str(r.steps), str(len(r.calls)),
            f"{r.cost_usd:.6f}" + ("" if r.cost_reported else "*"), r.reason or "",
        )
    return table
