"""The coder-fim verdict: the FIM eval's judgement, plus the gate's spend and wire checks."""

from __future__ import annotations

from pydantic import BaseModel

from deploy.gate_configs import FimGate
from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts, Verdict
from evals.fim import judge_fim
from gates.kinds.fim.gate import FimGateOutcome


class FimGateVerdict(BaseModel):
    verdict: Verdict
    functional_rate: float
    summary: str  # e.g. "FIM /v1/completions 200 (direct + vkey), functional 14/20"
    reason: str
    counts: Counts
    judged: list[JudgedRate] = []  # functional (>= min) and mangled (<= max) rates
    other_checks: Verdict = "pass"  # same model on both transports, no `suffix`, spend grew


def judge_gate(outcome: FimGateOutcome, config: FimGate) -> FimGateVerdict:
    """ERROR when the platform did not answer (a request, or /key/info); FAIL when the answers
    are wrong or mangled, the transports serve different models, a request carried `suffix`,
    or the key's spend did not grow by what its requests cost."""
    score = outcome.score
    base = judge_fim(score, config.min_functional_rate, config.max_mangled_rate,
                     comparison=outcome.comparison)
    verdict: Verdict = base.verdict
    problems = [] if verdict == "pass" else [base.reason]
    if verdict != "error":
        if outcome.spend.status == "unreadable":
            verdict = "error"
            problems = [outcome.spend.detail]
        else:
            if outcome.wire.with_suffix:
                problems.append(f"{outcome.wire.with_suffix} requests carried `suffix` "
                                "(vLLM refuses it; the client must format the prompt)")
            if outcome.spend.status != "grew":
                problems.append(outcome.spend.detail)
            verdict = "fail" if problems else "pass"
    reason = "; ".join(problems) if problems else f"{base.reason}; {outcome.spend.detail}"
    others_failed = bool(outcome.wire.with_suffix or outcome.spend.status != "grew"
                         or not outcome.comparison.same_served_model)
    functional, mangled = base.intervals
    judged = [JudgedRate.of(functional, config.min_functional_rate, "min"),
              JudgedRate.of(mangled, config.max_mangled_rate, "max")]
    unanswered = score.total - score.answered
    counts = Counts(passed=score.functional, failed=score.answered - score.functional,
                    errors=unanswered, total=score.total)
    return FimGateVerdict(
        verdict=verdict, functional_rate=score.functional / score.total if score.total else 0.0,
        summary=base.status, reason=reason, counts=counts, judged=judged,
        other_checks="fail" if others_failed else "pass",
    )


def case_items(rows: list[dict]) -> dict[str, bool]:
    """{case id: functional} for the gateway's answers (the scored transport); a case the
    gateway never answered is left out."""
    return {row["case_id"]: bool(row["score"]["functional"]) for row in rows
            if row.get("score", {}).get("answered")}
