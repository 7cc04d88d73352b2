"""Typed gate settings: one pydantic model per gate kind, checked when the catalog loads.

A catalog's `gates:` block maps a gate kind to its settings. Each kind has its own model with
`extra="forbid"`, rates in [0, 1] and counts that cannot be negative, so a misspelt threshold,
`min_pass_rate: 5` or `requests: -1` is an error naming file:line:field before any gate runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent

Rate = Annotated[float, Field(ge=0, le=1)]  # a fraction of requests, tasks or cases


class GateConfig(BaseModel):
    """What every gate kind accepts: request bounds, the key's budget, a sampling seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One attempt's timeout, and one request's total over its retries (evals.model_calls
    # documents the defaults): a stall ends as ERROR naming the timeout, never as a late FAIL.
    request_timeout_s: float = Field(default=120.0, gt=0)
    request_budget_s: float = Field(default=300.0, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)  # the run's throwaway key
    seed: int | None = None
    # point: the estimate against the threshold; lower-bound: the 95% interval must clear it
    # (a straddling one is INCONCLUSIVE). See gates.decision.
    decision: Literal["point", "lower-bound"] = "point"
    # A significant regression against the incumbent larger than this (a rate's drop, or a
    # latency p95's relative rise) fails the gate even when its threshold is met.
    max_regression: Rate | None = None


class HumanEvalGate(GateConfig):
    """`gates.humaneval` (coder-chat): HumanEval pass rate, scored in the sandbox."""

    min_pass_rate: Rate
    promotion_subset: str = "fixtures/humaneval_promotion_subset.json"  # from the repo root
    samples_per_task: int = Field(default=1, ge=1)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    concurrency: int = Field(default=4, ge=1)


class FimGate(GateConfig):
    """`gates.fim` (coder-fim): fill-in-the-middle, direct and through a virtual key."""

    min_functional_rate: Rate
    max_mangled_rate: Rate
    max_tokens: int = Field(default=128, ge=1)
    concurrency: int = Field(default=4, ge=1)  # requests in flight per transport
    check_concurrency: int = Field(default=2, ge=1)  # sandbox checks in flight
    cases: str = "fixtures/fim_cases.json"  # relative to the repository root
    spend_timeout_s: float = Field(default=30.0, gt=0)  # LiteLLM writes spend in batches


class ToolLoopGate(GateConfig):
    """`gates.tool_loop` (coder-agent): multi-step tool loops, streamed and not."""

    min_pass_rate: Rate
    max_steps: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    concurrency: int = Field(default=4, ge=1)


class BfclGate(GateConfig):
    """`gates.bfcl` (coder-agent): BFCL v4 categories judged by BFCL's own checkers.

    Promotion: the fixed subset per category; release: the whole single-turn categories and
    multi_turn_base, miss_func, miss_param.
    """

    min_accuracy: Rate
    promotion_subset: str = "fixtures/bfcl_promotion_subset.json"  # from the repo root
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    concurrency: int = Field(default=4, ge=1)
    # A multi-turn entry's loop: model steps per user turn, and wall time for the whole entry;
    # exceeding either is the model's FAIL.
    max_steps: int = Field(default=20, ge=1)
    entry_time_budget_s: float = Field(default=600.0, gt=0)


class EmbeddingsGateConfig(GateConfig):
    """`gates.embeddings`: vector checks and a budget that binds on a second, tiny key.

    Unset thresholds keep the checks' own defaults (evals.embeddings.EmbeddingsGate).
    """

    min_triplet_rate: float | None = Field(default=None, ge=0, le=1)
    normalization_tolerance: float | None = Field(default=None, ge=0)
    batch_cosine_min: float | None = Field(default=None, ge=-1, le=1)
    max_batch_size: int | None = Field(default=None, ge=1)  # else TEI's serve_args, else 32
    request_timeout_s: float = Field(default=60.0, gt=0)  # an embedding answers in seconds
    budget_usd: float = Field(gt=0)  # the tiny key's budget for the binding check
    budget_max_requests: int = Field(default=200, ge=1)
    budget_allowed_over: int = Field(default=1, ge=0)


class UsageGate(GateConfig):
    """`gates.usage` (claude-haiku): usage and cost normalization of an external provider."""

    cache_prefix_words: int = Field(default=4000, ge=1)  # real providers cache only long prefixes
    short_max_tokens: int = Field(default=32, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    cache_token_tolerance: int = Field(default=0, ge=0)
    cost_rel_tolerance: float = Field(default=1e-6, ge=0)
    spend_timeout_s: float = Field(default=30.0, gt=0)


class LatencyGate(GateConfig):
    """`gates.latency` (qwen-local): streamed p95s against the SLO, bounded error rate."""

    max_error_rate: Rate
    requests: int = Field(default=40, ge=1)  # fewer on the command line is a smoke run
    concurrency: int = Field(default=4, ge=1)
    warmup: int = Field(default=2, ge=0)
    prompt_set: str = "fixtures/latency_prompts.json"
    cpu_headroom: float = Field(default=1.5, ge=1)  # = slo_derivation.DEFAULT_HEADROOM (a test checks)

    @property
    def timeout_s(self) -> float:
        """One streamed request's bound (the benchmark's name for request_timeout_s)."""
        return self.request_timeout_s

    @property
    def prompts_path(self) -> Path:
        return REPO_ROOT / self.prompt_set


class Gates(BaseModel):
    """An alias's `gates:` block: at most one settings block per gate kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    humaneval: HumanEvalGate | None = None
    fim: FimGate | None = None
    tool_loop: ToolLoopGate | None = None
    bfcl: BfclGate | None = None
    embeddings: EmbeddingsGateConfig | None = None
    usage: UsageGate | None = None
    latency: LatencyGate | None = None

    def names(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


GATE_MODELS: dict[str, type[GateConfig]] = {
    "humaneval": HumanEvalGate,
    "fim": FimGate,
    "tool_loop": ToolLoopGate,
    "bfcl": BfclGate,
    "embeddings": EmbeddingsGateConfig,
    "usage": UsageGate,
    "latency": LatencyGate,
}


class GateConfigError(ValueError):
    """A gate block that does not validate; the message names the alias, gate and field."""


def validate_gate(alias: str, name: str, raw: object) -> GateConfig:
    """Validate one raw block (a catalog built in code, not loaded from a file)."""
    model = GATE_MODELS.get(name)
    if model is None:
        raise GateConfigError(f"catalog alias {alias!r}: unknown gate kind {name!r} "
                              f"(known: {', '.join(GATE_MODELS)})")
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GateConfigError(f"catalog alias {alias!r}, gates.{name}: {problems}") from None
