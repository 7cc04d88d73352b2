"""Schemas of the tool-loop eval: scenarios (data + deterministic tools) and per-scenario results."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ToolError(Exception):
    """Raised by a tool implementation; the model sees `{"error": message}` and may recover."""


# A check gets the final answer and the scenario's state after the run; None means correct,
# otherwise a short description of what was expected.
Check = Callable[[str, Any], str | None]


class ToolSpec(BaseModel):
    """One tool offered to the model: its JSON schema and the deterministic implementation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    parameters: dict[str, Any]
    run: Callable[[Any, dict[str, Any]], Any] = Field(exclude=True, repr=False)

    @model_validator(mode="after")
    def _schema_is_valid(self) -> ToolSpec:
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as exc:
            raise ValueError(f"tool {self.name!r}: parameters are not a JSON schema: {exc.message}") from None
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a schema of type 'object'")
        return self

    def openai_tool(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolScenario(BaseModel):
    """A task, the tools offered for it, fresh state per run, and a check of the final answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    task: str = Field(min_length=1)
    tools: list[ToolSpec] = Field(min_length=1)
    make_state: Callable[[], Any] = Field(exclude=True, repr=False)
    check: Callable[[str, Any], str | None] = Field(exclude=True, repr=False)
    # How many valid tool calls a correct solution needs at least (0: the task needs no tool).
    min_tool_calls: int = Field(default=2, ge=0)
    # None: no upper bound; 0: any tool call is an unneeded one.
    max_tool_calls: int | None = Field(default=None, ge=0)
    # The task has independent lookups a capable agent issues in one step.
    parallel: bool = False
    system: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ToolScenario:
        names = [tool.name for tool in self.tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scenario {self.name!r}: tool names appear twice: {', '.join(dupes)}")
        if self.max_tool_calls is not None and self.max_tool_calls < self.min_tool_calls:
            raise ValueError(f"scenario {self.name!r}: max_tool_calls < min_tool_calls")
        if self.parallel and self.min_tool_calls < 2:
            raise ValueError(f"scenario {self.name!r}: a parallel scenario needs min_tool_calls >= 2")
        return self

    def tool(self, name: str) -> ToolSpec | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def execute(self, state: Any, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Run a validated call; returns (JSON text for the model, whether it is an error result)."""
        tool = self.tool(name)
        if tool is None:  # the driver validates first; this is a programming error
            raise KeyError(f"scenario {self.name!r} has no tool {name!r}")
        try:
            value = tool.run(state, arguments)
        except ToolError as exc:
            return json.dumps({"error": str(exc)}), True
        return json.dumps(value, sort_keys=True), False


class ToolCallRecord(BaseModel):
    """One tool call the model made, as received, and what the driver did with it."""

    step: int
    id: str
    name: str
    arguments: str
    valid: bool
    problem: str | None = None
    result: str | None = None
    tool_error: bool = False


class ScenarioResult(BaseModel):
    """The score of one scenario run; `reason` says why it did not pass."""

    scenario: str
    stream: bool
    completed: bool = False
    steps: int = 0
    calls: list[ToolCallRecord] = []
    calls_valid: bool = True
    max_parallel: int = 0
    answer: str | None = None
    answer_correct: bool = False
    passed: bool = False
    reason: str | None = None
    platform_error: str | None = None
    # One entry per model response: the gateway's x-litellm-response-cost, None when absent.
    costs: list[float | None] = []
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def invalid_calls(self) -> list[ToolCallRecord]:
        return [call for call in self.calls if not call.valid]

    @property
    def cost_usd(self) -> float:
        return sum(cost for cost in self.costs if cost is not None)

    @property
    def cost_reported(self) -> bool:
        """Whether every response carried a cost header (else the sum understates the spend)."""
        return all(cost is not None for cost in self.costs)

    @property
    def label(self) -> str:
        return f"{self.scenario} ({'stream' if self.stream else 'non-stream'})"


# --- check helpers the scenario data uses -------------------------------------------------

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def numbers_in(text: str) -> list[float]:
    """Every number written in the text; thousands separators are accepted."""
    found = []
    for match in _NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect_number(value: float, tolerance: float = 1e-6) -> Check:
    def check(answer: str, _state: Any) -> str | None:
        if any(abs(found - value) <= tolerance for found in numbers_in(answer)):
            return None
        return f"expected {value:g} in the answer, got {_clip(answer)!r}"

    return check


def expect_text(*needles: str) -> Check:
    """Every needle must appear in the answer (case-insensitive)."""

    def check(answer: str, _state: Any) -> str | None:
        missing = [n for n in needles if n.lower() not in answer.lower()]
        if not missing:
            return None
        return f"expected {', '.join(repr(n) for n in missing)} in the answer, got {_clip(answer)!r}"

    return check


def all_of(*checks: Check) -> Check:
    def check(answer: str, state: Any) -> str | None:
        for one in checks:
            problem = one(answer, state)
            if problem is not None:
                return problem
        return None

    return check
