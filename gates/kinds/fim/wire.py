"""What the gate's own clients put on the wire: every request body's fields, per transport.

The FIM contract forbids `suffix` (vLLM refuses it; the client formats the prompt itself), so
the gate records the fields each request really carried, as sent by the openai client, rather
than trusting what it meant to send.
"""

from __future__ import annotations

import functools
import json
import threading

import httpx
from pydantic import BaseModel


class WireRequest(BaseModel):
    transport: str
    method: str
    path: str
    fields: list[str]  # the JSON body's top-level fields (values are not kept)

    @property
    def carries_suffix(self) -> bool:
        return "suffix" in self.fields


class TransportWire(BaseModel):
    requests: int
    paths: list[str]
    fields: list[str]
    with_suffix: int


class WireSummary(BaseModel):
    transports: dict[str, TransportWire]

    @property
    def with_suffix(self) -> int:
        return sum(t.with_suffix for t in self.transports.values())


class WireLog:
    """Hands out httpx clients whose requests are recorded under a transport label (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        self.requests: list[WireRequest] = []

    def http_client(self, transport: str, *, timeout: float) -> httpx.Client:
        client = httpx.Client(
            timeout=timeout, event_hooks={"request": [functools.partial(self._record, transport)]}
        )
        with self._lock:
            self._clients.append(client)
        return client

    def _record(self, transport: str, request: httpx.Request) -> None:
        try:
            body = json.loads(request.content or b"null")
        except (ValueError, httpx.RequestNotRead):
            body = None
        fields = sorted(body) if isinstance(body, dict) else []
        entry = WireRequest(transport=transport, method=request.method, path=request.url.path,
                            fields=fields)
        with self._lock:
            self.requests.append(entry)

    def summary(self) -> WireSummary:
        with self._lock:
            requests = list(self.requests)
        transports: dict[str, TransportWire] = {}
        for label in dict.fromkeys(r.transport for r in requests):
            mine = [r for r in requests if r.transport == label]
            transports[label] = TransportWire(
                requests=len(mine),
                paths=sorted({r.path for r in mine}),
                fields=sorted({f for r in mine for f in r.fields}),
                with_suffix=sum(r.carries_suffix for r in mine),
            )
        return WireSummary(transports=transports)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
