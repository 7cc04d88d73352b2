"""Budget binding over an OpenAI client: does a key's `max_budget` stop it (CONTRACTS.md §1)?

Requests are sent with a key holding a tiny budget until the gateway refuses. LiteLLM checks
the budget BEFORE a call (spend >= max_budget is refused), so the request that crosses the
budget completes and the next one is refused with `error.type == "budget_exceeded"`. The refusal
is identified by that type alone: its status is 400 in old builds, 429 later and 422 by default
since v1.104.0 (and settable), so the status is recorded, never judged. Newer builds reserve a
worst-case cost first and shrink the reservation to what is left rather than refuse, so they
refuse at the same point; with fail-closed enforcement they may refuse one request earlier,
when the request's cost would not fit. The spend the gateway reports must be tokens times price.

Pure: the caller passes the client (holding the budgeted key), the prices and a callable that
reads the key's spend from the gateway; creating and deleting the key is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import openai
from pydantic import BaseModel, Field
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from evals import progress
from evals.checks import Outcome
from evals.model_calls import CallOutcome, RetryPolicy, embeddings, redact

BUDGET_TYPE = "budget_exceeded"
# Statuses LiteLLM builds have sent it with (informational: the type alone identifies it).
KNOWN_BUDGET_STATUSES = (400, 422, 429)
# About 40 tokens for BERT-style tokenizers: a tiny budget binds within a handful of requests.
BUDGET_PROBE = (
    "Budget probe: find the function that parses a configuration file, validates every field "
    "against the schema, and reports the first line that is wrong."
)
# Relative tolerance of "equal to rounding": the gateway sums per-request float costs too.
SPEND_REL_TOL = 1e-6
SPEND_ABS_TOL = 1e-12


class BudgetRequest(BaseModel):
    """One request of the loop, as sent and as answered."""

    index: int
    outcome: Literal["answered", "refused", "error"]
    status: int | None = None
    error_type: str | None = None
    message: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0  # tokens times the given prices
    spend_before: float = 0.0  # the sum of the costs of the answered requests before this one
    reported_cost: float | None = None  # x-litellm-response-cost
    reported_spend: float | None = None  # x-litellm-key-spend


class BudgetBinding(BaseModel):
    """The verdict of the loop with what it saw; `problems` lists every broken promise."""

    outcome: Outcome
    reason: str
    max_budget: float
    answered: int
    refusal_status: int | None
    over_budget_answers: int  # answered requests that ended at or past the budget
    expected_spend: float
    reported_spend: float | None
    problems: list[str] = Field(default_factory=list)
    requests: list[BudgetRequest] = Field(default_factory=list)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SPEND_REL_TOL, abs_tol=SPEND_ABS_TOL)


def _header_float(outcome: CallOutcome, name: str) -> float | None:
    try:
        return float(outcome.headers[name])
    except (KeyError, ValueError):
        return None


def _answered(index: int, outcome: CallOutcome, spent: float, input_price: float,
              output_price: float) -> BudgetRequest:
    usage = outcome.value.usage
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return BudgetRequest(
        index=index, outcome="answered", status=outcome.status, prompt_tokens=prompt,
        completion_tokens=completion, cost=prompt * input_price + completion * output_price,
        spend_before=spent, reported_cost=_header_float(outcome, "x-litellm-response-cost"),
        reported_spend=_header_float(outcome, "x-litellm-key-spend"),
    )


def _read_spend(read_spend: Callable[[], float], expected: float, timeout_s: float,
                interval_s: float) -> tuple[float | None, str]:
    """Poll until the reported spend reaches `expected` (LiteLLM writes spend in batches)."""
    floor = expected - max(SPEND_ABS_TOL, SPEND_REL_TOL * expected)
    retrying = Retrying(retry=retry_if_result(lambda spend: spend < floor),
                        stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s))
    try:
        return float(retrying(read_spend)), ""
    except RetryError as exc:
        return float(exc.last_attempt.result()), ""
    except Exception as exc:  # the reader is the caller's (an admin API call): report, do not crash
        return None, redact(f"{type(exc).__name__}: {exc}")


def run_budget_binding(
    client: openai.OpenAI,
    model: str,
    *,
    max_budget: float,
    input_cost_per_token: float,
    read_spend: Callable[[], float],
    output_cost_per_token: float = 0.0,
    text: str = BUDGET_PROBE,
    max_requests: int = 200,
    allowed_over_budget: int = 1,
    spend_timeout_s: float = 30.0,
    spend_interval_s: float = 0.25,
    policy: RetryPolicy | None = None,
) -> BudgetBinding:
    """Embedding requests with `client`'s budgeted key until refused; judge what happened.

    Passes when: a refusal comes with type `budget_exceeded` (any status; it is recorded); at most
    `allowed_over_budget` answered requests ended at or past the budget (1: the crossing one);
    no refusal came while the budget still had room for the request; every answer's
    `x-litellm-response-cost` (when sent) and the key's final spend equal tokens times price.
    The loop is bounded: `max_requests`, and a gateway still answering well past the budget is
    stopped after `allowed_over_budget + 2` such answers.
    """
    if max_budget <= 0:
        raise ValueError(f"max_budget must be > 0 USD, got {max_budget!r}")
    if input_cost_per_token < 0 or output_cost_per_token < 0:
        raise ValueError("token prices must be >= 0")
    requests: list[BudgetRequest] = []
    problems: list[str] = []
    spent = 0.0
    refusal: BudgetRequest | None = None
    platform_error: BudgetRequest | None = None
    over = 0
    stopped = False  # the loop found a fault that makes going on pointless
    count = progress.counter("budget check", None, "requests until the budget refuses")
    for index in range(max_requests):
        outcome = count(embeddings(client, model, text, policy=policy))
        if outcome.ok:
            request = _answered(index, outcome, spent, input_cost_per_token, output_cost_per_token)
            requests.append(request)
            spent += request.cost
            if request.prompt_tokens <= 0:
                problems.append(f"request {index} was answered without usage.prompt_tokens: "
                                "the gateway cannot charge it")
                stopped = True
                break
            if request.cost <= 0:
                problems.append(f"request {index} costs 0 at the given prices: a budget can never bind")
                stopped = True
                break
            if spent >= max_budget:
                over += 1
                if over > allowed_over_budget + 2:
                    break  # clearly never refusing: stop spending
            continue
        # A refusal is an HTTP refusal (any 4xx, 429 included) or LiteLLM's budget type; a
        # malformed 200 (status 200) is a platform error, never the budget binding.
        refused = outcome.error_type == BUDGET_TYPE or outcome.error_kind in ("http_4xx", "http_429")
        request = BudgetRequest(
            index=index, outcome="refused" if refused else "error",
            status=outcome.status, error_type=outcome.error_type, message=outcome.message[:300],
            spend_before=spent,
        )
        requests.append(request)
        if request.outcome == "refused":
            refusal = request
        else:
            platform_error = request
        break

    answered = [r for r in requests if r.outcome == "answered"]
    if platform_error is not None:
        problems.append(f"request {platform_error.index} got no answer: {platform_error.message}")
    elif refusal is None and not stopped:
        problems.append(
            f"never refused: {len(answered)} requests answered, spend {spent:.3g} USD against a "
            f"budget of {max_budget:.3g} USD" + (f" ({over} at or past it)" if over else "")
        )
    elif refusal is not None:
        if refusal.error_type != BUDGET_TYPE:
            problems.append(f"refused with {refusal.status} [{refusal.error_type}] instead of "
                            f"{BUDGET_TYPE}: {refusal.message}")
        largest = max((r.cost for r in answered), default=0.0)
        if not answered or spent + largest < max_budget * (1 - SPEND_REL_TOL):
            problems.append(f"refused at spend {spent:.3g} USD although the budget "
                            f"{max_budget:.3g} USD still had room for the request")
        if over > allowed_over_budget:
            problems.append(f"{over} requests completed at or past the budget before the refusal "
                            f"(at most {allowed_over_budget}: the check must come before the call)")
    for request in answered:
        if request.reported_cost is not None and not _close(request.reported_cost, request.cost):
            problems.append(
                f"request {request.index}: x-litellm-response-cost {request.reported_cost:.6g} for "
                f"{request.prompt_tokens}+{request.completion_tokens} tokens, expected {request.cost:.6g}"
            )
            break

    reported, read_error = None, ""
    if platform_error is None and answered:
        reported, read_error = _read_spend(read_spend, spent, spend_timeout_s, spend_interval_s)
        if read_error:
            problems.append(f"could not read the key's spend: {read_error}")
        elif reported is not None and not _close(reported, spent):
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in answered)
            problems.append(f"the gateway reports spend {reported:.6g} USD, but {tokens} tokens at the "
                            f"given prices cost {spent:.6g} USD")

    # ERROR: the platform did not answer (a request, or the spend read); FAIL: it answered wrongly.
    verdict: Outcome = ("error" if platform_error is not None or read_error
                        else "fail" if problems else "pass")
    if problems:
        reason = "; ".join(problems)
    else:
        assert refusal is not None
        tokens = sum(r.prompt_tokens for r in answered)
        reason = (f"refused with {refusal.status} {BUDGET_TYPE} after {len(answered)} answered "
                  f"requests ({tokens} tokens, spend {spent:.3g} of {max_budget:.3g} USD); "
                  "reported spend = tokens x price")
    return BudgetBinding(
        outcome=verdict, reason=reason, max_budget=max_budget, answered=len(answered),
        refusal_status=refusal.status if refusal else None, over_budget_answers=over,
        expected_spend=spent, reported_spend=reported, problems=problems, requests=requests,
    )
