"""The gate-kind registry: a kind is its typed config and one function measuring an alias.

`@gate_kind("humaneval", config=HumanEvalGate, options=[...])` records a kind once; the catalog
binds kinds to aliases (`gates: {humaneval: ...}`), and the core plugin generates one test item
per (alias, gate). Every kind returns the one verdict type, `GateVerdict`; `record_outcome` is
the one record path (ledger append with the kind's scope and limits, then enforce).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from deploy.gate_configs import GateConfig
from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts, GateRecord, Verdict, now
from evals.seeds import resolve_seed
from gates.comparison import (
    BASELINE_FLAG,
    GateComparison,
    compare_rows,
    detail_rows,
    incumbent_for,
)
from gates.comparison import decide as decide_regression
from gates.decision import Rule, decide
from gates.html_report.items import read_rows
from gates.session import AliasContext
from gates.verdicts import enforce


class GateVerdict(BaseModel):
    """What measuring an alias proved: the one verdict type every gate kind returns."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    verdict: Verdict
    metric: str
    value: float | None
    threshold: float | None
    summary: str
    reason: str = ""
    counts: Counts | None = None
    details: list[Any] = []
    served_model_name: str | None = None
    extra: dict[str, Any] = {}
    # Each rate the gate judged, with its 95% interval (the catalog's `decision` rule reads them),
    # and the verdict of the kind's checks besides those rates (spend, wire, dimensions...).
    judged: list[JudgedRate] = []
    other_checks: Verdict = "pass"


@dataclass
class GateContext:
    """What a kind's `measure` gets: the deployed alias with its key, the run's scope, options."""

    alias: AliasContext
    config: pytest.Config
    scope: str  # "promotion" | "release"
    started_at: Any = field(default_factory=now)

    @property
    def name(self) -> str:
        return self.alias.entry.alias

    @property
    def build_dir(self) -> Path:
        return Path(self.config.getoption("--build-dir"))

    def option(self, flag: str) -> Any:
        return self.config.getoption(flag)


@dataclass(frozen=True)
class Option:
    """A command-line option of a kind (registered once, whatever the number of aliases)."""

    flag: str
    kwargs: dict[str, Any]


Measure = Callable[[GateContext, Any], GateVerdict]
# A kind's per-item outcomes from its detail rows (as the ledger keeps them): {item id: passed},
# items the platform never answered left out; and, for latency, {metric: per-request samples}.
Items = Callable[[list[dict[str, Any]]], dict[str, bool]]
Samples = Callable[[list[dict[str, Any]]], dict[str, list[float]]]


@dataclass(frozen=True)
class GateKind:
    name: str
    config: type[GateConfig]
    measure: Measure
    options: tuple[Option, ...] = ()
    doc: str = ""
    # Checked after the alias's key is deleted (e.g. the key must really be gone).
    after_key: Callable[[AliasContext], None] | None = None
    items: Items | None = None  # what the candidate-against-incumbent comparison pairs
    samples: Samples | None = None


_KINDS: dict[str, GateKind] = {}


def gate_kind(
    name: str, *, config: type[GateConfig], options: list[Option] | tuple[Option, ...] = (),
    after_key: Callable[[AliasContext], None] | None = None, items: Items | None = None,
    samples: Samples | None = None,
) -> Callable[[Measure], Measure]:
    """Register `measure` as gate kind `name` with its typed config and options."""

    def register(measure: Measure) -> Measure:
        if name in _KINDS and _KINDS[name].measure is not measure:
            raise ValueError(f"gate kind {name!r} is registered twice")
        doc = (measure.__doc__ or "").strip()
        _KINDS[name] = GateKind(name, config, measure, tuple(options), doc, after_key, items,
                               samples)
        return measure

    return register


def kinds() -> dict[str, GateKind]:
    """Every registered kind (each `gates/kinds/<kind>` package registers itself on import)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.ispkg:
            importlib.import_module(f"{__package__}.{module.name}")
    return dict(_KINDS)


def kind(name: str) -> GateKind:
    found = kinds().get(name)
    if found is None:
        raise KeyError(f"no gate kind {name!r} (known: {', '.join(sorted(_KINDS))})")
    return found


def record_outcome(ctx: GateContext, gate: str, outcome: GateVerdict) -> GateRecord:
    """The one record path: the outcome goes to the ledger (with the run's target), then the
    test passes, fails (FAIL) or errors (ERROR) by its verdict."""
    comparison = against_incumbent(ctx, gate, outcome)
    verdict, reason = outcome.verdict, outcome.reason
    if comparison is not None:
        verdict, reason = decide_regression(verdict, reason, comparison)
    record = ctx.alias.record(
        gate=gate, verdict=verdict, metric=outcome.metric, value=outcome.value,
        threshold=outcome.threshold, summary=outcome.summary, reason=reason,
        counts=outcome.counts, details=outcome.details,
        served_model_name=outcome.served_model_name, started_at=ctx.started_at,
        extra=outcome.extra, judged=outcome.judged,
        incumbent_id=comparison.incumbent_id if comparison else None,
        comparison=comparison.model_dump(mode="json") if comparison else None,
    )
    enforce(record)
    return record


def apply_decision(outcome: GateVerdict, rule: Rule) -> GateVerdict:
    """The outcome under the catalog's decision rule (gates.decision: point or lower-bound)."""
    verdict, reason = decide(outcome.verdict, outcome.judged, rule,
                             other_checks=outcome.other_checks, reason=outcome.reason)
    return outcome.model_copy(update={"verdict": verdict, "reason": reason})


def against_incumbent(ctx: GateContext, gate: str, outcome: GateVerdict) -> GateComparison | None:
    """The outcome against the alias's incumbent for this gate (None: the kind pairs nothing,
    or the run erred: ERROR stays ERROR, with nothing to compare)."""
    found = kind(gate)
    if outcome.verdict == "error" or (found.items is None and found.samples is None):
        return None
    ledger = ctx.alias.session.ledger
    deployment = ctx.alias.deployment
    incumbent = incumbent_for(
        ledger, alias=ctx.name, gate=gate, model=deployment.model, revision=deployment.revision,
        baseline=ctx.config.getoption(BASELINE_FLAG, None),
    )
    if incumbent is None:
        return GateComparison()
    baseline, _ = read_rows(ledger.path, incumbent)
    config = ctx.alias.entry.gate(gate)
    return compare_rows(incumbent, detail_rows(outcome.details), baseline, items=found.items,
                        samples=found.samples, max_regression=config.max_regression)


def run_gate(ctx: GateContext, gate: str) -> GateRecord:
    """Measure the alias with kind `gate` under its typed catalog config, decide by the gate's
    rule, record, enforce."""
    found = kind(gate)
    config = ctx.alias.entry.gate(gate)
    outcome = apply_decision(found.measure(ctx, config), config.decision)
    # The run's seed goes into every record; a kind that sent none (an Anthropic backend) or
    # per-sample seeds says so in its own extra["seed"], which wins.
    extra = {"seed": resolve_seed(config.seed), **outcome.extra}
    return record_outcome(ctx, gate, outcome.model_copy(update={"extra": extra}))
