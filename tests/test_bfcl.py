"""The BFCL gate: the package's data and checker, its single-turn judging, and its controls
through the gateway double (the multi-turn loop itself: tests/test_bfcl_multi_turn.py)."""

from __future__ import annotations

import json
import secrets
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from deploy.litellm_admin import LiteLLMAdmin, throwaway_key
from evals.bfcl import data
from evals.bfcl.ask import AskSettings
from evals.bfcl.data import (
    MULTI_TURN,
    SINGLE_TURN,
    BfclNotInstalled,
    load_answers,
    load_category,
    package_version,
    select,
)
from evals.bfcl.items import BfclItem
from evals.bfcl.run import LoopBounds, first_per_category, run_bfcl, selection
from evals.bfcl.single_turn import judge, openai_tools
from evals.bfcl.subset import load_subset
from evals.model_calls import RetryPolicy
from fixtures.make_bfcl_subset import SUBSET_PATH, build, render
from fixtures.platform.controls import controls_of
from fixtures.platform.controls.bfcl import BfclControlBackend, ground_truth_calls
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer
from gates.kinds.bfcl.judge import judge_bfcl

ALIAS = "coder-agent"
FAST = AskSettings(max_tokens=64, policy=RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0, timeout_s=10))


def _entry(category: str, entry_id: str) -> dict[str, Any]:
    return select(category, [entry_id])[0]


def _reply(*calls: tuple[str, Any], content: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"c{i}", "type": "function", "function": {
                "name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for i, (name, args) in enumerate(calls)]
    return message


# --- the package's data ---------------------------------------------------------------------

def test_the_data_comes_from_the_installed_package_at_its_pinned_version() -> None:
    assert package_version() == data.PINNED == "2026.3.23"
    sizes = {c: len(load_category(c)) for c in SINGLE_TURN + MULTI_TURN}
    assert sizes == {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200,
                     "irrelevance": 240, "multi_turn_base": 200, "multi_turn_miss_func": 200,
                     "multi_turn_miss_param": 200}
    assert load_answers("irrelevance") == {}  # the right answer there is no call
    assert load_answers("simple_python")["simple_python_0"]["ground_truth"] == [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    first = load_category("multi_turn_base")[0]  # BFCL's loader adds the involved classes' docs
    assert first["id"] == "multi_turn_base_0" and len(first["function"]) > 10
    with pytest.raises(ValueError, match=r"has no entries \['simple_python_9999'\]"):
        select("simple_python", ["simple_python_0", "simple_python_9999"])
    with pytest.raises(ValueError, match="unknown BFCL category 'live_simple'"):
        load_category("live_simple")


def test_a_missing_package_is_one_line_naming_the_install_command(monkeypatch) -> None:
    def missing(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}", name="bfcl_eval")

    monkeypatch.setattr(data.importlib, "import_module", missing)
    with pytest.raises(BfclNotInstalled, match=r"pip install --no-deps bfcl-eval==2026\.3\.23"):
        data.bfcl_module("utils")


def test_the_promotion_subset_is_the_rule_applied_to_the_installed_package() -> None:
    subset = load_subset(SUBSET_PATH)
    assert subset.version == package_version() and subset.package == "bfcl-eval"
    assert subset.per_category == {**{c: 5 for c in SINGLE_TURN}, "multi_turn_base": 3}
    for category, ids in subset.ids.items():
        assert len(ids) == subset.per_category[category]
        assert [e["id"] for e in select(category, ids)] == ids  # every id exists in the package
    assert SUBSET_PATH.read_text() == render(build())  # drawn by the documented rule


def test_a_bad_subset_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "subset.json"
    path.write_text(json.dumps({"name": "x", "rule": "r", "package": "bfcl-eval", "version": "1",
                                "per_category": {}, "ids": {"simple": ["simple_0"]}}))
    with pytest.raises(ValueError, match=f"{path}: unknown BFCL categories \\['simple'\\]"):
        load_subset(path)


# --- tools as BFCL's OpenAI handler sends them, and BFCL's AST checker ------------------------

def test_function_docs_become_openai_tools_as_bfcls_fc_handler_makes_them() -> None:
    (tool,) = openai_tools(_entry("simple_python", "simple_python_0")["function"])
    assert tool["type"] == "function" and tool["function"]["name"] == "calculate_triangle_area"
    assert tool["function"]["parameters"]["type"] == "object"  # BFCL's "dict"
    names = [t["function"]["name"] for t in openai_tools(_entry("multiple", "multiple_0")["function"])]
    assert "triangle_properties_get" in names  # dots are not allowed in OpenAI tool names
    typed = {p["type"] for e in load_category("simple_python")[:60]
             for t in openai_tools(e["function"])
             for p in t["function"]["parameters"]["properties"].values()}
    assert "float" not in typed and "dict" not in typed and "tuple" not in typed and "number" in typed


@pytest.mark.parametrize(("calls", "valid", "reason"), [
    ((("calculate_triangle_area", {"base": 10, "height": 5}),), True, "matches a possible answer"),
    ((("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"}),), True, "matches"),
    ((("calculate_triangle_area", {"base": "10", "height": 5}),), False, "type_error"),
    ((("calculate_triangle_area", {"base": 10}),), False, "missing_required"),
    ((("calculate_triangle_area", {"base": 10, "height": 6}),), False, "value_error"),
    ((("calculate_triangle_area", {"base": 10, "height": 5}),
      ("calculate_triangle_area", {"base": 10, "height": 5})), False, "wrong_count"),
    ((("calculate_triangle_area", "{\"base\": 10,"),), False, "Failed to decode AST"),
    ((), False, "Failed to decode AST. no tool call"),
])
def test_bfcls_checker_judges_a_simple_entry(calls, valid, reason) -> None:
    entry = _entry("simple_python", "simple_python_0")
    ok, why, _ = judge("simple_python", entry, load_answers("simple_python")["simple_python_0"],
                       _reply(*calls, content="I would call it."))
    assert (ok, reason in why) == (valid, True), why


def test_dotted_names_and_parallel_order_are_judged_as_bfcl_does() -> None:
    answers = load_answers("parallel")
    entry = _entry("parallel", "parallel_0")
    good = ground_truth_calls(answers["parallel_0"]["ground_truth"], entry["function"])
    assert len(good) > 1
    ok, why, decoded = judge("parallel", entry, answers["parallel_0"], _reply(*reversed(good)))
    assert ok, why  # BFCL's parallel checker ignores the order
    assert decoded == [{name: args} for name, args in reversed(good)]
    ok, why, _ = judge("parallel", entry, answers["parallel_0"], _reply(*good[:-1]))
    assert not ok and "wrong_count" in why
    entry = _entry("multiple", "multiple_0")
    (name, args), = ground_truth_calls(load_answers("multiple")["multiple_0"]["ground_truth"],
                                      entry["function"])
    assert name == "triangle_properties_get"  # the tool's name; BFCL's answer says triangle_properties.get
    assert judge("multiple", entry, load_answers("multiple")["multiple_0"], _reply((name, args)))[0]


def test_irrelevance_passes_only_without_a_call() -> None:
    entry = _entry("irrelevance", "irrelevance_0")
    name = openai_tools(entry["function"])[0]["function"]["name"]
    assert judge("irrelevance", entry, None, _reply(content="I cannot do that."))[:2] == (
        True, "no function call, as expected")
    ok, why, _ = judge("irrelevance", entry, None, _reply((name, {"weight": 70})))
    assert not ok and why == "Valid syntax. Successfully decode AST when it should not."
    # As BFCL: arguments that do not decode are no function call.
    assert judge("irrelevance", entry, None, _reply((name, "{oops")))[0]


# --- one request ------------------------------------------------------------------------------

def test_a_reply_comes_back_as_an_openai_message_and_no_answer_as_a_fault() -> None:
    from evals.bfcl.ask import request_reply
    from fixtures.platform.reference_agents import (
        answer_move,
        calls_move,
        reference_agent,
        scripted_agent,
    )

    tools = openai_tools(_entry("simple_python", "simple_python_0")["function"])
    question = [{"role": "user", "content": "area?"}]
    moves = [calls_move(("calculate_triangle_area", {"base": 10, "height": 5})), answer_move("50")]
    with ThreadedServer(scripted_agent(moves)) as agent, ThreadedServer(reference_agent("unavailable")) as down:
        client = openai.OpenAI(base_url=f"{agent.url}/v1", api_key="k", max_retries=0, timeout=10)
        reply = request_reply(client, "m", question, tools, FAST)
        (call,) = reply.message["tool_calls"]
        assert call["function"] == {"name": "calculate_triangle_area",
                                    "arguments": '{"base": 10, "height": 5}'}
        assert reply.fault == "" and reply.prompt_tokens > 0
        answered = request_reply(client, "m", [*question, reply.message], tools, FAST)
        assert answered.message == {"role": "assistant", "content": "50"}  # no empty tool_calls
        client = openai.OpenAI(base_url=f"{down.url}/v1", api_key="k", max_retries=0, timeout=10)
        fault = request_reply(client, "m", question, tools, FAST)
    assert fault.message is None and fault.fault.startswith("http_5xx: ")


# --- the verdict -------------------------------------------------------------------------------

def _item(category: str, n: int, outcome: str, reason: str = "") -> BfclItem:
    return BfclItem(id=f"{category}_{n}", category=category, outcome=outcome, reason=reason)


def test_the_verdict_gives_per_category_and_unweighted_overall_accuracy() -> None:
    items = ([_item("simple_python", i, "passed") for i in range(5)]
             + [_item("multiple", i, "passed") for i in range(4)]
             + [_item("multiple", 9, "failed", "value_error:dict_value: Invalid value")]
             + [_item("multi_turn_base", i, "failed", "state mismatch") for i in range(3)])
    verdict = judge_bfcl(items, min_accuracy=0.6)
    assert verdict.summary == "BFCL 9/13 = 69% [95% CI 42-87%] (simple 5/5, multiple 4/5, multi_turn_base 0/3) (≥60% gate)"
    assert verdict.verdict == "pass" and verdict.accuracy == pytest.approx(9 / 13)
    overall, *categories = verdict.judged  # the overall figure is judged, each category reported
    assert (overall.successes, overall.n, overall.threshold, overall.method) == (9, 13, 0.6, "wilson")
    assert overall.low == pytest.approx(0.4237, abs=1e-3) and overall.high == pytest.approx(0.8732, abs=1e-3)
    assert [(c.successes, c.n, c.threshold) for c in categories] == [(5, 5, None), (4, 5, None), (0, 3, None)]
    assert verdict.per_category["multiple"] == {"passed": 4, "failed": 1, "errors": 0, "total": 5,
                                                "accuracy": 0.8}
    verdict = judge_bfcl(items, min_accuracy=0.7)
    assert verdict.verdict == "fail"
    assert verdict.reason.startswith("accuracy 69.2% is below the 70% gate. Why: state mismatch ×3")
    errored = judge_bfcl([*items, _item("parallel", 1, "error", "http_5xx: 500")], min_accuracy=0.1)
    assert errored.verdict == "error" and errored.counts.errors == 1
    assert errored.reason == "1 of 14 entries got no answer from the platform; first: parallel_1: http_5xx: 500"
    assert judge_bfcl([], min_accuracy=0.5).verdict == "error"


# --- the controls, through the gateway double -----------------------------------------------

@pytest.fixture
def through_gateway() -> Iterator[Any]:
    """Serves a control behind the gateway double; yields a function making a keyed client."""
    master = "sk-master-" + secrets.token_hex(8)
    started: list[Any] = []
    with ThreadedServer(GatewayDouble(master)) as gateway:
        admin = LiteLLMAdmin(gateway.url, master, retry_wait=0.01)

        def serve(control: str):
            backend = BfclControlBackend(control).start()
            started.append(backend)
            admin.register_model(ALIAS, {"model": "hosted_vllm/agent", "api_base": backend.base_url},
                                 {"mode": "chat"})
            return admin

        yield serve, gateway.url
        for backend in started:
            backend.stop()
        admin.close()


# Kept small (seconds): the first entry of each category of the promotion subset.
CHOSEN = {c: ids[:1] for c, ids in load_subset(SUBSET_PATH).ids.items()}


@pytest.mark.parametrize(("control", "outcome", "verdict"), [
    ("known-good", "passed", "pass"), ("known-bad", "failed", "fail"), ("erroring", "error", "error"),
])
def test_controls_through_the_gateway_are_classified(through_gateway, control,
                                                     outcome, verdict) -> None:
    serve, url = through_gateway
    admin = serve(control)
    with throwaway_key(admin, models=[ALIAS], max_budget=1.0) as key:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key.value, max_retries=0, timeout=10)
        items = run_bfcl(client, ALIAS, selection(CHOSEN), settings=FAST, bounds=LoopBounds(),
                         concurrency=2, progress=False)
    assert [i.category for i in items] == [*SINGLE_TURN, "multi_turn_base"]
    assert {i.id: i.outcome for i in items} == {i.id: outcome for i in items}, [i.reason for i in items]
    result = judge_bfcl(items, min_accuracy=0.6)
    assert result.verdict == verdict
    assert set(result.per_category) == {*SINGLE_TURN, "multi_turn_base"}
    if control == "known-good":
        assert result.summary == ("BFCL 6/6 = 100% [95% CI 61-100%] (simple 1/1, multiple 1/1, parallel 1/1, "
                                  "parallel_multiple 1/1, irrelevance 1/1, multi_turn_base 1/1) (≥60% gate)")
        turn = items[-1].messages
        assert turn[0]["role"] == "user" and items[-1].steps >= 2 and items[-1].calls
        assert items[0].messages[-1]["tool_calls"] and items[0].calls  # the conversation and calls kept
    if control == "known-bad":
        reasons = " ".join(i.reason for i in items)
        assert "Successfully decode AST when it should not" in reasons  # a call on irrelevance
    if control == "erroring":
        assert "--enable-auto-tool-choice" in items[0].reason and items[0].reason.startswith("http_4xx")


def test_an_alias_with_tool_loop_and_bfcl_is_served_by_bfcls_controls(through_gateway) -> None:
    entry = types.SimpleNamespace(alias=ALIAS, gates=types.SimpleNamespace(names=lambda: ["tool_loop", "bfcl"]))
    assert controls_of(entry)["known-good"].__module__ == "fixtures.platform.controls.bfcl"
    only_loop = types.SimpleNamespace(alias="a", gates=types.SimpleNamespace(names=lambda: ["tool_loop"]))
    assert controls_of(only_loop)["known-good"].__module__ == "fixtures.platform.controls.tool_loop"
    # ...and those controls still play the tool-loop scenarios.
    from evals.tool_loop import SCENARIOS, run_tool_loops

    serve, url = through_gateway
    admin = serve("known-good")
    with throwaway_key(admin, models=[ALIAS], max_budget=1.0) as key:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key.value, max_retries=0, timeout=10)
        (result,) = run_tool_loops(client, ALIAS, SCENARIOS[:1], policy=FAST.policy, progress=False)
    assert result.passed, result.reason


def test_a_smoke_limit_keeps_every_category() -> None:
    chosen = selection({"simple_python": ["simple_python_0", "simple_python_1"],
                        "irrelevance": ["irrelevance_0", "irrelevance_1"]})
    assert [e["id"] for _, e in first_per_category(chosen, 1)] == ["simple_python_0", "irrelevance_0"]


# --- the gate run as a user runs it (needs the multi-turn loop and its reference agent) ---------

@pytest.mark.parametrize(("control", "returncode", "verdict"), [
    ("known-good", 0, "pass"), ("erroring", 1, "error"),  # known-bad: in this process, above
])
def test_the_gate_run_against_its_controls(tmp_path: Path, control, returncode, verdict) -> None:
    from tests.gate_runs import run_gates

    run = run_gates("-m", ALIAS, "-k", "bfcl", "--control", control, "--bfcl-limit", "1",
                    outputs=tmp_path)
    assert run.returncode == returncode, run.output[-3000:]
    record = run.record("bfcl")
    assert record.verdict == verdict and record.kind == "control", record.reason
    assert record.counts.total == 6 and record.extra["package_version"] == package_version()
    assert record.extra["seed"] == 1234  # written once by the record path, as sent
    assert record.extra["scope"] == "promotion (first 1 of each category)"
    assert set(record.extra["per_category"]) == {*SINGLE_TURN, "multi_turn_base"}
    rows = [json.loads(line) for line in (tmp_path / record.details_file).read_text().splitlines()]
    assert [r["category"] for r in rows] == [*SINGLE_TURN, "multi_turn_base"]
    if control == "known-good":
        assert record.summary.startswith("BFCL 6/6 = 100% [95% CI 61-100%] (simple 1/1, multiple 1/1")
        assert all(r["messages"] for r in rows)


def test_the_reason_counts_multi_turn_failures_by_bfcls_error_type() -> None:
    items = [_item("multi_turn_base", i, "failed",
                   "multi_turn:empty_turn_model_response: Model response list is empty for turn 0")
             for i in range(2)]
    items.append(_item("multi_turn_base", 5, "failed", "multi_turn:instance_state_mismatch: "
                       "Model instance for TravelAPI does not match the state"))
    reason = judge_bfcl(items, min_accuracy=0.5).reason
    assert ("Why: multi_turn:empty_turn_model_response ×2, multi_turn:instance_state_mismatch ×1"
            in reason), reason
