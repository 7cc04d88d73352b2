"""The installed bfcl-eval package: its version, a category's entries and possible answers.

BFCL's own loader is used (`bfcl_eval.utils.load_dataset_entry`), so an entry is exactly what
BFCL's generation sees: the language hint in the function descriptions, and for multi-turn
entries the function docs of the involved classes (miss-func's held-out docs removed).
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import os
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

DISTRIBUTION = "bfcl-eval"
PINNED = "2026.3.23"
INSTALL = (f"pip install --no-deps {DISTRIBUTION}=={PINNED} tree_sitter==0.21.3 "
           "tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4 (scripts/install-platform.sh)")
# bfcl_eval's config module creates result/score/lock folders under BFCL_PROJECT_ROOT when it is
# imported (by default beside the installed package): point it at a private scratch folder.
PROJECT_ROOT_ENV = "BFCL_PROJECT_ROOT"

SINGLE_TURN = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param")
CATEGORIES = SINGLE_TURN + MULTI_TURN


class BfclNotInstalled(RuntimeError):
    """The bfcl-eval package is missing: one line naming the install command."""


def _scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / f"modelgate-bfcl-{os.getuid()}"


def bfcl_module(name: str) -> ModuleType:
    """`bfcl_eval.<name>`, imported with its scratch folders outside the environment."""
    os.environ.setdefault(PROJECT_ROOT_ENV, str(_scratch_root()))
    try:
        return importlib.import_module(f"bfcl_eval.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "bfcl_eval":
            raise BfclNotInstalled(
                f"the BFCL gate needs the bfcl-eval package: {INSTALL}") from None
        raise


def package_version() -> str:
    """The installed bfcl-eval version (recorded with every BFCL verdict)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise BfclNotInstalled(f"the BFCL gate needs the bfcl-eval package: {INSTALL}") from None


def _known(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r} (known: {', '.join(CATEGORIES)})")
    return category


@cache
def _entries(category: str) -> tuple[dict[str, Any], ...]:
    return tuple(bfcl_module("utils").load_dataset_entry(_known(category)))


@cache
def _answers(category: str) -> dict[str, dict[str, Any]]:
    if category == "irrelevance":  # BFCL ships no possible answer: the right answer is no call
        return {}
    rows = bfcl_module("utils").load_ground_truth_entry(_known(category))
    return {row["id"]: row for row in rows}


def load_category(category: str) -> list[dict[str, Any]]:
    """Every entry of a BFCL category, in the package's order (fresh copies, safe to change)."""
    return copy.deepcopy(list(_entries(category)))


def load_answers(category: str) -> dict[str, dict[str, Any]]:
    """The possible answers of a category by entry id (`{"id", "ground_truth"}`); none for
    irrelevance."""
    return copy.deepcopy(_answers(category))


def select(category: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The category's entries with the given ids, in the given order (all when None); an id the
    package does not have is an error naming it."""
    entries = load_category(category)
    if ids is None:
        return entries
    by_id = {entry["id"]: entry for entry in entries}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"BFCL {category} {package_version()} has no entries {missing[:5]}")
    return [by_id[i] for i in ids]


def category_of(entry_id: str) -> str:
    """The category of an entry id (`parallel_multiple_3` -> `parallel_multiple`)."""
    return entry_id.rsplit("_", 1)[0]
