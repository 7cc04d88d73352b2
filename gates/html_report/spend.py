"""The key's spend against its budget, from whatever a gate's record or rows carry of it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from deploy.ledger import GateRecord


class Spend(BaseModel):
    """What one gate's key spent, and its budget where the gate knows it."""

    spent_usd: float
    budget_usd: float | None = None
    gate_cost_usd: float | None = None  # what this gate's own requests cost
    source: str
    note: str = ""

    @property
    def share(self) -> float | None:
        return self.spent_usd / self.budget_usd if self.budget_usd else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _from_headers(rows: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """The highest key spend and the budget the gateway reported in its response headers."""
    spent = budget = None
    for row in rows:
        headers = (row.get("call") or {}).get("headers") or {}
        value, limit = _num(headers.get("x-litellm-key-spend")), _num(headers.get("x-litellm-key-max-budget"))
        if value is not None and (spent is None or value > spent):
            spent = value
        budget = limit if limit is not None else budget
    return spent, budget


def spend_of(record: GateRecord, rows: list[dict[str, Any]]) -> Spend | None:
    """The record's spend figure, or None when the gate kept none."""
    extra = record.extra
    spend = extra.get("spend") if isinstance(extra.get("spend"), dict) else {}
    if _num(spend.get("key_spend_usd")) is not None:  # the tool-loop gate's key
        budget = _num(spend.get("max_budget_usd"))
        if budget is None:
            budget = _num(spend.get("catalog_budget_usd"))
        return Spend(spent_usd=_num(spend["key_spend_usd"]), budget_usd=budget,
                     gate_cost_usd=_num(spend.get("gate_spend_usd")), source="gate key",
                     note=str(spend.get("problem") or ""))
    if _num(spend.get("after")) is not None:  # the FIM gate's virtual key
        return Spend(spent_usd=_num(spend["after"]), source="virtual key",
                     gate_cost_usd=_num(spend.get("reported")), note=str(spend.get("detail") or ""))
    if _num(extra.get("budget_spend_usd")) is not None:  # the embeddings gate's budget key
        refusal = extra.get("budget_refusal_status")
        return Spend(spent_usd=_num(extra["budget_spend_usd"]), budget_usd=_num(extra.get("budget_usd")),
                     source="throwaway budget key",
                     note=f"refused with HTTP {refusal} once over budget" if refusal else "")
    spent, budget = _from_headers(rows)  # HumanEval's rows keep the gateway's headers
    if spent is not None:
        return Spend(spent_usd=spent, budget_usd=budget, gate_cost_usd=_num(extra.get("cost_usd")),
                     source="gate key (response headers)")
    if _num(extra.get("cost_usd")) is not None:
        return Spend(spent_usd=_num(extra["cost_usd"]), source="this gate's requests")
    return None
