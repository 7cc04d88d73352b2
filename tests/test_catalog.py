"""The catalog: seeded content, precise errors, stable table, prose kept, staleness caught."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

import deploy.catalog as catalog_module
from deploy.catalog import (
    DEFAULT_CATALOG,
    CatalogError,
    atomic_write_text,
    load_catalog,
    write_statuses,
)
from deploy.catalog_cli import main as catalog_cli
from deploy.catalog_table import BEGIN, END, TableError, is_stale, render_table, splice, write_table

SEED = DEFAULT_CATALOG.read_text(encoding="utf-8")


def test_seed_has_every_alias_of_the_platform() -> None:
    catalog = load_catalog()
    assert catalog.names == ["qwen-local", "coder-chat", "coder-fim", "coder-agent", "embeddings", "claude-haiku"]
    chat = catalog.get("coder-chat")
    assert chat.price.input_per_token == pytest.approx(0.5e-6)
    assert chat.price.output_per_token == pytest.approx(1.5e-6)
    assert chat.gate("humaneval").min_pass_rate == 0.70  # typed (deploy.gate_configs)
    assert catalog.get("qwen-local").slo.ttft_p95_ms == 250
    assert catalog.get("embeddings").price.output_per_1m is None
    assert "--tool-call-parser" in catalog.get("coder-agent").serve_args


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_field_names_file_line_and_field(tmp_path: Path) -> None:
    bad = SEED.replace("context: 16384\n    price: {input_per_1m: 0.5", "context: lots\n    price: {input_per_1m: 0.5", 1)
    assert bad != SEED
    path = _write(tmp_path, bad)
    line = bad.splitlines().index("    context: lots") + 1
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert f"{path}:{line}:" in message
    assert "aliases[coder-chat].context" in message


def test_missing_field_names_the_alias(tmp_path: Path) -> None:
    bad = SEED.replace("    served_model_name: bge-base-en-v1.5\n", "", 1)
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, bad))
    assert "aliases[embeddings].served_model_name" in str(err.value)
    assert "Field required" in str(err.value)


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    bad = SEED.replace("    gpu_count: 0\n", "    gpu_count: 0\n    gpus: 2\n", 1)
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, bad))
    assert "aliases[embeddings].gpus" in str(err.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "aliases:\n  - alias: x\n    model: [unclosed\n")
    with pytest.raises(CatalogError, match=rf"{path}:\d+: not valid YAML"):
        load_catalog(path)


def test_duplicate_alias_is_refused(tmp_path: Path) -> None:
    text = SEED + SEED[SEED.index("  - alias: claude-haiku"):]
    with pytest.raises(CatalogError, match="appears twice"):
        load_catalog(_write(tmp_path, text))


def test_rendering_is_stable_and_has_platform_columns() -> None:
    catalog = load_catalog()
    first, second = render_table(catalog), render_table(load_catalog())
    assert first == second
    header = first.splitlines()[0]
    for column in ("alias", "model", "backend", "GPU", "context", "price in / out", "SLO target", "eval status"):
        assert column in header
    assert "| coder-chat | Qwen2.5-Coder-7B-Instruct, AWQ 4-bit |" in first
    assert "TTFT p95 < 250 ms" in first


def test_prose_outside_markers_is_kept_byte_for_byte(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    before = "# Title\r\n\nintro with trailing spaces   \n"
    after = "\n## After\n\ttabbed | pipes |\n"
    doc.write_text(before + BEGIN + "\nold table\n" + END + after, encoding="utf-8")
    assert write_table(load_catalog(), doc) is True
    text = doc.read_bytes().decode("utf-8")
    assert text.startswith(before + BEGIN + "\n| alias |")
    assert text.endswith(END + after)
    assert write_table(load_catalog(), doc) is False  # idempotent


def test_missing_markers_is_a_clear_error() -> None:
    with pytest.raises(TableError, match="needs the markers"):
        splice("no markers here", "table", where="docs/x.md")


def test_check_catches_a_stale_table(tmp_path: Path, capsys) -> None:
    catalog_path = _write(tmp_path, SEED)
    doc = tmp_path / "served.md"
    doc.write_text(f"x\n{BEGIN}\n{END}\n", encoding="utf-8")
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render", "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render"]) == 0
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render", "--check"]) == 0
    # A status change in the catalog makes the committed table stale again.
    write_statuses(catalog_path, {"coder-chat": "HumanEval 3/20 = 15% (≥70% gate)"})
    assert is_stale(load_catalog(catalog_path), doc)
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render", "--check"]) == 1


def test_committed_table_is_current() -> None:
    assert not is_stale(load_catalog(), Path(__file__).resolve().parent.parent / "docs" / "served-models.md")


def test_status_writeback_keeps_comments_and_other_aliases(tmp_path: Path) -> None:
    path = _write(tmp_path, SEED)
    changed = write_statuses(path, {"coder-fim": "FAIL: FIM functional 0/20"})
    assert changed
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SEED.splitlines()[0]  # the header comment survives
    assert load_catalog(path).get("coder-fim").eval_status == "FAIL: FIM functional 0/20"
    assert load_catalog(path).get("coder-chat").eval_status == load_catalog().get("coder-chat").eval_status
    # Only the one status line differs: indentation, nulls and comments are written as they were.
    changed_lines = [(a, b) for a, b in zip(SEED.splitlines(), text.splitlines(), strict=True) if a != b]
    assert len(changed_lines) == 1 and "eval_status" in changed_lines[0][1]
    assert write_statuses(path, {"coder-fim": "FAIL: FIM functional 0/20"}) is False


def test_writeback_to_a_build_copy_leaves_the_source(tmp_path: Path) -> None:
    source = _write(tmp_path, SEED)
    target = tmp_path / "build" / "catalog.yaml"
    write_statuses(source, {"coder-chat": "x"}, target=target)
    assert source.read_text(encoding="utf-8") == SEED
    assert load_catalog(target).get("coder-chat").eval_status == "x"


# ---- typed gate settings (issue 21.7) ----------------------------------------------------

def _gate_error(tmp_path: Path, old: str, new: str) -> tuple[str, int]:
    bad = SEED.replace(old, new, 1)
    assert bad != SEED
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, bad))
    line = next(i for i, text in enumerate(bad.splitlines(), start=1) if new.splitlines()[-1] in text)
    return str(err.value), line


@pytest.mark.parametrize(("old", "new", "field", "why"), [
    ("        min_pass_rate: 0.70\n", "        min_pass_rate: 5\n",
     "aliases[coder-chat].gates.humaneval.min_pass_rate", "less than or equal to 1"),
    ("        min_pass_rate: 0.70\n", "        min_pass_rate: -0.1\n",
     "aliases[coder-chat].gates.humaneval.min_pass_rate", "greater than or equal to 0"),
    ("        samples_per_task: 1\n", "        samples_per_task: 0\n",
     "aliases[coder-chat].gates.humaneval.samples_per_task", "greater than or equal to 1"),
    ("        concurrency: 4\n", "        concurrency: four\n",
     "aliases[coder-chat].gates.humaneval.concurrency", "valid integer"),
    ("        max_tokens: 512\n", "        max_token: 512\n",
     "aliases[coder-chat].gates.humaneval.max_token", "Extra inputs are not permitted"),
    ("      humaneval:\n", "      human_eval:\n",
     "aliases[coder-chat].gates.human_eval", "Extra inputs are not permitted"),
    ("max_steps: 8", "max_steps: -2", "aliases[coder-agent].gates.tool_loop.max_steps", "greater than or equal to 1"),
    ("requests: 40", "requests: -1", "aliases[qwen-local].gates.latency.requests", "greater than or equal to 1"),
    ("max_error_rate: 0.05", "max_error_rate: 1.5", "aliases[qwen-local].gates.latency.max_error_rate", "less than"),
    ("max_mangled_rate: 0.2", "max_mangled_rate: 2", "aliases[coder-fim].gates.fim.max_mangled_rate", "less than"),
    ("min_triplet_rate: 0.9", "min_triplet_rate: 90", "aliases[embeddings].gates.embeddings.min_triplet_rate", "less than"),
    ("budget_usd: 0.00002", "budget_usd: -1", "aliases[embeddings].gates.embeddings.budget_usd", "greater than 0"),
    ("usage: {max_budget_usd: 0.5}", "usage: {max_budget_usd: 0.5, spend_timeout_s: -3}",
     "aliases[claude-haiku].gates.usage.spend_timeout_s", "greater than 0"),
    ("usage: {max_budget_usd: 0.5}", "usage: {max_budget_usd: 0.5, request_timeout_s: 0}",
     "aliases[claude-haiku].gates.usage.request_timeout_s", "greater than 0"),
])
def test_bad_gate_settings_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                                    why: str) -> None:
    message, line = _gate_error(tmp_path, old, new)
    assert f"catalog.yaml:{line}: field '{field}'" in message
    assert why in message


def test_every_gate_kind_has_typed_settings_with_the_shared_bounds() -> None:
    from deploy.gate_configs import GATE_MODELS, GateConfig, LatencyGate
    from evals.model_calls import DEFAULT_BUDGET_S, DEFAULT_TIMEOUT_S
    from gates.slo_derivation import DEFAULT_HEADROOM

    catalog = load_catalog()
    used = {name for entry in catalog.aliases for name in entry.gates.names()}
    assert used == set(GATE_MODELS) == {"humaneval", "fim", "tool_loop", "bfcl", "embeddings", "usage",
                                       "latency"}
    for entry in catalog.aliases:
        for name in entry.gates.names():
            config = entry.gate(name)
            assert isinstance(config, GATE_MODELS[name]) and isinstance(config, GateConfig)
            # The documented request bounds (evals.model_calls; embeddings answer in seconds).
            timeout = 60.0 if name == "embeddings" else DEFAULT_TIMEOUT_S
            assert config.request_timeout_s == timeout and config.seed is None
            assert config.request_budget_s == DEFAULT_BUDGET_S
    assert catalog.get("coder-chat").gate("humaneval").max_budget_usd == 1.0
    assert catalog.get("qwen-local").gate("latency").timeout_s == 120.0
    assert LatencyGate.model_fields["cpu_headroom"].default == DEFAULT_HEADROOM
    with pytest.raises(KeyError, match="has no gate 'fim'"):
        catalog.get("coder-chat").gate("fim")


def test_a_gate_block_set_in_code_is_checked_when_read() -> None:
    from deploy.gate_configs import GateConfigError

    entry = load_catalog().get("coder-chat")
    bad = entry.model_copy(update={"gates": {"humaneval": {"min_pass_rate": 1.01}}})
    with pytest.raises(GateConfigError, match=r"alias 'coder-chat', gates.humaneval: min_pass_rate"):
        bad.gate("humaneval")


# ---- rewrites keep mode and owner; a write killed midway leaves the old file (issue 21.6) ---

@pytest.mark.parametrize("mode", [0o644, 0o664, 0o600])
def test_rewrites_keep_the_file_mode(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, SEED)
    doc = tmp_path / "served.md"
    doc.write_text(f"x\n{BEGIN}\n{END}\n", encoding="utf-8")
    os.chmod(path, mode)
    os.chmod(doc, mode)
    old_umask = os.umask(0o077)  # what mkstemp's 0600 would have leaked through
    try:
        assert write_statuses(path, {"coder-fim": "FAIL: FIM functional 0/20"})
        assert write_table(load_catalog(path), doc)
    finally:
        os.umask(old_umask)
    for written in (path, doc):
        assert written.stat().st_mode & 0o7777 == mode
        assert written.stat().st_uid == os.getuid()


def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, SEED)

    def interrupted(fd: int) -> None:  # the new text is in the temporary file, not yet renamed
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_module.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_statuses(path, {"coder-fim": "FAIL: FIM functional 0/20"})
    assert path.read_text(encoding="utf-8") == SEED
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.yaml"]


def _write_then_die(path: str) -> None:
    """Rewrite `path`, dying by SIGKILL after the new text is written and before the rename."""
    def die(*_args) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    catalog_module.os.replace = die  # this forked child only
    write_statuses(Path(path), {"coder-fim": "FAIL: FIM functional 0/20"})


def test_a_write_killed_midway_leaves_the_old_file_intact(tmp_path: Path) -> None:
    path = _write(tmp_path, SEED)
    proc = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(str(path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert path.read_text(encoding="utf-8") == SEED
    leftovers = [p for p in tmp_path.iterdir() if p.name != "catalog.yaml"]
    assert leftovers and all(p.name.startswith(".catalog.yaml.") for p in leftovers)  # never read
    assert load_catalog(path).get("coder-fim").eval_status == load_catalog().get("coder-fim").eval_status


# ---- every committed status is backed by the ledger (issue 21.8) -------------------------

def test_committed_statuses_are_backed_by_imported_ledger_records() -> None:
    from deploy.catalog_cli import COMMITTED_LEDGER
    from deploy.ledger import Ledger

    records = Ledger(COMMITTED_LEDGER).records()
    catalog = load_catalog()
    imported = {r.alias: r for r in records if r.kind == "imported"}
    assert set(imported) == set(catalog.names)
    for record in imported.values():
        assert record.source == "PLATFORM.md, platform catalog page"
        assert record.finished_at.date().isoformat() == "2026-11-28"
        assert catalog.get(record.alias).eval_status == f"{record.summary} [imported]"
    assert catalog_cli(["render", "--check"]) == 0


def test_the_table_marks_imported_cells_with_a_footnote() -> None:
    table = render_table(load_catalog())
    assert "| external provider [imported] |" in table
    assert "Cells marked [imported] hold a status imported from the platform's catalog page" in table


def test_check_fails_on_a_status_no_ledger_record_backs(tmp_path: Path, capsys) -> None:
    catalog_path = _write(tmp_path, SEED)
    write_statuses(catalog_path, {"coder-chat": "HumanEval 20/20 = 100% (≥70% gate)"})
    doc = tmp_path / "served.md"
    doc.write_text(f"x\n{BEGIN}\n{END}\n", encoding="utf-8")
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render"]) == 0
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render", "--check"]) == 1
    err = capsys.readouterr().err
    assert "alias 'coder-chat': eval status 'HumanEval 20/20 = 100% (≥70% gate)' is backed by no ledger record" in err
    assert "its records give 'HumanEval 18/20 = 90% (≥70% gate) [imported]'" in err
    assert "coder-fim" not in err
    # A ledger beside an outputs catalog (a run's folder) is the one that backs it.
    (tmp_path / "ledger.jsonl").write_text("")
    assert catalog_cli(["--catalog", str(catalog_path), "--doc", str(doc), "render", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"no ledger record in {tmp_path / 'ledger.jsonl'}" in err and "coder-fim" in err
