"""Tool loop: multi-turn tool-calling scenarios (the gate's set: SCENARIOS) against a chat
endpoint, and their judge.

The rest of the code imports from here; the `_x` modules are this package's own.
"""

from evals.tool_loop._judge import (
    ToolLoopVerdict,
    compare_modes,
    describe_kinds,
    failure_kind,
    failure_kinds,
    judge_tool_loops,
    results_table,
)
from evals.tool_loop._loop import (
    DEFAULT_SYSTEM,
    CallProblem,
    PlatformFailure,
    run_scenario,
    run_tool_loops,
    validate_call,
)
from evals.tool_loop._model import (
    ScenarioResult,
    ToolCallRecord,
    ToolError,
    ToolScenario,
    ToolSpec,
    all_of,
    expect_number,
    expect_text,
    numbers_in,
)
from evals.tool_loop._reply import Reply, ReplyCall, assemble_stream, reply_from_completion
from evals.tool_loop._scenarios import SCENARIOS, fresh_state, scenario

__all__ = [
    "DEFAULT_SYSTEM", "SCENARIOS", "CallProblem", "PlatformFailure", "Reply", "ReplyCall", "ScenarioResult",
    "ToolCallRecord", "ToolError", "ToolLoopVerdict", "ToolScenario", "ToolSpec", "all_of",
    "assemble_stream", "compare_modes", "describe_kinds", "expect_number", "expect_text",
    "failure_kind", "fresh_state", "failure_kinds", "judge_tool_loops", "numbers_in", "reply_from_completion",
    "results_table", "run_scenario", "run_tool_loops", "scenario", "validate_call",
]
