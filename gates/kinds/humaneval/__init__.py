"""humaneval: HumanEval through the gateway with a throwaway key, scored in the sandbox."""

from __future__ import annotations

from collections import Counter

from deploy.gate_configs import HumanEvalGate
from deploy.judged_rates import JudgedRate
from evals.humaneval import HumanEvalResult, load_problems, load_subset, run_humaneval
from evals.intervals import Interval, pass_at_k_interval, wilson
from evals.model_calls import RetryPolicy
from gates.kinds.humaneval.judge import judge_humaneval, sample_items
from gates.kinds.registry import GateContext, GateVerdict, Option, gate_kind
from gates.options import positive_int
from gates.session import REPO_ROOT

LIMIT = Option("--humaneval-limit", dict(
    type=positive_int, default=None,
    help="humaneval gates: only the first N tasks of the selected set (a smoke run, not a "
    "verdict to promote on)",
))


def intervals(result: HumanEvalResult, task_ids: list[str]) -> list[Interval]:
    """The pass rate's 95% interval first (Wilson over tasks with one sample each; a bootstrap
    over tasks with several, whose samples are not independent), then pass@k for each k > 1."""
    n = result.samples_per_task
    if not result.records:
        return []
    if n == 1:
        return [wilson(result.passed, len(result.records), "pass rate")]
    correct = Counter(r.task_id for r in result.records if r.verdict == "passed")
    per_task = [correct[task] for task in task_ids]
    rate = pass_at_k_interval(per_task, n, 1).model_copy(update={"name": "pass rate"})
    return [rate, *(pass_at_k_interval(per_task, n, k) for k in (10, 100) if k <= n)]


@gate_kind("humaneval", config=HumanEvalGate, options=[LIMIT], items=sample_items)
def measure(ctx: GateContext, config: HumanEvalGate) -> GateVerdict:
    """HumanEval pass rate at or above the catalog's threshold (promotion: the fixed subset)."""
    scope = ctx.scope
    cache = ctx.build_dir / "datasets"
    if scope == "promotion":  # only the subset's problems are loaded
        task_ids = load_subset(REPO_ROOT / config.promotion_subset).task_ids
        chosen = list(load_problems(cache_dir=cache, task_ids=task_ids).values())
    else:
        chosen = list(load_problems(cache_dir=cache).values())
    limit = ctx.option(LIMIT.flag)
    if limit:
        chosen = chosen[:limit]
        scope = f"{scope} (first {limit})"

    result = run_humaneval(
        ctx.alias.client(), ctx.name, chosen,
        samples_per_task=config.samples_per_task, temperature=config.temperature,
        max_tokens=config.max_tokens, concurrency=config.concurrency,
        retry=RetryPolicy.from_gate(config),  # request_timeout_s, request_budget_s
        seed=config.seed,
    )
    measured = intervals(result, [p["task_id"] for p in chosen])
    verdict = judge_humaneval(
        passed=result.passed, failed=result.failed, errors=result.errors,
        sandbox_errors=result.sandbox_errors, min_pass_rate=config.min_pass_rate,
        first_error=result.first_error, interval=measured[0] if measured else None,
    )
    judged = [JudgedRate.of(measured[0], config.min_pass_rate)] if measured else []
    judged += [JudgedRate.of(i, None) for i in measured[1:]]  # pass@k: reported, not gated
    return GateVerdict(
        verdict=verdict.verdict,
        metric="pass@1" if result.samples_per_task == 1 else "pass_rate",
        value=verdict.pass_rate, threshold=config.min_pass_rate, summary=verdict.summary,
        reason=verdict.reason, counts=verdict.counts, details=result.records,
        served_model_name=", ".join(result.served_models) or None, judged=judged,
        extra={
            "scope": scope, "pass_at_k": result.pass_at_k, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens, "cost_usd": result.cost_usd,
        },
    )
