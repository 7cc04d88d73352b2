"""The double against the real proxy, side by side: one table of contract cases.

Each case runs against both gateways; each must carry what the case expects, and every field
the two answers carry must agree unless `fixtures.platform.gateway_differences` declares why it
may not. A difference names the field and both values. The table of results is written to
build/conformance/cases.md for the docs.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fixtures.platform.gateway_differences import DECLARED_DIFFERENCES, declared
from tests.conformance.cases import CASES, Case, Facts, observe
from tests.conformance.conftest import Gateway

TABLE = Path(__file__).resolve().parents[2] / "build" / "conformance" / "cases.md"
_ROWS: dict[str, str] = {}


def _observe(gateway: Gateway, case: Case) -> Facts:
    with httpx.Client(base_url=gateway.url, timeout=120, trust_env=False) as client:
        return observe(client, case, gateway.master_key)


def _unmet(facts: Facts, case: Case) -> list[str]:
    return [f"{name}: expected {want!r}, got {facts.get(name)!r}"
            for name, want in case.expect.items() if facts.get(name) != want]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_contract_case_agrees(case: Case, real_proxy: Gateway, double: Gateway) -> None:
    real, stand_in = _observe(real_proxy, case), _observe(double, case)
    problems = [f"litellm {p}" for p in _unmet(real, case)]
    problems += [f"double {p}" for p in _unmet(stand_in, case)]
    declared_here = []
    for name in sorted(set(real) | set(stand_in)):
        if real.get(name) == stand_in.get(name):
            continue
        if declared(case.name, name):
            declared_here.append(name)
            continue
        problems.append(f"{case.name}.{name}: litellm={real.get(name)!r} double={stand_in.get(name)!r}")
    verdict = "agrees" if not declared_here else f"agrees but declared: {', '.join(declared_here)}"
    _ROWS[case.name] = (f"| {case.name} | `{case.route}` | {real.get('status')} | "
                        f"{stand_in.get('status')} | {'DIFFERS' if problems else verdict} |")
    _write_table()
    assert not problems, "\n".join(problems)


def test_every_declared_difference_is_still_seen(real_proxy: Gateway, double: Gateway) -> None:
    """A declaration whose field now agrees everywhere is stale: remove it."""
    seen: set[str] = set()
    for case in CASES:
        real, stand_in = _observe(real_proxy, case), _observe(double, case)
        for name in set(real) | set(stand_in):
            if real.get(name) != stand_in.get(name):
                seen |= {key for key in (f"{case.name}.{name}", f"*.{name}", f"{case.name}.*")
                         if key in DECLARED_DIFFERENCES}
    assert sorted(set(DECLARED_DIFFERENCES) - seen) == []


def _write_table() -> None:
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| case | route | LiteLLM status | double status | result |", "|---|---|---|---|---|"]
    lines += [_ROWS[case.name] for case in CASES if case.name in _ROWS]
    TABLE.write_text("\n".join(lines) + "\n", encoding="utf-8")
