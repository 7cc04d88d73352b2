"""The closing verdict block: one line per gate within 100 columns, reasons and paths below."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from deploy.ledger import GateRecord, Target
from gates.summary import print_summary, summary_block, verdict_table

AT = datetime(2026, 11, 1, tzinfo=UTC)
LONG_MODEL = "simulated claude-3-5-haiku-20241022 (Anthropic stand-in via agentgateway stand-in)"


def record(alias: str = "coder-chat", gate: str = "humaneval", verdict: str = "error", *,
           summary: str = "HumanEval 0/20 = 0% (≥70% gate)", reason: str = "",
           model: str = "SmolLM2-135M-Instruct", stand_in: bool = True) -> GateRecord:
    return GateRecord(
        run_id="r", alias=alias, gate=gate, verdict=verdict, metric="pass@1", value=None,
        threshold=0.7, summary=summary, reason=reason,
        target=Target(platform="embedded", gateway_url="http://127.0.0.1:1", deployment="d",
                      model=model, served_model_name="s", stand_in=stand_in),
        started_at=AT, finished_at=AT, suite_revision="x",
    )


def view(records: list[GateRecord]) -> SimpleNamespace:
    return SimpleNamespace(
        platform_kind="embedded", gateway_url_redacted="", run_id="20261204T222553Z-29427f",
        records=records, outputs=SimpleNamespace(ledger="build/embedded/ledger.jsonl",
                                                 catalog="build/embedded/catalog.yaml",
                                                 doc="build/embedded/served-models.md"))


def reporter(width: int = 100) -> tuple[SimpleNamespace, list[str]]:
    written: list[str] = []
    return SimpleNamespace(isatty=lambda: False, _tw=SimpleNamespace(fullwidth=width),
                           write=written.append), written


def test_bracketed_summaries_and_reasons_are_text_not_markup() -> None:
    gate = record(summary="latency [embedded stand-in] p95", reason="upstream said [bold]500[/bold]")
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(summary_block(view([gate]), {}))
    text = console.export_text()
    assert "latency [embedded stand-in] p95" in text
    assert "upstream said [bold]500[/bold]" in text
    assert "ERROR" in text and "SmolLM2-135M-Instruct (stand-in)" in text


def test_every_line_fits_100_columns_with_long_statuses_and_stand_ins() -> None:
    long_reason = "pass rate 1/9 = 11% is below 75%, 16 invalid tool call(s), none allowed. " * 4
    records = [
        record(verdict="fail", summary="HumanEval 3/20 = 15% (≥70% gate) " + "x" * 120,
               reason="pass rate 15.0% is below the 70% gate"),
        record("coder-agent-with-a-long-alias-name", "tool_loop_streaming_and_not", "fail",
               summary="Tool loops 1/9 = 11% (≥75% gate; 0 invalid calls allowed)",
               reason=long_reason, model=LONG_MODEL),
        record("coder-fim", "fim", "pass", summary="FIM 12/12 direct, 12/12 via key"),
        record("embeddings", "embeddings", "pass", summary="registered + budget-binding",
               model="all-MiniLM-L6-v2"),
    ]
    console = Console(file=io.StringIO(), width=100, record=True)
    block = summary_block(view(records), {"coder-chat": "FAIL: " + "y" * 300},
                          notes=["control run (--control=known-bad): no eval status written"],
                          replayed=lambda r: r.alias == "coder-fim")
    console.print(block)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, "\n".join(lines)
    # One line per gate, its stand-in mark kept however the model's name is clipped.
    rows = [line for line in lines if line.rstrip().endswith("(stand-in)")]
    assert [row.split()[0] for row in rows] == ["coder-chat", "coder-agent-with-…", "coder-fim",
                                                "embeddings"], text
    assert "…" in rows[0] and "…" in rows[1]  # clipped, not wrapped
    assert "PASS (replayed)" in text
    header = next(line for line in lines if line.startswith("alias"))
    assert header.split() == ["alias", "gate", "verdict", "result", "served", "by"]
    assert "y" * 20 not in text  # the status is not repeated
    # The reasons of the gates that did not pass, once each, wrapped (not cut) below the table.
    joined = " ".join(line.strip() for line in lines)
    assert "coder-chat/humaneval FAIL: pass rate 15.0% is below the 70% gate" in joined
    assert "coder-agent-with-a-long-alias-name/tool_loop_streaming_and_not FAIL: " in joined
    assert long_reason.strip() in joined
    assert "coder-fim/fim PASS" not in joined
    assert "control run (--control=known-bad): no eval status written" in joined


def test_paths_are_printed_once_and_the_table_only_when_a_status_was_written() -> None:
    rep, written = reporter()
    report = Path("build/runs/r/report.html")
    print_summary(view([record(verdict="pass")]), {}, terminalreporter=rep, report=report)
    text = "".join(written)
    assert text.count("ledger: build/embedded/ledger.jsonl") == 1
    assert text.count("report: build/runs/r/report.html") == 1
    assert "served-models.md" not in text and "catalog.yaml" not in text  # none written
    rep, written = reporter()
    print_summary(view([record(verdict="pass")]), {"coder-chat": "PASS"}, terminalreporter=rep)
    text = "".join(written)
    assert "catalog: build/embedded/catalog.yaml" in text
    assert text.count("table: build/embedded/served-models.md") == 1
    assert "report:" not in text  # no report written: no path for one


def test_a_narrow_terminal_narrows_the_table_and_a_wide_one_stays_at_100() -> None:
    records = [record(summary="HumanEval 0/20 = 0% (≥70% gate) " + "z" * 200)]
    for width, limit in ((80, 80), (200, 100)):
        rep, written = reporter(width)
        print_summary(view(records), {}, terminalreporter=rep)
        table = [line for line in "".join(written).splitlines() if not line.startswith(
            ("ledger:", "report:"))]
        assert max(len(line) for line in table) <= limit


def test_a_long_path_is_never_cut() -> None:
    rep, written = reporter()
    records = [record(verdict="pass")]
    path = "build/" + "/".join(["a-rather-long-folder-name"] * 6) + "/ledger.jsonl"
    session = view(records)
    session.outputs.ledger = path
    print_summary(session, {}, terminalreporter=rep)
    assert f"ledger: {path}" in "".join(written).splitlines()


def test_verdict_table_alone_fits_the_width_it_is_given() -> None:
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(verdict_table([record(model=LONG_MODEL)], title="t" * 150, width=100))
    assert max(len(line) for line in console.export_text().splitlines()) <= 100


def test_notes_are_printed_under_the_table_even_without_verdicts() -> None:
    rep, written = reporter(120)
    empty = view([])
    note = "INTERRUPTED: gates/x.py::test_y (coder-chat) did not finish; no status written for it"
    print_summary(empty, {}, terminalreporter=rep, notes=[note])
    text = "".join(written)
    assert "gates/x.py::test_y (coder-chat) did not finish" in text.replace("\n", " ").replace("  ", " ")
    assert "modelgate run" not in text  # no empty verdict table
