"""A gate's decision rule over its judged rates: `point` (the estimate against the threshold,
as the kinds judge) or `lower-bound` (the whole 95% interval must clear it).

Applied once, generically, after a kind measured (gates.kinds.registry.run_gate): under
`lower-bound` a rate whose interval lies wholly on the passing side passes, wholly on the
failing side fails, and one that straddles its threshold makes the gate INCONCLUSIVE, with a
sample-size estimate in its reason. An ERROR stays ERROR, any FAIL beats INCONCLUSIVE, and a
check besides the rates that failed (spend, wire, dimensions...) fails the gate under any rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from deploy.judged_rates import JudgedRate
from deploy.ledger import Verdict
from evals.intervals import Interval, clears, misses, settle_text

Rule = Literal["point", "lower-bound"]
RateOutcome = Literal["pass", "fail", "inconclusive"]
# pytest uses 0-5 (1: tests failed, 2: interrupted, 4: usage error); 6 is the first free code.
INCONCLUSIVE_EXIT = 6


def interval_of(rate: JudgedRate) -> Interval:
    return Interval.model_validate(rate.model_dump(include=set(Interval.model_fields)))


def point_passes(rate: JudgedRate) -> bool:
    """Today's rule: the estimate itself on the passing side of the threshold."""
    assert rate.threshold is not None
    if rate.direction == "min":
        return rate.estimate >= rate.threshold
    return rate.estimate <= rate.threshold


def lower_bound_outcome(rate: JudgedRate) -> RateOutcome:
    """The conservative bound clears the threshold: pass; the interval is wholly on the wrong
    side: fail; otherwise inconclusive."""
    assert rate.threshold is not None
    interval = interval_of(rate)
    if clears(interval, rate.threshold, rate.direction):
        return "pass"
    if misses(interval, rate.threshold, rate.direction):
        return "fail"
    return "inconclusive"


def gate_text(rate: JudgedRate) -> str:
    """E.g. "≥70% gate", "≤5% gate", "≤250 ms target"."""
    sign = "≥" if rate.direction == "min" else "≤"
    assert rate.threshold is not None
    if rate.unit == "ms":
        return f"{sign}{rate.threshold:g} ms target"
    return f"{sign}{rate.threshold:.0%} gate"


def judged_text(rate: JudgedRate) -> str:
    """One judged rate for reports, e.g. "pass rate 18/20 = 90% [95% CI 70-97%] (≥70% gate)"."""
    text = f"{rate.name} {interval_of(rate).figure()}"
    return text + (f" ({gate_text(rate)})" if rate.threshold is not None else "")


def straddle_text(rate: JudgedRate) -> str:
    """Why one rate is inconclusive and how many items would settle it."""
    assert rate.threshold is not None
    interval = interval_of(rate)
    # One decimal: a bound of 69.9% must not read as the 70% it straddles.
    return (f"{rate.name} {interval.figure(digits=1)} straddles the {gate_text(rate)}; "
            f"{settle_text(interval, rate.threshold, rate.direction)}")


def decide(verdict: Verdict, judged: Iterable[JudgedRate], rule: Rule, *,
           other_checks: Verdict = "pass", reason: str = "") -> tuple[Verdict, str]:
    """The gate's verdict and reason under `rule`, from the kind's point verdict and rates.

    `other_checks` is the verdict of the kind's checks besides the judged rates; a kind that
    does not say leaves "pass", and a point FAIL that no judged rate explains is then taken as
    such a check's failure.
    """
    if rule == "point" or verdict == "error":
        return verdict, reason
    rated = [rate for rate in judged if rate.threshold is not None]
    if other_checks == "fail" or (verdict == "fail" and all(point_passes(r) for r in rated)):
        return "fail", reason
    outcomes = [(rate, lower_bound_outcome(rate)) for rate in rated]
    if any(outcome == "fail" for _, outcome in outcomes):
        return "fail", reason
    if other_checks == "error":
        return "error", reason
    straddling = [rate for rate, outcome in outcomes if outcome == "inconclusive"]
    if straddling:
        return "inconclusive", "lower-bound rule: " + "; ".join(map(straddle_text, straddling))
    return verdict, reason


def exit_status(current: int, verdicts: Iterable[str | None], failed: int) -> int:
    """INCONCLUSIVE_EXIT when the run failed only because gates were inconclusive.

    `current` is pytest's exit status, `verdicts` each gate test's verdict and `failed` the exit
    status meaning "tests failed"; any FAIL, ERROR or gate without a verdict keeps `current`.
    """
    verdicts = list(verdicts)
    if current != failed or "inconclusive" not in verdicts:
        return current
    if all(v in ("pass", "inconclusive") for v in verdicts):
        return INCONCLUSIVE_EXIT
    return current
