"""`--gateway-url` at a LiteLLM without a key database: the gates run as a user runs them.

The suite must notice it from `/key/generate`, say so in one line, gate with the master key
(never printed) what needs no virtual key, and end every key-dependent check (budget binding,
per-key spend) as ERROR "the gateway has no key database", never PASS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.litellm_admin import NO_KEY_DATABASE
from tests.conformance.conftest import Gateway
from tests.gate_runs import GateRun, run_gates

SMOKE = ("--scope=promotion", "--humaneval-limit=4", "--fim-limit=4", "--tool-loop-limit=2", "--bfcl-limit=1",
         "--latency-requests=8", "--no-cache")


@pytest.fixture(scope="module")
def gate_run(real_proxy: Gateway, tmp_path_factory: pytest.TempPathFactory) -> GateRun:
    env = {**os.environ, "LITELLM_MASTER_KEY": real_proxy.master_key}
    env.pop("MODELGATE_GATEWAY_URL", None)
    # qwen-local is left out: its catalog SLO is an L4 GPU's (its streams are in test_gate_paths).
    aliases = "coder-chat or coder-fim or coder-agent or embeddings or claude-haiku"
    return run_gates("-m", aliases, f"--gateway-url={real_proxy.url}",
                     "--no-deploy", *SMOKE, outputs=tmp_path_factory.mktemp("no-key-db"), env=env)


def test_the_suite_says_it_once_and_never_prints_the_master_key(gate_run: GateRun,
                                                                real_proxy: Gateway) -> None:
    lines = [line for line in gate_run.output.splitlines()
             if "has no key database (LiteLLM without DATABASE_URL)" in line]
    assert lines, gate_run.output[-3000:]
    assert len({line.strip() for line in lines}) == 1  # one line, however many gates
    assert real_proxy.master_key not in gate_run.output
    for path in Path(gate_run.outputs).rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".md", ".yaml", ".xml"):
            assert real_proxy.master_key not in path.read_text(encoding="utf-8", errors="replace")


def test_what_needs_no_virtual_key_is_gated_with_the_master_key(gate_run: GateRun) -> None:
    record = gate_run.record("humaneval")
    assert record.verdict == "pass", record.reason  # canonical answers through the real proxy
    assert record.target.platform == "remote"
    # BFCL judges answers, not spend: the ground-truth control passes through the real proxy.
    bfcl = gate_run.record("bfcl")
    assert bfcl.verdict == "pass", (bfcl.summary, bfcl.reason)
    assert bfcl.counts.total == 6 and bfcl.counts.passed == 6


def test_budget_binding_is_an_error_never_a_pass(gate_run: GateRun) -> None:
    record = gate_run.record("embeddings")
    checks = record.extra["checks"]
    assert checks["budget_binding"] == "error" and record.verdict == "error"
    assert NO_KEY_DATABASE in record.reason
    key_free = ("registered", "dimension", "normalized", "batch_consistency", "triplets", "usage")
    assert all(checks[name] == "pass" for name in key_free), checks


@pytest.mark.parametrize("alias", ["coder-fim", "coder-agent", "claude-haiku"])
def test_per_key_spend_is_an_error_never_a_pass(gate_run: GateRun, alias: str) -> None:
    records = [r for r in gate_run.records if r.alias == alias and r.gate != "bfcl"]
    assert records and all(r.verdict == "error" for r in records), records
    assert all(NO_KEY_DATABASE in f"{r.summary} {r.reason}" for r in records), records
    assert gate_run.returncode != 0
