"""Harness overhead per request: `evals.model_calls` against raw httpx, same backend, same run.

Both sides send N sequential chat requests to a zero-latency reference backend on loopback
(in its own process, so the server does not share this process's interpreter lock); the
difference per request is what the call layer adds. Target: under 2 ms per request. A third
side, the plain openai client, splits that into the openai client's own cost and ours
(tenacity, outcome records).

    python bench/bench_harness.py [N]
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from rich.console import Console
from rich.table import Table

from evals.model_calls import RetryPolicy, chat, make_client
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_backends import ScriptedBackend, zero_latency

TARGET_MS = 2.0
MESSAGES = [{"role": "user", "content": "Reply with ok."}]
WARMUP = 20


def _time_harness(base_url: str, n: int) -> float:
    client = make_client(base_url, "sk-bench-unused", timeout_s=10)
    policy = RetryPolicy(attempts=1)

    def once() -> None:
        outcome = chat(client, "reference-bench", MESSAGES, policy=policy, max_tokens=4)
        if not outcome.ok:
            raise RuntimeError(f"harness request failed: {outcome.message}")

    for _ in range(WARMUP):
        once()
    started = time.perf_counter()
    for _ in range(n):
        once()
    return time.perf_counter() - started


def _time_openai(base_url: str, n: int) -> float:
    client = make_client(base_url, "sk-bench-unused", timeout_s=10)

    def once() -> None:
        client.chat.completions.create(model="reference-bench", messages=MESSAGES, max_tokens=4)

    for _ in range(WARMUP):
        once()
    started = time.perf_counter()
    for _ in range(n):
        once()
    return time.perf_counter() - started


def _serve(port: int, stop: multiprocessing.synchronize.Event) -> None:
    server = ThreadedServer(ScriptedBackend(zero_latency, model="reference-bench").app, port=port)
    server.start()
    stop.wait(600)  # bounded: a forgotten backend process ends by itself
    server.stop()


@contextmanager
def _backend_process() -> Iterator[str]:
    """A zero-latency reference backend in a child process; yields its `/v1` base URL."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    port = free_port()
    process = ctx.Process(target=_serve, args=(port, stop), daemon=True)
    process.start()
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"reference backend on port {port} did not start")
            time.sleep(0.05)
        yield base_url
    finally:
        stop.set()
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()


def _time_raw(base_url: str, n: int) -> float:
    body = {"model": "reference-bench", "messages": MESSAGES, "max_tokens": 4}
    headers = {"authorization": "Bearer sk-bench-unused"}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        def once() -> None:
            http.post("/chat/completions", json=body, headers=headers).raise_for_status()

        for _ in range(WARMUP):
            once()
        started = time.perf_counter()
        for _ in range(n):
            once()
        return time.perf_counter() - started


def bench(n: int = 200, rounds: int = 3) -> dict:
    """Per-request time through the harness, the plain openai client and raw httpx; the
    harness overhead over raw httpx (ms) and the ratio.

    The sides alternate over `rounds` and the fastest round of each counts, so another
    process's burst on a shared machine does not land on one side only.
    """
    times: dict[str, list[float]] = {"harness": [], "openai": [], "raw": []}
    with _backend_process() as base_url:
        for _ in range(rounds):
            times["raw"].append(_time_raw(base_url, n))
            times["openai"].append(_time_openai(base_url, n))
            times["harness"].append(_time_harness(base_url, n))
    ms = {side: min(values) / n * 1000 for side, values in times.items()}
    overhead = ms["harness"] - ms["raw"]
    return {
        "requests": n,
        "rounds": rounds,
        "harness_ms_per_request": round(ms["harness"], 3),
        "openai_plain_ms_per_request": round(ms["openai"], 3),
        "raw_httpx_ms_per_request": round(ms["raw"], 3),
        "overhead_ms_per_request": round(overhead, 3),
        "ratio": round(ms["harness"] / ms["raw"], 2),
        "of_which_openai_client_ms": round(ms["openai"] - ms["raw"], 3),
        "of_which_model_calls_ms": round(ms["harness"] - ms["openai"], 3),
        "target_ms": TARGET_MS,
        "within_target": overhead < TARGET_MS,
    }


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 200
    result = bench(n)
    table = Table(title=f"model_calls overhead, {n} sequential requests (zero-latency reference backend)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
