"""Every gate path that needs no virtual key, through the real LiteLLM proxy and the double.

The evals' own functions run with an OpenAI client pointed at the gateway and its master key,
against the known-good reference backends: a path the real proxy breaks (a dropped field, a
mangled prompt, a stream that loses its usage, a missing cost header) fails here.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from deploy.local import EGRESS_PLACEHOLDER_KEY, litellm_params
from deploy.route_check import route_check
from evals.embeddings import check_registered, load_triplets, run_embedding_checks
from evals.fim import compare_transports, load_fim_cases, run_fim, score_fim
from evals.humaneval import load_problems, load_subset, run_humaneval, select
from evals.latency import load_prompt_set, run_benchmark
from evals.tool_loop import SCENARIOS, run_tool_loops
from evals.usage import Prices, UsageSettings, run_usage_checks
from gates.kinds.embeddings.judge import gate_settings
from tests.conformance.conftest import Gateway

REPO = Path(__file__).resolve().parents[2]

def _client(gateway: Gateway, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.master_key, max_retries=0,
                         timeout=kwargs.pop("timeout", 120), **kwargs)


@pytest.mark.parametrize("alias", ["qwen-local", "coder-chat", "coder-fim", "coder-agent",
                                   "embeddings", "claude-haiku"])
def test_route_check_lists_and_answers_every_alias(gateway: Gateway, catalog, alias: str) -> None:
    result = route_check(gateway.url, gateway.master_key, catalog.get(alias))
    assert result.ok, result.detail
    assert gateway.master_key not in result.detail


def test_models_and_model_info_carry_the_catalog(gateway: Gateway, catalog) -> None:
    assert sorted(gateway.admin.list_models()) == sorted(catalog.names)
    entries = {entry.model_name: entry for entry in gateway.admin.model_info()}
    assert sorted(entries) == sorted(catalog.names)
    for alias in catalog.names:
        entry, info = catalog.get(alias), entries[alias].model_info
        assert "api_key" not in entries[alias].litellm_params
        assert entries[alias].litellm_params["model"].endswith("/" + entry.served_model_name)
        assert info["mode"] == entry.mode and info["id"]
        assert info["input_cost_per_token"] == pytest.approx(entry.price.input_per_token)
        assert (info.get("output_cost_per_token") or 0) == pytest.approx(entry.price.output_per_token)


def test_humaneval_through_the_gateway(gateway: Gateway, catalog, tmp_path) -> None:
    config = catalog.get("coder-chat").gate("humaneval")
    problems = select(load_problems(cache_dir=tmp_path / "datasets"),
                      load_subset(REPO / config.promotion_subset).task_ids[:6])
    result = run_humaneval(_client(gateway), "coder-chat", problems, max_tokens=512, concurrency=3,
                           progress=False)
    assert (result.passed, result.errors, result.sandbox_errors) == (6, 0, 0)  # canonical answers
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


def test_fim_prompts_pass_unchanged_and_score(gateway: Gateway, catalog, api_bases) -> None:
    entry = catalog.get("coder-fim")
    cases = load_fim_cases(REPO / "fixtures" / "fim_cases.json", entry.fim_family)[:8]
    direct = run_fim(openai.OpenAI(base_url=api_bases["coder-fim"], api_key="none", max_retries=0),
                     entry.served_model_name, cases, entry.fim_family, label="direct", concurrency=2)
    through = run_fim(_client(gateway), "coder-fim", cases, entry.fim_family, label="vkey",
                      concurrency=2)
    assert through.all_answered, [r.error for r in through.results if not r.answered]
    # The backend answers a case's true middle only for its exact prompt: equal middles mean
    # the gateway forwarded every prompt byte for byte.
    assert [r.middle for r in through.results] == [r.middle for r in direct.results]
    comparison = compare_transports(direct, through)
    assert comparison.ok, comparison.reason  # LiteLLM names the alias, the double the served name
    assert comparison.direct_models == [entry.served_model_name]
    assert comparison.gateway_models in (["coder-fim"], [entry.served_model_name])
    score = score_fim(through, cases)
    assert score.functional == len(cases) and score.mangled == 0
    priced = entry.price.input_per_token * through.results[0].prompt_tokens
    assert all(r.response_cost is not None for r in through.results)  # cost headers on completions
    assert through.results[0].response_cost >= priced


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_tool_loops_through_the_gateway(gateway: Gateway, stream: bool) -> None:
    results = run_tool_loops(_client(gateway), "coder-agent", list(SCENARIOS)[:3], stream=stream,
                             concurrency=3)
    assert all(r.passed for r in results), [r.reason or r.platform_error for r in results]
    assert all(r.calls and r.prompt_tokens > 0 for r in results)
    if not stream:  # cost headers come with non-streamed answers
        assert all(cost is not None and cost > 0 for r in results for cost in r.costs)


def test_embeddings_checks_through_the_gateway(gateway: Gateway, catalog) -> None:
    entry = catalog.get("embeddings")
    client = _client(gateway)
    checks = [check_registered(client, "embeddings",
                               lambda: [m.model_dump() for m in gateway.admin.model_info()],
                               input_cost_per_token=entry.price.input_per_token)]
    settings = gate_settings(entry, entry.gate("embeddings"), entry.dimensions or 384)
    checks += run_embedding_checks(client, "embeddings", settings,
                                   load_triplets(REPO / "fixtures" / "embedding_triplets.json"))
    failed = {c.name: c.reason for c in checks if c.outcome != "pass"}
    assert not failed


def test_latency_streams_through_the_gateway(gateway: Gateway, catalog) -> None:
    gate = catalog.get("qwen-local").gate("latency")
    result = run_benchmark(_client(gateway), "qwen-local", load_prompt_set(gate.prompts_path),
                           max_tokens=32, concurrency=2, requests=8, warmup=1, progress=False)
    summary = result.summary
    assert (summary.requests, summary.ok, summary.errors) == (8, 8, 0)
    assert all(row.ttft_ms is not None and row.output_tokens > 1 for row in result.rows)


def test_usage_normalization_through_the_gateway(gateway: Gateway, catalog) -> None:
    entry = catalog.get("claude-haiku")
    result = run_usage_checks(
        _client(gateway), "claude-haiku", convention=entry.usage_convention,
        prices=Prices(input_per_token=entry.price.input_per_token,
                      output_per_token=entry.price.output_per_token),
        settings=UsageSettings.model_validate(
            entry.gate("usage").model_dump(include=set(UsageSettings.model_fields))),
    )
    failed = {c.name: c.reason for c in result.checks if c.outcome != "pass"}
    assert not failed
    # The cached calls were billed as LiteLLM bills them (cache taken out of prompt_tokens, at
    # the input price), not at list price x (prompt + completion).
    cost = next(c for c in result.checks if c.name == "response_cost").details["costs"]
    read = cost["cache_read"]
    assert read["usage"]["prompt_tokens_details"]["cached_tokens"] > read["usage"]["prompt_tokens"]
    assert float(read["header"]) == pytest.approx(read["expected"], rel=1e-6)
    assert read["expected"] > (read["usage"]["prompt_tokens"] * entry.price.input_per_token
                               + read["usage"]["completion_tokens"] * entry.price.output_per_token)
    # LiteLLM's usage chunk (the double's too): one empty-delta choice, not vLLM's `choices: []`.
    stream = next(r for r in result.replies if r.probe == "stream")
    assert stream.chunks[-1]["choices"] == [{"index": 0, "delta": {}}]
    assert {chunk.get("model") for chunk in stream.chunks} == {"claude-haiku"}  # the alias


def test_openai_routes_carry_a_placeholder_key_never_shown(gateway: Gateway, catalog) -> None:
    """LiteLLM's openai/ provider needs an api_key (500 "Missing credentials" without one):
    the local deployer registers a placeholder (the egress holds the provider key)."""
    entry = catalog.get("claude-haiku")
    assert litellm_params(entry, "http://egress.invalid/v1")["api_key"] == EGRESS_PLACEHOLDER_KEY
    assert "api_key" not in litellm_params(catalog.get("coder-chat"), "http://vllm.invalid/v1")
    info = {e.model_name: e for e in gateway.admin.model_info()}["claude-haiku"]
    assert "api_key" not in info.litellm_params  # /model/info never shows it
