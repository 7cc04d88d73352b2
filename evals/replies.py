"""Is a reply a well-formed answer? One place for the body and stream rules every eval applies.

A reply that is not a well-formed answer is the platform's fault, never the model's: a body that
is not JSON or is cut off, an `error` object in a 200, no `choices` (or `data`), a choice without
its message; for a stream, an `error` event, or a stream that did not end properly (no
`finish_reason`, no `[DONE]`, no usage when it was asked for, or content that disagrees with the
usage). Those raise `MalformedReply`, which `evals.model_calls` retries and then reports as ERROR.
A null or empty content in a well-formed reply is the model's answer and passes these rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ReplyKind = Literal["chat", "completion", "embedding"]


class MalformedReply(Exception):
    """The server's reply is not a usable answer (a platform fault, not the model's)."""


def _clip(text: str, limit: int = 120) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(error: Any) -> str:
    """A short description of an in-band `error` object (its message and type when present)."""
    if isinstance(error, Mapping):
        message = error.get("message") or json.dumps(error)[:200]
        kind = error.get("type") or error.get("code")
        return _clip(f"{message} ({kind})" if kind else str(message), 200)
    return _clip(str(error), 200)


def body_problem(body: Any, kind: ReplyKind) -> str | None:
    """Why a parsed 200 body is not a well-formed `kind` answer (None when it is one)."""
    if not isinstance(body, Mapping):
        return f"the body is JSON {type(body).__name__}, not an object"
    if body.get("error") is not None:
        return f"a 200 carrying an error object: {error_text(body['error'])}"
    if kind == "embedding":
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return "the body has no `data`" if data is None else "the body's `data` is empty"
        if not all(isinstance(d, Mapping) and d.get("embedding") is not None for d in data):
            return "an item of `data` has no embedding"
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "the body has no `choices`" if choices is None else "the body's `choices` is empty"
    first = choices[0]
    if not isinstance(first, Mapping):
        return "the first choice is not an object"
    if kind == "chat" and not isinstance(first.get("message"), Mapping):
        return "the first choice has no message"
    if kind == "completion" and "text" not in first:
        return "the first choice has no text"
    return None


def parse_body(text: str | bytes, kind: ReplyKind) -> dict[str, Any]:
    """The JSON object of a 200 body that is a well-formed `kind` answer; else MalformedReply."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError as exc:
        shown = _clip(text, 80) if text.strip() else "an empty body"
        raise MalformedReply(f"the body is not JSON ({exc.msg} at {exc.pos}): {shown!r}") from None
    problem = body_problem(body, kind)
    if problem is not None:
        raise MalformedReply(problem)
    return body


# ---- streams -------------------------------------------------------------------------------


def iter_sse(lines: Iterable[str], *, deadline_s: float | None = None) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, stopping at `data: [DONE]`.

    Raises MalformedReply for an `error` event, a payload carrying `error`, a payload that is
    not a JSON object, and a stream running past `deadline_s` seconds (a trickling stall).
    Yields a `{"[DONE]": True}` marker last when the stream ended with `[DONE]`.
    """
    started = time.monotonic()
    event, data = "", []

    def dispatch() -> dict[str, Any] | None:
        text = "\n".join(data)
        if event == "error":
            raise MalformedReply(f"an SSE error event: {_clip(text, 200)}")
        if text.strip() == "[DONE]":
            return {"[DONE]": True}
        try:
            payload = json.loads(text)
        except ValueError:
            raise MalformedReply(f"a stream event is not JSON: {_clip(text, 80)!r}") from None
        if not isinstance(payload, dict):
            raise MalformedReply(f"a stream event is JSON {type(payload).__name__}, not an object")
        if payload.get("error") is not None:
            raise MalformedReply(f"a mid-stream error: {error_text(payload['error'])}")
        return payload

    for line in lines:
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise MalformedReply(f"the stream ran past its {deadline_s:g} s time limit")
        line = line.rstrip("\r")
        if not line:
            if data:
                payload = dispatch()
                if payload is not None:
                    yield payload
                    if "[DONE]" in payload:
                        return
            event, data = "", []
        elif line.startswith(":"):
            continue  # an SSE comment (keep-alive)
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:  # a last event without its blank line
        payload = dispatch()
        if payload is not None:
            yield payload


def _is_output(delta: Mapping[str, Any]) -> bool:
    return bool(delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"))


def is_usage_chunk(payload: Mapping[str, Any]) -> bool:
    """Is `payload` an end-of-stream usage chunk (`stream_options.include_usage`)?

    It carries a `usage` object and no output: OpenAI and vLLM send `choices: []`; LiteLLM
    (1.108.7, `CustomStreamWrapper`) sends `choices: [{"index": 0, "delta": {}}]`. A choice
    whose delta is empty (no content, tool call or reasoning fragment) and has no finish_reason
    is not a content delta, so both shapes count.
    """
    if not isinstance(payload.get("usage"), Mapping):
        return False
    choices = payload.get("choices")
    if not isinstance(choices, list):  # `choices` is required in every chunk, even this one
        return False
    for choice in choices:
        if not isinstance(choice, Mapping) or choice.get("finish_reason") or choice.get("text"):
            return False
        delta = choice.get("delta")
        if delta is not None and (not isinstance(delta, Mapping) or _is_output(delta)):
            return False
    return True


@dataclass
class StreamAudit:
    """Watches a stream's payloads; `check()` says whether it ended properly.

    A stream counts only with a finish_reason, `[DONE]`, usage when it was asked for, and
    output consistent with that usage: no more output deltas (content, tool-call or reasoning
    fragments) than completion tokens, and at least one when usage reports any. An engine may
    pack several tokens into one delta, so the count is a bound, not an equality.
    """

    include_usage: bool
    done: bool = False
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    output_deltas: int = 0
    payloads: int = 0
    problems: list[str] = field(default_factory=list)

    def observe(self, payload: Mapping[str, Any]) -> None:
        if payload.get("[DONE]"):
            self.done = True
            return
        self.payloads += 1
        if isinstance(payload.get("usage"), Mapping):
            self.usage = dict(payload["usage"])
        for choice in payload.get("choices") or []:
            if not isinstance(choice, Mapping):
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping) and _is_output(delta):
                self.output_deltas += 1
            elif choice.get("text"):  # a streamed /v1/completions chunk
                self.output_deltas += 1
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def problem(self) -> str | None:
        """Why the stream does not count (None when it ended properly)."""
        missing = []
        if self.finish_reason is None:
            missing.append("no finish_reason")
        if not self.done:
            missing.append("no [DONE]")
        if self.include_usage and self.usage is None:
            missing.append("no usage chunk though include_usage was asked")
        if missing:
            return f"the stream ended improperly after {self.payloads} chunk(s): {', '.join(missing)}"
        tokens = (self.usage or {}).get("completion_tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            if self.output_deltas > tokens:
                return (f"the stream carried {self.output_deltas} output deltas but its usage "
                        f"reports {tokens} completion tokens")
            if tokens > 0 and self.output_deltas == 0:
                return f"the stream's usage reports {tokens} completion tokens but it carried no output"
        return None

    def check(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise MalformedReply(problem)


def audited(payloads: Iterable[dict[str, Any]], audit: StreamAudit) -> Iterator[dict[str, Any]]:
    """The stream's chunks (without the [DONE] marker), each observed by `audit`; when the
    stream ends, `audit.check()` raises MalformedReply unless it ended properly."""
    for payload in payloads:
        audit.observe(payload)
        if not payload.get("[DONE]"):
            yield payload
    audit.check()
