"""Percentiles and the summary of a set of measured requests.

Method (stated in every summary as `percentile_method`): linear interpolation between the
closest ranks, the default of numpy.percentile ("linear") and of statistics.quantiles with
method="inclusive": the q-th percentile of n sorted values sits at rank (n - 1) * q / 100.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from evals.intervals import Interval, p95_interval
from evals.latency._models import LatencyResult, LatencySummary, Percentiles, RequestRow

_CUTS = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def percentile_values(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99 of `values` by linear interpolation; one value is every percentile."""
    if not values:
        raise ValueError("percentiles of an empty set")
    if len(values) == 1:  # statistics.quantiles needs two points
        return {name: float(values[0]) for name in _CUTS}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {name: cuts[q - 1] for name, q in _CUTS.items()}


def percentiles(values: Sequence[float]) -> Percentiles | None:
    if not values:
        return None
    points = percentile_values(values)
    return Percentiles(
        count=len(values),
        mean=_r(statistics.fmean(values)),
        max=_r(max(values)),
        **{name: _r(v) for name, v in points.items()},
    )


def _r(value: float) -> float:
    return round(value, 3)  # microseconds are below what this harness resolves


def summarize(
    rows: list[RequestRow],
    *,
    run_id: str,
    endpoint: str,
    model: str,
    prompt_set: str,
    profile: str,
    concurrency: int,
    max_tokens: int,
    warmup: int,
    started_at: str,
    duration_s: float,
) -> LatencyResult:
    ok = [row for row in rows if row.ok]
    failed = [row for row in rows if not row.ok]
    tokens = sum(row.output_tokens or 0 for row in ok)
    examples: list[str] = []
    for row in failed:
        if row.error not in examples and len(examples) < 3:
            examples.append(row.error or "")
    duration = max(duration_s, 1e-9)
    summary = LatencySummary(
        run_id=run_id,
        endpoint=endpoint,
        model=model,
        prompt_set=prompt_set,
        profile=profile,
        concurrency=concurrency,
        max_tokens=max_tokens,
        warmup=warmup,
        started_at=started_at,
        duration_s=round(duration_s, 3),
        requests=len(rows),
        ok=len(ok),
        errors=len(failed),
        error_rate=len(failed) / len(rows) if rows else 1.0,
        error_examples=examples,
        ttft_ms=percentiles([row.ttft_ms for row in ok if row.ttft_ms is not None]),
        itl_ms=percentiles([gap for row in ok for gap in row.itl_ms]),
        e2e_ms=percentiles([row.e2e_ms for row in ok if row.e2e_ms is not None]),
        output_tokens_total=tokens,
        requests_without_usage=sum(1 for row in ok if row.output_tokens is None),
        output_tokens_per_s=round(tokens / duration, 3),
        requests_per_s=round(len(ok) / duration, 3),
    )
    return LatencyResult(summary=summary, rows=rows)


def p95_intervals(rows: Sequence[RequestRow]) -> dict[str, Interval]:
    """Each metric's p95 with a 95% bootstrap interval over the successful requests (a request's
    inter-token gaps are resampled together); metrics without samples are left out."""
    ok = [row for row in rows if row.ok]
    samples = {
        "ttft": [[row.ttft_ms] for row in ok if row.ttft_ms is not None],
        "itl": [row.itl_ms for row in ok if row.itl_ms],
        "e2e": [[row.e2e_ms] for row in ok if row.e2e_ms is not None],
    }
    return {metric: p95_interval(units, f"{metric.upper()} p95")
            for metric, units in samples.items() if units}
