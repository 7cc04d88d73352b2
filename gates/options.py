"""Checked option values: a limit or count that makes no sense is refused on the command line."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse `type=`: a whole number of at least 1 (a limit of 0 or -1 would gate nothing,
    or silently drop tasks from the end of the set)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value
