"""The tool-loop eval against scripted reference agents served on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from evals.model_calls import RetryPolicy
from evals.tool_loop import (
    SCENARIOS,
    CallProblem,
    ScenarioResult,
    ToolCallRecord,
    ToolScenario,
    ToolSpec,
    assemble_stream,
    compare_modes,
    describe_kinds,
    failure_kinds,
    judge_tool_loops,
    results_table,
    run_scenario,
    run_tool_loops,
    scenario,
    validate_call,
)
from fixtures.platform.loopback import ThreadedServer
from fixtures.platform.reference_agents import (
    NO_TOOL_PARSER_MESSAGE,
    PROBE_ANSWER,
    UNKNOWN_TOOL,
    answer_move,
    calls_move,
    reference_agent,
    scripted_agent,
)

PRICE = (0.5e-6, 1.5e-6)  # coder-agent's catalog prices per token
FAST = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0)
SECRET = "sk-tool-loop-test-secret-0123456789"
Serve = Callable[[object], openai.OpenAI]


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    """Starts an app on loopback and returns an OpenAI client for it; all stopped at the end."""
    servers: list[ThreadedServer] = []

    def start(app: object) -> openai.OpenAI:
        server = ThreadedServer(app).start()
        servers.append(server)
        return openai.OpenAI(base_url=f"{server.url}/v1", api_key=SECRET, max_retries=0, timeout=10)

    yield start
    for server in servers:
        server.stop()


def both_modes(client: openai.OpenAI, **kwargs) -> tuple[list[ScenarioResult], list[ScenarioResult]]:
    plain = run_tool_loops(client, "coder-agent", SCENARIOS, stream=False, policy=FAST, **kwargs)
    streamed = run_tool_loops(client, "coder-agent", SCENARIOS, stream=True, policy=FAST, **kwargs)
    return plain, streamed


# --- the scenario catalog -----------------------------------------------------------------

def test_catalog_covers_the_required_kinds_of_scenario():
    assert len(SCENARIOS) >= 8
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert len({s.task for s in SCENARIOS}) == len(SCENARIOS)  # agents find scenarios by task
    no_tool = [s for s in SCENARIOS if s.max_tool_calls == 0]
    assert [s.name for s in no_tool] == ["no_tool_needed"]
    assert all(s.min_tool_calls >= 2 for s in SCENARIOS if s not in no_tool)
    assert sum(s.parallel for s in SCENARIOS) >= 2


def test_tools_are_deterministic_and_state_is_fresh_per_run():
    sc = scenario("error_count_file")
    state = sc.make_state()
    assert sc.execute(state, "grep_count", {"path": "/var/log/app.log", "pattern": "ERROR"}) == (
        '{"matching_lines": 3, "path": "/var/log/app.log", "pattern": "ERROR"}', False)
    sc.execute(state, "write_file", {"path": "/var/log/error_count.txt", "content": "3"})
    assert "/var/log/error_count.txt" not in sc.make_state()["fs"]
    text, is_error = scenario("settings_recover").execute(state, "read_file", {"path": "/etc/jobs/settings.yml"})
    assert is_error and json.loads(text) == {"error": "no such file: /etc/jobs/settings.yml"}
    text, is_error = scenario("order_total").execute(None, "calculate", {"op": "divide", "a": 1, "b": 0})
    assert is_error and "division by zero" in text


def test_bad_scenario_data_is_rejected_with_the_tool_named():
    with pytest.raises(ValueError, match="tool 'broken': parameters are not a JSON schema"):
        ToolSpec(name="broken", description="", parameters={"type": "object", "required": 3},
                 run=lambda s, a: None)
    tool = scenario("config_port").tools[0]
    with pytest.raises(ValueError, match="tool names appear twice: list_dir"):
        ToolScenario(name="dupe", task="t", tools=[tool, tool], make_state=dict,
                     check=lambda a, s: None)


# --- call validation and stream assembly ---------------------------------------------------

@pytest.mark.parametrize(("name", "arguments", "reason"), [
    ("run_shell", "{}", "unknown tool run_shell"),
    ("read_file", '{"path": "/a"', "malformed arguments for tool read_file: not JSON"),
    ("read_file", "", "malformed arguments for tool read_file: 'path' is a required property"),
    ("read_file", '{"path": 7}', "malformed arguments for tool read_file: 7 is not of type 'string' (at path)"),
    ("read_file", '{"path": "/a", "mode": "r"}', "Additional properties are not allowed"),
    ("read_file", '["/a"]', "is not of type 'object'"),
])
def test_invalid_calls_are_named(name, arguments, reason):
    with pytest.raises(CallProblem) as info:
        validate_call(scenario("config_port"), name, arguments)
    assert reason in str(info.value)


def test_valid_call_is_parsed():
    assert validate_call(scenario("config_port"), "read_file", ' {"path": "/app/README.txt"} ') == {
        "path": "/app/README.txt"}


def _chunk(delta: dict | None, finish: str | None = None, **extra) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices, **extra})


def test_stream_assembly_joins_interleaved_argument_fragments_by_index():
    fn = "function"
    reply = assemble_stream([
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"tool_calls": [{"index": 0, "id": "a", "type": fn, fn: {"name": "get_price", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, fn: {"arguments": '{"sku": '}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "b", "type": fn, fn: {"name": "get_price"}}]}),
        _chunk({"tool_calls": [{"index": 1, fn: {"arguments": '{"sku": "B-220"}'}}]}),
        _chunk({"tool_calls": [{"index": 0, fn: {"arguments": '"A-100"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk(None, usage={"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}),
    ])
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.calls] == [
        ("a", "get_price", {"sku": "A-100"}), ("b", "get_price", {"sku": "B-220"})]
    assert (reply.content, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens) == (
        None, "tool_calls", 11, 5)


# --- reference agents: the known-good control --------------------------------------------

def test_correct_agent_passes_every_scenario_in_both_modes_with_equal_results(serve):
    client = serve(reference_agent("correct", gateway_cost_per_token=PRICE))
    plain, streamed = both_modes(client, concurrency=3)
    assert [r.scenario for r in plain] == [s.name for s in SCENARIOS]
    assert all(r.passed and r.completed and r.calls_valid for r in plain + streamed), [
        r.reason for r in plain + streamed]
    assert compare_modes(plain, streamed) == []
    # The scripted agent is deterministic, so even ids, tokens and costs agree across modes.
    assert [r.model_dump(exclude={"stream"}) for r in plain] == [
        r.model_dump(exclude={"stream"}) for r in streamed]
    verdict = judge_tool_loops(plain + streamed, min_pass_rate=0.75)
    assert (verdict.verdict, verdict.passed, verdict.total, verdict.invalid_calls) == ("pass", 18, 18, 0)
    assert "18/18 = 100%" in verdict.reason

    by_name = {r.scenario: r for r in plain}
    assert by_name["no_tool_needed"].steps == 1 and not by_name["no_tool_needed"].calls
    assert all(by_name[s.name].max_parallel >= 2 for s in SCENARIOS if s.parallel)
    recover = by_name["settings_recover"].calls
    assert recover[0].tool_error and not recover[-1].tool_error  # recovered from a tool error
    chained = by_name["owner_manager"].calls  # a later call uses an earlier result
    assert json.loads(chained[1].arguments)["username"] == json.loads(chained[0].result)["owner"]

    # Budget support: every response carried its cost, and the sums match the token prices.
    for r in plain:
        assert r.cost_reported and len(r.costs) == r.steps
        assert r.cost_usd == pytest.approx(r.prompt_tokens * PRICE[0] + r.completion_tokens * PRICE[1])
    assert verdict.cost_reported
    assert verdict.cost_usd == pytest.approx(sum(r.cost_usd for r in plain + streamed))


def test_missing_cost_header_is_reported_not_guessed(serve):
    client = serve(reference_agent("correct"))
    result = run_scenario(client, "coder-agent", scenario("config_port"), policy=FAST)
    assert result.passed and result.costs == [None, None, None]
    assert not result.cost_reported and result.cost_usd == 0
    assert not judge_tool_loops([result], 0.75).cost_reported


# --- reference agents: the known-bad controls ---------------------------------------------

@pytest.mark.parametrize(("behaviour", "expected"), [
    ("malformed", "malformed arguments for tool read_file: not JSON"),
    ("unknown_tool", f"unknown tool {UNKNOWN_TOOL}"),
    ("looping", "step limit 8 reached"),
    ("lazy", "no tool call"),
])
def test_bad_agents_fail_with_the_reason_in_the_verdict(serve, behaviour, expected):
    client = serve(reference_agent(behaviour))
    plain, streamed = both_modes(client, max_steps=8)
    assert compare_modes(plain, streamed) == []
    verdict = judge_tool_loops(plain + streamed, min_pass_rate=0.75)
    assert verdict.verdict == "fail"
    assert expected in verdict.reason
    assert verdict.failures["config_port (stream)"].startswith(expected)
    if behaviour in ("malformed", "unknown_tool"):
        assert verdict.invalid_calls == 16 and "none allowed" in verdict.reason
    if behaviour == "looping":
        assert all(r.steps == 8 and not r.completed for r in plain if r.scenario != "no_tool_needed")


def test_one_invalid_call_fails_the_gate_even_above_the_pass_rate():
    good = [ScenarioResult(scenario=f"s{i}", stream=False, completed=True, passed=True) for i in range(9)]
    bad = ScenarioResult(
        scenario="x", stream=True, calls_valid=False, reason="unknown tool run_shell",
        calls=[ToolCallRecord(step=1, id="c", name="run_shell", arguments="{}", valid=False,
                              problem="unknown tool run_shell")],
    )
    verdict = judge_tool_loops(good + [bad], min_pass_rate=0.75)
    assert verdict.verdict == "fail" and verdict.pass_rate == 0.9
    assert verdict.reason == "1 invalid tool call(s), none allowed: x (stream): unknown tool run_shell"


def test_pass_rate_boundary_and_bad_threshold():
    results = [ScenarioResult(scenario=f"s{i}", stream=False, passed=i < 7, reason=None if i < 7 else "wrong answer: x")
               for i in range(9)]
    assert judge_tool_loops(results, 0.75).verdict == "pass"  # 7/9 = 78%
    failed = judge_tool_loops(results, 0.8)
    assert failed.verdict == "fail" and "pass rate 7/9 = 78% below 80%: s7 (non-stream): wrong answer: x" in failed.reason
    assert judge_tool_loops([], 0.75).verdict == "error"
    with pytest.raises(ValueError, match="min_pass_rate"):
        judge_tool_loops(results, 75)


def test_platform_errors_make_an_error_not_a_failure(serve):
    client = serve(reference_agent("unavailable"))
    plain, streamed = both_modes(client)
    verdict = judge_tool_loops(plain + streamed, min_pass_rate=0.75)
    assert verdict.verdict == "error" and verdict.platform_errors == 18
    assert "platform error in 18 of 18 runs" in verdict.reason and "503" in verdict.reason
    assert "after 2 attempt(s)" in plain[0].platform_error
    assert SECRET not in verdict.model_dump_json()
    # One erroring run among passing ones still makes the whole gate an error.
    good = [ScenarioResult(scenario="ok", stream=False, completed=True, passed=True)] * 9
    assert judge_tool_loops(good + plain[:1], 0.75).verdict == "error"


# --- exact scoring rules, with scripted moves ------------------------------------------------

ORDER = scenario("order_total")


@pytest.mark.parametrize(("moves", "expected"), [
    pytest.param(
        [calls_move(("get_price", {"sku": "A-100"}), turn=0),
         calls_move(("get_price", {"sku": "B-220"}), turn=1), answer_move("72.75 USD")],
        "no parallel tool calls (independent lookups were made one per step)", id="sequential"),
    pytest.param(
        [calls_move(("get_price", {"sku": "A-100"}), ("get_price", {"sku": "B-220"})), answer_move("70 USD")],
        "wrong answer: expected 72.75 in the answer, got '70 USD'", id="wrong-answer"),
    pytest.param(
        [calls_move(("get_price", {"sku": "A-100"})), answer_move("72.75")],
        "only 1 tool call(s); the task needs at least 2", id="too-few-calls"),
    pytest.param(
        [calls_move(("get_price", {"code": "A-100"}), ("get_price", {"sku": "B-220"}))],
        "malformed arguments for tool get_price: 'sku' is a required property",
        id="schema-violation"),
])
def test_scoring_reasons(serve, moves, expected):
    client = serve(scripted_agent(moves))
    for stream in (False, True):
        result = run_scenario(client, "coder-agent", ORDER, stream=stream, policy=FAST)
        assert not result.passed and result.reason == expected


def test_a_tool_call_where_none_is_needed_fails(serve):
    client = serve(scripted_agent([calls_move(("read_file", {"path": "/app/README.txt"})), answer_move("404")]))
    result = run_scenario(client, "coder-agent", scenario("no_tool_needed"), policy=FAST)
    assert result.reason == "unneeded tool call (read_file); the task needs at most 0"


def test_results_table_lists_every_run(serve):
    client = serve(scripted_agent([answer_move("no idea")]))
    result = run_scenario(client, "coder-agent", ORDER, policy=FAST)
    assert result.reason == "no tool call" and result.steps == 1
    table = results_table([result])
    assert table.row_count == 1 and [c.header for c in table.columns][0] == "scenario"


def _broken_stream_app(body: bytes) -> Starlette:
    async def chat(request: Request) -> Response:
        async def events():
            yield b'data: {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", ' \
                  b'"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n'
            yield body
            if not body:
                raise RuntimeError("scripted connection drop")

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.mark.parametrize(("body", "expected"), [
    (b'data: {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}\n\n',
     "engine died"),
    (b"", "after 2 attempt(s)"),  # the connection drops mid-body: retried, then an error
])
def test_a_stream_that_breaks_is_a_platform_error(serve, body, expected):
    client = serve(_broken_stream_app(body))
    result = run_scenario(client, "coder-agent", ORDER, stream=True, policy=FAST)
    assert result.platform_error is not None and expected in result.platform_error
    assert judge_tool_loops([result], 0.75).verdict == "error"


def test_plain_requests_get_a_plain_answer_and_no_tool_parser_refuses_tool_turns(serve):
    # The gateway's route probe carries no tools: every reference agent answers it.
    for behaviour in ("correct", "no_tool_parser"):
        client = serve(reference_agent(behaviour))
        probe = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}], max_tokens=1)
        assert probe.choices[0].message.content == PROBE_ANSWER
    # A tool turn against vLLM started without the tool flags: 400, a platform error, not a model failure.
    result = run_scenario(client, "coder-agent", ORDER, policy=FAST)
    assert result.platform_error is not None and NO_TOOL_PARSER_MESSAGE in result.platform_error
    assert "400" in result.platform_error and not result.calls


def test_failure_kinds_tally_the_reasons_most_frequent_first():
    def run(reason, passed=False):
        return ScenarioResult(scenario="s", stream=False, passed=passed, reason=reason)

    results = [run("wrong answer: expected 3"), run("no tool call"), run("no tool call"),
               run("malformed arguments for tool x: not JSON"), run(None, passed=True),
               run("platform error at step 1: 503"), run("something new")]
    kinds = failure_kinds(results)
    assert kinds == {"no tool call": 2, "platform error": 1, "malformed arguments": 1, "wrong answer": 1, "other": 1}
    assert list(kinds)[0] == "no tool call"
    assert describe_kinds({"no tool call": 2, "wrong answer": 1}) == "no tool call ×2, wrong answer ×1"
