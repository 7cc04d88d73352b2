"""The embeddings plugin: its deploy-and-key fixture. Its marker comes from the catalog."""

from __future__ import annotations

import pytest

ALIAS = "embeddings"
GATE = "embeddings"


@pytest.fixture(scope="session")
def embeddings_alias(gate_session):
    """embeddings deployed, with a throwaway budgeted key scoped to it for this run."""
    with gate_session.alias_context(ALIAS, gate=GATE) as context:
        yield context
