"""The qwen-local latency gate end to end: controls prove the gate, real vLLM proves the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.catalog import load_catalog
from deploy.slo_store import cpu_profile_path, load_cpu_profile
from tests.gate_runs import run_gates

CATALOG_TARGETS = "vs catalog SLO (GuideLLM baseline, 1x L4)"




def test_known_good_control_passes_every_metric(tmp_path: Path) -> None:
    run = run_gates("-m", "qwen-local", "--control", "known-good", outputs=tmp_path)
    record = run.record("latency")
    assert run.returncode == 0 and record.verdict == "pass", record.reason
    # The verdict names every metric with its p95 and its target, and whose targets they were.
    for name, target in (("TTFT", 250), ("ITL", 20), ("E2E", 1500)):
        assert f"{name} " in record.summary and f"/{target} ms" in record.summary
        assert f"{name} p95" in record.reason and f"target {target} ms" in record.reason
    assert record.summary.endswith(CATALOG_TARGETS)
    assert (record.counts.passed, record.counts.errors, record.counts.total) == (40, 0, 40)
    assert record.extra["targets"]["profile"] == "catalog" and 0 < record.value < 1
    # Per-request rows beside the ledger; the summary in the record.
    rows = [json.loads(line) for line in (tmp_path / record.details_file).read_text().splitlines()]
    assert len(rows) == 40 and all(row["output_tokens"] == 32 and row["error"] is None for row in rows)
    assert record.extra["latency_summary"]["ttft_ms"]["count"] == 40
    assert run.status("qwen-local").startswith(record.summary[:-1] + ", promotion subset) [embedded stand-in: reference backend")


def test_known_bad_control_fails_on_ttft_and_itl(tmp_path: Path) -> None:
    run = run_gates("-m", "qwen-local", "--control", "known-bad", outputs=tmp_path)
    assert run.returncode == 1
    record = run.record("latency")
    assert record.verdict == "fail" and record.counts.errors == 0
    checks = {c["metric"]: c for c in record.extra["checks"]}
    assert not checks["ttft"]["passed"] and checks["ttft"]["p95_ms"] >= 300
    assert not checks["itl"]["passed"] and checks["itl"]["p95_ms"] >= 25
    assert record.reason.startswith("FAIL (TTFT, ITL") or record.reason.startswith("FAIL (TTFT, ITL, E2E")
    assert run.status("qwen-local").startswith("FAIL: Latency p95/target TTFT")


def test_erroring_backend_is_error_not_fail(tmp_path: Path) -> None:
    run = run_gates("-m", "qwen-local", "--control", "erroring", outputs=tmp_path)
    assert run.returncode != 0
    record = run.record("latency")
    assert record.verdict == "error"
    assert record.counts.errors >= 15 and record.counts.total == 40
    assert "500" in record.reason and "exceeds the bound" in record.reason
    status = run.status("qwen-local")
    assert status.startswith("ERROR ") and ": Latency not measured: error rate" in status and "> 5% bound" in status


def test_cpu_profile_is_derived_on_the_first_run_and_gated_after(tmp_path: Path) -> None:
    """The CPU-profile path on a reference backend: the first run derives and writes the profile
    (never the catalog), the next one is gated against the stored targets."""
    args = ("-m", "qwen-local", "--control", "known-good", "--slo-profile", "cpu",
            "--latency-requests", "8")
    first = run_gates(*args, outputs=tmp_path)
    record = first.record("latency")
    derived = record.extra["cpu_slo_derivation"]
    assert derived and derived["headroom"] == 1.5
    profile_file = cpu_profile_path(tmp_path / "build")
    slo = load_cpu_profile(profile_file).aliases["qwen-local"]
    assert slo.state == "derived" and slo.derived_from_run == derived["run_id"]
    assert slo.ttft_p95_ms == derived["ttft_p95_ms"] and slo.max_output_tokens == 128
    assert "CPU SLO (derived this run, p95 x 1.5)" in record.summary
    assert record.extra["scope"] == "smoke (8 requests)"
    # The committed catalog's SLO is untouched, and a control writes no catalog copy at all.
    assert load_catalog().get("qwen-local").slo.state == "measured"
    assert record.kind == "control" and not (tmp_path / "catalog.yaml").exists()

    second = run_gates(*args, outputs=tmp_path)
    again = second.record("latency")
    assert again.record_id != record.record_id and again.extra["cpu_slo_derivation"] is None
    assert f"CPU SLO (derived run {derived['run_id']}, p95 x 1.5)" in again.summary
    assert again.extra["targets"]["slo"]["ttft_p95_ms"] == slo.ttft_p95_ms
    assert again.verdict in ("pass", "fail")


def test_a_cpu_slo_is_not_derived_from_a_failing_platform(tmp_path: Path) -> None:
    run = run_gates("-m", "qwen-local", "--control", "erroring", "--slo-profile", "cpu",
                    "--latency-requests", "8", outputs=tmp_path)
    assert run.returncode != 0
    record = run.record("latency")
    assert record.verdict == "error" and record.summary == "Latency not gated: no cpu SLO"
    assert "error rate" in record.reason and "not a baseline" in record.reason
    assert not cpu_profile_path(tmp_path / "build").exists()


@pytest.mark.engine
def test_real_vllm_is_gated_against_its_cpu_slo(shared_platform, tmp_path: Path) -> None:
    """qwen-local served by vLLM on the CPU, through the gateway double: its CPU SLO is derived
    on the first run (the route says it serves a stand-in, so the CPU profile is chosen), then
    the benchmark is gated against it. 4 requests at concurrency 4: the CPU is slow and shared."""
    shared_platform.deploy("qwen-local")
    run = run_gates(
        "-m", "qwen-local", "--gateway-url", shared_platform.gateway_url, "--no-deploy",
        "--latency-requests", "4", outputs=tmp_path, env=shared_platform.gate_env(),
    )
    record = run.record("latency")
    assert record.counts.errors == 0, record.reason  # the platform answered every request
    assert record.verdict in ("pass", "fail"), record.reason  # judged, whatever the CPU's speed
    assert record.target.served_model_name == "smollm2-135m-instruct"  # what really answered
    assert "CPU SLO (derived this run" in record.summary
    slo = load_cpu_profile(cpu_profile_path(tmp_path / "build")).aliases["qwen-local"]
    assert slo.state == "derived" and slo.derived_from_run == record.extra["cpu_slo_derivation"]["run_id"]
    assert "vLLM on the CPU" in (slo.source or "")
    summary = record.extra["latency_summary"]
    assert summary["ok"] == 4 and summary["output_tokens_total"] > 4
    assert record.extra["targets"]["profile"] == "cpu"
    assert summary["ttft_ms"]["p95"] > 0 and summary["itl_ms"]["count"] > 0
