"""A hostile platform cannot fool a verdict: every fault of the hostile backend ends as ERROR
(the platform's fault, after bounded retries, naming what was wrong), a well-formed but wrong
answer ends as FAIL (the model's fault), and nothing here ever reads as PASS.

Every request path of the gates is driven through its real eval function: chat (HumanEval),
completions (FIM), embeddings, the usage probes, tool loops (plain and streamed) and the
latency streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import openai
import pytest

from evals.embeddings import EmbeddingsGate, judge_embeddings, load_triplets, run_embedding_checks
from evals.fim import judge_fim, load_fim_cases, run_fim, score_fim
from evals.humaneval import load_problems, run_humaneval
from evals.latency import LatencyPrompt, PromptSet, judge_latency, run_benchmark
from evals.model_calls import RetryPolicy, chat, completion, embeddings
from evals.replies import MalformedReply, StreamAudit, audited, iter_sse, parse_body
from evals.tool_loop import judge_tool_loops, run_scenario, scenario
from evals.usage import call_probe
from fixtures.platform.hostile_backend import BODY_FAULTS, STREAM_FAULTS, HostileBackend
from gates.kinds.humaneval.judge import judge_humaneval
from gates.kinds.usage.judge import judge_usage

REPO = Path(__file__).resolve().parent.parent
FAST = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0)
# What each fault's per-request outcome must name.
BODY_WORDS = {
    "non_json": "not JSON",
    "truncated": "not JSON",
    "empty_choices": "is empty",
    "missing_message": "no ",
    "error_200": "upstream engine crashed",
}
STREAM_WORDS = {
    "sse_error": "SSE error event",
    "no_end": "no finish_reason, no [DONE], no usage chunk",
    "too_many_deltas": "output deltas but its usage reports",
    "usage_no_content": "carried no output",
}
# The body faults seen by a stream are their SSE analogues: a broken event or an unended stream.
BODY_IN_STREAM_WORDS = {
    "non_json": "not JSON",
    "truncated": "not JSON",
    "empty_choices": "ended improperly",
    "missing_message": "ended improperly",
    "error_200": "upstream engine crashed",
}


@pytest.fixture
def hostile() -> Iterator:
    started: list[HostileBackend] = []

    def start(fault: str, **kwargs) -> openai.OpenAI:
        backend = HostileBackend(fault, **kwargs).start()
        started.append(backend)
        return openai.OpenAI(base_url=backend.base_url, api_key="unused", max_retries=0, timeout=10)

    yield start
    for backend in started:
        backend.stop()


# ---- the rules themselves --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "words"), [
    ("<html>", "chat", "not JSON"),
    ('{"choices": [{"index": 0, "mess', "chat", "not JSON"),
    ("", "chat", "an empty body"),
    ("[1, 2]", "chat", "not an object"),
    ('{"choices": []}', "chat", "is empty"),
    ('{"id": "x"}', "chat", "has no `choices`"),
    ('{"choices": [{"index": 0}]}', "chat", "no message"),
    ('{"choices": [{"index": 0}]}', "completion", "no text"),
    ('{"error": {"message": "boom", "type": "x"}, "choices": []}', "chat", "boom (x)"),
    ('{"data": []}', "embedding", "is empty"),
    ('{"data": [{"index": 0}]}', "embedding", "no embedding"),
])
def test_a_body_that_is_not_a_well_formed_answer_is_named(text, kind, words) -> None:
    with pytest.raises(MalformedReply, match=None) as caught:
        parse_body(text, kind)
    assert words in str(caught.value)


@pytest.mark.parametrize("content", [None, ""])
def test_null_or_empty_content_is_a_well_formed_answer(content) -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    import json

    assert parse_body(json.dumps(body), "chat")["choices"][0]["message"]["content"] == content


def _stream(*events: str) -> list[str]:
    return [line for event in events for line in (*event.split("\n"), "")]


def _chunk(content: str | None = None, finish: str | None = None) -> str:
    import json

    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _usage(tokens: int) -> str:
    import json

    return "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 1,
                                                          "completion_tokens": tokens,
                                                          "total_tokens": 1 + tokens}})


def _audit(lines: list[str], include_usage: bool = True) -> StreamAudit:
    audit = StreamAudit(include_usage=include_usage)
    list(audited(iter_sse(lines), audit))
    return audit


def test_a_properly_ended_stream_counts_even_with_several_tokens_per_delta() -> None:
    lines = _stream(_chunk("ab"), _chunk("cd"), _chunk(finish="stop"), _usage(4), "data: [DONE]")
    audit = _audit(lines)
    assert audit.done and audit.finish_reason == "stop" and audit.output_deltas == 2


@pytest.mark.parametrize(("lines", "include_usage", "words"), [
    (_stream(_chunk("a"), _chunk(finish="stop"), _usage(1)), True, "no [DONE]"),
    (_stream(_chunk("a"), _usage(1), "data: [DONE]"), True, "no finish_reason"),
    (_stream(_chunk("a"), _chunk(finish="stop"), "data: [DONE]"), True, "no usage chunk"),
    (_stream(_chunk("a"), _chunk("b"), _chunk(finish="stop"), _usage(1), "data: [DONE]"), True,
     "2 output deltas but its usage reports 1"),
    (_stream(_chunk(finish="stop"), _usage(3), "data: [DONE]"), True, "carried no output"),
    (_stream(_chunk("a"), 'event: error\ndata: {"message": "boom"}'), True, "SSE error event"),
    (_stream(_chunk("a"), 'data: {"error": {"message": "died"}}'), True, "mid-stream error: died"),
    (_stream(_chunk("a"), "data: {not json"), True, "not JSON"),
])
def test_a_stream_that_did_not_end_properly_does_not_count(lines, include_usage, words) -> None:
    with pytest.raises(MalformedReply) as caught:
        _audit(lines, include_usage)
    assert words in str(caught.value)


def test_without_include_usage_a_stream_needs_no_usage_chunk() -> None:
    audit = _audit(_stream(_chunk("a"), _chunk(finish="stop"), "data: [DONE]"), include_usage=False)
    assert audit.usage is None and audit.done


# ---- chat, completions, embeddings through model_calls ----------------------------------------

@pytest.mark.parametrize("fault", BODY_FAULTS)
@pytest.mark.parametrize("call", ["chat", "completion", "embeddings"])
def test_each_body_fault_is_a_platform_error_after_the_retries(hostile, fault, call) -> None:
    client = hostile(fault)
    if call == "chat":
        outcome = chat(client, "m", [{"role": "user", "content": "hi"}], policy=FAST)
    elif call == "completion":
        outcome = completion(client, "m", "def f():", policy=FAST)
    else:
        outcome = embeddings(client, "m", ["a", "b"], policy=FAST)
    assert not outcome.ok and outcome.error_kind == "malformed" and outcome.status == 200
    assert outcome.attempts == FAST.attempts  # retried, bounded
    words = BODY_WORDS[fault] if call == "chat" or fault != "missing_message" else "no "
    assert words in outcome.message, outcome.message


def test_a_malformed_reply_once_is_retried_into_an_answer(hostile) -> None:
    client = hostile("truncated", fault_times=1)
    outcome = chat(client, "m", [{"role": "user", "content": "hi"}], policy=FAST)
    assert outcome.ok and outcome.attempts == 2
    assert outcome.value.choices[0].message.content == "The answer is 42."


def test_a_stall_ends_as_an_error_naming_the_timeout_in_bounded_attempts(hostile) -> None:
    client = hostile("stall", stall_s=3.0)
    policy = RetryPolicy(attempts=10, initial_s=0.0, max_s=0.0, total_s=0.5, timeout_s=0.3)
    outcome = chat(client, "m", [{"role": "user", "content": "hi"}], policy=policy)
    assert not outcome.ok and outcome.error_kind == "timeout"
    assert "0.3 s request timeout" in outcome.message
    # Each attempt waits the full 0.3 s timeout, so the 0.5 s budget allows at most two.
    assert outcome.attempts <= 2


def test_the_gate_keys_set_the_timeout_and_the_budget() -> None:
    policy = RetryPolicy.from_gate({"request_timeout_s": 7, "request_budget_s": 30})
    assert (policy.timeout_s, policy.total_s) == (7.0, 30.0)
    default = RetryPolicy.from_gate({}, timeout_s=60.0)
    assert (default.timeout_s, default.total_s) == (60.0, 300.0)


def test_a_client_with_the_openai_default_timeout_waits_at_most_120_s() -> None:
    from evals.model_calls import request_timeout

    assert request_timeout(openai.OpenAI(api_key="x"), None) == 120.0
    assert request_timeout(openai.OpenAI(api_key="x", timeout=5), None) == 5.0
    assert request_timeout(openai.OpenAI(api_key="x"), None, RetryPolicy(timeout_s=9)) == 9.0


# ---- HumanEval (chat) ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_problems() -> list[dict]:
    problems = load_problems()
    return [problems["HumanEval/0"], problems["HumanEval/2"]]


def _never_run(problem, code):  # the checker must not see platform errors
    raise AssertionError("a platform error reached the sandbox")


@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_humaneval_reads_a_malformed_reply_as_error(hostile, two_problems, fault) -> None:
    client = hostile(fault)
    result = run_humaneval(client, "m", two_problems, retry=FAST, checker=_never_run,
                           progress=False, concurrency=1)
    assert result.errors == 2 and result.passed == result.failed == 0
    record = result.records[0]
    assert record.verdict == "error" and record.task_id == "HumanEval/0"
    assert record.call.error_kind == "malformed" and BODY_WORDS[fault] in record.call.message
    verdict = judge_humaneval(passed=result.passed, failed=result.failed, errors=result.errors,
                              min_pass_rate=0.0)
    assert verdict.verdict == "error"  # never FAIL, and never PASS even with a 0% gate


def test_humaneval_reads_null_content_as_the_models_wrong_answer(hostile, two_problems) -> None:
    client = hostile("null_content")
    checked = []

    def checker(problem, code):
        checked.append(code)
        return SimpleNamespace(status="failed", reason="tests failed")

    result = run_humaneval(client, "m", two_problems, retry=FAST, checker=checker,
                           progress=False, concurrency=1)
    assert result.errors == 0 and result.failed == 2 and len(checked) == 2
    assert judge_humaneval(passed=0, failed=2, errors=0, min_pass_rate=0.7).verdict == "fail"


def test_humaneval_reads_a_stall_as_error(hostile, two_problems) -> None:
    client = hostile("stall", stall_s=3.0)
    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, timeout_s=0.3)
    result = run_humaneval(client, "m", two_problems[:1], retry=policy, checker=_never_run,
                           progress=False)
    assert result.errors == 1 and "0.3 s request timeout" in result.records[0].call.message


# ---- FIM (completions) -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fim_cases() -> list:
    return load_fim_cases(REPO / "fixtures" / "fim_cases.json", "qwen2.5-coder")[:2]


def _failing_checker(problem, code):
    return SimpleNamespace(status="failed", reason="tests failed")


@pytest.mark.parametrize("fault", [*BODY_FAULTS, "stall"])
def test_fim_reads_a_malformed_reply_as_error(hostile, fim_cases, fault) -> None:
    client = hostile(fault, stall_s=3.0)
    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, timeout_s=0.3)
    run = run_fim(client, "m", fim_cases, "qwen2.5-coder", policy=policy, concurrency=1)
    assert run.answered == 0 and all(r.error for r in run.results)
    expected = "timeout" if fault == "stall" else "malformed"
    assert {r.error_kind for r in run.results} == {expected}
    score = score_fim(run, fim_cases, checker=_failing_checker)
    assert judge_fim(score, 0.0, 1.0).verdict == "error"


def test_fim_reads_an_empty_middle_as_the_models_failure(hostile, fim_cases) -> None:
    client = hostile("null_content")
    run = run_fim(client, "m", fim_cases, "qwen2.5-coder", policy=FAST, concurrency=1)
    assert run.all_answered
    score = score_fim(run, fim_cases, checker=_failing_checker)
    assert judge_fim(score, 0.6, 0.2).verdict == "fail"


# ---- embeddings ------------------------------------------------------------------------------

GATE = EmbeddingsGate(dimensions=8, max_input_tokens=16, max_batch_size=4)
TRIPLETS = load_triplets(REPO / "fixtures" / "embedding_triplets.json")[:2]


@pytest.mark.parametrize("fault", [*BODY_FAULTS, "stall"])
def test_embeddings_checks_read_a_malformed_reply_as_error(hostile, fault) -> None:
    client = hostile(fault, stall_s=3.0)
    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, timeout_s=0.3)
    checks = run_embedding_checks(client, "m", GATE, TRIPLETS, policy=policy)
    vector_checks = [c for c in checks if c.name in ("dimension", "normalized", "batch_consistency",
                                                     "base64", "triplets", "usage")]
    assert vector_checks and {c.outcome for c in vector_checks} == {"error"}, checks
    assert "pass" not in {c.outcome for c in checks if c.name in ("dimension", "triplets")}
    assert judge_embeddings(checks).verdict == "error"


# ---- usage probes (plain and streamed) -------------------------------------------------------

@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_a_usage_probe_reads_a_malformed_reply_as_unanswered(hostile, fault) -> None:
    client = hostile(fault)
    reply = call_probe(client, "short", FAST, model="m", messages=[{"role": "user", "content": "hi"}])
    assert not reply.ok and "malformed" in reply.error and BODY_WORDS[fault] in reply.error


@pytest.mark.parametrize("fault", [*STREAM_FAULTS, *BODY_FAULTS])
def test_a_streamed_usage_probe_reads_a_bad_stream_as_unanswered(hostile, fault) -> None:
    client = hostile(fault)
    reply = call_probe(client, "stream", FAST, model="m", stream=True,
                       stream_options={"include_usage": True},
                       messages=[{"role": "user", "content": "hi"}])
    words = STREAM_WORDS.get(fault) or BODY_IN_STREAM_WORDS[fault]
    assert not reply.ok and reply.streamed and words in reply.error, reply.error
    from evals.usage import check_openai_shape, check_stream_usage

    assert check_stream_usage(reply).outcome == "error"
    assert check_openai_shape([reply]).outcome == "pass"  # a stream is not the body checks' concern
    assert judge_usage([check_stream_usage(reply)], "litellm").verdict == "error"


# ---- tool loops ------------------------------------------------------------------------------

ORDER = scenario("order_total")


@pytest.mark.parametrize(("fault", "stream"), [
    *((f, False) for f in BODY_FAULTS),
    *((f, True) for f in (*STREAM_FAULTS, *BODY_FAULTS)),
])
def test_a_tool_loop_reads_a_malformed_reply_as_a_platform_error(hostile, fault, stream) -> None:
    client = hostile(fault)
    result = run_scenario(client, "m", ORDER, stream=stream, policy=FAST)
    assert not result.passed and result.platform_error is not None
    words = (STREAM_WORDS.get(fault) or BODY_IN_STREAM_WORDS[fault]) if stream else BODY_WORDS[fault]
    assert result.platform_error.startswith("step 1: ") and words in result.platform_error
    assert judge_tool_loops([result], 0.0).verdict == "error"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_loop_reads_null_content_as_the_models_failure(hostile, stream) -> None:
    client = hostile("null_content")
    result = run_scenario(client, "m", ORDER, stream=stream, policy=FAST)
    assert result.platform_error is None and not result.passed and result.reason == "no tool call"
    assert judge_tool_loops([result], 0.75).verdict == "fail"


@pytest.mark.parametrize(("fault", "stream"), [
    ("stall", False), ("stall", True), ("stall_mid_stream", True)])
def test_a_tool_loop_stall_is_an_error_naming_the_timeout(hostile, fault, stream) -> None:
    client = hostile(fault, stall_s=3.0)
    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, timeout_s=0.3)
    result = run_scenario(client, "m", ORDER, stream=stream, policy=policy)
    assert result.platform_error is not None and "0.3 s request timeout" in result.platform_error
    assert judge_tool_loops([result], 0.0).verdict == "error"


def test_a_streamed_usage_probe_that_stalls_mid_stream_names_the_timeout(hostile) -> None:
    client = hostile("stall_mid_stream", stall_s=3.0)
    policy = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, timeout_s=0.3)
    reply = call_probe(client, "stream", policy, model="m", stream=True,
                       stream_options={"include_usage": True},
                       messages=[{"role": "user", "content": "hi"}])
    assert not reply.ok and "timeout" in reply.error and "0.3 s request timeout" in reply.error


# ---- latency streams -------------------------------------------------------------------------

PROMPTS = PromptSet(name="hostile", prompts=[LatencyPrompt(id="p1", text="Count to five.")])
TARGETS = {"ttft_p95_ms": 60_000, "itl_p95_ms": 60_000, "e2e_p95_ms": 60_000}


def _latency(client: openai.OpenAI, **options):
    return run_benchmark(client, "m", PROMPTS, max_tokens=16, requests=3, warmup=0,
                         progress=False, **options)


def test_a_proper_stream_is_measured_and_passes_generous_targets(hostile) -> None:
    result = _latency(hostile("good", reply="one two three four five"))
    assert result.summary.errors == 0 and result.summary.ok == 3
    assert judge_latency(result.summary, TARGETS, 0.05).verdict == "pass"


@pytest.mark.parametrize("fault", [*STREAM_FAULTS, *BODY_FAULTS])
def test_a_latency_stream_that_did_not_end_properly_is_an_errored_request(hostile, fault) -> None:
    result = _latency(hostile(fault, reply="one two three four five"))
    assert result.summary.errors == 3, [r.error for r in result.rows]
    words = STREAM_WORDS.get(fault) or BODY_IN_STREAM_WORDS[fault]
    assert all(words in (r.error or "") for r in result.rows), [r.error for r in result.rows]
    assert judge_latency(result.summary, TARGETS, 0.05).verdict == "error"


def test_a_latency_stream_that_errs_once_counts_against_the_error_rate(hostile) -> None:
    result = _latency(hostile("no_end", fault_times=1, reply="one two three four five"))
    assert (result.summary.errors, result.summary.ok) == (1, 2)
    assert judge_latency(result.summary, TARGETS, 0.05).verdict == "error"  # 33% > 5%
    assert judge_latency(result.summary, TARGETS, 0.5).verdict == "pass"


@pytest.mark.parametrize("fault", ["stall", "stall_mid_stream"])
def test_a_latency_stall_is_an_errored_request_naming_the_timeout(hostile, fault) -> None:
    result = _latency(hostile(fault, stall_s=3.0), timeout_s=0.3)
    assert result.summary.errors == 3
    assert all("0.3 s request timeout" in (r.error or "") for r in result.rows)
    assert judge_latency(result.summary, TARGETS, 0.05).verdict == "error"


# ---- whole gates through the gateway double -------------------------------------------------

@pytest.mark.parametrize(("alias", "fault", "options", "gate", "words"), [
    ("coder-chat", "truncated", ["--humaneval-limit=2"], "humaneval", "the body is not JSON"),
    ("coder-fim", "error_200", ["--fim-limit=2"], "fim", "2 of 2 requests unanswered"),
    ("coder-agent", "sse_error", ["--tool-loop-limit=1", "-k", "tool_loop"], "tool_loop",
     "a mid-stream error"),
    ("embeddings", "empty_choices", [], "embeddings", "`data` is empty"),
    ("qwen-local", "no_end", ["--latency-requests=4"], "latency", "no finish_reason, no [DONE]"),
])
def test_a_hostile_backend_makes_the_gate_error_with_a_record(tmp_path, alias, fault, options, gate,
                                                               words) -> None:
    """The `erroring` control served by the hostile backend (MODELGATE_HOSTILE_FAULT): the route
    check's probes are answered, the gate's own requests get the fault. The run ends ERROR with
    its ledger record naming what was wrong, never a crash, never FAIL."""
    import os

    from tests.gate_runs import run_gates

    env = {**os.environ, "MODELGATE_HOSTILE_FAULT": fault}
    run = run_gates("-m", alias, "--control", "erroring", *options, outputs=tmp_path, env=env)
    assert run.returncode == 1, run.output[-3000:]
    record = run.record(gate)
    assert record.verdict == "error" and record.summary != "route check failed", record.reason
    details = (tmp_path / record.details_file).read_text() if record.details_file else ""
    assert words in record.reason + details


# ---- the route check's probe -----------------------------------------------------------------

@pytest.mark.parametrize(("alias", "fault", "words"), [
    ("coder-chat", "stall", "0.3 s probe timeout"),
    ("coder-chat", "non_json", "failed"),
    ("coder-fim", "error_200", "with no choices/data"),
    ("embeddings", "empty_choices", "failed"),
])
def test_the_route_check_reports_a_hostile_probe_answer_without_raising(alias, fault, words) -> None:
    from deploy.catalog import load_catalog
    from deploy.route_check import PROBE_TIMEOUT_S, route_check
    from fixtures.platform.hostile_backend import MODEL

    assert PROBE_TIMEOUT_S < 60  # a one-token probe never waits a generation's timeout
    entry = load_catalog(REPO / "deploy" / "catalog.yaml").get(alias).model_copy(update={"alias": MODEL})
    with HostileBackend(fault, stall_s=3.0) as backend:
        result = route_check(backend.url, "sk-test-key-123456", entry, timeout=0.3)
    assert result.listed and not result.ok and words in result.detail, result.detail
    assert "sk-test-key-123456" not in result.detail


@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_the_budget_loop_reads_a_malformed_200_as_an_error_not_a_refusal(hostile, fault) -> None:
    from evals.budget import run_budget_binding

    client = hostile(fault)
    binding = run_budget_binding(client, "m", max_budget=1.0, input_cost_per_token=1e-6,
                                 read_spend=lambda: 0.0, policy=FAST, max_requests=3)
    assert binding.outcome == "error" and binding.refusal_status is None
    assert BODY_WORDS[fault] in binding.reason


# ---- the response cache ----------------------------------------------------------------------

@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_a_malformed_reply_is_never_cached_so_a_resumed_run_asks_again(tmp_path, fault) -> None:
    import httpx

    from evals.response_cache import CacheScope, ResponseCache, caching_http_client

    scope = CacheScope(model="m", served_model_name="s")
    question = [{"role": "user", "content": "hi"}]

    def client_for(backend: HostileBackend) -> openai.OpenAI:
        http = caching_http_client(ResponseCache(tmp_path / "cache"), scope,
                                   timeout=httpx.Timeout(10.0))
        return openai.OpenAI(base_url=backend.base_url, api_key="unused", max_retries=0,
                             http_client=http)

    with HostileBackend(fault) as backend:
        assert not chat(client_for(backend), "m", question, policy=FAST).ok
    with HostileBackend("good") as backend:  # the resumed run, the platform healed
        resumed = chat(client_for(backend), "m", question, policy=FAST)
        assert resumed.ok and backend.requests == 1  # asked afresh, not replayed
    assert resumed.value.choices[0].message.content == "The answer is 42."
