"""BFCL's multi-turn entries as BFCL runs them: the model's calls executed against BFCL's own
backend classes turn by turn, then judged by BFCL's `multi_turn_checker`.

The loop follows `BaseHandler.inference_multi_turn_FC` (bfcl-eval 2026.3.23): each turn's user
messages (a held-out turn of miss_func adds its functions and BFCL's "I have updated some more
functions" prompt), then ask while the reply calls tools, executing each step's calls with
`execute_multi_turn_func_call` and returning the results as tool messages. A reply whose calls
cannot be decoded ends the turn, as in BFCL. Two differences, both for safety and both judged
the same: BFCL `eval`s the call strings it builds from the model's tool names and argument
keys, so a call naming anything but a public method of the entry's backend classes (what BFCL
itself maps calls to), or with an argument name that is not a Python identifier, is never
executed (its tool result says why); and exceeding the step bound
per turn or the entry's time budget ends the entry as the model's FAIL (BFCL force-quits too).

BFCL keeps the backend instances in its module's globals, keyed by model name and entry id:
every run uses its own unique model name and removes its instances afterwards, so entries
running in threads never share state.
"""

from __future__ import annotations

import copy
import inspect
import json
import keyword
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from evals.bfcl.data import bfcl_module
from evals.bfcl.single_turn import openai_tools

Ask = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]
_GLOBALS_LOCK = threading.Lock()  # BFCL's instance table is one module-level dict


class PlatformFault(Exception):
    """Raised by an `Ask` when the platform gave no answer: the entry is an ERROR."""


class MultiTurnOutcome(BaseModel):
    id: str
    category: str
    outcome: Literal["passed", "failed", "error"]
    reason: str
    steps: int
    messages: list[dict[str, Any]]  # the whole conversation, tool results included
    calls: list[list[str]] = []  # per turn, the executed calls in BFCL's string form


class _Undecodable(ValueError):
    """The reply's tool calls are not calls BFCL could decode (the turn ends)."""


def _utils() -> Any:
    return bfcl_module("eval_checker.multi_turn_eval.multi_turn_utils")


def backend_methods(instances: dict[str, Any]) -> set[str]:
    """The calls BFCL can execute for an entry: its backend instances' public methods."""
    return {name for instance in instances.values() for name, member
            in inspect.getmembers(instance, predicate=inspect.ismethod) if not name.startswith("_")}


def decode_calls(message: dict[str, Any], offered: set[str]) -> tuple[list[str], list[str]]:
    """The reply's calls as BFCL's strings (`convert_to_function_call`), and a tool result for
    each call that is not executed (no such backend method, or an unsafe argument name), in
    call order: results are "" for executable calls. Raises _Undecodable as BFCL's decoder
    fails."""
    convert = bfcl_module("model_handler.utils").convert_to_function_call
    strings, refusals = [], []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name, raw = function.get("name"), function.get("arguments")
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise _Undecodable(f"arguments of {name} are not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise _Undecodable(f"arguments of {name} are not a JSON object")
        if name not in offered:
            strings.append("")
            refusals.append(f"Error during execution: no function named {name!r}")
            continue
        bad = [k for k in arguments if not (isinstance(k, str) and k.isidentifier()
                                            and not keyword.iskeyword(k))]
        if bad:
            strings.append("")
            refusals.append(f"Error during execution: {bad[0]!r} is not a parameter name")
            continue
        strings.append(convert([{name: arguments}])[0])
        refusals.append("")
    return strings, refusals


class _Run:
    """One entry's run: its private BFCL instances, bounds, conversation and calls."""

    def __init__(self, entry: dict[str, Any], ask: Ask, max_steps: int, budget_s: float):
        self.entry = entry
        self.ask = ask
        self.max_steps = max_steps
        self.deadline = time.monotonic() + budget_s
        self.budget_s = budget_s
        self.model = f"modelgate_{uuid.uuid4().hex}"  # BFCL's instance key: unique per run
        self.messages: list[dict[str, Any]] = []
        self.calls: list[list[str]] = []  # executed calls per turn (the record)
        self.decoded: list[list[list[str]]] = []  # per turn, per step (what the checker reads)
        self.steps = 0
        self.methods: set[str] = set()

    def execute(self, strings: list[str]) -> list[str]:
        results, instances = _utils().execute_multi_turn_func_call(
            strings, self.entry.get("initial_config", {}), self.entry["involved_classes"],
            self.model, self.entry["id"], long_context=False, is_evaL_run=False,
        )
        self.methods = backend_methods(instances)
        return results

    def ask_once(self, tools: list[dict[str, Any]]) -> dict[str, Any]:
        if time.monotonic() > self.deadline:
            raise _OverBudget(f"time budget of {self.budget_s:g} s for the entry exceeded")
        self.steps += 1
        reply = self.ask(list(self.messages), tools)
        self.messages.append(reply)
        return reply

    def turn(self, user_messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        self.messages.extend(user_messages)
        executed: list[str] = []
        steps: list[list[str]] = []
        for step in range(self.max_steps + 1):
            if step == self.max_steps:
                raise _OverBudget(f"step limit {self.max_steps} per turn reached")
            reply = self.ask_once(tools)
            if not reply.get("tool_calls"):
                break  # a text answer ends the turn
            try:
                strings, refusals = decode_calls(reply, self.methods)
            except _Undecodable as exc:
                # BFCL proceeds to the next turn; the calls still get results so the history
                # stays a valid chat for the next request.
                self._results(reply, [f"Error during execution: {exc}"] * len(reply["tool_calls"]))
                break
            runnable = [s for s in strings if s]
            results = iter(self.execute(runnable)) if runnable else iter(())
            self._results(reply, [refusal or next(results) for refusal in refusals])
            executed.extend(runnable)
            if runnable:
                steps.append(runnable)
        self.calls.append(executed)
        self.decoded.append(steps)

    def _results(self, reply: dict[str, Any], contents: list[str]) -> None:
        for call, content in zip(reply["tool_calls"], contents, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call.get("id", ""),
                                  "content": content})

    def cleanup(self) -> None:
        table = vars(_utils())
        prefix = self.model
        with _GLOBALS_LOCK:
            for name in [n for n in table if n.startswith(prefix)]:
                del table[name]


class _OverBudget(Exception):
    """The entry exceeded its step or time bound: the model's failure."""


def _turns(entry: dict[str, Any]) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each turn's (user messages, functions offered), held-out functions added as BFCL does."""
    prompt = bfcl_module("constants.default_prompts").DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
    functions = copy.deepcopy(entry["function"])
    held_out = entry.get("missed_function") or {}
    out = []
    for index, messages in enumerate(entry["question"]):
        if str(index) in held_out:
            functions = functions + copy.deepcopy(held_out[str(index)])
            messages = [{"role": "user", "content": prompt}]
        out.append((copy.deepcopy(messages), functions))
    return out


def judge(entry: dict[str, Any], answer: dict[str, Any], decoded: list[list[list[str]]],
          model: str) -> tuple[bool, str]:
    """BFCL's multi_turn_checker on the decoded calls (state and responses per turn)."""
    checker = bfcl_module("eval_checker.multi_turn_eval.multi_turn_checker").multi_turn_checker
    category = entry["id"].rsplit("_", 1)[0]
    try:
        result = checker(decoded, answer["ground_truth"], entry, category, model)
    except Exception as exc:  # BFCL asserts on what the model's calls did to the instances
        return False, f"BFCL's checker could not judge the calls: {type(exc).__name__}: {exc}"
    if result.get("valid"):
        return True, "state and responses match the ground truth every turn"
    message = result.get("error_message") or result.get("error") or "does not match"
    return False, f"{result.get('error_type', 'multi_turn:invalid')}: {message}"[:600]


def run_multi_turn_entry(entry: dict[str, Any], answer: dict[str, Any], ask: Ask, *,
                         max_steps_per_turn: int, time_budget_s: float) -> MultiTurnOutcome:
    """Run one multi-turn entry through `ask` and judge it with BFCL's checker."""
    entry = copy.deepcopy(entry)  # BFCL extends an entry's functions in place; ours stays whole
    category = entry["id"].rsplit("_", 1)[0]
    run = _Run(entry, ask, max_steps_per_turn, time_budget_s)

    def outcome(kind: Literal["passed", "failed", "error"], reason: str) -> MultiTurnOutcome:
        return MultiTurnOutcome(id=entry["id"], category=category, outcome=kind, reason=reason,
                                steps=run.steps, messages=run.messages, calls=run.calls)

    try:
        run.execute([])  # the instances with the entry's initial state, as BFCL starts
        for messages, functions in _turns(entry):
            run.turn(messages, openai_tools(functions))
        if len(run.decoded) != len(answer["ground_truth"]):
            return outcome("failed", "multi_turn:force_terminated: turns do not match")
        valid, reason = judge(entry, answer, run.decoded, run.model)
        return outcome("passed" if valid else "failed", reason)
    except PlatformFault as fault:
        return outcome("error", str(fault))
    except _OverBudget as over:
        return outcome("failed", f"multi_turn:force_terminated: {over}")
    finally:
        run.cleanup()
