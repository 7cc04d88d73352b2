"""embeddings gate: registered at the gateway, correct vectors, and a budget that binds.

One verdict from every check: registration (`/v1/models`, `/model/info` with mode and price),
the vector checks of `evals.embeddings` (dimension, unit length, batch consistency, base64,
triplets, limits, usage), and the budget binding with a second, tiny-budget throwaway key.
"""

from __future__ import annotations

from deploy.ledger import now
from evals.embeddings import check_registered, load_triplets, run_embedding_checks
from evals.model_calls import RetryPolicy
from gates.embeddings.budget_key import budget_checks
from gates.embeddings.judge import expected_dimensions, gate_settings, judge_gate
from gates.embeddings.plugin import ALIAS, GATE
from gates.session import REPO_ROOT
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)

TRIPLETS = REPO_ROOT / "fixtures" / "embedding_triplets.json"


def test_registered_correct_and_budget_binding(embeddings_alias) -> None:
    context = embeddings_alias
    entry = context.entry
    config = entry.gate(GATE)
    started = now()
    dimensions = expected_dimensions(entry, context.deployment)
    settings = gate_settings(entry, config, dimensions.value)
    # request_timeout_s per attempt (60), request_budget_s per call over retries (300)
    policy = RetryPolicy.from_gate(config, timeout_s=60.0)
    client = context.client(timeout=policy.timeout_s)

    checks = [check_registered(
        client, ALIAS, lambda: [m.model_dump() for m in context.admin.model_info()],
        input_cost_per_token=entry.price.input_per_token, policy=policy,
    )]
    checks += run_embedding_checks(client, ALIAS, settings, load_triplets(TRIPLETS), policy=policy)
    checks += budget_checks(
        context, max_budget=config.budget_usd, max_requests=config.budget_max_requests,
        allowed_over_budget=config.budget_allowed_over,
    )
    verdict = judge_gate(checks, dimensions.value)
    budget = next((c.details for c in checks if c.name == "budget_binding" and c.details), {})
    record = context.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="checks_passed",
        value=verdict.value,
        threshold=1.0,
        summary=verdict.summary,
        reason=verdict.reason,
        counts=verdict.counts,
        details=checks,
        started_at=started,
        extra={
            "dimensions": dimensions.value,
            "dimensions_source": dimensions.source,
            "checks": {c.name: c.outcome for c in checks},
            "budget_usd": budget.get("max_budget"),
            "budget_refusal_status": budget.get("refusal_status"),
            "budget_answered_requests": budget.get("answered"),
            "budget_spend_usd": budget.get("reported_spend"),
        },
    )
    enforce(record)
