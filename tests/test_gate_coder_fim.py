"""The coder-fim gate end to end: reference backends prove the gate, real vLLM proves the path.

In-process tests run the gate's own evaluation against a reference FIM backend behind the
gateway double, so they can look at what the backend received on each path; the subprocess
tests run `pytest -m coder-fim --control ...` as a user does.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.catalog import load_catalog
from deploy.deployer import Deployment
from deploy.gate_configs import FimGate
from deploy.litellm_admin import LiteLLMAdmin, throwaway_key
from deploy.local import litellm_params, model_info
from evals.fim import load_fim_cases
from evals.model_calls import RetryPolicy
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer, free_port
from fixtures.platform.reference_fim import Mode, ReferenceFimBackend
from gates.kinds.fim.config import gate_config
from gates.kinds.fim.gate import FimGateOutcome, evaluate, spread
from gates.kinds.fim.judge import FimGateVerdict, judge_gate
from gates.session import REPO_ROOT, AliasContext
from tests.gate_runs import run_gates

ALIAS = "coder-fim"
ENTRY = load_catalog().get(ALIAS)
FAMILY = ENTRY.fim_family or ""
ALL_CASES = load_fim_cases(REPO_ROOT / "fixtures" / "fim_cases.json", FAMILY)
CASES = spread(ALL_CASES, 6)  # every kind, repository-level included
ONCE = RetryPolicy(attempts=1, initial_s=0.0, max_s=0.0)
STATUS_OK = "FIM /v1/completions 200 (direct + vkey), functional"


@pytest.fixture(scope="module")
def gateway() -> Iterator[LiteLLMAdmin]:
    """The LiteLLM stand-in in this process, and an admin client holding its master key."""
    master = "sk-" + secrets.token_urlsafe(24)
    with ThreadedServer(GatewayDouble(master)) as server, LiteLLMAdmin(server.url, master) as admin:
        yield admin


@contextlib.contextmanager
def fim_context(
    admin: LiteLLMAdmin, mode: Mode = "truth", *, priced: bool = True, direct_url: str | None = None,
) -> Iterator[tuple[ReferenceFimBackend, AliasContext]]:
    """coder-fim routed at a reference FIM backend, with a throwaway key: what the gate fixture gives."""
    backend = ReferenceFimBackend(ALL_CASES, mode, served_model=ENTRY.served_model_name).start()
    prices = model_info(ENTRY) if priced else {**model_info(ENTRY), "input_cost_per_token": 0,
                                                 "output_cost_per_token": 0}
    route = admin.register_model(ALIAS, litellm_params(ENTRY, backend.base_url), prices)
    deployment = Deployment(
        alias=ALIAS, kind="local", backend_url=direct_url or backend.base_url,
        served_model_name=ENTRY.served_model_name, model=f"reference FIM backend ({mode})",
        target=f"reference FIM backend at {backend.base_url}", stand_in=True,
    )
    try:
        with throwaway_key(admin, alias="test-fim", models=[ALIAS], max_budget=1.0) as key:
            yield backend, AliasContext(entry=ENTRY, deployment=deployment, gateway_url=admin.base_url,
                                        key=key, admin=admin, session=None)  # type: ignore[arg-type]
    finally:
        admin.delete_model(route)
        backend.stop()


def _gate(context: AliasContext, **overrides) -> tuple[FimGateOutcome, FimGateVerdict]:
    config = gate_config(ENTRY).model_copy(update=overrides)
    outcome = evaluate(context, CASES, config, FAMILY, policy=ONCE)
    return outcome, judge_gate(outcome, config)


def _paths(backend: ReferenceFimBackend) -> tuple[list[dict], list[dict]]:
    """The backend's requests split by path: the openai client's own (direct) or the gateway's."""
    direct, forwarded = [], []
    for body, headers in zip(backend.requests, backend.headers, strict=True):
        (direct if headers.get("user-agent", "").startswith("OpenAI/") else forwarded).append(body)
    return direct, forwarded


# ---- in process: the gate's evaluation against reference backends ------------------------

def test_true_middles_pass_and_both_paths_reach_the_backend(gateway: LiteLLMAdmin) -> None:
    with fim_context(gateway) as (backend, context):
        outcome, verdict = _gate(context)
    assert verdict.verdict == "pass", verdict.reason
    assert verdict.summary == f"{STATUS_OK} {len(CASES)}/{len(CASES)} [95% CI 61-100%]"
    direct, forwarded = _paths(backend)
    # The gateway's probes (route check) are not part of this evaluation: exactly one per case.
    prompts = sorted(c.prompt(FAMILY) for c in CASES)
    assert sorted(b["prompt"] for b in direct) == prompts
    assert sorted(b["prompt"] for b in forwarded) == prompts
    for body in direct + forwarded:
        assert "suffix" not in body and body["model"] == ENTRY.served_model_name
        assert body["max_tokens"] == 128 and body["temperature"] == 0
    assert outcome.comparison.ok and outcome.comparison.direct_models == [ENTRY.served_model_name]
    # The gate's wire log agrees with what the backend saw.
    for label in ("direct", "vkey"):
        wire = outcome.wire.transports[label]
        assert wire.requests == len(CASES) and wire.with_suffix == 0
        assert wire.paths == ["/v1/completions"] and "suffix" not in wire.fields
    spend = outcome.spend
    assert spend.status == "grew" and spend.expected > 0
    assert spend.after - spend.before == pytest.approx(spend.expected)
    assert spend.reported == pytest.approx(spend.expected)  # the gateway's cost headers agree
    assert all(d.same_middle and d.score.functional for d in outcome.details())


def test_control_tokens_are_flagged_mangled(gateway: LiteLLMAdmin) -> None:
    with fim_context(gateway, "control_tokens") as (_backend, context):
        outcome, verdict = _gate(context)
    assert verdict.verdict == "fail"
    assert outcome.score.mangled == len(CASES)
    assert "an instruct model or a chat template in the path" in verdict.reason
    assert verdict.summary.endswith(f"mangled {len(CASES)}/{len(CASES)} [95% CI 61-100%]")
    assert outcome.spend.status == "grew"  # the transport worked: the answers are what is wrong


def test_whole_function_again_does_not_pass(gateway: LiteLLMAdmin) -> None:
    with fim_context(gateway, "whole_function") as (_backend, context):
        outcome, verdict = _gate(context)
    assert verdict.verdict == "fail"
    assert outcome.score.exact == 0 and outcome.score.functional < len(CASES)
    assert outcome.comparison.ok  # both paths answered, from the same model


def test_flat_spend_fails_the_gate(gateway: LiteLLMAdmin) -> None:
    """The gateway routes the alias without prices: answers are right, but budgets cannot bind."""
    with fim_context(gateway, priced=False) as (_backend, context):
        outcome, verdict = _gate(context, spend_timeout_s=0.5)
    assert outcome.score.functional == len(CASES)
    assert outcome.spend.status == "flat" and outcome.spend.after == outcome.spend.before
    assert verdict.verdict == "fail" and "spend did not grow" in verdict.reason


def test_unanswered_direct_path_is_an_error_not_a_fail(gateway: LiteLLMAdmin) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with fim_context(gateway, direct_url=dead) as (backend, context):
        outcome, verdict = _gate(context)
    assert verdict.verdict == "error"
    assert verdict.summary.startswith("FIM /v1/completions not answered")
    assert f"direct answered 0/{len(CASES)}" in verdict.reason
    assert len(_paths(backend)[1]) == len(CASES)  # the gateway path still ran


def test_bad_gate_config_names_the_alias_and_field() -> None:
    entry = ENTRY.model_copy(update={"gates": {"fim": {"min_functional_rate": 1.5, "max_mangled_rate": 0.2}}})
    with pytest.raises(ValueError, match=r"alias 'coder-fim', gates.fim: .*min_functional_rate"):
        gate_config(entry)
    typo = ENTRY.model_copy(update={"gates": {"fim": {"min_functional_rate": 0.6, "max_mangeld_rate": 0.2}}})
    with pytest.raises(ValueError, match="max_mangeld_rate"):
        gate_config(typo)
    assert isinstance(gate_config(ENTRY), FimGate)


def test_spread_keeps_every_kind() -> None:
    assert [c.kind for c in spread(ALL_CASES, 4)] == ["single-line", "multi-line", "repo", "single-line"]
    assert len(spread(ALL_CASES, 1000)) == len(ALL_CASES)


# ---- as a user runs it: `pytest -m coder-fim --control ...` --------------------------------

def test_known_good_control_passes(tmp_path: Path) -> None:
    run = run_gates("-m", ALIAS, "--control", "known-good", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("fim")
    total = len(ALL_CASES)
    assert record.verdict == "pass" and record.summary == f"{STATUS_OK} {total}/{total} [95% CI 86-100%]"
    assert (record.counts.passed, record.counts.total) == (total, total)
    assert record.extra["wire"]["transports"]["vkey"]["requests"] == total
    assert record.extra["spend"]["status"] == "grew"
    status = run.status(ALIAS)
    assert status.startswith(f"{STATUS_OK} {total}/{total} [95% CI 86-100%] (promotion subset) "
                             "[embedded stand-in: reference backend")
    rows = [json.loads(line) for line in (tmp_path / record.details_file).read_text().splitlines()]
    assert len(rows) == total and all(r["score"]["functional"] and r["same_middle"] for r in rows)
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.suffix in (".jsonl", ".yaml", ".md"))
    for text in (run.output, written):  # the throwaway key shows abbreviated at most
        assert "sk-" not in text.replace("sk-...", "")


def test_known_bad_control_is_rejected(tmp_path: Path) -> None:
    run = run_gates("-m", ALIAS, "--control", "known-bad", outputs=tmp_path)
    assert run.returncode == 1, run.output[-3000:]
    record = run.record("fim")
    assert record.verdict == "fail" and record.counts.errors == 0
    assert record.extra["mangled"] == len(ALL_CASES)
    assert run.status(ALIAS).startswith("FAIL: FIM ")


def test_erroring_backend_is_error_not_fail(tmp_path: Path) -> None:
    run = run_gates("-m", ALIAS, "--control", "erroring", outputs=tmp_path)
    assert run.returncode != 0 and " 1 error" in run.output, run.output[-3000:]  # not "1 failed"
    assert run.record("fim").verdict == "error"
    assert run.status(ALIAS).startswith("ERROR ")


# ---- real vLLM on the CPU ------------------------------------------------------------------

@pytest.mark.engine
def test_real_vllm_fim_direct_and_through_the_gateway(shared_platform, tmp_path: Path) -> None:
    """The stand-in (no FIM training) answers 200 on both paths; its holes are judged, not skipped."""
    shared_platform.deploy(ALIAS)
    run = run_gates(
        "-m", ALIAS, "--gateway-url", shared_platform.gateway_url, "--no-deploy", "--fim-limit", "4",
        outputs=tmp_path, env=shared_platform.gate_env(),
    )
    record = run.record("fim")
    assert record.counts.total == 4 and record.counts.errors == 0, record.reason
    assert record.verdict in ("pass", "fail")  # a 135M model may fail, but it must be judged
    assert record.summary.startswith(f"{STATUS_OK} ")
    assert record.target.served_model_name == "smollm2-135m-instruct"  # what really answered
    comparison = record.extra["comparison"]
    assert comparison["both_answered"] and comparison["same_served_model"], comparison["reason"]
    wire = record.extra["wire"]["transports"]
    assert wire["direct"]["requests"] == wire["vkey"]["requests"] == 4
    assert all(w["with_suffix"] == 0 and "suffix" not in w["fields"] for w in wire.values())
    assert record.extra["spend"]["status"] == "grew", record.extra["spend"]["detail"]
    assert record.extra["completion_tokens"] > 0
