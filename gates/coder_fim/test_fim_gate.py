"""coder-fim gate: FIM prompts over /v1/completions, direct and through the gateway with a
throwaway key; both must answer from the same model, the key's spend must grow, and the
gateway's filled holes must run and pass their tests."""

from __future__ import annotations

from deploy.ledger import now
from evals.fim import load_fim_cases
from gates.coder_fim.config import GATE, fim_family_of, gate_config
from gates.coder_fim.gate import evaluate, spread
from gates.coder_fim.judge import judge_gate
from gates.coder_fim.plugin import ALIAS
from gates.core import gate_scope
from gates.session import REPO_ROOT
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)


def test_fim_direct_and_through_a_virtual_key(coder_fim, request) -> None:
    started = now()
    config = gate_config(coder_fim.entry)
    fim_family = fim_family_of(coder_fim.entry)
    cases = load_fim_cases(REPO_ROOT / config.cases, fim_family)
    scope = gate_scope(request.config)
    limit = request.config.getoption("--fim-limit")
    if limit:
        cases = spread(cases, limit)
        scope = f"{scope} ({limit} cases)"

    outcome = evaluate(coder_fim, cases, config, fim_family)
    verdict = judge_gate(outcome, config)
    record = coder_fim.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="functional_rate",
        value=verdict.functional_rate,
        threshold=config.min_functional_rate,
        summary=verdict.summary,
        reason=verdict.reason,
        counts=verdict.counts,
        details=outcome.details(),
        served_model_name=", ".join(outcome.vkey.served_models) or None,
        started_at=started,
        extra={"scope": scope, **outcome.extra()},
    )
    enforce(record)
