"""The BFCL promotion subset: a fixed list of entry ids per category, chosen once by a rule.

Rule: within each category, the ids ordered by the SHA-256 of the id text, the first k taken
(k per category in the file). A hash order spreads the picks over the whole category without
looking at any model's results; the file names the package version it was drawn from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel

from evals.bfcl.data import CATEGORIES
from evals.fixture_files import read_json_model

RULE = ("within each category, the entry ids ordered by the SHA-256 hex digest of the id text "
        "(ascending), the first k taken; k per category in `per_category`")


class BfclSubset(BaseModel):
    """The committed subset file."""

    name: str
    rule: str
    package: str
    version: str
    per_category: dict[str, int]
    ids: dict[str, list[str]]


def hash_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())


def choose(ids_by_category: dict[str, list[str]], per_category: dict[str, int]) -> dict[str, list[str]]:
    """The rule applied: the first k ids of each category in hash order."""
    return {category: hash_order(ids_by_category[category])[:k] for category, k in per_category.items()}


def load_subset(path: str | Path) -> BfclSubset:
    """The subset file at `path`, validated (a clear error names the file at fault)."""
    path = Path(path)
    subset = read_json_model(path, BfclSubset, "BFCL subset file")
    unknown = sorted(set(subset.ids) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{path}: unknown BFCL categories {unknown} (known: {', '.join(CATEGORIES)})")
    for category, ids in subset.ids.items():
        if len(set(ids)) != len(ids):
            raise ValueError(f"{path}: ids of {category} have duplicates")
    return subset
