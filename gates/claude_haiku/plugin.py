"""The claude-haiku plugin: its deploy-and-key fixture. Its marker comes from the catalog."""

from __future__ import annotations

import pytest

ALIAS = "claude-haiku"
GATE = "usage"


@pytest.fixture(scope="session")
def claude_haiku(gate_session):
    """claude-haiku routed at the gateway, with a throwaway budgeted key scoped to it."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
