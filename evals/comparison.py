"""Candidate against incumbent: an exact McNemar test on paired items, a bootstrap for p95s.

Plain values in, pydantic results out: which items flipped (by id, both ways), the rate
difference and its p-value; for latency, the p95 difference with its 95% bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel
from scipy import stats

SIGNIFICANCE = 0.05  # a p-value (or an interval excluding 0) at this level is significant
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same two runs always give the same interval


class RateComparison(BaseModel):
    """Paired pass/fail items of two runs: an exact (binomial) McNemar test on the discordant pairs."""

    paired: int  # items in both runs, the only ones tested
    candidate_rate: float | None  # over the paired items
    incumbent_rate: float | None
    difference: float | None  # candidate - incumbent: negative is a regression
    p_value: float
    pass_to_fail: list[str]  # passed for the incumbent, failed for the candidate
    fail_to_pass: list[str]
    only_candidate: list[str] = []  # left out of the test
    only_incumbent: list[str] = []

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE

    @property
    def regression(self) -> float:
        """How much worse the candidate is (0 when it is not worse)."""
        return max(0.0, -(self.difference or 0.0))


class PercentileComparison(BaseModel):
    """One latency metric's p95, candidate - incumbent, with a 95% bootstrap interval."""

    metric: str
    candidate_p95: float
    incumbent_p95: float
    difference: float  # candidate - incumbent (ms): positive is slower
    low: float
    high: float
    candidate_n: int
    incumbent_n: int

    @property
    def relative(self) -> float:
        """The difference as a fraction of the incumbent's p95 (slower is positive)."""
        return self.difference / self.incumbent_p95 if self.incumbent_p95 else 0.0

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0

    @property
    def regression(self) -> float:
        return max(0.0, self.relative)


def mcnemar_exact(pass_to_fail: int, fail_to_pass: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs at 1/2."""
    discordant = pass_to_fail + fail_to_pass
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(pass_to_fail, discordant, 0.5).pvalue)


def compare_rates(candidate: Mapping[str, bool], incumbent: Mapping[str, bool]) -> RateComparison:
    """Compare two runs' item outcomes ({item id: passed}); ids in one run only are reported,
    and left out of the test."""
    # In the candidate's order (its run's), not sorted: "HumanEval/9" before "HumanEval/10".
    both = [i for i in candidate if i in incumbent]
    down = [i for i in both if incumbent[i] and not candidate[i]]
    up = [i for i in both if candidate[i] and not incumbent[i]]
    cand_rate = sum(candidate[i] for i in both) / len(both) if both else None
    inc_rate = sum(incumbent[i] for i in both) / len(both) if both else None
    return RateComparison(
        paired=len(both), candidate_rate=cand_rate, incumbent_rate=inc_rate,
        difference=None if cand_rate is None or inc_rate is None else cand_rate - inc_rate,
        p_value=mcnemar_exact(len(down), len(up)), pass_to_fail=down, fail_to_pass=up,
        only_candidate=[i for i in candidate if i not in incumbent],
        only_incumbent=[i for i in incumbent if i not in candidate],
    )


# numpy's default (linear) percentile is statistics.quantiles(method="inclusive"), the gate's own.
def _p95_difference(candidate: np.ndarray, incumbent: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.percentile(candidate, 95, axis=axis) - np.percentile(incumbent, 95, axis=axis)


def compare_p95(metric: str, candidate: Sequence[float], incumbent: Sequence[float], *,
                seed: int = BOOTSTRAP_SEED) -> PercentileComparison | None:
    """The p95 difference of two runs' samples with an unpaired percentile bootstrap interval
    (two runs' requests are not the same questions in the same order), or None without samples."""
    cand = np.asarray(candidate, dtype=float)
    inc = np.asarray(incumbent, dtype=float)
    if cand.size < 2 or inc.size < 2:
        return None
    result = stats.bootstrap(
        (cand, inc), _p95_difference, n_resamples=BOOTSTRAP_RESAMPLES, paired=False,
        vectorized=True, method="percentile", rng=np.random.default_rng(seed),
        batch=200,  # bounded memory: pooled ITL gaps run to thousands per run
    )
    interval = result.confidence_interval
    return PercentileComparison(
        metric=metric, candidate_p95=float(np.percentile(cand, 95)),
        incumbent_p95=float(np.percentile(inc, 95)),
        difference=float(_p95_difference(cand, inc)), low=float(interval.low),
        high=float(interval.high), candidate_n=int(cand.size), incumbent_n=int(inc.size),
    )


def compare_latency(candidate: Mapping[str, Sequence[float]],
                    incumbent: Mapping[str, Sequence[float]]) -> list[PercentileComparison]:
    """Each metric both runs have samples of ({metric: samples}), in name order."""
    out = []
    for metric in sorted(set(candidate) & set(incumbent)):
        compared = compare_p95(metric, candidate[metric], incumbent[metric])
        if compared is not None:
            out.append(compared)
    return out
