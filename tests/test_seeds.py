"""Request seeds: per-sample derivation, the wire, embeddings without one, the ledger record."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai

from evals.humaneval import run_humaneval
from evals.model_calls import embeddings
from evals.seeds import DEFAULT_SEED, sample_seed

PROBLEMS = [
    {"task_id": f"HumanEval/{i}", "prompt": f"def f{i}(x):\n", "entry_point": f"f{i}",
     "test": "def check(c):\n    pass\n", "canonical_solution": "    return x\n"}
    for i in range(2)
]
CHAT_REPLY = {
    "id": "c", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "```python\nreturn x\n```"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
EMBED_REPLY = {"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0,
                                                         "embedding": [0.1, 0.2]}],
               "usage": {"prompt_tokens": 1, "total_tokens": 1}}


def _recording_client(bodies: list[dict[str, Any]], reply: dict[str, Any]) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=reply)

    return openai.OpenAI(base_url="http://gateway.invalid/v1", api_key="k", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def _run(seed: int | None = None, samples: int = 3) -> tuple[list[dict[str, Any]], Any]:
    bodies: list[dict[str, Any]] = []
    result = run_humaneval(
        _recording_client(bodies, CHAT_REPLY), "coder-chat", PROBLEMS, samples_per_task=samples,
        temperature=0.8, concurrency=1, progress=False, seed=seed,
        checker=lambda problem, completion: SimpleNamespace(status="passed", reason=""),
    )
    return bodies, result


def _key(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True)


def test_a_rerun_asks_identical_requests_seeds_included() -> None:
    first, _ = _run()
    second, _ = _run()
    assert len(first) == 6
    assert sorted(map(_key, first)) == sorted(map(_key, second))
    assert all(isinstance(body.get("seed"), int) for body in first)


def test_each_sample_has_its_own_recorded_seed() -> None:
    bodies, result = _run()
    seeds = {(r.task_id, r.sample): r.seed for r in result.records}
    assert len(set(seeds.values())) == 6  # every (task, sample) differs
    assert seeds == {(t, s): sample_seed(DEFAULT_SEED, t, s) for t, s in seeds}
    assert sorted(b["seed"] for b in bodies) == sorted(seeds.values())
    assert all(0 <= seed < 2**31 for seed in seeds.values())


def test_the_catalog_seed_reaches_the_wire() -> None:
    default_bodies, _ = _run(samples=1)
    bodies, _ = _run(seed=7, samples=1)
    expected = sorted(sample_seed(7, p["task_id"], 0) for p in PROBLEMS)
    assert sorted(b["seed"] for b in bodies) == expected
    assert expected != sorted(b["seed"] for b in default_bodies)


def test_sample_seed_is_stable_and_not_pythons_hash() -> None:
    # A fixed value: Python's salted hash() would change it from one process to the next.
    assert sample_seed(1234, "HumanEval/0", 0) == sample_seed(1234, "HumanEval/0", 0)
    assert sample_seed(1234, "HumanEval/0", 0) != sample_seed(1234, "HumanEval/0", 1)
    assert sample_seed(1234, "HumanEval/0", 0) != sample_seed(1235, "HumanEval/0", 0)


def test_embeddings_requests_carry_no_seed() -> None:
    bodies: list[dict[str, Any]] = []
    outcome = embeddings(_recording_client(bodies, EMBED_REPLY), "embeddings", ["a"])
    assert outcome.ok
    assert bodies and "seed" not in bodies[0]


def test_the_ledger_record_keeps_the_seed(tmp_path: Path) -> None:
    from tests.gate_runs import run_gates

    run = run_gates("-m", "coder-chat", "--control", "known-good", "--humaneval-limit", "2",
                    outputs=tmp_path)
    records = [r for r in run.records if r.gate == "humaneval"]
    assert records, run.output
    assert records[-1].extra["seed"] == DEFAULT_SEED
