"""The single-turn categories (simple, multiple, parallel, parallel-multiple, irrelevance).

One request per entry with the entry's functions as OpenAI tools, converted the way BFCL's OpenAI
function-calling handler does (`OpenAICompletionsHandler._compile_tools`: `convert_to_tool` with
`GORILLA_TO_OPENAPI`, dots in names replaced by underscores); the tool calls decoded as its
`decode_ast` does (`[{name: json.loads(arguments)}]`), and judged as BFCL's eval runner does
(`_evaluate_single_ast_entry`, `_evaluate_single_relevance_entry`) with BFCL's AST checker.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai

from evals.bfcl.ask import AskSettings, Reply, request_reply
from evals.bfcl.checker import ast_check
from evals.bfcl.data import bfcl_module
from evals.bfcl.items import BfclItem


def openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL function docs as OpenAI tools, by BFCL's own `convert_to_tool` (OpenAI style)."""
    utils = bfcl_module("model_handler.utils")
    style = bfcl_module("constants.enums").ModelStyle.OPENAI_COMPLETIONS
    types = bfcl_module("constants.type_mappings").GORILLA_TO_OPENAPI
    return utils.convert_to_tool(functions, types, style)


def decode_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls as BFCL's FC decoder reads them; raises when they cannot be decoded (a
    reply without calls is text, which BFCL fails to decode, as here)."""
    calls = message.get("tool_calls")
    if not calls:
        raise ValueError(f"no tool call; the model answered text: {str(message.get('content'))[:200]!r}")
    return [{call["function"]["name"]: json.loads(call["function"]["arguments"])} for call in calls]


def judge(category: str, entry: dict[str, Any], answer: dict[str, Any] | None,
          message: dict[str, Any]) -> tuple[bool, str, list[Any]]:
    """BFCL's verdict on one reply: (valid, the checker's reason, the decoded calls)."""
    utils = bfcl_module("utils")
    try:
        decoded = decode_calls(message)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        if category == "irrelevance":
            return True, "no function call, as expected", []
        return False, f"Invalid syntax. Failed to decode AST. {exc}", []
    if category == "irrelevance":
        if utils.is_empty_output(decoded):
            return True, "no function call, as expected", decoded
        return False, "Valid syntax. Successfully decode AST when it should not.", decoded
    if not utils.is_function_calling_format_output(decoded):
        return False, "Did not output in the specified format.", decoded
    if answer is None:
        raise ValueError(f"BFCL {entry['id']}: no possible answer in the package")
    try:
        result = ast_check(category, entry["function"], decoded, answer["ground_truth"])
    except Exception as exc:  # the checker choked on what the model sent: the model's output
        return False, f"BFCL's checker could not read the calls: {type(exc).__name__}: {exc}", decoded
    if result["valid"]:
        return True, "matches a possible answer", decoded
    errors = result.get("error") or []
    reason = "; ".join(str(e) for e in errors) or "does not match a possible answer"
    return False, f"{result.get('error_type', 'invalid')}: {reason}", decoded


def run_single_turn_entry(client: openai.OpenAI, model: str, category: str, entry: dict[str, Any],
                          answer: dict[str, Any] | None, settings: AskSettings) -> BfclItem:
    """Ask one single-turn entry through the endpoint and judge it; no answer is an ERROR."""
    messages = list(entry["question"][0])
    started = time.perf_counter()
    reply: Reply = request_reply(client, model, messages, openai_tools(entry["function"]), settings)
    base = dict(id=entry["id"], category=category, prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens, cost_usd=reply.cost_usd,
                latency_s=time.perf_counter() - started)
    if reply.message is None:
        return BfclItem(outcome="error", reason=reply.fault, messages=messages, **base)
    valid, reason, decoded = judge(category, entry, answer, reply.message)
    return BfclItem(outcome="passed" if valid else "failed", reason=reason,
                    messages=[*messages, reply.message], calls=decoded, **base)
