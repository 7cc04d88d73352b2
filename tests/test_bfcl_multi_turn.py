"""BFCL's multi-turn loop: the ground-truth agent passes, wrong or looping agents fail, a platform
fault is an ERROR, hostile calls never run, and entries never share BFCL's backend state."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from evals.bfcl.data import bfcl_module, load_answers, select
from evals.bfcl.multi_turn import PlatformFault, run_multi_turn_entry
from fixtures.platform.controls.bfcl_multi_turn import find_entry, reference_multi_turn_reply

pytest.importorskip("bfcl_eval")

BOUNDS = dict(max_steps_per_turn=20, time_budget_s=120.0)
CHOSEN = [("multi_turn_base", f"multi_turn_base_{i}") for i in (0, 7, 42, 101, 199)] + [
    ("multi_turn_miss_func", "multi_turn_miss_func_0"),
    ("multi_turn_miss_func", "multi_turn_miss_func_49"),  # ground truth calls a held-out function
    ("multi_turn_miss_param", "multi_turn_miss_param_3"),
]


def _entry(category: str, entry_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return select(category, [entry_id])[0], load_answers(category)[entry_id]


def _instances() -> set[str]:
    table = vars(bfcl_module("eval_checker.multi_turn_eval.multi_turn_utils"))
    return {name for name in table if name.endswith("_instance")}


@pytest.mark.parametrize(("category", "entry_id"), CHOSEN)
def test_the_ground_truth_agent_passes(category: str, entry_id: str) -> None:
    entry, answer = _entry(category, entry_id)
    before = _instances()
    outcome = run_multi_turn_entry(entry, answer, reference_multi_turn_reply, **BOUNDS)
    assert outcome.outcome == "passed", outcome.reason
    assert (outcome.id, outcome.category) == (entry_id, category)
    assert len(outcome.calls) == len(answer["ground_truth"])
    assert [len(turn) for turn in outcome.calls] == [len(turn) for turn in answer["ground_truth"]]
    assert any(m["role"] == "tool" for m in outcome.messages)  # results went back to the model
    assert _instances() == before  # BFCL's instance table is left as it was


def _spoilt(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    reply = reference_multi_turn_reply(messages, tools)
    for call in reply.get("tool_calls") or []:
        args = json.loads(call["function"]["arguments"])
        call["function"]["arguments"] = json.dumps(
            {k: (v + "_wrong" if isinstance(v, str) else v) for k, v in args.items()})
    return reply


def test_wrong_arguments_fail_with_the_checkers_reason() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")
    outcome = run_multi_turn_entry(entry, answer, _spoilt, **BOUNDS)
    assert outcome.outcome == "failed"
    assert outcome.reason.startswith("multi_turn:"), outcome.reason
    assert "mismatch" in outcome.reason or "response" in outcome.reason


def test_a_turn_without_calls_fails_as_an_empty_turn() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")
    outcome = run_multi_turn_entry(
        entry, answer, lambda m, t: {"role": "assistant", "content": "Sure."}, **BOUNDS)
    assert outcome.outcome == "failed" and "empty_turn_model_response" in outcome.reason
    assert outcome.steps == len(answer["ground_truth"])  # one ask per turn


def _looping(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"c{len(messages)}", "type": "function", "function": {"name": "pwd", "arguments": "{}"}}]}


def test_an_agent_that_never_stops_calling_fails_at_the_step_limit() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")
    outcome = run_multi_turn_entry(entry, answer, _looping, max_steps_per_turn=5, time_budget_s=60)
    assert outcome.outcome == "failed"
    assert outcome.reason == "multi_turn:force_terminated: step limit 5 per turn reached"
    assert outcome.steps == 5


def test_an_entry_over_its_time_budget_fails_naming_it() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")

    def slow(messages, tools):
        time.sleep(0.05)
        return _looping(messages, tools)

    outcome = run_multi_turn_entry(entry, answer, slow, max_steps_per_turn=50, time_budget_s=0.12)
    assert outcome.outcome == "failed"
    assert "time budget of 0.12 s for the entry exceeded" in outcome.reason


def test_a_platform_fault_is_an_error_not_a_failure() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")
    asked = []

    def faulty(messages, tools):
        asked.append(1)
        if len(asked) == 3:
            raise PlatformFault("http_5xx: 503 after 3 attempts")
        return reference_multi_turn_reply(messages, tools)

    before = _instances()
    outcome = run_multi_turn_entry(entry, answer, faulty, **BOUNDS)
    assert (outcome.outcome, outcome.reason) == ("error", "http_5xx: 503 after 3 attempts")
    assert _instances() == before


def test_hostile_calls_are_never_executed(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile = [
        ("__import__('os').system", {"command": f"touch {canary}"}),
        ("open", {"file": str(canary), "mode": "w"}),
        ("ls", {f"a=True,b=__import__('os').system('touch {canary}')": 1}),
    ]
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")

    def attacker(messages, tools):
        if messages[-1]["role"] == "tool":
            return {"role": "assistant", "content": "done"}
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"h{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(hostile)]}

    outcome = run_multi_turn_entry(entry, answer, attacker, **BOUNDS)
    assert not canary.exists()
    assert outcome.outcome == "failed"
    results = [m["content"] for m in outcome.messages if m["role"] == "tool"][:3]
    assert results[0] == "Error during execution: no function named \"__import__('os').system\""
    assert results[1] == "Error during execution: no function named 'open'"
    assert results[2].startswith("Error during execution: ") and "is not a parameter name" in results[2]
    assert outcome.calls[0] == []  # nothing was executed, so nothing reaches the checker


def test_undecodable_arguments_end_the_turn_with_results_for_each_call() -> None:
    entry, answer = _entry("multi_turn_base", "multi_turn_base_0")

    def broken(messages, tools):
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "b0", "type": "function", "function": {"name": "ls", "arguments": "{not json"}}]}

    outcome = run_multi_turn_entry(entry, answer, broken, **BOUNDS)
    assert outcome.outcome == "failed"
    assert outcome.steps == len(answer["ground_truth"])  # each turn ended at its first reply
    tool = [m for m in outcome.messages if m["role"] == "tool"]
    assert tool and tool[0]["tool_call_id"] == "b0" and "not JSON" in tool[0]["content"]


def test_entries_in_threads_never_share_backend_state() -> None:
    # The same entry twice at once, one played right and one wrongly: each is judged on its own
    # instances (shared state would let the wrong run's moves spoil the right one or back).
    entry, answer = _entry("multi_turn_base", "multi_turn_base_7")
    results: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def run(name, ask):
        def paced(messages, tools):
            barrier.wait(timeout=10)  # interleave the two runs step by step
            return ask(messages, tools)
        results[name] = run_multi_turn_entry(entry, answer, paced, max_steps_per_turn=20,
                                             time_budget_s=60)

    threads = [threading.Thread(target=run, args=("good", reference_multi_turn_reply)),
               threading.Thread(target=run, args=("bad", _spoilt))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results["good"].outcome == "passed", results["good"].reason
    assert results["bad"].outcome == "failed"


def test_the_reference_agent_tells_entries_apart_from_the_request() -> None:
    entry, _ = _entry("multi_turn_miss_func", "multi_turn_miss_func_0")
    from evals.bfcl.single_turn import openai_tools

    found, _, turn = find_entry(entry["question"][0], openai_tools(entry["function"]))
    assert (found["id"], turn) == ("multi_turn_miss_func_0", 0)  # not base_0: a function is held out
    with pytest.raises(LookupError):
        find_entry([{"role": "user", "content": "not a BFCL question"}], [])
