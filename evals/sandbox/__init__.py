"""Sandbox: runs untrusted completions against HumanEval-style checks in isolated processes.

The rest of the code imports from here. `_worker.py` is the fork server, started as a file by the
base interpreter (stdlib only); it loads `_judge` and `_values` without this package's imports.
"""

from evals.sandbox._judge import predicted_calls
from evals.sandbox._sandbox import (
    Limits,
    Sandbox,
    SandboxResult,
    SandboxUnavailable,
    candidate_program,
    check_humaneval,
    check_many,
    check_source,
    isolation_available,
    minimal_env,
)
from evals.sandbox._values import NotPlainData, decode, encode

__all__ = [
    "Limits", "NotPlainData", "Sandbox", "SandboxResult", "SandboxUnavailable",
    "candidate_program", "check_humaneval", "check_many", "check_source", "decode", "encode",
    "isolation_available", "minimal_env", "predicted_calls",
]
