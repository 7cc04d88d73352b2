"""Adding an alias that reuses a gate kind is a catalog edit only (no Python).

A copy of the catalog gains `coder-chat-next` with coder-chat's `gates: {humaneval: ...}` block;
`pytest --catalog <copy> -m coder-chat-next --control known-good` then generates its gate,
deploys the kind's reference backend for it, and passes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tests.gate_runs import REPO_ROOT, run_gates

NEW = "coder-chat-next"


def catalog_with_new_alias(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO_ROOT / "deploy" / "catalog.yaml").read_text(encoding="utf-8"))
    source = next(a for a in data["aliases"] if a["alias"] == "coder-chat")
    new = copy.deepcopy(source)
    new.update(alias=NEW, served_model_name="qwen2.5-coder-7b-instruct-awq-next",
               eval_status="not evaluated yet")
    new["gates"] = {"humaneval": source["gates"]["humaneval"]}  # the same block, nothing else
    data["aliases"].append(new)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_an_alias_added_by_a_catalog_edit_is_gated(tmp_path: Path) -> None:
    catalog = catalog_with_new_alias(tmp_path)
    listed = run_gates("--catalog", str(catalog), "--collect-only", "-q", "-m", NEW,
                       outputs=tmp_path / "list")
    assert listed.returncode == 0, listed.output[-3000:]
    assert f"gates::{NEW}::humaneval" in listed.output and "gates::coder-chat::" not in listed.output

    run = run_gates("--catalog", str(catalog), "-m", NEW, "--control", "known-good",
                    "--humaneval-limit=5", outputs=tmp_path / "run")
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("humaneval")
    assert (record.alias, record.verdict, record.kind) == (NEW, "pass", "control")
    assert record.extra["nodeid"] == f"gates::{NEW}::humaneval"


def test_the_new_alias_has_its_generated_plugin(tmp_path: Path) -> None:
    """Marker, fixture and the kind's options, as a hand-written plugin would give."""
    catalog = catalog_with_new_alias(tmp_path)
    markers = run_gates(f"--catalog={catalog}", "--markers", outputs=tmp_path / "m")
    assert f"@pytest.mark.{NEW}" in markers.output, markers.output[-2000:]
    fixtures = run_gates(f"--catalog={catalog}", "--fixtures", outputs=tmp_path / "f")
    assert "coder_chat_next" in fixtures.output, fixtures.output[-3000:]
    helped = run_gates(f"--catalog={catalog}", "--help", outputs=tmp_path / "h")
    assert "--humaneval-limit" in helped.output and "modelgate gate kind humaneval" in helped.output
