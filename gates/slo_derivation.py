"""Deriving latency SLOs: benchmark an alias where it runs, propose p95 x headroom, write it down.

    python -m gates.slo_derivation --alias coder-chat --gateway-url https://llm.example/ [--write]
    python -m gates.slo_derivation --alias qwen-local --embedded [--write]

Against a gateway (master key from LITELLM_MASTER_KEY) the proposal is for the catalog, and
`--write` sets it only for an alias whose SLO is still "to be derived". On the embedded platform
(vLLM on this machine's CPU) the proposal is a CPU target and `--write` puts it in the CPU
profile under the build folder, never in the committed catalog. Without `--write` nothing is
written. Written SLOs say `state: derived`, the run id and the headroom.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from deploy.catalog import DEFAULT_CATALOG, SLO, AliasEntry, CatalogError, load_catalog
from deploy.litellm_admin import (
    GatewayError,
    GatewayUnavailable,
    LiteLLMAdmin,
    redact_url,
    throwaway_key,
)
from deploy.slo_store import (
    SLOStoreError,
    cpu_profile_path,
    hardware_label,
    write_catalog_slo,
    write_cpu_profile_slo,
)
from evals.latency import (
    LatencyResult,
    ProposedSLO,
    derive_slo,
    load_prompt_set,
    new_run_id,
    run_benchmark,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPTS = REPO_ROOT / "fixtures" / "latency_prompts.json"
DEFAULT_HEADROOM = 1.5
DEFAULT_MAX_TOKENS = 128  # when the catalog names no output cap for the alias
DEFAULT_REQUESTS = 40
DEFAULT_CONCURRENCY = 4


class Derivation(BaseModel):
    """One derivation: the benchmark it rests on and the SLO it proposes."""

    alias: str
    result: LatencyResult
    proposed: ProposedSLO
    slo: SLO  # the proposal in the catalog's form (state "derived")


class BenchmarkPlan(BaseModel):
    requests: int = Field(default=DEFAULT_REQUESTS, ge=1)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1)
    warmup: int = Field(default=2, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)  # default: slo.max_output_tokens, else 128
    headroom: float = Field(default=DEFAULT_HEADROOM, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)  # above it a run is no baseline


def derive_alias_slo(
    client: openai.OpenAI,
    entry: AliasEntry,
    plan: BenchmarkPlan,
    *,
    source: str,
    model: str | None = None,
    prompts_path: Path = DEFAULT_PROMPTS,
    progress: bool = True,
) -> Derivation:
    """Benchmark `entry` through `client` (streamed chat) and propose its SLO.

    Raises ValueError when the alias is not a chat model or the run erred too often to be a
    baseline (`derive_slo` refuses it).
    """
    if entry.mode != "chat":
        raise ValueError(f"{entry.alias}: latency SLOs are derived from streamed chat; the alias is mode {entry.mode!r}")
    max_tokens = plan.max_tokens or entry.slo.max_output_tokens or DEFAULT_MAX_TOKENS
    result = run_benchmark(
        client, model or entry.alias, load_prompt_set(prompts_path), max_tokens=max_tokens,
        concurrency=plan.concurrency, requests=plan.requests, warmup=plan.warmup,
        label=entry.alias, progress=progress, timeout_s=plan.timeout_s, run_id=new_run_id(),
    )
    proposed = derive_slo(result.summary, plan.headroom, max_error_rate=plan.max_error_rate)
    slo = SLO(
        state="derived", ttft_p95_ms=proposed.ttft_p95_ms, itl_p95_ms=proposed.itl_p95_ms,
        e2e_p95_ms=proposed.e2e_p95_ms, max_output_tokens=proposed.max_output_tokens,
        source=source, derived_from_run=proposed.run_id, headroom=proposed.headroom,
    )
    return Derivation(alias=entry.alias, result=result, proposed=proposed, slo=slo)


def proposal_table(derivation: Derivation, current: SLO | None) -> Table:
    """Measured p95, the proposal, and the current target side by side."""
    s = derivation.result.summary
    table = Table(
        title=f"SLO derivation for {derivation.alias} (run {derivation.proposed.run_id})",
        caption=(f"{s.ok}/{s.requests} ok, concurrency {s.concurrency}, at most {s.max_tokens} output "
                 f"tokens; proposal = p95 x {derivation.proposed.headroom:g}, rounded up to 2 significant digits"),
    )
    for column in ("metric", "measured p95 (ms)", "proposed target (ms)", "current target (ms)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric in ("ttft", "itl", "e2e"):
        now = getattr(current, f"{metric}_p95_ms", None) if current else None
        table.add_row(
            metric.upper(), f"{derivation.proposed.measured_p95_ms[metric]:.1f}",
            f"{getattr(derivation.proposed, f'{metric}_p95_ms'):g}", "-" if now is None else f"{now:g}",
        )
    return table


# --- where the benchmark runs ------------------------------------------------------------------

@contextlib.contextmanager
def _gateway_client(url: str, alias: str, run: str) -> Iterator[openai.OpenAI]:
    master = os.environ.get("LITELLM_MASTER_KEY")
    if not master:
        raise SystemExit("slo_derivation: --gateway-url needs the master key in env LITELLM_MASTER_KEY")
    with LiteLLMAdmin(url, master) as admin, _keyed_client(admin, url, alias, run) as client:
        yield client


@contextlib.contextmanager
def _embedded_client(entry: AliasEntry, catalog_path: Path, build_dir: Path, run: str) -> Iterator[openai.OpenAI]:
    # The embedded platform is the local deployer's business; imported only on this path.
    from deploy.local import open_embedded

    admin, deployer, gateway_url = open_embedded(build_dir / "embedded" / "platform", load_catalog(catalog_path))
    try:
        deployer.deploy(entry)
        with _keyed_client(admin, gateway_url, entry.alias, run) as client:
            yield client
    finally:
        deployer.close()
        admin.close()


@contextlib.contextmanager
def _keyed_client(admin: LiteLLMAdmin, url: str, alias: str, run: str) -> Iterator[openai.OpenAI]:
    """A client through the gateway with a throwaway key scoped to the alias (always deleted)."""
    with throwaway_key(admin, alias=f"modelgate-slo-{run}-{alias}", models=[alias],
                       metadata={"modelgate_slo_derivation": run}) as key:
        base = url.rstrip("/")
        yield openai.OpenAI(base_url=base if base.endswith("/v1") else f"{base}/v1", api_key=key.value,
                            max_retries=0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gates.slo_derivation",
        description="Benchmark an alias on its hardware and propose latency SLOs (p95 x headroom).",
    )
    parser.add_argument("--alias", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--gateway-url", help="a LiteLLM gateway (master key from env LITELLM_MASTER_KEY)")
    where.add_argument("--embedded", action="store_true",
                       help="start the embedded platform (vLLM on this CPU); writes go to the CPU profile")
    parser.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM, help="target = p95 x headroom (>= 1)")
    parser.add_argument("--write", action="store_true", help="write the proposal (default: print only)")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / "build")
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also save the run and the proposal as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The admin client's retry warnings would bury the one line that says what failed.
    logging.getLogger("deploy.litellm_admin").setLevel(logging.ERROR)
    console = Console()
    try:
        catalog = load_catalog(args.catalog)
        entry = catalog.get(args.alias)
        plan = BenchmarkPlan(requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens,
                             headroom=args.headroom)
        if entry.mode != "chat":
            raise ValueError(f"{entry.alias}: latency SLOs are derived from streamed chat; "
                             f"the alias is mode {entry.mode!r}")
    except (CatalogError, KeyError, ValueError) as exc:
        console.print(f"[red]slo_derivation: {exc}[/red]")
        return 2
    run = new_run_id()
    if args.embedded:
        hardware = hardware_label()
        source = f"embedded platform, vLLM on the CPU ({hardware}), stand-in weights"
        opened = _embedded_client(entry, args.catalog, args.build_dir, run)
    else:
        hardware = None
        source = f"derived via {redact_url(args.gateway_url)} ({entry.gpu or 'no GPU'})"
        opened = _gateway_client(args.gateway_url, entry.alias, run)
    try:
        with opened as client:
            derivation = derive_alias_slo(client, entry, plan, source=source)
    except GatewayError as exc:
        # The gateway did not answer the key request (a typo in the URL, a gateway down): one
        # line naming it, not a traceback.
        where = "the embedded platform's gateway" if args.embedded else redact_url(args.gateway_url)
        if isinstance(exc, GatewayUnavailable) and exc.status is None:
            line = f"gateway unreachable at {where}: {exc.cause or exc.message} ({exc.route})"
        else:
            line = f"gateway {where}: {exc}"
        console.print(f"[red]slo_derivation: {line}[/red]", soft_wrap=True)
        return 1
    except ValueError as exc:
        console.print(f"[red]slo_derivation: {exc}[/red]", soft_wrap=True)
        return 1
    console.print(proposal_table(derivation, entry.slo if entry.slo.state in ("measured", "derived") else None))
    if args.json:
        args.json.write_text(json.dumps(derivation.model_dump(mode="json"), indent=2), encoding="utf-8")
    return _write(args, derivation, hardware, console)


def _write(args: Any, derivation: Derivation, hardware: str | None, console: Console) -> int:
    where = cpu_profile_path(args.build_dir) if args.embedded else args.catalog
    if not args.write:
        console.print(f"Dry run: pass --write to write this SLO to {where}.")
        return 0
    try:
        if args.embedded:
            write_cpu_profile_slo(where, derivation.alias, derivation.slo, hardware=hardware or hardware_label())
        else:
            write_catalog_slo(where, derivation.alias, derivation.slo)
    except SLOStoreError as exc:
        console.print(f"[red]slo_derivation: {exc}[/red]")
        return 1
    console.print(f"Wrote {derivation.alias}: {derivation.slo.describe()} to {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
