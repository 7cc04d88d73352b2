"""The model-call layer: retries, the answer/platform-error split, bounded concurrency;
and the reference backends it is tested against."""

from __future__ import annotations

import threading
import time

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evals.model_calls import (
    CallOutcome,
    RetryPolicy,
    chat,
    chat_text,
    completion,
    make_client,
    map_bounded,
    redact,
    response_cost,
)
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_backends import (
    ScriptedBackend,
    erroring_backend,
    fixed_reply,
    zero_latency,
)

FAST = RetryPolicy(attempts=3, initial_s=0.0, max_s=0.0)
HELLO = [{"role": "user", "content": "hello"}]
KEY = "sk-test-0123456789abcdef"


def client_for(backend: ScriptedBackend, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=backend.base_url, api_key=KEY, max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def ok_backend():
    with ScriptedBackend(zero_latency, model="reference-ok",
                         response_headers={"x-litellm-response-cost": "0.00025"}) as backend:
        yield backend


# ---- answers and platform errors ---------------------------------------------------------

def test_answer_is_ok_with_value_and_headers(ok_backend: ScriptedBackend) -> None:
    outcome = chat(client_for(ok_backend), "reference-ok", HELLO, policy=FAST, max_tokens=8)
    assert outcome.ok and outcome.error_kind is None and outcome.status == 200
    assert outcome.attempts == 1 and outcome.latency_s > 0
    assert chat_text(outcome) == "ok"
    assert outcome.value.model == "reference-ok"
    assert outcome.value.usage.total_tokens == outcome.value.usage.prompt_tokens + 1
    assert response_cost(outcome) == pytest.approx(0.00025)
    assert "value" not in outcome.model_dump()  # records serialize without the raw response


def test_extra_headers_reach_the_backend(ok_backend: ScriptedBackend) -> None:
    chat(client_for(ok_backend), "reference-ok", HELLO, policy=FAST,
         extra_headers={"x-gate-run": "run-7"})
    assert ok_backend.received_headers[-1]["x-gate-run"] == "run-7"
    assert "authorization" not in ok_backend.received_headers[-1]


@pytest.mark.parametrize(
    ("failure", "kind", "status"),
    [("http_500", "http_5xx", 500), ("http_429", "http_429", 429),
     ("drop_connection", "connection", None)],
)
def test_retryable_errors_are_retried_then_reported(failure, kind, status) -> None:
    with erroring_backend(failure) as backend:
        outcome = chat(client_for(backend), "m", HELLO, policy=FAST)
    assert not outcome.ok and outcome.is_platform_error
    assert outcome.error_kind == kind and outcome.status == status
    assert outcome.attempts == FAST.attempts == backend.requests


def test_transient_errors_recover(ok_backend: ScriptedBackend) -> None:
    with ScriptedBackend(fixed_reply("fine"), failure="http_429", fail_times=2) as backend:
        outcome = chat(client_for(backend), "m", HELLO, policy=FAST)
    assert outcome.ok and outcome.attempts == 3 and backend.requests == 3
    assert chat_text(outcome) == "fine"


def test_client_retries_are_disabled_so_attempts_stay_bounded() -> None:
    with erroring_backend("http_500") as backend:
        client = openai.OpenAI(base_url=backend.base_url, api_key=KEY, max_retries=5)
        outcome = chat(client, "m", HELLO, policy=FAST)
    assert client.max_retries == 5  # the caller's client is left as it was
    assert outcome.attempts == 3 and backend.requests == 3


def test_other_4xx_is_not_retried(ok_backend: ScriptedBackend) -> None:
    before = ok_backend.requests
    outcome = completion(client_for(ok_backend), "reference-ok", "def f(",
                         policy=FAST, suffix="return 1")
    assert not outcome.ok and outcome.error_kind == "http_4xx" and outcome.status == 400
    assert outcome.attempts == 1 and ok_backend.requests == before + 1
    assert "suffix is not currently supported" in outcome.message


def test_connection_refused_is_a_connection_error() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/v1", KEY, timeout_s=2)
    outcome = chat(client, "m", HELLO, policy=FAST)
    assert outcome.error_kind == "connection" and outcome.attempts == 3


def test_timeout_is_a_timeout() -> None:
    def slow(request_json):
        time.sleep(0.5)
        return "late"

    with ScriptedBackend(slow) as backend:
        outcome = chat(client_for(backend, timeout=0.1), "m", HELLO,
                       policy=RetryPolicy(attempts=2, initial_s=0, max_s=0))
    assert outcome.error_kind == "timeout" and outcome.attempts == 2


class _Gateway:
    """A minimal stand-in for two LiteLLM error replies (CONTRACTS.md §1), nothing more."""

    def __init__(self) -> None:
        self.requests = 0

    async def chat(self, request: Request) -> JSONResponse:
        self.requests += 1
        body = await request.json()
        if body["model"] == "budget":
            return JSONResponse({"error": {
                "message": "Budget has been exceeded! Current cost: 1.2, Max budget: 1.0",
                "type": "budget_exceeded", "param": None, "code": "429"}}, status_code=429)
        # An upstream that echoes the caller's key in its error: it must not reach our output.
        return JSONResponse({"error": {
            "message": f"bad key {request.headers['authorization']}",
            "type": "token_not_found_in_db", "param": None, "code": "401"}}, status_code=401)


@pytest.fixture(scope="module")
def gateway():
    stand_in = _Gateway()
    app = Starlette(routes=[Route("/v1/chat/completions", stand_in.chat, methods=["POST"])])
    with ThreadedServer(app) as server:
        stand_in.url = server.url
        yield stand_in


def test_budget_exceeded_429_is_not_retried(gateway: _Gateway) -> None:
    before = gateway.requests
    outcome = chat(make_client(gateway.url + "/v1", KEY), "budget", HELLO, policy=FAST)
    assert outcome.error_kind == "http_429" and outcome.error_type == "budget_exceeded"
    assert outcome.attempts == 1 and gateway.requests == before + 1


def test_secrets_never_appear_in_messages(gateway: _Gateway) -> None:
    outcome = chat(make_client(gateway.url + "/v1", KEY), "any", HELLO, policy=FAST)
    assert outcome.error_kind == "http_4xx" and outcome.error_type == "token_not_found_in_db"
    dumped = outcome.model_dump_json() + repr(outcome)
    assert KEY not in dumped and "0123456789abcdef" not in dumped
    assert "sk-***" in outcome.message


def test_redact() -> None:
    text = "key sk-abc123XYZ_- and Authorization: Bearer abcdefghijklmnop end"
    assert redact(text) == "key sk-*** and Authorization: Bearer *** end"


def test_retry_policy_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=6, initial_s=0.5, multiplier=2, max_s=3)
    assert [policy.wait_s(n, None) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_outcome_schema_rejects_unknown_error_kinds() -> None:
    with pytest.raises(ValueError):
        CallOutcome(ok=False, error_kind="teapot")


# ---- bounded concurrency -----------------------------------------------------------------

def test_map_bounded_keeps_order_and_bounds_concurrency() -> None:
    running = peak = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002 * (10 - i % 10))  # later items finish first
        with lock:
            running -= 1
        return i * i

    assert map_bounded(work, range(30), concurrency=3, progress_label="squares") == [
        i * i for i in range(30)
    ]
    assert 1 <= peak <= 3


def test_map_bounded_propagates_the_first_error() -> None:
    def work(i: int) -> int:
        if i == 4:
            raise RuntimeError("item 4 broke")
        return i

    with pytest.raises(RuntimeError, match="item 4 broke"):
        map_bounded(work, range(8), concurrency=2, progress=False)
    with pytest.raises(ValueError, match="concurrency"):
        map_bounded(work, [1], concurrency=0)
    assert map_bounded(work, [], concurrency=2) == []


# ---- the reference backends' wire shapes (CONTRACTS.md §2) -------------------------------

def test_backend_models_and_health(ok_backend: ScriptedBackend) -> None:
    client = client_for(ok_backend)
    assert [m.id for m in client.models.list()] == ["reference-ok"]
    import httpx

    assert httpx.get(ok_backend.url + "/health").status_code == 200


def test_backend_streams_with_usage_last(ok_backend: ScriptedBackend) -> None:
    backend = ok_backend
    backend.reply = fixed_reply("one two three")
    try:
        chunks = list(client_for(backend).chat.completions.create(
            model="reference-ok", messages=HELLO, stream=True,
            stream_options={"include_usage": True},
        ))
    finally:
        backend.reply = zero_latency
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_backend_completions_plain_and_streamed(ok_backend: ScriptedBackend) -> None:
    client = client_for(ok_backend)
    outcome = completion(client, "reference-ok", "say ok", policy=FAST, max_tokens=4)
    assert outcome.ok and outcome.value.choices[0].text == "ok"
    chunks = list(client.completions.create(
        model="reference-ok", prompt="say ok", stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "ok"
    assert chunks[-1].usage.prompt_tokens >= 1


def test_backend_rejects_non_json(ok_backend: ScriptedBackend) -> None:
    import httpx

    response = httpx.post(ok_backend.base_url + "/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert "/v1/chat/completions" in response.json()["error"]["message"]
