"""Parallel gate runs: one worker per alias, one run id, statuses written once, one GPU alias."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from deploy.catalog import load_catalog
from deploy.k8s.deployer import KubernetesDeployer
from deploy.local import LocalDeployer
from gates.parallel import alias_of_gate_folder, holds_exclusive_gpu
from gates.reports import RunReport
from tests.gate_runs import run_gates


def test_two_workers_keep_aliases_apart_and_share_one_run(tmp_path: Path) -> None:
    run = run_gates("-n", "2", "-v", "-m", "coder-chat or coder-fim", "--control=known-good",
                    "--humaneval-limit=2", "--fim-limit=2", f"--junitxml={tmp_path / 'junit.xml'}",
                    outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert {r.alias for r in run.records} == {"coder-chat", "coder-fim"}
    assert len({r.run_id for r in run.records}) == 1  # the workers used the controller's run id
    assert "scheduling tests via AliasGroupScheduling" in run.output  # set without --dist
    names = {case.get("name") for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert names == {"humaneval", "fim"}
    # The records name their test as a run without -n does (what --resume matches).
    assert {r.extra["nodeid"] for r in run.records} == {
        "gates::coder-chat::humaneval",
        "gates::coder-fim::fim",
    }
    (path,) = (tmp_path / "build" / "runs").glob("*/report.json")
    report = RunReport.model_validate_json(path.read_text())
    assert {g.alias: g.verdict for g in report.gates} == {"coder-chat": "pass", "coder-fim": "pass"}
    assert all(g.worker and g.worker.startswith("gw") for g in report.gates)
    # A control writes no status; the records are marked so, by every worker.
    assert {r.kind for r in run.records} == {"control"}
    assert not (tmp_path / "catalog.yaml").exists() and report.statuses == {}


def test_the_scheduler_groups_gate_tests_by_alias_folder() -> None:
    aliases = load_catalog().names
    assert alias_of_gate_folder("gates::coder-chat::humaneval", aliases) == "coder-chat"
    assert alias_of_gate_folder("gates::not-an-alias::humaneval", aliases) is None
    assert alias_of_gate_folder("gates/coder_chat/test_humaneval.py::test_x", aliases) == "coder-chat"
    assert alias_of_gate_folder("gates/coder_chat/test_more.py::test_y[3]", aliases) == "coder-chat"
    assert alias_of_gate_folder("gates/not_an_alias/test_x.py::test_x", aliases) is None
    assert alias_of_gate_folder("tests/test_ledger.py::test_x", aliases) is None


def test_gpu_aliases_take_turns_only_on_the_cluster() -> None:
    catalog = load_catalog()
    gpu, cpu = catalog.get("coder-chat"), catalog.get("embeddings")
    cluster = object.__new__(KubernetesDeployer)  # the class is what matters, not a cluster
    local = object.__new__(LocalDeployer)
    assert holds_exclusive_gpu(cluster, gpu)
    assert not holds_exclusive_gpu(cluster, cpu)
    assert not holds_exclusive_gpu(local, gpu)


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gates.parallel import GpuTurn
    turn = GpuTurn(Path(sys.argv[1]))
    turn.take(sys.argv[2])
    start = time.monotonic()
    time.sleep(0.4)
    end = time.monotonic()
    turn.give_back()
    print(start, end)
""")


def test_the_gpu_turn_excludes_other_processes(tmp_path: Path) -> None:
    lock = tmp_path / "gpu-alias.lock"
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), alias], stdout=subprocess.PIPE,
                              text=True) for alias in ("coder-chat", "coder-fim")]
    spans = sorted(tuple(map(float, p.communicate(timeout=30)[0].split())) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    (_, first_end), (second_start, _) = spans
    assert second_start >= first_end  # never two GPU aliases at once
