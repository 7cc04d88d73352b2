"""coder-chat gate: HumanEval through the gateway with a throwaway key, scored in the sandbox."""

from __future__ import annotations

from pathlib import Path

from deploy.ledger import now
from evals.humaneval import load_problems, load_subset, run_humaneval, select
from evals.model_calls import RetryPolicy
from gates.coder_chat.judge import judge_humaneval
from gates.coder_chat.plugin import ALIAS, GATE
from gates.core import gate_scope
from gates.session import REPO_ROOT
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)


def test_humaneval_pass_rate(coder_chat, request) -> None:
    config = coder_chat.entry.gate(GATE)
    started = now()
    problems = load_problems(cache_dir=Path(request.config.getoption("--build-dir")) / "datasets")
    scope = gate_scope(request.config)
    if scope == "promotion":
        subset = load_subset(REPO_ROOT / config.promotion_subset)
        chosen = select(problems, subset.task_ids)
    else:
        chosen = list(problems.values())
    limit = request.config.getoption("--humaneval-limit")
    if limit:
        chosen = chosen[:limit]
        scope = f"{scope} (first {limit})"

    result = run_humaneval(
        coder_chat.client(),
        ALIAS,
        chosen,
        samples_per_task=config.samples_per_task,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        concurrency=config.concurrency,
        retry=RetryPolicy.from_gate(config),  # request_timeout_s, request_budget_s
    )
    verdict = judge_humaneval(
        passed=result.passed, failed=result.failed, errors=result.errors,
        sandbox_errors=result.sandbox_errors, min_pass_rate=config.min_pass_rate,
        first_error=result.first_error,
    )
    record = coder_chat.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="pass@1" if result.samples_per_task == 1 else "pass_rate",
        value=verdict.pass_rate,
        threshold=config.min_pass_rate,
        summary=verdict.summary,
        reason=verdict.reason,
        counts=verdict.counts,
        details=result.records,
        served_model_name=", ".join(result.served_models) or None,
        started_at=started,
        extra={
            "scope": scope,
            "pass_at_k": result.pass_at_k,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cost_usd": result.cost_usd,
        },
    )
    enforce(record)
