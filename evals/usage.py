"""Usage normalization checks for a provider behind an OpenAI facade (CONTRACTS.md §4).

The checks see only what a tenant sees: OpenAI-shaped replies through the gateway, their
headers, and (through a callable the caller supplies) the key's spend. They never need the
provider key, so they run unchanged against the embedded stand-ins and a real gateway with a
real provider. Each condition is provoked the way a real model can be made to show it:

- a short answer -> `finish_reason` "stop"; `max_tokens=1` -> "length"; a tool the model must
  call (`tool_choice: "required"`) -> "tool_calls", then the tool's result -> "stop";
- a streamed reply with `include_usage` -> a final usage chunk (`choices: []`, or LiteLLM's
  one empty-delta choice: `evals.replies.is_usage_chunk`);
- one long system prompt sent without, then twice with, a `cache_control` breakpoint: the
  uncached call fixes the prompt size P, and the cached calls must report P as the declared
  convention says (agentgateway: prompt + cached + cache writes = P; LiteLLM: prompt = P);
- every reply's `x-litellm-response-cost` and the key's spend delta equal what LiteLLM bills
  for the reported usage at the list prices (`Prices.cost`); no reply or header carries a
  provider key.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals import progress
from evals.checks import CheckResult
from evals.model_calls import (
    DEFAULT_BUDGET_S,
    DEFAULT_POLICY,
    DEFAULT_TIMEOUT_S,
    RetryPolicy,
    WithHeaders,
    call_with_retries,
    no_retry,
    request_timeout,
    stream_payloads,
)
from evals.replies import StreamAudit, is_usage_chunk, parse_body

Convention = Literal["agentgateway", "litellm"]
OPENAI_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
# Provider keys look like this (Anthropic); header names like these carry credentials.
_PROVIDER_KEY = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
_CREDENTIAL_HEADER = re.compile(r"(?i)(api[-_]?key|^authorization$|^proxy-authorization$)")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city. Always use this tool for weather questions.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}
SHORT_QUESTION = "Reply with the single word OK and nothing else."
LONG_QUESTION = "Count from one to fifty in words, separated by spaces."
TOOL_QUESTION = "What is the weather in Paris right now? Use the get_weather tool."


class UsageCheck(CheckResult):
    pass


class Prices(BaseModel):
    """List prices in USD per token (the catalog's); cache prices default to the input price."""

    model_config = ConfigDict(frozen=True)
    input_per_token: float = Field(ge=0)
    output_per_token: float = Field(ge=0)
    cache_read_per_token: float | None = Field(default=None, ge=0)  # cache_read_input_token_cost
    cache_write_per_token: float | None = Field(default=None, ge=0)  # cache_creation_input_token_cost

    def cost(self, usage: Mapping[str, Any]) -> float:
        """What LiteLLM 1.108.7 bills for `usage` (`x-litellm-response-cost`, key spend).

        LiteLLM's `generic_cost_per_token` (litellm/litellm_core_utils/llm_cost_calc/utils.py),
        for a deployment priced per token with no audio, image or tiered prices:

            read  = prompt_tokens_details.cached_tokens (LiteLLM's Usage moves Anthropic's
                    top-level cache_read_input_tokens there)
            write = prompt_tokens_details.cache_write_tokens, else .cache_creation_tokens
                    (else the top-level cache_creation_input_tokens)
            text  = prompt_tokens_details.text_tokens when given and read + write + text does
                    not exceed prompt_tokens, else max(prompt_tokens - read - write, 0)
            cost  = text x input + read x cache_read + write x cache_write
                    + completion_tokens x output

        cache_read and cache_write fall back to the input price when the model has none
        (`_get_token_base_cost`). LiteLLM assumes its own convention: prompt_tokens includes
        cached reads and writes. Under the agentgateway convention (cache outside
        prompt_tokens) the subtraction takes the cache out a second time, so the uncached
        prompt tokens are billed only beyond the cached ones: that is what LiteLLM bills, and
        what the platform's spend shows.
        """
        prompt = _count(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details")
        text = _count(details.get("text_tokens")) if isinstance(details, Mapping) else 0
        read, write = cache_fields(usage)
        if text == 0 or ((read or write) and text + read + write > prompt):
            text = max(prompt - read - write, 0)
        cache_read = self.input_per_token if self.cache_read_per_token is None else self.cache_read_per_token
        cache_write = (self.input_per_token if self.cache_write_per_token is None
                       else self.cache_write_per_token)
        return (text * self.input_per_token + read * cache_read + write * cache_write
                + _count(usage.get("completion_tokens")) * self.output_per_token)


def _count(value: Any) -> int:
    """A token count as a reply reports it; absent, null or not a count: 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class UsageSettings(BaseModel):
    """The gate's knobs (catalog `gates.usage` minus the budget); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")
    max_budget_usd: float | None = Field(default=None, gt=0)  # the key's budget, used by the session
    cache_prefix_words: int = Field(default=4000, ge=1)  # real providers cache only long prefixes
    short_max_tokens: int = Field(default=32, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    cache_token_tolerance: int = Field(default=0, ge=0)
    cost_rel_tolerance: float = Field(default=1e-6, ge=0)
    spend_timeout_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)  # per attempt of a probe
    request_budget_s: float = Field(default=DEFAULT_BUDGET_S, gt=0)  # per probe, over its retries


class ProbeReply(BaseModel):
    """One call's answer as the tenant saw it: body (or stream chunks), headers, raw text."""

    probe: str
    ok: bool
    error: str = ""
    status: int | None = None
    body: dict[str, Any] = Field(default_factory=dict)
    chunks: list[dict[str, Any]] = Field(default_factory=list)
    done: bool = False  # the stream ended with [DONE]
    streamed: bool = False  # asked with stream=True (answered or not)
    headers: dict[str, str] = Field(default_factory=dict)
    raw: str = Field(default="", exclude=True)

    @property
    def usage(self) -> dict[str, Any] | None:
        if self.chunks:
            last = self.chunks[-1]
            return last.get("usage") if isinstance(last.get("usage"), dict) else None
        usage = self.body.get("usage")
        return usage if isinstance(usage, dict) else None

    @property
    def choice(self) -> dict[str, Any]:
        choices = self.body.get("choices")
        return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


# ----- the OpenAI shape -----


class _Function(BaseModel):
    name: str = Field(min_length=1)
    arguments: str


class _ToolCall(BaseModel):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: _Function


class _Message(BaseModel):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    index: int
    message: _Message
    finish_reason: str


class _Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class ChatReply(BaseModel):
    """The fields a non-streamed OpenAI chat completion must have."""

    id: str = Field(min_length=1)
    object: Literal["chat.completion"]
    created: int
    model: str = Field(min_length=1)
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage


def shape_problems(body: Mapping[str, Any]) -> list[str]:
    """Why `body` is not an OpenAI chat completion (empty when it is one)."""
    try:
        reply = ChatReply.model_validate(body)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors()]
    return [f"choices.{c.index}.finish_reason: {c.finish_reason!r} is not an OpenAI finish reason"
            for c in reply.choices if c.finish_reason not in OPENAI_FINISH_REASONS]


def usage_problems(usage: Mapping[str, Any] | None) -> list[str]:
    """Why `usage` is not a consistent OpenAI usage object (empty when it is one)."""
    if not isinstance(usage, Mapping):
        return ["no usage object"]
    missing = [f for f in ("prompt_tokens", "completion_tokens", "total_tokens")
               if not isinstance(usage.get(f), int) or isinstance(usage.get(f), bool) or usage[f] < 0]
    if missing:
        return [f"usage.{f}: missing or not a non-negative integer" for f in missing]
    prompt, completion, total = usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]
    if total != prompt + completion:
        return [f"usage.total_tokens {total} != prompt_tokens {prompt} + completion_tokens {completion}"]
    return []


def cache_fields(usage: Mapping[str, Any]) -> tuple[int, int]:
    """(cached reads, cache writes) as the reply reports them; absent fields count 0."""
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    read = details.get("cached_tokens") or usage.get("cache_read_input_tokens")
    write = (details.get("cache_write_tokens") or details.get("cache_creation_tokens")
             or usage.get("cache_creation_input_tokens"))
    return _count(read), _count(write)


# ----- pure checks -----


def _check(name: str, problems: list[str], ok_reason: str, **details: Any) -> UsageCheck:
    if problems:
        return UsageCheck(name=name, outcome="fail", reason="; ".join(problems[:5]), details=details)
    return UsageCheck(name=name, outcome="pass", reason=ok_reason, details=details)


def _unanswered(name: str, replies: Sequence[ProbeReply]) -> UsageCheck | None:
    failed = [r for r in replies if not r.ok]
    if not failed:
        return None
    reasons = "; ".join(f"{r.probe}: {r.error}" for r in failed)
    return UsageCheck(name=name, outcome="error", reason=f"no answer: {reasons}",
                      details={"probes": [r.probe for r in failed]})


def check_openai_shape(replies: Sequence[ProbeReply]) -> UsageCheck:
    whole = [r for r in replies if not r.streamed]
    if (error := _unanswered("openai_shape", whole)) is not None:
        return error
    problems = [f"{r.probe}: {p}" for r in whole for p in shape_problems(r.body)]
    return _check("openai_shape", problems, f"{len(whole)} replies are OpenAI chat completions")


def check_usage_totals(replies: Sequence[ProbeReply]) -> UsageCheck:
    if (error := _unanswered("usage_totals", replies)) is not None:
        return error
    problems = [f"{r.probe}: {p}" for r in replies for p in usage_problems(r.usage)]
    return _check("usage_totals", problems,
                  f"{len(replies)} usages have prompt, completion and total = prompt + completion",
                  usages={r.probe: r.usage for r in replies})


def check_cache_convention(
    baseline: ProbeReply, cached: Sequence[ProbeReply], convention: Convention, tolerance: int = 0
) -> UsageCheck:
    """The cached calls report the uncached prompt size P as `convention` says they must."""
    name = "cache_convention"
    if (error := _unanswered(name, [baseline, *cached])) is not None:
        return error
    full = (baseline.usage or {}).get("prompt_tokens")
    if not isinstance(full, int) or full <= 0:  # totals are usage_totals' concern, not this one's
        return UsageCheck(name=name, outcome="fail", reason="the uncached call reported no prompt_tokens")
    seen = []
    problems = []
    for reply in cached:
        usage = reply.usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        read, write = cache_fields(usage)
        seen.append({"probe": reply.probe, "prompt_tokens": prompt, "cached_tokens": read,
                     "cache_write_tokens": write})
        if convention == "agentgateway":
            if abs(prompt + read + write - full) > tolerance:
                problems.append(
                    f"{reply.probe}: agentgateway usage needs prompt_tokens {prompt} + cached_tokens "
                    f"{read} + cache_write_tokens {write} = the uncached prompt {full}")
        elif abs(prompt - full) > tolerance:
            problems.append(f"{reply.probe}: LiteLLM usage needs prompt_tokens {prompt} = the uncached "
                            f"prompt {full} (cache reads and writes included)")
        if read > prompt and convention == "litellm":
            problems.append(f"{reply.probe}: cached_tokens {read} exceed prompt_tokens {prompt}")
    if not any(s["cached_tokens"] or s["cache_write_tokens"] for s in seen):
        problems.insert(0, f"no cache read or write was reported for a cache_control prompt of "
                           f"{full} tokens: the {convention} convention could not be verified")
    details = {"convention": convention, "uncached_prompt_tokens": full, "cached_calls": seen}
    return _check(name, problems, f"cached calls report the {full}-token prompt as {convention} does",
                  **details)


def check_finish_reason(name: str, reply: ProbeReply, expected: str, *, max_tokens: int | None = None,
                        tool: str | None = None) -> UsageCheck:
    if (error := _unanswered(name, [reply])) is not None:
        return error
    choice = reply.choice
    got = choice.get("finish_reason")
    problems = [] if got == expected else [f"finish_reason {got!r}, expected {expected!r}"]
    usage = reply.usage or {}
    if max_tokens is not None and int(usage.get("completion_tokens") or 0) > max_tokens:
        problems.append(f"completion_tokens {usage.get('completion_tokens')} exceed max_tokens {max_tokens}")
    if tool is not None:
        calls = (choice.get("message") or {}).get("tool_calls") or []
        if not calls:
            problems.append("no tool_calls in the message")
        else:
            function = calls[0].get("function") or {}
            if function.get("name") != tool:
                problems.append(f"tool call names {function.get('name')!r}, expected {tool!r}")
            try:
                if not isinstance(json.loads(function.get("arguments") or ""), dict):
                    problems.append("tool call arguments are not a JSON object")
            except ValueError:
                problems.append(f"tool call arguments are not JSON: {function.get('arguments')!r:.80}")
    return _check(name, problems, f"finish_reason {expected!r} as provoked", finish_reason=got)


def check_tool_result(reply: ProbeReply) -> UsageCheck:
    name = "tool_result_round_trip"
    if (error := _unanswered(name, [reply])) is not None:
        return error
    choice = reply.choice
    text = (choice.get("message") or {}).get("content")
    problems = []
    if choice.get("finish_reason") != "stop":
        problems.append(f"finish_reason {choice.get('finish_reason')!r} after the tool result, expected 'stop'")
    if not isinstance(text, str) or not text.strip():
        problems.append("no answer text after the tool result")
    return _check(name, problems, "the tool result was accepted and answered")


def check_stream_usage(reply: ProbeReply) -> UsageCheck:
    name = "stream_usage_chunk"
    if (error := _unanswered(name, [reply])) is not None:
        return error
    problems = []
    if not reply.chunks:
        return UsageCheck(name=name, outcome="fail", reason="the stream carried no chunks")
    last = reply.chunks[-1]
    if not is_usage_chunk(last):
        problems.append("the last chunk is not a usage chunk (usage, with choices [] or only "
                        "empty deltas)")
    else:
        problems += usage_problems(last["usage"])
    text = "".join(((c.get("delta") or {}).get("content") or "") for chunk in reply.chunks
                   for c in chunk.get("choices") or [])
    finishes = [c.get("finish_reason") for chunk in reply.chunks for c in chunk.get("choices") or []
                if c.get("finish_reason")]
    if not text.strip():
        problems.append("the stream carried no text")
    if finishes != ["stop"]:
        problems.append(f"finish reasons in the stream {finishes}, expected ['stop']")
    if not reply.done:
        problems.append("the stream did not end with [DONE]")
    return _check(name, problems, "the stream ends with a usage chunk", chunks=len(reply.chunks),
                  usage=last.get("usage"))


def check_response_cost(replies: Sequence[ProbeReply], prices: Prices, rel_tol: float = 1e-6) -> UsageCheck:
    """Each non-streamed reply's x-litellm-response-cost = what LiteLLM bills for its usage."""
    name = "response_cost"
    whole = [r for r in replies if not r.streamed]
    if (error := _unanswered(name, whole)) is not None:
        return error
    problems, costs, wrong = [], {}, []
    for reply in whole:
        expected = prices.cost(reply.usage or {})
        header = reply.headers.get("x-litellm-response-cost")
        try:
            got = float(header) if header not in (None, "", "None") else None
        except ValueError:
            got = None
        costs[reply.probe] = {"header": header, "expected": expected, "usage": reply.usage}
        if got is None:
            problems.append(f"{reply.probe}: no numeric x-litellm-response-cost header ({header!r})")
        elif not math.isclose(got, expected, rel_tol=rel_tol, abs_tol=1e-12):
            wrong.append(f"{reply.probe} {got:.6g} != {expected:.6g}")
    if wrong:  # one line for all: the costs and each usage are in the details
        problems.append("x-litellm-response-cost is not LiteLLM's cost of the reply's usage at "
                        f"list prices: {', '.join(wrong)}")
    return _check(name, problems, f"{len(whole)} response costs equal LiteLLM's cost of their usage "
                  "at list prices", costs=costs)


def expected_spend(replies: Sequence[ProbeReply], prices: Prices) -> float:
    return sum(prices.cost(r.usage or {}) for r in replies if r.ok)


def check_spend_delta(delta: float, expected: float, rel_tol: float = 1e-6) -> UsageCheck:
    problems = [] if math.isclose(delta, expected, rel_tol=rel_tol, abs_tol=1e-12) else [
        f"the key's spend grew by {delta:.10g} USD, LiteLLM's cost of the replies' usage at list "
        f"prices is {expected:.10g} USD"]
    return _check("key_spend_delta", problems,
                  f"the key's spend grew by {expected:.6g} USD = the replies' cost at list prices",
                  spend_delta=delta, expected=expected)


def leaks(replies: Sequence[ProbeReply], secrets: Sequence[str] = ()) -> list[str]:
    """Where a provider key (or one of `secrets`) shows in a reply body or header."""
    found = []
    for reply in replies:
        places = [("body", reply.raw)] + [(f"header {k}", f"{k}: {v}") for k, v in reply.headers.items()]
        for where, text in places:
            if _PROVIDER_KEY.search(text) or any(s and s in text for s in secrets):
                found.append(f"{reply.probe}: {where} carries a provider key")
        found += [f"{reply.probe}: header {k} is a credential header"
                  for k in reply.headers if _CREDENTIAL_HEADER.search(k)]
    return found


def check_no_provider_key(replies: Sequence[ProbeReply], secrets: Sequence[str] = ()) -> UsageCheck:
    answered = [r for r in replies if r.ok]
    return _check("no_provider_key", leaks(answered, secrets),
                  f"no provider key in {len(answered)} replies and their headers")


# ----- the calls -----


def cache_prefix(words: int) -> str:
    """Deterministic reference text of about `words` words, long enough for prompt caching."""
    sentence = ("Clause {n}: the platform records verdict {n} in the append-only ledger, and the "
                "catalog status is derived from what was proven. ")
    out, count, n = [], 0, 1
    while count < words:
        text = sentence.format(n=n)
        out.append(text)
        count += len(text.split())
        n += 1
    return "".join(out)


def _raw_chat(client: openai.OpenAI, probe: str, params: dict[str, Any], _deadline_s: float) -> WithHeaders:
    raw = no_retry(client).chat.completions.with_raw_response.create(**params)
    text = raw.text
    body = parse_body(text, "chat")  # not a well-formed answer: MalformedReply, retried, then ERROR
    headers = {k.lower(): v for k, v in raw.headers.items()}
    return WithHeaders(ProbeReply(probe=probe, ok=True, status=raw.status_code, body=body,
                                  headers=headers, raw=text), headers)


def _stream_chat(client: openai.OpenAI, probe: str, params: dict[str, Any], deadline_s: float) -> WithHeaders:
    lines: list[str] = []
    include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
    audit = StreamAudit(include_usage=include_usage)
    with no_retry(client).chat.completions.with_streaming_response.create(**params) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        chunks = list(stream_payloads(response, audit, deadline_s=deadline_s, keep_lines=lines))
    reply = ProbeReply(probe=probe, ok=True, status=response.status_code, chunks=chunks,
                       done=audit.done, streamed=True, headers=headers, raw="\n".join(lines))
    return WithHeaders(reply, headers)


def call_probe(client: openai.OpenAI, probe: str, policy: RetryPolicy | None = None,
               timeout_s: float | None = None, **params: Any) -> ProbeReply:
    """One chat call (streamed when `stream=True`) with the suite's bounded retries.

    `timeout_s` bounds each attempt (None: the client's own, at most 120 s)."""
    run = _stream_chat if params.get("stream") else _raw_chat
    timeout = request_timeout(client, timeout_s, policy)
    params = {**params, "timeout": timeout}
    budget = (policy or DEFAULT_POLICY).total_s
    outcome = call_with_retries(lambda: run(client, probe, params, budget), policy=policy,
                                timeout_s=timeout)
    if not outcome.ok:
        return ProbeReply(probe=probe, ok=False, status=outcome.status, streamed=bool(params.get("stream")),
                          error=f"{outcome.error_kind} {outcome.status or ''} {outcome.message}".strip())
    return outcome.value


class UsageResult(BaseModel):
    convention: Convention
    checks: list[UsageCheck]
    replies: list[ProbeReply]
    expected_spend_usd: float
    served_models: list[str]
    duration_s: float

    @property
    def passed(self) -> int:
        return sum(c.outcome == "pass" for c in self.checks)


SpendReader = Callable[[float], float]


def run_usage_checks(
    client: openai.OpenAI,
    model: str,
    *,
    convention: Convention,
    prices: Prices,
    settings: UsageSettings | None = None,
    key_spend: SpendReader | None = None,
    secrets: Sequence[str] = (),
    policy: RetryPolicy | None = None,
) -> UsageResult:
    """Provoke each condition through `client` and check the normalized replies.

    `key_spend(at_least)` returns the key's spend, waiting (bounded) until it reaches
    `at_least` (gateways write spend in batches); without it the spend delta is not checked.
    `secrets` are extra strings that must never show (tests that know the provider key).
    """
    settings = settings or UsageSettings()
    policy = policy or RetryPolicy(total_s=settings.request_budget_s)
    started = time.perf_counter()
    before = key_spend(0.0) if key_spend is not None else None
    base = {"model": model, "temperature": settings.temperature}

    count = progress.counter("evaluating", 8, "usage probes", passed=lambda reply: reply.ok)

    def call(probe: str, **params: Any) -> ProbeReply:
        return count(call_probe(client, probe, policy, settings.request_timeout_s, **base, **params))

    short = call("short", messages=[{"role": "user", "content": SHORT_QUESTION}],
                 max_tokens=settings.short_max_tokens)
    length = call("length", messages=[{"role": "user", "content": LONG_QUESTION}], max_tokens=1)
    asked = [{"role": "user", "content": TOOL_QUESTION}]
    tool = call("tool", messages=asked, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=256)
    replies = [short, length, tool]
    tool_calls = ((tool.choice.get("message") or {}).get("tool_calls") or []) if tool.ok else []
    if tool_calls:
        answered = [*asked, {"role": "assistant", "content": None, "tool_calls": tool_calls[:1]},
                    {"role": "tool", "tool_call_id": tool_calls[0].get("id"), "content": "18 degrees C, sunny"}]
        result = call("tool_result", messages=answered, tools=[WEATHER_TOOL], tool_choice="none",
                      max_tokens=settings.short_max_tokens)
    else:
        result = ProbeReply(probe="tool_result", ok=False, error="skipped: the tool probe returned no tool call")
    stream = call("stream", messages=[{"role": "user", "content": SHORT_QUESTION}], stream=True,
                  stream_options={"include_usage": True}, max_tokens=settings.short_max_tokens)
    prefix = cache_prefix(settings.cache_prefix_words)

    def system(cached: bool) -> dict[str, Any]:
        part: dict[str, Any] = {"type": "text", "text": "Answer in one word.\n\n" + prefix}
        if cached:
            part["cache_control"] = {"type": "ephemeral"}
        return {"role": "system", "content": [part]}

    question = {"role": "user", "content": SHORT_QUESTION}
    baseline = call("cache_baseline", messages=[system(False), question], max_tokens=settings.short_max_tokens)
    cached = [call(probe, messages=[system(True), question], max_tokens=settings.short_max_tokens)
              for probe in ("cache_write", "cache_read")]
    if result.ok:
        replies.append(result)
    replies += [stream, baseline, *cached]

    checks = [
        check_openai_shape(replies),
        check_usage_totals(replies),
        check_cache_convention(baseline, cached, convention, settings.cache_token_tolerance),
        check_finish_reason("stop_reason_stop", short, "stop"),
        check_finish_reason("stop_reason_length", length, "length", max_tokens=1),
        check_finish_reason("stop_reason_tool_calls", tool, "tool_calls", tool="get_weather"),
        check_tool_result(result),
        check_stream_usage(stream),
        check_response_cost(replies, prices, settings.cost_rel_tolerance),
    ]
    expected = expected_spend(replies, prices)
    if key_spend is not None and before is not None:
        tolerance = expected * settings.cost_rel_tolerance + 1e-12
        after = key_spend(before + expected - tolerance)
        checks.append(check_spend_delta(after - before, expected, settings.cost_rel_tolerance))
    checks.append(check_no_provider_key(replies, secrets))
    served = sorted({str(r.body.get("model") or (r.chunks[0].get("model") if r.chunks else ""))
                     for r in replies if r.ok} - {""})
    return UsageResult(convention=convention, checks=checks, replies=replies, expected_spend_usd=expected,
                       served_models=served, duration_s=time.perf_counter() - started)
