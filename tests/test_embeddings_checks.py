"""The embeddings checks against the reference embedding backends: a correct one passes,
each faulty one is rejected for its own fault."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from evals.embeddings import (
    EmbeddingsGate,
    Triplet,
    check_base64,
    check_batch_limit,
    check_overlength,
    check_registered,
    check_triplets,
    decode_base64,
    judge_embeddings,
    load_triplets,
    run_embedding_checks,
)
from evals.model_calls import RetryPolicy
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_embeddings import ReferenceEmbeddingBackend

ROOT = Path(__file__).resolve().parents[1]
TRIPLETS = load_triplets(ROOT / "fixtures" / "embedding_triplets.json")
MODEL = "reference-embed"
GATE = EmbeddingsGate(dimensions=384, min_triplet_rate=0.9, normalization_tolerance=1e-3,
                      batch_cosine_min=0.999, max_input_tokens=512, max_batch_size=32)
ONCE = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)


def _client(server: ThreadedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test-embed", max_retries=0)


def _checks(backend: ReferenceEmbeddingBackend):
    with ThreadedServer(backend.app) as server:
        return run_embedding_checks(_client(server), MODEL, GATE, TRIPLETS, policy=ONCE)


def test_correct_backend_passes_every_check() -> None:
    backend = ReferenceEmbeddingBackend("correct")
    checks = _checks(backend)
    verdict = judge_embeddings(checks)
    assert verdict.verdict == "pass", verdict.reason
    assert verdict.status == "embeddings checks 8/8 passed"
    by_name = {c.name: c for c in checks}
    assert by_name["overlength_input"].details["handling"] == "refused"
    assert "refused 413" in by_name["overlength_input"].reason
    assert "refused 422" in by_name["batch_over_limit"].reason
    assert by_name["usage"].details["prompt_tokens"] > 0
    formats = {b.get("encoding_format") for b in backend.requests}
    assert formats == {"float", "base64"}  # floats asked for explicitly, base64 once


@pytest.mark.parametrize(("mode", "failing", "words"), [
    ("wrong_dimension", "dimension", "383 != expected 384"),
    ("unnormalized", "normalized", "> 0.001"),
    ("batch_inconsistent", "batch_consistency", "< 0.999"),
])
def test_faulty_backend_rejected_for_its_fault(mode: str, failing: str, words: str) -> None:
    checks = _checks(ReferenceEmbeddingBackend(mode))
    failed = [c for c in checks if c.outcome != "pass"]
    assert [c.name for c in failed] == [failing]
    assert words in failed[0].reason
    verdict = judge_embeddings(checks)
    assert verdict.verdict == "fail" and verdict.reason.startswith(f"{failing}: ")
    assert verdict.status == f"embeddings checks 7/8 passed ({failing} fail)"


def test_truncating_server_is_reported_as_truncating() -> None:
    backend = ReferenceEmbeddingBackend("correct", auto_truncate=True, max_batch_size=64)
    with ThreadedServer(backend.app) as server:
        long = check_overlength(_client(server), MODEL, 512, policy=ONCE)
        batch = check_batch_limit(_client(server), MODEL, 32, policy=ONCE)
    assert long.passed and long.details == {"handling": "truncated", "prompt_tokens": 512}
    assert long.reason == "input over 512 tokens: truncated (200)"
    assert batch.passed and batch.details["handling"] == "accepted"
    assert len(backend.requests[-1]["input"]) == 33


def test_refusal_without_explanation_fails() -> None:
    app = Starlette(routes=[Route("/v1/embeddings", lambda _r: Response(status_code=413),
                                  methods=["POST"])])
    with ThreadedServer(app) as server:
        check = check_overlength(_client(server), MODEL, 16, policy=ONCE)
    assert check.outcome == "fail" and "refused 413 without a message" in check.reason


def test_base64_that_disagrees_fails() -> None:
    vector = [0.6, 0.8]

    async def embeddings(request):
        body = json.loads(await request.body())
        values = [0.8, 0.6] if body.get("encoding_format") == "base64" else vector
        item = (base64.b64encode(struct.pack("<2f", *values)).decode()
                if body.get("encoding_format") == "base64" else values)
        data = [{"object": "embedding", "index": i, "embedding": item} for i in range(len(body["input"]))]
        return Response(json.dumps({"object": "list", "data": data, "model": MODEL,
                                    "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
                         media_type="application/json")

    with ThreadedServer(Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])) as server:
        check = check_base64(_client(server), MODEL, policy=ONCE)
    assert check.outcome == "fail" and check.details["max_abs_diff"] == pytest.approx(0.2, abs=1e-6)


def test_decode_base64_is_little_endian_float32() -> None:
    assert decode_base64(base64.b64encode(struct.pack("<3f", 1.0, -2.5, 0.25)).decode()) == [1.0, -2.5, 0.25]
    with pytest.raises(ValueError, match="not a whole number of float32"):
        decode_base64(base64.b64encode(b"\x00\x00\x80").decode())


def test_triplet_fixture_covers_code_search_and_text() -> None:
    assert 18 <= len(TRIPLETS) <= 24
    assert {t.domain for t in TRIPLETS} == {"code-search", "general"}
    assert len({t.id for t in TRIPLETS}) == len(TRIPLETS)


def test_swapped_triplets_fail_and_name_the_misses() -> None:
    swapped = [Triplet(id=t.id, domain=t.domain, anchor=t.anchor, paraphrase=t.unrelated,
                       unrelated=t.paraphrase) for t in TRIPLETS[:5]]
    with ThreadedServer(ReferenceEmbeddingBackend("correct").app) as server:
        check = check_triplets(_client(server), MODEL, swapped, 0.9, policy=ONCE)
    assert check.outcome == "fail" and check.details["passed"] == 0
    assert check.details["missed"] == [t.id for t in swapped]


def test_platform_that_does_not_answer_is_an_error() -> None:
    dead = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="x", max_retries=0)
    checks = run_embedding_checks(dead, MODEL, GATE, TRIPLETS[:2], policy=ONCE)
    assert {c.outcome for c in checks} == {"error"}
    verdict = judge_embeddings(checks)
    assert verdict.verdict == "error" and "connection" in verdict.reason


def test_bad_triplet_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "trips.json"
    bad.write_text(json.dumps({"triplets": [{"id": "x", "domain": "poetry", "anchor": "a",
                                             "paraphrase": "b", "unrelated": "c"}]}))
    with pytest.raises(ValueError, match="trips.json: not a valid triplet file"):
        load_triplets(bad)


def test_checks_hold_through_the_gateway_with_a_virtual_key() -> None:
    master = "sk-master-embed-test"
    backend = ReferenceEmbeddingBackend("correct")
    gateway = GatewayDouble(master)
    with ThreadedServer(backend.app) as backend_server:
        gateway.register_model(
            "embeddings", {"model": f"hosted_vllm/{MODEL}", "api_base": backend_server.url + "/v1"},
            {"mode": "embedding", "input_cost_per_token": 1e-7},
        )
        with ThreadedServer(gateway) as gateway_server:
            reply = httpx.post(gateway_server.url + "/key/generate", timeout=10,
                               headers={"Authorization": f"Bearer {master}"},
                               json={"models": ["embeddings"], "max_budget": 1.0})
            client = openai.OpenAI(base_url=gateway_server.url + "/v1",
                                   api_key=reply.json()["key"], max_retries=0)
            checks = run_embedding_checks(client, "embeddings", GATE, TRIPLETS, policy=ONCE)
    verdict = judge_embeddings(checks)
    assert verdict.verdict == "pass", verdict.reason
    by_name = {c.name: c for c in checks}
    assert by_name["overlength_input"].details["handling"] == "refused"  # the 413 passes through
    assert by_name["overlength_input"].details["status"] == 413


# -- registration at the gateway -----------------------------------------------------------------
PRICE = 1e-7


def _registered(info: dict | None, *, alias: str = "embeddings", key_models: list[str] | None = None,
                reader=None):
    """check_registered against a gateway double with `alias` registered with `info`."""
    master = "sk-master-registered-test"
    gateway = GatewayDouble(master)
    if info is not None:
        gateway.register_model(alias, {"model": f"hosted_vllm/{MODEL}",
                                       "api_base": "http://127.0.0.1:9/v1"}, info)
    with ThreadedServer(gateway) as server:
        auth = {"Authorization": f"Bearer {master}"}
        key = httpx.post(server.url + "/key/generate", headers=auth, timeout=10,
                         json={"models": key_models or []}).json()["key"]
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)

        def model_info() -> list[dict]:
            return httpx.get(server.url + "/model/info", headers=auth, timeout=10).json()["data"]

        return check_registered(client, "embeddings", reader or model_info,
                                input_cost_per_token=PRICE, policy=ONCE)


def test_registered_embedding_alias_with_its_price_passes() -> None:
    check = _registered({"mode": "embedding", "input_cost_per_token": PRICE, "output_vector_size": 384})
    assert check.passed, check.reason
    assert check.details == {"mode": "embedding", "input_cost_per_token": PRICE, "output_vector_size": 384}


@pytest.mark.parametrize(("info", "words"), [
    ({"mode": "chat", "input_cost_per_token": PRICE}, "mode is 'chat', not 'embedding'"),
    ({"mode": "embedding"}, "no input price (0.0): its budgets can never bind"),
    ({"mode": "embedding", "input_cost_per_token": 2 * PRICE}, "input price 2e-07 USD/token != the catalog's 1e-07"),
])
def test_misregistered_alias_fails(info: dict, words: str) -> None:
    check = _registered(info)
    assert check.outcome == "fail" and words in check.reason


def test_alias_the_key_cannot_see_fails() -> None:
    check = _registered({"mode": "embedding", "input_cost_per_token": PRICE}, key_models=["other"])
    assert check.outcome == "fail" and "'embeddings' is not in /v1/models for this key" in check.reason


def test_unreadable_model_info_is_an_error_without_the_key() -> None:
    def broken() -> list[dict]:
        raise RuntimeError("GET /model/info with sk-master-registered-test failed")

    check = _registered({"mode": "embedding", "input_cost_per_token": PRICE}, reader=broken)
    assert check.outcome == "error" and "no answer from GET /model/info" in check.reason
    assert "sk-master" not in check.reason
