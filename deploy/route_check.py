"""Before any gate runs: does the gateway list the alias and answer one token for it?"""

from __future__ import annotations

import time

import openai
from pydantic import BaseModel

from deploy.catalog import AliasEntry

PROBE_TEXT = "ping"
# One token needs far less than a generation: a stalled route fails in well under a minute
# (two attempts of PROBE_TIMEOUT_S), not after the openai client's 600 s default.
PROBE_TIMEOUT_S = 20.0


class RouteCheckError(RuntimeError):
    """The gateway does not route the alias; the message says which step failed."""


class RouteCheckResult(BaseModel):
    alias: str
    mode: str
    listed: bool
    answered: bool
    detail: str = ""
    latency_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.listed and self.answered

    def raise_for_failure(self) -> RouteCheckResult:
        if not self.ok:
            raise RouteCheckError(self.detail)
        return self


def _base_url(gateway_url: str) -> str:
    url = gateway_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "[key redacted]") if key else text


def _describe(exc: Exception, timeout: float | None = None) -> str:
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    text = f"{kind} {status}: {exc}" if status else f"{kind}: {exc}"
    if timeout is not None and isinstance(exc, openai.APITimeoutError):
        text += f" (no answer within the {timeout:g} s probe timeout)"
    return text


def route_check(
    gateway_url: str, key: str, entry: AliasEntry, *, timeout: float = PROBE_TIMEOUT_S
) -> RouteCheckResult:
    """List `/v1/models` with `key`, then one-token request by the alias's mode.

    Never raises for a routing problem: the result says what failed (`raise_for_failure()`
    turns it into RouteCheckError). The key never appears in the result. `timeout` bounds
    each of the (at most two) attempts of each request.
    """
    base = _base_url(gateway_url)
    client = openai.OpenAI(base_url=base, api_key=key, timeout=timeout, max_retries=1)
    result = RouteCheckResult(alias=entry.alias, mode=entry.mode, listed=False, answered=False)
    try:
        listed = [m.id for m in client.models.list()]
    except openai.OpenAIError as exc:
        result.detail = _scrub(f"gateway {base}: GET /models failed: {_describe(exc, timeout)}", key)
        return result
    if entry.alias not in listed:
        shown = ", ".join(sorted(listed)) or "nothing"
        result.detail = (f"gateway {base}: alias {entry.alias!r} is not in /v1/models for this key "
                         f"(listed: {shown})")
        return result
    result.listed = True
    started = time.perf_counter()
    try:
        if entry.mode == "embedding":
            reply = client.embeddings.create(model=entry.alias, input=[PROBE_TEXT])
            answered = bool(getattr(reply, "data", None) and reply.data[0].embedding)
            route = "/embeddings"
        elif entry.mode == "completion":
            reply = client.completions.create(model=entry.alias, prompt=PROBE_TEXT, max_tokens=1)
            answered = bool(getattr(reply, "choices", None))
            route = "/completions"
        else:
            reply = client.chat.completions.create(
                model=entry.alias, messages=[{"role": "user", "content": PROBE_TEXT}], max_tokens=1
            )
            answered = bool(getattr(reply, "choices", None))
            route = "/chat/completions"
    except (openai.OpenAIError, ValueError) as exc:  # ValueError: a 200 body that is not JSON
        result.detail = _scrub(
            f"gateway {base}: alias {entry.alias!r} is listed but a one-token {entry.mode} "
            f"request failed: {_describe(exc, timeout)}", key)
        return result
    result.latency_s = time.perf_counter() - started
    result.answered = answered
    result.detail = (f"gateway {base}: {entry.alias!r} answered POST {route}" if answered else
                     f"gateway {base}: {entry.alias!r} answered POST {route} with no choices/data")
    return result
