"""What kind of run this is, for the ledger and the status: a gate run, a smoke run or a control.

Only a complete run at catalog scope (kind "gate") may write an eval status. A run cut short by
any `--*-limit` option, or measuring fewer `--latency-requests` than the catalog asks, is a
smoke run; `--control` gates a reference backend. Both go to the ledger marked as such.
"""

from __future__ import annotations

import pytest

from deploy.catalog import Catalog
from deploy.ledger import RecordKind


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def run_kind(config: pytest.Config, catalog: Catalog) -> tuple[RecordKind, str]:
    """The run's kind and, for smoke runs and controls, the options that make it so."""
    control = config.getoption("--control", None)
    if control:
        return "control", f"--control={control}"
    cut = [f"{_option(name)}={value}" for name, value in sorted(vars(config.option).items())
           if name.endswith("_limit") and value]  # the gates read 0/None as "no limit"
    requests = config.getoption("--latency-requests", None)
    if requests:
        counts = [entry.gates.latency.requests for entry in catalog.aliases
                  if entry.gates.latency is not None]
        if counts and requests < max(counts):
            cut.append(f"--latency-requests={requests} (catalog: {max(counts)})")
    if cut:
        return "smoke", ", ".join(cut)
    return "gate", ""
