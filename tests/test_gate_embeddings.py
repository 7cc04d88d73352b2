"""The embeddings gate end to end: controls prove the gate, real vLLM proves the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.catalog import load_catalog
from deploy.deployer import STAND_IN_INFO, Deployment
from deploy.litellm_admin import ModelEntry
from deploy.local import model_info
from deploy.preexisting import PreexistingDeployer
from evals.embeddings import EmbeddingCheck
from fixtures.platform.standin_models import minilm_standin
from gates.kinds.embeddings.judge import expected_dimensions, gate_settings, judge_gate
from tests.gate_runs import run_gates

CATALOG = load_catalog()
ENTRY = CATALOG.get("embeddings")
CHECKS = ("registered", "dimension", "normalized", "batch_consistency", "base64", "triplets",
          "overlength_input", "batch_over_limit", "usage", "budget_binding", "budget_key_deleted")


def _details(run, record) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run.outputs / record.details_file).read_text().splitlines()]
    return {row["name"]: row for row in rows}


# -- through the gate, as a user runs it ---------------------------------------------------------
@pytest.mark.parametrize("budget_status", ["429", "400"])
def test_known_good_control_passes_with_either_budget_status(tmp_path: Path, budget_status: str) -> None:
    run = run_gates("-m", "embeddings", "--control", "known-good",
                    f"--budget-status={budget_status}", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    record = run.record("embeddings")
    assert record.verdict == "pass", record.reason
    assert record.summary == "registered + budget-binding, 768-d, triplets 20/20 = 100% [95% CI 84-100%]"  # the control serves the catalog's size
    assert (record.counts.passed, record.counts.total) == (len(CHECKS), len(CHECKS))
    assert tuple(record.extra["checks"]) == CHECKS
    assert record.extra["dimensions_source"] == "catalog"
    assert record.extra["budget_refusal_status"] == int(budget_status)
    assert record.extra["budget_usd"] == ENTRY.gate("embeddings").budget_usd
    budget = _details(run, record)["budget_binding"]["details"]
    assert budget["over_budget_answers"] == 1  # the crossing request, then a refusal
    assert budget["reported_spend"] == pytest.approx(budget["expected_spend"], rel=1e-6)
    status = run.status("embeddings")
    assert status == ("registered + budget-binding, 768-d, triplets 20/20 = 100% [95% CI 84-100%] (promotion subset) "
                      "[embedded stand-in: reference backend (known-good control)]")
    written = "".join(p.read_text() for p in tmp_path.rglob("*")
                      if p.is_file() and p.suffix in (".jsonl", ".yaml", ".md"))
    for text in (run.output, written):  # neither throwaway key leaks
        assert "sk-" not in text.replace("sk-...", "").replace("sk-***", "")


def test_known_bad_control_is_rejected_for_its_dimension(tmp_path: Path) -> None:
    run = run_gates("-m", "embeddings", "--control", "known-bad", outputs=tmp_path)
    assert run.returncode == 1
    record = run.record("embeddings")
    assert record.verdict == "fail"
    assert {n for n, outcome in record.extra["checks"].items() if outcome != "pass"} == {"dimension"}
    assert record.reason == "dimension: dimension 767 != expected 768"
    assert record.summary == ("embeddings checks 10/11 passed (dimension fail), 768-d expected"
                              ", triplets 20/20 = 100% [95% CI 84-100%]")
    status = run.status("embeddings")
    assert status.startswith("FAIL: embeddings checks 10/11 passed (dimension fail)")


def test_erroring_backend_is_error_not_fail(tmp_path: Path) -> None:
    run = run_gates("-m", "embeddings", "--control", "erroring", outputs=tmp_path)
    assert run.returncode != 0
    record = run.record("embeddings")
    assert record.verdict == "error" and "500" in record.reason
    assert run.status("embeddings").startswith("ERROR ")


# -- the gate's pieces ---------------------------------------------------------------------------
def _deployment(**kwargs) -> Deployment:
    return Deployment(alias="embeddings", kind="local", backend_url=None,
                      served_model_name="bge-base-en-v1.5", model="m", target="t", **kwargs)


def test_expected_dimensions_are_the_stand_ins_or_the_catalogs() -> None:
    assert expected_dimensions(ENTRY, _deployment(stand_in=True, dimensions=384)).model_dump() == {
        "value": 384, "source": "stand-in"}
    # A real deployment is held to the catalog, whatever size it claims.
    assert expected_dimensions(ENTRY, _deployment(stand_in=False, dimensions=384)).value == 768
    assert expected_dimensions(ENTRY, _deployment(stand_in=True)).value == 768


def test_the_stand_in_route_declares_itself_for_no_deploy_runs() -> None:
    standin = minilm_standin()
    assert standin.dimensions == 384
    info = model_info(ENTRY, standin)
    assert info["output_vector_size"] == 384 and info["mode"] == "embedding"
    assert info[STAND_IN_INFO] == {"model": "all-MiniLM-L6-v2", "revision": standin.revision}

    class Admin:  # what PreexistingDeployer reads: GET /model/info
        def __init__(self, model_info: dict):
            self.entries = [ModelEntry(model_name="embeddings", model_info=model_info, litellm_params={
                "model": "hosted_vllm/bge-base-en-v1.5", "api_base": "http://127.0.0.1:1/v1"})]

        def model_info(self) -> list[ModelEntry]:
            return self.entries

    seen = PreexistingDeployer(Admin(info)).deploy(ENTRY)
    assert (seen.stand_in, seen.model, seen.dimensions) == (True, "all-MiniLM-L6-v2", 384)
    assert expected_dimensions(ENTRY, seen).value == 384
    real = PreexistingDeployer(Admin({**model_info(ENTRY), "output_vector_size": 384})).deploy(ENTRY)
    assert (real.stand_in, real.model, real.dimensions) == (False, ENTRY.model, None)


def test_gate_settings_come_from_the_catalog() -> None:
    settings = gate_settings(ENTRY, ENTRY.gate("embeddings"), 384)
    assert settings.model_dump() == {
        "dimensions": 384, "min_triplet_rate": 0.9, "normalization_tolerance": 0.001,
        "batch_cosine_min": 0.999, "max_input_tokens": 512, "max_batch_size": 32,
    }


@pytest.mark.parametrize(("fault", "outcome", "verdict"), [
    ("normalized", "fail", "fail"), ("batch_consistency", "fail", "fail"),
    ("budget_binding", "error", "error"),
])
def test_one_bad_check_decides_the_verdict(fault: str, outcome: str, verdict: str) -> None:
    checks = [EmbeddingCheck(name=n, outcome=outcome if n == fault else "pass", reason=f"{n} said so")
              for n in CHECKS]
    judged = judge_gate(checks, 384)
    assert judged.verdict == verdict and judged.reason == f"{fault}: {fault} said so"
    assert judged.summary == f"embeddings checks 10/11 passed ({fault} {verdict}), 384-d expected"
    assert judged.value == pytest.approx(10 / 11)


# -- real vLLM -------------------------------------------------------------------------------------
@pytest.mark.engine
def test_real_vllm_embeddings_pass_through_the_gateway(shared_platform, tmp_path: Path) -> None:
    """all-MiniLM-L6-v2 on vLLM's pooling runner (CPU), behind the gateway double, gated as a
    real platform is (--no-deploy): 384-d unit vectors and a budget that binds."""
    shared_platform.deploy("embeddings")
    run = run_gates(
        "-m", "embeddings", "--gateway-url", shared_platform.gateway_url, "--no-deploy",
        outputs=tmp_path, env=shared_platform.gate_env(),
    )
    record = run.record("embeddings")
    checks = record.extra["checks"]
    for name in ("registered", "dimension", "normalized", "batch_consistency", "budget_binding",
                 "budget_key_deleted"):
        assert checks[name] == "pass", f"{name}: {record.reason}"
    assert record.counts.errors == 0, record.reason
    assert record.extra["dimensions"] == 384 and record.extra["dimensions_source"] == "stand-in"
    assert record.extra["budget_refusal_status"] == 422  # current LiteLLM's default, the double's too
    assert record.target.stand_in and record.target.model == "all-MiniLM-L6-v2"
    assert record.target.platform == "remote" and record.target.deployment.startswith("gateway route")
    assert record.verdict == "pass", record.reason
    assert record.summary.startswith("registered + budget-binding, 384-d, triplets ")
    assert run.returncode == 0
