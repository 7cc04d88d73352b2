"""One model reply in a mode-independent shape, from a completion or from assembled stream chunks."""

from __future__ import annotations

from collections.abc import Iterable

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from evals.replies import MalformedReply

__all__ = ["MalformedReply", "Reply", "ReplyCall", "assemble_stream", "reply_from_completion"]


class ReplyCall(BaseModel):
    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""


class Reply(BaseModel):
    content: str | None = None
    calls: list[ReplyCall] = []
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def reply_from_completion(completion: ChatCompletion) -> Reply:
    if not completion.choices:
        raise MalformedReply("the completion has no choices")
    choice = completion.choices[0]
    if choice.message is None:
        raise MalformedReply("the first choice has no message")
    calls = []
    for index, call in enumerate(choice.message.tool_calls or []):
        function = getattr(call, "function", None)  # custom (non-function) tool calls have none
        calls.append(
            ReplyCall(
                index=index,
                id=call.id,
                name=function.name if function else getattr(call, "type", "?"),
                arguments=function.arguments if function else "",
            )
        )
    usage = completion.usage
    return Reply(
        content=choice.message.content,
        calls=calls,
        finish_reason=choice.finish_reason,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )


def assemble_stream(chunks: Iterable[ChatCompletionChunk]) -> Reply:
    """Fold streamed deltas into one reply.

    A tool call arrives as `{index, id, type, function: {name}}` followed by argument
    fragments under the same index; fragments of different calls may interleave. The usage
    chunk (`choices: []`) may end the stream.
    """
    content: list[str] = []
    calls: dict[int, ReplyCall] = {}
    reply = Reply()
    saw_content = False
    for chunk in chunks:
        if chunk.usage is not None:
            reply.prompt_tokens = chunk.usage.prompt_tokens
            reply.completion_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.index != 0:  # n=1 is requested; ignore anything else
                continue
            if choice.finish_reason is not None:
                reply.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:  # a malformed chunk: the stream audit reports it
                continue
            if delta.content is not None:
                saw_content = True
                content.append(delta.content)
            for part in delta.tool_calls or []:
                call = calls.setdefault(part.index, ReplyCall(index=part.index))
                if part.id and not call.id:
                    call.id = part.id
                if part.function is not None:
                    if part.function.name and not call.name:
                        call.name = part.function.name
                    if part.function.arguments:
                        call.arguments += part.function.arguments
    text = "".join(content)
    # Non-streaming replies carry null content next to tool calls; mirror that so both modes agree.
    reply.content = text if (text or (saw_content and not calls)) else None
    reply.calls = [calls[i] for i in sorted(calls)]
    return reply
