"""One BFCL request: messages and tools to the chat endpoint, the assistant message back.

Both the single-turn categories and the multi-turn loop ask through here, on the project's
model-call path (`evals.model_calls.chat`: bounded retries, a malformed reply or no answer is the
platform's fault). The message comes back as an OpenAI dict, ready to append to the conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
from pydantic import BaseModel

from evals.model_calls import RetryPolicy, chat, response_cost

Ask = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]


class AskSettings(BaseModel):
    """How every BFCL request is made (BFCL's own generation: temperature 0 by default)."""

    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int | None = None
    policy: RetryPolicy = RetryPolicy()


class Reply(BaseModel):
    """One request's outcome: the assistant message, or why the platform gave none."""

    message: dict[str, Any] | None = None
    fault: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


def assistant_dict(message: Any) -> dict[str, Any]:
    """The assistant message as an OpenAI dict; `tool_calls` only when there are some (an empty
    list is refused by OpenAI-style servers when the conversation is sent back)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.content}
    calls = message.tool_calls or []
    if calls:
        out["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}
            for call in calls
        ]
    return out


def request_reply(client: openai.OpenAI, model: str, messages: list[dict[str, Any]],
                  tools: list[dict[str, Any]], settings: AskSettings) -> Reply:
    """Ask once (with the policy's retries); tools are left out when there are none, as BFCL's
    OpenAI handler does."""
    params: dict[str, Any] = {"max_tokens": settings.max_tokens,
                              "temperature": settings.temperature, "seed": settings.seed}
    if tools:
        params["tools"] = tools
    outcome = chat(client, model, messages, policy=settings.policy, **params)
    if not outcome.ok:
        return Reply(fault=f"{outcome.error_kind}: {outcome.message}")
    value = outcome.value
    usage = getattr(value, "usage", None)
    return Reply(
        message=assistant_dict(value.choices[0].message),
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cost_usd=response_cost(outcome),
    )


def make_ask(client: openai.OpenAI, model: str, settings: AskSettings,
             replies: list[Reply] | None = None) -> Ask:
    """An `Ask` for the multi-turn loop: raises its PlatformFault when the platform gave no
    answer; every reply is appended to `replies` when given (token and cost accounting)."""
    from evals.bfcl.multi_turn import PlatformFault  # the loop's own fault type

    def ask(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        reply = request_reply(client, model, messages, tools, settings)
        if replies is not None:
            replies.append(reply)
        if reply.message is None:
            raise PlatformFault(reply.fault)
        return reply.message

    return ask
