"""The FIM eval: prompt formats, cases, hygiene, transport, scoring and the verdict,
against the reference FIM backends."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware

from evals.fim import (
    FAMILIES,
    MAX_STOP_STRINGS,
    FimCallResult,
    FimCaseScore,
    FimFamily,
    FimRun,
    FimScore,
    RepoFile,
    build_fim_prompt,
    compare_transports,
    judge_fim,
    load_fim_cases,
    mangled_reasons,
    request_stop_tokens,
    run_fim,
    runs_past_suffix,
    score_fim,
    stop_tokens,
)
from evals.model_calls import RetryPolicy
from fixtures import make_fim_cases
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_fim import ReferenceFimBackend

ROOT = Path(__file__).resolve().parents[1]
CASES_FILE = ROOT / "fixtures" / "fim_cases.json"
QWEN = "qwen2.5-coder"
MODEL = "reference-fim"
ONCE = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)


class _RecordingCheck:
    """An injected checker: records what it was given and calls a middle right if it is the truth."""

    def __init__(self, cases) -> None:
        self.truth = {c.prefix: c.middle + c.suffix for c in cases}
        self.calls: list[tuple[dict, str]] = []

    def __call__(self, problem: dict, completion: str) -> SimpleNamespace:
        self.calls.append((problem, completion))
        right = any(problem["prompt"].endswith(p) and completion == t for p, t in self.truth.items())
        return SimpleNamespace(status="passed" if right else "failed")


def _client(server: ThreadedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test-fim", max_retries=0)


@pytest.fixture(scope="module")
def qwen_cases():
    return load_fim_cases(CASES_FILE, QWEN)


def _serve(cases, mode="truth", **kwargs):
    backend = ReferenceFimBackend(cases, mode, **kwargs)
    return backend, ThreadedServer(backend.app).start()


# ---- prompt formats (CONTRACTS.md §3) -------------------------------------------------------

@pytest.mark.parametrize(("fim_family", "expected"), [
    ("qwen2.5-coder", "<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>"),
    ("starcoder2", "<fim_prefix>P<fim_suffix>S<fim_middle>"),
    ("starcoder", "<fim_prefix>P<fim_suffix>S<fim_middle>"),
    ("codellama", "<PRE> P <SUF>S <MID>"),
    ("deepseek-coder", "<｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>"),
])
def test_prompt_format_per_family(fim_family: str, expected: str) -> None:
    assert build_fim_prompt(fim_family, "P", "S") == expected


def test_stop_tokens_are_the_contract_strings() -> None:
    assert stop_tokens(QWEN) == [
        "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
        "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>",
    ]
    assert stop_tokens("starcoder2") == ["<|endoftext|>", "<file_sep>"]
    assert stop_tokens("codellama") == ["<EOT>"]
    assert stop_tokens("deepseek-coder") == ["<｜end▁of▁sentence｜>"]


def test_requests_carry_at_most_four_stops() -> None:
    """vLLM (VLLM_MAX_STOP_STRINGS) and the OpenAI API refuse a `stop` list longer than four."""
    for name, fam in FAMILIES.items():
        sent = request_stop_tokens(name)
        assert 1 <= len(sent) <= MAX_STOP_STRINGS and set(sent) <= set(fam.stops), name
    assert request_stop_tokens(QWEN) == ["<|endoftext|>", "<|file_sep|>", "<|fim_prefix|>", "<|fim_middle|>"]
    with pytest.raises(ValueError, match="at most 4 stop strings"):
        FimFamily.model_validate({**FAMILIES[QWEN].model_dump(), "wire_stops": ()})


def test_reference_backend_refuses_five_stops_as_vllm_does(qwen_cases) -> None:
    _backend, server = _serve(qwen_cases[:1])
    try:
        reply = httpx.post(server.url + "/v1/completions", timeout=10, json={
            "model": MODEL, "prompt": qwen_cases[0].prompt(QWEN), "stop": stop_tokens(QWEN)[:5]})
    finally:
        server.stop()
    assert reply.status_code == 400 and "at most 4 items" in reply.json()["error"]["message"]


def test_unknown_family_is_named() -> None:
    with pytest.raises(ValueError, match="unknown fim_family 'gpt-fim'.*qwen2.5-coder"):
        build_fim_prompt("gpt-fim", "a", "b")


def test_repo_level_prompt_for_qwen_only() -> None:
    files = [RepoFile(path="util.py", content="def f():\n    return 1")]
    prompt = build_fim_prompt(QWEN, "x = ", "\n", repo="demo", path="main.py", context_files=files)
    assert prompt == ("<|repo_name|>demo\n<|file_sep|>util.py\ndef f():\n    return 1\n"
                      "<|file_sep|>main.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>")
    with pytest.raises(ValueError, match="no repository-level format"):
        build_fim_prompt("starcoder2", "x", "y", repo="demo", path="main.py")


# ---- the cases fixture ----------------------------------------------------------------------

def test_fixture_is_what_the_generator_writes() -> None:
    assert CASES_FILE.read_text(encoding="utf-8") == make_fim_cases.render(make_fim_cases.build())


def test_fixture_holds_single_multi_and_repo_cases(qwen_cases) -> None:
    kinds = [c.kind for c in qwen_cases]
    assert kinds.count("single-line") == 10 and kinds.count("multi-line") == 10
    assert kinds.count("repo") == 3
    assert all(c.middle.count("\n") == 1 for c in qwen_cases if c.kind == "single-line")
    assert all(c.middle.count("\n") >= 2 for c in qwen_cases if c.kind == "multi-line")
    for case in qwen_cases:  # the truth is clean, or the hygiene check would flag good models
        assert mangled_reasons(case.middle, case.suffix) == [], case.case_id
    repo = [c for c in qwen_cases if c.kind == "repo"]
    assert all(c.context_files and f"from {c.context_files[0].path[:-3]} import" in c.prefix for c in repo)


def test_families_without_repo_format_get_no_repo_cases(qwen_cases) -> None:
    star = load_fim_cases(CASES_FILE, "starcoder2")
    assert len(star) == len(qwen_cases) - 3 and all(c.repo is None for c in star)
    with pytest.raises(ValueError, match="repository-level"):
        run_fim(openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x"), MODEL,
                qwen_cases, "starcoder2")


def test_bad_case_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "cases.json"
    bad.write_text(json.dumps({"source": "x", "seed": 1, "cases": [{"case_id": "a"}]}))
    with pytest.raises(ValueError, match="cases.json: not a valid FIM case file"):
        load_fim_cases(bad)


# ---- hygiene ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["<|fim_middle|>", "<fim_suffix>", "<MID>", "<｜fim▁hole｜>", "<|im_end|>"])
def test_any_familys_control_token_is_mangled(token: str) -> None:
    assert mangled_reasons(f"    x = 1\n{token}", "    return x\n") == [f"control token {token}"]


def test_run_on_past_the_suffix() -> None:
    suffix = "\n    return total\n"
    assert runs_past_suffix("    total = 0\n    return total\n", suffix)
    assert runs_past_suffix("    total = 0\n    return to", suffix)  # cut off inside the suffix line
    assert not runs_past_suffix("    total = 0\n", suffix)
    assert not runs_past_suffix("    total = 0\n    r", suffix)  # too little to tell
    assert not runs_past_suffix("    anything\n", "\n\n")


# ---- transport, scoring and verdicts over the reference backends ------------------------------

def test_true_middles_pass_over_two_transports(qwen_cases) -> None:
    backend, server = _serve(qwen_cases)
    try:
        direct = run_fim(_client(server), MODEL, qwen_cases, QWEN, max_tokens=64, policy=ONCE)
        vkey = run_fim(_client(server), MODEL, qwen_cases, QWEN, label="vkey", policy=ONCE)
    finally:
        server.stop()
    assert [r.case_id for r in direct.results] == [c.case_id for c in qwen_cases]
    assert all(r.answered and r.status == 200 and r.served_model == MODEL for r in direct.results)
    assert len(backend.requests) == 2 * len(qwen_cases)
    for body in backend.requests:  # the client formats the prompt itself and never sends suffix
        assert "suffix" not in body
        assert body["stop"] == request_stop_tokens(QWEN) and body["temperature"] == 0
    assert {b["max_tokens"] for b in backend.requests[: len(qwen_cases)]} == {64}
    assert {b["prompt"] for b in backend.requests} == {c.prompt(QWEN) for c in qwen_cases}
    assert any(b["prompt"].startswith("<|repo_name|>") for b in backend.requests)

    comparison = compare_transports(direct, vkey)
    assert comparison.ok and comparison.direct_models == [MODEL]
    score = score_fim(direct, qwen_cases)  # the code sandbox runs every filled hole
    assert score.functional == score.exact == len(qwen_cases) and score.mangled == 0
    assert score.mean_edit_similarity == 1.0
    verdict = judge_fim(score, 0.6, 0.2, comparison=comparison)
    assert verdict.verdict == "pass", verdict.reason
    total = len(qwen_cases)
    assert verdict.status == f"FIM /v1/completions 200 (direct + vkey), functional {total}/{total} [95% CI 86-100%]"


def test_control_tokens_are_flagged_mangled(qwen_cases) -> None:
    cases = qwen_cases[:4]
    _backend, server = _serve(cases, "control_tokens")
    try:
        run = run_fim(_client(server), MODEL, cases, QWEN, policy=ONCE)
    finally:
        server.stop()
    score = score_fim(run, cases)
    assert score.mangled == len(cases) and score.functional == 0
    assert all("control token <|fim_middle|>" in c.mangled_reasons for c in score.cases)
    verdict = judge_fim(score, 0.5, 0.2)
    assert verdict.verdict == "fail"
    assert "an instruct model or a chat template in the path" in verdict.reason
    assert verdict.status == "FIM /v1/completions 200 (direct), functional 0/4 [95% CI 0-49%], mangled 4/4 [95% CI 51-100%]"
    with pytest.raises(ValueError, match="max_mangled_rate must be within 0..1"):
        judge_fim(score, 0.5, 20)


def test_whole_function_again_does_not_pass(qwen_cases) -> None:
    cases = qwen_cases[::4]  # every kind, repo-level included
    assert {c.kind for c in cases} == {"single-line", "multi-line", "repo"}
    _backend, server = _serve(cases, "whole_function")
    try:
        run = run_fim(_client(server), MODEL, cases, QWEN, policy=ONCE)
    finally:
        server.stop()
    score = score_fim(run, cases)
    assert score.exact == 0 and score.mean_edit_similarity < 0.5
    with_suffix = [c for c in cases if c.suffix.strip()]
    assert score.mangled == len(with_suffix)  # each runs on past its suffix
    verdict = judge_fim(score, 0.6, 0.2)
    assert verdict.verdict == "fail" and "mangled" in verdict.reason


@pytest.mark.parametrize("fim_family", ["starcoder2", "codellama", "deepseek-coder"])
def test_other_families_round_trip(fim_family: str) -> None:
    cases = load_fim_cases(CASES_FILE, fim_family)[:3]
    backend, server = _serve(cases)
    try:
        run = run_fim(_client(server), MODEL, cases, fim_family, policy=ONCE)
    finally:
        server.stop()
    assert [r.middle for r in run.results] == [c.middle for c in cases]
    assert all(b["stop"] == request_stop_tokens(fim_family) for b in backend.requests)
    assert sorted(b["prompt"] for b in backend.requests) == sorted(
        build_fim_prompt(fim_family, c.prefix, c.suffix) for c in cases)


def test_response_cost_header_is_kept(qwen_cases) -> None:
    class CostHeader(BaseHTTPMiddleware):  # plays the gateway's spend header
        async def dispatch(self, request, call_next):
            response = await call_next(request)
            response.headers["x-litellm-response-cost"] = "0.0001"
            return response

    cases = qwen_cases[:2]
    backend = ReferenceFimBackend(cases)
    backend.app.user_middleware.insert(0, Middleware(CostHeader))
    with ThreadedServer(backend.app) as server:
        run = run_fim(_client(server), MODEL, cases, QWEN, label="vkey", policy=ONCE)
    assert [r.response_cost for r in run.results] == [0.0001, 0.0001]
    assert run.total_cost == pytest.approx(0.0002)


def test_direct_and_through_the_gateway_with_a_virtual_key(qwen_cases) -> None:
    """The gate's two transports: straight to the backend, and via the LiteLLM stand-in."""
    cases = qwen_cases[:3] + [c for c in qwen_cases if c.kind == "repo"][:1]
    master = "sk-master-fim-test"
    backend, backend_server = _serve(cases)
    gateway = GatewayDouble(master)
    gateway.register_model(
        "coder-fim", {"model": f"hosted_vllm/{MODEL}", "api_base": backend_server.url + "/v1"},
        {"mode": "completion", "input_cost_per_token": 2e-7, "output_cost_per_token": 4e-7},
    )
    with ThreadedServer(gateway) as gateway_server:
        reply = httpx.post(gateway_server.url + "/key/generate", timeout=10,
                           headers={"Authorization": f"Bearer {master}"},
                           json={"models": ["coder-fim"], "max_budget": 1.0, "duration": "30m"})
        vkey_client = openai.OpenAI(base_url=gateway_server.url + "/v1", api_key=reply.json()["key"],
                                    max_retries=0)
        direct = run_fim(_client(backend_server), MODEL, cases, QWEN, policy=ONCE)
        vkey = run_fim(vkey_client, "coder-fim", cases, QWEN, label="vkey", policy=ONCE)
    backend_server.stop()
    assert [r.middle for r in vkey.results] == [c.middle for c in cases]
    assert all(r.response_cost and r.response_cost > 0 for r in vkey.results)
    assert all(r.response_cost is None for r in direct.results)
    assert all("suffix" not in b for b in backend.requests)  # not added on the way either
    comparison = compare_transports(direct, vkey)
    assert comparison.ok, comparison.reason
    verdict = judge_fim(score_fim(vkey, cases), 0.6, 0.2, comparison=comparison)
    assert verdict.verdict == "pass"
    assert verdict.status == "FIM /v1/completions 200 (direct + vkey), functional 4/4 [95% CI 51-100%]"


def _run(label: str, asked: str, answered: list[str]) -> FimRun:
    return FimRun(label=label, model=asked, fim_family=QWEN, results=[
        FimCallResult(case_id=f"c{i}", answered=True, status=200, middle="x", served_model=name)
        for i, name in enumerate(answered)])


@pytest.mark.parametrize(("answered", "ok"), [
    ([MODEL, MODEL], True),  # a gateway that passes the backend's `model` on (vLLM behind it)
    (["coder-fim", "coder-fim"], True),  # LiteLLM answers with the alias it was asked for
    ([f"hosted_vllm/{MODEL}"], True),  # the provider route in front of the served name
    (["some-other-model"], False),  # routed elsewhere
    (["coder-fim", "some-other-model"], False),  # one case routed elsewhere
    (["coder-chat"], False),  # another alias is not the one asked for
    ([], False),  # no reply named a model
])
def test_the_gateway_may_name_the_served_model_or_the_alias_asked(answered, ok) -> None:
    direct = _run("direct", MODEL, [MODEL] * max(len(answered), 1))
    comparison = compare_transports(direct, _run("vkey", "coder-fim", answered))
    assert comparison.same_served_model is ok and comparison.ok is ok, comparison.reason
    if not ok and answered:  # the reason names both sides, and the gate fails on it
        assert MODEL in comparison.reason and "'coder-fim'" in comparison.reason
        assert answered[-1] in comparison.reason
        score = FimScore(label="vkey", model="coder-fim", cases=[
            FimCaseScore(case_id=r.case_id, kind="line", answered=True, functional=True)
            for r in direct.results])
        verdict = judge_fim(score, 0.5, 0.5, comparison=comparison)
        assert verdict.verdict == "fail" and "served model" in verdict.reason


def test_the_direct_run_must_name_one_served_model() -> None:
    direct = _run("direct", MODEL, [MODEL, "another-served-name"])
    comparison = compare_transports(direct, _run("vkey", "coder-fim", ["coder-fim", "coder-fim"]))
    assert not comparison.same_served_model and not comparison.ok


def test_unanswered_requests_are_an_error_not_a_fail(qwen_cases) -> None:
    cases = qwen_cases[:2]
    dead = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="x", max_retries=0)
    run = run_fim(dead, MODEL, cases, QWEN, label="vkey", policy=ONCE)
    assert not any(r.answered for r in run.results)
    assert {r.error_kind for r in run.results} == {"connection"}
    score = score_fim(run, cases)
    verdict = judge_fim(score, 0.5, 0.5)
    assert verdict.verdict == "error" and "2 of 2 requests unanswered" in verdict.reason
    assert verdict.status.startswith("FIM /v1/completions not answered (vkey)")


def test_exact_match_and_edit_similarity(qwen_cases) -> None:
    case = qwen_cases[0]
    check = _RecordingCheck([case])
    close = case.middle.rstrip("\n") + "   \n\n"  # trailing whitespace only
    run = FimRun(label="direct", model=MODEL, fim_family=QWEN, results=[
        FimCallResult(case_id=case.case_id, answered=True, status=200, middle=close),
    ])
    near = score_fim(run, [case], checker=check).cases[0]
    assert near.exact_match and near.edit_similarity > 0.8
    problem, completion = check.calls[0]
    assert problem["prompt"] == case.prefix and completion == close + case.suffix
    assert problem["task_id"] == case.task_id and "def check(" in problem["test"]
    run.results[0] = FimCallResult(case_id=case.case_id, answered=True, status=200, middle="    pass\n")
    far = score_fim(run, [case], checker=check).cases[0]
    assert not far.exact_match and far.edit_similarity < near.edit_similarity
    assert not far.functional and far.check_status == "failed"
    with pytest.raises(ValueError, match="unknown cases: nope"):
        score_fim(FimRun(label="d", model=MODEL, fim_family=QWEN, results=[
            FimCallResult(case_id="nope", answered=False)]), [case], checker=check)


def test_repo_case_runs_with_its_context_module(qwen_cases) -> None:
    case = next(c for c in qwen_cases if c.kind == "repo")
    check = _RecordingCheck([case])
    run = FimRun(label="direct", model=MODEL, fim_family=QWEN, results=[
        FimCallResult(case_id=case.case_id, answered=True, status=200, middle=case.middle),
    ])
    assert score_fim(run, [case], checker=check).functional == 1
    problem, _completion = check.calls[0]
    module = case.context_files[0].path.removesuffix(".py")
    assert f"_fim_sys.modules[{module!r}]" in problem["prompt"]  # importable before the file runs
    assert problem["prompt"].endswith(case.prefix)
    # The sandbox agrees: with the helper removed, the same middle cannot pass.
    broken = case.model_copy(update={"context_files": ()})
    assert score_fim(run, [broken]).functional == 0
