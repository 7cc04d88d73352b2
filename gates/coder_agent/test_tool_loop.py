"""coder-agent gate: multi-step tool loops through the gateway with the run's budgeted key.

The non-streamed pass comes first and carries the budget check (the gateway sends cost headers
on non-streamed responses only); the streamed pass follows and must agree with it.
"""

from __future__ import annotations

from rich.console import Console

from deploy.ledger import now
from evals.model_calls import RetryPolicy
from evals.tool_loop import SCENARIOS, results_table, run_tool_loops
from gates.coder_agent.budget import check_spend, settled_baseline
from gates.coder_agent.judge import judge_coder_agent
from gates.coder_agent.plugin import ALIAS, GATE
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)


def test_tool_loops(coder_agent, request) -> None:
    config = coder_agent.entry.gate(GATE)
    started = now()
    scenarios = list(SCENARIOS)
    scope = "all scenarios"
    limit = request.config.getoption("--tool-loop-limit")
    if limit:
        scenarios = scenarios[:limit]
        scope = f"first {limit} scenarios"
    min_pass_rate = config.min_pass_rate
    options = dict(
        max_steps=config.max_steps, max_tokens=config.max_tokens,
        temperature=config.temperature, concurrency=config.concurrency,
        # request_timeout_s per attempt, request_budget_s per turn over retries
        policy=RetryPolicy.from_gate(config),
    )
    # No cache: the key's spend must equal the costs of answers it was charged for.
    client = coder_agent.client(cache=False, timeout=options["policy"].timeout_s)
    admin, key = coder_agent.admin, coder_agent.key
    price = coder_agent.entry.price
    priced = bool(price.input_per_token or price.output_per_token)

    baseline = settled_baseline(admin, key, priced=priced)
    plain = run_tool_loops(client, ALIAS, scenarios, stream=False, **options)
    spend = check_spend(admin, key, plain, baseline=baseline,
                        catalog_budget=config.max_budget_usd)
    streamed = run_tool_loops(client, ALIAS, scenarios, stream=True, **options)
    final_spend = admin.key_info(key).spend  # informational: streamed charges carry no header

    verdict = judge_coder_agent(plain, streamed, min_pass_rate=min_pass_rate, spend=spend)
    # Captured output: pytest shows the per-run table with a failing verdict.
    Console(width=160).print(results_table(plain + streamed))
    record = coder_agent.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="scenario_pass_rate",
        value=verdict.pass_rate,
        threshold=min_pass_rate,
        summary=verdict.summary,
        reason=verdict.reason,
        counts=verdict.counts,
        details=plain + streamed,
        started_at=started,
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
    enforce(record)
