"""The HumanEval gate runner before and after issue 14.6, on the known-good control, one run.

`python -m bench.bench_humaneval [rounds]` times, for the promotion scope (the 20-task subset)
and the release scope (all 164 tasks):
- loading: every problem through `datasets` then the subset picked (before) against only the
  needed problems (after), each in a fresh interpreter, as a gate run starts;
- the run: all completions fetched, then all scored in the sandbox (before) against each answer
  scored as it arrives (after), on the known-good reference backend answering at once and
  answering after 100 ms (a model's pace, where overlapping matters).
Every figure is the median of the rounds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import openai
from rich.console import Console
from rich.table import Table

from evals.humaneval import load_problems, load_subset, run_humaneval, select
from evals.sandbox import check_many
from fixtures.platform.reference_backends import ScriptedBackend, canonical_humaneval_reply

REPO = Path(__file__).resolve().parents[1]
SUBSET = REPO / "fixtures" / "humaneval_promotion_subset.json"
CONCURRENCY, SANDBOX_CONCURRENCY = 4, 2


def _load_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    return time.perf_counter() - start


def load_times(scope: str) -> tuple[float, float]:
    subset = f"load_subset({str(SUBSET)!r}).task_ids"
    head = "from evals.humaneval import load_problems, load_subset, select\n"
    before = head + ("select(load_problems(), " + subset + ")" if scope == "promotion"
                     else "list(load_problems().values())")
    after = head + ("load_problems(task_ids=" + subset + ")" if scope == "promotion"
                    else "load_problems()")
    return _load_seconds(before), _load_seconds(after)


def _backend(delay_s: float) -> ScriptedBackend:
    def reply(request_json: dict) -> str:
        time.sleep(delay_s)
        return canonical_humaneval_reply(request_json)

    return ScriptedBackend(reply, model="reference-canonical")


def _fetch_then_score(client: openai.OpenAI, problems: list[dict]) -> int:
    """Before: every completion first (no scoring), then all of them in the sandbox."""
    unscored = run_humaneval(client, "m", problems, concurrency=CONCURRENCY, progress=False,
                             checker=lambda p, c: SimpleNamespace(status="passed", reason=""))
    by_id = {p["task_id"]: p for p in problems}
    results = check_many([(by_id[r.task_id], r.completion or "") for r in unscored.records],
                         concurrency=SANDBOX_CONCURRENCY)
    return sum(r.status == "passed" for r in results)


def _overlapped(client: openai.OpenAI, problems: list[dict]) -> int:
    """After: each answer scored as it arrives."""
    return run_humaneval(client, "m", problems, concurrency=CONCURRENCY, progress=False,
                         sandbox_concurrency=SANDBOX_CONCURRENCY).passed


def _timed(run: Callable[[openai.OpenAI, list[dict]], int], client: openai.OpenAI,
           problems: list[dict]) -> tuple[float, int]:
    start = time.perf_counter()
    passed = run(client, problems)
    return time.perf_counter() - start, passed


def bench(rounds: int = 1) -> list[dict]:
    problems = load_problems()
    scopes = {"promotion": select(problems, load_subset(SUBSET).task_ids),
              "release": list(problems.values())}
    rows = []
    for scope, chosen in scopes.items():
        loads = [load_times(scope) for _ in range(rounds)]
        for delay in (0.0, 0.1):
            with _backend(delay) as backend:
                client = openai.OpenAI(base_url=backend.base_url, api_key="sk-unused", max_retries=0)
                before = [_timed(_fetch_then_score, client, chosen) for _ in range(rounds)]
                after = [_timed(_overlapped, client, chosen) for _ in range(rounds)]
            assert all(p == len(chosen) for _, p in before + after), "known-good must pass all"
            rows.append({
                "scope": scope, "tasks": len(chosen), "reply_delay_s": delay,
                "load_before_s": statistics.median(b for b, _ in loads),
                "load_after_s": statistics.median(a for _, a in loads),
                "run_before_s": statistics.median(t for t, _ in before),
                "run_after_s": statistics.median(t for t, _ in after),
            })
    return rows


def main(argv: list[str]) -> None:
    rows = bench(int(argv[1]) if len(argv) > 1 else 1)
    table = Table(title="HumanEval gate runner on the known-good control: before / after (s)")
    for column in ("scope", "tasks", "reply delay", "load before", "load after", "run before",
                   "run after", "total before", "total after"):
        table.add_column(column, justify="left" if column == "scope" else "right")
    for r in rows:
        total_before = r["load_before_s"] + r["run_before_s"]
        total_after = r["load_after_s"] + r["run_after_s"]
        table.add_row(r["scope"], str(r["tasks"]), f"{r['reply_delay_s']:g}",
                      *(f"{r[k]:.2f}" for k in ("load_before_s", "load_after_s", "run_before_s",
                                                 "run_after_s")),
                      f"{total_before:.2f}", f"{total_after:.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main(sys.argv)
