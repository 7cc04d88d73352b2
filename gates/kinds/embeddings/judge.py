"""The embeddings verdict: what vector size to expect, the gate's settings, and the status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from deploy.catalog import AliasEntry
from deploy.deployer import Deployment
from deploy.gate_configs import EmbeddingsGateConfig
from deploy.judged_rates import JudgedRate
from deploy.ledger import Counts, Verdict
from evals.budget import BudgetBinding
from evals.embeddings import EmbeddingCheck, EmbeddingsGate, judge_embeddings
from evals.intervals import Interval, wilson

TRIPLETS = "triplets"  # the one check that is a rate over items (anchor/paraphrase/unrelated)


class ExpectedDimensions(BaseModel):
    value: int
    source: Literal["catalog", "stand-in"]


def expected_dimensions(entry: AliasEntry, deployment: Deployment) -> ExpectedDimensions:
    """The catalog's size on a real platform; the stand-in's where one serves the alias
    (all-MiniLM-L6-v2 gives 384 where the catalog's bge-base-en-v1.5 gives 768)."""
    if deployment.stand_in and deployment.dimensions:
        return ExpectedDimensions(value=deployment.dimensions, source="stand-in")
    if entry.dimensions is None:  # the catalog schema requires it for embedding aliases
        raise ValueError(f"catalog alias {entry.alias!r}: field 'dimensions' is missing")
    return ExpectedDimensions(value=entry.dimensions, source="catalog")


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def gate_settings(entry: AliasEntry, config: EmbeddingsGateConfig, dimensions: int) -> EmbeddingsGate:
    """The checks' thresholds from `gates.embeddings`; input and batch limits from the alias
    (`context`, and TEI's `--max-client-batch-size` in `serve_args`)."""
    batch = _flag_value(entry.serve_args, "--max-client-batch-size")
    known = ("min_triplet_rate", "normalization_tolerance", "batch_cosine_min")
    return EmbeddingsGate(
        dimensions=dimensions,
        max_input_tokens=entry.context or 512,
        max_batch_size=int(config.max_batch_size or batch or 32),
        **{name: getattr(config, name) for name in known if getattr(config, name) is not None},
    )


def budget_check(binding: BudgetBinding) -> EmbeddingCheck:
    """The budget loop as one of the gate's checks; the requests go to the details file."""
    return EmbeddingCheck(
        name="budget_binding", outcome=binding.outcome, reason=binding.reason,
        details=binding.model_dump(mode="json", exclude={"reason", "outcome"}),
    )


class GateVerdict(BaseModel):
    verdict: Verdict
    summary: str
    reason: str
    counts: Counts
    value: float
    judged: list[JudgedRate] = []  # the triplet rate with its 95% Wilson interval
    other_checks: Verdict = "pass"  # every check but the triplets


def _triplet_rate(checks: Sequence[EmbeddingCheck]) -> Interval | None:
    check = next((c for c in checks if c.name == TRIPLETS and c.details.get("total")), None)
    if check is None:  # not answered: an ERROR, with nothing to judge
        return None
    return wilson(int(check.details["passed"]), int(check.details["total"]), "triplet rate")


def judge_gate(checks: Sequence[EmbeddingCheck], dimensions: int,
               min_triplet_rate: float = EmbeddingsGate.model_fields["min_triplet_rate"].default,
               ) -> GateVerdict:
    """Every check must pass. Any check without an answer makes the verdict ERROR, not FAIL."""
    triplets = _triplet_rate(checks)
    others = [c.outcome for c in checks if c.name != TRIPLETS]
    other_checks: Verdict = "error" if "error" in others else "fail" if "fail" in others else "pass"
    judged = judge_embeddings(checks)
    passed = sum(c.outcome == "pass" for c in checks)
    counts = Counts(
        passed=passed, failed=sum(c.outcome == "fail" for c in checks),
        errors=sum(c.outcome == "error" for c in checks), total=len(checks),
    )
    if judged.verdict == "pass":
        summary, reason = f"registered + budget-binding, {dimensions}-d", ""
    else:
        summary, reason = f"{judged.status}, {dimensions}-d expected", judged.reason
    if triplets is not None:
        summary += f", triplets {triplets.figure()}"
    return GateVerdict(
        verdict=judged.verdict, summary=summary, reason=reason, counts=counts,
        value=passed / len(checks), other_checks=other_checks,
        judged=[JudgedRate.of(triplets, min_triplet_rate)] if triplets is not None else [],
    )
