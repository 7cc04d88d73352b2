"""Gate kinds are registered once: each with the catalog's typed config, one measuring function,
its options, and the three controls any alias using the kind is proven with."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy.gate_configs import GATE_MODELS, HumanEvalGate
from deploy.ledger import Counts, Ledger
from fixtures.platform.controls import CONTROL_NAMES, controls_of, controls_of_kind
from gates.kinds.registry import GateContext, GateVerdict, gate_kind, kind, kinds, record_outcome
from gates.verdicts import GatePlatformError


def test_every_catalog_gate_kind_is_registered_with_its_typed_config() -> None:
    registered = kinds()
    assert set(registered) == set(GATE_MODELS)
    for name, gate in registered.items():
        assert gate.config is GATE_MODELS[name] and gate.doc, name
        assert set(controls_of_kind(name)) == set(CONTROL_NAMES), name
    flags = [o.flag for gate in registered.values() for o in gate.options]
    assert len(flags) == len(set(flags)) and "--humaneval-limit" in flags
    with pytest.raises(KeyError, match="no gate kind 'nope'"):
        kind("nope")


def test_a_kind_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        gate_kind("humaneval", config=GATE_MODELS["humaneval"])(lambda ctx, config: None)


def test_controls_follow_the_alias_gate_kinds_not_its_name() -> None:
    entry = SimpleNamespace(alias="any-new-name", gates=SimpleNamespace(names=lambda: ["humaneval"]))
    assert set(controls_of(entry)) == set(CONTROL_NAMES)


class _Alias:
    """Records what the one record path hands to the ledger (an empty ledger: no incumbent)."""

    def __init__(self, ledger_path: Path) -> None:
        self.calls: list[dict] = []
        self.session = SimpleNamespace(ledger=Ledger(ledger_path))
        self.deployment = SimpleNamespace(model="m", revision=None)
        self.entry = SimpleNamespace(alias="a", gate=lambda name: HumanEvalGate(min_pass_rate=0.7))

    def record(self, **fields):
        self.calls.append(fields)
        return SimpleNamespace(verdict=fields["verdict"], alias="a", gate=fields["gate"],
                               summary=fields["summary"], reason=fields["reason"])


@pytest.mark.parametrize(("verdict", "raised"), [("pass", None), ("fail", pytest.fail.Exception),
                                                 ("error", GatePlatformError)])
def test_the_record_path_appends_then_enforces(monkeypatch, tmp_path, verdict, raised) -> None:
    monkeypatch.setattr("gates.verdicts.verdict_message", lambda record: f"{record.verdict}")
    alias = _Alias(tmp_path / "ledger.jsonl")
    config = SimpleNamespace(getoption=lambda flag, default=None: default)
    ctx = GateContext(alias, config=config, scope="promotion", started_at="t0")  # type: ignore[arg-type]
    outcome = GateVerdict(verdict=verdict, metric="m", value=0.5, threshold=0.7, summary="s",
                          counts=Counts(passed=1, total=2), extra={"scope": "promotion"})
    if raised is None:
        record_outcome(ctx, "humaneval", outcome)
    else:
        with pytest.raises(raised):
            record_outcome(ctx, "humaneval", outcome)
    (call,) = alias.calls  # recorded before the verdict is enforced, whatever it is
    assert call["gate"] == "humaneval" and call["started_at"] == "t0"
    assert call["verdict"] == verdict and call["extra"] == {"scope": "promotion"}
    # Compared (no incumbent in an empty ledger) unless it erred: ERROR is never compared.
    assert call["incumbent_id"] is None
    lines = None if call["comparison"] is None else call["comparison"]["lines"]
    assert lines == (None if verdict == "error" else ["no incumbent"])
