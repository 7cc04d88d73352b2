"""The latency harness's own overhead: measured TTFT minus configured TTFT, per request, against a
zero-delay reference streaming backend on loopback, in its own process (as the accuracy test runs
it).

Whatever TTFT the harness reports above the truth is its overhead plus the loopback transport:
that is the floor under every latency it measures. The machine's load average is reported too,
since a busy machine inflates it.

    python bench/bench_latency.py [N]
"""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files

from openai import OpenAI

from evals.latency import load_prompt_set, percentiles, run_benchmark
from fixtures.platform.reference_streaming import StreamingBackendProcess, StreamingSpec

CONFIGURED_TTFT_MS = 0.0
CONFIGURED_ITL_MS = 0.0


def bench(n: int = 50, warmup: int = 5) -> dict:
    prompts = load_prompt_set(files("fixtures") / "latency_prompts.json")
    spec = StreamingSpec(ttft_ms=CONFIGURED_TTFT_MS, itl_ms=CONFIGURED_ITL_MS, tokens=4)
    with StreamingBackendProcess(spec) as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-bench-unused", max_retries=0)
        result = run_benchmark(client, "reference", prompts, max_tokens=4, requests=n,
                               warmup=warmup, progress=False)
    ok = [row for row in result.rows if row.ok]
    ttft_over = [row.ttft_ms - CONFIGURED_TTFT_MS for row in ok]
    gap_over = [gap - CONFIGURED_ITL_MS for row in ok for gap in row.itl_ms]
    ttft_stats = percentiles(ttft_over)
    gap_stats = percentiles(gap_over)
    return {
        "requests": n,
        "errors": result.summary.errors,
        "ttft_overhead_ms": ttft_stats.model_dump() if ttft_stats else None,
        "itl_overhead_ms": gap_stats.model_dump() if gap_stats else None,
        "ttft_overhead_per_request_ms": [round(v, 3) for v in ttft_over],
        "percentile_method": result.summary.percentile_method,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    figures = bench(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
    figures.pop("ttft_overhead_per_request_ms")
    print(json.dumps(figures, indent=2))
