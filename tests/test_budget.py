"""Budget binding: passes against the gateway double as every LiteLLM build refuses (422 by
default since v1.104.0, 429 and 400 before; fail-closed reservations one request earlier), fails
against scripted fake gateways that break the budget contract, and errors when nothing answers.
The budget gates (embeddings, coder-agent) pass against each build, run as a user runs them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evals.budget import BUDGET_PROBE, KNOWN_BUDGET_STATUSES, run_budget_binding
from evals.model_calls import RetryPolicy
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_embeddings import ReferenceEmbeddingBackend
from tests.gate_runs import run_gates

PRICE = 1e-7  # the catalog's embeddings price: 0.1 USD per 1M tokens
BUDGET = 2e-5
MASTER = "sk-master-budget-test"
ONCE = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)
TOKENS = len(BUDGET_PROBE.split())  # the reference backend counts words as tokens
# check-before-call: the request that crosses the budget completes, the next is refused
CROSSING = math.ceil(BUDGET / (TOKENS * PRICE))


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def backend() -> Iterator[ReferenceEmbeddingBackend]:
    backend = ReferenceEmbeddingBackend("correct").start()
    try:
        yield backend
    finally:
        backend.stop()


def _gateway(backend_url: str, *, budget_status: int, price: float | None = PRICE,
             fail_closed: bool = False) -> GatewayDouble:
    gateway = GatewayDouble(MASTER, budget_status=budget_status, fail_closed_budget=fail_closed)
    info = {"mode": "embedding"} | ({"input_cost_per_token": price} if price is not None else {})
    gateway.register_model(
        "embeddings", {"model": "hosted_vllm/reference-embed", "api_base": backend_url}, info
    )
    return gateway


def _key(gateway_url: str, budget: float) -> str:
    reply = httpx.post(gateway_url + "/key/generate", headers={"Authorization": f"Bearer {MASTER}"},
                       json={"models": ["embeddings"], "max_budget": budget}, timeout=10)
    reply.raise_for_status()
    return reply.json()["key"]


@pytest.mark.parametrize("status", KNOWN_BUDGET_STATUSES)
def test_gateway_double_budget_binds_in_every_build(backend, status: int) -> None:
    gateway = _gateway(backend.base_url, budget_status=status)
    with ThreadedServer(gateway) as server:
        key = _key(server.url, BUDGET)
        result = run_budget_binding(
            _client(server.url, key), "embeddings", max_budget=BUDGET, input_cost_per_token=PRICE,
            read_spend=lambda: gateway.spend_of(key), policy=ONCE,
        )
    assert result.outcome == "pass", result.reason
    assert result.refusal_status == status
    assert result.answered == CROSSING and result.over_budget_answers == 1
    assert result.requests[-1].error_type == "budget_exceeded"
    assert result.expected_spend == pytest.approx(CROSSING * TOKENS * PRICE, rel=1e-9)
    assert result.reported_spend == pytest.approx(result.expected_spend, rel=1e-9)
    assert all(r.reported_cost == pytest.approx(TOKENS * PRICE) for r in result.requests[:-1])
    assert result.reason.startswith(f"refused with {status} budget_exceeded after {CROSSING} answered")
    assert "sk-" not in result.model_dump_json().replace("sk-***", "")  # no key in the report


def test_fail_closed_reservation_refuses_one_request_earlier_and_passes(backend) -> None:
    # The worst case of an embedding is its input's cost; once it no longer fits what is left,
    # fail-closed enforcement refuses instead of shrinking the reservation.
    gateway = _gateway(backend.base_url, budget_status=422, fail_closed=True)
    with ThreadedServer(gateway) as server:
        key = _key(server.url, BUDGET)
        result = run_budget_binding(
            _client(server.url, key), "embeddings", max_budget=BUDGET, input_cost_per_token=PRICE,
            read_spend=lambda: gateway.spend_of(key), policy=ONCE,
        )
    assert result.outcome == "pass", result.reason
    assert result.refusal_status == 422 and result.over_budget_answers == 0
    assert result.answered < CROSSING
    message = result.requests[-1].message  # named by type, whatever the wording
    assert "Budget has been exceeded! Key=" in message and "Estimated request cost: " in message


def test_a_model_without_a_price_never_binds(backend) -> None:
    gateway = _gateway(backend.base_url, budget_status=422, price=None)
    with ThreadedServer(gateway) as server:
        key = _key(server.url, BUDGET)
        result = run_budget_binding(
            _client(server.url, key), "embeddings", max_budget=BUDGET, input_cost_per_token=PRICE,
            read_spend=lambda: gateway.spend_of(key), policy=ONCE, spend_timeout_s=0.5,
        )
    assert result.outcome == "fail"
    assert "never refused" in result.reason
    assert "reports spend 0 USD" in result.reason  # the gateway charged nothing
    assert result.answered == CROSSING + 3  # stopped soon after the budget, not at max_requests


class FakeBudgetGateway:
    """A scripted fake gateway (a stand-in, not LiteLLM): answers `/v1/embeddings` with
    `TOKENS` prompt tokens, charges `charge_factor` times the price, and refuses when
    `refuse(spend, cost)` says so, with `refusal = (status, error.type)`."""

    def __init__(self, refuse: Callable[[float, float], bool], *,
                 refusal: tuple[int, str] = (429, "budget_exceeded"),
                 charge_factor: float = 1.0, cost_header_factor: float = 1.0) -> None:
        self.refuse = refuse
        self.refusal = refusal
        self.charge_factor = charge_factor
        self.cost_header_factor = cost_header_factor
        self.spend = 0.0
        self.answered = 0
        self.app = Starlette(routes=[Route("/v1/embeddings", self._embeddings, methods=["POST"])])

    async def _embeddings(self, request: Request) -> JSONResponse:
        cost = TOKENS * PRICE
        if self.refuse(self.spend, cost):
            status, kind = self.refusal
            return JSONResponse({"error": {"message": f"scripted refusal at {self.spend}",
                                           "type": kind, "param": None, "code": str(status)}},
                                status_code=status)
        self.answered += 1
        self.spend += cost * self.charge_factor
        body = {"object": "list", "model": "m", "usage": {"prompt_tokens": TOKENS, "total_tokens": TOKENS},
                "data": [{"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}]}
        headers = {"x-litellm-response-cost": str(cost * self.cost_header_factor),
                   "x-litellm-key-spend": str(self.spend)}
        return JSONResponse(body, headers=headers)


def _run(fake: FakeBudgetGateway, **kwargs):
    with ThreadedServer(fake.app) as server:
        return run_budget_binding(
            _client(server.url, "sk-fake-key-0000"), "m", max_budget=BUDGET,
            input_cost_per_token=PRICE, read_spend=lambda: fake.spend, policy=ONCE,
            spend_timeout_s=0.5, spend_interval_s=0.05, **kwargs,
        )


def test_fake_gateway_with_the_contract_passes() -> None:
    result = _run(FakeBudgetGateway(lambda spend, cost: spend >= BUDGET))
    assert result.outcome == "pass", result.reason
    assert result.answered == CROSSING and result.refusal_status == 429


def test_gateway_that_never_refuses_fails_within_the_bound() -> None:
    fake = FakeBudgetGateway(lambda spend, cost: False)
    result = _run(fake, allowed_over_budget=1)
    assert result.outcome == "fail"
    assert result.reason.startswith(f"never refused: {CROSSING + 3} requests answered")
    assert fake.answered == CROSSING + 3  # stopped three answers past the crossing one
    assert result.refusal_status is None


def test_gateway_that_never_refuses_is_bounded_by_max_requests() -> None:
    fake = FakeBudgetGateway(lambda spend, cost: False)
    result = _run(fake, max_requests=4)
    assert result.outcome == "fail" and fake.answered == 4
    assert "never refused: 4 requests answered" in result.reason


def test_refusing_late_fails_check_before_call() -> None:
    # Refuses only after two requests past the crossing one (a check after the call, or lag).
    result = _run(FakeBudgetGateway(lambda spend, cost: spend >= BUDGET + 2.5 * cost))
    assert result.outcome == "fail"
    assert result.over_budget_answers == 3
    assert "3 requests completed at or past the budget before the refusal (at most 1" in result.reason


def test_reserving_the_cost_up_front_passes() -> None:
    # Newer LiteLLM refuses a request whose cost would not fit: one request earlier.
    result = _run(FakeBudgetGateway(lambda spend, cost: spend + cost > BUDGET))
    assert result.outcome == "pass", result.reason
    assert result.answered == CROSSING - 1 and result.over_budget_answers == 0


def test_refusal_of_another_type_fails() -> None:
    fake = FakeBudgetGateway(lambda spend, cost: spend >= BUDGET, refusal=(429, "rate_limit_error"))
    result = _run(fake)
    assert result.outcome == "fail"
    assert "refused with 429 [rate_limit_error] instead of budget_exceeded" in result.reason


@pytest.mark.parametrize("status", [*KNOWN_BUDGET_STATUSES, 403])
def test_budget_refusal_is_named_by_type_whatever_its_status(status: int) -> None:
    # A settable status (`budget_exceeded_status_code`): the type identifies the refusal, the
    # status is recorded. A false FAIL against a current (422) gateway is what this prevents.
    fake = FakeBudgetGateway(lambda spend, cost: spend >= BUDGET, refusal=(status, "budget_exceeded"))
    result = _run(fake)
    assert result.outcome == "pass", result.reason
    assert result.refusal_status == status
    assert result.reason.startswith(f"refused with {status} budget_exceeded")


def test_refusal_with_budget_left_fails() -> None:
    result = _run(FakeBudgetGateway(lambda spend, cost: spend >= BUDGET / 2))
    assert result.outcome == "fail"
    assert "still had room for the request" in result.reason


def test_spend_that_is_not_tokens_times_price_fails() -> None:
    result = _run(FakeBudgetGateway(lambda spend, cost: spend >= BUDGET, charge_factor=2.0))
    assert result.outcome == "fail"
    assert f"{math.ceil(CROSSING / 2) * TOKENS} tokens at the given prices cost" in result.reason


def test_wrong_cost_header_fails() -> None:
    result = _run(FakeBudgetGateway(lambda spend, cost: spend >= BUDGET, cost_header_factor=1.5))
    assert result.outcome == "fail"
    assert "request 0: x-litellm-response-cost" in result.reason


def test_unreadable_spend_is_an_error_and_redacted() -> None:
    fake = FakeBudgetGateway(lambda spend, cost: spend >= BUDGET)

    def broken() -> float:
        raise RuntimeError("GET /key/info?key=sk-secret-key-123456 failed")

    with ThreadedServer(fake.app) as server:
        result = run_budget_binding(
            _client(server.url, "sk-fake-key-0000"), "m", max_budget=BUDGET,
            input_cost_per_token=PRICE, read_spend=broken, policy=ONCE,
        )
    assert result.outcome == "error" and "could not read the key's spend" in result.reason
    assert "sk-secret" not in result.reason


def test_gateway_that_does_not_answer_is_an_error() -> None:
    dead = _client(f"http://127.0.0.1:{free_port()}", "sk-fake-key-0000")
    result = run_budget_binding(dead, "m", max_budget=BUDGET, input_cost_per_token=PRICE,
                                read_spend=lambda: 0.0, policy=ONCE)
    assert result.outcome == "error" and result.answered == 0
    assert "request 0 got no answer" in result.reason


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="max_budget must be > 0"):
        run_budget_binding(_client("http://127.0.0.1:9", "k"), "m", max_budget=0,
                           input_cost_per_token=PRICE, read_spend=lambda: 0.0)


# -- the budget gates, run as a user runs them, against each build's refusal --------------------
@pytest.mark.parametrize("status", KNOWN_BUDGET_STATUSES)
def test_embeddings_budget_gate_passes_against_each_build(tmp_path, status: int) -> None:
    run = run_gates("-m", "embeddings", "--control", "known-good", f"--budget-status={status}",
                    outputs=tmp_path)
    record = run.record("embeddings")
    assert run.returncode == 0 and record.verdict == "pass", record.reason
    assert record.extra["checks"]["budget_binding"] == "pass"
    assert record.extra["budget_refusal_status"] == status  # recorded, whatever it is


@pytest.mark.parametrize("status", KNOWN_BUDGET_STATUSES)
def test_coder_agent_spend_gate_passes_against_each_build(tmp_path, status: int) -> None:
    run = run_gates("-m", "coder-agent", "-k", "tool_loop", "--control", "known-good",
                    f"--budget-status={status}", "--tool-loop-limit=2", outputs=tmp_path)
    record = run.record("tool_loop")
    assert run.returncode == 0 and record.verdict == "pass", record.reason
    spend = record.extra["spend"]
    assert spend["problem"] == "" and spend["gate_spend_usd"] > 0
    assert spend["max_budget_usd"] == pytest.approx(1.0)  # the catalog's budget held the key
