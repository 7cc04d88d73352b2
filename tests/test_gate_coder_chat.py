"""The coder-chat gate end to end: controls prove the gate, real vLLM proves the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gate_runs import run_gates


def test_known_good_control_passes_20_of_20(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control", "known-good", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("humaneval")
    assert record.verdict == "pass"
    assert (record.counts.passed, record.counts.total) == (20, 20)
    assert record.summary == "HumanEval 20/20 = 100% [95% CI 84-100%] (≥70% gate)"
    assert "PASS" in run.output and "HumanEval 20/20" in run.output  # the verdict table
    # A control proves the gate, not a model: recorded as such, no status or table written.
    assert record.kind == "control"
    status = run.status("coder-chat")
    assert status.startswith("HumanEval 20/20 = 100% [95% CI 84-100%] (≥70% gate, promotion subset) "
                             "[embedded stand-in: reference backend")
    details = (tmp_path / record.details_file).read_text().splitlines()
    assert len(details) == 20 and all('"passed"' in line for line in details)


def test_known_bad_control_is_rejected(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control", "known-bad", outputs=tmp_path)
    assert run.returncode == 1
    record = run.record("humaneval")
    assert record.verdict == "fail"
    assert record.counts.passed == 0 and record.counts.errors == 0
    assert run.status("coder-chat").startswith("FAIL: ")


def test_erroring_backend_is_error_not_fail(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control", "erroring", outputs=tmp_path)
    assert run.returncode != 0
    record = run.record("humaneval")
    assert record.verdict == "error"
    assert run.status("coder-chat").startswith("ERROR ")


def test_the_throwaway_key_is_deleted_and_never_written(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control", "known-good", outputs=tmp_path)
    assert run.returncode == 0
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".yaml", ".md"))
    for text in (run.output, written):
        assert "sk-" not in text.replace("sk-...", "")  # only abbreviated keys, if any


@pytest.mark.engine
def test_real_vllm_answers_humaneval_through_the_gateway(shared_platform, tmp_path: Path) -> None:
    """A few problems from real vLLM on the CPU, through the gateway double, scored in the sandbox."""
    shared_platform.deploy("coder-chat")
    run = run_gates(
        "-m", "coder-chat", "--gateway-url", shared_platform.gateway_url, "--no-deploy",
        "--humaneval-limit", "3", outputs=tmp_path, env=shared_platform.gate_env(),
    )
    record = run.record("humaneval")
    assert record.counts.total == 3
    assert record.counts.errors == 0, record.reason  # the platform answered every task
    assert record.verdict in ("pass", "fail")  # a 135M model may not pass, but it must be judged
    assert record.target.served_model_name == "smollm2-135m-instruct"  # what really answered
    assert record.extra["completion_tokens"] > 0
    assert record.extra["cost_usd"] and record.extra["cost_usd"] > 0  # the key's spend grew
    assert record.target.platform == "remote" and record.target.deployment.startswith("gateway route")
