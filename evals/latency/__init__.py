"""Latency: streamed benchmark, SLO gate and SLO derivation for a chat endpoint.

The rest of the code imports from here; `python -m evals.latency.compare` is the raw-versus-KServe
comparison command. The `_x` modules are this package's own.
"""

from evals.latency._bench import (
    PERCENTILE_METHOD,
    Endpoint,
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
    StreamSettings,
    derive_slo,
    judge_latency,
    load_prompt_set,
    new_run_id,
    percentile_values,
    percentiles,
    round_up_2sig,
    run_benchmark,
    run_profile,
    run_sweep,
)
from evals.latency._stats import p95_intervals, summarize

__all__ = [
    "p95_intervals", "summarize",
    "PERCENTILE_METHOD", "Endpoint", "LatencyComparison", "LatencyPrompt", "LatencyResult",
    "LatencySummary", "LatencySweep", "LatencyVerdict", "MetricCheck", "Percentiles", "Profile",
    "PromptSet", "PromptSetError", "ProposedSLO", "RequestRow", "SLOTargets", "StreamSettings",
    "derive_slo", "judge_latency", "load_prompt_set", "new_run_id", "percentile_values",
    "percentiles", "round_up_2sig", "run_benchmark", "run_profile", "run_sweep",
]
