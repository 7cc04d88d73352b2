"""FIM (fill-in-the-middle): cases, prompts per model family, transport, hygiene and scoring.

The rest of the code imports from here; the `_x` modules are this package's own.
"""

from evals.fim._cases import FimCase, FimCaseFile, humaneval_problems, load_fim_cases
from evals.fim._gate import FimCaseScore, FimScore, FimVerdict, judge_fim, score_fim
from evals.fim._hygiene import control_tokens_in, mangled_reasons, runs_past_suffix, suffix_probe
from evals.fim._prompts import (
    ALL_CONTROL_TOKENS,
    FAMILIES,
    MAX_STOP_STRINGS,
    FimFamily,
    RepoFile,
    build_fim_prompt,
    family,
    request_stop_tokens,
    stop_tokens,
)
from evals.fim._transport import (
    FimCallResult,
    FimRun,
    TransportComparison,
    compare_transports,
    run_fim,
)

__all__ = [
    "ALL_CONTROL_TOKENS", "control_tokens_in", "suffix_probe",
    "FAMILIES", "MAX_STOP_STRINGS", "FimCallResult", "FimCase", "FimCaseFile", "FimCaseScore",
    "FimFamily", "FimRun", "FimScore", "FimVerdict", "RepoFile", "TransportComparison",
    "build_fim_prompt", "compare_transports", "family", "humaneval_problems", "judge_fim",
    "load_fim_cases", "mangled_reasons", "request_stop_tokens", "run_fim", "runs_past_suffix",
    "score_fim", "stop_tokens",
]
