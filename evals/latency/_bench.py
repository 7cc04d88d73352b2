"""Latency benchmark, gate and SLO derivation for a streamed chat endpoint.

- `run_benchmark` / `run_sweep` / `run_profile`: streamed requests (capped at `max_tokens`, with
  `stream_options.include_usage`) over a fixed prompt set, after a warm-up; TTFT, inter-token gaps,
  end-to-end latency and output tokens per request; p50/p90/p95/p99 per metric.
- `judge_latency`: every p95 against its SLO target; too many errors is ERROR, not FAIL.
- `derive_slo`: proposed targets from a run's p95s times a headroom.
The raw-versus-KServe comparison lives in `evals.latency.compare`.
"""

from __future__ import annotations

import math
from typing import Any

from evals.latency._models import (
    PERCENTILE_METHOD,
    LatencyComparison,
    LatencyPrompt,
    LatencyResult,
    LatencySummary,
    LatencySweep,
    LatencyVerdict,
    MetricCheck,
    Percentiles,
    Profile,
    PromptSet,
    PromptSetError,
    ProposedSLO,
    RequestRow,
    SLOTargets,
    load_prompt_set,
)
from evals.latency._run import (
    Endpoint,
    Job,
    StreamSettings,
    new_run_id,
    run_jobs,
    utc_now,
    warm_up,
)
from evals.latency._stats import percentile_values, percentiles, summarize

__all__ = [
    "PERCENTILE_METHOD", "Endpoint", "LatencyComparison", "LatencyPrompt", "LatencyResult",
    "LatencySummary", "LatencySweep", "LatencyVerdict", "MetricCheck", "Percentiles", "Profile",
    "PromptSet", "PromptSetError", "ProposedSLO", "RequestRow", "SLOTargets", "StreamSettings",
    "derive_slo", "judge_latency", "load_prompt_set", "new_run_id", "percentile_values",
    "percentiles", "run_benchmark", "run_profile", "run_sweep",
]

_METRICS = ("ttft", "itl", "e2e")


def _settings(max_tokens: int, timeout_s: float, temperature: float, extra_body: dict | None) -> StreamSettings:
    return StreamSettings(max_tokens=max_tokens, timeout_s=timeout_s, temperature=temperature,
                          extra_body=extra_body)


def _measure_level(
    endpoint: Endpoint, prompts: PromptSet, *, run_id: str, kind: str, concurrency: int,
    requests: int, warmup: int, settings: StreamSettings, progress: bool,
) -> LatencyResult:
    items = prompts.prompts
    jobs = [Job(index=i, endpoint=endpoint, prompt=items[i % len(items)]) for i in range(requests)]
    started_at = utc_now()
    rows, wall = run_jobs(jobs, run_id=run_id, concurrency=concurrency, settings=settings,
                          progress=progress, description=f"latency {endpoint.label}")
    return summarize(
        rows, run_id=run_id, endpoint=endpoint.label, model=endpoint.model, prompt_set=prompts.name,
        profile=kind, concurrency=concurrency, max_tokens=settings.max_tokens, warmup=warmup,
        started_at=started_at, duration_s=wall,
    )


def run_benchmark(
    client: Any,
    model: str,
    prompts: PromptSet,
    *,
    max_tokens: int,
    concurrency: int = 1,
    requests: int | None = None,
    warmup: int = 2,
    label: str = "endpoint",
    progress: bool = True,
    timeout_s: float = 60.0,
    temperature: float = 0.0,
    extra_body: dict | None = None,
    run_id: str | None = None,
) -> LatencyResult:
    """One benchmark at one concurrency (1 = sequential). `requests` defaults to the prompt count."""
    if requests is not None and requests < 1:
        raise ValueError(f"run_benchmark: requests must be >= 1, got {requests}")
    profile = Profile.sequential() if concurrency == 1 else Profile.fixed(concurrency)
    endpoint = Endpoint(label=label, client=client, model=model)
    settings = _settings(max_tokens, timeout_s, temperature, extra_body)
    warm_up([endpoint], prompts.prompts, warmup, settings)
    return _measure_level(
        endpoint, prompts, run_id=run_id or new_run_id(), kind=profile.kind,
        concurrency=concurrency, requests=requests or len(prompts.prompts), warmup=warmup,
        settings=settings, progress=progress,
    )


def run_sweep(
    client: Any,
    model: str,
    prompts: PromptSet,
    *,
    max_tokens: int,
    levels: list[int],
    requests: int | None = None,
    warmup: int = 2,
    label: str = "endpoint",
    progress: bool = True,
    timeout_s: float = 60.0,
    temperature: float = 0.0,
    extra_body: dict | None = None,
    run_id: str | None = None,
) -> LatencySweep:
    """The same benchmark at each concurrency level in turn; one warm-up before the first level."""
    profile = Profile.sweep(levels)
    if requests is not None and requests < 1:
        raise ValueError(f"run_sweep: requests must be >= 1, got {requests}")
    endpoint = Endpoint(label=label, client=client, model=model)
    settings = _settings(max_tokens, timeout_s, temperature, extra_body)
    sweep_id = run_id or new_run_id()
    warm_up([endpoint], prompts.prompts, warmup, settings)
    results = [
        _measure_level(
            endpoint, prompts, run_id=f"{sweep_id}-c{level}", kind="sweep", concurrency=level,
            requests=requests or len(prompts.prompts), warmup=warmup, settings=settings,
            progress=progress,
        )
        for level in profile.levels
    ]
    return LatencySweep(run_id=sweep_id, levels=results)


def run_profile(client: Any, model: str, prompts: PromptSet, profile: Profile, **options: Any) -> LatencySweep:
    """Run any profile; a sequential or fixed profile gives a sweep of one level."""
    if profile.kind == "sweep":
        return run_sweep(client, model, prompts, levels=profile.levels, **options)
    result = run_benchmark(client, model, prompts, concurrency=profile.concurrency, **options)
    return LatencySweep(run_id=result.summary.run_id, levels=[result])


def judge_latency(summary: LatencySummary, targets: Any, max_error_rate: float) -> LatencyVerdict:
    """Each p95 against its target (pass when strictly below, as the catalog's "p95 < X" reads).

    `targets` is an `SLOTargets`, a mapping, or any object with `ttft_p95_ms`, `itl_p95_ms` and
    `e2e_p95_ms` (a catalog SLO). An error rate above `max_error_rate`, or no successful request,
    is "error": the platform did not answer, so latency was not measured. So is a metric without
    samples.
    """
    if not 0 <= max_error_rate <= 1:
        raise ValueError(f"judge_latency: max_error_rate must be within [0, 1], got {max_error_rate}")
    goal = targets if isinstance(targets, SLOTargets) else SLOTargets.model_validate(targets)
    checks = []
    for metric in _METRICS:
        measured: Percentiles | None = getattr(summary, f"{metric}_ms")
        target = getattr(goal, f"{metric}_p95_ms")
        p95 = measured.p95 if measured is not None else None
        checks.append(MetricCheck(metric=metric, p95_ms=p95, target_ms=target,
                                  passed=p95 is not None and p95 < target))
    listed = "; ".join(_describe(c) for c in checks)
    rate = f"error rate {summary.error_rate:.1%} ({summary.errors}/{summary.requests}), bound {max_error_rate:.1%}"
    unmeasured = [c.metric.upper() for c in checks if c.p95_ms is None]
    if summary.error_rate > max_error_rate:
        first = f"; first error: {summary.error_examples[0]}" if summary.error_examples else ""
        verdict, reason = "error", f"ERROR: {rate} exceeds the bound{first}. Measured: {listed}"
    elif unmeasured:
        # e.g. replies of one content chunk have no inter-token gap: nothing to judge.
        verdict = "error"
        reason = f"ERROR: no samples for {', '.join(unmeasured)}. Measured: {listed}; {rate}"
    elif all(c.passed for c in checks):
        verdict, reason = "pass", f"PASS: {listed}; {rate}"
    else:
        missed = ", ".join(c.metric.upper() for c in checks if not c.passed)
        verdict, reason = "fail", f"FAIL ({missed} over target): {listed}; {rate}"
    return LatencyVerdict(run_id=summary.run_id, verdict=verdict, reason=reason, checks=checks,
                          error_rate=summary.error_rate, max_error_rate=max_error_rate)


def _describe(check: MetricCheck) -> str:
    name = check.metric.upper()
    if check.p95_ms is None:
        return f"{name} p95 n/a (target {check.target_ms:g} ms)"
    relation = "<" if check.passed else ">="
    return f"{name} p95 {check.p95_ms:g} ms {relation} target {check.target_ms:g} ms"


def round_up_2sig(value: float) -> float:
    """Round up to 2 significant digits: 61.95 -> 62, 1564.5 -> 1600, 0.4512 -> 0.46."""
    if value <= 0:
        raise ValueError(f"cannot round a non-positive target {value}")
    step = 10 ** (math.floor(math.log10(value)) - 1)
    # The small tolerance keeps float noise (62.000000001) from rounding a step up.
    return float(f"{math.ceil(value / step - 1e-9) * step:.12g}")


def derive_slo(summary: LatencySummary, headroom: float = 1.5, *, max_error_rate: float = 0.05) -> ProposedSLO:
    """Proposed targets: each measured p95 times `headroom`, rounded up to 2 significant digits."""
    if headroom < 1:
        raise ValueError(f"derive_slo: headroom must be >= 1 (a target below the measured p95 fails at once), got {headroom}")
    if summary.error_rate > max_error_rate:
        raise ValueError(
            f"derive_slo: run {summary.run_id} has error rate {summary.error_rate:.1%} "
            f"> {max_error_rate:.1%}; its latencies are not a baseline"
        )
    measured: dict[str, float] = {}
    for metric in _METRICS:
        stats: Percentiles | None = getattr(summary, f"{metric}_ms")
        if stats is None:
            raise ValueError(f"derive_slo: run {summary.run_id} has no {metric.upper()} measurements")
        measured[metric] = stats.p95
    proposed = {f"{m}_p95_ms": round_up_2sig(max(p95, 1e-3) * headroom) for m, p95 in measured.items()}
    return ProposedSLO(run_id=summary.run_id, headroom=headroom, max_output_tokens=summary.max_tokens,
                       measured_p95_ms=measured, **proposed)
