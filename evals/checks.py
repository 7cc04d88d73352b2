"""One result shape for the named checks that gates combine (embeddings, usage)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Outcome = Literal["pass", "fail", "error"]


class CheckResult(BaseModel):
    """A named check: pass, fail (the model answered wrongly) or error (no answer)."""

    name: str
    outcome: Outcome
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def check_items(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """{check name: passed} from CheckResult rows; checks that erred (no answer) are left out."""
    return {row["name"]: row["outcome"] == "pass" for row in rows if row.get("outcome") != "error"}
