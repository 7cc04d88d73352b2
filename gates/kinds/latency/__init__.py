"""latency: streamed chat through the gateway with a throwaway key; each p95 against its SLO.

FAIL: a p95 at or over its target. ERROR: more errors than `gates.latency.max_error_rate` allows
(the platform did not answer, so latency was not measured). The summary and every request's row
go to the ledger.
"""

from __future__ import annotations

from deploy.gate_configs import LatencyGate
from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts
from evals.intervals import wilson
from evals.latency import judge_latency, load_prompt_set, p95_intervals, run_benchmark
from gates.kinds.latency.report import request_samples, status_summary
from gates.kinds.latency.targets import catalog_targets, chosen_profile, cpu_targets
from gates.kinds.registry import GateContext, GateVerdict, Option, gate_kind
from gates.options import positive_int

PROFILE = Option("--slo-profile", dict(
    choices=["auto", "catalog", "cpu"], default="auto",
    help="latency gates: gate against the catalog's SLOs (for the GPU they were measured on) or "
    "the embedded platform's CPU profile (<build-dir>/embedded/slo-cpu.yaml, derived on its "
    "first run). auto: cpu for the embedded platform's stand-in engine, else catalog",
))
REQUESTS = Option("--latency-requests", dict(
    type=positive_int, default=None,
    help="latency gates: measure N requests instead of the catalog's count (a smoke run, not a "
    "verdict to promote on)",
))


@gate_kind("latency", config=LatencyGate, options=[PROFILE, REQUESTS], samples=request_samples)
def measure(ctx: GateContext, config: LatencyGate) -> GateVerdict:
    """Every p95 (TTFT, ITL, E2E) under its SLO target."""
    context = ctx.alias
    requests = ctx.option(REQUESTS.flag) or config.requests
    scope = "catalog count" if requests == config.requests else f"smoke ({requests} requests)"
    profile = chosen_profile(ctx.config, context)
    try:
        if profile == "cpu":
            targets = cpu_targets(context, ctx.build_dir, config, requests)
        else:
            targets = catalog_targets(context.entry)
    except ValueError as exc:  # no targets (SLO "to be derived", or a derivation run that erred)
        return GateVerdict(
            verdict="error", metric="max p95/target", value=None, threshold=1.0,
            summary=f"Latency not gated: no {profile} SLO", reason=str(exc),
            extra={"seed": None, "scope": scope, "targets": {"profile": profile}},
        )

    result = run_benchmark(
        context.client(), ctx.name, load_prompt_set(config.prompts_path),
        max_tokens=targets.slo.max_output_tokens, concurrency=config.concurrency,
        requests=requests, warmup=config.warmup, label=ctx.name, timeout_s=config.timeout_s,
    )
    summary = result.summary
    verdict = judge_latency(summary, targets.slo, config.max_error_rate)
    intervals = p95_intervals(result.rows)
    judged = [JudgedRate.of(intervals[c.metric], c.target_ms, "max")
              for c in verdict.checks if c.metric in intervals]
    reason = verdict.reason
    if summary.requests:
        errors = wilson(summary.errors, summary.requests, "error rate")
        judged.append(JudgedRate.of(errors, config.max_error_rate, "max"))
        reason += f"; error rate {errors.figure()}"
    ratios = [c.p95_ms / c.target_ms for c in verdict.checks if c.p95_ms is not None]
    return GateVerdict(
        verdict=verdict.verdict, metric="max p95/target",
        value=round(max(ratios), 4) if ratios else None, threshold=1.0,
        summary=status_summary(verdict, summary, targets.label, intervals),
        reason=reason,
        counts=Counts(passed=summary.ok, errors=summary.errors, total=summary.requests),
        details=result.rows, judged=judged,
        extra={
            "seed": None,  # these requests send no seed (README: Reproducibility)
            "scope": scope,
            "latency_run_id": summary.run_id,
            "targets": {"profile": targets.profile, "label": targets.label,
                        "profile_path": targets.profile_path,
                        "slo": targets.slo.model_dump(mode="json", exclude_none=True)},
            "checks": [c.model_dump(mode="json") for c in verdict.checks],
            "latency_summary": summary.model_dump(mode="json"),
            "cpu_slo_derivation": (targets.derivation.proposed.model_dump(mode="json")
                                   if targets.derivation else None),
        },
    )
