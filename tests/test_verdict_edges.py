"""Every judge at its thresholds and with mixed outcomes.

For each rule: a case exactly on the threshold (passes where the rule is `>=`/`<=`, fails where
it is a strict `<`), one just past it on either side, and mixes of failed and errored checks,
where ERROR wins: a run with a platform error proves nothing either way. The judges are called
with plain values, as the gates call them; nothing here talks to a server.
"""

from __future__ import annotations

import pytest

from evals.checks import CheckResult
from evals.embeddings import EmbeddingCheck, judge_embeddings
from evals.fim import FimCaseScore, FimRun, FimScore, TransportComparison, judge_fim
from evals.latency import judge_latency
from evals.latency_models import LatencySummary, Percentiles
from evals.tool_loop_judge import judge_tool_loops
from evals.tool_loop_model import ScenarioResult, ToolCallRecord
from evals.usage import UsageCheck
from gates.claude_haiku.judge import judge_usage
from gates.coder_agent.budget import SpendCheck as AgentSpend
from gates.coder_agent.judge import judge_coder_agent
from gates.coder_chat.judge import judge_humaneval
from gates.coder_fim.config import FimGateConfig
from gates.coder_fim.gate import FimGateOutcome
from gates.coder_fim.gate import SpendCheck as FimSpend
from gates.coder_fim.judge import judge_gate as judge_fim_gate
from gates.coder_fim.wire import TransportWire, WireSummary
from gates.embeddings.judge import judge_gate as judge_embeddings_gate
from gates.qwen_local.report import status_summary

# ---- coder-chat: HumanEval pass rate >= min_pass_rate ----------------------------------------


@pytest.mark.parametrize(("passed", "total", "gate", "verdict"), [
    (14, 20, 0.7, "pass"),   # exactly on the gate
    (13, 20, 0.7, "fail"),   # one task short
    (15, 20, 0.7, "pass"),
    (9, 10, 0.9, "pass"),
    (20, 20, 1.0, "pass"),
    (19, 20, 1.0, "fail"),
    (0, 5, 0.0, "pass"),     # a zero gate passes anything that was judged
    (1, 3, 1 / 3, "pass"),
])
def test_humaneval_threshold(passed: int, total: int, gate: float, verdict: str) -> None:
    v = judge_humaneval(passed=passed, failed=total - passed, errors=0, min_pass_rate=gate)
    assert v.verdict == verdict, v
    assert v.pass_rate == passed / total
    assert (v.counts.passed, v.counts.failed, v.counts.errors, v.counts.total) == (
        passed, total - passed, 0, total)
    assert v.reason == ("" if verdict == "pass" else
                        f"pass rate {passed / total:.1%} is below the {gate:.0%} gate")


def test_humaneval_summary_names_the_score_and_gate() -> None:
    v = judge_humaneval(passed=14, failed=6, errors=0, min_pass_rate=0.7)
    assert v.summary == "HumanEval 14/20 = 70% (≥70% gate)"


@pytest.mark.parametrize(("passed", "failed", "errors", "sandbox"), [
    (10, 9, 1, 0),    # failed and errored tasks: ERROR, though the rate alone would FAIL
    (19, 0, 1, 0),    # an error with a passing rate: still ERROR
    (5, 15, 0, 1),    # the sandbox could not judge one sample among failures
    (20, 0, 0, 1),
    (0, 0, 3, 0),
])
def test_humaneval_any_error_wins(passed: int, failed: int, errors: int, sandbox: int) -> None:
    v = judge_humaneval(passed=passed, failed=failed, errors=errors, min_pass_rate=0.7,
                        sandbox_errors=sandbox)
    assert v.verdict == "error", v
    assert v.counts.errors == errors and v.counts.total == passed + failed + errors
    if sandbox:
        assert v.reason == f"the sandbox could not judge {sandbox} of {passed + failed + errors} samples"
    else:
        assert v.reason == (f"{errors} of {passed + failed + errors} requests got no answer from "
                            "the platform after retries")


def test_humaneval_nothing_judged_is_an_error() -> None:
    v = judge_humaneval(passed=0, failed=0, errors=0, min_pass_rate=0.0)
    assert v.verdict == "error" and v.reason == "no task was evaluated" and v.pass_rate == 0.0


# ---- claude-haiku: every usage check must pass; an error wins over a failure -------------------

def _usage(*outcomes: str) -> list[UsageCheck]:
    return [UsageCheck(name=f"c{i}", outcome=o, reason=f"r{i}") for i, o in enumerate(outcomes)]


@pytest.mark.parametrize("outcomes", [
    ("fail", "error"), ("error", "fail"), ("pass", "fail", "error", "pass"), ("error",),
])
def test_usage_error_beats_fail(outcomes: tuple[str, ...]) -> None:
    v = judge_usage(_usage(*outcomes), "litellm")
    assert v.verdict == "error"
    errored = [f"c{i}: r{i}" for i, o in enumerate(outcomes) if o == "error"]
    assert v.reason == "; ".join(errored)  # the errors, not the failures, are the reason
    assert v.counts.errors == len(errored) and v.counts.failed == outcomes.count("fail")
    assert v.counts.total == len(outcomes) and v.counts.passed == outcomes.count("pass")


def test_usage_fail_and_pass() -> None:
    failed = judge_usage(_usage("pass", "fail", "fail"), "agentgateway")
    assert failed.verdict == "fail" and failed.reason == "c1: r1; c2: r2"
    assert failed.summary == "usage normalization 1/3 checks (agentgateway usage)"
    passed = judge_usage(_usage("pass", "pass"), "litellm")
    assert passed.verdict == "pass" and passed.reason == "" and passed.counts.passed == 2


def test_usage_without_checks_is_an_error() -> None:
    v = judge_usage([], "litellm")
    assert v.verdict == "error" and v.reason == "no check ran"


def test_usage_reason_is_bounded() -> None:
    checks = [UsageCheck(name="c", outcome="fail", reason="x" * 400) for _ in range(3)]
    assert len(judge_usage(checks, "litellm").reason) == 500


# ---- embeddings: every check must pass; an error wins over a failure -------------------------

def _emb(*outcomes: str) -> list[EmbeddingCheck]:
    return [EmbeddingCheck(name=f"c{i}", outcome=o, reason=f"r{i}") for i, o in enumerate(outcomes)]


@pytest.mark.parametrize("outcomes", [
    ("fail", "error"), ("error", "fail"), ("pass", "fail", "pass", "error"), ("error", "error"),
])
def test_embeddings_error_beats_fail(outcomes: tuple[str, ...]) -> None:
    judged = judge_embeddings(_emb(*outcomes))
    assert judged.verdict == "error"
    errored = [i for i, o in enumerate(outcomes) if o == "error"]
    assert judged.reason == "; ".join(f"c{i}: r{i}" for i in errored)
    passed = outcomes.count("pass")
    names = ", ".join(f"c{i}" for i in errored)
    assert judged.status == f"embeddings checks {passed}/{len(outcomes)} passed ({names} error)"
    gate = judge_embeddings_gate(_emb(*outcomes), 384)
    assert gate.verdict == "error"
    assert gate.summary == f"{judged.status}, 384-d expected" and gate.reason == judged.reason
    assert (gate.counts.passed, gate.counts.failed, gate.counts.errors, gate.counts.total) == (
        passed, outcomes.count("fail"), len(errored), len(outcomes))
    assert gate.value == passed / len(outcomes)


def test_embeddings_fail_and_pass() -> None:
    failed = judge_embeddings(_emb("pass", "fail"))
    assert failed.verdict == "fail" and failed.reason == "c1: r1"
    assert failed.status == "embeddings checks 1/2 passed (c1 fail)"
    passed = judge_embeddings(_emb("pass", "pass"))
    assert passed.verdict == "pass" and passed.reason == "r0; r1"
    assert passed.status == "embeddings checks 2/2 passed"
    gate = judge_embeddings_gate(_emb("pass", "pass"), 768)
    assert (gate.verdict, gate.summary, gate.reason, gate.value) == (
        "pass", "registered + budget-binding, 768-d", "", 1.0)
    with pytest.raises(ValueError, match="at least one check"):
        judge_embeddings([])


# ---- coder-fim: functional rate >= min, mangled rate <= max ------------------------------------

def _fim_score(functional: int, mangled: int = 0, answered: int | None = None,
               total: int = 20) -> FimScore:
    answered = total if answered is None else answered
    cases = [
        FimCaseScore(case_id=f"c{i}", kind="single", answered=i < answered,
                     functional=i < functional, mangled=i < mangled)
        for i in range(total)
    ]
    return FimScore(label="vkey", model="m", cases=cases)


def _comparison(both: bool = True, same: bool = True) -> TransportComparison:
    return TransportComparison(
        ok=both and same, both_answered=both, same_served_model=same, direct_label="direct",
        gateway_label="vkey", direct_models=["m"], gateway_models=["m" if same else "other"],
        reason="" if both and same else ("not all answered" if not both else "models differ"),
    )


def _fim_outcome(score: FimScore, *, spend: str = "grew", suffix: int = 0,
                 comparison: TransportComparison | None = None) -> FimGateOutcome:
    run = FimRun(label="vkey", model="m", fim_family="qwen2.5-coder", results=[])
    return FimGateOutcome(
        fim_family="qwen2.5-coder", direct=run, vkey=run, comparison=comparison or _comparison(),
        score=score,
        spend=FimSpend(status=spend, before=0.0, after=0.1, expected=0.1, reported=0.1,
                       detail=f"spend {spend}"),
        wire=WireSummary(transports={"vkey": TransportWire(requests=20, paths=["/v1/completions"],
                                                           fields=[], with_suffix=suffix)}),
    )


FIM_CONFIG = FimGateConfig(min_functional_rate=0.5, max_mangled_rate=0.1)


@pytest.mark.parametrize(("functional", "mangled", "verdict"), [
    (10, 0, "pass"),   # functional exactly 50%
    (9, 0, "fail"),    # one short
    (11, 0, "pass"),
    (20, 2, "pass"),   # mangled exactly 10%
    (20, 3, "fail"),   # one over
    (9, 3, "fail"),
])
def test_fim_thresholds(functional: int, mangled: int, verdict: str) -> None:
    score = _fim_score(functional, mangled)
    assert judge_fim(score, 0.5, 0.1).verdict == verdict
    gate = judge_fim_gate(_fim_outcome(score), FIM_CONFIG)
    assert gate.verdict == verdict
    assert gate.functional_rate == functional / 20
    assert (gate.counts.passed, gate.counts.failed, gate.counts.errors, gate.counts.total) == (
        functional, 20 - functional, 0, 20)


def test_fim_bounds_at_zero_and_one() -> None:
    assert judge_fim(_fim_score(20), 1.0, 0.0).verdict == "pass"
    assert judge_fim(_fim_score(19), 1.0, 0.0).verdict == "fail"
    assert judge_fim(_fim_score(0, 20), 0.0, 1.0).verdict == "pass"
    assert judge_fim(_fim_score(20, 1), 0.0, 0.0).verdict == "fail"
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match="min_functional_rate must be within 0..1"):
            judge_fim(_fim_score(1), bad, 0.0)
        with pytest.raises(ValueError, match="max_mangled_rate must be within 0..1"):
            judge_fim(_fim_score(1), 0.0, bad)


def test_fim_unanswered_with_wrong_answers_is_an_error() -> None:
    score = _fim_score(functional=2, mangled=10, answered=19)  # fails every rule, one unanswered
    judged = judge_fim(score, 0.5, 0.1)
    assert judged.verdict == "error" and judged.reason == "1 of 20 requests unanswered"
    assert judged.status.startswith("FIM /v1/completions not answered")
    gate = judge_fim_gate(_fim_outcome(score, spend="flat", suffix=3), FIM_CONFIG)
    assert gate.verdict == "error"
    assert gate.counts.errors == 1 and gate.counts.failed == 17 and gate.counts.passed == 2


def test_fim_transport_that_did_not_answer_is_an_error_over_a_fail() -> None:
    score = _fim_score(functional=0)
    v = judge_fim(score, 0.5, 0.1, comparison=_comparison(both=False))
    assert v.verdict == "error" and v.reason == "not all answered"
    different = judge_fim(_fim_score(20), 0.5, 0.1, comparison=_comparison(same=False))
    assert different.verdict == "fail" and different.reason == "models differ"


def test_fim_gate_unreadable_spend_is_an_error_even_when_answers_fail() -> None:
    for functional in (20, 0):
        gate = judge_fim_gate(_fim_outcome(_fim_score(functional), spend="unreadable"), FIM_CONFIG)
        assert gate.verdict == "error" and gate.reason == "spend unreadable"


@pytest.mark.parametrize(("spend", "suffix", "verdict"), [
    ("grew", 0, "pass"), ("flat", 0, "fail"), ("no-cost", 0, "fail"), ("grew", 1, "fail"),
])
def test_fim_gate_spend_and_wire(spend: str, suffix: int, verdict: str) -> None:
    gate = judge_fim_gate(_fim_outcome(_fim_score(20), spend=spend, suffix=suffix), FIM_CONFIG)
    assert gate.verdict == verdict
    if suffix:
        assert "1 requests carried `suffix`" in gate.reason
    if verdict == "pass":
        assert gate.reason.endswith("; spend grew")


# ---- tool loops and the coder-agent gate: pass rate >= min_pass_rate ---------------------------

def _runs(passed: int, total: int, stream: bool = False, **extra) -> list[ScenarioResult]:
    return [ScenarioResult(scenario=f"s{i}", stream=stream, completed=True, passed=i < passed,
                           answer="ok" if i < passed else "no", reason=None if i < passed else "wrong answer: x",
                           **extra)
            for i in range(total)]


GOOD_AGENT_SPEND = AgentSpend(baseline_usd=0.0, key_spend_usd=0.01, response_cost_usd=0.01, responses=8)


@pytest.mark.parametrize(("passed", "total", "gate", "verdict"), [
    (3, 4, 0.75, "pass"), (2, 4, 0.75, "fail"), (4, 4, 1.0, "pass"), (3, 4, 1.0, "fail"),
    (0, 4, 0.0, "pass"), (7, 8, 0.875, "pass"), (6, 8, 0.875, "fail"),
])
def test_tool_loop_threshold(passed: int, total: int, gate: float, verdict: str) -> None:
    loops = judge_tool_loops(_runs(passed, total), gate)
    assert loops.verdict == verdict and loops.passed == passed and loops.pass_rate == passed / total
    agent = judge_coder_agent(_runs(passed, total), _runs(passed, total, stream=True),
                              min_pass_rate=gate, spend=GOOD_AGENT_SPEND)
    assert agent.verdict == verdict, agent.reason
    assert agent.pass_rate == passed / total
    assert (agent.counts.passed, agent.counts.failed, agent.counts.errors, agent.counts.total) == (
        passed, total - passed, 0, total)


def test_tool_loop_gate_must_be_a_rate() -> None:
    for ok in (0.0, 1.0):
        judge_tool_loops(_runs(1, 1), ok)
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="min_pass_rate must be within"):
            judge_tool_loops(_runs(1, 1), bad)


def test_tool_loop_platform_error_wins_over_failures_and_invalid_calls() -> None:
    runs = _runs(1, 4)
    runs[3] = runs[3].model_copy(update={"platform_error": "step 1: APIError: 503"})
    bad_call = ToolCallRecord(step=1, id="x", name="t", arguments="{", valid=False, problem="not JSON")
    runs[2] = runs[2].model_copy(update={"calls": [bad_call], "calls_valid": False})
    loops = judge_tool_loops(runs, 0.75)
    assert loops.verdict == "error" and loops.platform_errors == 1 and loops.invalid_calls == 1
    assert loops.reason.startswith("platform error in 1 of 4 runs: s3 (non-stream): step 1")
    agent = judge_coder_agent(runs, _runs(1, 4, stream=True), min_pass_rate=0.75,
                              spend=AgentSpend(baseline_usd=0.0, problem="spend 0 != 0.01"))
    assert agent.verdict == "error" and agent.counts.errors == 1
    assert agent.reason == "APIError: 503 (×1, first in s3 (non-stream))"


def test_tool_loop_one_invalid_call_fails_a_full_pass_rate() -> None:
    runs = _runs(4, 4)
    bad_call = ToolCallRecord(step=1, id="x", name="t", arguments="{", valid=False, problem="not JSON")
    runs[0] = runs[0].model_copy(update={"calls": [bad_call]})
    loops = judge_tool_loops(runs, 0.5)
    assert loops.verdict == "fail" and loops.invalid_calls == 1
    assert loops.reason == "1 invalid tool call(s), none allowed: s0 (non-stream): not JSON"


def test_tool_loop_nothing_run_is_an_error() -> None:
    assert judge_tool_loops([], 0.5).verdict == "error"
    agent = judge_coder_agent([], [], min_pass_rate=0.5, spend=GOOD_AGENT_SPEND)
    assert agent.verdict == "error" and agent.reason == "no scenario was run"


def test_agent_spend_problem_is_an_error_unless_the_answers_fail() -> None:
    bad_spend = AgentSpend(baseline_usd=0.0, problem="key spend 0 != 0.01")
    passing = judge_coder_agent(_runs(4, 4), _runs(4, 4, stream=True), min_pass_rate=0.75,
                                spend=bad_spend)
    assert passing.verdict == "error" and passing.reason == "key accounting: key spend 0 != 0.01"
    failing = judge_coder_agent(_runs(1, 4), _runs(1, 4, stream=True), min_pass_rate=0.75,
                                spend=bad_spend)
    assert failing.verdict == "fail"  # the answers already prove a FAIL
    assert failing.reason.endswith(". Also key accounting: key spend 0 != 0.01")


def test_agent_scenario_passes_only_when_both_modes_pass() -> None:
    plain, streamed = _runs(4, 4), _runs(4, 4, stream=True)
    streamed[0] = streamed[0].model_copy(update={"passed": False, "reason": "wrong answer: y"})
    agent = judge_coder_agent(plain, streamed, min_pass_rate=0.75, spend=GOOD_AGENT_SPEND)
    assert agent.counts.passed == 3 and agent.pass_rate == 0.75
    assert agent.verdict == "fail"  # on the rate gate, yet the modes disagree
    assert "streamed runs disagree" in agent.reason


# ---- latency: p95 strictly below its target; error rate at most the bound ----------------------

def _pct(p95: float) -> Percentiles:
    return Percentiles(count=10, mean=p95 / 2, p50=p95 / 2, p90=p95, p95=p95, p99=p95, max=p95)


def _summary(ttft: float | None = 100.0, itl: float | None = 10.0, e2e: float | None = 1000.0, *,
             errors: int = 0, requests: int = 20) -> LatencySummary:
    return LatencySummary(
        run_id="r", endpoint="e", model="m", prompt_set="p", profile="concurrent", concurrency=4,
        max_tokens=128, warmup=2, started_at="2026-12-04T00:00:00Z", duration_s=1.0,
        requests=requests, ok=requests - errors, errors=errors, error_rate=errors / requests,
        error_examples=["ReadTimeout: stalled"] if errors else [],
        ttft_ms=None if ttft is None else _pct(ttft), itl_ms=None if itl is None else _pct(itl),
        e2e_ms=None if e2e is None else _pct(e2e), output_tokens_total=100,
        requests_without_usage=0, output_tokens_per_s=1.0, requests_per_s=1.0,
    )


TARGETS = {"ttft_p95_ms": 250.0, "itl_p95_ms": 20.0, "e2e_p95_ms": 1500.0}


@pytest.mark.parametrize(("metric", "value", "verdict"), [
    ("ttft", 250.0, "fail"),    # exactly on the target: "p95 < 250" is not met
    ("ttft", 249.999, "pass"),
    ("ttft", 250.001, "fail"),
    ("itl", 20.0, "fail"),
    ("itl", 19.99, "pass"),
    ("e2e", 1500.0, "fail"),
    ("e2e", 1499.9, "pass"),
])
def test_latency_target_is_strict(metric: str, value: float, verdict: str) -> None:
    v = judge_latency(_summary(**{metric: value}), TARGETS, 0.05)
    assert v.verdict == verdict, v.reason
    check = next(c for c in v.checks if c.metric == metric)
    assert check.passed is (verdict == "pass")
    if verdict == "fail":
        assert v.reason.startswith(f"FAIL ({metric.upper()} over target)")
        assert f"{metric.upper()} p95 {value:g} ms >= target" in v.reason


@pytest.mark.parametrize(("errors", "bound", "verdict"), [
    (1, 0.05, "pass"),    # 1/20 = 5%: exactly on the bound is allowed
    (2, 0.05, "error"),
    (0, 0.0, "pass"),
    (1, 0.0, "error"),
    (20, 1.0, "pass"),    # a bound of 100% never errors on the rate
])
def test_latency_error_rate_bound(errors: int, bound: float, verdict: str) -> None:
    v = judge_latency(_summary(errors=errors), TARGETS, bound)
    assert v.verdict == verdict, v.reason
    assert v.error_rate == errors / 20 and v.max_error_rate == bound


def test_latency_too_many_errors_wins_over_missed_targets() -> None:
    v = judge_latency(_summary(ttft=900.0, errors=5), TARGETS, 0.05)
    assert v.verdict == "error"
    assert v.reason.startswith("ERROR: error rate 25.0% (5/20), bound 5.0% exceeds the bound; "
                               "first error: ReadTimeout: stalled")


def test_latency_unmeasured_metric_wins_over_missed_targets() -> None:
    v = judge_latency(_summary(ttft=900.0, itl=None), TARGETS, 0.05)
    assert v.verdict == "error" and v.reason.startswith("ERROR: no samples for ITL")
    assert "TTFT p95 900 ms >= target 250 ms" in v.reason


def test_latency_bound_must_be_a_rate() -> None:
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match="max_error_rate must be within"):
            judge_latency(_summary(), TARGETS, bad)


def test_latency_status_fragment() -> None:
    summary = _summary(ttft=41.25, itl=8.1, e2e=1064.0)
    v = judge_latency(summary, TARGETS, 0.05)
    assert status_summary(v, summary, "catalog SLO (x)") == (
        "Latency p95/target TTFT 41.2/250 ms, ITL 8.1/20 ms, E2E 1064/1500 ms; c=4, ≤128 tokens; "
        "vs catalog SLO (x)")
    on_bound = _summary(errors=1)
    assert status_summary(judge_latency(on_bound, TARGETS, 0.05), on_bound, "t").startswith(
        "Latency p95/target TTFT 100/250 ms")
    over = _summary(errors=2)
    assert status_summary(judge_latency(over, TARGETS, 0.05), over, "t").startswith(
        "Latency not measured: error rate 10% (2/20) > 5% bound")


# ---- the shared check result ------------------------------------------------------------------

def test_check_result_passed_only_on_pass() -> None:
    assert [CheckResult(name="x", outcome=o, reason="").passed for o in ("pass", "fail", "error")] == [
        True, False, False]
