"""The Anthropic Messages stand-in against CONTRACTS.md §4, over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from fixtures.platform.agentgateway_translation import provider_key
from fixtures.platform.anthropic_standin import (
    DEFAULT_TEXT,
    AnthropicStandin,
    AnthropicStandinServer,
    ScriptedError,
    ScriptedReply,
    ScriptedUsage,
    count_tokens,
)

KEY = provider_key()
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
TOOL = {"name": "get_weather", "description": "weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "days": {"type": "integer"}}}}
WORKED = ScriptedUsage(input_tokens=15, cache_creation_input_tokens=13, cache_read_input_tokens=12,
                       output_tokens=21)


@pytest.fixture(scope="module")
def server() -> Iterator[AnthropicStandinServer]:
    with AnthropicStandinServer(AnthropicStandin(KEY, min_cacheable_tokens=50)) as running:
        yield running


@pytest.fixture
def standin(server: AnthropicStandinServer) -> AnthropicStandin:
    server.standin.clear()
    return server.standin


def post(server: AnthropicStandinServer, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/messages", json=body,
                      headers=HEADERS if headers is None else headers, timeout=10)


def hello(**extra) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hello there"}], **extra}


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    return body["error"]


@pytest.mark.parametrize(("headers", "status", "kind", "words"), [
    ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key header is required"),
    ({"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error", "invalid x-api-key"),
    ({"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version"),
])
def test_key_and_version_headers_are_required(server, standin, headers, status, kind, words) -> None:
    response = post(server, hello(), headers)
    assert response.status_code == status
    error = error_of(response)
    assert error["type"] == kind and words in error["message"]
    assert KEY not in response.text


def test_a_reply_has_blocks_stop_reason_and_cache_fields(server, standin) -> None:
    response = post(server, hello(system="Be brief."))
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "message" and body["role"] == "assistant" and body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": DEFAULT_TEXT}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": count_tokens("Be brief.") + count_tokens("user: Hello there"),
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                             "output_tokens": count_tokens(DEFAULT_TEXT)}
    assert response.headers["request-id"].startswith("req_")
    seen = standin.requests[-1]
    assert seen.had_api_key and seen.anthropic_version == "2023-06-01"
    assert KEY not in repr(standin) and KEY not in seen.model_dump_json()


@pytest.mark.parametrize(("body", "field"), [
    (hello(stream_options={"include_usage": True}), "stream_options"),  # OpenAI fields are refused
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    (hello(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    (hello(temperature=1.5), "temperature"),
])
def test_malformed_requests_name_the_field(server, standin, body, field) -> None:
    response = post(server, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["message"].startswith(field)


def test_max_tokens_and_stop_sequences_end_the_reply(server, standin) -> None:
    cut = post(server, hello(max_tokens=1)).json()
    assert cut["stop_reason"] == "max_tokens" and cut["content"][0]["text"] == "OK"
    assert cut["usage"]["output_tokens"] == 1
    stopped = post(server, hello(stop_sequences=["simulated"])).json()
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop_sequence"] == "simulated"
    assert stopped["content"][0]["text"] == DEFAULT_TEXT[: DEFAULT_TEXT.index("simulated")]


def test_a_required_tool_is_called_with_schema_shaped_input(server, standin) -> None:
    body = post(server, hello(tools=[TOOL], tool_choice={"type": "any"})).json()
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    assert block["id"].startswith("toolu_") and block["input"] == {"city": "Paris", "days": 1}
    auto = post(server, hello(tools=[TOOL], tool_choice={"type": "auto"})).json()
    assert auto["stop_reason"] == "end_turn"


def test_tool_results_must_answer_the_previous_tool_use(server, standin) -> None:
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    turns = [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": [use]}]
    good = hello(tools=[TOOL], messages=[*turns, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 C"}]}])
    assert post(server, good).status_code == 200
    wrong_id = hello(tools=[TOOL], messages=[*turns, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "3 C"}]}])
    error = error_of(post(server, wrong_id))
    assert error["message"].startswith("messages.2.content.0: unexpected `tool_use_id`")
    unanswered = hello(tools=[TOOL], messages=[*turns, {"role": "user", "content": "and?"}])
    assert "without `tool_result` blocks" in error_of(post(server, unanswered))["message"]
    no_tools = hello(messages=good["messages"])
    assert "must define tools" in error_of(post(server, no_tools))["message"]


def test_prompt_caching_writes_then_reads_and_input_excludes_both(server, standin) -> None:
    long_text = "The ledger keeps every verdict of every gate. " * 20
    plain = hello(system=[{"type": "text", "text": long_text}])
    cached = hello(system=[{"type": "text", "text": long_text, "cache_control": {"type": "ephemeral"}}])
    full = post(server, plain).json()["usage"]["input_tokens"]
    write = post(server, cached).json()["usage"]
    read = post(server, cached).json()["usage"]
    prefix = count_tokens(long_text)
    assert write["cache_creation_input_tokens"] == prefix and write["cache_read_input_tokens"] == 0
    assert read["cache_read_input_tokens"] == prefix and read["cache_creation_input_tokens"] == 0
    for usage in (write, read):  # input_tokens excludes cache reads and writes
        assert usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"] == full
    # A second breakpoint further on: the cached prefix is read, the rest up to it written.
    extended = hello(system=cached["system"], messages=[
        {"role": "user", "content": [{"type": "text", "text": "More context. " * 40,
                                      "cache_control": {"type": "ephemeral"}}]}])
    both = post(server, extended).json()["usage"]
    assert both["cache_read_input_tokens"] == prefix and both["cache_creation_input_tokens"] > 0
    short = hello(system=[{"type": "text", "text": "Too short to cache.", "cache_control": {"type": "ephemeral"}}])
    assert post(server, short).json()["usage"]["cache_creation_input_tokens"] == 0


def test_scripted_usage_and_stop_reason_are_returned_exactly_then_derivation_resumes(server, standin) -> None:
    standin.script(ScriptedReply(text="Scripted.", stop_reason="refusal", usage=WORKED),
                   ScriptedReply(error=ScriptedError(status=529, message="Overloaded")))
    first = post(server, hello()).json()
    assert first["usage"] == WORKED.model_dump()
    assert first["stop_reason"] == "refusal" and first["content"][0]["text"] == "Scripted."
    overloaded = post(server, hello())
    assert overloaded.status_code == 529
    assert error_of(overloaded) == {"type": "overloaded_error", "message": "Overloaded"}
    assert post(server, hello()).json()["stop_reason"] == "end_turn"


def test_a_streamed_reply_follows_anthropics_event_sequence(server, standin) -> None:
    standin.script(ScriptedReply(usage=WORKED))
    with httpx.stream("POST", f"{server.base_url}/v1/messages", json=hello(stream=True),
                      headers=HEADERS, timeout=10) as response:
        lines = list(response.iter_lines())
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event:")]
    data = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert data[0]["message"]["usage"]["cache_read_input_tokens"] == 12
    text = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")
    assert text == DEFAULT_TEXT
    delta = next(d for d in data if d["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == 21


def test_always_error_fails_every_valid_call() -> None:
    failing = AnthropicStandin(KEY, always_error=ScriptedError(status=529, type="overloaded_error",
                                                               message="Overloaded"))
    with AnthropicStandinServer(failing) as running:
        response = post(running, hello())
        assert response.status_code == 529 and error_of(response)["type"] == "overloaded_error"
        assert post(running, hello(), {"anthropic-version": "2023-06-01"}).status_code == 401
