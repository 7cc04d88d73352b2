"""One coder-fim evaluation: the cases straight to the backend and through the gateway with the
throwaway key, the two runs compared, the key's spend checked, the gateway's answers executed."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, zip_longest
from typing import Any, Literal

from pydantic import BaseModel

from deploy.catalog import AliasEntry
from deploy.gate_configs import FimGate
from deploy.litellm_admin import GatewayError, LiteLLMAdmin, VirtualKey
from evals.fim import (
    FimCallResult,
    FimCase,
    FimCaseScore,
    FimRun,
    FimScore,
    TransportComparison,
    compare_transports,
    run_fim,
    score_fim,
)
from evals.model_calls import RetryPolicy
from gates.kinds.fim.wire import WireLog, WireSummary
from gates.session import AliasContext

# Spend must grow by the gateway run's cost at the catalog's prices; float sums may differ a hair.
SPEND_TOLERANCE = 0.01


class SpendCheck(BaseModel):
    status: Literal["grew", "flat", "no-cost", "unreadable"]
    before: float | None
    after: float | None
    expected: float  # the gateway run's cost at the catalog's prices
    reported: float | None  # sum of the gateway's x-litellm-response-cost headers
    detail: str


class FimCaseDetail(BaseModel):
    """One ledger detail row: a case over both transports and how the gateway's answer scored."""

    case_id: str
    kind: str
    direct: FimCallResult
    vkey: FimCallResult
    score: FimCaseScore
    same_middle: bool


class FimGateOutcome(BaseModel):
    fim_family: str
    direct: FimRun
    vkey: FimRun
    comparison: TransportComparison
    score: FimScore
    spend: SpendCheck
    wire: WireSummary

    def details(self) -> list[FimCaseDetail]:
        return [
            FimCaseDetail(case_id=s.case_id, kind=s.kind, direct=d, vkey=v, score=s,
                          same_middle=d.middle is not None and d.middle == v.middle)
            for d, v, s in zip(self.direct.results, self.vkey.results, self.score.cases, strict=True)
        ]

    def extra(self) -> dict[str, Any]:
        answered = [r for r in self.vkey.results if r.answered]
        return {
            "fim_family": self.fim_family,
            "cases": self.score.total,
            "mangled": self.score.mangled,
            "exact": self.score.exact,
            "mean_edit_similarity": round(self.score.mean_edit_similarity, 4),
            "same_middles": sum(d.same_middle for d in self.details()),
            "prompt_tokens": sum(r.prompt_tokens or 0 for r in answered),
            "completion_tokens": sum(r.completion_tokens or 0 for r in answered),
            "comparison": self.comparison.model_dump(),
            "spend": self.spend.model_dump(),
            "wire": self.wire.model_dump(),
        }


def spread(cases: Sequence[FimCase], limit: int) -> list[FimCase]:
    """`limit` cases taken round-robin over the kinds, so a smoke run still sees every kind."""
    kinds: dict[str, list[FimCase]] = {}
    for case in cases:
        kinds.setdefault(case.kind, []).append(case)
    mixed = [c for c in chain.from_iterable(zip_longest(*kinds.values())) if c is not None]
    return mixed[:limit]


def expected_cost(run: FimRun, entry: AliasEntry) -> float:
    return sum(
        (r.prompt_tokens or 0) * entry.price.input_per_token
        + (r.completion_tokens or 0) * entry.price.output_per_token
        for r in run.results if r.answered
    )


def _spend(admin: LiteLLMAdmin, key: VirtualKey) -> float | None:
    try:
        return admin.key_info(key).spend
    except GatewayError:
        return None


def check_spend(admin: LiteLLMAdmin, key: VirtualKey, before: float | None, run: FimRun,
                entry: AliasEntry, timeout: float) -> SpendCheck:
    """Did the key's spend grow by the cost of the requests made with it?"""
    expected = expected_cost(run, entry)
    common = {"before": before, "expected": expected, "reported": run.total_cost}
    if before is None:
        return SpendCheck(status="unreadable", after=None, **common,
                          detail=f"GET /key/info for {key.key_name} failed before the run")
    if expected <= 0:
        return SpendCheck(status="no-cost", after=before, **common, detail=(
            f"no cost to expect: {run.answered} answered requests, catalog price "
            f"{entry.price.input_per_1m}/{entry.price.output_per_1m} per 1M tokens; "
            "a budget on this alias could never bind"))
    problem = ""
    try:
        after = admin.settled_spend(key, before + expected * (1 - SPEND_TOLERANCE), timeout=timeout)
    except GatewayError as exc:
        after, problem = None, f": {exc}"
    if after is None:
        return SpendCheck(status="unreadable", after=None, **common,
                          detail=f"GET /key/info failed after the run{problem}")
    grew = after >= before + expected * (1 - SPEND_TOLERANCE)
    detail = (f"key spend {before:.8f} -> {after:.8f} USD "
              f"(expected +{expected:.8f} for {run.answered} requests)")
    if not grew:
        detail = f"the key's spend did not grow by the requests' cost within {timeout:g} s: {detail}"
    return SpendCheck(status="grew" if grew else "flat", after=after, **common, detail=detail)


def evaluate(context: AliasContext, cases: Sequence[FimCase], config: FimGate,
             fim_family: str, *, policy: RetryPolicy | None = None) -> FimGateOutcome:
    """Run the cases over both transports, then compare, check spend and score the gateway's run."""
    wire = WireLog()
    entry = context.entry
    before = _spend(context.admin, context.key)
    try:
        direct_client = context.direct_client(
            http_client=wire.http_client("direct", timeout=config.request_timeout_s))
        gateway_client = context.client(
            http_client=wire.http_client("vkey", timeout=config.request_timeout_s))
        common = {"max_tokens": config.max_tokens, "concurrency": config.concurrency, "policy": policy,
                  "seed": config.seed}
        # Direct: the backend's own served name. Through the gateway: the alias tenants use.
        direct = run_fim(direct_client, context.deployment.served_model_name, cases, fim_family,
                         label="direct", **common)
        vkey = run_fim(gateway_client, entry.alias, cases, fim_family, label="vkey", **common)
    finally:
        wire.close()
    spend = check_spend(context.admin, context.key, before, vkey, entry, config.spend_timeout_s)
    score = score_fim(vkey, cases, concurrency=config.check_concurrency)
    return FimGateOutcome(
        fim_family=fim_family, direct=direct, vkey=vkey, comparison=compare_transports(direct, vkey),
        score=score, spend=spend, wire=wire.summary(),
    )
