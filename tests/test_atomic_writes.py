"""Writes broken midway leave the old file whole: the catalog, its status writeback, the ledger.

A write is broken at each step after the new bytes started to go out (the temporary file's
write, its fsync, the rename), in this process and by SIGKILL in a child process; the file on
disk must hold the old bytes exactly, and a failure in this process leaves no temporary file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy import catalog as catalog_module
from deploy import ledger as ledger_module
from deploy.catalog import DEFAULT_CATALOG, atomic_write_text, load_catalog, write_statuses
from deploy.ledger import Counts, GateRecord, Ledger, LedgerError, Target, status_of

OLD = "old: contents\nline two\n"
NEW = "new: contents\n" + "x" * 200_000 + "\n"
REPO = Path(__file__).resolve().parent.parent


class Crash(Exception):
    """Stands for the process dying at that point."""


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _crash(*_args, **_kwargs):
    raise Crash("killed here")


# ---- atomic_write_text --------------------------------------------------------------------------

@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_write_broken_midway_keeps_the_old_file(tmp_path: Path, monkeypatch, step: str) -> None:
    target = tmp_path / "catalog.yaml"
    target.write_text(OLD, encoding="utf-8")
    seen: list[str] = []

    def broken(*args, **kwargs):
        # By now the new text went out to disk somewhere; the target must not show it yet.
        seen.append(target.read_text(encoding="utf-8"))
        raise Crash("killed here")

    monkeypatch.setattr(catalog_module.os, step, broken)
    with pytest.raises(Crash):
        atomic_write_text(target, NEW)
    assert seen == [OLD]
    assert target.read_bytes() == OLD.encode()
    assert _only(tmp_path) == ["catalog.yaml"]  # the temporary file was removed


def test_write_broken_inside_the_text_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "catalog.yaml"
    target.write_text(OLD, encoding="utf-8")
    real_fdopen = os.fdopen

    class HalfWriter:
        """A handle that writes half the text and dies."""

        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise Crash("killed mid-write")

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(catalog_module.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(Crash):
        atomic_write_text(target, NEW)
    assert target.read_bytes() == OLD.encode()
    assert _only(tmp_path) == ["catalog.yaml"]


def test_a_whole_write_replaces_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "catalog.yaml"  # the folder is created
    atomic_write_text(target, OLD)
    atomic_write_text(target, NEW)
    assert target.read_text(encoding="utf-8") == NEW
    assert _only(target.parent) == ["catalog.yaml"]


def test_text_is_written_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    text = "crlf\r\nlf\nunicode ≥ ｜fim▁hole｜\n"
    atomic_write_text(target, text)
    assert target.read_bytes() == text.encode("utf-8")  # no newline translation


def test_the_temporary_file_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "t.txt"
    target.write_text(OLD, encoding="utf-8")
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        order.append("fsync")
        real_fsync(fd)

    def replace(src, dst):
        assert Path(src).parent == tmp_path  # same folder: the rename is atomic
        assert Path(src).read_text(encoding="utf-8") == NEW  # complete before it is renamed
        order.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(catalog_module.os, "fsync", fsync)
    monkeypatch.setattr(catalog_module.os, "replace", replace)
    atomic_write_text(target, NEW)
    assert order == ["fsync", "replace"]
    assert target.read_text(encoding="utf-8") == NEW


_KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from deploy import catalog
    real = getattr(os, sys.argv[2])
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(catalog.os, sys.argv[2], die)
    catalog.atomic_write_text(Path(sys.argv[1]), "new\\n" * 100000)
""")


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_sigkill_mid_write_keeps_the_old_file(tmp_path: Path, step: str) -> None:
    target = tmp_path / "catalog.yaml"
    target.write_text(OLD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_CHILD, str(target), step],
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert target.read_bytes() == OLD.encode()
    # A killed process cannot clean up: what it leaves is a hidden temporary file beside the
    # target, never a second catalog.
    leftovers = [name for name in _only(tmp_path) if name != "catalog.yaml"]
    assert all(name.startswith(".catalog.yaml.") for name in leftovers), leftovers


# ---- the catalog's status writeback ---------------------------------------------------------------

@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_bytes(DEFAULT_CATALOG.read_bytes())
    return path


def _alias(path: Path) -> str:
    return load_catalog(path).names[0]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_status_writeback_killed_midway_keeps_the_catalog(catalog_copy: Path, monkeypatch,
                                                          step: str) -> None:
    before = catalog_copy.read_bytes()
    monkeypatch.setattr(catalog_module.os, step, _crash)
    with pytest.raises(Crash):
        write_statuses(catalog_copy, {_alias(catalog_copy): "FAIL: written midway"})
    assert catalog_copy.read_bytes() == before
    assert _only(catalog_copy.parent) == ["catalog.yaml"]


def test_status_writeback_to_a_target_killed_midway_keeps_both(catalog_copy: Path, monkeypatch) -> None:
    target = catalog_copy.parent / "build" / "catalog.yaml"
    target.parent.mkdir()
    target.write_text(OLD, encoding="utf-8")
    before = catalog_copy.read_bytes()
    monkeypatch.setattr(catalog_module.os, "replace", _crash)
    with pytest.raises(Crash):
        write_statuses(catalog_copy, {_alias(catalog_copy): "x"}, target=target)
    assert catalog_copy.read_bytes() == before
    assert target.read_bytes() == OLD.encode()
    assert _only(target.parent) == ["catalog.yaml"]


def test_unchanged_statuses_do_not_rewrite_the_catalog(catalog_copy: Path, monkeypatch) -> None:
    alias = _alias(catalog_copy)
    current = load_catalog(catalog_copy).get(alias).eval_status
    monkeypatch.setattr(catalog_module.os, "replace", _crash)  # any write would raise
    assert write_statuses(catalog_copy, {alias: current}) is False
    assert write_statuses(catalog_copy, {"no-such-alias": "x"}) is False


def test_status_writeback_changes_only_the_named_alias(catalog_copy: Path) -> None:
    names = load_catalog(catalog_copy).names
    before = {n: load_catalog(catalog_copy).get(n).eval_status for n in names}
    assert write_statuses(catalog_copy, {names[0]: "FAIL: new"}) is True
    after = load_catalog(catalog_copy)
    assert after.get(names[0]).eval_status == "FAIL: new"
    assert all(after.get(n).eval_status == before[n] for n in names[1:])


# ---- the ledger ------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _record(gate: str = "humaneval", minutes: int = 0, verdict: str = "pass", summary: str = "s",
            reason: str = "") -> GateRecord:
    at = T0 + timedelta(minutes=minutes)
    return GateRecord(
        run_id="r", alias="coder-chat", gate=gate, verdict=verdict, metric="pass_rate", value=1.0,
        threshold=0.7, counts=Counts(passed=1, total=1), summary=summary, reason=reason,
        target=Target(platform="remote", gateway_url="http://gw:4000", deployment="d", model="m",
                      served_model_name="m"),
        started_at=at, finished_at=at, suite_revision="abc",
    )


def test_ledger_append_adds_one_whole_line_after_the_old_ones(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(_record(minutes=0))
    first = path.read_bytes()
    ledger.append(_record(minutes=1))
    data = path.read_bytes()
    assert data.startswith(first)  # appended, never rewritten
    assert data.endswith(b"\n") and data.count(b"\n") == 2
    assert [r.finished_at for r in ledger.records()] == [T0, T0 + timedelta(minutes=1)]


def test_ledger_short_write_is_an_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "l.jsonl"
    real_write = os.write
    monkeypatch.setattr(ledger_module.os, "write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(LedgerError, match="short write"):
        Ledger(path).append(_record())


def test_ledger_append_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(ledger_module.os, "fsync", synced.append)
    Ledger(tmp_path / "l.jsonl").append(_record())
    assert len(synced) == 1


def test_ledger_append_killed_before_writing_keeps_the_old_lines(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(_record())
    before = path.read_bytes()
    monkeypatch.setattr(ledger_module.os, "write", _crash)
    with pytest.raises(Crash):
        Ledger(path).append(_record(minutes=1))
    assert path.read_bytes() == before


def test_ledger_file_is_created_readable(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "l.jsonl"
    old = os.umask(0o022)
    try:
        Ledger(path).append(_record())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_details_write_killed_midway_keeps_the_old_details(tmp_path: Path, monkeypatch) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    rec = _record()
    ledger.write_details(rec, [{"b": 1, "a": 2}])
    details = tmp_path / rec.details_file
    before = details.read_bytes()
    assert before == b'{"a": 2, "b": 1}\n'  # sorted keys, one line each
    monkeypatch.setattr(catalog_module.os, "replace", _crash)
    with pytest.raises(Crash):
        ledger.write_details(rec, [{"a": 3}])
    assert details.read_bytes() == before
    assert _only(details.parent) == [details.name]


def test_details_of_no_rows_is_an_empty_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    rec = _record()
    assert ledger.write_details(rec, []) == f"l.details/{rec.record_id}.jsonl"
    assert (tmp_path / rec.details_file).read_bytes() == b""


def test_records_skip_blank_lines_and_name_the_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(_record())
    with path.open("a") as handle:
        handle.write("\n   \n")
    Ledger(path).append(_record(minutes=1))
    assert len(Ledger(path).records()) == 2
    with path.open("a") as handle:
        handle.write('{"torn": \n')
    with pytest.raises(LedgerError, match=r"l\.jsonl:5: not a valid ledger record"):
        Ledger(path).records()
    assert Ledger(tmp_path / "none.jsonl").records() == []


def test_latest_takes_the_newest_and_on_a_tie_the_last_appended(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(_record(gate="b", minutes=1, summary="older b"))
    ledger.append(_record(gate="b", minutes=2, summary="newer b"))
    ledger.append(_record(gate="b", minutes=0, summary="oldest b, appended last"))
    ledger.append(_record(gate="a", minutes=5, summary="first a"))
    ledger.append(_record(gate="a", minutes=5, summary="same time, appended later"))
    latest = ledger.latest("coder-chat")
    assert [(r.gate, r.summary) for r in latest] == [("a", "same time, appended later"),
                                                    ("b", "newer b")]
    assert ledger.latest("other-alias") == []


def test_status_of_marks_fail_and_error_and_their_reasons() -> None:
    assert status_of([_record(summary="ok")]) == "ok"
    assert status_of([_record(verdict="fail", summary="bad", reason="why")]) == "FAIL: bad"
    # An ERROR with nothing proven before it carries its date (issue 19.4 keeps it beside a
    # proven verdict otherwise).
    errored = _record(verdict="error", summary="e", reason="no answer")
    day = errored.finished_at.date().isoformat()
    assert status_of([errored]) == f"ERROR {day}: e (no answer)"
    assert status_of([_record(verdict="error", summary="e")]) == f"ERROR {day}: e"
    both = [_record(gate="a", summary="one"), _record(gate="b", verdict="fail", summary="two")]
    assert status_of(both) == "one; FAIL: two"
