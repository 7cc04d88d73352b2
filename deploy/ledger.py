"""The results ledger: one JSON line per gate verdict, appended atomically; eval status derives from it."""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from deploy.catalog import atomic_write_text
from deploy.judged_rates import JudgedRate
from deploy.litellm_admin import redact_url

# inconclusive: under a gate's `lower-bound` decision rule, a rate whose 95% interval straddles
# its threshold: nothing proven either way, so (like an error) it never replaces a proven status.
Verdict = Literal["pass", "fail", "error", "inconclusive"]
# gate: a complete run at catalog scope, the only kind a status is derived from (with imported);
# smoke: a run cut short by a `--*-limit` option or fewer `--latency-requests` than the catalog's;
# control: a reference backend proving the gate itself; imported: a status taken from elsewhere.
RecordKind = Literal["gate", "smoke", "control", "imported"]
Scope = Literal["promotion", "release"]
STATUS_KINDS = ("gate", "imported")
PROVEN = ("pass", "fail")  # the verdicts a status shows as proven
SCOPE_LABELS = {"promotion": "promotion subset", "release": "release"}
IMPORTED_MARK = "[imported]"
_OLD_SMOKE_SCOPE = r"\(first \d+\)|^first \d+ scenarios|^smoke \(|\(\d+ cases\)"


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
    # Added later, with defaults, so records written before still read (see _older_records).
    kind: RecordKind = "gate"
    scope: Scope | None = None  # the catalog scope it was proven at; None: not recorded
    source: str | None = None  # where an imported status came from
    judged: list[JudgedRate] = []  # each judged rate with its 95% interval and threshold
    # The record this one was compared with (deploy.incumbent) and the comparison's figures,
    # flipped item ids and printed lines (gates.comparison.GateComparison as JSON).
    incumbent_id: str | None = None
    comparison: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _older_records(cls, data: Any) -> Any:
        # Records before `scope` kept it as text in extra ("promotion", "release (first 2)").
        if isinstance(data, dict) and data.get("scope") is None:
            text = str((data.get("extra") or {}).get("scope", ""))
            match = re.match(r"(promotion|release)\b", text)
            if match:
                data = {**data, "scope": match.group(1)}
            # The scope texts the gates wrote for a run cut short by a limit option.
            if "kind" not in data and re.search(_OLD_SMOKE_SCOPE, text):
                data = {**data, "kind": "smoke"}
        return data


class LedgerError(ValueError):
    pass


class TornLedgerWarning(UserWarning):
    """The ledger's last line was cut short (a writer killed mid-write)."""


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

    @property
    def torn_path(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    def append(self, record: GateRecord) -> None:
        line = (record.model_dump_json() + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._mend_torn_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise LedgerError(f"{self.path}: short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)

    def _mend_torn_tail(self) -> None:
        """Under the lock: make the file end with a newline before an append.

        A last line without its newline was cut by a kill mid-write. A whole record there only
        lost its newline and gets it back; torn bytes move to `<ledger>.torn` (with their offset
        and the time), so the next record starts on a fresh line and reading never trips on them.
        """
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            start = data.rfind(b"\n") + 1
            tail = data[start:]
            if _parses(tail):
                handle.seek(size)
                handle.write(b"\n")
            else:
                header = f"# torn ledger tail moved aside from {self.path.name} offset {start} at {now().isoformat()}\n"
                with self.torn_path.open("ab") as aside:
                    aside.write(header.encode("utf-8") + tail + b"\n")
                    aside.flush()
                    os.fsync(aside.fileno())
                handle.truncate(start)
                warnings.warn(
                    f"{self.path}: its last line was torn ({len(tail)} bytes at offset {start}, "
                    f"a writer killed mid-write); moved it to {self.torn_path}",
                    TornLedgerWarning, stacklevel=3,
                )
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[GateRecord]:
        if not self.path.exists():
            return []
        out = []
        lines = self.path.read_bytes().split(b"\n")
        # Everything after the last newline: empty for a whole file, else a line being (or
        # killed while being) written. A whole record there counts; torn bytes are skipped.
        tail = lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(GateRecord.model_validate_json(line))
            except ValidationError as exc:
                raise LedgerError(f"{self.path}:{number}: not a valid ledger record: {exc}") from exc
        if tail.strip():
            if _parses(tail):
                out.append(GateRecord.model_validate_json(tail))
            else:
                warnings.warn(
                    f"{self.path}:{len(lines) + 1}: skipped a torn last line ({len(tail)} bytes, "
                    "a writer killed mid-write); the next append moves it aside",
                    TornLedgerWarning, stacklevel=2,
                )
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


def _parses(line: bytes) -> bool:
    try:
        GateRecord.model_validate_json(line)
    except ValidationError:
        return False
    return True


def _with_scope(summary: str, scope: Scope | None) -> str:
    """ "HumanEval 18/20 = 90% (≥70% gate)" -> "... (≥70% gate, promotion subset)"."""
    if scope is None:
        return summary
    label = SCOPE_LABELS[scope]
    return f"{summary[:-1]}, {label})" if summary.endswith(")") else f"{summary} ({label})"


def _proven_text(record: GateRecord) -> str:
    if record.kind == "imported":
        return f"{record.summary} {IMPORTED_MARK}"
    text = _with_scope(record.summary, record.scope)
    return text if record.verdict == "pass" else f"FAIL: {text}"


def _error_text(record: GateRecord) -> str:
    """An ERROR or INCONCLUSIVE with its date: shown beside what was proven, never instead."""
    text = f"{record.verdict.upper()} {record.finished_at.date().isoformat()}: {record.summary}"
    return text + (f" ({record.reason})" if record.reason else "")


def status_of(records: list[GateRecord]) -> str | None:
    """The catalog's eval status for one alias from its records, or None without any.

    Only complete runs at catalog scope (kind "gate") and imported statuses count: smoke runs
    and controls never make a status. Per gate, the newest record decides; an ERROR or an
    INCONCLUSIVE never erases what was proven: the last PASS or FAIL stays, with the ERROR or
    INCONCLUSIVE and its date beside it.
    """
    by_gate: dict[str, list[GateRecord]] = {}
    for record in records:
        if record.kind in STATUS_KINDS:
            by_gate.setdefault(record.gate, []).append(record)
    if not by_gate:
        return None
    parts, shown = [], []
    for gate in sorted(by_gate):
        ordered = sorted(by_gate[gate], key=lambda r: r.finished_at)  # stable: ties keep file order
        latest = ordered[-1]
        proven = next((r for r in reversed(ordered) if r.verdict in PROVEN), None)
        if latest.verdict in PROVEN:
            parts.append(_proven_text(latest))
            shown.append(latest)
        elif proven is not None:
            parts.append(f"{_proven_text(proven)} — {_error_text(latest)}")
            shown += [proven, latest]
        else:
            parts.append(_error_text(latest))
            shown.append(latest)
    status = "; ".join(parts)
    stand_ins = sorted({r.target.model for r in shown if r.target.stand_in})
    if stand_ins:
        status += f" [embedded stand-in: {', '.join(stand_ins)}]"
    return status


def derive_statuses(ledger: Ledger, aliases: Iterable[str]) -> dict[str, str]:
    """Each alias's status from all its records (see status_of); aliases without any are left out."""
    by_alias: dict[str, list[GateRecord]] = {}
    for record in ledger.records():
        by_alias.setdefault(record.alias, []).append(record)
    statuses = {}
    for alias in aliases:
        status = status_of(by_alias.get(alias, []))
        if status is not None:
            statuses[alias] = status
    return statuses


def unbacked_statuses(
    statuses: dict[str, str], ledger: Ledger
) -> list[tuple[str, str, str | None]]:
    """(alias, status, what the ledger gives) for each status the ledger does not back.

    A status is backed when it is exactly what the ledger's records derive for the alias
    (see status_of): written by a gate run, or imported with a record naming its source.
    """
    derived = derive_statuses(ledger, statuses)
    return [(alias, status, derived.get(alias)) for alias, status in statuses.items()
            if derived.get(alias) != status]
