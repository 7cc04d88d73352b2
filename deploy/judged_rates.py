"""What a gate judged, as the ledger keeps it: each rate's interval, threshold and direction.

The same fields as `evals.intervals.Interval` (deploy never imports evals; a test keeps the two
in step) plus the threshold the gate compares the rate with and which side must hold.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class JudgedRate(BaseModel):
    """One judged figure: estimate, 95% interval, and the gate it must clear (None: reported)."""

    name: str
    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: Literal["wilson", "bootstrap"]
    successes: int | None = None
    n: int | None = None
    unit: Literal["rate", "ms"] = "rate"
    threshold: float | None = None
    direction: Literal["min", "max"] = "min"  # min: must be >= threshold; max: must be <=

    @classmethod
    def of(cls, interval: Any, threshold: float | None,
           direction: Literal["min", "max"] = "min") -> JudgedRate:
        """From an interval (any model with the Interval fields)."""
        return cls.model_validate({**interval.model_dump(), "threshold": threshold,
                                   "direction": direction})
