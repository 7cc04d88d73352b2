"""tool_loop: multi-step tool loops through the gateway with the run's budgeted key.

The non-streamed pass comes first and carries the budget check (the gateway sends cost headers
on non-streamed responses only); the streamed pass follows and must agree with it.
"""

from __future__ import annotations

from rich.console import Console

from deploy.gate_configs import ToolLoopGate
from evals.model_calls import RetryPolicy
from evals.seeds import resolve_seed
from evals.tool_loop import SCENARIOS, results_table, run_tool_loops
from gates.kinds.registry import GateContext, GateVerdict, Option, gate_kind
from gates.kinds.tool_loop.budget import check_spend, key_exists, settled_baseline
from gates.kinds.tool_loop.judge import judge_coder_agent, scenario_items
from gates.options import positive_int
from gates.session import AliasContext

LIMIT = Option("--tool-loop-limit", dict(
    type=positive_int, default=None,
    help="tool_loop gates: only the first N tool scenarios (a smoke run, not a verdict to "
    "promote on)",
))


class KeyNotDeleted(RuntimeError):
    """The run's throwaway key still exists at the gateway after the run."""


def key_gone(context: AliasContext) -> None:
    # alias_context deleted the key; a key left behind would keep its budget open to anyone holding it.
    if key_exists(context.admin, context.key):
        raise KeyNotDeleted(
            f"{context.entry.alias}: the throwaway key {context.key.key_name} still exists after the run")


@gate_kind("tool_loop", config=ToolLoopGate, options=[LIMIT], after_key=key_gone,
           items=scenario_items)
def measure(ctx: GateContext, config: ToolLoopGate) -> GateVerdict:
    """Scenario pass rate, streamed and not, and the key's spend equal to the charged costs."""
    scenarios = list(SCENARIOS)
    scope = "all scenarios"
    limit = ctx.option(LIMIT.flag)
    if limit:
        scenarios = scenarios[:limit]
        scope = f"first {limit} scenarios"
    options = dict(
        max_steps=config.max_steps, max_tokens=config.max_tokens,
        temperature=config.temperature, concurrency=config.concurrency,
        # The seed sent, resolved here: these options go into the record's extra as they are.
        seed=resolve_seed(config.seed),
        # request_timeout_s per attempt, request_budget_s per turn over retries
        policy=RetryPolicy.from_gate(config),
    )
    context = ctx.alias
    # No cache: the key's spend must equal the costs of answers it was charged for.
    client = context.client(cache=False, timeout=options["policy"].timeout_s)
    admin, key = context.admin, context.key
    price = context.entry.price
    priced = bool(price.input_per_token or price.output_per_token)

    baseline = settled_baseline(admin, key, priced=priced)
    plain = run_tool_loops(client, ctx.name, scenarios, stream=False, **options)
    spend = check_spend(admin, key, plain, baseline=baseline, catalog_budget=config.max_budget_usd)
    streamed = run_tool_loops(client, ctx.name, scenarios, stream=True, **options)
    final_spend = admin.key_info(key).spend  # informational: streamed charges carry no header

    verdict = judge_coder_agent(plain, streamed, min_pass_rate=config.min_pass_rate, spend=spend)
    # Captured output: pytest shows the per-run table with a failing verdict.
    Console(width=160).print(results_table(plain + streamed))
    return GateVerdict(
        verdict=verdict.verdict, metric="scenario_pass_rate", value=verdict.pass_rate,
        threshold=config.min_pass_rate, summary=verdict.summary, reason=verdict.reason,
        counts=verdict.counts, details=plain + streamed, judged=verdict.judged,
        other_checks=verdict.other_checks,
        extra={
            "scope": scope,
            **options,
            "invalid_calls": verdict.invalid_calls,
            "failure_kinds": verdict.failure_kinds,
            "disagreements": verdict.disagreements,
            "spend": {**spend.model_dump(), "gate_spend_usd": spend.gate_spend_usd,
                      "after_stream_usd": final_spend},
            "key": key.key_name,
            "prompt_tokens": sum(r.prompt_tokens for r in plain + streamed),
            "completion_tokens": sum(r.completion_tokens for r in plain + streamed),
        },
    )
