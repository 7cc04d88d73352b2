"""The coder-chat plugin: its deploy-and-key fixture. Its marker comes from the catalog."""

from __future__ import annotations

import pytest

from gates.options import positive_int

ALIAS = "coder-chat"
GATE = "humaneval"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("modelgate").addoption(
        "--humaneval-limit", type=positive_int, default=None,
        help="coder-chat: only the first N tasks of the selected set (a smoke run, not a verdict "
        "to promote on)",
    )


@pytest.fixture(scope="session")
def coder_chat(gate_session):
    """coder-chat deployed, with a throwaway budgeted key scoped to it for this run."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
