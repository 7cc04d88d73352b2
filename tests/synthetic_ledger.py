"""Synthetic ledgers for the candidate-against-incumbent tests: real records, real detail rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.ledger import Counts, GateRecord, Ledger, Target
from evals.humaneval import SampleRecord
from evals.model_calls import CallOutcome

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 1, tzinfo=UTC)
GOOD_MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct"
CANDIDATE_MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"


def subset_ids() -> list[str]:
    """The 20 task ids of the HumanEval promotion subset (what coder-chat's gate runs)."""
    data = json.loads((REPO_ROOT / "fixtures" / "humaneval_promotion_subset.json").read_text())
    return list(data["task_ids"])


def humaneval_rows(passed: dict[str, bool]) -> list[SampleRecord]:
    """One answered sample per task, passed or failed as given."""
    return [SampleRecord(task_id=task, sample=0, status="passed" if ok else "failed",
                         call=CallOutcome(ok=True, attempts=1)) for task, ok in passed.items()]


def record(*, alias: str = "coder-chat", gate: str = "humaneval", verdict: str = "pass",
           kind: str = "gate", model: str = GOOD_MODEL, revision: str | None = None,
           minutes: int = 0, passed: int = 20, total: int = 20, record_id: str | None = None,
           threshold: float = 0.7) -> GateRecord:
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, Any] = {"record_id": record_id} if record_id else {}
    return GateRecord(
        run_id=f"run-{minutes}", alias=alias, gate=gate, verdict=verdict, metric="pass@1",
        value=passed / total, threshold=threshold,
        counts=Counts(passed=passed, failed=total - passed, total=total),
        summary=f"HumanEval {passed}/{total} = {passed / total:.0%} (≥{threshold:.0%} gate)",
        target=Target(platform="remote", gateway_url="http://gw.example:4000",
                      deployment="deployment/coder-chat", model=model, served_model_name=model,
                      revision=revision),
        started_at=at, finished_at=at, suite_revision="abc", kind=kind, scope="promotion",
        **fields,
    )


def add(ledger: Ledger, rec: GateRecord, rows: list[Any] | None) -> GateRecord:
    """Append `rec` with its details file (None: a record without details)."""
    if rows is not None:
        ledger.write_details(rec, rows)
    ledger.append(rec)
    return rec


def outcomes(ids: list[str], failing: int) -> dict[str, bool]:
    """`ids` with the first `failing` failed and the rest passed."""
    return {task: i >= failing for i, task in enumerate(ids)}
