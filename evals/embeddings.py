"""Embeddings checks over an OpenAI client (CONTRACTS.md §1 and §6).

Each check asks the model something small and returns an `EmbeddingCheck`: pass or fail with
a reason, or error when the platform did not answer. `run_embedding_checks` runs them all and
`judge_embeddings` turns them into one verdict.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import openai
from pydantic import BaseModel, Field

from evals import progress
from evals.checks import CheckResult, Outcome
from evals.fixture_files import read_json_model
from evals.model_calls import (
    CallOutcome,
    RetryPolicy,
    call_with_retries,
    embeddings,
    no_retry,
    redact,
)

_PROBE = "def binary_search(items, target): return the index of target in sorted items"
_TEXTS = (
    _PROBE,
    "The quick brown fox jumps over the lazy dog.",
    "x",
    "Embeddings map text to vectors so that similar meanings land close together. " * 8,
)
# Batch neighbours of different lengths: padding must not leak into a text's vector.
_BATCH_FILLERS = (
    "short", "a somewhat longer sentence about databases and indexes",
    "SELECT name FROM users WHERE id = 42", "import numpy as np", "lorem ipsum " * 30,
)
_OVERLENGTH_WORDS = "the quick brown fox jumps over the lazy dog while seven wizards quietly hex".split()


class EmbeddingCheck(CheckResult):
    pass


class Triplet(BaseModel):
    """An anchor, a paraphrase of it, and an unrelated text: the paraphrase must sit closer."""

    id: str
    domain: Literal["code-search", "general"]
    anchor: str = Field(min_length=1)
    paraphrase: str = Field(min_length=1)
    unrelated: str = Field(min_length=1)


class TripletFile(BaseModel):
    triplets: list[Triplet] = Field(min_length=1)


def load_triplets(path: str | Path) -> list[Triplet]:
    return read_json_model(path, TripletFile, "triplet file").triplets


# --- vector helpers -------------------------------------------------------------------------

def norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ValueError(f"cosine of vectors of different lengths {len(a)} and {len(b)}")
    denom = norm(a) * norm(b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / denom if denom else 0.0


def decode_base64(data: str) -> list[float]:
    """An OpenAI base64 embedding: little-endian float32 values."""
    raw = base64.b64decode(data, validate=True)
    if len(raw) % 4:
        raise ValueError(f"base64 embedding of {len(raw)} bytes is not a whole number of float32")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# --- calls ----------------------------------------------------------------------------------

def _call(client: openai.OpenAI, model: str, inputs: str | Sequence[str], policy: RetryPolicy | None,
          encoding_format: str = "float") -> CallOutcome:
    return embeddings(client, model, inputs, policy=policy, encoding_format=encoding_format)


def _vectors(outcome: CallOutcome) -> list[list[float]]:
    data = sorted(outcome.value.data, key=lambda d: d.index)
    return [list(d.embedding) for d in data]


def _error(name: str, outcome: CallOutcome) -> EmbeddingCheck:
    return EmbeddingCheck(
        name=name, outcome="error",
        reason=f"no answer: {outcome.error_kind} {outcome.status or ''} {outcome.message}".strip(),
        details={"status": outcome.status, "error_kind": outcome.error_kind},
    )


def _embed_or_error(name: str, client: openai.OpenAI, model: str, inputs: str | Sequence[str],
                    policy: RetryPolicy | None) -> list[list[float]] | EmbeddingCheck:
    outcome = _call(client, model, inputs, policy)
    if not outcome.ok:
        return _error(name, outcome)
    vectors = _vectors(outcome)
    expected = 1 if isinstance(inputs, str) else len(inputs)
    if len(vectors) != expected:
        return EmbeddingCheck(name=name, outcome="fail",
                              reason=f"{expected} inputs gave {len(vectors)} vectors")
    return vectors


# --- checks ---------------------------------------------------------------------------------

def check_dimension(client: openai.OpenAI, model: str, expected: int, *,
                    policy: RetryPolicy | None = None) -> EmbeddingCheck:
    name = "dimension"
    got = _embed_or_error(name, client, model, list(_TEXTS), policy)
    if isinstance(got, EmbeddingCheck):
        return got
    dims = sorted({len(v) for v in got})
    ok = dims == [expected]
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"dimension {', '.join(map(str, dims))}" + ("" if ok else f" != expected {expected}"),
        details={"dimensions": dims, "expected": expected},
    )


def check_normalized(client: openai.OpenAI, model: str, tolerance: float = 1e-3, *,
                     policy: RetryPolicy | None = None) -> EmbeddingCheck:
    name = "normalized"
    got = _embed_or_error(name, client, model, list(_TEXTS), policy)
    if isinstance(got, EmbeddingCheck):
        return got
    worst = max(abs(norm(v) - 1.0) for v in got)
    ok = worst <= tolerance
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"max |L2 norm - 1| = {worst:.1e}" + (" <= " if ok else " > ") + f"{tolerance:g}",
        details={"max_norm_error": worst, "tolerance": tolerance},
    )


def check_batch_consistency(client: openai.OpenAI, model: str, min_cosine: float = 0.999, *,
                            policy: RetryPolicy | None = None) -> EmbeddingCheck:
    """A text alone and the same text in the middle of a batch give the same vector."""
    name = "batch_consistency"
    alone = _embed_or_error(name, client, model, _PROBE, policy)
    if isinstance(alone, EmbeddingCheck):
        return alone
    batch = [*_BATCH_FILLERS[:2], _PROBE, *_BATCH_FILLERS[2:]]
    together = _embed_or_error(name, client, model, batch, policy)
    if isinstance(together, EmbeddingCheck):
        return together
    if len(alone[0]) != len(together[2]):
        return EmbeddingCheck(name=name, outcome="fail",
                              reason=f"alone {len(alone[0])} dims, in a batch {len(together[2])}")
    cos = cosine(alone[0], together[2])
    ok = cos >= min_cosine
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"alone vs in a batch of {len(batch)}: cosine {cos:.6f}" + ("" if ok else f" < {min_cosine}"),
        details={"cosine": cos, "min_cosine": min_cosine},
    )


def check_base64(client: openai.OpenAI, model: str, max_abs_diff: float = 1e-5, *,
                 policy: RetryPolicy | None = None) -> EmbeddingCheck:
    """`encoding_format="base64"` decodes (little-endian float32) to the float answer."""
    name = "base64"
    floats = _embed_or_error(name, client, model, list(_TEXTS[:2]), policy)
    if isinstance(floats, EmbeddingCheck):
        return floats
    outcome = _call(client, model, list(_TEXTS[:2]), policy, encoding_format="base64")
    if not outcome.ok:
        return _error(name, outcome)
    if len(outcome.value.data) != len(floats):  # a missing vector must not pass unchecked
        return EmbeddingCheck(name=name, outcome="fail",
                              reason=f"base64 gave {len(outcome.value.data)} vectors for {len(floats)} inputs")
    worst = 0.0
    for f_vec, item in zip(floats, sorted(outcome.value.data, key=lambda d: d.index), strict=True):
        if not isinstance(item.embedding, str):
            return EmbeddingCheck(name=name, outcome="fail",
                                  reason=f"base64 requested, got {type(item.embedding).__name__}")
        try:
            b_vec = decode_base64(item.embedding)
        except ValueError as exc:  # binascii.Error is a ValueError
            return EmbeddingCheck(name=name, outcome="fail", reason=f"undecodable base64: {exc}")
        if len(b_vec) != len(f_vec):
            return EmbeddingCheck(name=name, outcome="fail",
                                  reason=f"base64 gives {len(b_vec)} values, float {len(f_vec)}")
        worst = max(worst, max(abs(a - b) for a, b in zip(f_vec, b_vec, strict=True)))
    ok = worst <= max_abs_diff
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"float and base64 differ by at most {worst:.1e}" + ("" if ok else f" > {max_abs_diff:g}"),
        details={"max_abs_diff": worst},
    )


def check_triplets(client: openai.OpenAI, model: str, triplets: Sequence[Triplet],
                   min_rate: float = 0.9, *, batch_size: int = 16,
                   policy: RetryPolicy | None = None) -> EmbeddingCheck:
    """Each anchor is closer to its paraphrase than to the unrelated text, often enough."""
    name = "triplets"
    if not triplets:
        raise ValueError("check_triplets needs at least one triplet")
    texts = [t for trip in triplets for t in (trip.anchor, trip.paraphrase, trip.unrelated)]
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch_size):
        got = _embed_or_error(name, client, model, texts[start:start + batch_size], policy)
        if isinstance(got, EmbeddingCheck):
            return got
        vectors += got
    missed = []
    for i, trip in enumerate(triplets):
        anchor, para, other = vectors[3 * i: 3 * i + 3]
        if cosine(anchor, para) <= cosine(anchor, other):
            missed.append(trip.id)
    passed = len(triplets) - len(missed)
    rate = passed / len(triplets)
    ok = rate >= min_rate
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"triplets {passed}/{len(triplets)} ({rate:.0%} {'>=' if ok else '<'} {min_rate:.0%})"
        + (f"; missed {', '.join(missed)}" if missed else ""),
        details={"passed": passed, "total": len(triplets), "missed": missed},
    )


def _limit_check(name: str, client: openai.OpenAI, model: str, inputs: str | list[str],
                 what: str, policy: RetryPolicy | None) -> EmbeddingCheck:
    """Over a limit the server either copes (200, one vector per input) or refuses with a clear 4xx."""
    outcome = _call(client, model, inputs, policy)
    if outcome.ok:
        vectors = _vectors(outcome)
        expected = 1 if isinstance(inputs, str) else len(inputs)
        if len(vectors) != expected or not all(vectors):
            return EmbeddingCheck(name=name, outcome="fail",
                                  reason=f"{what}: 200 with {len(vectors)} vectors for {expected} inputs")
        usage = outcome.value.usage
        tokens = usage.prompt_tokens if usage else None
        handled = "truncated" if isinstance(inputs, str) else "accepted"
        return EmbeddingCheck(name=name, outcome="pass", reason=f"{what}: {handled} (200)",
                              details={"handling": handled, "prompt_tokens": tokens})
    if outcome.error_kind == "http_4xx" and outcome.status is not None:
        # The openai client words it "Error code: 413 - <body>"; no body, no explanation.
        message = outcome.message.partition(" - ")[2].strip()
        if not message:
            return EmbeddingCheck(name=name, outcome="fail",
                                  reason=f"{what}: refused {outcome.status} without a message")
        return EmbeddingCheck(
            name=name, outcome="pass", reason=f"{what}: refused {outcome.status} ({message[:160]})",
            details={"handling": "refused", "status": outcome.status},
        )
    return _error(name, outcome)


def check_overlength(client: openai.OpenAI, model: str, max_input_tokens: int, *,
                     policy: RetryPolicy | None = None) -> EmbeddingCheck:
    """An input of at least twice the token limit: truncated or refused, the report says which."""
    words = [_OVERLENGTH_WORDS[i % len(_OVERLENGTH_WORDS)] for i in range(2 * max_input_tokens)]
    return _limit_check("overlength_input", client, model, " ".join(words),
                        f"input over {max_input_tokens} tokens", policy)


def check_batch_limit(client: openai.OpenAI, model: str, max_batch_size: int, *,
                      policy: RetryPolicy | None = None) -> EmbeddingCheck:
    inputs = [f"item number {i}" for i in range(max_batch_size + 1)]
    return _limit_check("batch_over_limit", client, model, inputs,
                        f"batch of {len(inputs)} > {max_batch_size}", policy)


def check_usage(client: openai.OpenAI, model: str, *,
                policy: RetryPolicy | None = None) -> EmbeddingCheck:
    name = "usage"
    outcome = _call(client, model, list(_TEXTS[:2]), policy)
    if not outcome.ok:
        return _error(name, outcome)
    usage = outcome.value.usage
    tokens = getattr(usage, "prompt_tokens", None) if usage else None
    ok = isinstance(tokens, int) and tokens > 0
    return EmbeddingCheck(
        name=name, outcome="pass" if ok else "fail",
        reason=f"usage.prompt_tokens {tokens}" + ("" if ok else " (must be a positive integer)"),
        details={"prompt_tokens": tokens},
    )


def check_registered(client: openai.OpenAI, model: str,
                     read_model_info: Callable[[], Sequence[Mapping[str, Any]]], *,
                     input_cost_per_token: float,
                     policy: RetryPolicy | None = None) -> EmbeddingCheck:
    """The alias is in `/v1/models` for the key, and in `/model/info` as an embedding model
    priced as the catalog says (a model without a price costs 0: its budgets never bind).

    `read_model_info` returns `/model/info`'s `data` entries (the admin API needs the master
    key, which this module never holds).
    """
    name = "registered"
    listed = call_with_retries(lambda: [m.id for m in no_retry(client).models.list()], policy=policy)
    if not listed.ok:
        return _error(name, listed)
    if model not in listed.value:
        return EmbeddingCheck(name=name, outcome="fail",
                              reason=f"{model!r} is not in /v1/models for this key "
                              f"(listed: {', '.join(sorted(listed.value)) or 'nothing'})")
    try:
        entries = [e for e in read_model_info() if e.get("model_name") == model]
    except Exception as exc:  # the reader is the caller's admin call: a platform error
        return EmbeddingCheck(name=name, outcome="error",
                              reason=redact(f"no answer from GET /model/info: {type(exc).__name__}: {exc}"))
    if not entries:
        return EmbeddingCheck(name=name, outcome="fail", reason=f"{model!r} is not in /model/info")
    info = entries[0].get("model_info") or {}
    mode, price = info.get("mode"), info.get("input_cost_per_token")
    details = {"mode": mode, "input_cost_per_token": price,
               "output_vector_size": info.get("output_vector_size")}
    problems = []
    if mode != "embedding":
        problems.append(f"/model/info mode is {mode!r}, not 'embedding'")
    if not isinstance(price, int | float) or price <= 0:
        problems.append(f"/model/info has no input price ({price!r}): its budgets can never bind")
    elif not math.isclose(price, input_cost_per_token, rel_tol=1e-9):
        problems.append(f"/model/info input price {price:g} USD/token != the catalog's "
                        f"{input_cost_per_token:g}")
    if problems:
        return EmbeddingCheck(name=name, outcome="fail", reason="; ".join(problems), details=details)
    return EmbeddingCheck(
        name=name, outcome="pass", details=details,
        reason=f"in /v1/models and /model/info (mode embedding, {price:g} USD/token)",
    )


class EmbeddingsGate(BaseModel):
    """What the catalog's `gates.embeddings` plus the alias's `dimensions`/`context` give."""

    dimensions: int = Field(gt=0)
    min_triplet_rate: float = Field(default=0.9, ge=0, le=1)
    normalization_tolerance: float = Field(default=1e-3, gt=0)
    batch_cosine_min: float = Field(default=0.999, ge=-1, le=1)
    max_input_tokens: int = Field(default=512, gt=0)
    max_batch_size: int = Field(default=32, gt=0)


def run_embedding_checks(client: openai.OpenAI, model: str, gate: EmbeddingsGate,
                         triplets: Sequence[Triplet], *,
                         policy: RetryPolicy | None = None) -> list[EmbeddingCheck]:
    count = progress.counter("evaluating", 8, "embeddings checks", passed=lambda c: c.passed)
    return [
        count(check_dimension(client, model, gate.dimensions, policy=policy)),
        count(check_normalized(client, model, gate.normalization_tolerance, policy=policy)),
        count(check_batch_consistency(client, model, gate.batch_cosine_min, policy=policy)),
        count(check_base64(client, model, policy=policy)),
        count(check_triplets(client, model, triplets, gate.min_triplet_rate, policy=policy)),
        count(check_overlength(client, model, gate.max_input_tokens, policy=policy)),
        count(check_batch_limit(client, model, gate.max_batch_size, policy=policy)),
        count(check_usage(client, model, policy=policy)),
    ]


class EmbeddingsVerdict(BaseModel):
    verdict: Outcome
    reason: str
    status: str
    checks: list[EmbeddingCheck]


def judge_embeddings(checks: Sequence[EmbeddingCheck]) -> EmbeddingsVerdict:
    """error if any check got no answer, else fail if any failed, else pass."""
    if not checks:
        raise ValueError("judge_embeddings needs at least one check")
    errors = [c for c in checks if c.outcome == "error"]
    failures = [c for c in checks if c.outcome == "fail"]
    verdict: Outcome = "error" if errors else "fail" if failures else "pass"
    bad = errors or failures
    reason = "; ".join(f"{c.name}: {c.reason}" for c in bad) or "; ".join(c.reason for c in checks)
    passed = sum(c.passed for c in checks)
    status = f"embeddings checks {passed}/{len(checks)} passed"
    if bad:
        status += f" ({', '.join(c.name for c in bad)} {verdict})"
    return EmbeddingsVerdict(verdict=verdict, reason=reason, status=status, checks=list(checks))
