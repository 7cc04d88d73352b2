"""The one status writeback: derive eval status from the ledger, write the catalog and its table.

Both the gate plugin (once a run) and `modelgate-catalog status --write` go through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from deploy.catalog import atomic_write_text, load_catalog, write_statuses
from deploy.catalog_table import DEFAULT_DOC, write_table
from deploy.ledger import Ledger, derive_statuses


def derived_statuses(ledger: Path, aliases: Iterable[str]) -> dict[str, str]:
    """Each alias's status as the ledger's records derive it (aliases without a record absent)."""
    return derive_statuses(Ledger(ledger), sorted(aliases))


def write_back(
    ledger: Path, catalog: Path, aliases: Iterable[str], *,
    target: Path | None = None, doc: Path = DEFAULT_DOC, build_copy: bool = False,
) -> dict[str, str]:
    """Write `aliases`' derived status to `catalog` (or to its copy `target`) and the table to
    `doc`. With `build_copy`, `doc` is a build copy of the committed page: its prose is refreshed
    from the committed one first (the committed page itself is never copied onto).
    """
    statuses = derived_statuses(ledger, aliases)
    write_statuses(catalog, statuses, target=target)
    if build_copy and Path(doc).resolve() != DEFAULT_DOC:
        atomic_write_text(Path(doc), DEFAULT_DOC.read_text(encoding="utf-8"))
    write_table(load_catalog(target or catalog), doc)
    return statuses
