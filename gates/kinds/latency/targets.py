"""Which latency targets the qwen-local gate judges against: the catalog's, or the CPU profile's.

The catalog's SLOs were measured on an L4 GPU; on the embedded platform qwen-local is vLLM on
this machine's CPU, where they mean nothing. There the gate uses the CPU profile
(`<build-dir>/embedded/slo-cpu.yaml`), deriving the alias's entry on the first run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from deploy.catalog import SLO, AliasEntry
from deploy.gate_configs import LatencyGate
from deploy.slo_store import (
    cpu_profile_path,
    hardware_label,
    load_cpu_profile,
    write_cpu_profile_slo,
)
from gates.session import AliasContext
from gates.slo_derivation import BenchmarkPlan, Derivation, derive_alias_slo

Profile = Literal["catalog", "cpu"]


class GateTargets(BaseModel):
    profile: Profile
    slo: SLO
    label: str  # names the targets in the status, e.g. "catalog SLO (GuideLLM baseline, 1x L4)"
    profile_path: str | None = None
    derivation: Derivation | None = None  # set when this run derived the CPU SLO


def chosen_profile(config: pytest.Config, context: AliasContext) -> Profile:
    """auto: the CPU profile for the embedded platform's stand-in engine (deployed by this run, or
    routed by a gateway that says it serves a stand-in), the catalog for anything else."""
    option = config.getoption("--slo-profile")
    if option != "auto":
        return option
    # Controls are reference backends, not CPU vLLM: they prove the gate on the catalog's SLOs.
    return "cpu" if context.deployment.stand_in and not config.getoption("--control") else "catalog"


def catalog_targets(entry: AliasEntry) -> GateTargets:
    slo = entry.slo
    if slo.state not in ("measured", "derived"):
        raise ValueError(f"{entry.alias}: the catalog's SLO is {slo.state!r}; derive it first "
                         f"(python -m gates.slo_derivation --alias {entry.alias} ...)")
    what = slo.source or (f"derived, run {slo.derived_from_run}" if slo.state == "derived" else slo.state)
    return GateTargets(profile="catalog", slo=slo, label=f"catalog SLO ({what})")


def cpu_targets(
    context: AliasContext, build_dir: Path, gate: LatencyGate, requests: int, *, progress: bool = True
) -> GateTargets:
    """The alias's CPU SLO from the profile; derived (and written) first if it has none yet."""
    entry = context.entry
    path = cpu_profile_path(build_dir)
    slo = load_cpu_profile(path).aliases.get(entry.alias)
    derivation = None
    if slo is None:
        plan = BenchmarkPlan(requests=requests, concurrency=gate.concurrency, warmup=gate.warmup,
                             headroom=gate.cpu_headroom, timeout_s=gate.timeout_s,
                             max_tokens=entry.slo.max_output_tokens, max_error_rate=gate.max_error_rate)
        hardware = hardware_label()
        derivation = derive_alias_slo(
            context.client(), entry, plan, prompts_path=gate.prompts_path, progress=progress,
            source=f"embedded platform, vLLM on the CPU ({hardware}), {context.deployment.model}",
        )
        write_cpu_profile_slo(path, entry.alias, derivation.slo, hardware=hardware)
        slo = derivation.slo
    when = "this run" if derivation else f"run {slo.derived_from_run}"
    label = f"CPU SLO (derived {when}, p95 x {slo.headroom:g})"
    return GateTargets(profile="cpu", slo=slo, label=label, profile_path=str(path), derivation=derivation)
