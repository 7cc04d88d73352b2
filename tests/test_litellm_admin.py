"""The LiteLLM admin client against the gateway stand-in (and a flaky server for retries)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploy.litellm_admin import (
    BudgetExceeded,
    GatewayError,
    GatewayUnavailable,
    InvalidModel,
    KeyNotFound,
    LiteLLMAdmin,
    ModelAccessDenied,
    NoKeyDatabase,
    NoKeyDatabaseWarning,
    VirtualKey,
    gate_key,
    redact_key,
    redact_url,
    throwaway_key,
)
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer, free_port

MASTER = "sk-master-" + secrets.token_hex(8)
PRICE_IN, PRICE_OUT = 0.01, 0.02
COST = 3 * PRICE_IN + 2 * PRICE_OUT  # one call of the scripted upstream


async def _chat(request: Request) -> Response:
    body = await request.json()
    return JSONResponse(
        {
            "id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[
        Route("/v1/chat/completions", _chat, methods=["POST"]),
        Route("/health", lambda r: Response(b""), methods=["GET"]),
    ])
    with ThreadedServer(app) as server:
        yield server.url + "/v1"


@dataclass
class Env:
    gw: GatewayDouble
    url: str
    admin: LiteLLMAdmin
    api_base: str

    def chat(self, key: str | VirtualKey, model: str = "m1") -> httpx.Response:
        token = key.value if isinstance(key, VirtualKey) else key
        return httpx.post(
            self.url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        )


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
def env(upstream: str, served: tuple[Swap, str]) -> Iterator[Env]:
    swap, url = served
    gw = swap.app = GatewayDouble(MASTER)
    with LiteLLMAdmin(url, MASTER, retry_wait=0.01) as admin:
        admin.register_model(
            "m1", {"model": "hosted_vllm/served", "api_base": upstream},
            {"mode": "chat", "input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT},
        )
        admin.register_model("m2", {"model": "hosted_vllm/served", "api_base": upstream}, {"mode": "chat"})
        yield Env(gw, url, admin, upstream)
    gw.close()


def _no_secret(*texts: str, secret: str) -> None:
    for text in texts:
        assert secret not in text


# ----- keys -----


def test_generate_info_update_delete(env: Env) -> None:
    key = env.admin.generate_key(
        key_alias="t-admin", models=["m1"], max_budget=1.0, duration="1h", metadata={"run": "r1"}
    )
    assert key.alias == "t-admin" and key.models == ["m1"] and key.max_budget == 1.0
    assert key.value.startswith("sk-") and key.key_name == redact_key(key.value) == f"sk-...{key.value[-4:]}"
    assert key.expires is not None and key.token_id
    _no_secret(repr(key), str(key), key.model_dump_json(), secret=key.value)
    assert repr(key) == f"VirtualKey(alias='t-admin', key_name='{key.key_name}')"

    info = env.admin.key_info(key)
    assert (info.spend, info.max_budget, info.models, info.key_alias) == (0.0, 1.0, ["m1"], "t-admin")
    assert info.metadata == {"run": "r1"}
    assert env.admin.update_key(key, max_budget=2.0).max_budget == 2.0
    assert env.admin.key_info(key.value).max_budget == 2.0

    assert env.admin.delete_keys([key]) == [key.key_name]
    with pytest.raises(KeyNotFound) as missing:
        env.admin.key_info(key)
    assert missing.value.status == 404 and missing.value.type == "token_not_found_in_db"
    _no_secret(str(missing.value), repr(missing.value), missing.value.message, secret=key.value)


def test_spend_is_read_back_three_ways(env: Env) -> None:
    key = env.admin.generate_key(max_budget=5.0)
    assert env.chat(key).status_code == 200
    assert env.admin.wait_for_spend(key, COST, timeout=5, interval=0.01) == pytest.approx(COST)
    logs = env.admin.spend_logs(key)
    assert len(logs) == 1 and logs[0]["spend"] == pytest.approx(COST)
    assert all(log["spend"] >= 0 for log in env.admin.spend_logs())


def test_settled_spend_waits_then_takes_what_is_there(env: Env) -> None:
    key = env.admin.generate_key(max_budget=5.0)
    assert env.chat(key).status_code == 200
    assert env.admin.settled_spend(key, COST, timeout=5) == pytest.approx(COST)
    # Never reached: no exception, the spend as it is (the gate reports the shortfall).
    assert env.admin.settled_spend(key, 1.0, timeout=0.2) == pytest.approx(COST)


def test_wait_for_spend_times_out_without_naming_the_key(env: Env) -> None:
    key = env.admin.generate_key()
    with pytest.raises(TimeoutError) as late:
        env.admin.wait_for_spend(key, 1.0, timeout=0.2, interval=0.05)
    assert key.key_name in str(late.value)
    _no_secret(str(late.value), secret=key.value)


# ----- models, health -----


def test_models_health_and_discovery(env: Env) -> None:
    entries = env.admin.model_info()
    assert [e.model_name for e in entries] == ["m1", "m2"]
    assert entries[0].model_info["input_cost_per_token"] == PRICE_IN
    assert all("api_key" not in e.litellm_params for e in entries)
    key = env.admin.generate_key(models=["m2"])
    assert env.admin.list_models() == ["m1", "m2"]
    assert env.admin.list_models(key) == ["m2"]

    extra = env.admin.register_model("m3", {"model": "openai/served", "api_base": env.api_base})
    assert "m3" in env.admin.list_models()
    env.admin.delete_model(extra)
    assert "m3" not in env.admin.list_models()
    with pytest.raises(GatewayError) as gone:
        env.admin.delete_model(extra)
    assert gone.value.status == 404 and not isinstance(gone.value, KeyNotFound)

    health = env.admin.health()
    assert (health.healthy_count, health.unhealthy_count) == (2, 0)
    assert env.admin.liveliness() == "I'm alive!"
    assert env.admin.readiness()["status"] in ("connected", "healthy")


def test_unready_gateway_is_unavailable_after_retries(env: Env) -> None:
    env.gw.ready = False
    with pytest.raises(GatewayUnavailable) as unready:
        env.admin.readiness()
    assert unready.value.status == 503


def test_bad_registration_names_the_field(env: Env) -> None:
    with pytest.raises(GatewayError) as bad:
        env.admin.register_model("x", {"model": "hosted_vllm/x"})
    assert bad.value.status == 400 and "api_base" in bad.value.message


# ----- typed errors, both LiteLLM generations -----


@pytest.mark.parametrize("status", [400, 422, 429])
def test_budget_exceeded_is_recognized_by_type_not_status(env: Env, status: int) -> None:
    env.gw.budget_status = status
    key = env.admin.generate_key(max_budget=COST / 2)
    assert env.chat(key).status_code == 200  # the call that crosses the budget completes
    refused = env.chat(key)
    error = GatewayError.from_response(refused.status_code, refused.json())
    assert isinstance(error, BudgetExceeded) and error.status == status
    assert error.spend == pytest.approx(COST) and error.max_budget == pytest.approx(COST / 2)


@pytest.mark.parametrize("status", [401, 403])
def test_model_access_denied_in_both_generations(env: Env, status: int) -> None:
    env.gw.model_access_status = status
    key = env.admin.generate_key(models=["m2"])
    refused = env.chat(key, model="m1")
    error = GatewayError.from_response(refused.status_code, refused.json(), "POST /v1/chat/completions")
    assert isinstance(error, ModelAccessDenied) and error.status == status
    # The openai client hands over the inner error object: the same classification applies.
    client = openai.OpenAI(base_url=env.url + "/v1", api_key=key.value, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    assert isinstance(GatewayError.from_response(raised.value.status_code, raised.value.body), ModelAccessDenied)


def test_unknown_key_and_unknown_model(env: Env) -> None:
    fake = "sk-" + secrets.token_hex(16)
    with pytest.raises(KeyNotFound) as unknown:
        env.admin.list_models(fake)
    assert unknown.value.status == 401
    _no_secret(str(unknown.value), repr(unknown.value), *map(str, unknown.value.args), secret=fake)
    refused = env.chat(env.admin.generate_key(), model="nope")
    assert isinstance(GatewayError.from_response(refused.status_code, refused.json()), InvalidModel)
    plain = GatewayError.from_response(400, {"error": {"message": "other", "type": None}})
    assert type(plain) is GatewayError and plain.status == 400


def test_keys_are_redacted_from_gateway_messages() -> None:
    key = "sk-" + secrets.token_hex(16)
    error = GatewayError.from_response(
        401, {"detail": {"error": f"Authentication Error, Invalid proxy server token passed. key={key}"}}
    )
    assert isinstance(error, KeyNotFound)
    _no_secret(str(error), repr(error), error.message, secret=key)
    assert redact_key(key) in str(error)


def test_redact_url() -> None:
    key = "sk-" + secrets.token_hex(16)
    url = f"https://admin:hunter2@gw.example:4000/key/info?key={key}&api_key=abc123&page=2"
    clean = redact_url(url)
    for secret in ("hunter2", "admin", key, "abc123"):
        assert secret not in clean
    assert clean.startswith("https://gw.example:4000/key/info?") and "page=2" in clean
    assert redact_url("http://127.0.0.1:4000") == "http://127.0.0.1:4000"
    admin = LiteLLMAdmin(url, MASTER)
    _no_secret(repr(admin), secret="hunter2")
    _no_secret(repr(admin), secret=MASTER)
    admin.close()


# ----- throwaway keys -----


def test_throwaway_key_is_deleted_after_use_and_when_the_body_raises(env: Env) -> None:
    with throwaway_key(env.admin, alias="modelgate-t", models=["m1"], max_budget=0.5, metadata={"gate": "g"}) as key:
        assert key.alias.startswith("modelgate-t-") and key.max_budget == 0.5
        assert env.admin.key_info(key).metadata["gate"] == "g"
        assert env.chat(key).status_code == 200
        used = key
    assert env.gw.key_record(used.value) is None

    for exc_type in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc_type), throwaway_key(env.admin, models=["m1"]) as key:
            held = key
            assert env.gw.key_record(held.value) is not None
            raise exc_type("stop")
        assert env.gw.key_record(held.value) is None
    assert not env.gw.keys


def test_throwaway_key_survives_a_body_that_deleted_it_already(env: Env) -> None:
    with throwaway_key(env.admin) as key:
        env.admin.delete_keys([key])
    assert not env.gw.keys


# ----- retries -----


@dataclass
class Flaky:
    """Answers 503 `failures` times per path, then succeeds; counts calls."""

    failures: int
    calls: dict[str, int]

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            path = request.url.path
            self.calls[path] = self.calls.get(path, 0) + 1
            if self.calls[path] <= self.failures:
                return JSONResponse({"error": {"message": "db busy", "type": None, "code": "503"}}, status_code=503)
            if path == "/key/generate":
                return JSONResponse({"key": "sk-" + "k" * 30, "key_alias": "a"})
            return JSONResponse("I'm alive!")

        return Starlette(routes=[
            Route("/health/liveliness", handle), Route("/key/generate", handle, methods=["POST"])
        ])


def test_retries_on_5xx_and_connection_errors() -> None:
    flaky = Flaky(failures=2, calls={})
    with ThreadedServer(flaky.app()) as server, LiteLLMAdmin(server.url, MASTER, retry_wait=0.01) as admin:
        assert admin.liveliness() == "I'm alive!"
        assert flaky.calls["/health/liveliness"] == 3
        assert admin.generate_key().alias == "a"  # 503 means "not acted": retried even for creation
        assert flaky.calls["/key/generate"] == 3

    always = Flaky(failures=100, calls={})
    with ThreadedServer(always.app()) as server, LiteLLMAdmin(server.url, MASTER, attempts=3, retry_wait=0.01) as admin:
        with pytest.raises(GatewayUnavailable) as down:
            admin.liveliness()
        assert down.value.status == 503 and always.calls["/health/liveliness"] == 3

    closed = f"http://127.0.0.1:{free_port()}"
    with LiteLLMAdmin(closed, MASTER, attempts=2, retry_wait=0.01) as admin, pytest.raises(GatewayUnavailable) as refused:
        admin.key_info("sk-" + "z" * 30)
    assert refused.value.status is None and refused.value.type == "connect_error"
    _no_secret(str(refused.value), secret="z" * 30)


def test_creation_is_not_retried_after_an_internal_error() -> None:
    async def boom(request: Request) -> Response:
        calls.append(request.url.path)
        return JSONResponse({"error": {"message": "boom", "type": None, "code": "500"}}, status_code=500)

    calls: list[str] = []
    app = Starlette(routes=[Route("/key/generate", boom, methods=["POST"])])
    with ThreadedServer(app) as server, LiteLLMAdmin(server.url, MASTER, retry_wait=0.01) as admin:
        with pytest.raises(GatewayUnavailable) as failed:
            admin.generate_key(key_alias="x")
    assert calls == ["/key/generate"] and "boom" in failed.value.message


def test_admin_requires_a_master_key() -> None:
    with pytest.raises(ValueError, match="master key"):
        LiteLLMAdmin("http://127.0.0.1:1", "")


# ----- a LiteLLM without a key database (no DATABASE_URL) -----

# The answers of LiteLLM 1.108.7 without a database, route by route.
NO_DB_ANSWERS = [
    ("POST /key/generate", 500, {"error": {"message": "{'error': 'DB not connected. This endpoint needs a database; set DATABASE_URL'}", "type": "internal_server_error", "param": None, "code": "500"}}),
    ("GET /key/info", 500, {"error": {"message": "Database not connected. Connect a database to your proxy", "type": "internal_server_error", "param": None, "code": "500"}}),
    ("POST /key/delete", 500, {"error": {"message": "Not connected to DB!", "type": "internal_server_error", "param": None, "code": "500"}}),
    ("POST /v1/chat/completions", 400, {"error": {"message": "No connected db.", "type": "no_db_connection", "param": None, "code": "400"}}),
]


@pytest.mark.parametrize(("route", "status", "body"), NO_DB_ANSWERS, ids=[a[0] for a in NO_DB_ANSWERS])
def test_no_key_database_is_recognized_on_every_route(route: str, status: int, body: dict) -> None:
    error = GatewayError.from_response(status, body, route)
    assert isinstance(error, NoKeyDatabase) and error.status == status
    assert str(error).startswith(f"{route}: HTTP {status}") and "the gateway has no key database" in str(error)


def _no_database_gateway(bare: bool) -> tuple[Starlette, list[str]]:
    """LiteLLM without a database: with the prisma package (JSON errors) or without (bare 500)."""
    calls: list[str] = []

    async def generate(request: Request) -> Response:
        calls.append(request.url.path)
        if bare:
            return Response("Internal Server Error", status_code=500)
        return JSONResponse(NO_DB_ANSWERS[0][2], status_code=500)

    async def readiness(request: Request) -> Response:
        return JSONResponse({"status": "healthy", "db": "Not connected"})

    app = Starlette(routes=[Route("/key/generate", generate, methods=["POST"]),
                            Route("/health/readiness", readiness)])
    return app, calls


@pytest.mark.parametrize("bare", [False, True], ids=["json-error", "bare-500"])
def test_gate_key_falls_back_to_the_master_key_once_said(bare: bool) -> None:
    app, calls = _no_database_gateway(bare)
    said: list[str] = []
    with ThreadedServer(app) as server, LiteLLMAdmin(server.url, MASTER, retry_wait=0.01) as admin:
        with gate_key(admin, alias="a", models=["m"], max_budget=0.1, notify=said.append) as key:
            assert key.value == MASTER and MASTER not in repr(key)
            assert key.key_name == "the master key (the gateway has no key database)"
        with gate_key(admin, alias="b", notify=said.append) as again:
            assert again.value == MASTER
    assert calls == ["/key/generate"]  # asked once; the second gate knew already
    assert len(said) == 1 and "has no key database" in said[0] and MASTER not in said[0]
    assert admin.has_key_database is False


def test_gate_key_warns_by_default() -> None:
    app, _ = _no_database_gateway(False)
    with ThreadedServer(app) as server, LiteLLMAdmin(server.url, MASTER) as admin:
        with pytest.warns(NoKeyDatabaseWarning, match="budget and per-key spend checks end as ERROR"):
            with gate_key(admin, alias="a"):
                pass


def test_gate_key_with_a_key_database_is_a_throwaway_key(env: Env) -> None:
    with gate_key(env.admin, alias="modelgate-t", models=["m1"], max_budget=0.5) as key:
        assert key.value != MASTER and env.gw.key_record(key.value) is not None
    assert env.gw.key_record(key.value) is None and env.admin.has_key_database is True


def test_budget_numbers_are_read_from_every_wording() -> None:
    for message in ("Budget has been exceeded! Current cost: 0.5, Max budget: 0.25",
                    "Budget has been exceeded! Key=gate (sk-...abcd) Current cost: 0.5, Max budget: 0.25",
                    "Budget has been exceeded! Key=ab12 Current cost: 0.5, Estimated request cost: 0.1, Max budget: 0.25"):
        error = GatewayError.from_response(422, {"error": {"message": message, "type": "budget_exceeded"}})
        assert isinstance(error, BudgetExceeded) and (error.spend, error.max_budget) == (0.5, 0.25)
