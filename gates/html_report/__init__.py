"""`report.html`: one self-contained page per gate run (verdicts, every judged item, latency plots).

Works offline: styles, script and the matplotlib plots (inline SVG) are in the one file. The
ledger's per-record details files are the source of the items, so the page shows exactly what
the gates judged: the prompt, the model's answer, the extracted code, the reason, tokens, cost.
"""

from __future__ import annotations

from pathlib import Path

from deploy.catalog import atomic_write_text
from deploy.ledger import GateRecord
from gates.decision import judged_text
from gates.html_report.items import items_of, read_rows
from gates.html_report.page import (
    esc,
    items_block,
    overview_missing,
    overview_row,
    page,
    plots_block,
    spend_block,
)
from gates.html_report.plots import latency_plots
from gates.html_report.spend import spend_of
from gates.reports import RunReport

__all__ = ["render_html_report", "write_html_report"]


def _judged_block(record: GateRecord) -> str:
    """Each judged rate with its 95% interval and threshold (none on records before intervals)."""
    if not record.judged:
        return ""
    rows = "".join(f"<li>{esc(judged_text(rate))} ({esc(rate.method)})</li>" for rate in record.judged)
    return f'<div class="judged"><strong>Judged, with 95% intervals:</strong><ul>{rows}</ul></div>'


def _gate_section(record: GateRecord, ledger_path: Path, anchor: str) -> str:
    rows, note = read_rows(ledger_path, record)
    plots = latency_plots(record, rows) if any("ttft_ms" in row for row in rows) else []
    counts = record.counts
    target = record.target
    served = f"{target.model}{' (stand-in)' if target.stand_in else ''}, served as {target.served_model_name}"
    return (
        f'<section class="gate v-{esc(record.verdict)}" id="{anchor}">'
        f'<h2>{esc(record.alias)} / {esc(record.gate)} <span class="badge st-{esc(record.verdict)}">'
        f"{esc(record.verdict.upper())}</span></h2>"
        f"<div><strong>{esc(record.summary)}</strong></div>"
        + (f'<div class="why"><strong>Reason:</strong> {esc(record.reason)}</div>' if record.reason else "")
        + _judged_block(record)
        + f'<div class="sub">served by {esc(served)} via {esc(target.deployment)}; '
        f"{counts.passed} passed, {counts.failed} failed, {counts.errors} errors of {counts.total}; "
        f"record {esc(record.record_id)}</div>"
        + spend_block(spend_of(record, rows))
        + (f"<h3>Latency distributions</h3>{plots_block(plots)}" if plots else "")
        + items_block(items_of(rows), note)
        + '<details class="section"><summary>ledger record (JSON)</summary>'
        f"<pre>{esc(record.model_dump_json(indent=2))}</pre></details></section>"
    )


def render_html_report(report: RunReport, ledger_path: Path) -> str:
    """The page's HTML for `report`, its items read from the details files beside `ledger_path`."""
    head_word = ("PASSED" if report.passed
                 else "INCONCLUSIVE" if report.outcome == "inconclusive" else "FAILED")
    where = "embedded platform (stand-ins)" if report.platform == "embedded" else "remote platform"
    if report.control:
        where += f", {report.control} control"
    tally = ", ".join(f"{n} {verdict.upper()}" for verdict, n in report.verdicts.items())
    overview, sections = [], []
    for number, gate in enumerate(report.gates):
        if not gate.records:
            anchor = f"gate-{number}"
            verdict = gate.verdict or gate.outcome
            overview.append(overview_missing(gate.alias, gate.test, verdict, gate.message, anchor))
            sections.append(
                f'<section class="gate v-{esc(verdict)}" id="{anchor}"><h2>{esc(gate.alias or "")} / '
                f'{esc(gate.test)} <span class="badge st-{esc(verdict)}">{esc(str(verdict).upper())}'
                f'</span></h2><p>No verdict recorded ({esc(gate.outcome)}).</p><pre>{esc(gate.message)}</pre></section>'
            )
        for index, record in enumerate(gate.records):
            anchor = f"gate-{number}-{index}"
            overview.append(overview_row(record, anchor))
            sections.append(_gate_section(record, ledger_path, anchor))
    body = (
        f'<div class="run"><h1>modelgate run {esc(report.run_id)}</h1>'
        f'<span class="big {head_word.lower()}">{head_word}</span></div>'
        f'<p>{len(report.gates)} gate test(s) on the {esc(where)}: {esc(tally)}; exit status '
        f"{report.exit_status}. Started {esc(report.started_at.isoformat(timespec='seconds'))}, "
        f"finished {esc(report.finished_at.isoformat(timespec='seconds'))}.</p>"
        "<table class=\"overview\"><tr><th>alias</th><th>gate</th><th>verdict</th>"
        "<th>result</th><th>served by</th><th>reason</th></tr>" + "".join(overview) + "</table>"
        + "".join(sections)
        + f'<p class="sub">Ledger: {esc(report.ledger)}. Items come from the details files beside it.</p>'
    )
    return page(f"modelgate {report.run_id}: {head_word}", body)


def write_html_report(report: RunReport, ledger_path: Path, out: Path) -> Path:
    """Write the run's self-contained `report.html` to `out` (atomically); returns `out`."""
    atomic_write_text(out, render_html_report(report, Path(ledger_path)))
    return out
