"""One judged BFCL entry: the record that goes to the ledger's details."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

Outcome = Literal["passed", "failed", "error"]


class BfclItem(BaseModel):
    """An entry's outcome: passed/failed by BFCL's checker, error when the platform gave no
    answer; the conversation, the decoded calls and the checker's reason kept for the report."""

    id: str
    category: str
    outcome: Outcome
    reason: str = ""
    steps: int = 1
    messages: list[dict[str, Any]] = []
    calls: list[Any] = []
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
