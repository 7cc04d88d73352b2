"""Schemas of the latency benchmark: prompts, profile, per-request rows, summaries, verdicts.

Every result is a pydantic model whose `model_dump(mode="json")` a ledger can store as it is.
Times are milliseconds, measured with `time.perf_counter()` on the client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PERCENTILE_METHOD = (
    "linear interpolation between closest ranks (numpy.percentile method='linear', "
    "statistics.quantiles method='inclusive'); ITL pools every gap of every request"
)


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencyPrompt(_Schema):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)


class PromptSet(_Schema):
    name: str = Field(min_length=1)
    prompts: list[LatencyPrompt] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> PromptSet:
        ids = [p.id for p in self.prompts]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"prompt ids appear twice: {', '.join(dupes)}")
        return self


class PromptSetError(ValueError):
    """A prompt file that cannot be used; the message names the file and the field."""


def load_prompt_set(path: str | Path) -> PromptSet:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptSetError(f"{path}: cannot read prompt set: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise PromptSetError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    try:
        return PromptSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(top)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise PromptSetError(f"{path}: {problems}") from exc


class Profile(_Schema):
    """How requests are issued: one at a time, at a fixed concurrency, or a sweep of levels."""

    kind: Literal["sequential", "concurrent", "sweep"] = "sequential"
    concurrency: int = Field(default=1, ge=1)
    levels: list[int] = []

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.kind == "sequential" and self.concurrency != 1:
            raise ValueError("a sequential profile has concurrency 1")
        if self.kind == "sweep":
            if not self.levels or any(level < 1 for level in self.levels):
                raise ValueError("a sweep profile needs 'levels', each >= 1")
        elif self.levels:
            raise ValueError(f"'levels' belongs to a sweep profile, not {self.kind!r}")
        return self

    @classmethod
    def sequential(cls) -> Profile:
        return cls(kind="sequential")

    @classmethod
    def fixed(cls, concurrency: int) -> Profile:
        return cls(kind="concurrent", concurrency=concurrency)

    @classmethod
    def sweep(cls, levels: list[int]) -> Profile:
        return cls(kind="sweep", levels=list(levels))

    def concurrency_levels(self) -> list[int]:
        return list(self.levels) if self.kind == "sweep" else [self.concurrency]


class RequestRow(_Schema):
    """One measured request. `error` set means the platform did not deliver a complete stream."""

    run_id: str
    index: int  # dispatch order within the run (0-based), warm-up excluded
    endpoint: str
    concurrency: int
    prompt_id: str
    start_ms: float  # offset of the request's start from the run's start
    ttft_ms: float | None = None  # first chunk carrying non-empty content
    itl_ms: list[float] = []  # gaps between consecutive content chunks
    e2e_ms: float | None = None
    output_tokens: int | None = None  # usage.completion_tokens of the usage chunk
    prompt_tokens: int | None = None
    content_chunks: int = 0
    finish_reason: str | None = None
    error: str | None = None  # "<ExceptionType> [status]: message", secrets redacted

    @property
    def ok(self) -> bool:
        return self.error is None


class Percentiles(_Schema):
    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


class LatencySummary(_Schema):
    run_id: str
    endpoint: str
    model: str
    prompt_set: str
    profile: Literal["sequential", "concurrent", "sweep"]
    concurrency: int
    max_tokens: int
    warmup: int
    started_at: str  # ISO 8601, UTC
    duration_s: float
    requests: int
    ok: int
    errors: int
    error_rate: float
    error_examples: list[str] = []  # the first few distinct errors
    ttft_ms: Percentiles | None
    itl_ms: Percentiles | None
    e2e_ms: Percentiles | None
    output_tokens_total: int
    requests_without_usage: int  # successful streams that sent no usage chunk
    output_tokens_per_s: float
    requests_per_s: float
    percentile_method: str = PERCENTILE_METHOD


class LatencyResult(_Schema):
    """One benchmark at one concurrency: the summary plus its per-request rows."""

    summary: LatencySummary
    rows: list[RequestRow]


class LatencySweep(_Schema):
    run_id: str
    levels: list[LatencyResult]  # one per concurrency level, in the profile's order


class SLOTargets(_Schema):
    """p95 targets in ms. Validates from any object with these attributes (e.g. a catalog SLO)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    ttft_p95_ms: float = Field(gt=0)
    itl_p95_ms: float = Field(gt=0)
    e2e_p95_ms: float = Field(gt=0)


class MetricCheck(_Schema):
    metric: Literal["ttft", "itl", "e2e"]
    p95_ms: float | None
    target_ms: float
    passed: bool


class LatencyVerdict(_Schema):
    run_id: str
    verdict: Literal["pass", "fail", "error"]
    reason: str
    checks: list[MetricCheck]
    error_rate: float
    max_error_rate: float


class ProposedSLO(_Schema):
    """Targets derived from a run: each p95 times the headroom, rounded up to 2 significant digits."""

    run_id: str
    headroom: float
    ttft_p95_ms: float
    itl_p95_ms: float
    e2e_p95_ms: float
    max_output_tokens: int
    measured_p95_ms: dict[str, float]
    rounding: str = "p95 x headroom, rounded up to 2 significant digits"


class ComparisonRow(_Schema):
    metric: Literal["ttft", "itl", "e2e"]
    percentile: Literal["p50", "p90", "p95", "p99"]
    a_ms: float | None
    b_ms: float | None
    ratio_b_over_a: float | None


class LatencyComparison(_Schema):
    run_id: str
    a: LatencyResult
    b: LatencyResult
    rows: list[ComparisonRow]
    order: list[str]  # endpoint label of each dispatched request, in dispatch order
