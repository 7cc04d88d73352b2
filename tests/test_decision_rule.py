"""The catalog's decision rule: `point` as before, `lower-bound` with INCONCLUSIVE end to end."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from deploy.gate_configs import GateConfigError, HumanEvalGate, validate_gate
from deploy.judged_rates import JudgedRate
from deploy.ledger import GateRecord, status_of
from evals.intervals import wilson
from gates.decision import INCONCLUSIVE_EXIT, decide, exit_status
from gates.kinds.humaneval.judge import judge_humaneval
from gates.kinds.registry import GateVerdict, apply_decision
from gates.verdicts import enforce, verdict_message
from tests.gate_runs import REPO_ROOT, run_gates
from tests.test_ledger import record
from tests.test_reports import JUNIT_XSD, cases, report_of


def rate(k: int, n: int, threshold: float = 0.70, direction: str = "min") -> JudgedRate:
    return JudgedRate.of(wilson(k, n, "pass rate"), threshold, direction)


def humaneval_outcome(k: int, n: int = 20, min_rate: float = 0.70) -> GateVerdict:
    """What the humaneval kind returns for k of n tasks passed (its judge, its interval)."""
    judged = judge_humaneval(passed=k, failed=n - k, errors=0, min_pass_rate=min_rate)
    return GateVerdict(verdict=judged.verdict, metric="pass@1", value=judged.pass_rate,
                       threshold=min_rate, summary=judged.summary, reason=judged.reason,
                       counts=judged.counts, judged=[rate(k, n, min_rate)])


# ---- the rule itself -----------------------------------------------------------------------

def test_14_of_20_at_70_is_inconclusive_under_lower_bound_with_a_sample_size() -> None:
    outcome = apply_decision(humaneval_outcome(14), "lower-bound")
    assert outcome.verdict == "inconclusive"
    assert outcome.summary == "HumanEval 14/20 = 70% [95% CI 48-85%] (≥70% gate)"
    assert outcome.reason.startswith("lower-bound rule: pass rate 14/20 = 70% [95% CI 48.1-85.5%] "
                                     "straddles the ≥70% gate; ")
    # 14/20 is exactly the gate: no number of items at that rate settles it, and it says so.
    assert "no number of items settles it at the observed rate" in outcome.reason
    # 15/20 would: the estimate of how many items names a number.
    fifteen = apply_decision(humaneval_outcome(15), "lower-bound")
    assert fifteen.verdict == "inconclusive"
    assert "about 321 items at the observed rate would settle it" in fifteen.reason


def test_the_point_rule_is_unchanged() -> None:
    for k, verdict in [(14, "pass"), (13, "fail"), (20, "pass"), (5, "fail"), (18, "pass")]:
        before = humaneval_outcome(k)
        after = apply_decision(before, "point")
        assert after == before and after.verdict == verdict


@pytest.mark.parametrize("rule", ["point", "lower-bound"])
def test_20_of_20_passes_and_5_of_20_fails_under_both_rules(rule: str) -> None:
    assert apply_decision(humaneval_outcome(20), rule).verdict == "pass"
    failed = apply_decision(humaneval_outcome(5), rule)
    assert failed.verdict == "fail"
    assert failed.reason == "pass rate 25.0% is below the 70% gate"  # the kind's own reason


def test_a_max_rate_clears_by_its_upper_bound() -> None:
    mangled = [rate(1, 100, 0.20, "max")]  # [0.2-5.4%]: wholly under 20%
    assert decide("pass", mangled, "lower-bound") == ("pass", "")
    wide = [rate(0, 20, 0.05, "max")]  # 0/20 errors cannot prove <= 5%: [0-16%]
    verdict, reason = decide("pass", wide, "lower-bound")
    assert verdict == "inconclusive" and "straddles the ≤5% gate" in reason
    assert "about 73 items" in reason
    assert decide("fail", [rate(12, 20, 0.2, "max")], "lower-bound")[0] == "fail"  # [39-78%]


def test_error_stays_error_and_fail_beats_inconclusive() -> None:
    assert decide("error", [rate(14, 20)], "lower-bound", reason="5xx") == ("error", "5xx")
    both = [rate(14, 20), rate(2, 20)]  # one straddles, one is wholly below 70%
    assert decide("fail", both, "lower-bound", reason="low")[0] == "fail"
    # A check besides the rates failed (spend, wire...): FAIL under any rule.
    assert decide("fail", [rate(14, 20)], "lower-bound", other_checks="fail",
                  reason="spend flat") == ("fail", "spend flat")
    # A kind that does not say: a point FAIL no judged rate explains is another check's.
    assert decide("fail", [rate(20, 20)], "lower-bound", reason="x")[0] == "fail"
    # The other checks erred (key accounting) and no rate is proven to fail: ERROR.
    assert decide("fail", [rate(13, 20)], "lower-bound", other_checks="error")[0] == "error"


def test_pass_needs_every_rate_and_reported_rates_do_not_decide() -> None:
    reported = JudgedRate.of(wilson(1, 20, "pass@10"), None)  # no threshold: shown, not gated
    assert decide("pass", [rate(20, 20), reported], "lower-bound")[0] == "pass"
    verdict, reason = decide("pass", [rate(20, 20), rate(15, 20)], "lower-bound")
    assert verdict == "inconclusive" and reason.count("straddles") == 1


def test_the_catalog_field_defaults_to_point_and_refuses_anything_else() -> None:
    assert HumanEvalGate(min_pass_rate=0.7).decision == "point"
    gate = validate_gate("coder-chat", "humaneval", {"min_pass_rate": 0.7, "decision": "lower-bound"})
    assert gate.decision == "lower-bound"
    with pytest.raises(GateConfigError, match="gates.humaneval: decision"):
        validate_gate("coder-chat", "humaneval", {"min_pass_rate": 0.7, "decision": "lowerbound"})


# ---- the verdict in the ledger, the test and the exit code --------------------------------

def inconclusive_record(minutes: int) -> GateRecord:
    return record(verdict="inconclusive", minutes=minutes,
                  summary="HumanEval 14/20 = 70% [95% CI 48-85%] (≥70% gate)",
                  reason="lower-bound rule: pass rate 14/20 = 70% straddles the ≥70% gate",
                  judged=[rate(14, 20)])


def test_an_inconclusive_record_keeps_the_last_proven_status() -> None:
    proven = record(minutes=0)
    status = status_of([proven, inconclusive_record(5)])
    assert status == ("HumanEval 18/20 = 90% (≥70% gate) — INCONCLUSIVE 2026-11-01: HumanEval "
                      "14/20 = 70% [95% CI 48-85%] (≥70% gate) (lower-bound rule: pass rate "
                      "14/20 = 70% straddles the ≥70% gate)")
    failed = record(minutes=0, verdict="fail", summary="HumanEval 3/20 = 15% (≥70% gate)")
    assert status_of([failed, inconclusive_record(5)]).startswith(
        "FAIL: HumanEval 3/20 = 15% (≥70% gate) — INCONCLUSIVE ")
    # Nothing proven before: the INCONCLUSIVE alone, never as a passed status.
    alone = status_of([inconclusive_record(5)])
    assert alone.startswith("INCONCLUSIVE 2026-11-01: HumanEval 14/20")
    # A later proof replaces it.
    assert status_of([inconclusive_record(5), record(minutes=9)]) == "HumanEval 18/20 = 90% (≥70% gate)"


def test_records_before_intervals_still_read() -> None:
    old = record().model_dump(mode="json")
    del old["judged"]
    assert GateRecord.model_validate(old).judged == []
    again = inconclusive_record(1)
    assert GateRecord.model_validate_json(again.model_dump_json()) == again


def test_enforce_fails_the_test_with_the_inconclusive_message() -> None:
    found = inconclusive_record(1)
    with pytest.raises(pytest.fail.Exception) as caught:
        enforce(found)
    assert str(caught.value) == verdict_message(found)
    assert str(caught.value).startswith("coder-chat/humaneval: INCONCLUSIVE: HumanEval 14/20")


@pytest.mark.parametrize(("verdicts", "expected"), [
    (["pass", "inconclusive"], INCONCLUSIVE_EXIT),
    (["inconclusive"], INCONCLUSIVE_EXIT),
    (["inconclusive", "fail"], 1),
    (["inconclusive", "error"], 1),
    (["inconclusive", None], 1),  # a gate without a verdict did not pass either
    (["fail"], 1),
])
def test_the_exit_code_is_its_own_only_when_nothing_else_failed(verdicts, expected) -> None:
    assert exit_status(1, verdicts, 1) == expected
    assert exit_status(0, ["pass"], 1) == 0 and exit_status(2, ["inconclusive"], 1) == 2


# ---- end to end through a control ------------------------------------------------------------

def catalog_with_lower_bound(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO_ROOT / "deploy" / "catalog.yaml").read_text(encoding="utf-8"))
    alias = next(a for a in data["aliases"] if a["alias"] == "coder-chat")
    alias["gates"] = copy.deepcopy(alias["gates"])
    alias["gates"]["humaneval"]["decision"] = "lower-bound"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_known_good_on_five_tasks_is_inconclusive_end_to_end(tmp_path: Path) -> None:
    """5/5 has a 95% interval of 57-100%: it cannot prove a 70% gate; 9 tasks at 5/5 would."""
    junit = tmp_path / "junit.xml"
    run = run_gates("--catalog", str(catalog_with_lower_bound(tmp_path)), "-m", "coder-chat",
                    "--control", "known-good", "--humaneval-limit=5", f"--junitxml={junit}",
                    outputs=tmp_path / "run")
    assert run.returncode == INCONCLUSIVE_EXIT, run.output[-3000:]
    found = run.record("humaneval")
    assert found.verdict == "inconclusive"
    assert found.summary == "HumanEval 5/5 = 100% [95% CI 57-100%] (≥70% gate)"
    assert "about 9 items at the observed rate would settle it" in found.reason
    assert [(j.successes, j.n, j.threshold, j.direction) for j in found.judged] == [(5, 5, 0.7, "min")]
    assert "INCONCLUSIVE" in run.output  # the verdict table and its reason line
    JUNIT_XSD.validate(junit)
    case = cases(junit)["humaneval"]
    failure = case.find("failure")
    assert failure is not None and case.find("error") is None
    assert "coder-chat/humaneval: INCONCLUSIVE: HumanEval 5/5" in failure.get("message")
    report = report_of(run)
    assert report.outcome == "inconclusive" and report.exit_status == INCONCLUSIVE_EXIT
    assert report.verdicts == {"inconclusive": 1} and not report.passed
    assert report.gates[0].records[0].judged == found.judged
    folder = next((run.outputs / "build" / "runs").glob("*/"))
    assert "**INCONCLUSIVE**" in (folder / "summary.md").read_text()
    html = (folder / "report.html").read_text()
    assert 'class="badge st-inconclusive"' in html and "[95% CI 57-100%]" in html
    assert run.status("coder-chat").startswith("INCONCLUSIVE ")  # never a passed status
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"
