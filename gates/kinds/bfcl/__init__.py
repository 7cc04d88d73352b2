"""bfcl: BFCL v4 categories through the gateway with the run's key, judged by BFCL's checkers.

Promotion scope asks the committed subset (a few entries of each category); release scope the
whole single-turn categories and multi_turn_base, miss_func and miss_param.
"""

from __future__ import annotations

from deploy.gate_configs import BfclGate
from evals.bfcl.ask import AskSettings
from evals.bfcl.data import MULTI_TURN, SINGLE_TURN, package_version
from evals.bfcl.run import LoopBounds, first_per_category, run_bfcl, selection
from evals.bfcl.subset import load_subset
from evals.model_calls import RetryPolicy
from evals.seeds import resolve_seed
from gates.kinds.bfcl.judge import entry_items, judge_bfcl
from gates.kinds.registry import GateContext, GateVerdict, Option, gate_kind
from gates.options import positive_int
from gates.session import REPO_ROOT

LIMIT = Option("--bfcl-limit", dict(
    type=positive_int, default=None,
    help="bfcl gates: only the first N entries of each category (a smoke run, not a verdict "
    "to promote on)",
))


def chosen_ids(scope: str, config: BfclGate) -> dict[str, list[str] | None]:
    """The ids per category a scope asks (None: the whole category)."""
    if scope == "promotion":
        return dict(load_subset(REPO_ROOT / config.promotion_subset).ids)
    return {category: None for category in SINGLE_TURN + MULTI_TURN}


@gate_kind("bfcl", config=BfclGate, options=[LIMIT], items=entry_items)
def measure(ctx: GateContext, config: BfclGate) -> GateVerdict:
    """BFCL accuracy (BFCL's AST and multi-turn checkers) at or above the catalog's threshold."""
    version = package_version()  # a missing package is one line naming the install command
    scope = ctx.scope
    limit = ctx.option(LIMIT.flag)
    pairs = selection(chosen_ids(scope, config))
    if limit:
        pairs = first_per_category(pairs, limit)
        scope = f"{scope} (first {limit} of each category)"
    policy = RetryPolicy.from_gate(config)  # request_timeout_s, request_budget_s per request
    settings = AskSettings(max_tokens=config.max_tokens, temperature=config.temperature,
                           seed=resolve_seed(config.seed), policy=policy)
    bounds = LoopBounds(max_steps_per_turn=config.max_steps,
                        time_budget_s=config.entry_time_budget_s)
    items = run_bfcl(ctx.alias.client(timeout=policy.timeout_s), ctx.name, pairs,
                     settings=settings, bounds=bounds, concurrency=config.concurrency)
    verdict = judge_bfcl(items, min_accuracy=config.min_accuracy)
    costs = [item.cost_usd for item in items if item.cost_usd is not None]
    return GateVerdict(
        verdict=verdict.verdict, metric="bfcl_accuracy", value=verdict.accuracy,
        threshold=config.min_accuracy, summary=verdict.summary, reason=verdict.reason,
        counts=verdict.counts, details=items, judged=verdict.judged,
        extra={
            "scope": scope, "package": "bfcl-eval", "package_version": version,
            "per_category": verdict.per_category,
            "accuracy": "unweighted: passed entries / entries of the chosen categories",
            "max_tokens": config.max_tokens, "temperature": config.temperature,
            "concurrency": config.concurrency,
            "max_steps": config.max_steps, "entry_time_budget_s": config.entry_time_budget_s,
            "prompt_tokens": sum(item.prompt_tokens for item in items),
            "completion_tokens": sum(item.completion_tokens for item in items),
            "cost_usd": sum(costs) if costs else None,
        },
    )
