"""The coder-fim plugin: its deploy-and-key fixture and options. Its marker comes from the catalog."""

from __future__ import annotations

import pytest

from gates.coder_fim.config import GATE
from gates.options import positive_int

ALIAS = "coder-fim"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("modelgate").addoption(
        "--fim-limit", type=positive_int, default=None,
        help="coder-fim: only N cases, spread over the kinds (a smoke run, not a verdict to "
        "promote on)",
    )


@pytest.fixture(scope="session")
def coder_fim(gate_session):
    """coder-fim deployed, with a throwaway budgeted key scoped to it for this run."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
