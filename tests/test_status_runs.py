"""Statuses from real gate runs: a complete run writes one naming its scope, and a later ERROR
(a gateway that does not answer) never erases it (issue 19.4, 21.5)."""

from __future__ import annotations

from pathlib import Path

from deploy.catalog import load_catalog
from deploy.ledger import Ledger
from fixtures.platform.loopback import free_port
from fixtures.platform.reference_backends import (
    ScriptedBackend,
    canonical_humaneval_reply,
    find_humaneval_problem,
)
from tests.gate_runs import run_gates
from tests.routed_backend import routed_backend

PROVEN = "HumanEval 20/20 = 100% [95% CI 84-100%] (≥70% gate, promotion subset)"


def _canonical(request_json: dict) -> str:
    if find_humaneval_problem(request_json) is None:
        return "pong"  # the route check's probe
    return canonical_humaneval_reply(request_json)


def test_an_error_keeps_the_proven_status_and_shows_itself_beside_it(tmp_path: Path) -> None:
    with routed_backend("coder-chat", ScriptedBackend(_canonical), tmp_path / "platform") as routed:
        first = run_gates("-m", "coder-chat", *routed.gateway_args, outputs=tmp_path, env=routed.env())
        env = routed.env()
    assert first.returncode == 0, first.output[-3000:]
    assert first.record("humaneval").kind == "gate"
    assert load_catalog(tmp_path / "catalog.yaml").get("coder-chat").eval_status == PROVEN
    assert f"| {PROVEN} |" in (tmp_path / "served-models.md").read_text()

    # The same outputs, a gateway URL nobody listens on (a typo in CI).
    dead = f"http://127.0.0.1:{free_port()}"
    second = run_gates("-m", "coder-chat", f"--gateway-url={dead}", "--no-deploy", outputs=tmp_path,
                       env=env)
    assert second.returncode != 0
    status = load_catalog(tmp_path / "catalog.yaml").get("coder-chat").eval_status
    assert status.startswith(PROVEN)  # never erased
    errors = [r for r in Ledger(tmp_path / "ledger.jsonl").records() if r.verdict == "error"]
    if errors:  # recorded as a gate ERROR: shown beside the proof, with its date; the ledger has both
        (error,) = errors
        assert status.startswith(f"{PROVEN} — ERROR {error.finished_at.date().isoformat()}: ")
        assert [r.verdict for r in Ledger(tmp_path / "ledger.jsonl").records()] == ["pass", "error"]
        assert f"| {status} |" in (tmp_path / "served-models.md").read_text()
