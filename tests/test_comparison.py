"""Candidate against incumbent: the statistics, the incumbent lookup and the one record path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from deploy.gate_configs import HumanEvalGate, LatencyGate
from deploy.incumbent import IncumbentError, find_incumbent, named_baseline
from deploy.ledger import GateRecord, Ledger, Target, now
from evals.comparison import compare_p95, compare_rates, mcnemar_exact
from gates.comparison import baseline_problem, detail_rows
from gates.kinds.humaneval.judge import judge_humaneval
from gates.kinds.latency.report import request_samples
from gates.kinds.registry import GateContext, GateVerdict, kinds, record_outcome
from gates.summary import comparisons
from gates.verdicts import GatePlatformError
from tests.synthetic_ledger import (
    CANDIDATE_MODEL,
    GOOD_MODEL,
    add,
    humaneval_rows,
    outcomes,
    record,
    subset_ids,
)

# ---- the statistics ------------------------------------------------------------------------

# [[both pass, incumbent only], [candidate only, both fail]]: incumbent rows, candidate columns.
TABLES = [[[10, 6], [0, 4]], [[5, 3], [7, 5]], [[0, 0], [0, 9]], [[30, 12], [2, 1]],
          [[1, 25], [25, 1]], [[0, 1], [0, 0]]]


def _items(table: list[list[int]]) -> tuple[dict[str, bool], dict[str, bool]]:
    """Candidate and incumbent outcomes laid out as `table` says."""
    candidate, incumbent, n = {}, {}, 0
    for inc_pass, row in ((True, table[0]), (False, table[1])):
        for cand_pass, count in ((True, row[0]), (False, row[1])):
            for _ in range(count):
                incumbent[f"t{n}"], candidate[f"t{n}"] = inc_pass, cand_pass
                n += 1
    return candidate, incumbent


@pytest.mark.parametrize("table", TABLES)
def test_mcnemar_p_value_matches_statsmodels_exact(table: list[list[int]]) -> None:
    expected = float(mcnemar(table, exact=True).pvalue)
    assert mcnemar_exact(table[0][1], table[1][0]) == pytest.approx(expected, rel=1e-9)
    candidate, incumbent = _items(table)
    assert compare_rates(candidate, incumbent).p_value == pytest.approx(expected, rel=1e-9)


def test_rates_list_flips_both_ways_and_leave_out_unpaired_items() -> None:
    incumbent = {"a": True, "b": True, "c": False, "d": True, "only-old": True}
    candidate = {"a": True, "b": False, "c": True, "d": False, "only-new": False}
    rates = compare_rates(candidate, incumbent)
    assert (rates.pass_to_fail, rates.fail_to_pass) == (["b", "d"], ["c"])
    assert (rates.only_candidate, rates.only_incumbent) == (["only-new"], ["only-old"])
    assert rates.paired == 4
    assert rates.difference == pytest.approx(0.5 - 0.75)
    assert not rates.significant  # 2 against 1 discordant pairs settle nothing


def test_latency_bootstrap_is_deterministic_and_sees_a_slower_p95() -> None:
    incumbent = [100.0 + (i * 7) % 23 for i in range(40)]
    slower = [150.0 + (i * 5) % 29 for i in range(40)]
    first, again = compare_p95("e2e_ms", slower, incumbent), compare_p95("e2e_ms", slower, incumbent)
    assert first == again  # the fixed seed: the same runs, the same interval
    assert first is not None and first.difference > 0 and first.low > 0 and first.significant
    same = compare_p95("e2e_ms", incumbent, list(reversed(incumbent)))
    assert same is not None and same.low <= 0 <= same.high and not same.significant


def test_latency_samples_come_from_the_completed_requests() -> None:
    rows = [{"ttft_ms": 10.0, "itl_ms": [1.0, 2.0], "e2e_ms": 50.0, "error": None},
            {"ttft_ms": None, "itl_ms": [], "e2e_ms": None, "error": "Timeout: no answer"}]
    assert request_samples(rows) == {"ttft_ms": [10.0], "itl_ms": [1.0, 2.0], "e2e_ms": [50.0]}


def test_every_kind_but_latency_names_its_items_and_latency_its_samples() -> None:
    for name, gate in kinds().items():
        assert (gate.samples is not None) == (name == "latency"), name
        assert (gate.items is not None) == (name != "latency"), name


# ---- the incumbent -------------------------------------------------------------------------

def _good(ledger: Ledger, **fields: Any) -> GateRecord:
    return add(ledger, record(**fields), humaneval_rows(outcomes(subset_ids(), 0)))


def test_the_incumbent_is_the_latest_pass_on_another_model(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    older = _good(ledger, minutes=0)
    newer = _good(ledger, minutes=5)
    _good(ledger, minutes=6, verdict="fail")
    _good(ledger, minutes=7, alias="coder-agent")
    found = find_incumbent(ledger, "coder-chat", "humaneval", model=CANDIDATE_MODEL, revision=None)
    assert found is not None and found.record_id == newer.record_id != older.record_id


def test_smoke_and_control_records_are_never_incumbents(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _good(ledger, kind="smoke")
    _good(ledger, kind="control")
    assert find_incumbent(ledger, "coder-chat", "humaneval", model=CANDIDATE_MODEL,
                          revision=None) is None
    imported = _good(ledger, kind="imported", minutes=3)
    add(ledger, record(kind="imported", minutes=4), None)  # no details: nothing to compare
    found = find_incumbent(ledger, "coder-chat", "humaneval", model=CANDIDATE_MODEL, revision=None)
    assert found is not None and found.record_id == imported.record_id


def test_the_same_model_and_revision_is_not_an_incumbent(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _good(ledger, model=CANDIDATE_MODEL, revision="r1")
    assert find_incumbent(ledger, "coder-chat", "humaneval", model=CANDIDATE_MODEL,
                          revision="r1") is None
    found = find_incumbent(ledger, "coder-chat", "humaneval", model=CANDIDATE_MODEL, revision="r2")
    assert found is not None and found.target.revision == "r1"  # another revision is


def test_baseline_picks_the_named_record_and_rejects_a_wrong_one(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    chosen = _good(ledger, minutes=0, verdict="fail")  # named: taken even though it failed
    _good(ledger, minutes=5)
    agent = _good(ledger, alias="coder-agent")
    assert named_baseline(ledger, chosen.record_id, "coder-chat", "humaneval") == chosen
    with pytest.raises(IncumbentError, match="is coder-agent/humaneval, not coder-chat/humaneval"):
        named_baseline(ledger, agent.record_id, "coder-chat", "humaneval")
    with pytest.raises(IncumbentError, match="no record 'nope'"):
        named_baseline(ledger, "nope", "coder-chat", "humaneval")
    selected = [("coder-chat", "humaneval")]
    assert baseline_problem(chosen.record_id, ledger, selected) is None
    assert "selected gates are coder-chat/humaneval" in (
        baseline_problem(agent.record_id, ledger, selected) or "")
    assert "no record 'nope'" in (baseline_problem("nope", ledger, selected) or "")


# ---- the one record path -------------------------------------------------------------------

@dataclass
class FakeAlias:
    """What record_outcome reads of an alias context; `record` appends as the session does."""

    ledger: Ledger
    config: Any
    model: str = CANDIDATE_MODEL

    def __post_init__(self) -> None:
        self.session = SimpleNamespace(ledger=self.ledger)
        self.deployment = SimpleNamespace(model=self.model, revision=None)
        self.entry = SimpleNamespace(alias="coder-chat", gate=lambda name: self.config)

    def record(self, *, details: list[Any], served_model_name: Any, **fields: Any) -> GateRecord:
        rec = GateRecord(
            run_id="candidate", alias="coder-chat", finished_at=now(), suite_revision="abc",
            kind="gate", target=Target(platform="remote", gateway_url="http://gw:4000",
                                       deployment="d", model=self.model,
                                       served_model_name=self.model),
            **{k: v for k, v in fields.items() if v is not None or k == "value"},
        )
        self.ledger.write_details(rec, details)
        self.ledger.append(rec)
        return rec


def _run(tmp_path: Path, *, failing: int, max_regression: float | None,
         baseline: str | None = None, with_incumbent: bool = True) -> GateRecord:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    if with_incumbent:
        _good(ledger)
    config = HumanEvalGate(min_pass_rate=0.7, max_regression=max_regression)
    ids = subset_ids()
    judged = judge_humaneval(passed=len(ids) - failing, failed=failing, errors=0,
                             min_pass_rate=0.7)
    outcome = GateVerdict(verdict=judged.verdict, metric="pass@1", value=judged.pass_rate,
                          threshold=0.7, summary=judged.summary, reason=judged.reason,
                          counts=judged.counts, details=humaneval_rows(outcomes(ids, failing)))
    options = {"--baseline": baseline}
    ctx = GateContext(alias=FakeAlias(ledger, config),  # type: ignore[arg-type]
                      config=SimpleNamespace(getoption=lambda flag, default=None: options.get(
                          flag, default)), scope="promotion")  # type: ignore[arg-type]
    try:
        return record_outcome(ctx, "humaneval", outcome)
    except pytest.fail.Exception:  # a FAIL verdict, recorded first
        return ledger.records()[-1]


def test_a_significant_regression_beyond_max_regression_fails_a_met_threshold(
        tmp_path: Path) -> None:
    rec = _run(tmp_path, failing=6, max_regression=0.05)  # 14/20 = 70%: meets the 70% gate
    assert rec.summary == "HumanEval 14/20 = 70% [95% CI 48-85%] (≥70% gate)"
    assert rec.verdict == "fail"
    incumbent = Ledger(tmp_path / "ledger.jsonl").records()[0]
    assert rec.incumbent_id == incumbent.record_id
    assert f"against incumbent {incumbent.record_id} ({GOOD_MODEL})" in rec.reason
    assert "pass->fail: " + ", ".join(subset_ids()[:6]) in rec.reason
    rates = (rec.comparison or {})["rates"]
    assert rates["pass_to_fail"] == subset_ids()[:6] and rates["fail_to_pass"] == []
    assert rates["p_value"] == pytest.approx(2 * 0.5 ** 6)


def test_without_max_regression_the_comparison_is_shown_and_the_verdict_kept(
        tmp_path: Path) -> None:
    rec = _run(tmp_path, failing=6, max_regression=None)
    assert rec.verdict == "pass" and rec.reason == ""
    lines = (rec.comparison or {})["lines"]
    assert lines[0].startswith(f"vs incumbent {rec.incumbent_id} ({GOOD_MODEL})")
    assert "-30.0 points, exact McNemar p=0.0312 (significant at 0.05)" in lines[1]
    text = str(comparisons([rec])[0])
    assert "coder-chat/humaneval vs incumbent" in text and "pass->fail (6): HumanEval/0" in text


def test_a_regression_within_max_regression_or_not_significant_passes(tmp_path: Path) -> None:
    assert _run(tmp_path / "a", failing=6, max_regression=0.35).verdict == "pass"
    assert _run(tmp_path / "b", failing=5, max_regression=0.05).verdict == "pass"  # p = 0.0625


def test_no_incumbent_keeps_the_verdict_and_says_so(tmp_path: Path) -> None:
    rec = _run(tmp_path, failing=6, max_regression=0.05, with_incumbent=False)
    assert rec.verdict == "pass" and rec.incumbent_id is None
    assert (rec.comparison or {})["lines"] == ["no incumbent"]


def test_a_failed_threshold_stays_fail_with_its_own_reason(tmp_path: Path) -> None:
    rec = _run(tmp_path, failing=20, max_regression=0.05)
    assert rec.verdict == "fail" and "against incumbent" not in rec.reason
    assert len((rec.comparison or {})["rates"]["pass_to_fail"]) == 20


def test_the_baseline_option_names_the_incumbent(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    older = add(ledger, record(minutes=-10), humaneval_rows(outcomes(subset_ids(), 6)))
    rec = _run(tmp_path, failing=6, max_regression=0.05, baseline=older.record_id)
    assert rec.incumbent_id == older.record_id and rec.verdict == "pass"  # no flips against it


def test_error_stays_error_without_a_comparison(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    _good(ledger)
    outcome = GateVerdict(verdict="error", metric="pass@1", value=None, threshold=0.7,
                          summary="HumanEval not measured", reason="timeout")
    alias = FakeAlias(ledger, HumanEvalGate(min_pass_rate=0.7, max_regression=0.05))
    ctx = GateContext(alias=alias, config=SimpleNamespace(  # type: ignore[arg-type]
        getoption=lambda flag, default=None: default), scope="promotion")
    with pytest.raises(GatePlatformError, match="ERROR"):
        record_outcome(ctx, "humaneval", outcome)
    rec = ledger.records()[-1]
    assert rec.verdict == "error" and rec.comparison is None and rec.incumbent_id is None


def test_latency_config_takes_max_regression_and_rows_dump_as_json() -> None:
    assert LatencyGate(max_error_rate=0.05, max_regression=0.1).max_regression == 0.1
    rows = detail_rows(humaneval_rows({"HumanEval/0": True}))
    assert rows[0]["task_id"] == "HumanEval/0" and rows[0]["verdict"] == "passed"


def test_each_kind_reads_its_items_from_its_own_detail_rows() -> None:
    from evals.checks import CheckResult, check_items
    from evals.fim import FimCallResult, FimCaseScore
    from evals.tool_loop import ScenarioResult
    from gates.kinds.fim.gate import FimCaseDetail
    from gates.kinds.fim.judge import case_items
    from gates.kinds.tool_loop.judge import scenario_items

    def fim(case: str, answered: bool, functional: bool) -> FimCaseDetail:
        call = FimCallResult(case_id=case, answered=answered)
        score = FimCaseScore(case_id=case, kind="k", answered=answered, functional=functional)
        return FimCaseDetail(case_id=case, kind="k", direct=call, vkey=call, score=score,
                             same_middle=False)

    assert case_items(detail_rows([fim("c1", True, True), fim("c2", True, False),
                                   fim("c3", False, False)])) == {"c1": True, "c2": False}
    loops = [ScenarioResult(scenario="s", stream=False, passed=True),
             ScenarioResult(scenario="s", stream=True, passed=False),
             ScenarioResult(scenario="t", stream=True, platform_error="503")]
    assert scenario_items(detail_rows(loops)) == {"s[plain]": True, "s[stream]": False}
    checks = [CheckResult(name="dims", outcome="pass", reason=""),
              CheckResult(name="rank", outcome="fail", reason=""),
              CheckResult(name="budget", outcome="error", reason="")]
    assert check_items(detail_rows(checks)) == {"dims": True, "rank": False}
    from evals.bfcl.items import BfclItem
    from gates.kinds.bfcl.judge import entry_items

    entries = [BfclItem(id="simple_python_1", category="simple_python", outcome="passed"),
               BfclItem(id="multiple_2", category="multiple", outcome="failed"),
               BfclItem(id="parallel_3", category="parallel", outcome="error")]
    assert entry_items(detail_rows(entries)) == {"simple_python_1": True, "multiple_2": False}


def test_a_significantly_slower_p95_beyond_max_regression_fails(tmp_path: Path) -> None:
    from gates.comparison import compare_rows

    def rows(base: float) -> list[dict[str, Any]]:
        return [{"ttft_ms": base + i % 7, "itl_ms": [5.0, 6.0], "e2e_ms": 10 * base + i % 11,
                 "error": None} for i in range(40)]

    incumbent = record(gate="latency")
    slower = compare_rows(incumbent, rows(100.0), rows(50.0), items=None,
                          samples=request_samples, max_regression=0.2)
    assert slower.regressed and [p.metric for p in slower.latency] == ["e2e_ms", "itl_ms",
                                                                       "ttft_ms"]
    e2e = slower.latency[0]
    assert e2e.difference > 0 and e2e.low > 0 and e2e.relative == pytest.approx(1.0, rel=0.05)
    assert "e2e_ms p95 1010 vs 510 ms: +500 ms (+98.0%) [95% CI +498 to +502 ms" in slower.lines[1]
    same = compare_rows(incumbent, rows(50.0), rows(50.0), items=None, samples=request_samples,
                        max_regression=0.2)
    assert not same.regressed


def test_a_baseline_of_another_gate_leaves_this_gate_to_its_incumbent(tmp_path: Path) -> None:
    from gates.comparison import incumbent_for

    ledger = Ledger(tmp_path / "ledger.jsonl")
    good = _good(ledger)
    agent = _good(ledger, alias="coder-agent", minutes=3)
    found = incumbent_for(ledger, alias="coder-chat", gate="humaneval", model=CANDIDATE_MODEL,
                          revision=None, baseline=agent.record_id)
    assert found is not None and found.record_id == good.record_id
    named = incumbent_for(ledger, alias="coder-agent", gate="humaneval", model=CANDIDATE_MODEL,
                          revision=None, baseline=agent.record_id)
    assert named is not None and named.record_id == agent.record_id


def test_a_significant_regression_also_settles_an_inconclusive_verdict_as_fail() -> None:
    from gates.comparison import GateComparison, decide

    regressed = GateComparison(incumbent_id="inc", regressed=True, max_regression=0.05)
    verdict, reason = decide("inconclusive", "straddles the gate", regressed)
    assert verdict == "fail" and reason.startswith("straddles the gate; ")
    assert decide("inconclusive", "straddles", GateComparison(incumbent_id="inc")) == (
        "inconclusive", "straddles")
    assert decide("error", "503", regressed) == ("error", "503")
