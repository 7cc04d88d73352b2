"""qwen-local gate: streamed chat through the gateway with a throwaway key; each p95 against its SLO.

FAIL: a p95 at or over its target. ERROR: more errors than `gates.latency.max_error_rate` allows
(the platform did not answer, so latency was not measured). The summary and every request's row
go to the ledger.
"""

from __future__ import annotations

from pathlib import Path

from deploy.ledger import Counts, now
from evals.latency import judge_latency, load_prompt_set, run_benchmark
from gates.qwen_local.plugin import ALIAS, GATE
from gates.qwen_local.report import status_summary
from gates.qwen_local.targets import catalog_targets, chosen_profile, cpu_targets
from gates.verdicts import alias_mark, enforce

pytestmark = alias_mark(ALIAS)


def test_latency_p95_within_slo(qwen_local, request) -> None:
    config = request.config
    started = now()
    gate = qwen_local.entry.gate(GATE)
    requests = config.getoption("--latency-requests") or gate.requests
    scope = "catalog count" if requests == gate.requests else f"smoke ({requests} requests)"
    profile = chosen_profile(config, qwen_local)
    try:
        if profile == "cpu":
            targets = cpu_targets(qwen_local, Path(config.getoption("--build-dir")), gate, requests)
        else:
            targets = catalog_targets(qwen_local.entry)
    except ValueError as exc:  # no targets (SLO "to be derived", or a derivation run that erred)
        record = qwen_local.record(
            gate=GATE, verdict="error", metric="max p95/target", value=None, threshold=1.0,
            summary=f"Latency not gated: no {profile} SLO", reason=str(exc), started_at=started,
            extra={"scope": scope, "targets": {"profile": profile}},
        )
        enforce(record)  # raises: an error is never a pass
        return

    result = run_benchmark(
        qwen_local.client(), ALIAS, load_prompt_set(gate.prompts_path),
        max_tokens=targets.slo.max_output_tokens, concurrency=gate.concurrency, requests=requests,
        warmup=gate.warmup, label=ALIAS, timeout_s=gate.timeout_s,
    )
    summary = result.summary
    verdict = judge_latency(summary, targets.slo, gate.max_error_rate)
    ratios = [c.p95_ms / c.target_ms for c in verdict.checks if c.p95_ms is not None]
    record = qwen_local.record(
        gate=GATE,
        verdict=verdict.verdict,
        metric="max p95/target",
        value=round(max(ratios), 4) if ratios else None,
        threshold=1.0,
        summary=status_summary(verdict, summary, targets.label),
        reason=verdict.reason,
        counts=Counts(passed=summary.ok, errors=summary.errors, total=summary.requests),
        details=result.rows,
        started_at=started,
        extra={
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
    enforce(record)
