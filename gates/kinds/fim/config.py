"""The coder-fim gate's settings: the catalog's `gates.fim` block, typed in deploy.gate_configs."""

from __future__ import annotations

from deploy.catalog import AliasEntry
from deploy.gate_configs import FimGate

GATE = "fim"

def gate_config(entry: AliasEntry) -> FimGate:
    """The alias's FIM settings; a bad block names the alias and the field at fault."""
    config = entry.gate(GATE)
    assert isinstance(config, FimGate)
    return config


def fim_family_of(entry: AliasEntry) -> str:
    if not entry.fim_family:
        raise ValueError(f"catalog alias {entry.alias!r}: the FIM gate needs `fim_family`")
    return entry.fim_family
