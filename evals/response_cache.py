"""A response cache for model calls: an httpx transport that replays answers already received.

Installed in the OpenAI clients of one gate run (`openai.OpenAI(http_client=httpx.Client(
transport=CachingTransport(...)))`), it lets an interrupted run resume without asking the model
again. What it caches, and why:

- only non-streamed POSTs to `/chat/completions`, `/completions` and `/embeddings` that
  answered 200 with a well-formed answer (`evals.replies`: not an error object, not empty
  choices; a malformed reply must be retried afresh, never replayed): a streamed reply is a timing measurement, and an error is the
  platform's state at that moment, which a resume must see afresh;
- never a request carrying `Cache-Control: no-store` or `no-cache` (latency probes, budget
  loops: anything whose point is that the request really reaches the model);
- keyed by sha256 of (scope, path, canonical JSON body, occurrence): the scope names the model,
  its revision and served name; the occurrence is the n-th identical request of this process,
  so repeated samples of one prompt stay distinct samples, and a budget loop sending one
  request again and again is never answered from the cache within a run;
- stored as the response body and its content type only: no request headers (they carry the
  key), no request body, and no gateway spend headers (they belonged to another key and time).
  A replay carries `x-modelgate-cache: hit`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from evals.replies import MalformedReply, ReplyKind, parse_body

CACHED_ROUTES = ("/chat/completions", "/completions", "/embeddings")


def _reply_kind(path: str) -> ReplyKind:
    if path.endswith("/chat/completions"):
        return "chat"
    return "completion" if path.endswith("/completions") else "embedding"
HIT_HEADER = "x-modelgate-cache"


class CacheScope(BaseModel):
    """What a cached answer is valid for, besides the request itself."""

    model: str
    served_model_name: str
    revision: str | None = None


class CacheStats(BaseModel):
    hits: int = 0
    misses: int = 0
    stored: int = 0
    bypassed: int = 0


class CacheSwitch:
    """Shared by the transports of one gate: turns their cache off, and counts their hits.

    A gate that audits its key's spend turns it off before it reads the spend (see
    gates/session.py): an answer replayed from the cache was never charged to this key.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.hits = 0
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            self.hits += 1


class _Entry(BaseModel):
    status_code: int
    content_type: str
    body: str


class ResponseCache:
    """A folder of cached responses, one JSON file per key; safe across threads and processes."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.stats = CacheStats()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def key(self, scope: CacheScope, path: str, body: dict[str, Any]) -> str:
        """The key of the next occurrence of this request (counts it)."""
        canonical = json.dumps(
            {"scope": scope.model_dump(mode="json"), "path": path, "body": body},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        with self._lock:
            occurrence = self._seen[digest]
            self._seen[digest] += 1
        return hashlib.sha256(f"{digest}:{occurrence}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> _Entry | None:
        path = self._path(key)
        try:
            return _Entry.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign file: ask the model again
            return None

    def put(self, key: str, entry: _Entry) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole then renamed: a reader never sees half an answer.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(entry.model_dump_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)


def _cacheable_body(request: httpx.Request) -> dict[str, Any] | None:
    """The JSON body of a request the cache may answer, or None."""
    if request.method != "POST" or not request.url.path.endswith(CACHED_ROUTES):
        return None
    control = request.headers.get("cache-control", "").lower()
    if "no-store" in control or "no-cache" in control:
        return None
    try:
        body = json.loads(request.content or b"")
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("stream"):
        return None
    return body


class CachingTransport(httpx.BaseTransport):
    """Wraps a transport: answers cacheable requests from `cache`, stores fresh 200 answers."""

    def __init__(self, cache: ResponseCache, scope: CacheScope,
                 inner: httpx.BaseTransport | None = None, switch: CacheSwitch | None = None):
        self.cache = cache
        self.scope = scope
        self.inner = inner or httpx.HTTPTransport()
        self.switch = switch or CacheSwitch()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = _cacheable_body(request) if self.switch.enabled else None
        if body is None:
            self.cache.count("bypassed")
            return self.inner.handle_request(request)
        key = self.cache.key(self.scope, request.url.path, body)
        held = self.cache.get(key)
        if held is not None:
            self.cache.count("hits")
            self.switch.hit()
            return httpx.Response(
                held.status_code, content=held.body.encode("utf-8"), request=request,
                headers={"content-type": held.content_type, HIT_HEADER: "hit"},
            )
        self.cache.count("misses")
        response = self.inner.handle_request(request)
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or "json" not in content_type:
            return response
        content = response.read()
        try:
            parse_body(content, _reply_kind(request.url.path))
        except MalformedReply:
            return response
        self.cache.put(key, _Entry(status_code=200, content_type=content_type,
                                   body=content.decode("utf-8")))
        self.cache.count("stored")
        return response

    def close(self) -> None:
        self.inner.close()


def caching_http_client(cache: ResponseCache, scope: CacheScope, *,
                        switch: CacheSwitch | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client for `openai.OpenAI(http_client=...)` that goes through the cache."""
    return httpx.Client(transport=CachingTransport(cache, scope, switch=switch),
                        follow_redirects=True, **kwargs)
