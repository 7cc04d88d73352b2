"""Request seeds: the suite's default and the per-sample seed derivation.

A seed makes sampling repeatable on the same deployment (vLLM reproduces a seeded request only
on the same hardware, build and batching). Sample seeds come from a stable hash, never Python's
salted `hash()`, so a rerun asks exactly the same questions.
"""

from __future__ import annotations

import hashlib

# The seed every request carries when the catalog's gate block sets no `seed`.
DEFAULT_SEED = 1234
_SEED_LIMIT = 2**31  # fits every backend's int32 seed field


def resolve_seed(seed: int | None) -> int:
    """The catalog's seed, or DEFAULT_SEED when it gives none."""
    return DEFAULT_SEED if seed is None else int(seed)


def sample_seed(base_seed: int, task_id: str, sample: int) -> int:
    """The seed of one sample of one task: a stable hash of (base seed, task id, sample index)."""
    digest = hashlib.blake2b(f"{base_seed}\x00{task_id}\x00{sample}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % _SEED_LIMIT
