"""The coder-agent gate: scripted reference agents as controls prove the gate (through the gateway
double, with the run's budgeted key); real vLLM with the hermes tool parser proves the path."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psutil
import pytest

from deploy.litellm_admin import LiteLLMAdmin, throwaway_key
from evals.model_calls import RetryPolicy
from evals.tool_loop import SCENARIOS, ScenarioResult, ToolCallRecord, run_tool_loops, scenario
from fixtures.platform.controls.tool_loop import KNOWN_BAD_ENV, known_bad_behaviour
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer
from fixtures.platform.reference_agents import reference_agent
from gates.kinds.tool_loop.budget import SpendCheck, check_spend, key_exists, settled_baseline
from gates.kinds.tool_loop.judge import judge_coder_agent
from tests.gate_runs import run_gates

ALIAS = "coder-agent"  # runs select its tool_loop gate (-k): bfcl has tests/test_bfcl.py
PRICE = (0.5e-6, 1.5e-6)  # the catalog's coder-agent prices per token
FAST = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)




# --- the gate run as a user runs it, against its controls ------------------------------------

def test_known_good_control_passes_with_the_spend_accounted(tmp_path: Path) -> None:
    run = run_gates("-m", ALIAS, "-k", "tool_loop", "--control", "known-good", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("tool_loop")
    assert record.verdict == "pass", record.reason
    assert (record.counts.passed, record.counts.total, record.counts.errors) == (9, 9, 0)
    assert record.summary == "Tool loops 9/9 = 100% [95% CI 70-100%] (≥75% gate; streamed and not)"
    assert run.status(ALIAS).startswith(
        "Tool loops 9/9 = 100% [95% CI 70-100%] (≥75% gate; streamed and not, promotion subset) "
        "[embedded stand-in")
    extra = record.extra
    assert extra["invalid_calls"] == 0 and extra["disagreements"] == [] and extra["max_steps"] == 8
    assert extra["seed"] == 1234  # the seed the requests carried (the suite default), not None
    spend = extra["spend"]
    # The key held the catalog's budget, its spend grew, and by exactly the response costs.
    assert spend["max_budget_usd"] == spend["catalog_budget_usd"] == 1.0
    assert spend["problem"] == "" and spend["missing_cost_headers"] == 0
    assert spend["responses"] >= 2 * 8 + 1  # at least two model calls per tool scenario
    assert spend["gate_spend_usd"] > 0
    assert spend["gate_spend_usd"] == pytest.approx(spend["response_cost_usd"], rel=1e-6)
    assert spend["baseline_usd"] > 0  # the route probe's charge, left out of the comparison
    assert spend["after_stream_usd"] > spend["key_spend_usd"]  # streamed responses were charged too
    # Both modes' runs are in the details; the key was deleted (the teardown check) and never written.
    details = (tmp_path / record.details_file).read_text().splitlines()
    assert len(details) == 18 and {json.loads(line)["stream"] for line in details} == {False, True}
    assert "KeyNotDeleted" not in run.output and "error" not in run.output.splitlines()[-1]
    assert extra["key"].startswith("sk-...")
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".yaml", ".md"))
    for text in (run.output, written):
        assert "sk-" not in text.replace("sk-...", "")


@pytest.mark.parametrize(("behaviour", "kind", "expected"), [
    ("malformed", "malformed arguments", "malformed arguments for tool read_file: not JSON"),
    ("looping", "step limit (looping)", "step limit 8 reached"),
    ("unknown_tool", "unknown tool", "unknown tool run_shell"),
])
def test_known_bad_agents_fail_with_the_reason_in_the_record(tmp_path: Path, behaviour, kind, expected) -> None:
    env = {**os.environ, KNOWN_BAD_ENV: behaviour}
    run = run_gates("-m", ALIAS, "-k", "tool_loop", "--control", "known-bad", outputs=tmp_path, env=env)
    assert run.returncode == 1, run.output[-3000:]
    record = run.record("tool_loop")
    assert record.verdict == "fail"
    assert record.counts.errors == 0 and record.counts.passed == 1  # only no_tool_needed passes
    assert f"Why: {kind} ×16" in record.reason and expected in record.reason
    assert record.extra["failure_kinds"] == {kind: 16}
    if behaviour != "looping":
        assert "16 invalid tool call(s), none allowed" in record.reason
    assert record.extra["spend"]["problem"] == ""  # the model failed, the accounting did not
    assert run.status(ALIAS).startswith(f"FAIL: Tool loops 1/9 = 11% [95% CI 2-43%] (≥75% gate; streamed and not): "
                                          f"{kind} ×16")
    assert expected in run.output  # the pytest failure message carries the reason


def test_platform_without_the_tool_parser_is_an_error_not_a_failure(tmp_path: Path) -> None:
    run = run_gates("-m", ALIAS, "-k", "tool_loop", "--control", "erroring", outputs=tmp_path)
    assert run.returncode == 1
    record = run.record("tool_loop")
    assert record.verdict == "error"
    assert record.counts.errors == 9 and record.counts.failed == 0
    assert record.summary == "Tool loops not judged: no answer in 18 of 18 runs"
    assert "--enable-auto-tool-choice" in record.reason and "(×18, first in config_port" in record.reason
    assert run.status(ALIAS).startswith("ERROR ") and ": Tool loops not judged" in run.status(ALIAS)
    # Reported as the platform's error in one line (issue 19.7), not as a failed assertion.
    assert "\ncoder-agent/tool_loop: ERROR: Tool loops not judged" in run.output


def test_a_bad_known_bad_choice_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv(KNOWN_BAD_ENV, "correct")
    with pytest.raises(ValueError, match=f"{KNOWN_BAD_ENV}='correct' is not a known-bad agent behaviour"):
        known_bad_behaviour()
    monkeypatch.delenv(KNOWN_BAD_ENV)
    assert known_bad_behaviour() == "malformed"


# --- the key's accounting, against the gateway stand-in in this process -----------------------

@dataclass
class Gateway:
    admin: LiteLLMAdmin
    url: str


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """The gateway stand-in routing coder-agent to a correct reference agent, at catalog prices."""
    master = "sk-master-" + secrets.token_hex(8)
    double = GatewayDouble(master)
    with ThreadedServer(reference_agent("correct")) as agent, ThreadedServer(double) as server:
        admin = LiteLLMAdmin(server.url, master, retry_wait=0.01)
        admin.register_model(
            ALIAS, {"model": "hosted_vllm/agent", "api_base": f"{agent.url}/v1"},
            {"mode": "chat", "input_cost_per_token": PRICE[0], "output_cost_per_token": PRICE[1]},
        )
        yield Gateway(admin, server.url)
        admin.close()


def _client(gateway: Gateway, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key.value, max_retries=0, timeout=10)


def test_spend_equals_the_response_costs_and_the_key_is_gone_after(gateway: Gateway) -> None:
    with throwaway_key(gateway.admin, models=[ALIAS], max_budget=1.0) as key:
        baseline = settled_baseline(gateway.admin, key, priced=False)
        results = run_tool_loops(_client(gateway, key), ALIAS, [scenario("config_port")], policy=FAST,
                                 progress=False)
        check = check_spend(gateway.admin, key, results, baseline=baseline, catalog_budget=1.0)
        assert check.ok, check.problem
        assert check.responses == 3 and check.gate_spend_usd == pytest.approx(results[0].cost_usd)
        assert key_exists(gateway.admin, key)
    assert not key_exists(gateway.admin, key)


def test_spend_that_does_not_match_the_costs_is_named(gateway: Gateway) -> None:
    with throwaway_key(gateway.admin, models=[ALIAS], max_budget=1.0) as key:
        results = run_tool_loops(_client(gateway, key), ALIAS, [scenario("config_port")], policy=FAST,
                                 progress=False)
        real = results[0].cost_usd
        inflated = [results[0].model_copy(update={"costs": [c * 2 for c in results[0].costs]})]
        check = check_spend(gateway.admin, key, inflated, baseline=0.0, catalog_budget=1.0, timeout=0.3)
        assert check.problem == (f"the key's spend grew by {real:.9g} USD, but the responses cost "
                                 f"{2 * real:.9g} USD")
        unheadered = [results[0].model_copy(update={"costs": [None, *results[0].costs[1:]]})]
        check = check_spend(gateway.admin, key, unheadered, baseline=0.0, catalog_budget=1.0, timeout=0.3)
        assert check.problem == "1 of 3 responses carried no x-litellm-response-cost header"
        check = check_spend(gateway.admin, key, results, baseline=0.0, catalog_budget=0.5, timeout=0.3)
        assert check.problem == "the key's max_budget is 1.0 USD, not the catalog's 0.5 USD"
    with throwaway_key(gateway.admin, models=[ALIAS], max_budget=1.0) as idle:
        check = check_spend(gateway.admin, idle, results, baseline=0.0, catalog_budget=1.0, timeout=0.3)
        assert check.problem == "the key's spend did not grow (stayed at 0.0 USD)"


# --- the verdict's rules ---------------------------------------------------------------------

def _passing(stream: bool) -> list[ScenarioResult]:
    return [ScenarioResult(scenario=s.name, stream=stream, completed=True, passed=True, answer="ok")
            for s in SCENARIOS]


GOOD_SPEND = SpendCheck(baseline_usd=0.0, key_spend_usd=0.01, response_cost_usd=0.01, responses=20)


def test_a_pass_needs_both_modes_agreeing() -> None:
    verdict = judge_coder_agent(_passing(False), _passing(True), min_pass_rate=0.75, spend=GOOD_SPEND)
    assert verdict.verdict == "pass" and verdict.counts.passed == 9
    streamed = _passing(True)
    streamed[0] = streamed[0].model_copy(update={"answer": "something else"})
    verdict = judge_coder_agent(_passing(False), streamed, min_pass_rate=0.75, spend=GOOD_SPEND)
    assert verdict.verdict == "fail" and verdict.counts.passed == 9  # every run passed, yet they differ
    assert "streamed runs disagree with non-streamed ones: config_port: answer differ" in verdict.reason


def test_one_malformed_call_fails_even_above_the_pass_rate() -> None:
    plain = _passing(False)
    plain[1] = ScenarioResult(
        scenario=plain[1].scenario, stream=False, calls_valid=False,
        reason="malformed arguments for tool read_file: not JSON (Expecting value at 0)",
        calls=[ToolCallRecord(step=1, id="c", name="read_file", arguments="{", valid=False,
                              problem="malformed arguments for tool read_file: not JSON (Expecting value at 0)")],
    )
    streamed = [r.model_copy(update={"stream": True}) for r in plain]
    verdict = judge_coder_agent(plain, streamed, min_pass_rate=0.75, spend=GOOD_SPEND)
    assert verdict.verdict == "fail" and verdict.pass_rate == pytest.approx(8 / 9)
    assert verdict.reason.startswith("2 invalid tool call(s), none allowed. Why: malformed arguments ×2")
    assert verdict.summary.endswith("streamed and not): malformed arguments ×2")


def test_bad_accounting_is_an_error_unless_the_model_already_failed() -> None:
    bad = GOOD_SPEND.model_copy(update={"problem": "the key's spend did not grow (stayed at 0.0 USD)"})
    verdict = judge_coder_agent(_passing(False), _passing(True), min_pass_rate=0.75, spend=bad)
    assert verdict.verdict == "error"
    assert verdict.reason == "key accounting: the key's spend did not grow (stayed at 0.0 USD)"
    lazy = [r.model_copy(update={"passed": False, "reason": "no tool call"}) for r in _passing(False)]
    verdict = judge_coder_agent(lazy, [r.model_copy(update={"stream": True}) for r in lazy],
                                min_pass_rate=0.75, spend=bad)
    assert verdict.verdict == "fail" and verdict.reason.endswith(
        "Also key accounting: the key's spend did not grow (stayed at 0.0 USD)")


# --- real vLLM on the CPU: the engine the catalog's arguments start, through the gateway double -----

@pytest.mark.engine
def test_real_vllm_with_the_hermes_parser_is_judged_and_the_stand_in_fails(shared_platform, tmp_path: Path) -> None:
    deployment = shared_platform.deploy(ALIAS)
    # The engine's real command line carries the catalog's tool-calling flags.
    engine = next(e for e in shared_platform.platform.engines.values() if f"pid {e.pid} at" in deployment.target)
    cmdline = psutil.Process(engine.pid).cmdline()
    assert "--enable-auto-tool-choice" in cmdline
    assert cmdline[cmdline.index("--tool-call-parser") + 1] == "hermes"

    # Two tool-needing scenarios in both modes: a CPU engine writes a few tokens a second.
    run = run_gates("-m", ALIAS, "-k", "tool_loop", "--gateway-url", shared_platform.gateway_url, "--no-deploy",
                    "--tool-loop-limit", "2", outputs=tmp_path, env=shared_platform.gate_env())
    record = run.record("tool_loop")
    # The platform answered every turn, and the 135M stand-in is judged as it is: it fails.
    assert record.counts.total == 2 and record.counts.errors == 0, record.reason
    assert record.verdict == "fail" and run.returncode == 1
    assert record.target.served_model_name == "smollm2-135m-instruct"  # what really answered
    kinds = record.extra["failure_kinds"]
    assert kinds and set(kinds) <= {"no tool call", "malformed arguments", "unknown tool", "wrong answer",
                                     "step limit (looping)", "too few tool calls", "no parallel tool calls",
                                     "unneeded tool call"}
    assert "Why: " in record.reason and next(iter(kinds)) in record.reason
    spend = record.extra["spend"]
    assert spend["problem"] == "" and spend["gate_spend_usd"] > 0  # the budgeted key paid for it
    assert record.extra["completion_tokens"] > 0
