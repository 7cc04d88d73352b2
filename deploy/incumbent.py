"""The incumbent a candidate is compared with: the model an alias serves today, by the ledger.

For one alias and gate, the latest record that passed, with per-item details, on another model
or revision than the candidate's. Smoke and control records prove a gate, never a model: they
are never incumbents. `--baseline RECORD_ID` names one instead, checked here.
"""

from __future__ import annotations

from deploy.ledger import GateRecord, Ledger

INCUMBENT_KINDS = ("gate", "imported")


class IncumbentError(ValueError):
    """A named baseline that is not in the ledger, or belongs to another alias or gate."""


def may_be_incumbent(record: GateRecord, ledger: Ledger) -> bool:
    """A passed gate or imported record whose details file is there to compare item by item."""
    if record.kind not in INCUMBENT_KINDS or record.verdict != "pass" or not record.details_file:
        return False
    return (ledger.path.parent / record.details_file).is_file()


def find_incumbent(ledger: Ledger, alias: str, gate: str, *, model: str,
                   revision: str | None) -> GateRecord | None:
    """The latest passed record of `alias`/`gate` on another model or revision, or None."""
    found = None
    for record in ledger.records():
        if record.alias != alias or record.gate != gate:
            continue
        if (record.target.model, record.target.revision) == (model, revision):
            continue  # the same model: an earlier run of the candidate, not what it replaces
        if not may_be_incumbent(record, ledger):
            continue
        if found is None or record.finished_at >= found.finished_at:
            found = record
    return found


def find_record(ledger: Ledger, record_id: str) -> GateRecord:
    """The record with `record_id`, or IncumbentError naming the ledger."""
    for record in ledger.records():
        if record.record_id == record_id:
            return record
    raise IncumbentError(f"no record {record_id!r} in {ledger.path}")


def named_baseline(ledger: Ledger, record_id: str, alias: str, gate: str) -> GateRecord:
    """The record `--baseline` names, when it is one of `alias`/`gate` with details."""
    record = find_record(ledger, record_id)
    if (record.alias, record.gate) != (alias, gate):
        raise IncumbentError(
            f"--baseline {record_id}: that record is {record.alias}/{record.gate}, "
            f"not {alias}/{gate}")
    if not record.details_file or not (ledger.path.parent / record.details_file).is_file():
        raise IncumbentError(f"--baseline {record_id}: the record has no details file to compare")
    return record
