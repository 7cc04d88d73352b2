"""The budgeted key's accounting: its spend must equal the sum of the gateway's response costs.

LiteLLM writes spend in batches (CONTRACTS.md §1), so reads poll. The gateway answers streamed
responses without a cost header, so the check covers the non-streamed pass only.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from deploy.litellm_admin import KeyNotFound, LiteLLMAdmin, VirtualKey
from evals.tool_loop import ScenarioResult

# Header values are decimal strings of floats: allow their rounding, nothing more.
REL_TOLERANCE = 1e-6
ABS_TOLERANCE = 1e-12


class SpendCheck(BaseModel):
    """What the key's accounting showed; `problem` is empty when it is right."""

    problem: str = ""
    baseline_usd: float
    key_spend_usd: float | None = None
    response_cost_usd: float = 0.0
    responses: int = 0
    missing_cost_headers: int = 0
    max_budget_usd: float | None = None
    catalog_budget_usd: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def gate_spend_usd(self) -> float | None:
        """What the gate's own requests cost the key (its spend less the route probe's)."""
        return None if self.key_spend_usd is None else self.key_spend_usd - self.baseline_usd


def settled_baseline(admin: LiteLLMAdmin, key: VirtualKey, *, priced: bool, timeout: float = 30.0) -> float:
    """The key's spend before the gate's requests.

    The route check's one-token probe already went through this fresh key; with priced tokens
    its charge is positive, so waiting for a positive spend makes the baseline include it.
    """
    if not priced:
        return admin.key_info(key).spend
    return admin.settled_spend(key, at_least=1e-15, timeout=timeout)  # a shortfall: see below


def check_spend(
    admin: LiteLLMAdmin,
    key: VirtualKey,
    results: list[ScenarioResult],
    *,
    baseline: float,
    catalog_budget: float | None,
    timeout: float = 30.0,
) -> SpendCheck:
    """Compare the key's spend growth with the `x-litellm-response-cost` headers of `results`."""
    costs = [cost for result in results for cost in result.costs]
    check = SpendCheck(
        baseline_usd=baseline,
        response_cost_usd=sum(cost for cost in costs if cost is not None),
        responses=len(costs),
        missing_cost_headers=sum(cost is None for cost in costs),
        catalog_budget_usd=catalog_budget,
    )
    expected = baseline + check.response_cost_usd
    check.key_spend_usd = admin.settled_spend(
        key, at_least=expected * (1 - REL_TOLERANCE) - ABS_TOLERANCE, timeout=timeout
    )
    check.max_budget_usd = admin.key_info(key).max_budget
    check.problem = _problem(check, expected)
    return check


def _problem(check: SpendCheck, expected: float) -> str:
    if check.catalog_budget_usd is not None and not _close(check.max_budget_usd, check.catalog_budget_usd):
        return (f"the key's max_budget is {check.max_budget_usd} USD, "
                f"not the catalog's {check.catalog_budget_usd} USD")
    if check.responses == 0:
        return "no response to account for"
    if check.missing_cost_headers:
        return (f"{check.missing_cost_headers} of {check.responses} responses carried no "
                "x-litellm-response-cost header")
    spent = check.gate_spend_usd or 0.0
    if spent <= 0:
        return f"the key's spend did not grow (stayed at {check.key_spend_usd} USD)"
    if not _close(check.key_spend_usd, expected):
        return (f"the key's spend grew by {spent:.9g} USD, but the responses cost "
                f"{check.response_cost_usd:.9g} USD")
    return ""


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def key_exists(admin: LiteLLMAdmin, key: VirtualKey) -> bool:
    try:
        admin.key_info(key)
    except KeyNotFound:
        return False
    return True
