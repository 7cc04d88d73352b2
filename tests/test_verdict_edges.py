"""Every judge at its thresholds and with mixed outcomes.

For each rule: a case exactly on the threshold (passes where the rule is `>=`/`<=`, fails where
it is a strict `<`), one just past it on either side, and mixes of failed and errored checks,
where ERROR wins: a run with a platform error proves nothing either way. The judges are called
with plain values, as the gates call them; nothing here talks to a server.
"""

from __future__ import annotations

import pytest

from deploy.gate_configs import FimGate
from deploy.ledger import GateRecord
from evals.checks import CheckResult
from evals.embeddings import EmbeddingCheck, judge_embeddings
from evals.fim import FimCaseScore, FimRun, FimScore, TransportComparison, judge_fim
from evals.latency import LatencySummary, Percentiles, judge_latency
from evals.tool_loop import ScenarioResult, ToolCallRecord, judge_tool_loops
from evals.usage import UsageCheck
from gates.kinds.embeddings.judge import judge_gate as judge_embeddings_gate
from gates.kinds.fim.gate import FimGateOutcome
from gates.kinds.fim.gate import SpendCheck as FimSpend
from gates.kinds.fim.judge import judge_gate as judge_fim_gate
from gates.kinds.fim.wire import TransportWire, WireSummary
from gates.kinds.humaneval.judge import judge_humaneval
from gates.kinds.latency.report import status_summary
from gates.kinds.tool_loop.budget import SpendCheck as AgentSpend
from gates.kinds.tool_loop.judge import judge_coder_agent
from gates.kinds.usage.judge import judge_usage

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
    assert v.summary == "HumanEval 14/20 = 70% [95% CI 48-85%] (≥70% gate)"


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


FIM_CONFIG = FimGate(min_functional_rate=0.5, max_mangled_rate=0.1)


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


# ---- latency percentiles: exact values on known inputs --------------------------------------------

def test_p95_of_0_to_100_is_95_exactly() -> None:
    from evals.latency import percentile_values

    values = [float(v) for v in range(101)]
    assert percentile_values(values) == {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
    # Order of the input does not matter.
    assert percentile_values(list(reversed(values)))["p95"] == 95.0


def test_percentiles_interpolate_between_ranks() -> None:
    from evals.latency import percentile_values

    assert percentile_values([10.0, 20.0]) == pytest.approx(
        {"p50": 15.0, "p90": 19.0, "p95": 19.5, "p99": 19.9})
    # 21 values 0, 10, ..., 200: p95 at rank 19 exactly, p99 at 19.8.
    points = percentile_values([10.0 * i for i in range(21)])
    assert points["p95"] == pytest.approx(190.0) and points["p99"] == pytest.approx(198.0)
    assert percentile_values([7]) == {"p50": 7.0, "p90": 7.0, "p95": 7.0, "p99": 7.0}


def test_percentiles_summary_rounds_to_microseconds() -> None:
    from evals.latency import percentiles

    stats = percentiles([1.00049, 2.0, 3.0])
    assert stats is not None
    assert (stats.count, stats.mean, stats.max, stats.p50) == (3, 2.0, 3.0, 2.0)
    assert percentiles([1.0004])
    assert percentiles([1.0004]).p95 == 1.0 and percentiles([1.0006]).max == 1.001


def _row(i: int, *, error: str | None = None, ttft: float | None = 10.0, itl=(1.0, 2.0),
         e2e: float | None = 100.0, tokens: int | None = 5):
    from evals.latency import RequestRow

    return RequestRow(run_id="r", index=i, endpoint="e", concurrency=1, prompt_id=f"p{i}",
                      start_ms=0.0, ttft_ms=None if error else ttft, itl_ms=[] if error else list(itl),
                      e2e_ms=None if error else e2e, output_tokens=None if error else tokens,
                      error=error)


def _summarize(rows, duration_s: float = 2.0):
    from evals.latency import summarize

    return summarize(rows, run_id="r", endpoint="e", model="m", prompt_set="p", profile="sequential",
                     concurrency=1, max_tokens=16, warmup=0, started_at="t",
                     duration_s=duration_s).summary


def test_summary_counts_errors_and_pools_only_good_rows() -> None:
    rows = [_row(0, ttft=10.0, e2e=100.0), _row(1, ttft=30.0, e2e=300.0, itl=(5.0,)),
            _row(2, error="ReadTimeout: a"), _row(3, error="ReadTimeout: a"),
            _row(4, error="HTTP 500: b"), _row(5, error="HTTP 502: c"), _row(6, error="HTTP 503: d"),
            _row(7, tokens=None)]
    s = _summarize(rows)
    assert (s.requests, s.ok, s.errors) == (8, 3, 5)
    assert s.error_rate == 5 / 8
    assert s.error_examples == ["ReadTimeout: a", "HTTP 500: b", "HTTP 502: c"]  # 3 distinct
    assert s.ttft_ms.count == 3 and s.ttft_ms.max == 30.0 and s.ttft_ms.p50 == 10.0
    assert s.itl_ms.count == 5  # every gap of every good request
    assert s.e2e_ms.max == 300.0
    assert s.output_tokens_total == 10 and s.requests_without_usage == 1
    assert s.output_tokens_per_s == 5.0 and s.requests_per_s == 1.5


def test_summary_of_no_rows_is_all_errors() -> None:
    s = _summarize([], duration_s=0.0)
    assert s.error_rate == 1.0 and s.ttft_ms is None and s.output_tokens_per_s == 0.0


def test_derive_slo_bounds() -> None:
    from evals.latency import derive_slo, round_up_2sig

    assert round_up_2sig(62.0) == 62.0 and round_up_2sig(61.95) == 62.0
    assert round_up_2sig(62.000000001) == 62.0 and round_up_2sig(1564.5) == 1600.0
    assert round_up_2sig(0.4512) == 0.46 and round_up_2sig(99.01) == 100.0
    with pytest.raises(ValueError):
        round_up_2sig(0.0)
    on_bound = _summary(errors=1)  # 5% errors
    assert derive_slo(on_bound, 1.0, max_error_rate=0.05).ttft_p95_ms == 100.0  # headroom 1 allowed
    with pytest.raises(ValueError, match="error rate"):
        derive_slo(_summary(errors=2), 1.5, max_error_rate=0.05)
    with pytest.raises(ValueError, match="headroom must be >= 1"):
        derive_slo(on_bound, 0.99)
    with pytest.raises(ValueError, match="no ITL measurements"):
        derive_slo(_summary(itl=None), 1.5)


# ---- code extraction edge cases ---------------------------------------------------------------

def test_extraction_prefers_the_python_block_defining_the_entry_point() -> None:
    from evals.code_extraction import extract_code

    reply = ("```js\nfunction f() {}\n```\n```python\ndef helper():\n    pass\n```\n"
             "```python\ndef f():\n    return 1\n```\n```text\ndef f():\n    return 2\n```")
    assert extract_code(reply, "f") == "def f():\n    return 1"
    assert extract_code(reply, None) == "def helper():\n    pass"  # the first python block
    assert extract_code(reply, "missing") == "def helper():\n    pass"
    only_other = "```text\nnot code\n```\n```js\ndef f():\n    return 3\n```"
    assert extract_code(only_other, "f") == "def f():\n    return 3"  # defines it, whatever the tag
    assert extract_code(only_other, "g") == "not code"  # else the first block


def test_extraction_fence_shapes() -> None:
    from evals.code_extraction import extract_code, fenced_blocks

    assert fenced_blocks("~~~py3 extra words\nx = 1\n~~~\n") == [("py3", "x = 1\n")]
    assert fenced_blocks("  ```Python\nx = 2\n  ```\n") == [("python", "x = 2\n")]
    assert extract_code("```python\nx = 3\n```  \nthen prose") == "x = 3"
    assert extract_code("no code here at all.") == "no code here at all."


def test_think_is_stripped_case_insensitively() -> None:
    from evals.code_extraction import strip_think

    assert strip_think("<THINK>a</Think>x = 1") == "x = 1"
    assert strip_think("a</think>b</THINK>c") == "c"  # everything up to the last stray close
    assert strip_think("x = 1\n<think>never closed") == "x = 1\n"
    assert strip_think("plain") == "plain"


def test_unfenced_reply_loses_leading_and_trailing_prose() -> None:
    from evals.code_extraction import extract_code

    reply = "Here you go:\n\ndef f(x):\n    return x\n\nThis returns x.\nHope it helps!"
    assert extract_code(reply, "f") == "def f(x):\n    return x"
    decorated = "Sure.\n@cache\ndef f(x):\n    return x\nDone."
    assert extract_code(decorated) == "@cache\ndef f(x):\n    return x"
    asynchronous = "Sure.\nasync def f(x):\n    return x\nDone."
    assert extract_code(asynchronous) == "async def f(x):\n    return x"


def test_defines_only_top_level_functions() -> None:
    from evals.code_extraction import defines

    assert defines("async def f():\n    pass", "f")
    assert not defines("def g():\n    def f():\n        pass", "f")
    assert not defines("class f:\n    pass", "f")
    assert not defines("def f(:", "f")
    assert not defines("f = 1", "f")


def test_completion_keeps_definitions_and_drops_demo_code() -> None:
    from evals.code_extraction import humaneval_completion

    prompt = "def f(x):\n    \"\"\"doc\"\"\"\n"
    code = ("import math\nfrom os import path\nLIMIT = 3\nN: int = 2\n\n@staticmethod\n"
            "def f(x):\n    return x\n\nclass C:\n    pass\n\nprint(f(1))\nassert f(1) == 1\n"
            "if __name__ == '__main__':\n    f(2)\n")
    completion = humaneval_completion(prompt, "f", code)
    assert completion.startswith("    pass  # replaced by the definition below\n\n\n")
    kept = completion.split("\n\n\n", 1)[1]
    assert kept == ("import math\n\nfrom os import path\n\nLIMIT = 3\n\nN: int = 2\n\n"
                    "@staticmethod\ndef f(x):\n    return x\n\nclass C:\n    pass\n")


def test_completion_body_takes_the_prompts_indentation() -> None:
    from evals.code_extraction import humaneval_completion

    two = "def f(x):\n  \"\"\"doc\"\"\"\n"
    assert humaneval_completion(two, "f", "return x") == "  return x\n"
    flush = "def f(x):\n"  # last line not indented: four spaces
    assert humaneval_completion(flush, "g", "y = 1") == "    y = 1\n"
    # Nothing that compiles: the dedented, indented body is returned for the sandbox to fail.
    assert humaneval_completion(two, "f", "return (") == "  return (\n"


# ---- budget binding: at most `allowed_over_budget` answers past the budget, refusal types --------
# The gateway's answers are scripted at the call boundary (evals.budget's `embeddings`), so each
# sequence of answers and refusals is exact. Costs are powers of two: float sums stay exact.

PRICE = 2.0 ** -10
TOKENS = 16
COST = TOKENS * PRICE  # 2**-6 per request


def _answer(cost_header: float | None = COST, tokens: int = TOKENS):
    from types import SimpleNamespace

    from evals.model_calls import CallOutcome

    headers = {} if cost_header is None else {"x-litellm-response-cost": repr(cost_header)}
    return CallOutcome(ok=True, status=200, headers=headers,
                       value=SimpleNamespace(usage=SimpleNamespace(prompt_tokens=tokens,
                                                                   completion_tokens=0)))


def _refusal(status: int | None = 429, error_type: str | None = "budget_exceeded"):
    from evals.model_calls import CallOutcome

    kind = "http_5xx" if status and status >= 500 else "http_4xx" if status else "connection"
    return CallOutcome(ok=False, status=status, error_type=error_type, error_kind=kind,
                       message=f"refused {status}")


def _bind(monkeypatch, script, *, budget_requests: int = 3, spend=None, **options):
    import evals.budget as budget

    replies = iter(script)
    monkeypatch.setattr(budget, "embeddings", lambda *a, **k: next(replies))
    answered_cost = sum(COST for r in script if r.ok)
    reader = spend if spend is not None else (lambda: answered_cost)
    return budget.run_budget_binding(
        object(), "embeddings", max_budget=budget_requests * COST, input_cost_per_token=PRICE,
        read_spend=reader, spend_timeout_s=0.05, spend_interval_s=0.0, **options)


def test_budget_refused_right_after_the_crossing_request_passes(monkeypatch) -> None:
    result = _bind(monkeypatch, [_answer()] * 3 + [_refusal()])
    assert result.outcome == "pass", result.reason
    assert result.over_budget_answers == 1 and result.answered == 3 and result.refusal_status == 429
    assert result.expected_spend == 3 * COST


def test_budget_refused_when_the_next_request_would_not_fit_passes(monkeypatch) -> None:
    # Newer LiteLLM refuses once spend + the request's cost would pass the budget: exactly on it.
    result = _bind(monkeypatch, [_answer()] * 2 + [_refusal(400)])
    assert result.outcome == "pass", result.reason
    assert result.over_budget_answers == 0


def test_budget_refused_with_room_for_a_whole_request_fails(monkeypatch) -> None:
    result = _bind(monkeypatch, [_answer()] + [_refusal()])
    assert result.outcome == "fail"
    assert "still had room for the request" in result.reason


@pytest.mark.parametrize(("allowed", "verdict"), [(1, "fail"), (2, "pass")])
def test_budget_over_answers_exactly_at_the_allowance(monkeypatch, allowed: int, verdict: str) -> None:
    result = _bind(monkeypatch, [_answer()] * 4 + [_refusal()], allowed_over_budget=allowed)
    assert result.over_budget_answers == 2
    assert result.outcome == verdict, result.reason
    if verdict == "fail":
        assert "2 requests completed at or past the budget before the refusal (at most 1" in result.reason


def test_budget_never_refusing_stops_after_allowance_plus_three(monkeypatch) -> None:
    result = _bind(monkeypatch, [_answer()] * 50, allowed_over_budget=1)
    assert result.outcome == "fail" and result.answered == 6 and result.over_budget_answers == 4
    assert result.reason.startswith("never refused: 6 requests answered")


def test_budget_never_refusing_within_max_requests(monkeypatch) -> None:
    result = _bind(monkeypatch, [_answer()] * 2, budget_requests=10, max_requests=2)
    assert result.outcome == "fail" and result.answered == 2
    assert "never refused: 2 requests answered" in result.reason and "at or past" not in result.reason


# A refusal is LiteLLM's `budget_exceeded` type, whatever the status (CONTRACTS §1: 400, 429,
# 422 by default since v1.104.0, settable): the type alone decides, the status is recorded.
@pytest.mark.parametrize(("status", "error_type", "verdict"), [
    (400, "budget_exceeded", "pass"), (429, "budget_exceeded", "pass"),
    (422, "budget_exceeded", "pass"), (403, "budget_exceeded", "pass"),
    (429, "rate_limit_exceeded", "fail"), (400, None, "fail"), (422, None, "fail"),
])
def test_budget_refusal_is_known_by_its_type_alone(monkeypatch, status, error_type,
                                                    verdict) -> None:
    result = _bind(monkeypatch, [_answer()] * 3 + [_refusal(status, error_type)])
    assert result.outcome == verdict, result.reason


@pytest.mark.parametrize("status", [500, 503, None])
def test_budget_platform_error_wins_over_failures(monkeypatch, status) -> None:
    # Two answers past the budget (a FAIL by themselves), then no answer at all: ERROR.
    result = _bind(monkeypatch, [_answer()] * 4 + [_refusal(status, None)])
    assert result.outcome == "error"
    assert result.reported_spend is None  # the spend is not read after a platform error


def test_budget_spend_read_failure_is_an_error_even_with_a_bad_cost(monkeypatch) -> None:
    def broken() -> float:
        raise ConnectionError("admin API down")

    result = _bind(monkeypatch, [_answer(cost_header=COST * 2)] * 3 + [_refusal()], spend=broken)
    assert result.outcome == "error"
    assert "could not read the key's spend: ConnectionError: admin API down" in result.reason
    assert "x-litellm-response-cost" in result.reason  # the failure is still named


@pytest.mark.parametrize(("factor", "verdict"), [
    (1.0, "pass"), (1 + 5e-7, "pass"), (1 + 5e-6, "fail"), (1 - 5e-6, "fail"),
])
def test_budget_cost_header_and_spend_tolerance(monkeypatch, factor: float, verdict: str) -> None:
    header = _bind(monkeypatch, [_answer(cost_header=COST * factor)] * 3 + [_refusal()])
    assert header.outcome == verdict, header.reason
    spend = _bind(monkeypatch, [_answer()] * 3 + [_refusal()], spend=lambda: 3 * COST * factor)
    assert spend.outcome == verdict, spend.reason


def test_budget_missing_cost_header_is_not_a_failure(monkeypatch) -> None:
    assert _bind(monkeypatch, [_answer(cost_header=None)] * 3 + [_refusal()]).outcome == "pass"


def test_budget_free_or_unmetered_requests_fail_at_once(monkeypatch) -> None:
    unmetered = _bind(monkeypatch, [_answer(tokens=0)] * 5)
    assert unmetered.outcome == "fail" and unmetered.answered == 1
    assert "without usage.prompt_tokens" in unmetered.reason
    import evals.budget as budget

    monkeypatch.setattr(budget, "embeddings", lambda *a, **k: _answer())
    free = budget.run_budget_binding(object(), "e", max_budget=COST, input_cost_per_token=0.0,
                                     read_spend=lambda: 0.0, spend_timeout_s=0.05)
    assert free.outcome == "fail" and "costs 0 at the given prices" in free.reason


def test_budget_arguments_are_checked(monkeypatch) -> None:
    import evals.budget as budget

    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="max_budget must be > 0"):
            budget.run_budget_binding(object(), "e", max_budget=bad, input_cost_per_token=PRICE,
                                      read_spend=lambda: 0.0)
    with pytest.raises(ValueError, match="prices must be >= 0"):
        budget.run_budget_binding(object(), "e", max_budget=1.0, input_cost_per_token=-PRICE,
                                  read_spend=lambda: 0.0)
    with pytest.raises(ValueError, match="prices must be >= 0"):
        budget.run_budget_binding(object(), "e", max_budget=1.0, input_cost_per_token=PRICE,
                                  output_cost_per_token=-1.0, read_spend=lambda: 0.0)


def test_budget_spend_read_waits_for_the_batch_write(monkeypatch) -> None:
    reads = iter([0.0, COST, 3 * COST])
    result = _bind(monkeypatch, [_answer()] * 3 + [_refusal()], spend=lambda: next(reads))
    assert result.outcome == "pass" and result.reported_spend == 3 * COST


# ---- usage checks at their boundaries ------------------------------------------------------------

def _reply(probe: str = "short", *, ok: bool = True, usage: dict | None = None, **body):
    from evals.usage import ProbeReply

    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12} if usage is None else usage
    return ProbeReply(probe=probe, ok=ok, error="" if ok else "timeout", body={"usage": usage, **body})


def test_usage_totals_boundaries() -> None:
    from evals.usage import usage_problems

    assert usage_problems({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}) == []
    assert usage_problems({"prompt_tokens": -1, "completion_tokens": 1, "total_tokens": 0}) == [
        "usage.prompt_tokens: missing or not a non-negative integer"]
    assert usage_problems({"prompt_tokens": True, "completion_tokens": 0, "total_tokens": 1})
    assert usage_problems({"prompt_tokens": 1.0, "completion_tokens": 0, "total_tokens": 1})
    assert usage_problems({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 3}) == [
        "usage.total_tokens 3 != prompt_tokens 1 + completion_tokens 1"]
    assert usage_problems(None) == ["no usage object"]


@pytest.mark.parametrize(("convention", "prompt", "read", "write", "tolerance", "outcome"), [
    ("agentgateway", 10, 90, 0, 0, "pass"),
    ("agentgateway", 10, 80, 10, 0, "pass"),
    ("agentgateway", 11, 90, 0, 0, "fail"),
    ("agentgateway", 11, 90, 0, 1, "pass"),    # off by exactly the tolerance
    ("agentgateway", 9, 90, 0, 1, "pass"),
    ("agentgateway", 12, 90, 0, 1, "fail"),
    ("litellm", 100, 90, 0, 0, "pass"),
    ("litellm", 101, 90, 0, 1, "pass"),
    ("litellm", 99, 90, 0, 1, "pass"),
    ("litellm", 102, 90, 0, 1, "fail"),
    ("litellm", 100, 100, 0, 0, "pass"),       # every prompt token read from the cache
    ("litellm", 10, 90, 0, 90, "fail"),        # reads above the prompt, whatever the tolerance
    ("litellm", 100, 0, 0, 0, "fail"),         # no cache activity: nothing verified
    ("agentgateway", 100, 0, 0, 0, "fail"),
])
def test_cache_convention_boundaries(convention, prompt, read, write, tolerance, outcome) -> None:
    from evals.usage import check_cache_convention

    baseline = _reply("cache_baseline", usage={"prompt_tokens": 100, "completion_tokens": 1,
                                               "total_tokens": 101})
    cached = _reply("cache_read", usage={
        "prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write}})
    check = check_cache_convention(baseline, [cached], convention, tolerance)
    assert check.outcome == outcome, check.reason


def test_cache_convention_anthropic_field_names_count() -> None:
    from evals.usage import cache_fields, check_cache_convention

    usage = {"prompt_tokens": 10, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 30}
    assert cache_fields(usage) == (60, 30)
    baseline = _reply("b", usage={"prompt_tokens": 100, "completion_tokens": 0, "total_tokens": 100})
    cached = _reply("c", usage={**usage, "completion_tokens": 0, "total_tokens": 10})
    assert check_cache_convention(baseline, [cached], "agentgateway").outcome == "pass"


def test_cache_convention_needs_a_baseline_and_answers() -> None:
    from evals.usage import check_cache_convention

    empty = _reply("b", usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    good = _reply("c", usage={"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10,
                              "prompt_tokens_details": {"cached_tokens": 90}})
    assert check_cache_convention(empty, [good], "agentgateway").outcome == "fail"
    # One cached call unanswered, another wrong: ERROR.
    lost = _reply("c2", ok=False)
    wrong = _reply("c3", usage={"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1})
    baseline = _reply("b", usage={"prompt_tokens": 100, "completion_tokens": 0, "total_tokens": 100})
    check = check_cache_convention(baseline, [wrong, lost], "litellm")
    assert check.outcome == "error" and check.reason == "no answer: c2: timeout"


def test_finish_reason_max_tokens_boundary() -> None:
    from evals.usage import check_finish_reason

    def reply(completion: int):
        return _reply("length", usage={"prompt_tokens": 5, "completion_tokens": completion,
                                       "total_tokens": 5 + completion},
                      choices=[{"index": 0, "finish_reason": "length",
                                "message": {"role": "assistant", "content": "One"}}])

    assert check_finish_reason("len", reply(1), "length", max_tokens=1).outcome == "pass"
    over = check_finish_reason("len", reply(2), "length", max_tokens=1)
    assert over.outcome == "fail" and over.reason == "completion_tokens 2 exceed max_tokens 1"
    assert check_finish_reason("len", reply(1), "stop").outcome == "fail"
    assert check_finish_reason("len", _reply(ok=False), "stop").outcome == "error"


@pytest.mark.parametrize(("calls", "problem"), [
    ([{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}], None),
    ([], "no tool_calls in the message"),
    ([{"function": {"name": "other", "arguments": "{}"}}], "tool call names 'other'"),
    ([{"function": {"name": "get_weather", "arguments": "[1]"}}], "arguments are not a JSON object"),
    ([{"function": {"name": "get_weather", "arguments": "{"}}], "arguments are not JSON"),
])
def test_finish_reason_tool_call_shape(calls, problem) -> None:
    from evals.usage import check_finish_reason

    reply = _reply("tool", choices=[{"index": 0, "finish_reason": "tool_calls",
                                     "message": {"role": "assistant", "content": None,
                                                 "tool_calls": calls}}])
    check = check_finish_reason("tc", reply, "tool_calls", tool="get_weather")
    assert check.outcome == ("pass" if problem is None else "fail")
    if problem:
        assert problem in check.reason


@pytest.mark.parametrize(("header", "outcome"), [
    (repr(10 * 1e-6 + 2 * 2e-6), "pass"),
    (repr((10 * 1e-6 + 2 * 2e-6) * (1 + 5e-7)), "pass"),
    (repr((10 * 1e-6 + 2 * 2e-6) * (1 + 5e-6)), "fail"),
    ("None", "fail"), ("", "fail"), ("abc", "fail"), (None, "fail"),
])
def test_response_cost_tolerance(header, outcome) -> None:
    from evals.usage import Prices, check_response_cost

    reply = _reply()
    if header is not None:
        reply.headers["x-litellm-response-cost"] = header
    prices = Prices(input_per_token=1e-6, output_per_token=2e-6)
    assert check_response_cost([reply], prices).outcome == outcome


def test_spend_delta_tolerance() -> None:
    from evals.usage import Prices, check_spend_delta, expected_spend

    prices = Prices(input_per_token=1e-6, output_per_token=2e-6)
    replies = [_reply(), _reply("lost", ok=False)]
    expected = expected_spend(replies, prices)
    assert expected == pytest.approx(14e-6)  # the unanswered call costs nothing
    assert check_spend_delta(expected, expected).outcome == "pass"
    assert check_spend_delta(expected * (1 + 5e-7), expected).outcome == "pass"
    assert check_spend_delta(expected * (1 + 5e-6), expected).outcome == "fail"
    assert check_spend_delta(0.0, expected).outcome == "fail"


def test_usage_checks_error_when_any_probe_went_unanswered() -> None:
    from evals.usage import check_openai_shape, check_usage_totals

    bad_usage = _reply("short", usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 9})
    lost = _reply("tool", ok=False)
    totals = check_usage_totals([bad_usage, lost])
    assert totals.outcome == "error" and totals.reason == "no answer: tool: timeout"
    assert check_usage_totals([bad_usage]).outcome == "fail"
    assert check_openai_shape([bad_usage, lost]).outcome == "error"


def test_stream_usage_chunk_rules() -> None:
    from evals.usage import ProbeReply, check_stream_usage

    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    chunks = [{"choices": [{"index": 0, "delta": {"content": "OK"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
              {"choices": [], "usage": usage}]
    good = ProbeReply(probe="stream", ok=True, chunks=chunks, done=True)
    assert check_stream_usage(good).outcome == "pass"
    assert check_stream_usage(good.model_copy(update={"done": False})).outcome == "fail"
    no_usage = good.model_copy(update={"chunks": chunks[:2]})
    assert check_stream_usage(no_usage).outcome == "fail"
    twice = good.model_copy(update={"chunks": [chunks[1], *chunks]})
    assert "finish reasons in the stream ['stop', 'stop']" in check_stream_usage(twice).reason
    empty = good.model_copy(update={"chunks": []})
    assert check_stream_usage(empty).reason == "the stream carried no chunks"
    lost = ProbeReply(probe="stream", ok=False, error="mid-stream error")
    assert check_stream_usage(lost).outcome == "error"


def test_no_provider_key_is_checked_in_answered_replies() -> None:
    from evals.usage import check_no_provider_key

    leaked = _reply()
    leaked.raw = '{"x": "sk-ant-abcdefgh12345"}'
    assert check_no_provider_key([leaked]).outcome == "fail"
    header = _reply()
    header.headers["x-api-key"] = "anything"
    assert check_no_provider_key([header]).outcome == "fail"
    assert check_no_provider_key([_reply()], secrets=["s3cr3t"]).outcome == "pass"
    short = _reply()
    short.raw = "sk-ant-abc"  # too short to be a key
    assert check_no_provider_key([short]).outcome == "pass"


# ---- embeddings checks at their thresholds ------------------------------------------------------
# The server is scripted at the call boundary (evals.embeddings' `embeddings`): `vector_of(text,
# batched)` gives each input's vector, so every cosine and norm below is exact.

def _serve_vectors(monkeypatch, vector_of, *, encode=None, prompt_tokens: int = 7, outcome=None):
    import base64
    import struct
    from types import SimpleNamespace

    import evals.embeddings as emb
    from evals.model_calls import CallOutcome

    def fake(client, model, inputs, *, policy=None, encoding_format="float"):
        if outcome is not None:
            return outcome(inputs)
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        vectors = [vector_of(t, len(texts) > 1) for t in texts]
        if encoding_format == "base64":
            vectors = [(encode or (lambda v: base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()))(v)
                       for v in vectors]
        data = [SimpleNamespace(index=i, embedding=v) for i, v in reversed(list(enumerate(vectors)))]
        return CallOutcome(ok=True, status=200,
                           value=SimpleNamespace(data=data, usage=SimpleNamespace(prompt_tokens=prompt_tokens)))

    monkeypatch.setattr(emb, "embeddings", fake)
    return emb


@pytest.mark.parametrize(("scale", "tolerance", "outcome"), [
    (1.0, 0.0, "pass"), (1.5, 0.5, "pass"), (1.5, 0.49, "fail"), (0.5, 0.5, "pass"), (0.5, 0.25, "fail"),
])
def test_normalization_tolerance_is_inclusive(monkeypatch, scale, tolerance, outcome) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [scale, 0.0])
    assert emb.check_normalized(object(), "m", tolerance).outcome == outcome


def test_dimension_must_be_the_one_expected(monkeypatch) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0, 0.0, 0.0])
    assert emb.check_dimension(object(), "m", 3).outcome == "pass"
    assert emb.check_dimension(object(), "m", 4).outcome == "fail"
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0] * (3 if t == "x" else 4))
    mixed = emb.check_dimension(object(), "m", 4)
    assert mixed.outcome == "fail" and mixed.reason == "dimension 3, 4 != expected 4"


@pytest.mark.parametrize(("margin", "outcome"), [(0.0, "pass"), (1e-9, "fail"), (-1e-9, "pass")])
def test_batch_cosine_minimum_is_inclusive(monkeypatch, margin: float, outcome: str) -> None:
    # Alone [1, 0]; in a batch [1, 1]: cosine 1/sqrt(2), computed here as the check does.
    emb = _serve_vectors(monkeypatch, lambda t, batched: [1.0, 1.0] if batched else [1.0, 0.0])
    on_it = emb.cosine([1.0, 0.0], [1.0, 1.0])
    assert on_it == pytest.approx(2 ** -0.5)
    check = emb.check_batch_consistency(object(), "m", on_it + margin)
    assert check.outcome == outcome, check.reason


def test_batch_vector_of_another_size_fails(monkeypatch) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, batched: [1.0, 0.0, 0.0] if batched else [1.0, 0.0])
    check = emb.check_batch_consistency(object(), "m", 0.0)
    assert check.outcome == "fail" and check.reason == "alone 2 dims, in a batch 3"


def _triplets(n: int):
    from evals.embeddings import Triplet

    return [Triplet(id=f"t{i}", domain="general", anchor=f"a{i}", paraphrase=f"p{i}", unrelated=f"u{i}")
            for i in range(n)]


@pytest.mark.parametrize(("misses", "min_rate", "outcome"), [
    (1, 0.9, "pass"), (2, 0.9, "fail"), (0, 1.0, "pass"), (1, 1.0, "fail"), (10, 0.0, "pass"),
])
def test_triplet_rate_is_inclusive(monkeypatch, misses, min_rate, outcome) -> None:
    def vector(text: str, _batched: bool) -> list[float]:
        kind, i = text[0], int(text[1:])
        if kind == "a":
            return [1.0, 0.0]
        near = [1.0, 0.1]
        return (near if kind == "p" else [0.0, 1.0]) if i >= misses else ([0.0, 1.0] if kind == "p" else near)

    emb = _serve_vectors(monkeypatch, vector)
    check = emb.check_triplets(object(), "m", _triplets(10), min_rate, batch_size=4)
    assert check.outcome == outcome, check.reason
    assert check.details["passed"] == 10 - misses
    assert check.details["missed"] == [f"t{i}" for i in range(misses)]


def test_a_tie_between_paraphrase_and_unrelated_is_a_miss(monkeypatch) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0, 0.0])
    check = emb.check_triplets(object(), "m", _triplets(2), 0.5)
    assert check.outcome == "fail" and check.details["missed"] == ["t0", "t1"]
    with pytest.raises(ValueError, match="at least one triplet"):
        emb.check_triplets(object(), "m", [], 0.5)


@pytest.mark.parametrize(("encoded", "limit", "outcome"), [
    ([0.5, 0.25], 0.0, "pass"), ([0.5, 0.5], 0.25, "pass"), ([0.5, 0.5], 0.2, "fail"),
])
def test_base64_difference_limit_is_inclusive(monkeypatch, encoded, limit, outcome) -> None:
    import base64
    import struct

    emb = _serve_vectors(monkeypatch, lambda t, b: [0.5, 0.25],
                         encode=lambda v: base64.b64encode(struct.pack("<2f", *encoded)).decode())
    assert emb.check_base64(object(), "m", limit).outcome == outcome


@pytest.mark.parametrize(("encode", "words"), [
    (lambda v: v, "base64 requested, got list"),
    (lambda v: "!!not base64!!", "undecodable base64"),
    (lambda v: "AAAAAA==", "base64 gives 1 values, float 2"),
])
def test_base64_that_is_not_the_floats_fails(monkeypatch, encode, words) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [0.5, 0.25], encode=encode)
    check = emb.check_base64(object(), "m")
    assert check.outcome == "fail" and words in check.reason


@pytest.mark.parametrize(("tokens", "outcome"), [(1, "pass"), (0, "fail")])
def test_embedding_usage_needs_positive_tokens(monkeypatch, tokens, outcome) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0], prompt_tokens=tokens)
    assert emb.check_usage(object(), "m").outcome == outcome


def test_limit_checks_accept_coping_or_a_clear_refusal(monkeypatch) -> None:
    from evals.model_calls import CallOutcome

    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0])
    copes = emb.check_batch_limit(object(), "m", 2)
    assert copes.outcome == "pass" and copes.details["handling"] == "accepted"
    assert emb.check_overlength(object(), "m", 4).details["handling"] == "truncated"

    def refusal(status: int, message: str):
        kind = "http_4xx" if status < 500 else "http_5xx"
        return lambda inputs: CallOutcome(ok=False, status=status, error_kind=kind, message=message)

    emb = _serve_vectors(monkeypatch, None, outcome=refusal(413, "Error code: 413 - batch too large"))
    assert emb.check_batch_limit(object(), "m", 2).outcome == "pass"
    emb = _serve_vectors(monkeypatch, None, outcome=refusal(413, "Error code: 413 - "))
    assert emb.check_batch_limit(object(), "m", 2).outcome == "fail"
    emb = _serve_vectors(monkeypatch, None, outcome=refusal(503, "Error code: 503 - down"))
    assert emb.check_batch_limit(object(), "m", 2).outcome == "error"


def test_fewer_vectors_than_inputs_fails(monkeypatch) -> None:
    from types import SimpleNamespace

    from evals.model_calls import CallOutcome

    one = CallOutcome(ok=True, status=200, value=SimpleNamespace(
        data=[SimpleNamespace(index=0, embedding=[1.0])], usage=SimpleNamespace(prompt_tokens=1)))
    emb = _serve_vectors(monkeypatch, None, outcome=lambda inputs: one)
    check = emb.check_dimension(object(), "m", 1)
    assert check.outcome == "fail" and check.reason == "4 inputs gave 1 vectors"
    limit = emb.check_batch_limit(object(), "m", 2)
    assert limit.outcome == "fail" and "200 with 1 vectors for 3 inputs" in limit.reason


# ---- embeddings gate: the vector size it expects and its settings -----------------------------

def _embeddings_entry(**update):
    from deploy.catalog import load_catalog

    entry = load_catalog().get("embeddings")
    return entry.model_copy(update=update)


def _deployment(stand_in: bool, dimensions: int | None):
    from deploy.deployer import Deployment

    return Deployment(alias="embeddings", kind="local", backend_url=None, served_model_name="e",
                      model="all-MiniLM-L6-v2", target="t", stand_in=stand_in, dimensions=dimensions)


def test_expected_dimensions_come_from_the_stand_in_only_when_it_serves() -> None:
    from gates.kinds.embeddings.judge import expected_dimensions

    entry = _embeddings_entry(dimensions=768)
    stand_in = expected_dimensions(entry, _deployment(True, 384))
    assert (stand_in.value, stand_in.source) == (384, "stand-in")
    for deployment in (_deployment(False, 384), _deployment(True, None)):
        got = expected_dimensions(entry, deployment)
        assert (got.value, got.source) == (768, "catalog")
    with pytest.raises(ValueError, match="field 'dimensions' is missing"):
        expected_dimensions(entry.model_copy(update={"dimensions": None}), _deployment(False, None))


def _embeddings_config(**fields):
    """The catalog's typed `gates.embeddings` block (its one required field filled in)."""
    from deploy.gate_configs import EmbeddingsGateConfig

    return EmbeddingsGateConfig(budget_usd=0.001, **fields)


@pytest.mark.parametrize(("serve_args", "batch"), [
    (["--max-client-batch-size", "7"], 7), (["--max-client-batch-size=9"], 9),
    (["--other", "1", "--max-client-batch-size", "5"], 5), (["--max-client-batch-size"], 32), ([], 32),
])
def test_embeddings_batch_limit_is_read_from_the_serve_args(serve_args, batch) -> None:
    from gates.kinds.embeddings.judge import gate_settings

    entry = _embeddings_entry(serve_args=serve_args, context=256)
    gate = gate_settings(entry, _embeddings_config(min_triplet_rate=0.8), 384)
    assert gate.max_batch_size == batch and gate.max_input_tokens == 256
    assert gate.min_triplet_rate == 0.8 and gate.dimensions == 384
    assert gate.normalization_tolerance == 1e-3 and gate.batch_cosine_min == 0.999  # defaults
    assert gate_settings(entry, _embeddings_config(max_batch_size=3), 384).max_batch_size == 3


def _errored(label_index: int, error: str, stream: bool = False) -> ScenarioResult:
    return ScenarioResult(scenario=f"s{label_index}", stream=stream, platform_error=error)


def test_agent_platform_errors_are_grouped_and_bounded() -> None:
    plain = [_errored(0, "step 2: APIError: 503"), _errored(1, "step 1: APIError: 503"),
             _errored(2, "step 1: Timeout: 30 s"), _errored(3, "x"), _errored(4, "step 3: y: z")]
    agent = judge_coder_agent(plain, _runs(5, 5, stream=True), min_pass_rate=0.5, spend=GOOD_AGENT_SPEND)
    assert agent.verdict == "error"
    assert agent.summary == "Tool loops not judged: no answer in 5 of 10 runs"
    assert agent.reason == ("APIError: 503 (×2, first in s0 (non-stream)); "
                            "Timeout: 30 s (×1, first in s2 (non-stream)); x (×1, first in s3 (non-stream)); "
                            "and 1 other errors")
    three = judge_coder_agent(plain[:4], _runs(4, 4, stream=True), min_pass_rate=0.5,
                              spend=GOOD_AGENT_SPEND)
    assert not three.reason.endswith("other errors")


@pytest.mark.parametrize(("length", "clipped"), [(600, False), (601, True)])
def test_agent_reason_is_clipped_at_600(length: int, clipped: bool) -> None:
    error = "e" * (length - len(" (×1, first in s0 (non-stream))"))
    agent = judge_coder_agent([_errored(0, error)], _runs(1, 1, stream=True), min_pass_rate=0.5,
                              spend=GOOD_AGENT_SPEND)
    assert len(agent.reason) == 600
    assert agent.reason.endswith("...") is clipped


def test_ledger_times_are_utc() -> None:
    from datetime import timedelta

    from deploy.ledger import now

    assert now().utcoffset() == timedelta(0)


# ---- HumanEval samples: which sandbox statuses are the model's fault --------------------------

@pytest.mark.parametrize(("ok", "status", "verdict"), [
    (True, "passed", "passed"), (True, "failed", "failed"),
    (True, "timeout", "failed"),          # a solution that hangs is wrong code
    (True, "error", "sandbox_error"),     # our checker could not judge: never the model's fault
    (True, "not_run", "sandbox_error"),
    (False, "passed", "error"),           # no answer from the platform wins over any status
    (False, "not_run", "error"),
])
def test_humaneval_sample_verdicts(ok: bool, status: str, verdict: str) -> None:
    from evals.humaneval import SampleRecord
    from evals.model_calls import CallOutcome

    call = CallOutcome(ok=ok, error_kind=None if ok else "timeout")
    assert SampleRecord(task_id="t", sample=0, status=status, call=call).verdict == verdict


def test_derive_slo_defaults_and_floor() -> None:
    from evals.latency import derive_slo, round_up_2sig

    assert derive_slo(_summary()).ttft_p95_ms == 150.0  # default headroom 1.5
    zero = derive_slo(_summary(itl=0.0), 1.5)
    assert zero.itl_p95_ms == 0.0015  # a p95 of 0 counts as 1 µs, never a 0 target
    with pytest.raises(ValueError, match="cannot round a non-positive target 0"):
        round_up_2sig(0)
    with pytest.raises(ValueError, match="non-positive target -1"):
        round_up_2sig(-1)


def test_humaneval_nothing_judged_reads_zero_percent() -> None:
    assert judge_humaneval(passed=0, failed=0, errors=0, min_pass_rate=0.5).summary == (
        "HumanEval 0/0 = 0% (≥50% gate)")


def test_latency_status_lists_metrics_when_the_error_is_a_missing_metric() -> None:
    summary = _summary(itl=None, errors=1)  # error rate exactly on the bound; ITL unmeasured
    verdict = judge_latency(summary, TARGETS, 0.05)
    assert verdict.verdict == "error"
    assert status_summary(verdict, summary, "t") == (
        "Latency p95/target TTFT 100/250 ms, ITL n/a/20 ms, E2E 1000/1500 ms; c=4, ≤128 tokens; vs t")


def test_budget_binding_becomes_an_embeddings_check() -> None:
    from evals.budget import BudgetBinding
    from gates.kinds.embeddings.judge import budget_check

    binding = BudgetBinding(outcome="fail", reason="never refused", max_budget=1e-5, answered=9,
                            refusal_status=None, over_budget_answers=4, expected_spend=2e-5,
                            reported_spend=2e-5, problems=["never refused"])
    check = budget_check(binding)
    assert (check.name, check.outcome, check.reason) == ("budget_binding", "fail", "never refused")
    assert check.details["answered"] == 9 and check.details["problems"] == ["never refused"]
    assert "reason" not in check.details and "outcome" not in check.details


def test_fim_gate_judges_the_transport_comparison() -> None:
    # Every case answered and right through the gateway, but the two transports disagree.
    other_model = judge_fim_gate(_fim_outcome(_fim_score(20), comparison=_comparison(same=False)),
                                 FIM_CONFIG)
    assert other_model.verdict == "fail" and other_model.reason == "models differ"
    assert other_model.summary.startswith("FIM /v1/completions 200 (direct + vkey)")
    unanswered = judge_fim_gate(_fim_outcome(_fim_score(20), comparison=_comparison(both=False)),
                                FIM_CONFIG)
    assert unanswered.verdict == "error" and unanswered.reason == "not all answered"


def test_fim_gate_names_every_problem() -> None:
    gate = judge_fim_gate(_fim_outcome(_fim_score(9), spend="flat", suffix=2), FIM_CONFIG)
    assert gate.verdict == "fail"
    assert gate.reason == ("functional 45% < 50%; 2 requests carried `suffix` (vLLM refuses it; "
                           "the client must format the prompt); spend flat")


def test_status_names_every_stand_in_once() -> None:
    def stand_in(gate: str, model: str, verdict: str = "pass") -> GateRecord:
        record = _ledger_record(gate, verdict)
        return record.model_copy(update={"target": record.target.model_copy(
            update={"stand_in": True, "model": model})})

    from deploy.ledger import status_of

    records = [stand_in("a", "tiny-b"), stand_in("b", "tiny-a", "fail"), stand_in("c", "tiny-b")]
    assert status_of(records) == "sa; FAIL: sb; sc [embedded stand-in: tiny-a, tiny-b]"


def _ledger_record(gate: str, verdict: str) -> GateRecord:
    from datetime import UTC, datetime

    from deploy.ledger import Counts, Target

    at = datetime(2026, 12, 1, tzinfo=UTC)
    return GateRecord(run_id="r", alias="x", gate=gate, verdict=verdict, metric="m", value=None,
                      threshold=None, counts=Counts(), summary=f"s{gate}",
                      target=Target(platform="embedded", gateway_url="http://g", deployment="d",
                                    model="m", served_model_name="m"),
                      started_at=at, finished_at=at, suite_revision="r")


def test_unfenced_code_that_never_parses_is_kept_from_its_first_code_line() -> None:
    from evals.code_extraction import extract_code

    reply = "Sure:\ndef f(x:\n    return x\n\nThat is all"
    assert extract_code(reply, "f") == "def f(x:\n    return x\n\nThat is all"
    assert extract_code("X = 1") == "X = 1"
    assert extract_code("\n\nx = 1\n\n") == "x = 1"


def test_agent_fail_reason_names_every_problem() -> None:
    plain, streamed = _runs(1, 4), _runs(1, 4, stream=True)
    bad_call = ToolCallRecord(step=1, id="x", name="t", arguments="{", valid=False, problem="not JSON")
    plain[0] = plain[0].model_copy(update={"calls": [bad_call]})
    streamed[3] = streamed[3].model_copy(update={"answer": "different"})
    agent = judge_coder_agent(plain, streamed, min_pass_rate=0.75,
                              spend=AgentSpend(baseline_usd=0.0, problem="spend off"))
    assert agent.verdict == "fail"
    assert agent.counts.model_dump() == {"passed": 1, "failed": 3, "errors": 0, "total": 4}
    assert agent.summary == ("Tool loops 1/4 = 25% [95% CI 5-70%] (≥75% gate; streamed and not): wrong answer ×6")
    assert agent.reason == (
        "pass rate 1/4 = 25% is below 75%, 1 invalid tool call(s), none allowed, streamed runs "
        "disagree with non-streamed ones: s0: calls differ; s3: answer differ. Why: wrong answer ×6. "
        "E.g. s1 (non-stream): wrong answer: x; s2 (non-stream): wrong answer: x; "
        "s3 (non-stream): wrong answer: x. Also key accounting: spend off")


def test_agent_pass_reason_and_failed_runs() -> None:
    clean = judge_coder_agent(_runs(4, 4), _runs(4, 4, stream=True), min_pass_rate=0.75,
                              spend=GOOD_AGENT_SPEND)
    assert clean.reason == "no invalid tool call, streamed runs agree, key spend = sum of response costs"
    assert clean.summary == "Tool loops 4/4 = 100% [95% CI 51-100%] (≥75% gate; streamed and not)"
    some = judge_coder_agent(_runs(3, 4), _runs(3, 4, stream=True), min_pass_rate=0.75,
                             spend=GOOD_AGENT_SPEND)
    assert some.verdict == "pass"
    assert some.reason == ("no invalid tool call, streamed runs agree, key spend = sum of response "
                           "costs; failed runs: wrong answer ×2")


def test_agent_counts_with_errors_and_nothing_run() -> None:
    plain = _runs(1, 4)
    plain[3] = _errored(3, "step 1: APIError: 503")
    agent = judge_coder_agent(plain, _runs(1, 4, stream=True), min_pass_rate=0.5, spend=GOOD_AGENT_SPEND)
    assert agent.counts.model_dump() == {"passed": 1, "failed": 2, "errors": 1, "total": 4}
    empty = judge_coder_agent([], [], min_pass_rate=0.5, spend=GOOD_AGENT_SPEND)
    assert empty.pass_rate == 0.0 and empty.summary.startswith("Tool loops 0/0 = 0%")


def test_agent_disagreements_and_examples_are_capped_at_three() -> None:
    plain, streamed = _runs(0, 5), _runs(0, 5, stream=True)
    streamed = [r.model_copy(update={"answer": "other"}) for r in streamed]
    agent = judge_coder_agent(plain, streamed, min_pass_rate=0.5, spend=GOOD_AGENT_SPEND)
    assert "s2: answer differ. Why" in agent.reason and "s3: answer differ" not in agent.reason
    assert "s2 (non-stream): wrong answer: x" in agent.reason
    assert "s3 (non-stream)" not in agent.reason


def test_ledger_append_creates_nested_folders_and_latest_skips_other_aliases(tmp_path) -> None:
    from deploy.ledger import Ledger

    ledger = Ledger(tmp_path / "a" / "b" / "l.jsonl")
    other = _ledger_record("g", "fail").model_copy(update={"alias": "other"})
    mine = _ledger_record("g", "pass")
    ledger.append(other)
    ledger.append(mine)
    assert [r.record_id for r in ledger.latest("x")] == [mine.record_id]


def test_details_keep_unicode_dates_and_one_row_per_line(tmp_path) -> None:
    from deploy.ledger import Ledger

    ledger = Ledger(tmp_path / "l.jsonl")
    record = _ledger_record("g", "pass")
    ledger.write_details(record, [record, {"summary": "≥70%"}])
    lines = (tmp_path / record.details_file).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert '"started_at": "2026-12-01T00:00:00Z"' in lines[0]
    assert lines[1] == '{"summary": "≥70%"}'


def test_completion_edges_of_prompt_and_code() -> None:
    from evals.code_extraction import humaneval_completion

    assert humaneval_completion("", "f", "x = 1") == "x = 1\n"  # no prompt: it parses flush left
    assert humaneval_completion("def f():\n", "f", "X = 1\nreturn X") == "    X = 1\n    return X\n"


def test_embeddings_error_check_names_the_platform_failure(monkeypatch) -> None:
    from evals.model_calls import CallOutcome

    down = CallOutcome(ok=False, status=503, error_kind="http_5xx", message="down")
    emb = _serve_vectors(monkeypatch, None, outcome=lambda inputs: down)
    check = emb.check_usage(object(), "m")
    assert (check.outcome, check.reason) == ("error", "no answer: http_5xx 503 down")
    assert check.details == {"status": 503, "error_kind": "http_5xx"}
    stalled = CallOutcome(ok=False, status=None, error_kind="timeout", message="stalled")
    emb = _serve_vectors(monkeypatch, None, outcome=lambda inputs: stalled)
    assert emb.check_usage(object(), "m").reason == "no answer: timeout  stalled"


def test_latency_pass_reason_reads_below_target() -> None:
    v = judge_latency(_summary(), TARGETS, 0.05)
    assert v.reason == ("PASS: TTFT p95 100 ms < target 250 ms; ITL p95 10 ms < target 20 ms; "
                        "E2E p95 1000 ms < target 1500 ms; error rate 0.0% (0/20), bound 5.0%")


def test_embeddings_gate_takes_every_catalog_threshold() -> None:
    from gates.kinds.embeddings.judge import gate_settings

    config = _embeddings_config(min_triplet_rate=0.8, normalization_tolerance=0.01,
                                batch_cosine_min=0.99)
    gate = gate_settings(_embeddings_entry(context=None, serve_args=[]), config, 384)
    assert (gate.min_triplet_rate, gate.normalization_tolerance, gate.batch_cosine_min) == (
        0.8, 0.01, 0.99)
    assert gate.max_input_tokens == 512  # no context in the catalog


def test_latency_reasons_in_full() -> None:
    fail = judge_latency(_summary(ttft=300.0, e2e=2000.0), TARGETS, 0.05)
    assert fail.reason == (
        "FAIL (TTFT, E2E over target): TTFT p95 300 ms >= target 250 ms; ITL p95 10 ms < target "
        "20 ms; E2E p95 2000 ms >= target 1500 ms; error rate 0.0% (0/20), bound 5.0%")
    unmeasured = judge_latency(_summary(itl=None, e2e=None), TARGETS, 0.05)
    assert unmeasured.reason.startswith("ERROR: no samples for ITL, E2E. Measured: TTFT p95 100 ms")
    quiet = _summary(errors=2).model_copy(update={"error_examples": []})
    errored = judge_latency(quiet, TARGETS, 0.05)
    assert errored.reason.startswith("ERROR: error rate 10.0% (2/20), bound 5.0% exceeds the bound. "
                                     "Measured: TTFT")


def test_percentiles_of_nothing_is_named() -> None:
    from evals.latency import percentile_values

    with pytest.raises(ValueError, match="^percentiles of an empty set$"):
        percentile_values([])


def test_ledger_lock_sits_beside_the_ledger(tmp_path) -> None:
    from deploy.ledger import Ledger

    ledger = Ledger(tmp_path / "l.jsonl")
    with ledger._lock:  # what append holds; another run's append waits on the same file
        assert sorted(p.name for p in tmp_path.iterdir()) == ["l.jsonl.lock"]


def test_summary_rates_and_rounding() -> None:
    s = _summarize([_row(0, tokens=10), _row(1, error="")], duration_s=3.0004)
    assert s.duration_s == 3.0 and s.output_tokens_per_s == 3.333 and s.requests_per_s == 0.333
    assert s.error_examples == [""]
    instant = _summarize([_row(0, tokens=5)], duration_s=0.0)
    assert instant.output_tokens_per_s == 5e9  # a zero duration counts as 1 ns, not 1 s


def _models_client(handler):
    import httpx
    import openai

    return openai.OpenAI(base_url="http://gateway.invalid/v1", api_key="k", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_registered_check_errors_when_the_model_list_does_not_answer() -> None:
    import httpx

    from evals.embeddings import check_registered
    from evals.model_calls import RetryPolicy

    once = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)
    down = _models_client(lambda request: httpx.Response(503, json={"error": {"message": "down"}}))
    check = check_registered(down, "embeddings", lambda: [], input_cost_per_token=1e-7, policy=once)
    assert (check.name, check.outcome) == ("registered", "error")
    assert check.reason.startswith("no answer: http_5xx 503")
    empty = _models_client(lambda request: httpx.Response(200, json={"object": "list", "data": []}))
    check = check_registered(empty, "embeddings", lambda: [], input_cost_per_token=1e-7, policy=once)
    assert check.outcome == "fail"
    assert check.reason == "'embeddings' is not in /v1/models for this key (listed: nothing)"
    two = _models_client(lambda request: httpx.Response(200, json={"object": "list", "data": [
        {"id": "b", "object": "model", "created": 0, "owned_by": "x"},
        {"id": "a", "object": "model", "created": 0, "owned_by": "x"}]}))
    check = check_registered(two, "embeddings", lambda: [], input_cost_per_token=1e-7, policy=once)
    assert check.reason.endswith("(listed: a, b)")


def test_atomic_write_uses_a_hidden_temporary_beside_the_target(tmp_path, monkeypatch) -> None:
    import os

    from deploy import catalog as catalog_module
    from deploy.catalog import atomic_write_text

    sources: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        sources.append(str(src))
        real_replace(src, dst)

    monkeypatch.setattr(catalog_module.os, "replace", replace)
    target = tmp_path / "a" / "b" / "catalog.yaml"  # two missing folders
    atomic_write_text(target, "x\n")
    assert target.read_text() == "x\n"
    (src,) = sources
    assert os.path.dirname(src) == str(target.parent)
    assert os.path.basename(src).startswith(".catalog.yaml.")


def _listing(*models: str):
    import httpx

    data = [{"id": m, "object": "model", "created": 0, "owned_by": "x"} for m in models]
    return _models_client(lambda request: httpx.Response(200, json={"object": "list", "data": data}))


def test_registered_check_model_info_cases() -> None:
    from evals.embeddings import check_registered

    client = _listing("embeddings")

    def run(read):
        return check_registered(client, "embeddings", read, input_cost_per_token=1e-7)

    def broken():
        raise RuntimeError("boom")

    errored = run(broken)
    assert (errored.name, errored.outcome) == ("registered", "error")
    assert errored.reason == "no answer from GET /model/info: RuntimeError: boom"
    missing = run(lambda: [{"model_name": "other", "model_info": {}}])
    assert (missing.name, missing.outcome, missing.reason) == (
        "registered", "fail", "'embeddings' is not in /model/info")
    wrong = run(lambda: [{"model_name": "embeddings", "model_info": {"mode": "chat"}}])
    assert wrong.outcome == "fail"
    assert wrong.reason == ("/model/info mode is 'chat', not 'embedding'; /model/info has no input "
                            "price (None): its budgets can never bind")
    assert wrong.details == {"mode": "chat", "input_cost_per_token": None, "output_vector_size": None}
    good = run(lambda: [{"model_name": "embeddings",
                         "model_info": {"mode": "embedding", "input_cost_per_token": 1e-7}}])
    assert good.outcome == "pass"
    assert good.reason == "in /v1/models and /model/info (mode embedding, 1e-07 USD/token)"


def test_tool_loop_failures_list_four_then_count_the_rest() -> None:
    four = judge_tool_loops(_runs(0, 4), 0.5)
    assert four.reason.endswith("s3 (non-stream): wrong answer: x")
    six = judge_tool_loops(_runs(0, 6), 0.5)
    assert six.reason == ("pass rate 0/6 = 0% below 50%: s0 (non-stream): wrong answer: x; "
                          "s1 (non-stream): wrong answer: x; s2 (non-stream): wrong answer: x; "
                          "s3 (non-stream): wrong answer: x; and 2 more")


@pytest.mark.parametrize("field", ["completed", "steps", "calls_valid", "max_parallel", "answer",
                                   "answer_correct", "passed", "reason", "platform_error"])
def test_modes_disagree_on_any_outcome_field(field: str) -> None:
    from evals.tool_loop import compare_modes

    plain = _runs(1, 1)
    value = {"completed": False, "steps": 9, "calls_valid": False, "max_parallel": 3,
             "answer": "other", "answer_correct": True, "passed": False, "reason": "r",
             "platform_error": "e"}[field]
    streamed = [plain[0].model_copy(update={"stream": True, field: value})]
    assert compare_modes(plain, streamed) == [f"s0: {field} differ"]


def test_budget_reasons_in_full(monkeypatch) -> None:
    ok = _bind(monkeypatch, [_answer()] * 3 + [_refusal()])
    assert ok.reason == ("refused with 429 budget_exceeded after 3 answered requests (48 tokens, "
                         "spend 0.0469 of 0.0469 USD); reported spend = tokens x price")
    assert [r.outcome for r in ok.requests] == ["answered"] * 3 + ["refused"]
    assert [r.spend_before for r in ok.requests] == [0.0, COST, 2 * COST, 3 * COST]
    assert ok.requests[3].error_type == "budget_exceeded" and ok.requests[3].status == 429
    wrong_type = _bind(monkeypatch, [_answer()] * 3 + [_refusal(429, "rate_limit")])
    assert wrong_type.reason == ("refused with 429 [rate_limit] instead of budget_exceeded: "
                                 "refused 429")
    odd = _bind(monkeypatch, [_answer()] * 3 + [_refusal(403)])  # the type decides, not the status
    assert odd.outcome == "pass" and odd.reason.startswith("refused with 403 budget_exceeded")
    early = _bind(monkeypatch, [_answer()] + [_refusal()])
    assert early.reason == ("refused at spend 0.0156 USD although the budget 0.0469 USD still had "
                            "room for the request")
    none = _bind(monkeypatch, [_refusal()])
    assert none.outcome == "fail" and none.answered == 0 and "still had room" in none.reason
    lost = _bind(monkeypatch, [_answer()] + [_refusal(503, None)])
    assert lost.reason == "request 1 got no answer: refused 503" and lost.requests[1].outcome == "error"
    cost = _bind(monkeypatch, [_answer(cost_header=2 * COST)] * 3 + [_refusal()])
    assert cost.reason == ("request 0: x-litellm-response-cost 0.03125 for 16+0 tokens, "
                           "expected 0.015625")  # named once, for the first wrong answer
    spend = _bind(monkeypatch, [_answer()] * 3 + [_refusal()], spend=lambda: 4 * COST)
    assert spend.reason == ("the gateway reports spend 0.0625 USD, but 48 tokens at the given "
                            "prices cost 0.046875 USD")
    assert spend.reported_spend == 4 * COST and spend.expected_spend == 3 * COST


def test_mode_comparison_cases() -> None:
    from evals.tool_loop import compare_modes

    def call(call_id: str, arguments: str = "{}") -> ToolCallRecord:
        return ToolCallRecord(step=1, id=call_id, name="t", arguments=arguments, valid=True)

    plain = [r.model_copy(update={"calls": [call("a")]}) for r in _runs(3, 3)]
    streamed = [r.model_copy(update={"stream": True, "calls": [call("b")]}) for r in plain]
    assert compare_modes(plain, streamed) == []  # call ids are random per run
    streamed[1] = streamed[1].model_copy(update={"calls": [call("b", '{"x": 1}')], "steps": 2})
    assert compare_modes(plain, streamed) == ["s1: steps, calls differ"]
    assert compare_modes(plain, streamed[2:]) == ["s0: no streaming result", "s1: no streaming result"]
    extra = [*streamed, streamed[0].model_copy(update={"scenario": "zz"}),
             streamed[0].model_copy(update={"scenario": "yy"})]
    assert compare_modes(plain, extra)[-2:] == ["yy: no non-streaming result", "zz: no non-streaming result"]


def _completion(**update) -> dict:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "OK"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    return {**body, **update}


def test_openai_shape_problems() -> None:
    from evals.usage import ProbeReply, check_openai_shape, shape_problems

    assert shape_problems(_completion()) == []
    no_id = {k: v for k, v in _completion().items() if k != "id"}
    assert shape_problems(no_id) == ["id: Field required"]
    odd = _completion(choices=[{"index": 0, "finish_reason": "end_turn",
                                "message": {"role": "assistant", "content": "OK"}}])
    assert shape_problems(odd) == ["choices.0.finish_reason: 'end_turn' is not an OpenAI finish reason"]
    assert shape_problems(_completion(choices=[]))[0].startswith("choices: List should have at least 1")
    whole = ProbeReply(probe="short", ok=True, body=_completion())
    streamed = ProbeReply(probe="stream", ok=True, chunks=[{"choices": []}], body={}, streamed=True)
    check = check_openai_shape([whole, streamed])
    assert check.outcome == "pass" and check.reason == "1 replies are OpenAI chat completions"
    bad = check_openai_shape([ProbeReply(probe="short", ok=True, body=odd)])
    assert bad.outcome == "fail"
    assert bad.reason == "short: choices.0.finish_reason: 'end_turn' is not an OpenAI finish reason"


def test_tool_result_round_trip_rules() -> None:
    from evals.usage import ProbeReply, check_tool_result

    def reply(finish: str, content) -> ProbeReply:
        return ProbeReply(probe="tool_result", ok=True, body=_completion(choices=[
            {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]))

    assert check_tool_result(reply("stop", "It is sunny.")).outcome == "pass"
    length = check_tool_result(reply("length", "It"))
    assert length.reason == "finish_reason 'length' after the tool result, expected 'stop'"
    for empty in ("  ", None):
        assert check_tool_result(reply("stop", empty)).reason == "no answer text after the tool result"
    lost = check_tool_result(ProbeReply(probe="tool_result", ok=False, error="skipped"))
    assert lost.outcome == "error" and lost.reason == "no answer: tool_result: skipped"


def test_prices_and_check_reasons_are_bounded() -> None:
    from evals.usage import Prices, UsageCheck, _check

    prices = Prices(input_per_token=2.0, output_per_token=3.0)
    assert prices.cost({"prompt_tokens": 10, "completion_tokens": 2}) == 26.0
    assert prices.cost({"prompt_tokens": None}) == 0.0
    many = _check("n", [f"p{i}" for i in range(7)], "fine", extra=1)
    assert isinstance(many, UsageCheck)
    assert (many.outcome, many.reason, many.details) == ("fail", "p0; p1; p2; p3; p4", {"extra": 1})
    assert _check("n", [], "fine").reason == "fine"


def test_leaks_name_the_place() -> None:
    from evals.usage import ProbeReply, leaks

    reply = ProbeReply(probe="short", ok=True, headers={"authorization": "Bearer x",
                                                        "x-extra": "sk-ant-api03-abcdefghij"})
    reply.raw = "body with s3cr3t inside"
    assert leaks([reply], secrets=["s3cr3t", ""]) == [
        "short: body carries a provider key",
        "short: header x-extra carries a provider key",
        "short: header authorization is a credential header",
    ]


def test_every_embeddings_check_passes_the_gates_retry_policy_down(monkeypatch) -> None:
    from types import SimpleNamespace

    import evals.embeddings as emb
    from evals.model_calls import CallOutcome, RetryPolicy

    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0)
    seen = []

    def fake(client, model, inputs, *, policy=None, encoding_format="float"):
        seen.append(policy)
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        data = [SimpleNamespace(index=i, embedding=[1.0, 0.0] if encoding_format == "float" else "AACAPwAAAAA=")
                for i in range(len(texts))]
        return CallOutcome(ok=True, status=200,
                           value=SimpleNamespace(data=data, usage=SimpleNamespace(prompt_tokens=3)))

    monkeypatch.setattr(emb, "embeddings", fake)
    client = object()
    emb.check_dimension(client, "m", 2, policy=policy)
    emb.check_normalized(client, "m", policy=policy)
    emb.check_batch_consistency(client, "m", policy=policy)
    emb.check_base64(client, "m", policy=policy)
    emb.check_triplets(client, "m", _triplets(2), policy=policy)
    emb.check_overlength(client, "m", 4, policy=policy)
    emb.check_batch_limit(client, "m", 2, policy=policy)
    emb.check_usage(client, "m", policy=policy)
    assert len(seen) >= 9 and all(p is policy for p in seen)


@pytest.mark.parametrize(("usage", "reason"), [
    (None, "usage.prompt_tokens None (must be a positive integer)"),
    ({}, "usage.prompt_tokens None (must be a positive integer)"),
    ({"prompt_tokens": 0}, "usage.prompt_tokens 0 (must be a positive integer)"),
    ({"prompt_tokens": 7}, "usage.prompt_tokens 7"),
])
def test_embedding_usage_reasons(monkeypatch, usage, reason) -> None:
    from types import SimpleNamespace

    from evals.model_calls import CallOutcome

    value = SimpleNamespace(data=[SimpleNamespace(index=0, embedding=[1.0])],
                            usage=None if usage is None else SimpleNamespace(**usage))
    emb = _serve_vectors(monkeypatch, None, outcome=lambda inputs: CallOutcome(ok=True, value=value))
    assert emb.check_usage(object(), "m").reason == reason


def test_embeddings_check_defaults_and_reasons(monkeypatch) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0009765625, 0.0])  # |norm - 1| < 1e-3
    near = emb.check_normalized(object(), "m")
    assert near.outcome == "pass" and near.reason == "max |L2 norm - 1| = 9.8e-04 <= 0.001"
    assert near.details == {"max_norm_error": 0.0009765625, "tolerance": 1e-3}
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.001953125, 0.0])  # just over 1e-3
    far = emb.check_normalized(object(), "m")
    assert far.outcome == "fail" and far.reason == "max |L2 norm - 1| = 2.0e-03 > 0.001"
    dims = emb.check_dimension(object(), "m", 2)
    assert (dims.reason, dims.details) == ("dimension 2", {"dimensions": [2], "expected": 2})
    # A batch vector at cosine 0.99995 passes the default 0.999 minimum.
    emb = _serve_vectors(monkeypatch, lambda t, batched: [1.0, 0.01] if batched else [1.0, 0.0])
    assert emb.check_batch_consistency(object(), "m").outcome == "pass"


def test_base64_answer_missing_a_vector_fails(monkeypatch) -> None:
    from types import SimpleNamespace

    from evals.model_calls import CallOutcome

    def answer(inputs, encoding_format):
        count = len(inputs) if encoding_format == "float" else 1  # base64: one vector short
        data = [SimpleNamespace(index=i, embedding=[1.0, 0.0] if encoding_format == "float"
                                else "AACAPwAAAAA=") for i in range(count)]
        return CallOutcome(ok=True, status=200, value=SimpleNamespace(data=data, usage=None))

    import evals.embeddings as emb

    monkeypatch.setattr(emb, "embeddings", lambda c, m, inputs, *, policy=None, encoding_format="float":
                        answer(inputs, encoding_format))
    check = emb.check_base64(object(), "m")
    assert check.outcome == "fail" and check.reason == "base64 gave 1 vectors for 2 inputs"


def test_vector_helpers_edges() -> None:
    from evals.embeddings import cosine, decode_base64

    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0  # a zero vector is like nothing
    with pytest.raises(ValueError, match="different lengths 1 and 2"):
        cosine([1.0], [1.0, 0.0])
    assert decode_base64("AACAPwAAAAA=") == [1.0, 0.0]
    with pytest.raises(ValueError):
        decode_base64("AACA!PwAAAAA=")  # a stray character is refused, not skipped
    with pytest.raises(ValueError, match="not a whole number of float32"):
        decode_base64("AAAA")


def test_embeddings_check_names_and_triplet_default(monkeypatch) -> None:
    def vector(text: str, _batched: bool) -> list[float]:
        if text[0] == "a":
            return [1.0, 0.0]
        hit = text[0] == "p" and int(text[1:]) > 0 or text[0] == "u" and int(text[1:]) == 0
        return [1.0, 0.1] if hit else [0.0, 1.0]

    emb = _serve_vectors(monkeypatch, vector)
    triplets = emb.check_triplets(object(), "m", _triplets(10))  # 9/10 = the default 90%
    assert (triplets.name, triplets.outcome) == ("triplets", "pass")
    assert triplets.reason == "triplets 9/10 (90% >= 90%); missed t0"
    names = [emb.check_dimension(object(), "m", 2).name, emb.check_normalized(object(), "m").name,
             emb.check_batch_consistency(object(), "m").name, emb.check_base64(object(), "m").name,
             emb.check_overlength(object(), "m", 2).name, emb.check_batch_limit(object(), "m", 2).name,
             emb.check_usage(object(), "m").name]
    assert names == ["dimension", "normalized", "batch_consistency", "base64", "overlength_input",
                     "batch_over_limit", "usage"]
    batch = emb.check_batch_consistency(object(), "m", 0.5)
    assert batch.details == {"cosine": 1.0, "min_cosine": 0.5}
    assert batch.reason == "alone vs in a batch of 6: cosine 1.000000"
    b64 = emb.check_base64(object(), "m")
    assert b64.reason == "float and base64 differ by at most 0.0e+00"


def test_limit_checks_send_enough_and_say_what_happened(monkeypatch) -> None:
    sent: list = []

    def vector(text: str, _batched: bool) -> list[float]:
        sent.append(text)
        return [1.0]

    emb = _serve_vectors(monkeypatch, vector)
    over = emb.check_overlength(object(), "m", 4)
    assert len(sent[-1].split(" ")) == 8  # twice the token limit, in words
    assert over.reason == "input over 4 tokens: truncated (200)"
    assert over.details == {"handling": "truncated", "prompt_tokens": 7}
    batch = emb.check_batch_limit(object(), "m", 2)
    assert batch.reason == "batch of 3 > 2: accepted (200)"
    from evals.model_calls import CallOutcome

    long = "x" * 200
    refused = CallOutcome(ok=False, status=413, error_kind="http_4xx", message=f"Error code: 413 - {long}")
    emb = _serve_vectors(monkeypatch, None, outcome=lambda inputs: refused)
    check = emb.check_batch_limit(object(), "m", 2)
    assert check.reason == f"batch of 3 > 2: refused 413 ({'x' * 160})"
    assert check.details == {"handling": "refused", "status": 413}


def test_triplet_failure_reason_and_details(monkeypatch) -> None:
    emb = _serve_vectors(monkeypatch, lambda t, b: [1.0, 0.0] if t[0] == "a" else
                         ([0.0, 1.0] if (t[0] == "p") == (int(t[1:]) < 2) else [1.0, 0.1]))
    check = emb.check_triplets(object(), "m", _triplets(10), 0.9)
    assert check.reason == "triplets 8/10 (80% < 90%); missed t0, t1"
    assert check.details == {"passed": 8, "total": 10, "missed": ["t0", "t1"]}
    clean = _serve_vectors(monkeypatch, lambda t, b: [1.0, 0.0] if t[0] != "u" else [0.0, 1.0])
    assert clean.check_triplets(object(), "m", _triplets(2), 0.9).reason == "triplets 2/2 (100% >= 90%)"


def test_budget_costs_count_completion_tokens_and_missing_usage(monkeypatch) -> None:
    from types import SimpleNamespace

    import evals.budget as budget
    from evals.model_calls import CallOutcome

    def answer(usage):
        return CallOutcome(ok=True, status=200, value=SimpleNamespace(usage=usage))

    replies = iter([answer(SimpleNamespace(prompt_tokens=16, completion_tokens=4))] * 2 + [_refusal()])
    monkeypatch.setattr(budget, "embeddings", lambda *a, **k: next(replies))
    out_price = 2.0 ** -8
    result = budget.run_budget_binding(
        object(), "e", max_budget=2 * (COST + 4 * out_price), input_cost_per_token=PRICE,
        output_cost_per_token=out_price, read_spend=lambda: 2 * (COST + 4 * out_price),
        spend_timeout_s=0.05, spend_interval_s=0.0)
    assert result.outcome == "pass", result.reason
    assert result.requests[0].cost == COST + 4 * out_price and result.requests[0].completion_tokens == 4
    for usage in (SimpleNamespace(), None, SimpleNamespace(prompt_tokens=None)):
        replies = iter([answer(usage)])
        empty = budget.run_budget_binding(object(), "e", max_budget=1.0, input_cost_per_token=PRICE,
                                          read_spend=lambda: 0.0, spend_timeout_s=0.05)
        assert empty.outcome == "fail" and "without usage.prompt_tokens" in empty.reason
    replies = iter([answer(SimpleNamespace(prompt_tokens=16))] * 3 + [_refusal()])
    no_completion = budget.run_budget_binding(
        object(), "e", max_budget=3 * COST, input_cost_per_token=PRICE, output_cost_per_token=1.0,
        read_spend=lambda: 3 * COST, spend_timeout_s=0.05)
    assert no_completion.outcome == "pass" and no_completion.requests[0].completion_tokens == 0


def test_budget_tiny_costs_compare_within_the_absolute_tolerance(monkeypatch) -> None:
    import evals.budget as budget

    tiny = 2.0 ** -50  # 16 tokens cost 1.4e-14 USD: a header of 0 is equal to rounding
    replies = iter([_answer(cost_header=0.0)] * 3 + [_refusal()])
    monkeypatch.setattr(budget, "embeddings", lambda *a, **k: next(replies))
    result = budget.run_budget_binding(object(), "e", max_budget=3 * 16 * tiny, input_cost_per_token=tiny,
                                       read_spend=lambda: 3 * 16 * tiny, spend_timeout_s=0.05)
    assert result.outcome == "pass", result.reason


def test_usage_and_fim_join_every_reason() -> None:
    v = judge_usage(_usage("error", "fail", "error"), "litellm")
    assert v.reason == "c0: r0; c2: r2"
    long = [UsageCheck(name="c", outcome="error", reason="x" * 400) for _ in range(2)]
    assert len(judge_usage(long, "litellm").reason) == 500
    both = judge_fim(_fim_score(9, 3), 0.5, 0.1)
    assert both.reason == ("functional 45% < 50%; mangled 3/20 (15% > 10%): an instruct model or a "
                           "chat template in the path")


def test_budget_request_log_keeps_the_gateways_headers(monkeypatch) -> None:
    from types import SimpleNamespace

    import evals.budget as budget
    from evals.model_calls import CallOutcome

    answer = CallOutcome(ok=True, status=200, headers={"x-litellm-key-spend": "0.5",
                                                       "x-litellm-response-cost": repr(COST)},
                         value=SimpleNamespace(usage=SimpleNamespace(prompt_tokens=16,
                                                                     completion_tokens=100)))
    replies = iter([answer] * 3 + [_refusal()])
    monkeypatch.setattr(budget, "embeddings", lambda *a, **k: next(replies))
    # No output price given: completion tokens cost nothing.
    result = budget.run_budget_binding(object(), "e", max_budget=3 * COST, input_cost_per_token=PRICE,
                                       read_spend=lambda: 3 * COST, spend_timeout_s=0.05)
    assert result.outcome == "pass", result.reason
    first = result.requests[0]
    assert (first.status, first.reported_spend, first.reported_cost, first.cost) == (200, 0.5, COST, COST)


def test_spend_delta_details_and_absolute_tolerance() -> None:
    from evals.usage import check_spend_delta, shape_problems

    near_zero = check_spend_delta(1e-13, 0.0)
    assert near_zero.outcome == "pass"  # float noise on a free model is not a spend
    assert near_zero.details == {"spend_delta": 1e-13, "expected": 0.0}
    off = check_spend_delta(2e-6, 1e-6)
    assert off.reason == ("the key's spend grew by 2e-06 USD, LiteLLM's cost of the replies' "
                          "usage at list prices is 1e-06 USD")
    assert shape_problems([])[0].startswith("(body): Input should be a valid dictionary")


def test_stream_usage_failures_in_full() -> None:
    from evals.usage import ProbeReply, check_stream_usage

    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    silent = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]},
              {"choices": [], "usage": usage}]
    check = check_stream_usage(ProbeReply(probe="stream", ok=True, chunks=silent, done=True))
    assert (check.outcome, check.reason) == ("fail", "the stream carried no text")
    assert check.details == {"chunks": 3, "usage": usage}
    no_usage = [*silent[:2], {"choices": [], "usage": None}]
    check = check_stream_usage(ProbeReply(probe="stream", ok=True, chunks=no_usage, done=True))
    assert check.reason == ("the last chunk is not a usage chunk (usage, with choices [] or only "
                            "empty deltas); the stream carried no text")


def test_finish_reason_reasons_and_details() -> None:
    from evals.usage import check_finish_reason

    def reply(calls, finish="tool_calls"):
        return _reply("tool", choices=[{"index": 0, "finish_reason": finish,
                                        "message": {"role": "assistant", "content": None,
                                                    "tool_calls": calls}}])

    none = check_finish_reason("tc", reply([]), "tool_calls", tool="get_weather")
    assert none.reason == "no tool_calls in the message" and none.details == {"finish_reason": "tool_calls"}
    not_object = check_finish_reason("tc", reply([{"function": {"name": "get_weather", "arguments": "1"}}]),
                                     "tool_calls", tool="get_weather")
    assert not_object.reason == "tool call arguments are not a JSON object"
    not_json = check_finish_reason("tc", reply([{"function": {"name": "get_weather", "arguments": "{x"}}]),
                                   "tool_calls", tool="get_weather")
    assert not_json.reason == "tool call arguments are not JSON: '{x'"
    ok = check_finish_reason("s", reply(None, "stop"), "stop")
    assert ok.reason == "finish_reason 'stop' as provoked" and ok.details == {"finish_reason": "stop"}


def test_known_secrets_and_tiny_costs_in_the_usage_checks() -> None:
    from evals.usage import Prices, check_no_provider_key, check_response_cost

    leaked = _reply()
    leaked.raw = "... s3cr3t-provider-key ..."
    check = check_no_provider_key([leaked], secrets=["s3cr3t-provider-key"])
    assert check.outcome == "fail" and check.reason == "short: body carries a provider key"
    free = _reply()
    free.headers["x-litellm-response-cost"] = "1e-13"  # rounding noise on a free model
    cost = check_response_cost([free], Prices(input_per_token=0.0, output_per_token=0.0))
    assert cost.outcome == "pass"
    assert cost.details == {"costs": {"short": {
        "header": "1e-13", "expected": 0.0,
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}}}


def test_cache_convention_defaults_and_baselines() -> None:
    from evals.usage import ProbeReply, check_cache_convention

    def with_usage(probe: str, **usage) -> ProbeReply:
        return ProbeReply(probe=probe, ok=True, body={"usage": usage})

    one = with_usage("b", prompt_tokens=1)
    read_all = with_usage("c", prompt_tokens=0, prompt_tokens_details={"cached_tokens": 1})
    assert check_cache_convention(one, [read_all], "agentgateway").outcome == "pass"
    off = with_usage("c", prompt_tokens=101, prompt_tokens_details={"cached_tokens": 5})
    assert check_cache_convention(with_usage("b", prompt_tokens=100), [off], "litellm").outcome == "fail"
    for baseline in (with_usage("b"), with_usage("b", prompt_tokens=0), ProbeReply(probe="b", ok=True)):
        check = check_cache_convention(baseline, [read_all], "litellm")
        assert (check.outcome, check.reason) == ("fail", "the uncached call reported no prompt_tokens")
    no_prompt = with_usage("c", cache_read_input_tokens=90, cache_creation_input_tokens=10)
    check = check_cache_convention(with_usage("b", prompt_tokens=100), [no_prompt], "agentgateway")
    assert check.outcome == "pass"
    assert check.details["cached_calls"] == [{"probe": "c", "prompt_tokens": 0, "cached_tokens": 90,
                                              "cache_write_tokens": 10}]
    assert check.details["uncached_prompt_tokens"] == 100 and check.details["convention"] == "agentgateway"
