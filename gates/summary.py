"""The rich verdict table printed at the end of a gate run."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deploy.ledger import GateRecord

_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}


def verdict_table(records: list[GateRecord], statuses: dict[str, str], *, title: str,
                  replayed: Callable[[GateRecord], bool] | None = None) -> Table:
    """One row per record; a verdict a resumed run replayed from the ledger says so."""
    table = Table(title=title, show_lines=False)
    for column in ("alias", "gate", "verdict", "result", "served by", "eval status written"):
        table.add_column(column, overflow="fold")
    for record in records:
        served = record.target.model + (" (stand-in)" if record.target.stand_in else "")
        # Statuses and reasons hold brackets ("[embedded stand-in: ...]"): text, not markup.
        table.add_row(
            record.alias,
            record.gate,
            f"[{_STYLE[record.verdict]}]{record.verdict.upper()}[/]"
            + (" (replayed)" if replayed is not None and replayed(record) else ""),
            escape(record.summary + (f"\n{record.reason}" if record.reason else "")),
            escape(served),
            escape(statuses.get(record.alias, "")),
        )
    return table


def print_summary(session, statuses: dict[str, str], *, terminalreporter,
                  notes: list[str] | None = None,
                  replayed: Callable[[GateRecord], bool] | None = None) -> None:
    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=terminalreporter.isatty(), width=max(terminalreporter._tw.fullwidth, 100)
    )
    kind = "embedded platform (stand-ins on loopback)" if session.platform_kind == "embedded" else session.gateway_url_redacted
    if session.records:
        title = f"modelgate run {session.run_id} on {kind}"
        console.print(verdict_table(session.records, statuses, replayed=replayed, title=title))
    for note in notes or []:  # interrupted, or a smoke run / control that writes no status
        console.print(note, style="bold yellow", markup=False)
    console.print(f"ledger: {session.outputs.ledger}")
    console.print(f"catalog: {session.outputs.catalog}")
    console.print(f"table: {session.outputs.doc}")
    terminalreporter.write(buffer.getvalue())
