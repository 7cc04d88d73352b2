"""Turning a recorded verdict into the pytest outcome, keeping FAIL and ERROR apart."""

from __future__ import annotations

import pytest

from deploy.ledger import GateRecord


class GatePlatformError(Exception):
    """The platform did not answer (timeouts, 5xx after retries, no cold start): ERROR, not FAIL."""


def alias_mark(alias: str) -> pytest.MarkDecorator:
    """The marker of an alias; aliases have hyphens, so `pytest.mark.coder-chat` cannot be written."""
    return getattr(pytest.mark, alias)


def verdict_message(record: GateRecord) -> str:
    """`alias/gate: VERDICT: summary: reason`, the one line a failing or erroring test shows."""
    message = f"{record.alias}/{record.gate}: {record.verdict.upper()}: {record.summary}"
    return message + (f": {record.reason}" if record.reason else "")


def enforce(record: GateRecord) -> None:
    """Pass silently; fail the test on FAIL and on INCONCLUSIVE (its own message, which says
    how many items would settle it); raise GatePlatformError on ERROR."""
    if record.verdict == "pass":
        return
    message = verdict_message(record)
    if record.verdict == "error":
        raise GatePlatformError(message)
    pytest.fail(message, pytrace=False)
