"""route_check against a minimal LiteLLM-contract gateway STAND-IN (not LiteLLM) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deploy.catalog import load_catalog
from deploy.route_check import RouteCheckError, route_check
from fixtures.platform.loopback import ThreadedServer

CATALOG = load_catalog()
KEY = "sk-route-check-test-key-0001"
OTHER_KEY = "sk-someone-else-0002"
# Which aliases each key may use; "embeddings" is listed but its backend is down.
KEYS = {KEY: ["coder-chat", "coder-fim", "embeddings-up", "embeddings"], OTHER_KEY: ["coder-chat"]}
DOWN = {"embeddings"}


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                   "code": str(status)}}, status_code=status)


def _gateway() -> Starlette:
    seen: list[tuple[str, str]] = []

    def allowed(request: Request) -> list[str] | JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in KEYS:
            # LiteLLM echoes the received key in this message; route_check must not.
            return _error(401, f"Authentication Error, Invalid proxy server token passed. "
                          f"Received API Key = {token}", "token_not_found_in_db")
        return KEYS[token]

    async def models(request: Request) -> JSONResponse:
        ok = allowed(request)
        if isinstance(ok, JSONResponse):
            return ok
        return JSONResponse({"object": "list", "data": [
            {"id": a, "object": "model", "created": 0, "owned_by": "openai"} for a in ok]})

    async def call(request: Request) -> JSONResponse:
        ok = allowed(request)
        if isinstance(ok, JSONResponse):
            return ok
        body = await request.json()
        route = request.url.path
        seen.append((route, body["model"]))
        if body["model"] not in ok:
            return _error(403, f"key not allowed to access model {body['model']}",
                          "key_model_access_denied")
        if body["model"] in DOWN:
            return _error(500, "litellm.APIConnectionError: connection refused", "None")
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if route.endswith("/embeddings"):
            return JSONResponse({"object": "list", "model": body["model"], "usage": usage,
                                 "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]})
        if route.endswith("/chat/completions"):
            assert body["max_tokens"] == 1
            return JSONResponse({"id": "c1", "object": "chat.completion", "created": 0,
                                 "model": body["model"], "usage": usage, "choices": [
                                     {"index": 0, "finish_reason": "length",
                                      "message": {"role": "assistant", "content": "p"}}]})
        assert body["max_tokens"] == 1 and "prompt" in body
        return JSONResponse({"id": "t1", "object": "text_completion", "created": 0,
                             "model": body["model"], "usage": usage, "choices": [
                                 {"index": 0, "text": "p", "finish_reason": "length",
                                  "logprobs": None}]})

    app = Starlette(routes=[
        Route("/v1/models", models),
        Route("/v1/chat/completions", call, methods=["POST"]),
        Route("/v1/completions", call, methods=["POST"]),
        Route("/v1/embeddings", call, methods=["POST"]),
    ])
    app.state.seen = seen
    return app


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, list]]:
    app = _gateway()
    server = ThreadedServer(app).start()
    try:
        yield server.url, app.state.seen
    finally:
        server.stop()


def _alias(alias: str, name: str | None = None):
    entry = CATALOG.get(alias)
    return entry.model_copy(update={"alias": name}) if name else entry


@pytest.mark.parametrize(("alias", "route"), [
    ("coder-chat", "/v1/chat/completions"),
    ("coder-fim", "/v1/completions"),
])
def test_routes_by_mode(gateway, alias: str, route: str) -> None:
    url, seen = gateway
    result = route_check(url, KEY, _alias(alias))
    assert result.ok and result.listed and result.answered, result.detail
    assert seen[-1] == (route, alias)
    assert result.latency_s is not None and result.latency_s >= 0


def test_embedding_mode_uses_embeddings(gateway) -> None:
    url, seen = gateway
    result = route_check(url + "/v1/", KEY, _alias("embeddings", "embeddings-up"))
    assert result.ok, result.detail
    assert seen[-1] == ("/v1/embeddings", "embeddings-up")


def test_alias_not_listed_for_the_key(gateway) -> None:
    url, _ = gateway
    result = route_check(url, OTHER_KEY, _alias("coder-fim"))
    assert not result.ok and not result.listed
    assert "'coder-fim' is not in /v1/models" in result.detail and "coder-chat" in result.detail
    with pytest.raises(RouteCheckError, match="not in /v1/models"):
        result.raise_for_failure()


def test_listed_but_backend_down(gateway) -> None:
    url, _ = gateway
    result = route_check(url, KEY, _alias("embeddings"))
    assert result.listed and not result.answered
    assert "listed but a one-token embedding request failed" in result.detail
    assert "500" in result.detail


def test_bad_key_is_reported_without_the_key(gateway) -> None:
    url, _ = gateway
    bad = "sk-not-a-real-key-9999"
    result = route_check(url, bad, _alias("coder-chat"))
    assert not result.ok and "401" in result.detail
    assert bad not in result.detail and bad not in repr(result)
    assert "[key redacted]" in result.detail


def test_unreachable_gateway() -> None:
    from fixtures.platform.loopback import free_port

    result = route_check(f"http://127.0.0.1:{free_port()}", KEY, _alias("coder-chat"), timeout=2)
    assert not result.ok and "APIConnectionError" in result.detail
