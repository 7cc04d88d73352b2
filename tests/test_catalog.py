"""The catalog: seeded content, precise errors, stable table, prose kept, staleness caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, write_statuses
from deploy.catalog_cli import main as catalog_cli
from deploy.catalog_table import BEGIN, END, TableError, is_stale, render_table, splice, write_table

SEED = DEFAULT_CATALOG.read_text(encoding="utf-8")


def test_seed_has_every_alias_of_the_platform() -> None:
    catalog = load_catalog()
    assert catalog.names == ["qwen-local", "coder-chat", "coder-fim", "coder-agent", "embeddings", "claude-haiku"]
    chat = catalog.get("coder-chat")
    assert chat.price.input_per_token == pytest.approx(0.5e-6)
    assert chat.price.output_per_token == pytest.approx(1.5e-6)
    assert chat.gate("humaneval")["min_pass_rate"] == 0.70
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
