"""claude-haiku gate: the provider's replies, normalized to the OpenAI shape, as a tenant sees them.

Runs through the gateway with the throwaway key only: the provider key stays in the egress.
"""

from __future__ import annotations

from deploy.ledger import now
from evals.usage import Prices, UsageSettings, run_usage_checks
from gates.claude_haiku.judge import judge_usage
from gates.claude_haiku.plugin import ALIAS, GATE
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)


def test_usage_normalization(claude_haiku) -> None:
    entry = claude_haiku.entry
    # Validated when the catalog loaded; the usage checks take their own knobs from it.
    settings = UsageSettings.model_validate(
        entry.gate(GATE).model_dump(include=set(UsageSettings.model_fields)))
    if entry.usage_convention is None:
        raise ValueError(f"catalog: aliases[{ALIAS}].usage_convention must be declared "
                         "(agentgateway or litellm)")
    admin, key = claude_haiku.admin, claude_haiku.key

    def key_spend(at_least: float) -> float:
        # Gateways write spend in batches: wait for it, bounded, then take what is there.
        try:
            return admin.wait_for_spend(key, at_least, timeout=settings.spend_timeout_s)
        except TimeoutError:
            return admin.key_info(key).spend

    started = now()
    result = run_usage_checks(
        claude_haiku.client(cache=False, timeout=120.0),  # spend checks: every answer must be charged
        ALIAS,
        convention=entry.usage_convention,
        prices=Prices(input_per_token=entry.price.input_per_token,
                      output_per_token=entry.price.output_per_token),
        settings=settings,
        key_spend=key_spend,
    )
    verdict = judge_usage(result.checks, entry.usage_convention)
    record = claude_haiku.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="checks_passed",
        value=result.passed / len(result.checks) if result.checks else None,
        threshold=1.0,
        summary=verdict.summary,
        reason=verdict.reason,
        counts=verdict.counts,
        details=result.checks,
        served_model_name=", ".join(result.served_models) or None,
        started_at=started,
        extra={
            "convention": entry.usage_convention,
            "cost_usd": result.expected_spend_usd,
            "duration_s": round(result.duration_s, 3),
        },
    )
    enforce(record)
