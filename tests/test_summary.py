"""The verdict table shows statuses as written, brackets included."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from deploy.ledger import GateRecord, Target
from gates.summary import verdict_table


def test_stand_in_suffix_and_bracketed_reasons_are_shown_as_text() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    record = GateRecord(
        run_id="r", alias="coder-chat", gate="humaneval", verdict="error", metric="pass@1",
        value=None, threshold=0.7, summary="HumanEval 0/20 = 0% (≥70% gate)",
        reason="upstream said [bold]500[/bold]",
        target=Target(platform="embedded", gateway_url="http://127.0.0.1:1", deployment="d",
                      model="SmolLM2-135M-Instruct", served_model_name="s", stand_in=True),
        started_at=at, finished_at=at, suite_revision="x",
    )
    status = "ERROR: HumanEval 0/20 = 0% (≥70% gate) [embedded stand-in: SmolLM2-135M-Instruct]"
    buffer = io.StringIO()
    Console(file=buffer, width=400).print(verdict_table([record], {"coder-chat": status}, title="t"))
    text = buffer.getvalue()
    assert status in text
    assert "upstream said [bold]500[/bold]" in text
    assert "ERROR" in text and "SmolLM2-135M-Instruct (stand-in)" in text


def test_notes_are_printed_under_the_table_even_without_verdicts() -> None:
    from types import SimpleNamespace

    from gates.summary import print_summary

    written: list[str] = []
    reporter = SimpleNamespace(isatty=lambda: False, _tw=SimpleNamespace(fullwidth=120),
                               write=written.append)
    view = SimpleNamespace(platform_kind="remote", gateway_url_redacted="http://gw", run_id="r",
                           records=[], outputs=SimpleNamespace(ledger="l", catalog="c", doc="d"))
    note = "INTERRUPTED: gates/x.py::test_y (coder-chat) did not finish; no status written for it"
    print_summary(view, {}, terminalreporter=reporter, notes=[note])
    text = "".join(written)
    assert "gates/x.py::test_y (coder-chat) did not finish" in text.replace("\n", " ").replace("  ", " ")
    assert "modelgate run r on" not in text  # no empty verdict table
