"""Resume and the response cache: a resumed run asks the model nothing it already answered."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from deploy.ledger import Ledger
from evals.response_cache import (
    HIT_HEADER,
    CacheScope,
    CacheSwitch,
    CachingTransport,
    ResponseCache,
)
from fixtures.platform.reference_backends import canonical_humaneval_backend
from gates.session import SpendAfterCacheHits, SpendGuardedAdmin
from tests.gate_runs import run_gates
from tests.routed_backend import routed_backend

SCOPE = CacheScope(model="m", served_model_name="served", revision="r1")
SECRET = "sk-test-secret-0123456789abcdef"


class Upstream:
    """An httpx mock backend counting requests; `status` and `stream` shape its answers."""

    def __init__(self, status: int = 200):
        self.status = status
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        # A well-formed answer of either route: only those are cached (evals.replies).
        choice = {"index": 0, "text": "x", "message": {"role": "assistant", "content": "x"}}
        return httpx.Response(self.status, json={"n": self.calls, "object": "chat.completion",
                                                 "choices": [choice]},
                              headers={"x-litellm-key-spend": "0.5"})


def client_for(cache: ResponseCache, upstream: Upstream, scope: CacheScope = SCOPE,
               switch: CacheSwitch | None = None) -> httpx.Client:
    transport = CachingTransport(cache, scope, inner=httpx.MockTransport(upstream), switch=switch)
    return httpx.Client(transport=transport, base_url="http://backend/v1",
                        headers={"Authorization": f"Bearer {SECRET}"})


def post(client: httpx.Client, path: str = "/chat/completions", **body) -> httpx.Response:
    return client.post(path, json={"model": "a", "messages": [{"role": "user", "content": "hi"}], **body})


def test_a_new_process_replays_the_nth_answer_of_each_identical_request(tmp_path: Path) -> None:
    upstream = Upstream()
    with client_for(ResponseCache(tmp_path), upstream) as client:
        first = [post(client).json()["n"] for _ in range(3)]  # three samples of one prompt
    assert first == [1, 2, 3] and upstream.calls == 3  # repeats within a run are real requests
    cache = ResponseCache(tmp_path)  # the resumed process
    with client_for(cache, upstream) as client:
        replayed = [post(client) for _ in range(4)]
    assert [r.json()["n"] for r in replayed] == [1, 2, 3, 4]
    assert upstream.calls == 4  # only the fourth was asked
    assert [r.headers.get(HIT_HEADER) for r in replayed] == ["hit", "hit", "hit", None]
    assert "x-litellm-key-spend" not in replayed[0].headers  # spend of another key, another time
    assert cache.stats.model_dump() == {"hits": 3, "misses": 1, "stored": 1, "bypassed": 0}


def test_the_key_covers_scope_path_and_parameters(tmp_path: Path) -> None:
    upstream = Upstream()
    with client_for(ResponseCache(tmp_path), upstream) as client:
        post(client)
        post(client, "/completions")
        post(client, temperature=0.7)
    with client_for(ResponseCache(tmp_path), upstream, SCOPE.model_copy(update={"revision": "r2"})) as client:
        post(client)  # another revision of the model: not the same answer
    with client_for(ResponseCache(tmp_path), upstream) as client:
        # Key order does not matter (canonical JSON): a hit.
        client.post("/chat/completions", content=json.dumps(
            {"messages": [{"content": "hi", "role": "user"}], "model": "a"}),
            headers={"content-type": "application/json"})
    assert upstream.calls == 4


@pytest.mark.parametrize("kind", ["stream", "no-store", "error", "get"])
def test_streams_no_store_errors_and_gets_are_never_cached(tmp_path: Path, kind: str) -> None:
    upstream = Upstream(status=500 if kind == "error" else 200)
    for _ in range(2):
        with client_for(ResponseCache(tmp_path), upstream) as client:
            if kind == "stream":
                post(client, stream=True)
            elif kind == "no-store":
                client.post("/chat/completions", json={"model": "a"}, headers={"Cache-Control": "no-store"})
            elif kind == "get":
                client.get("/models")
            else:
                post(client)
    assert upstream.calls == 2
    assert not list(tmp_path.rglob("*.json"))


def test_nothing_secret_is_stored(tmp_path: Path) -> None:
    upstream = Upstream()
    with client_for(ResponseCache(tmp_path), upstream) as client:
        post(client, user=SECRET)  # even a secret in the body: only its hash is kept
    stored = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert stored and SECRET not in stored and "Bearer" not in stored and "key-spend" not in stored


def test_an_openai_client_goes_through_the_cache(tmp_path: Path) -> None:
    with canonical_humaneval_backend() as backend:
        for _ in range(2):
            http = httpx.Client(transport=CachingTransport(ResponseCache(tmp_path), SCOPE))
            client = openai.OpenAI(base_url=backend.base_url, api_key="unused", max_retries=0,
                                   http_client=http)
            reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert reply.choices[0].message.content
            client.close()
        assert backend.requests == 1


class _Admin:
    def __init__(self):
        self.reads = 0

    def key_info(self, key):
        self.reads += 1
        return {"spend": 0.0}

    def wait_for_spend(self, key, at_least, timeout=30.0):
        self.reads += 1
        return 0.0


def test_reading_the_key_spend_turns_the_cache_off_and_is_never_fooled(tmp_path: Path) -> None:
    from deploy.litellm_admin import VirtualKey

    key = VirtualKey(alias="gate", secret=SECRET, key_name="sk-...cdef")
    switch = CacheSwitch()
    admin = SpendGuardedAdmin(_Admin(), key, switch)
    upstream = Upstream()
    with client_for(ResponseCache(tmp_path), upstream, switch=switch) as client:
        post(client)
    # Before any replay: reading the spend is fine, and the cache is off from then on.
    admin.wait_for_spend(key, 0.0)
    assert switch.enabled is False
    with client_for(ResponseCache(tmp_path), upstream, switch=switch) as client:
        post(client)
    assert upstream.calls == 2
    # After a replay, the spend cannot match the answers: the gate must not judge it.
    replayed = CacheSwitch()
    with client_for(ResponseCache(tmp_path), upstream, switch=replayed) as client:
        post(client)
    assert replayed.hits == 1
    guarded = SpendGuardedAdmin(_Admin(), key, replayed)
    with pytest.raises(SpendAfterCacheHits, match="--no-cache") as info:
        guarded.key_info(key)
    assert SECRET not in str(info.value)
    guarded.key_info("sk-another-key")  # another key's spend (a budget check's own key) is fine


# ---- resume, end to end: the model's request counter is the witness ---------------------

def drop_records(ledger: Path, run_id: str) -> None:
    """As if the run stopped after the model answered but before the verdict was appended."""
    kept = [line for line in ledger.read_text().splitlines() if f'"run_id":"{run_id}"' not in line]
    ledger.write_text("".join(line + "\n" for line in kept))


def test_resume_asks_nothing_for_recorded_gates_and_the_cache_answers_the_rest(tmp_path: Path) -> None:
    outputs = tmp_path / "out"
    with routed_backend("coder-chat", canonical_humaneval_backend(), tmp_path / "platform") as routed:
        gate = ("-m", "coder-chat", *routed.gateway_args, "--humaneval-limit=3")
        first = run_gates(*gate, outputs=outputs, env=routed.env())
        assert first.returncode == 0, first.output[-3000:]
        run_id = first.record("humaneval").run_id
        asked = routed.backend.requests
        assert asked == 1 + 3  # the route check's probe and three tasks

        # 1. The verdict is recorded: nothing is deployed, keyed or asked again.
        resumed = run_gates(*gate, f"--resume={run_id}", outputs=outputs, env=routed.env())
        assert resumed.returncode == 0, resumed.output[-3000:]
        assert routed.backend.requests == asked
        assert len(Ledger(outputs / "ledger.jsonl").records()) == 1  # no new verdict either
        report = json.loads((outputs / "build" / "runs" / run_id / "report.json").read_text())
        assert report["gates"][0]["resumed"] is True and report["gates"][0]["verdict"] == "pass"

        # 2. Interrupted before the verdict: the gate runs again, the cache answers the tasks.
        drop_records(outputs / "ledger.jsonl", run_id)
        again = run_gates(*gate, f"--resume={run_id}", outputs=outputs, env=routed.env())
        assert again.returncode == 0, again.output[-3000:]
        assert routed.backend.requests == asked + 1  # the route probe only
        record = again.record("humaneval")
        assert record.run_id == run_id and record.verdict == "pass" and record.counts.total == 3

        # 3. --no-cache asks the model for every task.
        drop_records(outputs / "ledger.jsonl", run_id)
        uncached = run_gates(*gate, f"--resume={run_id}", "--no-cache", outputs=outputs, env=routed.env())
        assert uncached.returncode == 0, uncached.output[-3000:]
        assert routed.backend.requests == asked + 1 + 4


def test_resuming_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control=known-good", "--resume=20990101T000000Z-nosuch",
                    outputs=tmp_path)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--resume 20990101T000000Z-nosuch: no such run" in run.output
