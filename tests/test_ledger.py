"""The ledger: atomic appends under concurrency, status from the latest records, no secrets."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.ledger import (
    Counts,
    GateRecord,
    Ledger,
    LedgerError,
    Target,
    TornLedgerWarning,
    derive_statuses,
    status_of,
    unbacked_statuses,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(alias: str = "coder-chat", gate: str = "humaneval", verdict: str = "pass", *,
           minutes: int = 0, summary: str = "HumanEval 18/20 = 90% (≥70% gate)",
           stand_in: bool = False, url: str = "http://gw.example:4000", reason: str = "",
           **fields) -> GateRecord:
    at = T0 + timedelta(minutes=minutes)
    return GateRecord(
        run_id=f"run-{minutes}", alias=alias, gate=gate, verdict=verdict, metric="pass_rate",
        value=0.9, threshold=0.7, counts=Counts(passed=18, failed=2, total=20), summary=summary,
        reason=reason,
        target=Target(platform="remote", gateway_url=url, deployment="deployment/coder-chat",
                      model="SmolLM2-135M-Instruct" if stand_in else "Qwen2.5-Coder-7B-Instruct",
                      served_model_name="m", stand_in=stand_in),
        started_at=at, finished_at=at, suite_revision="abc", **fields,
    )


def test_append_and_read_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = record()
    ledger.append(first)
    ledger.append(record(minutes=1))
    back = ledger.records()
    assert [r.record_id for r in back] == [first.record_id, back[1].record_id]
    assert back[0] == first


def test_status_comes_from_the_latest_record_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(record(minutes=5, verdict="fail", summary="HumanEval 3/20 = 15% (≥70% gate)"))
    ledger.append(record(minutes=1))  # older, appended later: must not win
    assert derive_statuses(ledger, ["coder-chat", "coder-fim"]) == {
        "coder-chat": "FAIL: HumanEval 3/20 = 15% (≥70% gate)"
    }


def test_pass_fail_error_read_as_such() -> None:
    assert status_of([record()]) == "HumanEval 18/20 = 90% (≥70% gate)"
    assert status_of([record(verdict="fail")]).startswith("FAIL: ")
    err = status_of([record(verdict="error", reason="3 of 20 requests got no answer")])
    # Nothing proven before it: the ERROR alone, with its date (behaviour of issue 19.4).
    assert err.startswith("ERROR 2026-11-01: ") and "no answer" in err
    assert status_of([]) is None


def test_status_names_the_stand_in_actually_served() -> None:
    assert status_of([record(stand_in=True)]).endswith("[embedded stand-in: SmolLM2-135M-Instruct]")


def test_each_gate_of_an_alias_contributes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(record(alias="embeddings", gate="budget", summary="budget-binding"))
    ledger.append(record(alias="embeddings", gate="checks", summary="384-d", verdict="fail"))
    assert derive_statuses(ledger, ["embeddings"])["embeddings"] == "budget-binding; FAIL: 384-d"


def test_gateway_url_is_stored_without_credentials(tmp_path: Path) -> None:
    secret = "sk-" + "a1b2c3d4" * 4
    rec = record(url=f"http://admin:{secret}@gw.example:4000/?api_key={secret}")
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(rec)
    text = (tmp_path / "l.jsonl").read_text()
    assert secret not in text
    assert "gw.example:4000" in text


def test_details_are_written_beside_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    rec = record()
    ledger.write_details(rec, [{"task_id": "HumanEval/0", "status": "passed"}])
    ledger.append(rec)
    stored = ledger.records()[0]
    assert stored.details_file == f"l.details/{rec.record_id}.jsonl"
    assert '"HumanEval/0"' in (tmp_path / stored.details_file).read_text()


def test_a_corrupt_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(record())
    with path.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(LedgerError, match=r"l\.jsonl:2: not a valid ledger record"):
        Ledger(path).records()


def _writer(path: str, worker: int, count: int) -> None:
    ledger = Ledger(path)
    for i in range(count):
        ledger.append(record(gate=f"g{worker}", minutes=i, summary="x" * 5000))


def test_two_concurrent_runs_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(str(path), w, 60)) for w in range(2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    records = Ledger(path).records()  # every line parses: none torn
    assert len(records) == 120
    assert {r.gate for r in records} == {"g0", "g1"}
    assert len({r.record_id for r in records}) == 120


# ---- what may make a status (issue 21.5, 19.4) ------------------------------------------

def test_smoke_runs_and_controls_never_make_a_status(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(record(minutes=1, kind="gate", scope="promotion"))
    ledger.append(record(minutes=2, kind="smoke", scope="promotion", summary="HumanEval 2/2 = 100% (≥70% gate)"))
    ledger.append(record(minutes=3, kind="control", verdict="fail", summary="HumanEval 0/20 = 0% (≥70% gate)"))
    ledger.append(record(alias="coder-fim", gate="fim", kind="smoke", summary="FIM 2/2"))
    assert derive_statuses(ledger, ["coder-chat", "coder-fim"]) == {
        "coder-chat": "HumanEval 18/20 = 90% (≥70% gate, promotion subset)"
    }
    assert [r.kind for r in ledger.records()] == ["gate", "smoke", "control", "smoke"]  # all kept


def test_status_names_the_scope_it_was_proven_at() -> None:
    assert status_of([record(scope="release", summary="HumanEval 150/164 = 91% (≥70% gate)")]) == (
        "HumanEval 150/164 = 91% (≥70% gate, release)")
    assert status_of([record(scope="promotion", summary="checks 11/11")]) == "checks 11/11 (promotion subset)"
    assert status_of([record(scope="promotion", verdict="fail")]) == (
        "FAIL: HumanEval 18/20 = 90% (≥70% gate, promotion subset)")


def test_an_error_keeps_the_last_proven_verdict_beside_it(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(record(minutes=1, scope="promotion"))
    ledger.append(record(minutes=2, kind="smoke", verdict="fail", summary="smoke"))
    ledger.append(record(minutes=60 * 24 * 33, verdict="error", summary="deploy failed",
                         reason="gateway unreachable at http://gw.example:4000"))
    status = derive_statuses(ledger, ["coder-chat"])["coder-chat"]
    assert status == ("HumanEval 18/20 = 90% (≥70% gate, promotion subset) — ERROR 2026-12-04: "
                      "deploy failed (gateway unreachable at http://gw.example:4000)")
    assert [r.verdict for r in ledger.records()] == ["pass", "fail", "error"]  # the ledger has both
    # A FAIL is proof too; a later PASS or FAIL replaces the pair.
    ledger.append(record(minutes=60 * 24 * 34, verdict="fail", scope="promotion"))
    assert derive_statuses(ledger, ["coder-chat"])["coder-chat"].startswith("FAIL: HumanEval")
    ledger.append(record(minutes=60 * 24 * 35, verdict="error", summary="route check failed"))
    assert derive_statuses(ledger, ["coder-chat"])["coder-chat"] == (
        "FAIL: HumanEval 18/20 = 90% (≥70% gate, promotion subset) — ERROR 2026-12-06: route check failed")


def test_an_error_beside_a_stand_in_proof_names_both_models() -> None:
    status = status_of([record(stand_in=True), record(minutes=1, verdict="error", summary="x")])
    assert status.endswith("— ERROR 2026-11-01: x [embedded stand-in: SmolLM2-135M-Instruct]")


def test_imported_statuses_are_marked_and_kept_verbatim() -> None:
    imported = record(kind="imported", source="PLATFORM.md, platform catalog page",
                      summary="external provider", scope="promotion")
    assert status_of([imported]) == "external provider [imported]"
    # A later gate run replaces it; an ERROR sits beside it.
    assert status_of([imported, record(minutes=1, scope="release")]).endswith("release)")
    assert status_of([imported, record(minutes=1, verdict="error", summary="e")]) == (
        "external provider [imported] — ERROR 2026-11-01: e")


def test_records_written_before_kind_and_scope_still_read(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    lines = []
    for scope in ("promotion", "release (first 2)", "first 3 scenarios", "catalog count"):
        data = json.loads(record(extra={"scope": scope}).model_dump_json())
        for new in ("kind", "scope", "source"):
            del data[new]
        lines.append(json.dumps(data))
    path.write_text("\n".join(lines) + "\n")
    read = Ledger(path).records()
    assert [(r.kind, r.scope) for r in read] == [
        ("gate", "promotion"), ("smoke", "release"), ("smoke", None), ("gate", None)]


def test_unbacked_statuses_name_alias_status_and_what_the_ledger_gives(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(record(scope="promotion"))
    backed = "HumanEval 18/20 = 90% (≥70% gate, promotion subset)"
    assert unbacked_statuses({"coder-chat": backed}, ledger) == []
    assert unbacked_statuses({"coder-chat": "HumanEval 2/2 = 100%", "coder-fim": "FIM ok"}, ledger) == [
        ("coder-chat", "HumanEval 2/2 = 100%", backed), ("coder-fim", "FIM ok", None)]


# ---- a torn last line (issue 21.6) -------------------------------------------------------

def _tear(path: Path, rec: GateRecord, keep: int = 40) -> bytes:
    """Append the first `keep` bytes of a record, as a writer killed mid-write leaves them."""
    torn = rec.model_dump_json().encode()[:keep]
    with path.open("ab") as handle:
        handle.write(torn)
    return torn


def test_reading_skips_a_torn_last_line_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(record())
    _tear(path, record(minutes=1))
    with pytest.warns(TornLedgerWarning, match=r"l\.jsonl:2: skipped a torn last line"):
        assert len(Ledger(path).records()) == 1


def test_the_next_append_starts_on_a_fresh_line_and_moves_the_torn_bytes_aside(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(record())
    size = path.stat().st_size
    torn = _tear(path, record(minutes=1))
    with pytest.warns(TornLedgerWarning, match="moved it to .*l.jsonl.torn"):
        ledger.append(record(minutes=2, summary="after the kill"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading now trips on nothing
        read = ledger.records()
    assert [r.summary for r in read] == ["HumanEval 18/20 = 90% (≥70% gate)", "after the kill"]
    aside = ledger.torn_path.read_bytes()
    assert torn in aside and f"offset {size}".encode() in aside
    assert path.read_bytes().count(b"\n") == 2


def test_a_whole_record_that_lost_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    first = record()
    path.write_bytes(first.model_dump_json().encode())  # killed between the line and its newline
    assert ledger.records() == [first]
    ledger.append(record(minutes=1))
    assert len(ledger.records()) == 2 and not ledger.torn_path.exists()


def _append_then_die(path: str) -> None:
    """Write half a record with the ledger's own open flags, then die as `kill -9` would."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, record(minutes=9).model_dump_json().encode()[:100])
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_writer_killed_mid_line_costs_no_record(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(record())
    proc = multiprocessing.get_context("fork").Process(target=_append_then_die, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    with pytest.warns(TornLedgerWarning):
        Ledger(path).append(record(minutes=2))
    assert [r.run_id for r in Ledger(path).records()] == ["run-0", "run-2"]


def test_corruption_in_the_middle_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(record())
    _tear(path, record(minutes=1))
    with path.open("ab") as handle:
        handle.write(b"\n" + record(minutes=2).model_dump_json().encode() + b"\n")
    with pytest.raises(LedgerError, match=r"l\.jsonl:2: not a valid ledger record"):
        Ledger(path).records()
