"""Model calls over an OpenAI client: bounded retries, FAIL/ERROR split, bounded concurrency.

Every eval calls models through here so that a gate can tell a wrong answer (the call
succeeded, the content is wrong: FAIL) from a platform that did not answer (timeouts,
connection errors, 5xx or 429 after bounded retries, other 4xx at once, and a 200 that is not a
well-formed answer after bounded retries, see `evals.replies`: ERROR).

Every request has a per-attempt timeout and every call a total time budget over its attempts:
a stalled backend ends as an ERROR naming the timeout, in bounded time.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import openai
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from evals.progress import Phase
from evals.progress import counter as progress_counter
from evals.replies import MalformedReply, ReplyKind, StreamAudit, audited, iter_sse, parse_body

T = TypeVar("T")
R = TypeVar("R")

ErrorKind = Literal["timeout", "connection", "http_5xx", "http_429", "http_4xx", "malformed"]

# Documented defaults (catalog keys `request_timeout_s` and `request_budget_s` override them per
# gate): one attempt of a generation may take this long before it counts as a stall...
DEFAULT_TIMEOUT_S = 120.0
# ...and one call, over all its attempts and back-off waits, stops retrying after this long.
DEFAULT_BUDGET_S = 300.0

# Bearer tokens and OpenAI/LiteLLM style keys; redacted defensively from every message we keep.
_SECRET_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-.]{3,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=]{8,}"),
)
# Error types a gateway returns with 429 that no retry can fix (CONTRACTS.md §1: budgets).
_NON_RETRYABLE_TYPES = frozenset({"budget_exceeded"})


def redact(text: str) -> str:
    """`text` with anything shaped like a key replaced by a marker."""
    text = _SECRET_PATTERNS[0].sub("sk-***", text)
    return _SECRET_PATTERNS[1].sub(r"\1***", text)


class RetryPolicy(BaseModel):
    """Bounded exponential backoff: waits initial_s, initial_s*multiplier, ... capped at max_s."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=4, ge=1, le=20)
    initial_s: float = Field(default=0.5, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_s: float = Field(default=8.0, ge=0)
    # No new attempt starts after this many seconds (tenacity's stop_after_delay).
    total_s: float = Field(default=DEFAULT_BUDGET_S, gt=0)
    # Each attempt's timeout; None: the client's own, capped at DEFAULT_TIMEOUT_S.
    timeout_s: float | None = Field(default=None, gt=0)
    # A server's Retry-After (on 429/503) is honoured, but never beyond max_s.
    honour_retry_after: bool = True

    @classmethod
    def from_gate(cls, config: Mapping[str, Any] | Any, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  budget_s: float = DEFAULT_BUDGET_S) -> RetryPolicy:
        """The policy a gate's catalog block asks for: `request_timeout_s` per attempt and
        `request_budget_s` per call over its retries (the given defaults when absent).

        `config` is a mapping or any object with those attributes (the catalog's typed block).
        """
        def read(name: str, default: float) -> float:
            if isinstance(config, Mapping):
                return float(config.get(name, default))
            return float(getattr(config, name, default))

        return cls(timeout_s=read("request_timeout_s", timeout_s),
                   total_s=read("request_budget_s", budget_s))

    def wait_s(self, attempt: int, exc: BaseException | None) -> float:
        backoff = min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))
        if self.honour_retry_after and isinstance(exc, openai.APIStatusError):
            after = _retry_after_s(exc)
            if after is not None:
                return min(self.max_s, max(backoff, after))
        return backoff


DEFAULT_POLICY = RetryPolicy()


class CallOutcome(BaseModel):
    """One model call after retries: `ok` with a `value`, or a platform error of `error_kind`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ok: bool
    value: Any = Field(default=None, exclude=True)  # the parsed response; not serialized
    error_kind: ErrorKind | None = None
    status: int | None = None  # HTTP status of the last attempt, when there was one
    error_type: str | None = None  # the body's error.type (e.g. "budget_exceeded"), when given
    message: str = ""
    attempts: int = 0
    latency_s: float = 0.0  # wall time over all attempts and waits
    headers: dict[str, str] = Field(default_factory=dict)  # response headers of the answer

    @property
    def is_platform_error(self) -> bool:
        return not self.ok

    def without_value(self) -> CallOutcome:
        return self.model_copy(update={"value": None})


class _Errors:
    """Classification of the exceptions the openai client raises."""

    @staticmethod
    def kind(exc: BaseException) -> tuple[ErrorKind, int | None]:
        if isinstance(exc, MalformedReply):
            return "malformed", 200
        if isinstance(exc, openai.APITimeoutError):  # subclass of APIConnectionError: test first
            return "timeout", None
        if isinstance(exc, openai.APIConnectionError):
            return "connection", None
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 429:
                return "http_429", status
            if status >= 500:
                return "http_5xx", status
            return "http_4xx", status
        raise TypeError(f"not a platform error: {type(exc).__name__}")

    @staticmethod
    def error_type(exc: BaseException) -> str | None:
        body = getattr(exc, "body", None)
        if isinstance(body, Mapping):
            inner = body.get("error", body)
            if isinstance(inner, Mapping) and inner.get("type") is not None:
                return str(inner["type"])
        return None

    @staticmethod
    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, MalformedReply):  # a glitch of the platform: worth another attempt
            return True
        if not isinstance(exc, openai.APIConnectionError | openai.APIStatusError):
            return False
        kind, _ = _Errors.kind(exc)
        if kind == "http_4xx":
            return False
        return not (kind == "http_429" and _Errors.error_type(exc) in _NON_RETRYABLE_TYPES)


def _retry_after_s(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


PLATFORM_ERRORS = (openai.APIConnectionError, openai.APIStatusError, MalformedReply)

# A broken stream raises the HTTP library's own errors while iterating (openai wraps only those of
# the request). Recent openai releases build on httpx2 rather than httpx: catch whichever it uses.
HTTP_LIB = sys.modules[openai.DefaultHttpxClient.__mro__[1].__module__.partition(".")[0]]
HTTP_ERRORS: tuple[type[Exception], ...] = tuple({httpx.HTTPError, HTTP_LIB.HTTPError})


def stream_payloads(
    response: Any, audit: StreamAudit, *, deadline_s: float | None = None,
    keep_lines: list[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The JSON chunks of an openai streaming response (`with_streaming_response`), audited by
    `evals.replies` (MalformedReply when the stream did not end properly); a body that breaks
    off raises APIConnectionError, retried like a lost connection. `keep_lines` collects the
    raw lines read."""

    def lines() -> Iterator[str]:
        for line in response.iter_lines():
            if keep_lines is not None:
                keep_lines.append(line)
            yield line

    try:
        yield from audited(iter_sse(lines(), deadline_s=deadline_s), audit)
    except HTTP_ERRORS as exc:
        if isinstance(exc, httpx.TimeoutException | HTTP_LIB.TimeoutException):  # a stall mid-stream
            raise openai.APITimeoutError(request=response.http_request) from exc
        raise openai.APIConnectionError(
            message=f"the stream broke off: {exc}", request=response.http_request
        ) from exc


@dataclass(frozen=True)
class WithHeaders:
    """A value returned together with its response headers (lower-case names)."""

    value: Any
    headers: Mapping[str, str]


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float | None = None,
) -> CallOutcome:
    """Run `fn` (one request) with bounded retries; platform errors become a failed outcome.

    `fn` returns the value, or `WithHeaders(value, headers)` to keep the response headers.
    Retries stop after `policy.attempts` attempts or `policy.total_s` seconds, whichever
    comes first. `timeout_s` (the per-attempt timeout `fn` uses) is named in a timeout's
    message. Exceptions other than the openai client's connection/status errors and
    `MalformedReply` are bugs of the caller and propagate.
    """
    policy = policy or DEFAULT_POLICY
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait_s(state.attempt_number, exc)

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_s),
        wait=wait,
        retry=retry_if_exception(_Errors.retryable),
        sleep=sleep,
        reraise=True,
    )
    started = time.perf_counter()
    try:
        result = retrying(attempt)
    except PLATFORM_ERRORS as exc:
        kind, status = _Errors.kind(exc)
        elapsed = time.perf_counter() - started
        message = f"{type(exc).__name__}: {exc}"
        if kind == "timeout":
            limit = f"the {timeout_s:g} s request timeout" if timeout_s else "the request timeout"
            message += f" (no answer within {limit}; {attempts} attempt(s) in {elapsed:.1f} s)"
        return CallOutcome(
            ok=False, error_kind=kind, status=status, error_type=_Errors.error_type(exc),
            message=redact(message), attempts=attempts, latency_s=elapsed,
        )
    value, headers = (result.value, result.headers) if isinstance(result, WithHeaders) else (result, {})
    return CallOutcome(
        ok=True, value=value, status=200, attempts=attempts,
        latency_s=time.perf_counter() - started, headers=dict(headers),
    )


# One no-retry copy per client: tenacity owns retries, the client must not add its own.
_no_retry_clients: weakref.WeakKeyDictionary[openai.OpenAI, openai.OpenAI] = (
    weakref.WeakKeyDictionary()
)
_no_retry_lock = threading.Lock()


def no_retry(client: openai.OpenAI) -> openai.OpenAI:
    """`client` itself when it never retries, else a cached copy with max_retries=0."""
    if client.max_retries == 0:
        return client
    with _no_retry_lock:
        copy = _no_retry_clients.get(client)
        if copy is None:
            copy = _no_retry_clients[client] = client.with_options(max_retries=0)
        return copy


def make_client(base_url: str, api_key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> openai.OpenAI:
    """An OpenAI client for a `/v1` base URL whose retries are left to this module."""
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)


def request_timeout(client: openai.OpenAI, timeout_s: float | None,
                    policy: RetryPolicy | None = None) -> float:
    """The per-attempt timeout of a call: `timeout_s` when given, else the policy's, else the
    client's own read timeout capped at DEFAULT_TIMEOUT_S (the openai client's 600 s would hold
    a gate for long)."""
    if timeout_s is None and policy is not None:
        timeout_s = policy.timeout_s
    if timeout_s is not None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        return float(timeout_s)
    own = client.timeout
    seconds = getattr(own, "read", own)  # an HTTP library's Timeout, or plain seconds
    return min(float(seconds), DEFAULT_TIMEOUT_S) if isinstance(seconds, int | float) else DEFAULT_TIMEOUT_S


def _raw(create: Callable[..., Any], kind: ReplyKind, cls: type, **kwargs: Any) -> WithHeaders:
    """One request; a 200 that is not a well-formed `kind` answer raises MalformedReply."""
    raw = create(**kwargs)
    body = parse_body(raw.http_response.content, kind)
    value = raw.parse()
    if not isinstance(value, cls):  # a JSON answer served under another content type
        value = cls.construct(**body)
    return WithHeaders(value, {k.lower(): v for k, v in raw.headers.items()})


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def chat(
    client: openai.OpenAI,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    policy: RetryPolicy | None = None,
    extra_headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    **params: Any,
) -> CallOutcome:
    """A non-streamed chat completion; `value` is the ChatCompletion, `headers` its headers.

    `timeout_s` bounds each attempt (None: see `request_timeout`)."""
    create = no_retry(client).chat.completions.with_raw_response.create
    kwargs = _drop_none({"model": model, "messages": list(messages), "extra_headers": extra_headers,
                         "timeout": (timeout := request_timeout(client, timeout_s, policy)), **params})
    return call_with_retries(lambda: _raw(create, "chat", ChatCompletion, **kwargs), policy=policy,
                             timeout_s=timeout)


def completion(
    client: openai.OpenAI,
    model: str,
    prompt: str,
    *,
    policy: RetryPolicy | None = None,
    extra_headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    **params: Any,
) -> CallOutcome:
    """A non-streamed `/v1/completions` call (FIM prompts go here, formatted by the caller)."""
    create = no_retry(client).completions.with_raw_response.create
    kwargs = _drop_none({"model": model, "prompt": prompt, "extra_headers": extra_headers,
                         "timeout": (timeout := request_timeout(client, timeout_s, policy)), **params})
    return call_with_retries(lambda: _raw(create, "completion", Completion, **kwargs), policy=policy,
                             timeout_s=timeout)


def embeddings(
    client: openai.OpenAI,
    model: str,
    inputs: str | Sequence[str],
    *,
    policy: RetryPolicy | None = None,
    extra_headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    **params: Any,
) -> CallOutcome:
    """An `/v1/embeddings` call; `value` is the CreateEmbeddingResponse."""
    create = no_retry(client).embeddings.with_raw_response.create
    payload = inputs if isinstance(inputs, str) else list(inputs)
    kwargs = _drop_none({"model": model, "input": payload, "extra_headers": extra_headers,
                         "timeout": (timeout := request_timeout(client, timeout_s, policy)), **params})
    return call_with_retries(lambda: _raw(create, "embedding", CreateEmbeddingResponse, **kwargs),
                             policy=policy, timeout_s=timeout)


def chat_text(outcome: CallOutcome) -> str | None:
    """The first choice's text of a successful chat outcome (None when absent)."""
    if not outcome.ok or not outcome.value or not outcome.value.choices:
        return None
    return outcome.value.choices[0].message.content


def response_cost(outcome: CallOutcome) -> float | None:
    """The gateway's `x-litellm-response-cost` header as a float, when present and numeric."""
    value = outcome.headers.get("x-litellm-response-cost")
    try:
        return float(value) if value not in (None, "", "None") else None
    except ValueError:
        return None


def _progress_enabled(requested: bool, console: Console) -> bool:
    return requested and console.is_terminal


def map_bounded(
    fn: Callable[[T], R],
    items: Iterable[T],
    concurrency: int = 4,
    progress_label: str | None = None,
    *,
    progress: bool = True,
    phase: Phase = "evaluating",
    passed: Callable[[R], bool] | None = None,
) -> list[R]:
    """`[fn(x) for x in items]` on at most `concurrency` threads, results in input order.

    A rich progress bar shows when `progress` is set, a label is given and stderr is a
    terminal. Each finished item is also reported as a progress event of `phase` (see
    `evals.progress`), counted as a pass when `passed(result)`. The first exception raised by
    `fn` cancels the pending items and propagates.
    """
    items = list(items)
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    results: list[Any] = [None] * len(items)
    console = Console(stderr=True)
    show = progress_label is not None and _progress_enabled(progress, console)
    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not show, transient=False,
        ) as bar,
        ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(items)))) as pool,
    ):
        task = bar.add_task(progress_label or "", total=len(items))
        count = progress_counter(phase, len(items), progress_label or "", passed=passed)
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}

        def settle(done: set) -> None:
            for future in done:
                results[futures[future]] = count(future.result())  # raises the worker's exception
                bar.advance(task)

        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                settle(done)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results
