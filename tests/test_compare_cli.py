"""`modelgate-catalog compare` from the ledger alone, and a control run against an incumbent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.ledger import Ledger
from gates.catalog_compare import main
from tests.gate_runs import run_gates
from tests.synthetic_ledger import (
    CANDIDATE_MODEL,
    add,
    humaneval_rows,
    outcomes,
    record,
    subset_ids,
)


def _two_runs(tmp_path: Path, failing: int) -> tuple[Path, str, str]:
    """A known-good incumbent (20/20) and a candidate with its first `failing` tasks failed."""
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    good = add(ledger, record(record_id="incumbent20of20"),
               humaneval_rows(outcomes(subset_ids(), 0)))
    bad = add(ledger, record(record_id=f"candidate{20 - failing}of20", model=CANDIDATE_MODEL,
                             minutes=60, passed=20 - failing),
              humaneval_rows(outcomes(subset_ids(), failing)))
    return path, bad.record_id, good.record_id


def test_compare_prints_the_flips_and_exits_1_on_a_significant_regression(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, bad, good = _two_runs(tmp_path, failing=6)
    assert main(["compare", bad, good, "--ledger", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"A {bad}: coder-chat/humaneval PASS [gate] {CANDIDATE_MODEL}")
    assert out[2] == f"vs incumbent {good} (Qwen/Qwen2.5-Coder-7B-Instruct)"
    assert out[3] == ("20 paired items: 70% vs 100%, -30.0 points, exact McNemar p=0.0312 "
                      "(significant at 0.05)")
    assert out[4] == ("pass->fail (6): HumanEval/0, HumanEval/9, HumanEval/17, HumanEval/26, "
                      "HumanEval/34, HumanEval/43")
    assert out[5] == "fail->pass (0): none"
    assert out[-1] == "REGRESSION of A against B"
    # Beyond a bound it does not reach, the same regression passes; the other way round, too.
    assert main(["compare", bad, good, "--ledger", str(path), "--max-regression", "0.4"]) == 0
    assert main(["compare", good, bad, "--ledger", str(path)]) == 0
    assert "fail->pass (6)" in capsys.readouterr().out


def test_compare_names_an_unknown_id_or_mismatched_records_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, bad, good = _two_runs(tmp_path, failing=6)
    assert main(["compare", bad, "nope", "--ledger", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"modelgate-catalog compare: no record 'nope' in {path}"
    other = add(Ledger(path), record(alias="coder-agent", record_id="agent"),
                humaneval_rows({"HumanEval/0": True}))
    assert main(["compare", bad, other.record_id, "--ledger", str(path)]) == 2
    assert "only records of one alias and gate compare" in capsys.readouterr().err
    assert main(["compare", bad, good, "--ledger", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such ledger file" in capsys.readouterr().err


def test_other_commands_still_reach_the_catalog_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert "valid (" in capsys.readouterr().out


def test_known_bad_control_against_a_known_good_incumbent(tmp_path: Path) -> None:
    """The reference backend's known-bad run lists every flipped task and a significant
    regression under its verdict, in the terminal, the record and report.json."""
    ledger = Ledger(tmp_path / "ledger.jsonl")
    good = add(ledger, record(record_id="knowngood"), humaneval_rows(outcomes(subset_ids(), 0)))
    run = run_gates("-m", "coder-chat", "--control", "known-bad", "--baseline", good.record_id,
                    outputs=tmp_path)
    assert run.returncode == 1, run.output[-3000:]
    rec = run.record("humaneval")
    assert rec.kind == "control" and rec.verdict == "fail" and rec.incumbent_id == good.record_id
    rates = (rec.comparison or {})["rates"]
    assert rates["pass_to_fail"] == subset_ids() and rates["p_value"] < 1e-5
    assert f"coder-chat/humaneval vs incumbent {good.record_id}" in run.output
    assert "pass->fail (20): HumanEval/0, HumanEval/9" in run.output
    report = json.loads(next((tmp_path / "build" / "runs").glob("*/report.json")).read_text())
    [kept] = [r for g in report["gates"] for r in g["records"]]
    assert kept["incumbent_id"] == good.record_id and kept["comparison"]["rates"]["paired"] == 20
    markdown = next((tmp_path / "build" / "runs").glob("*/summary.md")).read_text()
    assert f"- **coder-chat/humaneval**: vs incumbent {good.record_id} (" in markdown


def test_a_baseline_naming_no_record_or_another_gate_is_a_usage_error(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control", "known-bad", "--baseline", "nope",
                    outputs=tmp_path)
    assert run.returncode == 4
    assert "--baseline nope: no record 'nope' in" in run.output
    other = add(Ledger(tmp_path / "ledger.jsonl"), record(alias="coder-agent", gate="tool_loop"),
                [])
    run = run_gates("-m", "coder-chat", "--control", "known-bad", "--baseline", other.record_id,
                    outputs=tmp_path)
    assert run.returncode == 4
    assert (f"--baseline {other.record_id} is a record of coder-agent/tool_loop, but the "
            "selected gates are coder-chat/humaneval") in run.output
