"""The budget check's own key: a second throwaway key with the catalog's tiny budget.

The gate's main key cannot be used: spending it down would refuse the gate's other requests.
The key is deleted whatever happens, and the deletion is verified.
"""

from __future__ import annotations

import openai

from deploy.litellm_admin import GatewayError, KeyNotFound, VirtualKey, throwaway_key
from evals.budget import BudgetBinding, run_budget_binding
from evals.embeddings import EmbeddingCheck
from gates.kinds.embeddings.judge import budget_check
from gates.session import AliasContext


def _key_deleted(context: AliasContext, key: VirtualKey) -> EmbeddingCheck:
    name = "budget_key_deleted"
    try:
        context.admin.key_info(key)
    except KeyNotFound:
        return EmbeddingCheck(name=name, outcome="pass",
                              reason=f"the budget key {key.key_name} is gone after the check")
    except GatewayError as exc:
        return EmbeddingCheck(name=name, outcome="error",
                              reason=f"could not confirm the budget key's deletion: {exc}")
    return EmbeddingCheck(name=name, outcome="fail",
                          reason=f"the budget key {key.key_name} still exists after deletion")


def budget_checks(context: AliasContext, *, max_budget: float, max_requests: int = 200,
                  allowed_over_budget: int = 1) -> list[EmbeddingCheck]:
    """Spend a fresh key with `max_budget` down until refused; then check it was deleted."""
    alias = context.entry.alias
    key: VirtualKey | None = None
    binding: BudgetBinding | None = None
    try:
        with throwaway_key(
            context.admin, alias=f"modelgate-{context.session.run_id}-{alias}-budget",
            models=[alias], max_budget=max_budget,
            metadata={"modelgate_run": context.session.run_id, "gate": "budget_binding"},
        ) as key:
            client = openai.OpenAI(base_url=f"{context.gateway_url.rstrip('/')}/v1",
                                   api_key=key.value, max_retries=0, timeout=120)
            binding = run_budget_binding(
                client, alias, max_budget=max_budget,
                input_cost_per_token=context.entry.price.input_per_token,
                output_cost_per_token=context.entry.price.output_per_token,
                read_spend=lambda: context.admin.key_info(key).spend,
                max_requests=max_requests, allowed_over_budget=allowed_over_budget,
            )
    except GatewayError as exc:  # creating or deleting the key: the admin API did not serve us
        if binding is None:
            return [EmbeddingCheck(name="budget_binding", outcome="error",
                                   reason=f"could not create the budget key: {exc}")]
        return [budget_check(binding), EmbeddingCheck(
            name="budget_key_deleted", outcome="error", reason=f"could not delete the budget key: {exc}")]
    assert key is not None and binding is not None  # the with block ran to its end
    return [budget_check(binding), _key_deleted(context, key)]
