"""Latency distributions (TTFT, ITL, E2E) as inline SVG, drawn by matplotlib with the SLO line."""

from __future__ import annotations

import io
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from deploy.ledger import GateRecord

# (metric key in the record's checks, row field, title)
METRICS = (("ttft", "ttft_ms", "TTFT"), ("itl", "itl_ms", "ITL"), ("e2e", "e2e_ms", "E2E"))
_PASS, _FAIL, _BARS = "#1a7f37", "#cf222e", "#8c959f"


def _samples(rows: list[dict[str, Any]], field: str) -> list[float]:
    """Every value of `field` over the rows that answered (ITL is a list per request: pooled,
    as the gate's p95 pools it)."""
    out: list[float] = []
    for row in rows:
        if row.get("error"):
            continue
        value = row.get(field)
        values = value if isinstance(value, list) else [value]
        out += [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return out


def _targets(record: GateRecord) -> dict[str, dict[str, Any]]:
    """metric -> {target_ms, p95_ms, passed} from the record's checks (or its SLO when the run
    stopped before checking)."""
    checks = {c.get("metric"): c for c in record.extra.get("checks") or [] if isinstance(c, dict)}
    slo = (record.extra.get("targets") or {}).get("slo") or {}
    out = {}
    for key, _field, _title in METRICS:
        check = checks.get(key, {})
        target = check.get("target_ms", slo.get(f"{key}_p95_ms"))
        out[key] = {"target_ms": target, "p95_ms": check.get("p95_ms"), "passed": check.get("passed")}
    return out


def _svg(fig: Figure, salt: str) -> str:
    buffer = io.StringIO()
    # Text stays text (searchable, and a browser test can find the SLO label); a salt per figure
    # keeps the element ids of several inlined figures apart and the output deterministic.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: it is inlined in HTML


def latency_plots(record: GateRecord, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric title, inline SVG) per metric with samples: a histogram, the p95 and the SLO."""
    targets = _targets(record)
    plots = []
    for key, field, title in METRICS:
        samples = _samples(rows, field)
        if not samples:
            continue
        goal = targets[key]
        fig = Figure(figsize=(3.7, 2.5), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        ax.hist(samples, bins=min(30, max(5, len(samples) // 4)), color=_BARS)
        if goal["p95_ms"] is not None:
            ax.axvline(goal["p95_ms"], color="#0969da", linestyle=":", linewidth=1.5,
                       label=f"p95 {goal['p95_ms']:g} ms", gid=f"p95-{key}")
        if goal["target_ms"] is not None:
            color = _FAIL if goal["passed"] is False else _PASS
            ax.axvline(goal["target_ms"], color=color, linestyle="--", linewidth=2,
                       label=f"SLO p95 target {goal['target_ms']:g} ms", gid=f"slo-{key}")
        ax.set_title(f"{title} ({len(samples)} samples)", fontsize=10)
        ax.set_xlabel("ms", fontsize=9)
        ax.set_ylabel("count", fontsize=9)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        plots.append((title, _svg(fig, f"{record.record_id}-{key}")))
    return plots
