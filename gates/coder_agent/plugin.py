"""The coder-agent plugin: its deploy-and-key fixture and options. Its marker comes from the catalog."""

from __future__ import annotations

import pytest

from gates.coder_agent.budget import key_exists
from gates.options import positive_int

ALIAS = "coder-agent"
GATE = "tool_loop"


class KeyNotDeleted(RuntimeError):
    """The run's throwaway key still exists at the gateway after the run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("modelgate").addoption(
        "--tool-loop-limit", type=positive_int, default=None,
        help="coder-agent: only the first N tool scenarios (a smoke run, not a verdict to promote on)",
    )


@pytest.fixture(scope="session")
def coder_agent(gate_session):
    """coder-agent deployed, with a throwaway key holding the gate's budget for this run."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
    # alias_context deleted the key; a key left behind would keep its budget open to anyone holding it.
    if key_exists(context.admin, context.key):
        raise KeyNotDeleted(f"{ALIAS}: the throwaway key {context.key.key_name} still exists after the run")
