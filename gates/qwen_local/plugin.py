"""The qwen-local plugin: its deploy-and-key fixture and the latency gate's options."""

from __future__ import annotations

import pytest

from gates.options import positive_int

ALIAS = "qwen-local"
GATE = "latency"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelgate")
    group.addoption(
        "--slo-profile", choices=["auto", "catalog", "cpu"], default="auto",
        help="qwen-local: gate against the catalog's SLOs (for the GPU they were measured on) or "
        "the embedded platform's CPU profile (<build-dir>/embedded/slo-cpu.yaml, derived on its "
        "first run). auto: cpu for the embedded platform's stand-in engine, else catalog",
    )
    group.addoption(
        "--latency-requests", type=positive_int, default=None,
        help="qwen-local: measure N requests instead of the catalog's count (a smoke run, not a "
        "verdict to promote on)",
    )


@pytest.fixture(scope="session")
def qwen_local(gate_session):
    """qwen-local deployed, with a throwaway key scoped to it for this run."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
