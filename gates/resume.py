"""`--resume RUN_ID`: gate tests whose verdict that run already recorded are replayed, not re-run.

A record names its test (`extra["nodeid"]`, set centrally when it is appended). A test whose
latest records in the run are all PASS or FAIL becomes a `RecordedGate`: same id and markers, no
fixtures (so no deploy, no key, no request), and the recorded verdict decides its outcome. A
test with an ERROR record, or none, runs again: an ERROR says the platform did not answer, and
a resume is the moment to ask it again. Within a re-run test the run's response cache (same
run folder) answers what the model already answered before the interruption.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.ledger import GateRecord, Ledger
from gates.reports import PROPERTY_PREFIX, record_properties
from gates.verdicts import enforce

NODEID_KEY = "nodeid"


class RecordedGate(pytest.Item):
    """A gate test whose verdict this run already recorded: replayed from the ledger."""

    def __init__(self, *, records: list[GateRecord], original: pytest.Item, **kwargs):
        super().__init__(**kwargs)
        self.records = records
        self._original_info = original.reportinfo()
        self.own_markers.extend(original.own_markers)
        self.keywords.update(original.keywords)

    def runtest(self) -> None:
        self.user_properties.append((f"{PROPERTY_PREFIX}.resumed", "true"))
        for record in self.records:
            self.user_properties.extend(record_properties(record))
        for record in self.records:
            enforce(record)

    def reportinfo(self):
        return self._original_info


def recorded_tests(ledger: Path, run_id: str) -> dict[str, list[GateRecord]]:
    """Test id -> its latest record per gate in run `run_id`, for tests that need no re-run."""
    latest: dict[tuple[str, str], GateRecord] = {}
    for record in Ledger(ledger).records():
        test = record.extra.get(NODEID_KEY)
        if record.run_id == run_id and test:
            latest[(test, record.gate)] = record
    by_test: dict[str, list[GateRecord]] = {}
    for (test, _gate), record in latest.items():
        by_test.setdefault(test, []).append(record)
    return {test: records for test, records in by_test.items()
            if all(r.verdict in ("pass", "fail") for r in records)}


def run_exists(ledger: Path, run_folder: Path, run_id: str) -> bool:
    return run_folder.is_dir() or any(r.run_id == run_id for r in Ledger(ledger).records())


def replace_recorded(items: list[pytest.Item], recorded: dict[str, list[GateRecord]],
                     test_id) -> int:
    """Swap each recorded test for its RecordedGate, in place; returns how many."""
    swapped = 0
    for index, item in enumerate(items):
        records = recorded.get(test_id(item))
        if not records or not isinstance(item, pytest.Function):
            continue
        items[index] = RecordedGate.from_parent(
            item.parent, name=item.name, records=records, original=item
        )
        swapped += 1
    return swapped
