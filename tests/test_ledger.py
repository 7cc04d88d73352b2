"""The ledger: atomic appends under concurrency, status from the latest records, no secrets."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy.ledger import (
    Counts,
    GateRecord,
    Ledger,
    LedgerError,
    Target,
    derive_statuses,
    status_of,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(alias: str = "coder-chat", gate: str = "humaneval", verdict: str = "pass", *,
           minutes: int = 0, summary: str = "HumanEval 18/20 = 90% (≥70% gate)",
           stand_in: bool = False, url: str = "http://gw.example:4000", reason: str = "") -> GateRecord:
    at = T0 + timedelta(minutes=minutes)
    return GateRecord(
        run_id=f"run-{minutes}", alias=alias, gate=gate, verdict=verdict, metric="pass_rate",
        value=0.9, threshold=0.7, counts=Counts(passed=18, failed=2, total=20), summary=summary,
        reason=reason,
        target=Target(platform="remote", gateway_url=url, deployment="deployment/coder-chat",
                      model="SmolLM2-135M-Instruct" if stand_in else "Qwen2.5-Coder-7B-Instruct",
                      served_model_name="m", stand_in=stand_in),
        started_at=at, finished_at=at, suite_revision="abc",
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
    assert err.startswith("ERROR: ") and "no answer" in err
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
