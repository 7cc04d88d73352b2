"""embeddings: registered with the right dimensions, vectors that rank as they should, and a
budget that binds on a second, tiny key."""

from __future__ import annotations

from deploy.gate_configs import EmbeddingsGateConfig
from evals.checks import check_items
from evals.embeddings import check_registered, load_triplets, run_embedding_checks
from evals.model_calls import RetryPolicy
from gates.kinds.embeddings.budget_key import budget_checks
from gates.kinds.embeddings.judge import expected_dimensions, gate_settings, judge_gate
from gates.kinds.registry import GateContext, GateVerdict, gate_kind
from gates.session import REPO_ROOT

TRIPLETS = REPO_ROOT / "fixtures" / "embedding_triplets.json"


@gate_kind("embeddings", config=EmbeddingsGateConfig, items=check_items)
def measure(ctx: GateContext, config: EmbeddingsGateConfig) -> GateVerdict:
    """Every embedding check passes: registration, dimensions, ranking, the budget binding."""
    context = ctx.alias
    entry = context.entry
    dimensions = expected_dimensions(entry, context.deployment)
    settings = gate_settings(entry, config, dimensions.value)
    # request_timeout_s per attempt (60), request_budget_s per call over retries (300)
    policy = RetryPolicy.from_gate(config, timeout_s=60.0)
    client = context.client(timeout=policy.timeout_s)

    checks = [check_registered(
        client, ctx.name, lambda: [m.model_dump() for m in context.admin.model_info()],
        input_cost_per_token=entry.price.input_per_token, policy=policy,
    )]
    checks += run_embedding_checks(client, ctx.name, settings, load_triplets(TRIPLETS), policy=policy)
    checks += budget_checks(
        context, max_budget=config.budget_usd, max_requests=config.budget_max_requests,
        allowed_over_budget=config.budget_allowed_over,
    )
    verdict = judge_gate(checks, dimensions.value, settings.min_triplet_rate)
    budget = next((c.details for c in checks if c.name == "budget_binding" and c.details), {})
    return GateVerdict(
        verdict=verdict.verdict, metric="checks_passed", value=verdict.value, threshold=1.0,
        summary=verdict.summary, reason=verdict.reason, counts=verdict.counts, details=checks,
        judged=verdict.judged, other_checks=verdict.other_checks,
        extra={
            "seed": None,  # these requests send no seed (README: Reproducibility)
            "dimensions": dimensions.value,
            "dimensions_source": dimensions.source,
            "checks": {c.name: c.outcome for c in checks},
            "budget_usd": budget.get("max_budget"),
            "budget_refusal_status": budget.get("refusal_status"),
            "budget_answered_requests": budget.get("answered"),
            "budget_spend_usd": budget.get("reported_spend"),
        },
    )
