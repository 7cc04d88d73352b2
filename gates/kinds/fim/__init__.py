"""fim: FIM prompts over /v1/completions, direct and through the gateway with a throwaway key;
both must answer from the same model, the key's spend must grow, and the gateway's filled holes
must run and pass their tests."""

from __future__ import annotations

from deploy.gate_configs import FimGate
from evals.fim import load_fim_cases
from gates.kinds.fim.config import GATE, fim_family_of
from gates.kinds.fim.gate import evaluate, spread
from gates.kinds.fim.judge import case_items, judge_gate
from gates.kinds.registry import GateContext, GateVerdict, Option, gate_kind
from gates.options import positive_int
from gates.session import REPO_ROOT

LIMIT = Option("--fim-limit", dict(
    type=positive_int, default=None,
    help="fim gates: only N cases, spread over the kinds (a smoke run, not a verdict to promote on)",
))


@gate_kind(GATE, config=FimGate, options=[LIMIT], items=case_items)
def measure(ctx: GateContext, config: FimGate) -> GateVerdict:
    """Functional FIM rate through the gateway, the same model direct and via the key."""
    fim_family = fim_family_of(ctx.alias.entry)
    cases = load_fim_cases(REPO_ROOT / config.cases, fim_family)
    scope = ctx.scope
    limit = ctx.option(LIMIT.flag)
    if limit:
        cases = spread(cases, limit)
        scope = f"{scope} ({limit} cases)"
    outcome = evaluate(ctx.alias, cases, config, fim_family)
    verdict = judge_gate(outcome, config)
    return GateVerdict(
        verdict=verdict.verdict, metric="functional_rate", value=verdict.functional_rate,
        threshold=config.min_functional_rate, summary=verdict.summary, reason=verdict.reason,
        counts=verdict.counts, details=outcome.details(), judged=verdict.judged,
        other_checks=verdict.other_checks,
        served_model_name=", ".join(outcome.vkey.served_models) or None,
        extra={"scope": scope, **outcome.extra()},
    )
