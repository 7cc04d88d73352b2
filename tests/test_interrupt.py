"""A gate run interrupted mid-gate (Ctrl-C) says so everywhere and proves nothing (issue 21.5).

The backend blocks on the first HumanEval request until the test has sent SIGINT, so the
interrupt lands inside the gate every time, not by timing luck.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

from deploy.ledger import Ledger
from fixtures.platform.reference_backends import (
    ScriptedBackend,
    canonical_humaneval_reply,
    find_humaneval_problem,
)
from tests.gate_runs import REPO_ROOT, gate_command
from tests.routed_backend import routed_backend

JUNIT_XSD = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit.xsd")
TEST_ID = "gates::coder-chat::humaneval"


def test_ctrl_c_mid_gate_is_reported_interrupted_and_writes_no_status(tmp_path: Path) -> None:
    reached, release = threading.Event(), threading.Event()

    def reply(request_json: dict) -> str:
        if find_humaneval_problem(request_json) is None:
            return "pong"  # the route check's probe
        reached.set()  # the gate is asking the model: interrupt now
        release.wait(60)
        return "    return None\n"

    outputs, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    junit = tmp_path / "junit.xml"
    with routed_backend("coder-chat", ScriptedBackend(reply), tmp_path / "platform") as routed:
        command = gate_command("-m", "coder-chat", *routed.gateway_args, f"--junitxml={junit}",
                               outputs=outputs)
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=routed.env(TMPDIR=str(tmp)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        try:
            assert reached.wait(300), "the gate never asked the model"
            proc.send_signal(signal.SIGINT)
        finally:
            release.set()
            output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, output[-3000:]  # pytest's "interrupted"

    (run_folder,) = (outputs / "build" / "runs").iterdir()
    report = json.loads((run_folder / "report.json").read_text())
    assert report["outcome"] == "interrupted" and report["interrupted"] is True
    assert report["passed"] is False and report["statuses"] == {}
    (gate,) = report["gates"]
    assert gate["test"] == TEST_ID and gate["outcome"] == "interrupted" and gate["verdict"] is None
    summary = (run_folder / "summary.md").read_text()
    assert summary.startswith(f"## modelgate run `{run_folder.name}`: INTERRUPTED")
    assert "PASSED" not in summary and f"{TEST_ID} (coder-chat) did not finish" in summary

    JUNIT_XSD.validate(junit)
    suite = ET.parse(junit).getroot().find("testsuite")
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == "humaneval"]
    assert case.find("error") is not None and "interrupted" in case.find("error").get("message")
    assert suite.get("errors") == "1" and suite.get("tests") == "1"

    # Nothing proven: no verdict in the ledger, no status, no table, no temporary folder left.
    assert not [r for r in Ledger(outputs / "ledger.jsonl").records() if r.gate == "humaneval"]
    assert not (outputs / "catalog.yaml").exists() and not (outputs / "served-models.md").exists()
    # (The sandbox's slot locks are shared by every process on the machine and stay by design:
    # answers are scored as they arrive, so the sandbox may have run before the interrupt.)
    assert [p.name for p in tmp.iterdir() if p.name != "modelgate-sandbox-slots"] == []
    assert "INTERRUPTED" in output


def test_a_smoke_run_is_recorded_as_such_and_writes_no_status(tmp_path: Path) -> None:
    from tests.gate_runs import run_gates

    def reply(request_json: dict) -> str:
        if find_humaneval_problem(request_json) is None:
            return "pong"
        return canonical_humaneval_reply(request_json)

    with routed_backend("coder-chat", ScriptedBackend(reply), tmp_path / "platform") as routed:
        run = run_gates("-m", "coder-chat", *routed.gateway_args, "--humaneval-limit=2",
                        outputs=tmp_path, env=routed.env())
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("humaneval")
    assert (record.kind, record.scope, record.verdict) == ("smoke", "promotion", "pass")
    assert not (tmp_path / "catalog.yaml").exists()  # the status and the table stay as they were
    (report_path,) = (tmp_path / "build" / "runs").glob("*/report.json")
    report = json.loads(report_path.read_text())
    assert report["kind"] == "smoke" and report["statuses"] == {}
    assert any("smoke run (--humaneval-limit=2)" in note for note in report["notes"])
    assert "smoke run (--humaneval-limit=2)" in run.output
