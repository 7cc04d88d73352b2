"""The measuring engine: one streamed chat request timed chunk by chunk, and a bounded-concurrency
runner over a fixed dispatch order with a rich progress bar.

Retries are off on purpose: a retried request would hide the error from the error rate and add its
back-off to the latency. Errors are platform errors (no answer, a 4xx/5xx, a broken stream).

Three details keep the harness out of what it measures:
- The clock of a request starts when its headers start going onto an open connection (the HTTP
  core's `send_request_headers.started` trace event), not when `create()` is called: the openai
  client spends about a millisecond building the request and the pool may wait for a connection,
  which is the harness's time, not the platform's.
- A chunk's time is when the transport read the bytes that completed it, not when the openai
  client hands it over parsed (about 0.5 ms later, more on a busy machine).
  Both ends err only one way: the start is before the platform can have the request and each
  read is after the platform sent, so a measured latency is never below the platform's own.
- Connections are kept alive across requests. The openai client closes a stream at `data: [DONE]`,
  before the HTTP body's last chunk has been read, and an HTTP client drops a connection whose
  body was not read to its end: every request would open a new TCP connection. The measuring
  transport reads the rest of the body (bounded) when a stream is closed, so the connection goes
  back to the pool.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
from pydantic import BaseModel, ConfigDict, Field

from evals.latency._models import LatencyPrompt, RequestRow
from evals.model_calls import HTTP_ERRORS as _HTTP_ERRORS
from evals.model_calls import HTTP_LIB as _HTTP_LIB
from evals.model_calls import map_bounded, redact, stream_payloads
from evals.replies import MalformedReply, StreamAudit

# Per worker thread: when its current request was sent and when its latest bytes were read.
_clock = threading.local()
_SENT_EVENTS = ("http11.send_request_headers.started", "http2.send_request_headers.started")
_DRAIN_LIMIT_BYTES = 64 * 1024  # after [DONE] only the chunked-body terminator is left


def _trace(event: str, _info: dict) -> None:
    if event in _SENT_EVENTS:
        _clock.sent_at = time.perf_counter()


class _DrainOnClose(_HTTP_LIB.SyncByteStream):
    """A response body that stamps each read and, when closed early, first reads what is left
    (up to a bound), so the connection is complete and goes back to the pool. A longer rest is
    dropped with its connection."""

    def __init__(self, inner: Any):
        self._inner = inner
        self._read_to_end = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            _clock.read_at = time.perf_counter()
            yield chunk
        self._read_to_end = True

    def close(self) -> None:
        left = _DRAIN_LIMIT_BYTES
        try:
            # A body read to its end must not be read again: that would wait for the next reply.
            if not self._read_to_end:
                for chunk in self._inner:
                    left -= len(chunk)
                    if left < 0:
                        break
        except _HTTP_ERRORS:
            pass  # the stream already ended for the caller; a broken tail changes nothing
        finally:
            self._inner.close()


class _MeasuringTransport(_HTTP_LIB.BaseTransport):
    """The default HTTP transport plus the send-time trace and drain-on-close."""

    def __init__(self, **options: Any):
        self._inner = _HTTP_LIB.HTTPTransport(**options)

    def handle_request(self, request: Any) -> Any:
        request.extensions = {**request.extensions, "trace": _trace}
        response = self._inner.handle_request(request)
        response.stream = _DrainOnClose(response.stream)
        return response

    def close(self) -> None:
        self._inner.close()


def new_run_id() -> str:
    return f"lat-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Endpoint(BaseModel):
    """A named OpenAI-compatible endpoint and the model name it serves the benchmark under."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    label: str = Field(min_length=1)
    client: Any = Field(repr=False, exclude=True)  # an openai.OpenAI
    model: str = Field(min_length=1)

    def measuring_client(self, timeout_s: float, connections: int = 1) -> openai.OpenAI:
        """A copy of the client (same base URL, key, headers) with its own HTTP client that marks
        when each request goes out and keeps up to `connections` connections alive. Close it with
        `.close()`. Transport settings of the caller's own HTTP client (proxy, TLS) are not
        carried over."""
        limits = _HTTP_LIB.Limits(max_connections=None, max_keepalive_connections=max(1, connections))
        http = openai.DefaultHttpxClient(transport=_MeasuringTransport(limits=limits), timeout=timeout_s)
        return self.client.with_options(max_retries=0, timeout=timeout_s, http_client=http)


class StreamSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(gt=0)
    temperature: float = 0.0
    timeout_s: float = Field(default=60.0, gt=0)  # per read: a silent backend is a stall
    # A stream still trickling after this long is a stall too (keep-alives defeat timeout_s).
    stream_deadline_s: float = Field(default=300.0, gt=0)
    extra_body: dict[str, Any] | None = None  # e.g. {"ignore_eos": True} for fixed-length vLLM replies


class Job(BaseModel):
    index: int
    endpoint: Endpoint
    prompt: LatencyPrompt


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """`Type [status]: message`, short, with anything key-like redacted; a timeout names its limit."""
    status = getattr(exc, "status_code", None)
    message = str(exc).replace("\n", " ")
    if timeout_s is not None and isinstance(exc, openai.APITimeoutError | _HTTP_LIB.TimeoutException
                                            | httpx.TimeoutException):
        message += f" (no bytes within the {timeout_s:g} s request timeout)"
    message = redact(message)
    if len(message) > 200:
        message = message[:197] + "..."
    where = f" [{status}]" if status is not None else ""
    return f"{type(exc).__name__}{where}: {message}"


def measure(client: openai.OpenAI, model: str, prompt: LatencyPrompt, settings: StreamSettings) -> dict:
    """Time one streamed request; returns the measured fields of a RequestRow.

    The stream counts only if it ended properly (`evals.replies.StreamAudit`: a finish_reason,
    `[DONE]`, the usage asked for, content consistent with it); otherwise the row is an error.
    """
    first = last = end = None
    gaps: list[float] = []
    chunks = 0
    audit = StreamAudit(include_usage=True)
    _clock.sent_at = _clock.read_at = None
    start = time.perf_counter()
    try:
        with client.chat.completions.with_streaming_response.create(
            model=model,
            messages=[{"role": "user", "content": prompt.text}],
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=settings.extra_body,
        ) as response:
            for chunk in stream_payloads(response, audit, deadline_s=settings.stream_deadline_s):
                # The transport's read time; the clock itself under a stand-in transport.
                now = end = _clock.read_at or time.perf_counter()
                has_content = any(
                    isinstance(choice, dict) and (choice.get("delta") or {}).get("content")
                    for choice in chunk.get("choices") or []
                )
                if has_content:  # the role chunk (empty content) is not a token
                    if first is None:
                        first = now
                    else:
                        gaps.append((now - last) * 1000)
                    last = now
                    chunks += 1
        # E2E ends at the last chunk (the usage chunk when asked for), as vLLM's own benchmark
        # counts it; draining the connection for reuse after [DONE] is not the platform's time.
        if end is None:
            raise MalformedReply("the stream ended without a single chunk")
    except (openai.OpenAIError, *_HTTP_ERRORS, OSError, MalformedReply) as exc:
        return {"e2e_ms": None, "error": describe_error(exc, settings.timeout_s)}
    start = _clock.sent_at or start  # the trace does not run under a stand-in transport
    usage = audit.usage or {}
    fields = {
        "e2e_ms": round((end - start) * 1000, 3),
        "itl_ms": [round(g, 3) for g in gaps],
        "content_chunks": chunks,
        "finish_reason": audit.finish_reason,
        "output_tokens": usage.get("completion_tokens"),
        "prompt_tokens": usage.get("prompt_tokens"),
    }
    if first is None:
        fields["error"] = "EmptyStream: the stream ended without a content token"
    else:
        fields["ttft_ms"] = round((first - start) * 1000, 3)
    return fields


def warm_up(endpoints: list[Endpoint], prompts: list[LatencyPrompt], count: int, settings: StreamSettings) -> None:
    """`count` unrecorded requests per endpoint, one at a time (connections, caches, graphs)."""
    clients = [endpoint.measuring_client(settings.timeout_s) for endpoint in endpoints]
    try:
        for k in range(count):
            for endpoint, client in zip(endpoints, clients, strict=True):
                measure(client, endpoint.model, prompts[k % len(prompts)], settings)
    finally:
        for client in clients:
            client.close()


def run_jobs(
    jobs: list[Job],
    *,
    run_id: str,
    concurrency: int,
    settings: StreamSettings,
    progress: bool = True,
    description: str = "latency",
) -> tuple[list[RequestRow], float]:
    """Dispatch `jobs` in their order with at most `concurrency` in flight (the shared bounded
    pool of `evals.model_calls`, with its progress bar). Returns the rows in dispatch order and
    the wall time in seconds."""
    clients = {}
    for job in jobs:
        if job.endpoint.label not in clients:
            clients[job.endpoint.label] = job.endpoint.measuring_client(settings.timeout_s, concurrency)
    run_start = time.perf_counter()

    def one(job: Job) -> RequestRow:
        started = time.perf_counter()
        fields = measure(clients[job.endpoint.label], job.endpoint.model, job.prompt, settings)
        return RequestRow(
            run_id=run_id, index=job.index, endpoint=job.endpoint.label, concurrency=concurrency,
            prompt_id=job.prompt.id, start_ms=round((started - run_start) * 1000, 3), **fields,
        )

    try:
        rows = map_bounded(one, jobs, concurrency, f"{description} (concurrency {concurrency})",
                           progress=progress)
    finally:
        for client in clients.values():
            client.close()
    return rows, time.perf_counter() - run_start
