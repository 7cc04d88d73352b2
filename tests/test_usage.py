"""Usage normalization: the agentgateway stand-in's translation and the usage checks.

The checks run as the gate runs them: through the gateway double with a virtual key, to the
agentgateway stand-in, to the Anthropic stand-in (scripted where a test needs exact numbers).
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest

from deploy.catalog import load_catalog
from deploy.litellm_admin import LiteLLMAdmin, VirtualKey
from evals.model_calls import RetryPolicy
from evals.usage import (
    Prices,
    ProbeReply,
    UsageSettings,
    call_probe,
    check_cache_convention,
    check_response_cost,
    check_stream_usage,
    check_usage_totals,
    run_usage_checks,
)
from fixtures.platform.agentgateway_translation import (
    DEFAULT_MAX_TOKENS,
    SimulatedAnthropicRoute,
    TranslationError,
    openai_usage,
    to_messages_request,
)
from fixtures.platform.anthropic_standin import ScriptedError, ScriptedReply, ScriptedUsage
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer
from gates.kinds.usage.judge import judge_usage

MASTER = "sk-master-" + secrets.token_hex(8)
ENTRY = load_catalog().get("claude-haiku")
PRICES = Prices(input_per_token=ENTRY.price.input_per_token, output_per_token=ENTRY.price.output_per_token)
WORKED = ScriptedUsage(input_tokens=15, cache_creation_input_tokens=13, cache_read_input_tokens=12,
                       output_tokens=21)
UNCACHED = ScriptedUsage(input_tokens=40, output_tokens=21)  # the same prompt, nothing cached
ONCE = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)
SETTINGS = UsageSettings(cache_prefix_words=1000)  # the stand-in caches from 1024 of its tokens
ALL_CHECKS = {"openai_shape", "usage_totals", "cache_convention", "stop_reason_stop",
              "stop_reason_length", "stop_reason_tool_calls", "tool_result_round_trip",
              "stream_usage_chunk", "response_cost", "key_spend_delta", "no_provider_key"}
_names = itertools.count(1)


@dataclass
class Stack:
    route: SimulatedAnthropicRoute
    gateway: GatewayDouble
    alias: str
    key: VirtualKey
    client: openai.OpenAI

    def spend(self, at_least: float = 0.0) -> float:
        return self.gateway.spend_of(self.key.value)  # in-process: spend is written at once

    def run(self, **kwargs) -> dict[str, str]:
        result = run_usage_checks(
            self.client, self.alias, convention=kwargs.pop("convention", ENTRY.usage_convention),
            prices=PRICES, settings=SETTINGS, key_spend=self.spend, policy=ONCE,
            secrets=[self.route.translation._key.get_secret_value()], **kwargs)
        assert {c.name for c in result.checks} == ALL_CHECKS
        self.result = result
        return {c.name: c.outcome for c in result.checks}


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[GatewayDouble, str]]:
    double = GatewayDouble(MASTER)
    with ThreadedServer(double) as server:
        yield double, server.url


@contextlib.contextmanager
def stack(gateway, *, convention: str = "agentgateway", faults=(), prices: Prices = PRICES) -> Iterator[Stack]:
    """An egress behind the gateway double, routed as the local deployer routes it, with a key."""
    double, url = gateway
    alias = f"claude-haiku-{next(_names)}"
    with SimulatedAnthropicRoute(convention=convention, faults=faults) as route:
        model_id = double.register_model(
            alias, {"model": f"openai/{ENTRY.served_model_name}", "api_base": route.base_url},
            {"mode": "chat", "input_cost_per_token": prices.input_per_token,
             "output_cost_per_token": prices.output_per_token})
        with LiteLLMAdmin(url, MASTER) as admin:
            key = admin.generate_key(models=[alias], max_budget=1.0)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key.value, max_retries=0, timeout=30)
        try:
            yield Stack(route, double, alias, key, client)
        finally:
            double.remove_model(model_id)


@pytest.fixture(scope="module")
def agentgateway(gateway) -> Iterator[Stack]:
    with stack(gateway, convention="agentgateway") as running:
        yield running


@pytest.fixture
def egress(agentgateway: Stack) -> Stack:
    agentgateway.route.anthropic.clear()
    return agentgateway


# ----- translation, pure -----


def test_the_worked_example_in_each_convention() -> None:
    upstream = WORKED.model_dump()
    agw = openai_usage(upstream, "agentgateway")
    assert (agw["prompt_tokens"], agw["completion_tokens"], agw["total_tokens"]) == (15, 21, 36)
    assert agw["prompt_tokens_details"] == {"cached_tokens": 12, "cache_write_tokens": 13}
    lite = openai_usage(upstream, "litellm")
    assert (lite["prompt_tokens"], lite["completion_tokens"], lite["total_tokens"]) == (40, 21, 61)
    assert lite["prompt_tokens_details"] == {"cached_tokens": 12}
    with pytest.raises(ValueError, match="unknown usage convention 'openai'"):
        openai_usage(upstream, "openai")


def test_a_chat_request_becomes_a_messages_request() -> None:
    call = {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    body = {
        "model": "claude-haiku-4-5", "stop": "END", "temperature": 0.2, "parallel_tool_calls": False,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [call, {**call, "id": "toolu_b"}]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "3 C"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": "18 C"},
            {"role": "developer", "content": [{"type": "text", "text": "Use Celsius.",
                                               "cache_control": {"type": "ephemeral"}}]},
        ],
    }
    request = to_messages_request(body)
    assert request["system"] == [{"type": "text", "text": "Be brief."},
                                 {"type": "text", "text": "Use Celsius.", "cache_control": {"type": "ephemeral"}}]
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][1]["content"][1] == {"type": "tool_use", "id": "toolu_a", "name": "get_weather",
                                                    "input": {"city": "Oslo"}}
    assert request["messages"][2]["content"] == [  # both results in one user turn
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "3 C"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18 C"}]
    assert request["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert request["stop_sequences"] == ["END"] and request["temperature"] == 0.2
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert request["tools"] == [{"name": "get_weather", "description": "", "input_schema": {"type": "object"}}]
    assert to_messages_request({**body, "max_completion_tokens": 7, "max_tokens": 9})["max_tokens"] == 7
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert to_messages_request({**body, "tool_choice": named})["tool_choice"]["name"] == "get_weather"


@pytest.mark.parametrize(("messages", "where"), [
    ([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}],
     "messages[1].tool_calls[0].function.arguments"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0][0]"),
    ([{"role": "tool", "content": "r"}], "messages[0].tool_call_id"),
    ([], "messages"),
])
def test_untranslatable_requests_name_the_field(messages, where) -> None:
    with pytest.raises(TranslationError) as caught:
        to_messages_request({"model": "m", "messages": messages})
    assert caught.value.message.startswith(where)


# ----- translation over HTTP, through the gateway -----


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_stop_reasons_are_mapped(egress: Stack, stop_reason: str, finish: str) -> None:
    egress.route.anthropic.script(ScriptedReply(stop_reason=stop_reason))
    reply = egress.client.chat.completions.create(model=egress.alias, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].finish_reason == finish


def test_the_egress_sends_key_version_system_and_default_max_tokens(egress: Stack) -> None:
    egress.client.chat.completions.create(
        model=egress.alias, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    sent = egress.route.anthropic.requests[-1]
    assert sent.had_api_key and sent.anthropic_version == "2023-06-01"
    assert sent.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent.body["max_tokens"] == 4096 and sent.body["model"] == ENTRY.served_model_name
    # The gateway holds a plain OpenAI route: the provider key is not among its parameters.
    key = egress.route.translation._key.get_secret_value()
    assert key not in repr(egress.route) and key not in str(egress.gateway.models)
    assert all("api_key" not in m["litellm_params"] for m in egress.gateway.models)


def test_an_upstream_error_keeps_its_status_in_openais_shape(egress: Stack) -> None:
    egress.route.anthropic.script(ScriptedReply(error=ScriptedError(status=529, message="Overloaded")))
    with pytest.raises(openai.APIStatusError) as caught:
        egress.client.chat.completions.create(model=egress.alias, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529 and "Overloaded" in str(caught.value)


# ----- the checks on CONTRACTS.md's worked example -----


def _cache_probes(running: Stack) -> tuple[ProbeReply, list[ProbeReply]]:
    running.route.anthropic.clear()
    running.route.anthropic.script(ScriptedReply(usage=UNCACHED), ScriptedReply(usage=WORKED),
                                   ScriptedReply(usage=WORKED))
    messages = [{"role": "user", "content": "hi"}]
    baseline = call_probe(running.client, "cache_baseline", ONCE, model=running.alias, messages=messages)
    cached = [call_probe(running.client, p, ONCE, model=running.alias, messages=messages)
              for p in ("cache_write", "cache_read")]
    return baseline, cached


@pytest.mark.parametrize("declared", ["agentgateway", "litellm"])
@pytest.mark.parametrize("served", ["agentgateway", "litellm"])
def test_the_cache_check_accepts_the_declared_convention_and_rejects_the_other(gateway, served, declared) -> None:
    with stack(gateway, convention=served) as running:
        baseline, cached = _cache_probes(running)
    usage = cached[0].usage
    assert (usage["prompt_tokens"], usage["total_tokens"]) == ((15, 36) if served == "agentgateway" else (40, 61))
    check = check_cache_convention(baseline, cached, declared)
    assert check.outcome == ("pass" if served == declared else "fail"), check.reason
    if served != declared:
        assert f"{declared if declared == 'agentgateway' else 'LiteLLM'} usage needs" in check.reason
    assert check_usage_totals([baseline, *cached]).outcome == "pass"


def test_a_total_that_is_not_the_sum_is_rejected(gateway) -> None:
    with stack(gateway, faults=["total_not_sum"]) as running:
        baseline, cached = _cache_probes(running)
    check = check_usage_totals([baseline, *cached])
    assert check.outcome == "fail"
    assert "cache_write: usage.total_tokens 49 != prompt_tokens 15 + completion_tokens 21" in check.reason


def test_no_cache_activity_cannot_pass_the_cache_check() -> None:
    def reply(probe: str, prompt: int) -> ProbeReply:
        usage = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}
        return ProbeReply(probe=probe, ok=True, body={"usage": usage})

    check = check_cache_convention(reply("cache_baseline", 40), [reply("cache_write", 40)], "litellm")
    assert check.outcome == "fail" and "could not be verified" in check.reason


# ----- what LiteLLM bills, pure -----

HAIKU = Prices(input_per_token=1e-6, output_per_token=5e-6)  # the catalog's claude-haiku prices


def _usage(prompt: int, completion: int, cached: int = 0, written: int = 0) -> dict:
    details = {"cached_tokens": cached, "cache_write_tokens": written, "cache_creation_tokens": written}
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "prompt_tokens_details": details}


# x-litellm-response-cost as LiteLLM 1.108.7 sent it in the conformance tier, for the usage it
# reported (claude-haiku behind the agentgateway stand-in: prompt_tokens excludes the cache).
@pytest.mark.parametrize(("usage", "header"), [
    (_usage(7009, 15), 0.007084),  # nothing cached: list price x tokens
    (_usage(4, 15, written=7005), 0.00708),  # a cache write: 4 - 7005 < 0, so the 4 are free
    (_usage(4, 15, cached=7005), 0.00708),  # a cache read, billed at the input price
    (_usage(12, 15, cached=4971), 0.005046),
    (_usage(4, 15), 7.9e-05),
    ({"prompt_tokens": 12, "completion_tokens": 15, "total_tokens": 27}, 8.7e-05),  # no details
])
def test_the_expected_cost_is_what_litellm_bills(usage: dict, header: float) -> None:
    assert HAIKU.cost(usage) == pytest.approx(header, rel=1e-9)


def test_litellms_own_convention_bills_each_prompt_token_once() -> None:
    # prompt_tokens includes the cache (LiteLLM's convention): 7009 = 4 + 7005.
    assert HAIKU.cost(_usage(7009, 15, cached=7005)) == pytest.approx(7009e-6 + 75e-6)
    cheap = HAIKU.model_copy(update={"cache_read_per_token": 1e-7, "cache_write_per_token": 1.25e-6})
    assert cheap.cost(_usage(7009, 15, cached=7005)) == pytest.approx(4e-6 + 7005e-7 + 75e-6)
    assert cheap.cost(_usage(7009, 15, written=7005)) == pytest.approx(4e-6 + 7005 * 1.25e-6 + 75e-6)
    # text_tokens given and consistent: LiteLLM bills them, not prompt - cache.
    usage = _usage(7009, 15, cached=7000) | {"prompt_tokens_details": {"cached_tokens": 7000, "text_tokens": 5}}
    assert HAIKU.cost(usage) == pytest.approx(7005e-6 + 75e-6)


def _priced_reply(probe: str, usage: dict, header: float) -> ProbeReply:
    return ProbeReply(probe=probe, ok=True, status=200, body={"usage": usage},
                      headers={"x-litellm-response-cost": repr(header)})


def test_a_gateway_that_bills_the_cache_wrongly_fails_the_cost_check() -> None:
    cached = _usage(12, 15, cached=4971)
    right = check_response_cost([_priced_reply("cache_read", cached, 0.005046)], HAIKU)
    assert right.outcome == "pass", right.reason
    for wrong in (8.7e-05,  # list price x (prompt + completion): the cache not billed at all
                  0.005046 * 2,  # the cache billed twice
                  0.005046 + 12e-6):  # the 12 uncached prompt tokens billed on top
        check = check_response_cost([_priced_reply("cache_read", cached, wrong)], HAIKU)
        assert check.outcome == "fail" and "cache_read" in check.reason, wrong
        assert check.details["costs"]["cache_read"]["expected"] == pytest.approx(0.005046)


def _stream(*chunks: dict) -> ProbeReply:
    return ProbeReply(probe="stream", ok=True, status=200, chunks=list(chunks), done=True, streamed=True)


TEXT = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "OK"}}]}
STOP = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}


@pytest.mark.parametrize(("last", "ok"), [
    ({"choices": [], "usage": USAGE}, True),  # OpenAI's and vLLM's usage chunk
    ({"choices": [{"index": 0, "delta": {}}], "usage": USAGE | {"cost": 8.7e-05}}, True),  # LiteLLM's
    ({"choices": [{"index": 0, "delta": {"content": "more"}}], "usage": USAGE}, False),  # output
    ({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}, False),
    ({"usage": USAGE}, False),  # every chunk carries `choices`
    ({"choices": []}, False),  # no usage
])
def test_the_stream_check_accepts_both_usage_chunk_shapes(last: dict, ok: bool) -> None:
    check = check_stream_usage(_stream(TEXT, STOP, last))
    assert (check.outcome == "pass") is ok, check.reason
    if not ok:
        assert "the last chunk is not a usage chunk" in check.reason or "finish reasons" in check.reason


# ----- the whole gate's checks -----


@pytest.mark.parametrize("convention", ["agentgateway", "litellm"])
def test_a_correct_egress_passes_every_check(gateway, convention: str) -> None:
    with stack(gateway, convention=convention) as running:
        outcomes = running.run(convention=convention)
        sent = running.route.anthropic.requests
    assert set(outcomes.values()) == {"pass"}, [c for c in running.result.checks if not c.passed]
    assert judge_usage(running.result.checks, convention).verdict == "pass"
    cache = next(c for c in running.result.checks if c.name == "cache_convention")
    assert [c["cached_tokens"] > 0 for c in cache.details["cached_calls"]] == [False, True]
    assert running.result.expected_spend_usd > 0
    # The tool round trip reached Anthropic as a tool_result block answering the tool_use.
    answered = next(r.body for r in sent if any(
        isinstance(m["content"], list) and m["content"][0].get("type") == "tool_result" for m in r.body["messages"]))
    assert answered["messages"][-1]["content"][0]["tool_use_id"] == answered["messages"][-2]["content"][0]["id"]


def test_spend_at_a_wrong_price_is_rejected(gateway) -> None:
    doubled = Prices(input_per_token=PRICES.input_per_token * 2, output_per_token=PRICES.output_per_token)
    with stack(gateway, prices=doubled) as running:
        outcomes = running.run()
    assert {name for name, outcome in outcomes.items() if outcome != "pass"} == {"response_cost", "key_spend_delta"}
    verdict = judge_usage(running.result.checks, "agentgateway")
    assert verdict.verdict == "fail" and "x-litellm-response-cost" in verdict.reason
    assert "the key's spend grew by" in verdict.reason


@pytest.mark.parametrize(("fault", "rejected_by"), [
    ("leak_provider_key", {"no_provider_key"}),
    ("total_not_sum", {"usage_totals", "stream_usage_chunk"}),
    ("raw_stop_reasons", {"openai_shape", "stop_reason_stop", "stop_reason_length", "stop_reason_tool_calls",
                          "tool_result_round_trip", "stream_usage_chunk"}),
])
def test_each_egress_fault_is_rejected_by_its_check(gateway, fault: str, rejected_by: set[str]) -> None:
    with stack(gateway, faults=[fault]) as running:
        outcomes = running.run()
    assert {name for name, outcome in outcomes.items() if outcome != "pass"} == rejected_by
    assert set(outcomes.values()) <= {"pass", "fail"}  # wrong answers, not platform errors


def test_a_stream_without_its_usage_chunk_is_an_errored_request(gateway) -> None:
    # A stream asked with include_usage that ends without usage did not end properly (issue 21,
    # item 3): the request errs (after the retries), so the checks reading it are errors, not
    # failures, and the gate's verdict is ERROR. The non-streamed checks are untouched.
    with stack(gateway, faults=["no_stream_usage"]) as running:
        outcomes = running.run()
    assert {name for name, outcome in outcomes.items() if outcome != "pass"} == {
        "usage_totals", "stream_usage_chunk"}
    assert {outcomes["usage_totals"], outcomes["stream_usage_chunk"]} == {"error"}
    stream_check = next(c for c in running.result.checks if c.name == "stream_usage_chunk")
    assert "no usage chunk though include_usage was asked" in stream_check.reason
    assert judge_usage(running.result.checks, "agentgateway").verdict == "error"


def test_the_declared_convention_mismatch_fails_only_the_cache_check(gateway) -> None:
    with stack(gateway, convention="litellm") as running:
        outcomes = running.run(convention="agentgateway")
    assert {name for name, outcome in outcomes.items() if outcome != "pass"} == {"cache_convention"}


def test_an_unanswered_probe_is_an_error_not_a_failure(gateway) -> None:
    with stack(gateway) as running:
        running.route.anthropic.script(ScriptedReply(error=ScriptedError(status=529, message="Overloaded")))
        outcomes = running.run()
    assert outcomes["stop_reason_stop"] == "error" and outcomes["openai_shape"] == "error"
    assert outcomes["key_spend_delta"] == "pass"  # the refused call cost nothing
    verdict = judge_usage(running.result.checks, "agentgateway")
    assert verdict.verdict == "error" and "short: http_5xx 529" in verdict.reason
