"""Reports of a gate run: JUnit (schema-valid, properties, ERROR as <error>), JSON, Markdown."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

from fixtures.platform.reference_backends import ScriptedBackend, find_humaneval_problem
from gates.reports import RunReport, errors_as_error_elements
from tests.gate_runs import run_gates
from tests.routed_backend import routed_backend

JUNIT_XSD = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit.xsd")


def cases(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def props(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def report_of(run) -> RunReport:
    (path,) = (run.outputs / "build" / "runs").glob("*/report.json")
    return RunReport.model_validate_json(path.read_text())  # the JSON report against its model


def test_error_verdicts_become_error_elements_and_counts_follow(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
        'failures="2" skipped="0" tests="2"><testcase classname="c" name="broken">'
        '<properties><property name="modelgate.humaneval.verdict" value="error"/></properties>'
        '<failure message="GatePlatformError: no answer">tb</failure></testcase>'
        '<testcase classname="c" name="wrong"><properties>'
        '<property name="modelgate.humaneval.verdict" value="fail"/></properties>'
        '<failure message="Failed: FAIL">tb</failure></testcase></testsuite></testsuites>'
    )
    assert errors_as_error_elements(path) == 1
    JUNIT_XSD.validate(path)
    found = cases(path)
    assert found["broken"].find("error") is not None and found["broken"].find("failure") is None
    assert found["wrong"].find("failure") is not None
    suite = ET.parse(path).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")


def test_a_passing_run_writes_valid_junit_json_and_markdown(tmp_path: Path) -> None:
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    run = run_gates("-m", "coder-chat", "--control=known-good", f"--junitxml={tmp_path / 'junit.xml'}",
                    f"--modelgate-markdown={tmp_path / 'summary.md'}", outputs=tmp_path,
                    env={**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary)})
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("humaneval")
    JUNIT_XSD.validate(tmp_path / "junit.xml")
    case = cases(tmp_path / "junit.xml")["humaneval"]
    assert props(case) == {
        "modelgate.alias": "coder-chat",
        "modelgate.humaneval.alias": "coder-chat",
        "modelgate.humaneval.verdict": "pass",
        "modelgate.humaneval.metric": "pass@1",
        "modelgate.humaneval.value": "1",
        "modelgate.humaneval.threshold": "0.7",
        "modelgate.humaneval.counts": "passed=20 failed=0 errors=0 total=20",
        "modelgate.humaneval.summary": "HumanEval 20/20 = 100% [95% CI 84-100%] (≥70% gate)",
        "modelgate.humaneval.reason": "",
        "modelgate.humaneval.judged": "pass rate 20/20 = 100% [95% CI 84-100%] (≥70% gate)",
        "modelgate.humaneval.run_id": record.run_id,
        "modelgate.humaneval.record_id": record.record_id,
    }
    report = report_of(run)
    assert report.passed and report.exit_status == 0 and report.verdicts == {"pass": 1}
    (gate,) = report.gates
    assert gate.test == "gates::coder-chat::humaneval"
    assert gate.records[0].record_id == record.record_id and gate.verdict == "pass"
    assert report.kind == "control" and report.statuses == {}  # a control writes no status
    assert report.outcome == "passed" and not report.interrupted
    summary = (tmp_path / "summary.md").read_text()
    assert ("| coder-chat | humaneval | **PASS** | HumanEval 20/20 = 100% [95% CI 84-100%] (≥70% gate)"
            in summary)
    assert f"`{record.record_id}`" in summary and record.model_dump_json() in summary
    assert step_summary.read_text() == "earlier step\n" + summary + "\n"  # appended, not replaced
    assert "sk-" not in summary.replace("sk-...", "")


def _answers_the_probe_only(request_json: dict) -> str:
    if find_humaneval_problem(request_json) is None:
        return "pong"  # the route check's one-token probe
    raise RuntimeError("scripted: the backend breaks on real work")


def test_fail_is_a_failure_and_error_is_an_error_element(tmp_path: Path) -> None:
    bad = run_gates("-m", "coder-chat", "--control=known-bad", f"--junitxml={tmp_path / 'bad.xml'}",
                    outputs=tmp_path / "bad")
    assert bad.returncode == 1
    JUNIT_XSD.validate(tmp_path / "bad.xml")
    case = cases(tmp_path / "bad.xml")["humaneval"]
    assert case.find("failure") is not None and case.find("error") is None
    assert report_of(bad).gates[0].verdict == "fail"

    with routed_backend("coder-chat", ScriptedBackend(_answers_the_probe_only),
                        tmp_path / "platform") as routed:
        broken = run_gates("-m", "coder-chat", *routed.gateway_args, "--humaneval-limit=1",
                           f"--junitxml={tmp_path / 'error.xml'}", outputs=tmp_path / "error",
                           env=routed.env())
    assert broken.returncode == 1
    assert broken.record("humaneval").verdict == "error"  # raised in the call phase
    JUNIT_XSD.validate(tmp_path / "error.xml")
    case = cases(tmp_path / "error.xml")["humaneval"]
    assert case.find("error") is not None and case.find("failure") is None
    assert "GatePlatformError" in case.find("error").get("message")
    suite = ET.parse(tmp_path / "error.xml").getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")
    report = report_of(broken)
    assert report.gates[0].verdict == "error" and not report.passed
    assert "**ERROR**" in (next((broken.outputs / "build" / "runs").glob("*/summary.md"))).read_text()


def test_collect_only_lists_the_gates_and_marker_expressions_select(tmp_path: Path) -> None:
    listed = run_gates("--collect-only", "-q", "-m", "coder-chat", outputs=tmp_path)
    assert listed.returncode == 0, listed.output
    assert "coder-chat: humaneval (HumanEval pass rate at or above the catalog's threshold" in listed.output
    assert "gates::coder-chat::humaneval" in listed.output
    others = run_gates("--collect-only", "-q", "-m", "not coder-chat and not qwen-local", outputs=tmp_path)
    assert others.returncode == 0, others.output
    assert "gates::coder-chat::" not in others.output and "gates::qwen-local::" not in others.output
    assert "gates::coder-fim::fim" in others.output
    assert not (tmp_path / "build" / "runs").exists()  # listing gates writes no report


# ---- an interrupted run, a smoke run, a control (issue 21.5) ------------------------------

INTERRUPTED_TEST = "gates::coder-chat::humaneval"


def _report(gates, *, exit_status: int = 2, interrupted: bool = True, kind: str = "gate",
            notes: list[str] | None = None) -> RunReport:
    from datetime import UTC, datetime

    from gates.reports import build_report

    return build_report(
        run_id="r1", platform="remote", control=None, started_at=datetime(2026, 12, 4, tzinfo=UTC),
        exit_status=exit_status, gates=gates, statuses={}, ledger=Path("l"), catalog=Path("c"),
        table=Path("t"), kind=kind, interrupted=interrupted, notes=notes,
    )


def test_the_gate_a_ctrl_c_cut_short_is_interrupted_even_after_a_passed_setup() -> None:
    from gates.reports import GateOutcome, mark_interrupted

    setup_only = GateOutcome(test=INTERRUPTED_TEST, alias="coder-chat", outcome="passed", verdict=None)
    (marked,) = mark_interrupted([setup_only], [(INTERRUPTED_TEST, "coder-chat")])
    assert (marked.outcome, marked.verdict) == ("interrupted", None)
    (added,) = mark_interrupted([], [(INTERRUPTED_TEST, "coder-chat")])
    assert added.test == INTERRUPTED_TEST and added.outcome == "interrupted"
    assert mark_interrupted([setup_only], []) == [setup_only]


def test_an_interrupted_report_never_reads_passed() -> None:
    from gates.reports import GateOutcome, render_markdown, run_notes

    gate = GateOutcome(test=INTERRUPTED_TEST, alias="coder-chat", outcome="interrupted", verdict=None)
    notes = run_notes(kind="gate", why="", interrupted=True, unfinished=[(INTERRUPTED_TEST, "coder-chat")])
    report = _report([gate], notes=notes)
    assert (report.outcome, report.passed, report.interrupted) == ("interrupted", False, True)
    assert report.verdicts == {"interrupted": 1}
    text = render_markdown(report)
    assert text.startswith("## modelgate run `r1`: INTERRUPTED") and "PASSED" not in text
    assert f"{INTERRUPTED_TEST} (coder-chat) did not finish; no status written for it" in text
    assert "| coder-chat | `humaneval` | **INTERRUPTED** |" in text
    # Interrupted between gates (exit 0 is impossible then, but the flag alone decides).
    assert _report([], exit_status=0, interrupted=True).outcome == "interrupted"
    assert _report([], exit_status=1, interrupted=False).outcome == "failed"
    assert _report([], exit_status=0, interrupted=False).outcome == "passed"


def test_smoke_and_control_notes_say_no_status_was_written() -> None:
    from gates.reports import run_notes

    smoke = run_notes(kind="smoke", why="--humaneval-limit=2", interrupted=False, unfinished=[])
    assert smoke == ["smoke run (--humaneval-limit=2): recorded in the ledger as kind 'smoke'; "
                     "no eval status or table written"]
    (control,) = run_notes(kind="control", why="--control=known-good", interrupted=False, unfinished=[])
    assert control.startswith("control run (--control=known-good)")
    assert run_notes(kind="gate", why="", interrupted=False, unfinished=[]) == []


def test_the_unfinished_gate_becomes_a_named_error_testcase(tmp_path: Path) -> None:
    from gates.reports import GateOutcome, interrupted_as_error_elements

    path = tmp_path / "junit.xml"
    # What pytest writes for a test interrupted after its setup: a bare, nameless testcase.
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
                    'errors="0" failures="0" skipped="0" tests="0"><testcase time="0.8" />'
                    '</testsuite></testsuites>')
    gate = GateOutcome(test=INTERRUPTED_TEST, alias="coder-chat", outcome="interrupted", verdict=None)
    assert interrupted_as_error_elements(path, [gate]) == 1
    JUNIT_XSD.validate(path)
    case = cases(path)["humaneval"]
    assert case.get("classname") == "gates.coder-chat"
    assert case.find("error").get("message") == f"interrupted: {INTERRUPTED_TEST}"
    suite = ET.parse(path).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")
    # No bare testcase (interrupted before setup ended): one is added.
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
                    'errors="0" failures="0" skipped="0" tests="0"></testsuite></testsuites>')
    assert interrupted_as_error_elements(path, [gate]) == 1
    JUNIT_XSD.validate(path)
    assert cases(path)["humaneval"].find("error") is not None
    passed = gate.model_copy(update={"outcome": "passed"})
    assert interrupted_as_error_elements(path, [passed]) == 0
