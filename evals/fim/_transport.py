"""FIM over `/v1/completions`: one request per case, and the direct-versus-gateway comparison.

The prompt is formatted here (CONTRACTS.md §3) and sent without `suffix`, with the family's
request stops (at most four), at temperature 0. The gate runs this twice, straight to the backend and through
the gateway with a virtual key, then compares the two runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai
from pydantic import BaseModel

from evals.fim._cases import FimCase
from evals.fim._prompts import family
from evals.model_calls import RetryPolicy, completion, map_bounded, response_cost
from evals.seeds import resolve_seed


class FimCallResult(BaseModel):
    """One case's request: the returned middle, or the platform error that stood in its way."""

    case_id: str
    answered: bool  # HTTP 200 with a choice
    status: int | None = None
    middle: str | None = None
    served_model: str | None = None  # the response's `model`
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    response_cost: float | None = None  # `x-litellm-response-cost`, when a gateway sent it
    error_kind: str | None = None
    error: str | None = None


class FimRun(BaseModel):
    """All cases over one transport (e.g. "direct" or "vkey")."""

    label: str
    model: str
    fim_family: str
    results: list[FimCallResult]

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.results)

    @property
    def all_answered(self) -> bool:
        return bool(self.results) and self.answered == len(self.results)

    @property
    def served_models(self) -> list[str]:
        return sorted({r.served_model for r in self.results if r.served_model})

    @property
    def total_cost(self) -> float | None:
        costs = [r.response_cost for r in self.results if r.response_cost is not None]
        return sum(costs) if costs else None


def _one(client: openai.OpenAI, model: str, case: FimCase, fim_family: str, max_tokens: int,
         policy: RetryPolicy | None, seed: int) -> FimCallResult:
    outcome = completion(
        client, model, case.prompt(fim_family), policy=policy, seed=seed,
        max_tokens=max_tokens, temperature=0.0, stop=list(family(fim_family).request_stops),
    )
    if not outcome.ok:
        return FimCallResult(
            case_id=case.case_id, answered=False, status=outcome.status,
            error_kind=outcome.error_kind, error=outcome.message,
        )
    reply = outcome.value
    choice = reply.choices[0] if reply.choices else None
    usage = reply.usage
    return FimCallResult(
        case_id=case.case_id, answered=choice is not None, status=outcome.status,
        # A null text of a well-formed reply is the model's (empty) answer, scored as such.
        middle=(choice.text or "") if choice is not None else None, served_model=reply.model,
        finish_reason=choice.finish_reason if choice is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        response_cost=response_cost(outcome),
        error=None if choice is not None else "200 without a choice",
    )


def run_fim(
    client: openai.OpenAI,
    model: str,
    cases: Sequence[FimCase],
    fim_family: str,
    *,
    label: str = "direct",
    max_tokens: int = 128,
    concurrency: int = 4,
    policy: RetryPolicy | None = None,
    seed: int | None = None,
) -> FimRun:
    """Ask `model` to fill every case's hole; results in case order. Every request sends
    `seed` (default `evals.seeds.DEFAULT_SEED`), the same on both transports.

    Repository-level cases need a family with a repository-level format (Qwen); filter with
    `load_fim_cases(path, fim_family)` first.
    """
    for case in cases:  # fail before any request, naming the case at fault
        if case.repo is not None and not family(fim_family).repo_level:
            raise ValueError(f"case {case.case_id} is repository-level; {fim_family!r} has no such format")
    results = map_bounded(
        lambda case: _one(client, model, case, fim_family, max_tokens, policy, resolve_seed(seed)),
        cases, concurrency=concurrency, progress_label=f"FIM {label} {model}",
    )
    return FimRun(label=label, model=model, fim_family=fim_family, results=results)


class TransportComparison(BaseModel):
    """Did both transports answer 200 for every case, from the same backend?

    `same_served_model`: the gateway answered as the direct backend's served name or as the
    alias it was asked for (see `compare_transports`)."""

    ok: bool
    both_answered: bool
    same_served_model: bool
    direct_label: str
    gateway_label: str
    direct_models: list[str]
    gateway_models: list[str]
    reason: str


# LiteLLM may report the provider route in front of the served name (CONTRACTS.md §1).
_ROUTE_PREFIXES = ("hosted_vllm/", "text-completion-openai/", "openai/")


def served_name(model: str) -> str:
    for prefix in _ROUTE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def compare_transports(direct: FimRun, via_gateway: FimRun) -> TransportComparison:
    """Both runs answered 200 for every case, and the gateway routed to the direct backend.

    The direct run must name one served model. The gateway's replies may name that served model
    (a gateway that passes the backend's `model` on) or the alias they were asked for (LiteLLM
    answers with the requested alias): either proves the route; any other name does not.
    """
    both = direct.all_answered and via_gateway.all_answered
    d_models = sorted({served_name(m) for m in direct.served_models})
    g_models = sorted({served_name(m) for m in via_gateway.served_models})
    alias = via_gateway.model
    same = len(d_models) == 1 and bool(g_models) and set(g_models) <= {d_models[0], alias}
    problems = []
    for run in (direct, via_gateway):
        if not run.all_answered:
            problems.append(f"{run.label} answered {run.answered}/{len(run.results)}")
    if not same:
        problems.append(f"served model {d_models or 'none'} ({direct.label}) vs "
                        f"{g_models or 'none'} ({via_gateway.label}, asked for {alias!r}): the "
                        "gateway must answer with the direct served name or the alias")
    reason = "; ".join(problems) or (
        f"{direct.label} and {via_gateway.label} answered 200 for all {len(direct.results)} cases "
        f"from {d_models[0]}"
        + (f" (the gateway names it {alias!r})" if g_models == [alias] != d_models else "")
    )
    return TransportComparison(
        ok=both and same, both_answered=both, same_served_model=same,
        direct_label=direct.label, gateway_label=via_gateway.label,
        direct_models=d_models, gateway_models=g_models, reason=reason,
    )
