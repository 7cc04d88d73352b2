"""The results ledger: one JSON line per gate verdict, appended atomically; eval status derives from it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError, field_validator

from deploy.catalog import atomic_write_text
from deploy.litellm_admin import redact_url

Verdict = Literal["pass", "fail", "error"]


class Target(BaseModel):
    """What was tested. `gateway_url` never carries credentials (see redact_url)."""

    platform: Literal["embedded", "remote"]
    gateway_url: str
    deployment: str
    model: str
    served_model_name: str
    revision: str | None = None
    stand_in: bool = False

    @field_validator("gateway_url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        # The ledger is committed: a URL with a key in it must never reach it.
        return redact_url(url)


class Counts(BaseModel):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    total: int = 0


class GateRecord(BaseModel):
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str
    alias: str
    gate: str
    verdict: Verdict
    metric: str
    value: float | None
    threshold: float | None
    counts: Counts = Counts()
    # The status fragment this verdict proves, e.g. "HumanEval 18/20 = 90% (≥70% gate)".
    summary: str
    reason: str = ""
    target: Target
    started_at: datetime
    finished_at: datetime
    suite_revision: str
    details_file: str | None = None
    extra: dict[str, Any] = {}


class LedgerError(ValueError):
    pass


def now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Append-only JSONL file plus a folder of per-record details beside it.

    Appends take an inter-process file lock and write one whole line with O_APPEND, so two
    concurrent runs interleave records but never lose or tear one.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.details_dir = self.path.with_name(self.path.stem + ".details")
        self._lock = FileLock(str(self.path) + ".lock")

    def write_details(self, record: GateRecord, rows: Iterable[BaseModel | dict[str, Any]]) -> str:
        """Per-problem rows as JSONL beside the ledger; returns the path relative to the ledger."""
        lines = []
        for row in rows:
            data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
            lines.append(json.dumps(data, ensure_ascii=False, sort_keys=True))
        path = self.details_dir / f"{record.record_id}.jsonl"
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
        record.details_file = str(path.relative_to(self.path.parent))
        return record.details_file

    def append(self, record: GateRecord) -> None:
        line = (record.model_dump_json() + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise LedgerError(f"{self.path}: short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> list[GateRecord]:
        if not self.path.exists():
            return []
        out = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    out.append(GateRecord.model_validate_json(line))
                except ValidationError as exc:
                    raise LedgerError(f"{self.path}:{number}: not a valid ledger record: {exc}") from exc
        return out

    def latest(self, alias: str) -> list[GateRecord]:
        """The newest record of each gate of `alias`, in gate-name order."""
        newest: dict[str, GateRecord] = {}
        for record in self.records():
            if record.alias != alias:
                continue
            held = newest.get(record.gate)
            if held is None or record.finished_at >= held.finished_at:
                newest[record.gate] = record
        return [newest[gate] for gate in sorted(newest)]


def status_of(records: list[GateRecord]) -> str | None:
    """The catalog's eval status for one alias from its latest records, or None without any."""
    if not records:
        return None
    parts = []
    for record in records:
        if record.verdict == "pass":
            parts.append(record.summary)
        elif record.verdict == "fail":
            parts.append(f"FAIL: {record.summary}")
        else:
            parts.append(f"ERROR: {record.summary}" + (f" ({record.reason})" if record.reason else ""))
    status = "; ".join(parts)
    stand_ins = sorted({r.target.model for r in records if r.target.stand_in})
    if stand_ins:
        status += f" [embedded stand-in: {', '.join(stand_ins)}]"
    return status


def derive_statuses(ledger: Ledger, aliases: Iterable[str]) -> dict[str, str]:
    statuses = {}
    for alias in aliases:
        status = status_of(ledger.latest(alias))
        if status is not None:
            statuses[alias] = status
    return statuses
