"""The FIM eval: score filled holes by running them, and judge a model's FIM.

Functional pass rate is the measure: `prefix + middle + suffix` runs against the HumanEval
task's tests in the sandbox. Exact match and edit similarity (difflib) are reported beside it.
Public API: `load_fim_cases`, `run_fim`, `compare_transports`, `score_fim`, `judge_fim`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from evals.fim._cases import FimCase, humaneval_problems, load_fim_cases, problem_for
from evals.fim._hygiene import mangled_reasons
from evals.fim._prompts import build_fim_prompt, family, request_stop_tokens, stop_tokens
from evals.fim._transport import (
    FimCallResult,
    FimRun,
    TransportComparison,
    compare_transports,
    run_fim,
)
from evals.intervals import Interval, wilson
from evals.model_calls import map_bounded

__all__ = [
    "FimCase", "FimCallResult", "FimRun", "FimCaseScore", "FimScore", "FimVerdict",
    "TransportComparison", "build_fim_prompt", "compare_transports", "family", "judge_fim",
    "load_fim_cases", "request_stop_tokens", "run_fim", "score_fim", "stop_tokens",
]

MANGLED_HINT = "an instruct model or a chat template in the path"


class CheckResult(Protocol):
    status: str  # "passed" | "failed" | "timeout" | "error"


# (problem, completion) -> result with `.status`: evals.sandbox.check_humaneval's signature.
Checker = Callable[[dict[str, Any], str], CheckResult]


def default_checker() -> Checker:
    from evals.sandbox import check_humaneval  # imported late: tests may inject another checker

    return check_humaneval


class FimCaseScore(BaseModel):
    case_id: str
    kind: str
    answered: bool
    functional: bool = False
    check_status: str | None = None  # the sandbox's status; None when nothing came back
    exact_match: bool = False
    edit_similarity: float = 0.0
    mangled: bool = False
    mangled_reasons: list[str] = []


class FimScore(BaseModel):
    label: str
    model: str
    cases: list[FimCaseScore]

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def answered(self) -> int:
        return sum(c.answered for c in self.cases)

    @property
    def functional(self) -> int:
        return sum(c.functional for c in self.cases)

    @property
    def mangled(self) -> int:
        return sum(c.mangled for c in self.cases)

    @property
    def exact(self) -> int:
        return sum(c.exact_match for c in self.cases)

    @property
    def mean_edit_similarity(self) -> float:
        answered = [c.edit_similarity for c in self.cases if c.answered]
        return sum(answered) / len(answered) if answered else 0.0


def _normalized(text: str) -> str:
    # Trailing spaces and blank lines at the end carry no meaning for an exact match.
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _score_one(case: FimCase, result: FimCallResult, checker: Checker,
               problems: Mapping[str, Mapping[str, Any]]) -> FimCaseScore:
    if not result.answered or result.middle is None:
        return FimCaseScore(case_id=case.case_id, kind=case.kind, answered=False)
    middle = result.middle
    reasons = mangled_reasons(middle, case.suffix)
    checked = checker(problem_for(case, problems), middle + case.suffix)
    return FimCaseScore(
        case_id=case.case_id, kind=case.kind, answered=True,
        functional=checked.status == "passed", check_status=checked.status,
        exact_match=_normalized(middle) == _normalized(case.middle),
        edit_similarity=round(difflib.SequenceMatcher(None, middle, case.middle).ratio(), 4),
        mangled=bool(reasons), mangled_reasons=reasons,
    )


def score_fim(
    run: FimRun,
    cases: Sequence[FimCase],
    *,
    checker: Checker | None = None,
    concurrency: int = 1,
) -> FimScore:
    """Execute each returned middle in place against its task's tests; hygiene and similarity beside.

    `checker` defaults to the code sandbox's `check_humaneval`; `concurrency` > 1 runs checks
    on that many threads (the checker must then be thread-safe).
    """
    by_id = {c.case_id: c for c in cases}
    missing = [r.case_id for r in run.results if r.case_id not in by_id]
    if missing:
        raise ValueError(f"run {run.label!r} has results for unknown cases: {', '.join(missing)}")
    checker = checker or default_checker()
    problems = humaneval_problems()
    scores = map_bounded(
        lambda r: _score_one(by_id[r.case_id], r, checker, problems),
        run.results, concurrency=concurrency, progress_label=f"FIM checks {run.label}",
        phase="scoring", passed=lambda score: score.functional,
    )
    return FimScore(label=run.label, model=run.model, cases=scores)


class FimVerdict(BaseModel):
    verdict: Literal["pass", "fail", "error"]
    reason: str
    status: str  # one line for the catalog's eval status
    functional: int
    mangled: int
    total: int
    # The functional and the mangled rate with their 95% Wilson intervals, in that order.
    intervals: list[Interval] = []


def _transport_words(comparison: TransportComparison | None, score: FimScore) -> str:
    if comparison is None:
        return f"({score.label})"
    return f"({comparison.direct_label} + {comparison.gateway_label})"


def judge_fim(
    results: FimScore,
    min_functional_rate: float,
    max_mangled_rate: float,
    *,
    comparison: TransportComparison | None = None,
) -> FimVerdict:
    """pass / fail / error for one scored run (and, when given, the transport comparison).

    ERROR when the platform did not answer every case; FAIL when the answers are wrong
    (functional rate below the gate), mangled too often, or the transports disagree on the model.
    """
    for name, value in (("min_functional_rate", min_functional_rate), ("max_mangled_rate", max_mangled_rate)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"judge_fim: {name} must be within 0..1, got {value}")
    score = results
    total = score.total
    if total == 0:
        raise ValueError(f"FIM run {score.label!r} has no cases to judge")
    functional_rate, mangled_rate = score.functional / total, score.mangled / total
    intervals = [wilson(score.functional, total, "functional rate"),
                 wilson(score.mangled, total, "mangled rate")]
    figures = f"functional {score.functional}/{total}"
    unanswered = total - score.answered
    reasons: list[str] = []
    verdict: Literal["pass", "fail", "error"] = "pass"
    if unanswered:
        reasons.append(f"{unanswered} of {total} requests unanswered")
    if comparison is not None and not comparison.both_answered:
        reasons.append(comparison.reason)
    if reasons:
        verdict = "error"
    else:
        if functional_rate < min_functional_rate:
            reasons.append(f"functional {functional_rate:.0%} < {min_functional_rate:.0%}")
        if mangled_rate > max_mangled_rate:
            reasons.append(f"mangled {score.mangled}/{total} ({mangled_rate:.0%} > "
                           f"{max_mangled_rate:.0%}): {MANGLED_HINT}")
        if comparison is not None and not comparison.same_served_model:
            reasons.append(comparison.reason)
        verdict = "fail" if reasons else "pass"
    code = "200" if verdict != "error" else "not answered"
    status = (f"FIM /v1/completions {code} {_transport_words(comparison, score)}, {figures} "
              f"{intervals[0].bracket()}")
    if score.mangled:
        status += f", mangled {score.mangled}/{total} {intervals[1].bracket()}"
    reason = "; ".join(reasons) or (
        f"{figures} >= {min_functional_rate:.0%}, mangled {score.mangled}/{total}, "
        f"exact {score.exact}/{total}, edit similarity {score.mean_edit_similarity:.2f}"
    )
    return FimVerdict(verdict=verdict, reason=reason, status=status, functional=score.functional,
                      mangled=score.mangled, total=total, intervals=intervals)
