"""The latency gate's status fragment: every metric, its p95 and its target, and whose targets."""

from __future__ import annotations

from evals.latency import LatencySummary, LatencyVerdict


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def status_summary(verdict: LatencyVerdict, summary: LatencySummary, targets_label: str) -> str:
    """E.g. "Latency p95/target TTFT 41.2/250 ms, ITL 8.1/20 ms, E2E 1064/1500 ms; c=4,
    ≤128 tokens; vs catalog SLO (GuideLLM baseline, 1x L4)". A target is met when p95 < it."""
    if verdict.verdict == "error" and summary.error_rate > verdict.max_error_rate:
        head = (f"Latency not measured: error rate {summary.error_rate:.0%} "
                f"({summary.errors}/{summary.requests}) > {verdict.max_error_rate:.0%} bound")
    else:
        parts = []
        for check in verdict.checks:
            measured = "n/a" if check.p95_ms is None else _ms(check.p95_ms)
            parts.append(f"{check.metric.upper()} {measured}/{check.target_ms:g} ms")
        head = "Latency p95/target " + ", ".join(parts)
    return f"{head}; c={summary.concurrency}, ≤{summary.max_tokens} tokens; vs {targets_label}"
