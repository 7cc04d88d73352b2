"""A BFCL selection through a chat endpoint: each entry asked and judged by BFCL's checkers.

Single-turn entries are one request each; multi-turn entries run the loop of
`evals.bfcl.multi_turn` (the model's calls executed against BFCL's backends, bounded in steps
per turn and in time), asking through the same request code.
"""

from __future__ import annotations

import time
from typing import Any

import openai
from pydantic import BaseModel

from evals.bfcl.ask import AskSettings, Reply, make_ask
from evals.bfcl.data import MULTI_TURN, load_answers, select
from evals.bfcl.items import BfclItem
from evals.bfcl.single_turn import run_single_turn_entry
from evals.model_calls import map_bounded


class LoopBounds(BaseModel):
    """A multi-turn entry's bounds: exceeding them is the model's FAIL."""

    max_steps_per_turn: int = 20
    time_budget_s: float = 600.0


def run_multi_turn(client: openai.OpenAI, model: str, entry: dict[str, Any],
                   answer: dict[str, Any], settings: AskSettings, bounds: LoopBounds) -> BfclItem:
    """One multi-turn entry through the loop; its requests' tokens and costs summed."""
    from evals.bfcl.multi_turn import run_multi_turn_entry

    replies: list[Reply] = []
    started = time.perf_counter()
    outcome = run_multi_turn_entry(
        entry, answer, make_ask(client, model, settings, replies),
        max_steps_per_turn=bounds.max_steps_per_turn, time_budget_s=bounds.time_budget_s,
    )
    calls = [call["function"] for m in outcome.messages if m.get("role") == "assistant"
             for call in m.get("tool_calls") or []]
    costs = [r.cost_usd for r in replies if r.cost_usd is not None]
    return BfclItem(
        id=outcome.id, category=outcome.category, outcome=outcome.outcome, reason=outcome.reason,
        steps=outcome.steps, messages=outcome.messages, calls=calls,
        prompt_tokens=sum(r.prompt_tokens for r in replies),
        completion_tokens=sum(r.completion_tokens for r in replies),
        cost_usd=sum(costs) if costs else None, latency_s=time.perf_counter() - started,
    )


def selection(ids_by_category: dict[str, list[str] | None]) -> list[tuple[str, dict[str, Any]]]:
    """(category, entry) pairs: the given ids of each category (None: the whole category)."""
    return [(category, entry) for category, ids in ids_by_category.items()
            for entry in select(category, ids)]


def first_per_category(chosen: list[tuple[str, dict[str, Any]]], limit: int) -> list[tuple[str, dict[str, Any]]]:
    """The first `limit` entries of each category (a smoke run still asks every category)."""
    seen: dict[str, int] = {}
    kept = []
    for category, entry in chosen:
        seen[category] = seen.get(category, 0) + 1
        if seen[category] <= limit:
            kept.append((category, entry))
    return kept


def run_bfcl(client: openai.OpenAI, model: str, chosen: list[tuple[str, dict[str, Any]]], *,
             settings: AskSettings, bounds: LoopBounds, concurrency: int = 4,
             progress: bool = True) -> list[BfclItem]:
    """Every chosen entry asked and judged, in order; `concurrency` entries in flight."""
    answers = {category: load_answers(category) for category in {c for c, _ in chosen}}

    def one(pair: tuple[str, dict[str, Any]]) -> BfclItem:
        category, entry = pair
        answer = answers[category].get(entry["id"])
        if category in MULTI_TURN:
            if answer is None:
                raise ValueError(f"BFCL {entry['id']}: no possible answer in the package")
            return run_multi_turn(client, model, entry, answer, settings, bounds)
        return run_single_turn_entry(client, model, category, entry, answer, settings)

    return map_bounded(one, chosen, concurrency, "BFCL entries" if progress else None,
                       progress=progress, passed=lambda item: item.outcome == "passed")
