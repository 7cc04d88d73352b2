"""The multi-step tool-loop driver: send tools, run the calls, feed results back, score the end."""

from __future__ import annotations

import json
from typing import Any

import openai
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from evals.model_calls import (
    DEFAULT_POLICY,
    RetryPolicy,
    WithHeaders,
    call_with_retries,
    map_bounded,
    no_retry,
    redact,
    request_timeout,
    response_cost,
    stream_payloads,
)
from evals.replies import StreamAudit, parse_body
from evals.seeds import resolve_seed
from evals.tool_loop._model import ScenarioResult, ToolCallRecord, ToolScenario
from evals.tool_loop._reply import Reply, assemble_stream, reply_from_completion

DEFAULT_SYSTEM = (
    "You are an autonomous agent. Use the provided tools when the task needs information you do "
    "not have; call independent tools in the same turn. Tool results are JSON. When you are done, "
    "reply with the final answer in plain text."
)


class CallProblem(ValueError):
    """A tool call the driver refuses to run: unknown tool or malformed arguments."""


def validate_call(scenario: ToolScenario, name: str, arguments: str) -> dict[str, Any]:
    """Parsed arguments of a valid call; raises CallProblem with the scoring reason otherwise."""
    tool = scenario.tool(name)
    if tool is None:
        raise CallProblem(f"unknown tool {name or '<empty name>'}")
    text = arguments.strip() or "{}"  # some servers send "" for a call without arguments
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CallProblem(f"malformed arguments for tool {name}: not JSON ({exc.msg} at {exc.pos})") from None
    # best_match: the most relevant error, the same one every time.
    first = best_match(Draft202012Validator(tool.parameters).iter_errors(parsed))
    if first is not None:
        where = "/".join(str(p) for p in first.path)
        raise CallProblem(
            f"malformed arguments for tool {name}: {first.message}" + (f" (at {where})" if where else "")
        )
    return parsed


class PlatformFailure(Exception):
    """The platform gave no usable answer after the retries (an ERROR, not a model FAIL)."""


def _streamed_reply(completions: Any, kwargs: dict[str, Any], deadline_s: float) -> WithHeaders:
    """One streamed turn, audited: a stream that did not end properly raises MalformedReply."""
    streaming = completions.with_streaming_response.create
    audit = StreamAudit(include_usage=True)
    with streaming(**kwargs, stream=True, stream_options={"include_usage": True}) as response:
        payloads = stream_payloads(response, audit, deadline_s=deadline_s)
        reply = assemble_stream(ChatCompletionChunk.construct(**p) for p in payloads)
        return WithHeaders(reply, {k.lower(): v for k, v in response.headers.items()})


def _ask(client: OpenAI, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
         *, stream: bool, max_tokens: int, temperature: float,
         policy: RetryPolicy | None, timeout_s: float | None = None,
         seed: int | None = None) -> tuple[Reply, float | None]:
    """One model turn with bounded retries, plus the gateway's cost header of the answer."""
    timeout = request_timeout(client, timeout_s, policy)
    completions = no_retry(client).chat.completions
    kwargs: dict[str, Any] = dict(
        model=model, messages=messages, tools=tools, tool_choice="auto",
        max_tokens=max_tokens, temperature=temperature, timeout=timeout, seed=resolve_seed(seed),
    )
    budget = (policy or DEFAULT_POLICY).total_s

    def once() -> WithHeaders:
        if stream:
            return _streamed_reply(completions, kwargs, budget)
        raw = completions.with_raw_response.create(**kwargs)
        body = parse_body(raw.http_response.content, "chat")  # MalformedReply: retried
        reply = reply_from_completion(ChatCompletion.construct(**body))
        return WithHeaders(reply, {k.lower(): v for k, v in raw.headers.items()})

    try:
        outcome = call_with_retries(once, policy=policy, timeout_s=timeout)
    except openai.APIError as exc:  # an openai error outside the retried kinds
        raise PlatformFailure(redact(f"{type(exc).__name__}: {exc}")) from exc
    if not outcome.ok:
        raise PlatformFailure(f"{outcome.message} (after {outcome.attempts} attempt(s))")
    return outcome.value, response_cost(outcome)


def _score_final(scenario: ToolScenario, result: ScenarioResult, reply: Reply, state: Any) -> None:
    result.completed = True
    result.answer = reply.content or ""
    problem = scenario.check(result.answer, state)
    result.answer_correct = problem is None
    n_calls = len(result.calls)
    if scenario.min_tool_calls and n_calls == 0:
        result.reason = "no tool call"
    elif n_calls < scenario.min_tool_calls:
        result.reason = f"only {n_calls} tool call(s); the task needs at least {scenario.min_tool_calls}"
    elif scenario.parallel and result.max_parallel < 2:
        result.reason = "no parallel tool calls (independent lookups were made one per step)"
    elif problem is not None:
        cut = " (output cut at max_tokens)" if reply.finish_reason == "length" else ""
        result.reason = f"wrong answer{cut}: {problem}"
    result.passed = result.reason is None


def run_scenario(
    client: OpenAI,
    model: str,
    scenario: ToolScenario,
    *,
    stream: bool = False,
    max_steps: int = 8,
    max_tokens: int = 512,
    temperature: float = 0.0,
    policy: RetryPolicy | None = None,
    timeout_s: float | None = None,
    seed: int | None = None,
) -> ScenarioResult:
    """Drive one scenario to a final answer or the step limit (a step is one model call).

    `timeout_s` bounds each request's attempts (None: the client's, at most 120 s); `policy`
    bounds the retries and their total time."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    result = ScenarioResult(scenario=scenario.name, stream=stream)
    state = scenario.make_state()
    tools = [tool.openai_tool() for tool in scenario.tools]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": scenario.system or DEFAULT_SYSTEM},
        {"role": "user", "content": scenario.task},
    ]
    for step in range(1, max_steps + 1):
        try:
            reply, cost = _ask(client, model, messages, tools, stream=stream,
                               max_tokens=max_tokens, temperature=temperature, policy=policy,
                               timeout_s=timeout_s, seed=seed)
        except PlatformFailure as exc:
            # The platform did not answer: not the model's fault, so an error and not a failure.
            result.platform_error = f"step {step}: {str(exc)[:500]}"
            result.reason = f"platform error at {result.platform_error}"
            return result
        result.steps = step
        result.costs.append(cost)
        result.prompt_tokens += reply.prompt_tokens
        result.completion_tokens += reply.completion_tokens
        if not reply.calls:
            _score_final(scenario, result, reply, state)
            return result
        result.max_parallel = max(result.max_parallel, len(reply.calls))
        if not _run_calls(scenario, result, reply, step, state, messages):
            return result
    result.reason = f"step limit {max_steps} reached"
    return result


def _run_calls(scenario: ToolScenario, result: ScenarioResult, reply: Reply, step: int,
               state: Any, messages: list[dict[str, Any]]) -> bool:
    """Validate every call of the reply, then execute them; False ends the run (reason set)."""
    records: list[tuple[ToolCallRecord, dict[str, Any] | None]] = []
    for call in reply.calls:
        call_id = call.id or f"call_{step}_{call.index}"  # a missing id must still pair the result
        record = ToolCallRecord(step=step, id=call_id, name=call.name, arguments=call.arguments, valid=True)
        try:
            args = validate_call(scenario, call.name, call.arguments)
        except CallProblem as exc:
            record.valid, record.problem, args = False, str(exc), None
        records.append((record, args))
        result.calls.append(record)
    invalid = [record for record, _ in records if not record.valid]
    if invalid:
        # No malformed call is allowed, so the run has failed; stop spending the budget.
        result.calls_valid = False
        result.reason = invalid[0].problem
        return False
    allowed = scenario.max_tool_calls
    if allowed is not None and len(result.calls) > allowed:
        names = ", ".join(record.name for record, _ in records)
        result.reason = f"unneeded tool call ({names}); the task needs at most {allowed}"
        return False
    messages.append({
        "role": "assistant",
        "content": reply.content,
        "tool_calls": [
            {"id": record.id, "type": "function",
             "function": {"name": record.name, "arguments": record.arguments}}
            for record, _ in records
        ],
    })
    for record, args in records:
        record.result, record.tool_error = scenario.execute(state, record.name, args or {})
        messages.append({"role": "tool", "tool_call_id": record.id, "content": record.result})
    return True


def run_tool_loops(
    client: OpenAI,
    model: str,
    scenarios: list[ToolScenario],
    *,
    stream: bool = False,
    max_steps: int = 8,
    max_tokens: int = 512,
    temperature: float = 0.0,
    policy: RetryPolicy | None = None,
    concurrency: int = 1,
    progress: bool = True,
    timeout_s: float | None = None,
    seed: int | None = None,
) -> list[ScenarioResult]:
    """Every scenario once, in catalog order, at most `concurrency` at a time."""

    def one(scenario: ToolScenario) -> ScenarioResult:
        return run_scenario(client, model, scenario, stream=stream, max_steps=max_steps,
                            max_tokens=max_tokens, temperature=temperature, policy=policy,
                            timeout_s=timeout_s, seed=seed)

    label = f"tool loops ({'stream' if stream else 'non-stream'})"
    return map_bounded(one, scenarios, concurrency, label, progress=progress,
                       passed=lambda result: result.passed)
