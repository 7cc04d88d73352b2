"""The claude-haiku gate end to end, run as a user runs it (`pytest -m claude-haiku`)."""

from __future__ import annotations

from pathlib import Path

from deploy.catalog import load_catalog
from tests.gate_runs import run_gates

SIMULATED = "simulated claude-haiku-4-5"


def _written(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".yaml", ".md"))


def test_the_gate_passes_on_the_embedded_platform_labelled_simulated(tmp_path: Path) -> None:
    run = run_gates("-m", "claude-haiku", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("usage")
    assert record.verdict == "pass"
    assert (record.counts.passed, record.counts.total) == (11, 11)
    assert record.summary == "usage normalization 11/11 checks (agentgateway usage)"
    assert record.target.stand_in and record.target.model.startswith(SIMULATED)
    assert record.target.served_model_name == "claude-haiku-4-5"
    assert record.extra["cost_usd"] > 0
    assert record.kind == "gate" and record.scope == "promotion"  # `-m` alone: promotion scope
    status = load_catalog(tmp_path / "catalog.yaml").get("claude-haiku").eval_status
    assert status.startswith("usage normalization 11/11 checks (agentgateway usage, promotion subset) "
                             "[embedded stand-in: "
                             + SIMULATED)
    details = (tmp_path / record.details_file).read_text().splitlines()
    assert len(details) == 11 and all('"outcome": "pass"' in line for line in details)
    # Neither the throwaway key nor the provider key is printed or written.
    for text in (run.output, _written(tmp_path)):
        assert "sk-ant-" not in text
        assert "sk-" not in text.replace("sk-...", "")


def test_known_good_control_passes(tmp_path: Path) -> None:
    run = run_gates("-m", "claude-haiku", "--control", "known-good", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert run.record("usage").verdict == "pass"


def test_known_bad_control_is_rejected_for_its_convention(tmp_path: Path) -> None:
    run = run_gates("-m", "claude-haiku", "--control", "known-bad", outputs=tmp_path)
    assert run.returncode == 1
    record = run.record("usage")
    assert record.verdict == "fail" and record.counts.errors == 0
    assert record.reason.startswith("cache_convention: ")
    status = run.status("claude-haiku")
    assert status.startswith("FAIL: usage normalization 10/11 checks")


def test_an_overloaded_provider_is_error_not_fail(tmp_path: Path) -> None:
    run = run_gates("-m", "claude-haiku", "--control", "erroring", outputs=tmp_path)
    assert run.returncode != 0
    record = run.record("usage")
    assert record.verdict == "error" and "529" in record.reason
    assert run.status("claude-haiku").startswith("ERROR ")


def test_the_gate_runs_against_a_gateway_it_did_not_start_without_the_provider_key(
    shared_platform, tmp_path: Path
) -> None:
    """As against a real platform: --gateway-url, --no-deploy, the master key only."""
    deployment = shared_platform.deploy("claude-haiku")
    env = shared_platform.gate_env()
    provider_key = shared_platform.platform._provider_key
    assert provider_key not in "".join(env.values())
    run = run_gates("-m", "claude-haiku", "--gateway-url", shared_platform.gateway_url, "--no-deploy",
                    outputs=tmp_path, env=env)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("usage")
    assert record.verdict == "pass" and record.counts.passed == 11
    assert record.target.platform == "remote" and record.target.deployment.startswith("gateway route")
    assert record.target.stand_in and record.target.model.startswith(SIMULATED)  # the route says so
    assert deployment.backend_url in record.target.deployment  # routed to the egress, not to Anthropic
    assert provider_key not in run.output + _written(tmp_path)
