"""The verdict block printed at the end of a gate run: fits 100 columns.

One line per gate (alias, gate, verdict, the headline figure, served by), the reasons of the
gates that did not pass below it, then the notes and the paths of what the run wrote, once.
The eval status is not repeated: it is the verdict and headline, and the catalog holds it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from deploy.ledger import GateRecord

WIDTH = 100  # the widest the block ever gets, whatever the terminal
STAND_IN = " (stand-in)"
_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow",
          "inconclusive": "bold magenta"}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def served_by(record: GateRecord, width: int) -> str:
    """The model that answered, clipped so that a stand-in's mark always shows."""
    suffix = STAND_IN if record.target.stand_in else ""
    return _clip(record.target.model, width - len(suffix)) + suffix


def verdict_label(record: GateRecord, replayed: Callable[[GateRecord], bool] | None) -> str:
    return record.verdict.upper() + (" (replayed)" if replayed is not None and replayed(record) else "")


def verdict_table(records: list[GateRecord], statuses: dict[str, str] | None = None, *,
                  title: str, replayed: Callable[[GateRecord], bool] | None = None,
                  width: int = WIDTH) -> Table:
    """One line per record, every cell clipped with an ellipsis to fit `width` columns.

    `statuses` is accepted for callers of the wider table; the status repeats the verdict.
    """
    labels = [verdict_label(r, replayed) for r in records]
    # Fixed columns take what they need (capped); result and served by share the rest.
    alias_w = min(max([len("alias"), *(len(r.alias) for r in records)]), 18)
    gate_w = min(max([len("gate"), *(len(r.gate) for r in records)]), 12)
    verdict_w = max([len("verdict"), *(len(label) for label in labels)])
    gaps = 2 * 4  # two spaces between the five columns
    rest = max(20, width - alias_w - gate_w - verdict_w - gaps)
    result_need = max([len("result"), *(len(r.summary) for r in records)])
    served_need = max([len("served by"), *(len(served_by(r, 1000)) for r in records)])
    # Each gets what it needs when both fit; else served by gives way, down to two fifths.
    served_w = min(served_need, max(rest * 2 // 5, rest - result_need))
    result_w = min(result_need, rest - served_w)
    table = Table(title=_clip(title, width), box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, 1), collapse_padding=True, title_justify="left")
    widths = {"alias": alias_w, "gate": gate_w, "verdict": verdict_w, "result": result_w,
              "served by": served_w}
    for column, column_width in widths.items():
        table.add_column(column, width=column_width, no_wrap=True, overflow="ellipsis")
    for record, label in zip(records, labels, strict=True):
        table.add_row(
            _clip(record.alias, alias_w),
            _clip(record.gate, gate_w),
            Text(label, style=_STYLE[record.verdict]),
            Text(_clip(record.summary, result_w)),  # Text: brackets are not markup
            Text(served_by(record, served_w)),
        )
    return table


def reasons(records: list[GateRecord]) -> list[Text]:
    """Why each gate that did not pass did not, one wrapped paragraph per gate."""
    out = []
    for record in records:
        if record.verdict == "pass":
            continue
        why = record.reason or record.summary
        line = Text(f"{record.alias}/{record.gate} ", style="bold")
        line.append(record.verdict.upper(), style=_STYLE[record.verdict])
        line.append(f": {why}")
        out.append(line)
    return out


def comparison_lines(record: GateRecord) -> list[str]:
    """The candidate-against-incumbent lines a record keeps (gates.comparison), or none."""
    return list((record.comparison or {}).get("lines") or [])


def comparisons(records: list[GateRecord]) -> list[Text]:
    """Under the verdicts: each compared gate against its incumbent, or "no incumbent"."""
    out = []
    for record in records:
        lines = comparison_lines(record)
        if lines:
            text = Text(f"{record.alias}/{record.gate} ", style="bold")
            text.append("\n  ".join(lines))
            out.append(text)
    return out


def paths(outputs, statuses: dict[str, str], report: Path | None) -> list[str]:
    """Where the run wrote: the ledger, the HTML report, the catalog and table when written."""
    lines = [f"ledger: {outputs.ledger}"]
    if report is not None:
        lines.append(f"report: {report}")
    if statuses:  # controls, smoke and interrupted runs write none (a note says so)
        lines.append(f"catalog: {outputs.catalog}")
        lines.append(f"table: {outputs.doc}")
    return lines


def summary_block(session, statuses: dict[str, str], *, notes: list[str] | None = None,
                  replayed: Callable[[GateRecord], bool] | None = None,
                  width: int = WIDTH) -> Group:
    """The verdicts, the reasons and the notes, as one printable group."""
    parts: list = []
    if session.records:
        kind = ("embedded platform (stand-ins on loopback)" if session.platform_kind == "embedded"
                else session.gateway_url_redacted)
        title = f"modelgate run {session.run_id} on {kind}"
        parts.append(verdict_table(session.records, statuses, replayed=replayed, title=title,
                                   width=width))
        parts.extend(reasons(session.records))
        parts.extend(comparisons(session.records))
    for note in notes or []:  # interrupted, or a smoke run / control that writes no status
        parts.append(Text(note, style="bold yellow"))
    return Group(*parts)


def print_summary(session, statuses: dict[str, str], *, terminalreporter,
                  notes: list[str] | None = None,
                  replayed: Callable[[GateRecord], bool] | None = None,
                  report: Path | None = None) -> None:
    buffer = io.StringIO()
    width = max(40, min(int(terminalreporter._tw.fullwidth), WIDTH))
    console = Console(file=buffer, force_terminal=bool(terminalreporter.isatty()), width=width)
    console.print(summary_block(session, statuses, notes=notes, replayed=replayed, width=width))
    for line in paths(session.outputs, statuses, report):  # whole, never clipped: for copying
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    terminalreporter.write(buffer.getvalue())
