"""The contract cases: one table, run against the real LiteLLM proxy and the gateway double.

A case is a request (route, body, which credential) and the facts its answer must carry:
status, body fields, headers, usage, error type. `observe` turns an answer into named facts
(plain values, no ids or timestamps), so two gateways' answers compare field by field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from evals.fim import build_fim_prompt, load_fim_cases
from evals.tool_loop import DEFAULT_SYSTEM, SCENARIOS

REPO = Path(__file__).resolve().parents[2]
BAD_KEY = "sk-conformance-no-such-key-0000"
Auth = Literal["master", "bad", "none"]
Facts = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One request and what its answer must carry (`expect`: field -> value every gateway gives)."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    auth: Auth = "master"
    stream: bool = False
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


def _tool_turn(stream: bool) -> dict[str, Any]:
    scenario = SCENARIOS[0]
    body = {
        "model": "coder-agent", "max_tokens": 256, "temperature": 0.0,
        "tools": [tool.openai_tool() for tool in scenario.tools], "tool_choice": "auto",
        "messages": [{"role": "system", "content": scenario.system or DEFAULT_SYSTEM},
                     {"role": "user", "content": scenario.task}],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _fim_prompt() -> str:
    case = load_fim_cases(REPO / "fixtures" / "fim_cases.json", "qwen2.5-coder")[0]
    return build_fim_prompt("qwen2.5-coder", case.prefix, case.suffix)


CHAT = {"model": "qwen-local", "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say something short."}]}
CASES: tuple[Case, ...] = (
    Case("liveliness", "GET", "/health/liveliness", auth="none",
         expect={"status": 200, "body": "I'm alive!"}),
    Case("readiness", "GET", "/health/readiness", auth="none", expect={"status": 200}),
    Case("models", "GET", "/v1/models",
         expect={"status": 200, "body.object": "list", "data.object": ["model"]}),
    Case("model_info", "GET", "/model/info", expect={"status": 200, "params.api_key": False}),
    Case("chat", "POST", "/v1/chat/completions", CHAT,
         expect={"status": 200, "body.object": "chat.completion", "message.role": "assistant",
                 "finish_reason": "stop", "header.x-litellm-response-cost": True}),
    Case("chat_stream_usage", "POST", "/v1/chat/completions",
         CHAT | {"stream": True, "stream_options": {"include_usage": True}}, stream=True,
         expect={"status": 200, "stream.done": True, "stream.usage": True}),
    Case("chat_stream", "POST", "/v1/chat/completions", CHAT | {"stream": True}, stream=True,
         expect={"status": 200, "stream.done": True, "stream.usage": False}),
    Case("tool_call", "POST", "/v1/chat/completions", _tool_turn(False),
         expect={"status": 200, "finish_reason": "tool_calls", "tool_call.type": "function"}),
    Case("tool_call_stream", "POST", "/v1/chat/completions", _tool_turn(True), stream=True,
         expect={"status": 200, "finish_reason": "tool_calls", "stream.done": True}),
    Case("fim_completion", "POST", "/v1/completions",
         {"model": "coder-fim", "prompt": _fim_prompt(), "max_tokens": 64, "temperature": 0.0},
         expect={"status": 200, "body.object": "text_completion"}),
    Case("embeddings", "POST", "/v1/embeddings",
         {"model": "embeddings", "input": ["a conformance probe", "a second text"]},
         expect={"status": 200, "body.object": "list", "embedding.count": 2}),
    Case("external_usage", "POST", "/v1/chat/completions",
         {"model": "claude-haiku", "max_tokens": 16,
          "messages": [{"role": "user", "content": "Say hello."}]},
         expect={"status": 200, "header.x-litellm-response-cost": True}),
    Case("unknown_model", "POST", "/v1/chat/completions", CHAT | {"model": "no-such-alias"},
         expect={"status": 400, "error.code": "400"}),
    Case("bad_key", "POST", "/v1/chat/completions", CHAT, auth="bad"),
    Case("no_key", "POST", "/v1/chat/completions", CHAT, auth="none",
         expect={"status": 401, "error.type": "auth_error"}),
    Case("key_generate", "POST", "/key/generate", {"models": ["qwen-local"], "max_budget": 0.01}),
)


def _get(obj: Any, *path: Any) -> Any:
    for step in path:
        if isinstance(obj, dict):
            obj = obj.get(step)
        elif isinstance(obj, list) and isinstance(step, int) and -len(obj) <= step < len(obj):
            obj = obj[step]
        else:
            return None
    return obj


def _cost(headers: httpx.Headers) -> float | None:
    value = headers.get("x-litellm-response-cost")
    return None if value is None else round(float(value), 12)


def _usage(usage: Any) -> Facts:
    if not isinstance(usage, dict):
        return {"usage": None}
    return {f"usage.{name}": usage.get(name)
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _error(body: Any) -> Facts:
    error = _get(body, "error")
    if not isinstance(error, dict):
        return {"error": None if body is None else str(body)[:80]}
    return {"error.type": error.get("type"), "error.code": error.get("code"),
            "error.message": error.get("message"), "error.param": error.get("param")}


def _events(response: httpx.Response) -> list[Any]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data = line[5:].strip()
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _stream_facts(events: list[Any]) -> Facts:
    chunks = [e for e in events if isinstance(e, dict)]
    text, finish, calls = "", None, {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            finish = choice.get("finish_reason") or finish
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
    usage_chunks = [c for c in chunks if c.get("usage")]
    facts: Facts = {
        "stream.done": bool(events) and events[-1] == "[DONE]",
        "stream.text": text, "finish_reason": finish,
        "stream.usage": bool(usage_chunks),
        "stream.error": any("error" in c for c in chunks),
        "body.model": sorted({c.get("model") for c in chunks if c.get("model")}),
    }
    if usage_chunks:
        last = usage_chunks[-1]
        facts |= _usage(last["usage"])
        facts["stream.usage_chunk_choices"] = json.dumps(last.get("choices"))
    for index, call in sorted(calls.items()):
        facts[f"tool_call.{index}.name"] = call["name"]
        facts[f"tool_call.{index}.arguments"] = json.loads(call["arguments"] or "null")
    return facts


def _json_facts(case: Case, body: Any) -> Facts:
    if case.name == "models":
        data = _get(body, "data") or []
        return {"body.object": _get(body, "object"), "data.ids": sorted(d.get("id") for d in data),
                "data.object": sorted({d.get("object") for d in data}),
                "data.owned_by": sorted({d.get("owned_by") for d in data}),
                "data.created": sorted({d.get("created") for d in data})}
    if case.name == "model_info":
        data = _get(body, "data") or []
        return {
            "data.model_names": sorted(d.get("model_name") for d in data),
            "params.api_key": any("api_key" in (d.get("litellm_params") or {}) for d in data),
            "params.model": sorted((d.get("litellm_params") or {}).get("model") for d in data),
            "info.mode": sorted(str(_get(d, "model_info", "mode")) for d in data),
            "info.id": all(_get(d, "model_info", "id") for d in data),
            "info.input_cost_per_token": sorted(_get(d, "model_info", "input_cost_per_token") or 0
                                                for d in data),
            "info.output_cost_per_token": sorted(_get(d, "model_info", "output_cost_per_token") or 0
                                                 for d in data),
        }
    if case.name in ("liveliness", "readiness"):
        return ({"body": body} if case.name == "liveliness"
                else {"body.status": _get(body, "status"), "body.db": _get(body, "db")})
    facts: Facts = {"body.object": _get(body, "object"), "body.model": _get(body, "model")}
    facts |= _usage(_get(body, "usage"))
    if _get(body, "object") == "chat.completion":
        message = _get(body, "choices", 0, "message") or {}
        facts |= {"message.role": message.get("role"), "message.content": message.get("content"),
                  "finish_reason": _get(body, "choices", 0, "finish_reason")}
        for index, call in enumerate(message.get("tool_calls") or []):
            facts[f"tool_call.{index}.name"] = _get(call, "function", "name")
            facts[f"tool_call.{index}.arguments"] = json.loads(_get(call, "function", "arguments"))
            facts["tool_call.type"] = call.get("type")
            facts["tool_call.id"] = bool(call.get("id"))
        facts["prompt_tokens_details"] = json.dumps(_get(body, "usage", "prompt_tokens_details"),
                                                    sort_keys=True)
    elif _get(body, "object") == "text_completion":
        facts |= {"text": _get(body, "choices", 0, "text"),
                  "finish_reason": _get(body, "choices", 0, "finish_reason")}
    elif _get(body, "object") == "list":
        vectors = [d.get("embedding") for d in _get(body, "data") or []]
        facts |= {"embedding.count": len(vectors), "embedding.object": _get(body, "data", 0, "object"),
                  "embedding.dimensions": sorted({len(v or []) for v in vectors})}
    return facts


HEADERS = ("x-litellm-call-id", "x-litellm-model-id", "x-litellm-model-api-base")


def observe(client: httpx.Client, case: Case, master_key: str) -> Facts:
    """Send the case's request; the answer as named facts."""
    headers = {"authorization": f"Bearer {master_key if case.auth == 'master' else BAD_KEY}"}
    if case.auth == "none":
        headers = {}
    with client.stream(case.method, case.path, json=case.body, headers=headers) as response:
        facts: Facts = {"status": response.status_code}
        if response.status_code == 200 and case.stream:
            facts |= _stream_facts(_events(response))
            facts["content_type"] = response.headers.get("content-type", "").split(";")[0]
        else:
            response.read()
            try:
                body = response.json()
            except ValueError:
                body = response.text[:80]
            facts |= _error(body) if response.status_code >= 400 else _json_facts(case, body)
    if case.method == "POST" and response.status_code == 200:
        facts["header.x-litellm-response-cost"] = _cost(response.headers) is not None
        if not case.stream:
            facts["header.cost_value"] = _cost(response.headers)
        facts |= {f"header.{name}": name in response.headers for name in HEADERS}
        base = response.headers.get("x-litellm-model-api-base")
        facts["header.api_base"] = base
    return facts

