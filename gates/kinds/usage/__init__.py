"""usage: the provider's replies, normalized to the OpenAI shape, as a tenant sees them.

Runs through the gateway with the throwaway key only: the provider key stays in the egress.
"""

from __future__ import annotations

from deploy.gate_configs import UsageGate
from evals.checks import check_items
from evals.usage import Prices, UsageSettings, run_usage_checks
from gates.kinds.registry import GateContext, GateVerdict, gate_kind
from gates.kinds.usage.judge import judge_usage


@gate_kind("usage", config=UsageGate, items=check_items)
def measure(ctx: GateContext, config: UsageGate) -> GateVerdict:
    """Usage and cost normalized in the declared convention, and charged to the key."""
    context = ctx.alias
    entry = context.entry
    # Validated when the catalog loaded; the usage checks take their own knobs from it.
    settings = UsageSettings.model_validate(config.model_dump(include=set(UsageSettings.model_fields)))
    if entry.usage_convention is None:
        raise ValueError(f"catalog: aliases[{ctx.name}].usage_convention must be declared "
                         "(agentgateway or litellm)")
    admin, key = context.admin, context.key

    def key_spend(at_least: float) -> float:
        # Gateways write spend in batches: wait for it, bounded, then take what is there.
        return admin.settled_spend(key, at_least, timeout=settings.spend_timeout_s)

    result = run_usage_checks(
        context.client(cache=False, timeout=120.0),  # spend checks: every answer must be charged
        ctx.name,
        convention=entry.usage_convention,
        prices=Prices(input_per_token=entry.price.input_per_token,
                      output_per_token=entry.price.output_per_token),
        settings=settings,
        key_spend=key_spend,
    )
    verdict = judge_usage(result.checks, entry.usage_convention)
    return GateVerdict(
        verdict=verdict.verdict, metric="checks_passed",
        value=result.passed / len(result.checks) if result.checks else None, threshold=1.0,
        summary=verdict.summary, reason=verdict.reason, counts=verdict.counts,
        details=result.checks, served_model_name=", ".join(result.served_models) or None,
        extra={
            "seed": None,  # these requests send no seed (README: Reproducibility)
            "convention": entry.usage_convention,
            "cost_usd": result.expected_spend_usd,
            "duration_s": round(result.duration_s, 3),
        },
    )
