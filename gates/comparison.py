"""A gate's candidate against its incumbent: the ledger's records joined with evals' statistics.

The incumbent comes from deploy.incumbent (latest passed record on another model, or the
`--baseline` record); the items each run passed come from its kind's `items=`/`samples=`; the
tests are evals.comparison's. A significant regression beyond the catalog's `max_regression`
turns a PASS into FAIL, naming the incumbent and the items that flipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

from deploy.incumbent import IncumbentError, find_incumbent, find_record, named_baseline
from deploy.ledger import GateRecord, Ledger, Verdict
from evals.comparison import (
    SIGNIFICANCE,
    PercentileComparison,
    RateComparison,
    compare_latency,
    compare_rates,
)
from gates.html_report.items import read_rows

Rows = list[dict[str, Any]]
NO_INCUMBENT = "no incumbent"
BASELINE_FLAG = "--baseline"
SHOWN_IDS = 10  # flipped ids listed in a line; the record keeps them all


class GateComparison(BaseModel):
    """What the record keeps (`GateRecord.comparison`): the incumbent, the tests, the lines."""

    incumbent_id: str | None = None
    incumbent_model: str | None = None
    incumbent_revision: str | None = None
    rates: RateComparison | None = None
    latency: list[PercentileComparison] = []
    max_regression: float | None = None
    regressed: bool = False  # significant and beyond max_regression
    lines: list[str] = [NO_INCUMBENT]


def detail_rows(details: Iterable[BaseModel | dict[str, Any]]) -> Rows:
    """A measurement's detail rows as the ledger keeps them (JSON values)."""
    return [row.model_dump(mode="json") if isinstance(row, BaseModel) else dict(row)
            for row in details]


def _ids(ids: list[str]) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f", … (+{len(ids) - SHOWN_IDS})" if len(ids) > SHOWN_IDS else "")


def _pct(value: float) -> str:
    return f"{value * 100:+.1f} points"


def rate_lines(rates: RateComparison) -> list[str]:
    if rates.paired == 0:
        return ["no item in both runs: nothing to compare"]
    assert rates.candidate_rate is not None and rates.incumbent_rate is not None
    assert rates.difference is not None
    word = "significant" if rates.significant else "not significant"
    lines = [
        f"{rates.paired} paired items: {rates.candidate_rate:.0%} vs {rates.incumbent_rate:.0%}, "
        f"{_pct(rates.difference)}, exact McNemar p={rates.p_value:.3g} ({word} at "
        f"{SIGNIFICANCE})",
        f"pass->fail ({len(rates.pass_to_fail)}): {_ids(rates.pass_to_fail)}",
        f"fail->pass ({len(rates.fail_to_pass)}): {_ids(rates.fail_to_pass)}",
    ]
    alone = [(len(rates.only_candidate), "candidate"), (len(rates.only_incumbent), "incumbent")]
    lines += [f"{n} item(s) only in the {who} run, left out" for n, who in alone if n]
    return lines


def latency_line(p: PercentileComparison) -> str:
    word = "significant" if p.significant else "not significant"
    return (f"{p.metric} p95 {p.candidate_p95:.0f} vs {p.incumbent_p95:.0f} ms: "
            f"{p.difference:+.0f} ms ({p.relative:+.1%}) [95% CI {p.low:+.0f} to {p.high:+.0f} ms, "
            f"bootstrap] ({word})")


def compare_rows(incumbent: GateRecord, candidate: Rows, baseline: Rows, *,
                 items: Callable[[Rows], dict[str, bool]] | None,
                 samples: Callable[[Rows], dict[str, list[float]]] | None,
                 max_regression: float | None) -> GateComparison:
    """The comparison of a candidate's rows with the incumbent record's rows."""
    rates = compare_rates(items(candidate), items(baseline)) if items else None
    latency = compare_latency(samples(candidate), samples(baseline)) if samples else []
    regressed = False
    if max_regression is not None:
        regressed = bool(rates and rates.significant and rates.regression > max_regression) or any(
            p.significant and p.regression > max_regression for p in latency)
    head = f"vs incumbent {incumbent.record_id} ({incumbent.target.model}"
    head += f" @ {incumbent.target.revision})" if incumbent.target.revision else ")"
    lines = [head, *(rate_lines(rates) if rates else []), *map(latency_line, latency)]
    return GateComparison(
        incumbent_id=incumbent.record_id, incumbent_model=incumbent.target.model,
        incumbent_revision=incumbent.target.revision, rates=rates, latency=latency,
        max_regression=max_regression, regressed=regressed, lines=lines,
    )


def compare_records(ledger: Ledger, candidate: GateRecord, incumbent: GateRecord, *,
                    items: Callable[[Rows], dict[str, bool]] | None,
                    samples: Callable[[Rows], dict[str, list[float]]] | None,
                    max_regression: float | None = None) -> GateComparison:
    """Two records of the ledger compared from their details files alone."""
    rows, _ = read_rows(ledger.path, candidate)
    baseline, _ = read_rows(ledger.path, incumbent)
    return compare_rows(incumbent, rows, baseline, items=items, samples=samples,
                        max_regression=max_regression)


def incumbent_for(ledger: Ledger, *, alias: str, gate: str, model: str, revision: str | None,
                  baseline: str | None) -> GateRecord | None:
    """The `--baseline` record when it is this gate's (checked), else the latest passed one on
    another model: in a run of several gates the baseline names one of them."""
    if baseline:
        named = find_record(ledger, baseline)
        if (named.alias, named.gate) == (alias, gate):
            return named_baseline(ledger, baseline, alias, gate)
    return find_incumbent(ledger, alias, gate, model=model, revision=revision)


def regression_reason(comparison: GateComparison) -> str:
    """Why a threshold-meeting run fails: the incumbent, the figures, the flipped items."""
    assert comparison.max_regression is not None
    parts = [f"significant regression against incumbent {comparison.incumbent_id} "
             f"({comparison.incumbent_model}) beyond max_regression "
             f"{comparison.max_regression:.0%}"]
    rates = comparison.rates
    if rates and rates.significant and rates.regression > comparison.max_regression:
        parts.append(f"{_pct(rates.difference or 0.0)} (McNemar p={rates.p_value:.3g}); "
                     f"pass->fail: {_ids(rates.pass_to_fail)}")
    for p in comparison.latency:
        if p.significant and p.regression > comparison.max_regression:
            parts.append(latency_line(p))
    return ": ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if parts[1:] else "")


def decide(verdict: Verdict, reason: str, comparison: GateComparison) -> tuple[Verdict, str]:
    """PASS (or INCONCLUSIVE: the threshold may be met) becomes FAIL on a regression beyond
    max_regression; FAIL and ERROR stay."""
    if verdict not in ("pass", "inconclusive") or not comparison.regressed:
        return verdict, reason
    why = regression_reason(comparison)
    return "fail", f"{reason}; {why}" if reason else why


def baseline_problem(record_id: str | None, ledger: Ledger,
                     selected: Iterable[tuple[str, str]]) -> str | None:
    """One line when `--baseline RECORD_ID` names no record, or none of the selected gates."""
    if not record_id:
        return None
    try:
        record = find_record(ledger, record_id)
    except IncumbentError as exc:
        return f"modelgate: {BASELINE_FLAG} {record_id}: {exc}"
    pairs = sorted(set(selected))
    if (record.alias, record.gate) in pairs:
        return None
    chosen = ", ".join(f"{a}/{g}" for a, g in pairs) or "none"
    return (f"modelgate: {BASELINE_FLAG} {record_id} is a record of {record.alias}/{record.gate}, "
            f"but the selected gates are {chosen}")
