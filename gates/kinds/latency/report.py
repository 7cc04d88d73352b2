"""The latency gate's status fragment: every metric, its p95 and its target, and whose targets."""

from __future__ import annotations

from evals.intervals import Interval
from evals.latency import LatencySummary, LatencyVerdict


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def status_summary(verdict: LatencyVerdict, summary: LatencySummary, targets_label: str,
                   intervals: dict[str, Interval] | None = None) -> str:
    """E.g. "Latency p95/target TTFT 41.2/250 ms [95% CI 38.1-45.0 ms], ITL 8.1/20 ms [...], ...;
    c=4, ≤128 tokens; vs catalog SLO (GuideLLM baseline, 1x L4)". A target is met when p95 < it.
    `intervals`: each metric's p95 interval (evals.latency.p95_intervals)."""
    intervals = intervals or {}
    if verdict.verdict == "error" and summary.error_rate > verdict.max_error_rate:
        head = (f"Latency not measured: error rate {summary.error_rate:.0%} "
                f"({summary.errors}/{summary.requests}) > {verdict.max_error_rate:.0%} bound")
    else:
        parts = []
        for check in verdict.checks:
            measured = "n/a" if check.p95_ms is None else _ms(check.p95_ms)
            interval = intervals.get(check.metric)
            bracket = f" {interval.bracket()}" if interval is not None else ""
            parts.append(f"{check.metric.upper()} {measured}/{check.target_ms:g} ms{bracket}")
        head = "Latency p95/target " + ", ".join(parts)
    return f"{head}; c={summary.concurrency}, ≤{summary.max_tokens} tokens; vs {targets_label}"


def request_samples(rows: list[dict]) -> dict[str, list[float]]:
    """Per-metric samples of the requests that completed (every inter-token gap for ITL), the
    values the gate's p95s are taken over."""
    done = [row for row in rows if not row.get("error")]
    return {
        "ttft_ms": [row["ttft_ms"] for row in done if row.get("ttft_ms") is not None],
        "itl_ms": [gap for row in done for gap in row.get("itl_ms") or []],
        "e2e_ms": [row["e2e_ms"] for row in done if row.get("e2e_ms") is not None],
    }
