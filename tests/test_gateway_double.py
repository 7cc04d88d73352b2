"""The LiteLLM stand-in against CONTRACTS.md §1, over real loopback HTTP with scripted upstreams."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.gateway_routes import LiteLLMParams, ModelInfo, UpstreamReply
from fixtures.platform.gateway_routes import Route as GatewayRoute
from fixtures.platform.loopback import ThreadedServer, free_port

MASTER = "sk-master-" + secrets.token_hex(8)
IN_PRICE, OUT_PRICE = 0.001, 0.002
CHAT_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
CHAT_COST = 10 * IN_PRICE + 5 * OUT_PRICE  # 0.02
STREAM_USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
STREAM_COST = 10 * IN_PRICE + 3 * OUT_PRICE
UPSTREAM_SECRET = "sk-upstream-" + secrets.token_hex(8)


@dataclass
class ScriptedUpstream:
    """An OpenAI-compatible upstream with fixed answers that records what it received.

    Served names: `served-chat` (normal), `served-broken` (400 in vLLM's shape),
    `served-midfail` (stream breaks off with an in-band error).
    """

    received: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event | None = None  # when given: the stream waits after its first content chunk
    waiting: bool = False  # True while the stream is held
    url: str = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/health", lambda r: Response(b""), methods=["GET"]),
            ]
        )

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.received.append({"path": "chat", "auth": request.headers.get("authorization"), **body})
        if body["model"] == "served-broken":
            error = {"message": "boom: bad request", "type": "BadRequestError", "param": None, "code": 400}
            return JSONResponse({"error": error}, status_code=400)
        if body.get("stream"):
            return StreamingResponse(self._stream(body), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": CHAT_USAGE,
            }
        )

    async def _stream(self, body: dict[str, Any]):
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        yield chunk({"content": "a"})
        if body["model"] == "served-midfail":
            yield b'data: {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}\n\n'
            return
        if self.hold is not None:
            self.waiting = True
            deadline = time.monotonic() + 5
            while not self.hold.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            self.waiting = False
        yield chunk({"content": "b"})
        yield chunk({"content": "c"}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"],
                     "choices": [], "usage": STREAM_USAGE}
            yield b"data: " + json.dumps(usage).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.received.append({"path": "completions", **body})
        if "suffix" in body:  # vLLM's behaviour (CONTRACTS.md §2)
            error = {"message": "suffix is not currently supported", "type": "BadRequestError", "param": None, "code": 400}
            return JSONResponse({"error": error}, status_code=400)
        return JSONResponse(
            {
                "id": "cmpl-1", "object": "text_completion", "model": body["model"],
                "choices": [{"index": 0, "text": "MIDDLE", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    async def embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.received.append({"path": "embeddings", **body})
        return JSONResponse(
            {
                "object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    scripted = ScriptedUpstream()
    with ThreadedServer(scripted.app()) as server:
        scripted.url = server.url
        yield scripted


@dataclass
class Env:
    gw: GatewayDouble
    url: str
    http: httpx.Client
    upstream: ScriptedUpstream

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"authorization": f"Bearer {MASTER}"}, **kwargs)

    def key(self, **fields: Any) -> str:
        response = self.admin("POST", "/key/generate", json=fields)
        assert response.status_code == 200, response.text
        return response.json()["key"]

    def call(self, key: str, endpoint: str = "chat/completions", **body: Any) -> httpx.Response:
        body.setdefault("model", "chat-a")
        if endpoint == "chat/completions":
            body.setdefault("messages", [{"role": "user", "content": "hi"}])
        return self.http.post(f"/v1/{endpoint}", json=body, headers={"authorization": f"Bearer {key}"})


PRICED = {"input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE}


@dataclass
class Swap:
    """One loopback server for the module; each test plugs in a fresh gateway (fast teardown)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Swap, str]]:
    swap = Swap()
    with ThreadedServer(swap) as server:
        yield swap, server.url


@pytest.fixture
def env(upstream: ScriptedUpstream, served: tuple[Swap, str]) -> Iterator[Env]:
    swap, url = served
    gw = GatewayDouble(MASTER)
    base = upstream.url + "/v1"
    gw.register_model("chat-a", {"model": "hosted_vllm/served-chat", "api_base": base}, {"mode": "chat", **PRICED})
    gw.register_model("chat-b", {"model": "openai/served-chat", "api_base": base, "api_key": UPSTREAM_SECRET}, {"mode": "chat", **PRICED})
    gw.register_model("fim", {"model": "text-completion-openai/served-fim", "api_base": base}, {"mode": "completion", **PRICED})
    gw.register_model("embed", {"model": "hosted_vllm/served-embed", "api_base": base}, {"mode": "embedding", "input_cost_per_token": IN_PRICE})
    gw.register_model("broken", {"model": "hosted_vllm/served-broken", "api_base": base}, {"mode": "chat"})
    gw.register_model("midfail", {"model": "hosted_vllm/served-midfail", "api_base": base}, {"mode": "chat", **PRICED})
    upstream.received.clear()
    upstream.hold = None
    swap.app = gw
    with httpx.Client(base_url=url, timeout=5) as http:
        yield Env(gw, url, http, upstream)
    gw.close()


# ----- key management -----


def test_key_generate_echoes_fields_and_abbreviates_the_key(env: Env) -> None:
    fields = {
        "key_alias": "t-echo", "duration": "30m", "models": ["chat-a"], "max_budget": 1.5,
        "budget_duration": "30d", "metadata": {"team": "x"}, "tpm_limit": 100, "rpm_limit": 10,
        "max_parallel_requests": 2,
    }
    body = env.admin("POST", "/key/generate", json=fields).json()
    for name, value in fields.items():
        assert body[name] == value, name
    key = body["key"]
    assert key.startswith("sk-") and len(key) > 20
    assert body["key_name"] == f"sk-...{key[-4:]}"
    assert body["token_id"] == hashlib.sha256(key.encode()).hexdigest()
    assert body["expires"] is not None
    second = env.key()
    assert second != key


def test_key_generate_names_unknown_and_invalid_fields(env: Env) -> None:
    response = env.admin("POST", "/key/generate", json={"budget": 5})
    assert response.status_code == 422
    assert "'budget'" in response.json()["error"]["message"]
    response = env.admin("POST", "/key/generate", json={"duration": "soon"})
    assert response.status_code == 422 and "duration" in response.json()["error"]["message"]


def test_key_aliases_are_unique(env: Env) -> None:
    env.key(key_alias="same")
    response = env.admin("POST", "/key/generate", json={"key_alias": "same"})
    assert response.status_code == 400 and "already exists" in response.json()["error"]["message"]


def test_admin_routes_need_the_master_key(env: Env) -> None:
    key = env.key()
    auth = {"authorization": f"Bearer {key}"}
    for method, path, body in [
        ("POST", "/key/generate", {}),
        ("POST", "/key/update", {"key": key, "max_budget": 9}),
        ("POST", "/key/delete", {"keys": [key]}),
        ("POST", "/model/new", {"model_name": "x", "litellm_params": {"model": "openai/x", "api_base": "http://h/v1"}}),
        ("POST", "/model/delete", {"id": "x"}),
        ("GET", "/spend/logs", None),
    ]:
        response = env.http.request(method, path, json=body, headers=auth)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["type"] == "auth_error"
    assert env.http.post("/key/generate", json={}).status_code == 401  # no key at all
    assert env.gw.key_record(key) is not None


def test_key_info_update_delete(env: Env) -> None:
    key = env.key(key_alias="t-info", max_budget=1.0, models=["chat-a"], metadata={"a": 1})
    info = env.admin("GET", "/key/info", params={"key": key}).json()
    assert info["key"] == key
    assert info["info"]["spend"] == 0 and info["info"]["max_budget"] == 1.0
    assert info["info"]["models"] == ["chat-a"] and info["info"]["key_alias"] == "t-info"
    assert info["info"]["metadata"] == {"a": 1} and "expires" in info["info"]

    updated = env.admin("POST", "/key/update", json={"key": key, "max_budget": 2.5, "models": []})
    assert updated.status_code == 200
    info = env.admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["max_budget"] == 2.5 and info["models"] == [] and info["key_alias"] == "t-info"

    deleted = env.admin("POST", "/key/delete", json={"keys": [key]})
    assert deleted.json() == {"deleted_keys": [key]}
    missing = env.admin("GET", "/key/info", params={"key": key})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "token_not_found_in_db"
    again = env.admin("POST", "/key/delete", json={"keys": [key]})
    assert again.status_code == 404 and key not in again.text
    refused = env.call(key)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "token_not_found_in_db"
    assert refused.json()["error"]["code"] == "401"


# ----- models, discovery, health -----


def test_model_new_info_and_delete(env: Env, upstream: ScriptedUpstream) -> None:
    body = {
        "model_name": "late",
        "litellm_params": {"model": "hosted_vllm/served-chat", "api_base": upstream.url + "/v1", "api_key": UPSTREAM_SECRET},
        "model_info": {"mode": "chat", "input_cost_per_token": 0.5, "output_cost_per_token": 1.0},
    }
    created = env.admin("POST", "/model/new", json=body)
    assert created.status_code == 200 and UPSTREAM_SECRET not in created.text
    model_id = created.json()["model_id"]
    info = env.admin("GET", "/model/info")
    assert UPSTREAM_SECRET not in info.text
    entry = next(e for e in info.json()["data"] if e["model_name"] == "late")
    assert "api_key" not in entry["litellm_params"]
    assert entry["model_info"]["id"] == model_id and entry["model_info"]["input_cost_per_token"] == 0.5
    assert env.call(MASTER, model="late").status_code == 200
    assert env.upstream.received[-1]["auth"] == f"Bearer {UPSTREAM_SECRET}"  # provider key goes upstream only

    assert env.admin("POST", "/model/delete", json={"id": model_id}).status_code == 200
    names = [m["id"] for m in env.admin("GET", "/v1/models").json()["data"]]
    assert "late" not in names
    assert env.admin("POST", "/model/delete", json={"id": model_id}).status_code == 404


def test_model_new_names_the_bad_field(env: Env) -> None:
    bad = env.admin("POST", "/model/new", json={"model_name": "x", "litellm_params": {"model": "hosted_vllm/x"}})
    assert bad.status_code == 400 and "api_base" in bad.json()["error"]["message"]
    bad = env.admin("POST", "/model/new", json={"model_name": "x", "litellm_params": {"model": "anthropic/x", "api_base": "http://h/v1"}})
    assert bad.status_code == 400 and "litellm_params.model" in bad.json()["error"]["message"]
    bad = env.admin("POST", "/model/new", json={"model_name": "x", "litellm_params": {"model": "openai/x", "api_base": "h:1/v1"}})
    assert bad.status_code == 422 and "litellm_params.api_base" in bad.json()["error"]["message"]


def test_models_are_filtered_by_the_keys_models(env: Env) -> None:
    everything = ["chat-a", "chat-b", "fim", "embed", "broken", "midfail"]
    for path in ("/v1/models", "/models"):
        listing = env.admin("GET", path).json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == everything
        assert all(m["object"] == "model" and "created" in m and "owned_by" in m for m in listing["data"])
    narrow = env.key(models=["chat-a", "fim"])
    seen = env.http.get("/v1/models", headers={"authorization": f"Bearer {narrow}"}).json()
    assert [m["id"] for m in seen["data"]] == ["chat-a", "fim"]
    info = env.http.get("/model/info", headers={"authorization": f"Bearer {narrow}"}).json()
    assert sorted(e["model_name"] for e in info["data"]) == ["chat-a", "fim"]
    wide = env.key(models=[])
    seen = env.http.get("/v1/models", headers={"authorization": f"Bearer {wide}"}).json()
    assert [m["id"] for m in seen["data"]] == everything


def test_health_routes(env: Env) -> None:
    env.gw.register_model("down", {"model": "hosted_vllm/x", "api_base": f"http://127.0.0.1:{free_port()}/v1"})
    health = env.admin("GET", "/health").json()
    assert health["healthy_count"] == 6 and health["unhealthy_count"] == 1
    assert [e["model_name"] for e in health["unhealthy_endpoints"]] == ["down"]
    assert all("api_key" not in e for e in health["healthy_endpoints"])
    assert UPSTREAM_SECRET not in json.dumps(health)
    assert env.http.get("/health").status_code == 401  # /health calls every model: needs a key

    live = env.http.get("/health/liveliness")
    assert live.status_code == 200 and live.json() == "I'm alive!"
    ready = env.http.get("/health/readiness")
    assert ready.status_code == 200 and ready.json()["status"] in ("connected", "healthy")
    env.gw.ready = False
    assert env.http.get("/health/readiness").status_code == 503


# ----- proxied calls, spend, budgets -----


def test_chat_forwards_the_served_name_and_counts_spend(env: Env) -> None:
    key = env.key(key_alias="t-spend", max_budget=10.0)
    response = env.call(key, temperature=0.2)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "ok"
    assert response.json()["model"] == "chat-a"  # LiteLLM answers with the alias asked for
    sent = env.upstream.received[-1]
    assert sent["model"] == "served-chat" and sent["temperature"] == 0.2 and sent["auth"] is None
    headers = response.headers
    assert float(headers["x-litellm-response-cost"]) == pytest.approx(CHAT_COST)
    assert float(headers["x-litellm-key-spend"]) == pytest.approx(CHAT_COST)
    assert float(headers["x-litellm-key-max-budget"]) == 10.0
    assert headers["x-litellm-call-id"] and headers["x-litellm-model-id"]
    assert headers["x-litellm-model-api-base"] == env.upstream.url + "/v1"

    env.call(key)
    assert env.gw.spend_of(key) == pytest.approx(2 * CHAT_COST)
    info = env.admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["spend"] == pytest.approx(2 * CHAT_COST)
    logs = env.admin("GET", "/spend/logs", params={"api_key": key}).json()
    assert len(logs) == 2
    assert logs[0]["spend"] == pytest.approx(CHAT_COST)
    assert (logs[0]["prompt_tokens"], logs[0]["completion_tokens"]) == (10, 5)
    assert logs[0]["model_group"] == "chat-a" and logs[0]["request_id"] == headers["x-litellm-call-id"]
    assert logs[0]["api_key"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(logs)


def test_fim_prompt_passes_unchanged_and_no_suffix_is_added(env: Env) -> None:
    key = env.key()
    prompt = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c<|fim_middle|>"
    response = env.call(key, "completions", model="fim", prompt=prompt, max_tokens=8, stop=["<|endoftext|>"])
    assert response.status_code == 200, response.text
    sent = env.upstream.received[-1]
    assert sent["prompt"] == prompt and sent["model"] == "served-fim" and "suffix" not in sent
    assert response.json()["model"] == "fim"
    assert float(response.headers["x-litellm-response-cost"]) == pytest.approx(7 * IN_PRICE + 3 * OUT_PRICE)
    # without /v1 too
    plain = env.http.post("/completions", json={"model": "fim", "prompt": prompt}, headers={"authorization": f"Bearer {key}"})
    assert plain.status_code == 200


def test_embeddings_cost_input_tokens_only(env: Env) -> None:
    key = env.key()
    response = env.call(key, "embeddings", model="embed", input=["hello"])
    assert response.status_code == 200
    assert response.json()["data"][0]["embedding"] == [0.1, 0.2]
    assert response.json()["model"] == "embed"
    assert float(response.headers["x-litellm-response-cost"]) == pytest.approx(4 * IN_PRICE)
    plain = env.http.post("/embeddings", json={"model": "embed", "input": "x"}, headers={"authorization": f"Bearer {key}"})
    assert plain.status_code == 200 and env.gw.spend_of(key) == pytest.approx(8 * IN_PRICE)


def _cost_route(**info) -> GatewayRoute:
    return GatewayRoute("id", "alias", LiteLLMParams(model="openai/served"), ModelInfo(**info), None, "served")


@pytest.mark.parametrize(("usage", "cost"), [
    ({"prompt_tokens": 10, "completion_tokens": 5}, 10 * 1e-6 + 5 * 5e-6),
    # LiteLLM takes the cache out of prompt_tokens (never below 0) and bills it at the input
    # price: agentgateway-style usage (cache outside prompt_tokens) as LiteLLM 1.108.7 bills it.
    ({"prompt_tokens": 12, "completion_tokens": 15,
      "prompt_tokens_details": {"cached_tokens": 4971, "cache_write_tokens": 0}}, 0.005046),
    ({"prompt_tokens": 4, "completion_tokens": 15,
      "prompt_tokens_details": {"cache_write_tokens": 7005, "cache_creation_tokens": 7005}}, 0.00708),
    ({"prompt_tokens": 7009, "completion_tokens": 15,  # LiteLLM's convention: cache included
      "prompt_tokens_details": {"cached_tokens": 7005}}, 0.007084),
])
def test_the_double_bills_usage_as_litellm_does(usage: dict, cost: float) -> None:
    route = _cost_route(input_cost_per_token=1e-6, output_cost_per_token=5e-6)
    assert route.cost(usage) == pytest.approx(cost, rel=1e-9)


def test_the_double_bills_cache_at_the_models_cache_prices() -> None:
    route = _cost_route(input_cost_per_token=1e-6, output_cost_per_token=5e-6,
                        cache_read_input_token_cost=1e-7, cache_creation_input_token_cost=1.25e-6)
    usage = {"prompt_tokens": 7009, "completion_tokens": 15,
             "prompt_tokens_details": {"cached_tokens": 5000, "cache_write_tokens": 2000}}
    assert route.cost(usage) == pytest.approx(9e-6 + 5000e-7 + 2000 * 1.25e-6 + 75e-6)


@pytest.mark.parametrize("status", [400, 422, 429])
def test_budget_is_checked_before_the_call(env: Env, status: int) -> None:
    env.gw.budget_status = status
    key = env.key(max_budget=0.03)  # one call costs 0.02
    assert env.call(key).status_code == 200  # spend 0.02 < 0.03
    crossing = env.call(key)  # spend 0.02 < 0.03 at the check: completes, crosses to 0.04
    assert crossing.status_code == 200
    assert float(crossing.headers["x-litellm-key-spend"]) == pytest.approx(2 * CHAT_COST)
    calls = len(env.upstream.received)
    refused = env.call(key)
    assert refused.status_code == status
    error = refused.json()["error"]
    assert error["type"] == "budget_exceeded" and error["code"] == str(status) and error["param"] is None
    # Current builds (422) name the key, older ones give the numbers only.
    who = f"Key=key ({env.gw.key_record(key).key_name}) " if status == 422 else ""
    assert error["message"] == (
        f"Budget has been exceeded! {who}Current cost: {env.gw.spend_of(key)}, Max budget: 0.03")
    assert "sk-" not in error["message"].replace(env.gw.key_record(key).key_name, "")
    assert len(env.upstream.received) == calls  # refused before reaching the upstream
    assert env.gw.spend_of(key) == pytest.approx(2 * CHAT_COST)
    exhausted = env.key(max_budget=0.0)  # spend 0 >= 0: even the first call is refused
    assert env.call(exhausted).status_code == status
    assert len(env.upstream.received) == calls


def test_unpriced_model_never_binds_a_budget(env: Env) -> None:
    env.gw.register_handler("free", _echo_handler)  # no prices in model_info: costs 0
    key = env.key(max_budget=0.0001)
    for _ in range(3):
        assert env.call(key, model="free").status_code == 200
    assert env.gw.spend_of(key) == 0
    assert env.call(key, model="chat-a").status_code == 200  # priced: crosses the budget
    assert env.call(key, model="free").status_code == 422  # the budget is the key's, for every model


def test_the_current_build_refuses_budgets_with_422_by_default() -> None:
    assert GatewayDouble(MASTER).budget_status == 422


def test_a_call_in_flight_holds_its_worst_case_and_shrinks_to_what_is_left(env: Env) -> None:
    # Worst case of a chat call: 2 words in (0.002) + max_tokens 20 out (0.04) = 0.042, more than
    # the 0.03 budget: the hold shrinks to 0.03 and the call still runs (current LiteLLM).
    env.upstream.hold = threading.Event()
    key = env.key(max_budget=0.03)
    with httpx.Client(base_url=env.url, timeout=10) as other:
        holding = threading.Thread(target=lambda: other.post(
            "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
            json={"model": "chat-a", "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 20, "stream": True}).read())
        holding.start()
        deadline = time.monotonic() + 5
        while not env.upstream.waiting and time.monotonic() < deadline:
            time.sleep(0.005)
        assert env.upstream.waiting and env.gw.key_record(key).reserved == pytest.approx(0.03)
        calls = len(env.upstream.received)
        refused = env.call(key, max_tokens=20)  # spend 0 < budget, but the hold took all of it
        assert refused.status_code == 422 and refused.json()["error"]["type"] == "budget_exceeded"
        assert refused.json()["error"]["message"].startswith("Budget has been exceeded! Key=")
        assert len(env.upstream.received) == calls  # refused before the upstream
        env.upstream.hold.set()
        holding.join(10)
    assert env.gw.key_record(key).reserved == 0  # given back when the stream ended
    assert env.gw.spend_of(key) == pytest.approx(STREAM_COST)
    assert env.call(key, max_tokens=20).status_code == 200  # room again: shrunk hold, runs


def test_fail_closed_refuses_a_worst_case_that_does_not_fit(env: Env) -> None:
    env.gw.fail_closed_budget = True
    key = env.key(max_budget=0.03)
    # Worst case: 2 words in ("user", "hi": roles count too) 0.002 + 5 out 0.01 = 0.012.
    assert env.call(key, max_tokens=5).status_code == 200  # 0.012 fits 0.03: costs 0.02
    refused = env.call(key, max_tokens=5)  # 0.012 > 0.01 left: refused before the call
    assert refused.status_code == 422
    assert "Estimated request cost: 0.012" in refused.json()["error"]["message"]
    assert env.gw.spend_of(key) == pytest.approx(CHAT_COST) and env.gw.key_record(key).reserved == 0


def test_budget_and_access_modes_are_validated() -> None:
    gw = GatewayDouble(MASTER, budget_status=400, model_access_status=401)
    assert (gw.budget_status, gw.model_access_status) == (400, 401)
    with pytest.raises(ValueError, match="budget_status"):
        gw.budget_status = 500
    with pytest.raises(ValueError, match="model_access_status"):
        GatewayDouble(MASTER, model_access_status=404)
    with pytest.raises(ValueError, match="sk-"):
        GatewayDouble("not-a-litellm-key")
    with ThreadedServer(gw) as server:  # the double is a plain ASGI app for the loopback server
        assert httpx.get(server.url + "/health/liveliness").json() == "I'm alive!"


@pytest.mark.parametrize("status", [401, 403])
def test_model_not_allowed_for_the_key(env: Env, status: int) -> None:
    env.gw.model_access_status = status
    key = env.key(models=["fim"])
    response = env.call(key, model="chat-a")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "key_model_access_denied" and error["code"] == str(status)
    assert not env.upstream.received


def test_unknown_key_missing_key_and_unknown_model(env: Env) -> None:
    fake = "sk-" + secrets.token_hex(16)
    response = env.call(fake)
    assert response.status_code == 401 and response.json()["error"]["type"] == "token_not_found_in_db"
    assert fake not in response.text and fake[-4:] in response.text
    assert env.http.post("/v1/chat/completions", json={"model": "chat-a"}).status_code == 401
    key = env.key()
    unknown = env.call(key, model="nope")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith("/chat/completions: Invalid model name passed in model=nope")
    not_json = env.http.post("/v1/chat/completions", content=b"{", headers={"authorization": f"Bearer {key}"})
    assert not_json.status_code == 400


def test_upstream_errors_pass_through_in_litellm_shape(env: Env) -> None:
    key = env.key()
    broken = env.call(key, model="broken")
    assert broken.status_code == 400
    error = broken.json()["error"]
    assert "boom: bad request" in error["message"] and error["code"] == "400"
    suffix = env.call(key, "completions", model="fim", prompt="x", suffix="y")
    assert suffix.status_code == 400 and "suffix is not currently supported" in suffix.json()["error"]["message"]
    assert env.upstream.received[-1]["suffix"] == "y"  # forwarded unchanged, not stripped or added
    assert env.gw.spend_of(key) == 0  # failed calls cost nothing
    env.gw.register_model("down", {"model": "hosted_vllm/x", "api_base": f"http://127.0.0.1:{free_port()}/v1"})
    down = env.call(key, model="down")
    assert down.status_code == 500 and "APIConnectionError" in down.json()["error"]["message"]


# ----- streaming -----


def _events(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[6:]


def test_stream_arrives_incrementally_and_hides_the_usage_chunk(env: Env) -> None:
    key = env.key()
    env.upstream.hold = threading.Event()
    body = {"model": "chat-a", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with env.http.stream("POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        first = [json.loads(next(events)), json.loads(next(events))]
        # The upstream is still holding the rest: these arrived before the stream ended.
        assert env.upstream.waiting
        assert first[1]["choices"][0]["delta"]["content"] == "a"
        env.upstream.hold.set()
        rest = list(events)
    assert rest[-1] == "[DONE]"
    chunks = [json.loads(e) for e in rest[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["b", "c"]
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert env.upstream.received[-1]["stream_options"] == {"include_usage": True}  # asked for spend
    assert env.gw.spend_of(key) == pytest.approx(STREAM_COST)


def test_stream_keeps_the_usage_chunk_when_asked(env: Env) -> None:
    key = env.key()
    client = openai.OpenAI(base_url=env.url + "/v1", api_key=key, max_retries=0)
    stream = client.chat.completions.create(
        model="chat-a", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abc"
    # LiteLLM's usage chunk: one empty-delta choice, not vLLM's `choices: []`; every chunk
    # names the alias asked for, as LiteLLM does, not the served name.
    last = chunks[-1]
    assert [(c.index, c.delta.content, c.delta.tool_calls, c.finish_reason) for c in last.choices] == [
        (0, None, None, None)]
    assert last.usage.prompt_tokens == 10
    assert {c.model for c in chunks} == {"chat-a"}
    assert env.gw.spend_of(key) == pytest.approx(STREAM_COST)


def test_stream_midstream_error_passes_through(env: Env) -> None:
    key = env.key()
    body = {"model": "midfail", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with env.http.stream("POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}) as response:
        events = list(_events(response))
    assert json.loads(events[-1])["error"]["message"] == "engine died"
    assert env.gw.spend_of(key) == 0


def test_openai_client_through_the_gateway(env: Env) -> None:
    key = env.key(models=["chat-a"])
    client = openai.OpenAI(base_url=env.url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="chat-a", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "ok" and reply.usage.completion_tokens == 5
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="fim", messages=[{"role": "user", "content": "hi"}])
    assert denied.value.body["type"] == "key_model_access_denied"


# ----- in-process handlers and state -----


async def _echo_handler(endpoint: str, body: dict[str, Any], stream: bool) -> UpstreamReply:
    usage = {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    if stream:
        async def chunks():
            yield {"choices": [{"index": 0, "delta": {"content": body["model"]}}]}
            yield {"choices": [], "usage": usage}
        return UpstreamReply.of_chunks(chunks())
    message = {"role": "assistant", "content": f"{endpoint}:{body['model']}"}
    return UpstreamReply.of_json({"choices": [{"index": 0, "message": message}], "usage": usage})


def test_callable_backend_alias(env: Env) -> None:
    env.gw.register_handler(
        "external", _echo_handler, model="anthropic/claude-stand-in",
        model_info={"mode": "chat", "input_cost_per_token": 1.0, "output_cost_per_token": 5.0},
    )
    key = env.key(models=["external"])
    response = env.call(key, model="external")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "chat/completions:claude-stand-in"
    assert response.headers["x-litellm-model-api-base"] == "in-process:external"
    assert env.gw.spend_of(key) == pytest.approx(2 * 1.0 + 4 * 5.0)
    with env.http.stream("POST", "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                         json={"model": "external", "messages": [], "stream": True}) as streamed:
        events = list(_events(streamed))
    assert events[-1] == "[DONE]" and len(events) == 2  # usage chunk hidden
    assert env.gw.spend_of(key) == pytest.approx(2 * 22.0)


def test_state_is_exposed_read_only_and_without_secrets(env: Env) -> None:
    key = env.key(key_alias="t-state")
    keys = env.gw.keys
    token = hashlib.sha256(key.encode()).hexdigest()
    assert keys[token].key_alias == "t-state"
    with pytest.raises(TypeError):
        keys["x"] = keys[token]  # type: ignore[index]
    keys[token].spend = 99.0  # a copy: the gateway's record is unchanged
    assert env.gw.spend_of(key) == 0
    assert key not in repr(keys[token]) and key not in str(keys[token])
    assert MASTER not in repr(env.gw)
    assert len(env.gw.models) == 6 and UPSTREAM_SECRET not in repr(env.gw.models)


# ----- as a process -----


def test_subprocess_mode_starts_answers_and_stops() -> None:
    port = free_port()
    environment = {**os.environ, "LITELLM_MASTER_KEY": MASTER}
    process = subprocess.Popen(
        [sys.executable, "-m", "fixtures.platform.gateway", "--host", "127.0.0.1", "--port", str(port), "--budget-status", "400"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.json() == "I'm alive!"
        created = httpx.post(f"http://127.0.0.1:{port}/key/generate", json={"max_budget": 0},
                             headers={"authorization": f"Bearer {MASTER}"})
        assert created.status_code == 200
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "any"},
                             headers={"authorization": f"Bearer {created.json()['key']}"})
        assert refused.status_code == 400  # --budget-status 400 reached the app
        assert refused.json()["error"]["type"] == "budget_exceeded"
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert process.returncode in (0, -signal.SIGTERM)  # stopped by the signal, not crashed
    assert MASTER not in (out + err).decode()


def test_subprocess_mode_refuses_to_start_without_a_master_key() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "LITELLM_MASTER_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "fixtures.platform.gateway", "--port", str(free_port())],
        env=environment, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2 and "LITELLM_MASTER_KEY" in done.stderr
