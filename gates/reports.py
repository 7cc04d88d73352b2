"""A gate run's reports for CI: JUnit properties and error elements, a JSON report, a Markdown summary.

The ledger is the source: every report reads the records of this run id, so a parallel run
(records appended by the workers) and a resumed one (records from the interrupted run) report
the same way. ERROR and FAIL stay apart everywhere: in JUnit a gate whose verdict is error is
an `<error>` element (pytest writes a call-phase exception as `<failure>`, so the file is
rewritten at session end), in JSON and Markdown by the verdict field.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from deploy.catalog import atomic_write_text
from deploy.ledger import GateRecord, Ledger, RecordKind, Verdict, now
from deploy.litellm_admin import redact_text
from gates.decision import INCONCLUSIVE_EXIT, judged_text

PROPERTY_PREFIX = "modelgate"
ALIAS_PROPERTY = f"{PROPERTY_PREFIX}.alias"  # on every gate test, set at collection
Outcome = Literal["passed", "failed", "error", "skipped", "interrupted"]
RunOutcome = Literal["passed", "failed", "interrupted", "inconclusive"]
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C) before the gate's verdict: nothing proven, no status written"
_VERDICT_RANK = {"pass": 0, "inconclusive": 1, "fail": 2, "error": 3}


# ---- JUnit properties ---------------------------------------------------------------------

def record_properties(record: GateRecord) -> list[tuple[str, str]]:
    """The JUnit properties of one verdict: `modelgate.<gate>.<field>`."""
    counts = record.counts
    fields = {
        "alias": record.alias,
        "verdict": record.verdict,
        "metric": record.metric,
        "value": "" if record.value is None else f"{record.value:g}",
        "threshold": "" if record.threshold is None else f"{record.threshold:g}",
        "counts": f"passed={counts.passed} failed={counts.failed} errors={counts.errors} total={counts.total}",
        "summary": record.summary,
        "reason": record.reason,
        "judged": "; ".join(judged_text(rate) for rate in record.judged),
        "run_id": record.run_id,
        "record_id": record.record_id,
    }
    return [(f"{PROPERTY_PREFIX}.{record.gate}.{name}", value) for name, value in fields.items()]


def record_ids(properties: list[tuple[str, object]]) -> list[str]:
    return [str(value) for name, value in properties
            if name.startswith(f"{PROPERTY_PREFIX}.") and name.endswith(".record_id")]


def errors_as_error_elements(path: Path) -> int:
    """Rewrite a pytest JUnit file: a testcase whose gate verdict is error gets `<error>`, not
    `<failure>`; the suite's counts follow. Returns the number of testcases changed."""
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            verdicts = [prop.get("value") for prop in case.iter("property")
                        if (prop.get("name") or "").startswith(f"{PROPERTY_PREFIX}.")
                        and (prop.get("name") or "").endswith(".verdict")]
            if "error" not in verdicts:
                continue
            for element in case.findall("failure"):
                element.tag = "error"
                moved += 1
        if moved:
            suite.set("failures", str(int(suite.get("failures", "0")) - moved))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        _write_junit(path, tree)
    return changed


def _write_junit(path: Path, tree: ET.ElementTree) -> None:
    text = ET.tostring(tree.getroot(), encoding="unicode")
    atomic_write_text(path, '<?xml version="1.0" encoding="utf-8"?>' + text)


def interrupted_as_error_elements(path: Path, gates: list[GateOutcome]) -> int:
    """Give each gate test a Ctrl-C cut short an `<error>` testcase (pytest writes none for it:
    the test never reported), so CI shows the run as broken, not as 0 tests. Returns how many."""
    cut = [gate for gate in gates if gate.outcome == "interrupted"]
    if not cut:
        return 0
    tree = ET.parse(path)
    root = tree.getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name="pytest", errors="0", failures="0",
                              skipped="0", tests="0")
    for gate in cut:
        # As pytest's junitxml names a nodeid: the path dotted, the last part is the name.
        *scope, name = gate.test.split("::")
        classname = ".".join([scope[0].removesuffix(".py").replace("/", "."), *scope[1:]])
        case = next((c for c in suite.iter("testcase")
                     if c.get("classname") == classname and c.get("name") == name), None)
        # pytest leaves the test it was running as a bare `<testcase time=...>` (named only by
        # its call report, which never came): name it.
        case = case or next((c for c in suite.iter("testcase") if not c.get("name")), None)
        if case is not None:
            case.set("classname", classname)
            case.set("name", name)
        else:
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
        for child in list(case):
            if child.tag in ("failure", "error", "skipped"):
                case.remove(child)
        error = ET.SubElement(case, "error", message=f"interrupted: {gate.test}")
        error.text = gate.message or INTERRUPTED_MESSAGE
        suite.set("errors", str(int(suite.get("errors", "0")) + 1))
    suite.set("tests", str(sum(1 for _ in suite.iter("testcase"))))  # pytest counted it out
    _write_junit(path, tree)
    return len(cut)


# ---- the JSON report ----------------------------------------------------------------------

class GateOutcome(BaseModel):
    """One selected gate test: how pytest ended it and the ledger verdicts it recorded."""

    test: str
    alias: str | None
    outcome: Outcome
    verdict: Verdict | None
    resumed: bool = False
    worker: str | None = None
    message: str = ""
    records: list[GateRecord] = []


class RunReport(BaseModel):
    """The machine-readable report of one gate run (`--modelgate-json`)."""

    schema_version: Literal[1] = 1
    run_id: str
    platform: Literal["embedded", "remote"]
    control: str | None = None
    kind: RecordKind = "gate"  # smoke runs and controls write no eval status
    started_at: datetime
    finished_at: datetime
    exit_status: int
    outcome: RunOutcome = "passed"
    interrupted: bool = False
    passed: bool
    notes: list[str] = []
    verdicts: dict[str, int]
    gates: list[GateOutcome]
    statuses: dict[str, str]
    ledger: str
    catalog: str
    table: str


class TestOutcomes:
    """Controller-side collector of the gate tests' outcomes (xdist forwards worker reports)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, alias_of_report):
        self.alias_of_report = alias_of_report
        self.started_at = now()
        self.outcomes: dict[str, GateOutcome] = {}
        self.properties: dict[str, list[tuple[str, object]]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        alias = self.alias_of_report(report)
        if alias is None:
            return
        held = self.outcomes.get(report.nodeid)
        if held is None:
            worker = getattr(getattr(report, "node", None), "gateway", None)
            test = report.nodeid.removesuffix(f"@{alias}")  # xdist's loadgroup suffix
            held = GateOutcome(test=test, alias=alias, outcome="passed", verdict=None,
                               worker=getattr(worker, "id", None))
            self.outcomes[report.nodeid] = held
        self.properties[report.nodeid] = list(report.user_properties)
        if dict(report.user_properties).get(f"{PROPERTY_PREFIX}.resumed") == "true":
            held.resumed = True
        if report.when == "call" and report.outcome != "passed":
            held.outcome = "skipped" if report.skipped else "failed"
        elif report.when != "call" and report.failed:
            held.outcome = "error"
        elif report.when == "setup" and report.skipped:
            held.outcome = "skipped"
        if report.outcome != "passed" and not held.message:
            held.message = redact_text(_short(report))[:2000]

    def gates(self, records: list[GateRecord]) -> list[GateOutcome]:
        by_id = {record.record_id: record for record in records}
        out = []
        for nodeid, outcome in self.outcomes.items():
            mine = [by_id[rid] for rid in record_ids(self.properties.get(nodeid, [])) if rid in by_id]
            verdict = max((r.verdict for r in mine), key=_VERDICT_RANK.__getitem__, default=None)
            if verdict is None and outcome.outcome == "error":
                verdict = "error"  # the platform never got as far as a verdict
            elif verdict is None and outcome.outcome == "failed":
                verdict = "error"  # the gate broke before judging: nothing was proven
            out.append(outcome.model_copy(update={"records": mine, "verdict": verdict}))
        return out


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr or "")


def run_records(ledger: Path, run_id: str) -> list[GateRecord]:
    """This run's records, the latest per (alias, gate) (a resumed gate may have an older ERROR)."""
    latest: dict[tuple[str, str], GateRecord] = {}
    for record in Ledger(ledger).records():
        if record.run_id == run_id:
            latest[(record.alias, record.gate)] = record
    return list(latest.values())


def run_notes(*, kind: RecordKind, why: str, interrupted: bool,
              unfinished: list[tuple[str, str | None]]) -> list[str]:
    """What a reader must know beside the verdicts: an interruption, a run that writes no status."""
    notes = []
    if interrupted:
        cut = ", ".join(f"{test} ({alias})" if alias else test for test, alias in unfinished)
        notes.append("INTERRUPTED" + (f": {cut} did not finish; no status written for it" if cut
                                      else "; gates not reached did not run"))
    if kind == "smoke":
        notes.append(f"smoke run ({why}): recorded in the ledger as kind 'smoke'; "
                     "no eval status or table written")
    elif kind == "control":
        notes.append(f"control run ({why}): recorded in the ledger as kind 'control'; "
                     "no eval status or table written")
    return notes


def mark_interrupted(gates: list[GateOutcome],
                     unfinished: list[tuple[str, str | None]]) -> list[GateOutcome]:
    """The gates with each test a Ctrl-C cut short marked interrupted (added if pytest never
    reported it; its setup may have reported "passed")."""
    out = list(gates)
    for test, alias in unfinished:
        update = {"outcome": "interrupted", "verdict": None, "message": INTERRUPTED_MESSAGE}
        index = next((i for i, g in enumerate(out)
                      if g.test == test or g.test == test.split("@")[0]), None)
        if index is None:
            out.append(GateOutcome(test=test, alias=alias, **update))
        elif not out[index].records:
            out[index] = out[index].model_copy(update=update)
    return out


def build_report(*, run_id: str, platform: Literal["embedded", "remote"], control: str | None,
                 started_at: datetime, exit_status: int, gates: list[GateOutcome],
                 statuses: dict[str, str], ledger: Path, catalog: Path, table: Path,
                 kind: RecordKind = "gate", interrupted: bool = False,
                 notes: list[str] | None = None) -> RunReport:
    verdicts = Counter(g.verdict or ("interrupted" if g.outcome == "interrupted" else "none")
                       for g in gates)
    interrupted = interrupted or any(g.outcome == "interrupted" for g in gates)
    passed = exit_status == 0 and not interrupted
    outcome: RunOutcome = ("interrupted" if interrupted else "passed" if passed
                           else "inconclusive" if exit_status == INCONCLUSIVE_EXIT else "failed")
    return RunReport(
        run_id=run_id, platform=platform, control=control, kind=kind, started_at=started_at,
        finished_at=now(), exit_status=exit_status, outcome=outcome, interrupted=interrupted,
        passed=passed, notes=notes or [], verdicts=dict(sorted(verdicts.items())), gates=gates,
        statuses=statuses, ledger=str(ledger), catalog=str(catalog), table=str(table),
    )


def write_json(report: RunReport, path: Path) -> None:
    atomic_write_text(path, report.model_dump_json(indent=2) + "\n")


# ---- the Markdown summary -----------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport) -> str:
    head = report.outcome.upper()
    where = "embedded platform (stand-ins)" if report.platform == "embedded" else "remote platform"
    if report.control:
        where += f", {report.control} control"
    lines = [
        f"## modelgate run `{report.run_id}`: {head}",
        "",
        f"{len(report.gates)} gate test(s) on the {where}; exit status {report.exit_status}. "
        + ", ".join(f"{n} {v.upper()}" for v, n in report.verdicts.items()),
        "",
        *[f"**{_cell(note)}**\n" for note in report.notes],
        "| alias | gate | verdict | result | served by | ledger record |",
        "|---|---|---|---|---|---|",
    ]
    for gate in report.gates:
        if not gate.records:
            verdict = (gate.verdict or gate.outcome).upper()
            lines.append(f"| {gate.alias} | `{gate.test.split('::')[-1]}` | **{verdict}** | "
                         f"{_cell(gate.message or 'no verdict recorded')} | | |")
        for record in gate.records:
            result = record.summary + (f" ({record.reason})" if record.reason else "")
            served = record.target.model + (" (stand-in)" if record.target.stand_in else "")
            resumed = " (resumed)" if gate.resumed else ""
            lines.append(f"| {record.alias} | {record.gate} | **{record.verdict.upper()}**{resumed} | "
                         f"{_cell(result)} | {_cell(served)} | `{record.record_id}` |")
    compared = [r for gate in report.gates for r in gate.records if r.comparison]
    if compared:
        lines += ["", "Against the incumbent:", ""]
        for record in compared:
            text = "; ".join((record.comparison or {}).get("lines") or [])
            lines.append(f"- **{record.alias}/{record.gate}**: {_cell(text)}")
    if report.statuses:
        lines += ["", "Eval status written:", ""]
        lines += [f"- **{alias}**: {_cell(status)}" for alias, status in sorted(report.statuses.items())]
    records = [record for gate in report.gates for record in gate.records]
    if records:
        lines += ["", "<details><summary>Ledger records of these verdicts "
                  f"(<code>{report.ledger}</code>)</summary>", "", "```json"]
        lines += [record.model_dump_json() for record in records]
        lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n"


def write_markdown(text: str, path: Path | None) -> None:
    if path is not None:
        atomic_write_text(path, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        # The CI step summary is appended to (other steps write there too).
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
