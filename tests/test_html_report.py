"""report.html opened in a real headless Chromium: a known-bad control run of every gate, and a
hostile completion that must show as text and never run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from deploy.ledger import Counts, GateRecord, Ledger, Target
from gates.html_report import render_html_report, write_html_report
from gates.reports import GateOutcome, RunReport
from tests.gate_runs import run_gates

ALIASES = ("qwen-local", "coder-chat", "coder-fim", "coder-agent", "embeddings", "claude-haiku")
SECRET = "sk-" + "Zq7" * 12  # a whole key: only its abbreviation may ever show


# ---- the browser ---------------------------------------------------------------------------

def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no headless Chromium on this machine: `make setup` installs it "
                    "(scripts/install-browser.sh)")
    return found


def dump_dom(page: Path, profile: Path, *, fragment: str = "") -> str:
    """The DOM after load, as headless Chromium serializes it (scripts have run)."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--dump-dom", f"{page.resolve().as_uri()}{fragment}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """What the tests look at in a dumped DOM: the items, the overview rows, the SVG ids."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.items: list[dict] = []  # {"status", "hidden", "text"}
        self.overview: list[str] = []
        self.ids: set[str] = set()
        self.plots: list[str] = []
        self.meters: list[dict] = []
        self.attrs_of: dict[str, dict] = {}
        self.title = ""
        self._open: list[dict] = []
        self._details_depth: list[int] = []
        self._depth = 0
        self._row: list[str] | None = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
            self.attrs_of[attrs["id"]] = attrs
        if tag == "body":
            self.attrs_of["body"] = attrs
        if tag == "title":
            self._in_title = True
        if tag == "meter":
            self.meters.append(attrs)
        if tag == "figure" and "plot" in (attrs.get("class") or ""):
            self.plots.append(attrs.get("data-metric", ""))
        if tag == "tr" and self._row is None and not self._open:
            self._row = []
        if tag == "details":
            self._depth += 1
            if "item" in (attrs.get("class") or "").split():
                item = {"status": attrs.get("data-status"), "hidden": "hidden" in attrs, "text": []}
                self.items.append(item)
                self._open.append(item)
                self._details_depth.append(self._depth)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "tr" and self._row is not None:
            self.overview.append(" ".join(self._row))
            self._row = None
        if tag == "details":
            if self._details_depth and self._details_depth[-1] == self._depth:
                self._details_depth.pop()
                item = self._open.pop()
                item["text"] = "".join(item["text"])
            self._depth -= 1

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for item in self._open:
            item["text"].append(data)
        if self._row is not None:
            self._row.append(data.strip())


# ---- a known-bad control run of every gate -------------------------------------------------

@pytest.fixture(scope="module")
def control_run(tmp_path_factory) -> tuple[Path, RunReport, Path]:
    """One known-bad control run of all six gates (no vLLM); its report.html written the way
    the session end writes it: beside report.json."""
    outputs = tmp_path_factory.mktemp("known-bad")
    run = run_gates("-m", " or ".join(ALIASES), "--control", "known-bad", outputs=outputs)
    assert run.returncode == 1, run.output[-3000:]
    report_json = next((outputs / "build" / "runs").glob("*/report.json"))
    report = RunReport.model_validate_json(report_json.read_text())
    page = write_html_report(report, outputs / "ledger.jsonl", report_json.with_name("report.html"))
    return page, report, outputs


@pytest.fixture(scope="module")
def rendered(control_run, tmp_path_factory) -> Dom:
    page, _, _ = control_run
    return Dom(dump_dom(page, tmp_path_factory.mktemp("chromium")))


def test_the_page_is_one_offline_file(control_run) -> None:
    page, _, _ = control_run
    text = page.read_text()
    assert page.name == "report.html" and page.with_name("report.json").exists()
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=", text, re.I)  # nothing fetched
    assert "<style>" in text and "<script>" in text and "<svg" in text
    assert "Content-Security-Policy" in text
    assert 50_000 < len(text) < 2_000_000  # 6 gates' items and 3 plots, not megabytes


def test_chromium_shows_the_verdicts_of_every_gate(control_run, rendered: Dom) -> None:
    _, report, _ = control_run
    assert rendered.title.startswith(f"modelgate {report.run_id}: FAILED")
    rows = {row.split()[0]: row for row in rendered.overview[1:]}
    assert set(rows) == set(ALIASES)
    for alias, row in rows.items():
        assert " FAIL " in f" {row} ", (alias, row)  # every known-bad gate reads FAIL
    assert "HumanEval 0/20 = 0% [95% CI 0-16%] (≥70% gate)" in rows["coder-chat"]
    # The script ran under the page's CSP: the filter bar is shown and counts the items.
    assert rendered.attrs_of["body"].get("data-js") == "on"
    assert "hidden" not in rendered.attrs_of["filter"]


def test_every_gate_kind_lists_its_items_failed_first(control_run, rendered: Dom) -> None:
    _, report, outputs = control_run
    rows = 0
    for gate in report.gates:
        for record in gate.records:
            rows += len((outputs / record.details_file).read_text().splitlines())
    assert len(rendered.items) == rows  # every row of every details file is an item
    # The tool-loop gate's only passing scenario is after its failing ones.
    loop = [i for i in rendered.items if "(streamed)" in i["text"] or "(non-stream)" in i["text"]]
    assert loop[-1]["status"] == "pass" and "no_tool_needed" in loop[-1]["text"]
    assert {i["status"] for i in loop[:-2]} == {"fail"}
    dimension = next(i for i in rendered.items if i["text"].lstrip().startswith("FAIL dimension"))
    assert "dimension 767 != expected 768" in dimension["text"]
    fim = next(i for i in rendered.items if "HumanEval/76:single-line" in i["text"])
    assert "control token <|fim_middle|>" in fim["text"] and "<HOLE>" in fim["text"]


def test_a_failing_humaneval_item_shows_answer_code_and_reason(control_run, rendered: Dom) -> None:
    _, _, outputs = control_run
    ledger = Ledger(outputs / "ledger.jsonl").records()
    record = next(r for r in ledger if r.gate == "humaneval")
    row = json.loads((outputs / record.details_file).read_text().splitlines()[0])
    item = next(i for i in rendered.items if row["task_id"] + " " in i["text"][:80] and
                "sandbox status" in i["text"])
    assert item["status"] == "fail"
    for text in (row["reply"], row["code"], row["reason"], "def has_close_elements("):
        assert text in item["text"]
    assert f"{row['prompt_tokens']} → {row['completion_tokens']} tokens" in item["text"]


def test_latency_plots_are_svg_with_the_slo_line(rendered: Dom) -> None:
    assert rendered.plots == ["TTFT", "ITL", "E2E"]
    for metric in ("ttft", "itl", "e2e"):
        assert f"slo-{metric}" in rendered.ids and f"p95-{metric}" in rendered.ids


def test_the_keys_spend_is_shown_against_its_budget(control_run, rendered: Dom) -> None:
    _, _, outputs = control_run
    agent = next(r for r in Ledger(outputs / "ledger.jsonl").records() if r.gate == "tool_loop")
    spend = agent.extra["spend"]
    text = control_run[0].read_text()
    assert (f"<strong>gate key</strong>: spent {spend['key_spend_usd']:.6f} USD of a "
            f"{spend['max_budget_usd']:.6f} USD budget") in text
    # HumanEval's key (from the gateway's headers), the agent's key, the embeddings budget key.
    budgets = sorted(float(m["max"]) for m in rendered.meters)
    assert len(budgets) == 3 and budgets[0] < budgets[-1]
    assert "<strong>virtual key</strong>: spent" in text  # the FIM key: spend, no budget


def test_the_filter_works_in_the_browser(control_run, tmp_path: Path) -> None:
    page, _, _ = control_run
    failed_only = Dom(dump_dom(page, tmp_path / "a", fragment="#failed"))
    assert {i["status"] for i in failed_only.items if not i["hidden"]} <= {"fail", "error", "other"}
    assert any(i["status"] == "pass" and i["hidden"] for i in failed_only.items)
    found = Dom(dump_dom(page, tmp_path / "b", fragment="#q=no_tool_needed"))
    assert [i["status"] for i in found.items if not i["hidden"]] == ["pass", "pass"]


def test_without_script_every_item_is_listed(control_run) -> None:
    """The page as written is what a browser without script shows (headless Chromium cannot
    dump the DOM with script off): the filter bar hidden, every item there, none hidden."""
    page, _, _ = control_run
    dom = Dom(page.read_text())
    assert "data-js" not in dom.attrs_of["body"] and "hidden" in dom.attrs_of["filter"]
    assert dom.items and not any(i["hidden"] for i in dom.items)


# ---- hostile model output and odd rows -----------------------------------------------------

HOSTILE = ("<script>document.title='pwned'</script>"
           "<img src=x onerror=\"document.title='pwned too'\"></pre><b>bold</b>")


def _report(tmp_path: Path, rows: list, *, gate: str = "humaneval", details: bool = True) -> tuple[RunReport, Path]:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    record = GateRecord(
        run_id="run-1", alias="coder-chat", gate=gate, verdict="fail", metric="pass@1", value=0.0,
        threshold=0.7, counts=Counts(failed=1, total=1), summary="HumanEval 0/1 = 0% (≥70% gate)",
        reason=f"key {SECRET} leaked? no", started_at=moment, finished_at=moment, suite_revision="x",
        target=Target(platform="embedded", gateway_url="http://127.0.0.1:1", deployment="d",
                      model="m", served_model_name="s"),
    )
    if details:
        ledger.write_details(record, rows)
    ledger.append(record)
    report = RunReport(
        run_id="run-1", platform="embedded", started_at=moment, finished_at=moment, exit_status=1,
        passed=False, verdicts={"fail": 1}, statuses={}, ledger=str(ledger.path), catalog="c",
        table="t", gates=[GateOutcome(test="t::x", alias="coder-chat", outcome="failed",
                                      verdict="fail", records=[record])],
    )
    return report, ledger.path


def test_hostile_model_output_is_text_never_markup(tmp_path: Path) -> None:
    row = {"task_id": "HumanEval/0", "sample": 0, "reply": HOSTILE, "code": HOSTILE,
           "completion": HOSTILE, "status": "failed", "verdict": "failed", "reason": HOSTILE,
           "call": {"ok": True, "attempts": 1, "headers": {"authorization": f"Bearer {SECRET}"}},
           "prompt_tokens": 1, "completion_tokens": 2, "cost_usd": None}
    report, ledger = _report(tmp_path, [row])
    page = write_html_report(report, ledger, tmp_path / "report.html")
    text = page.read_text()
    assert "<script>document" not in text and "<img" not in text and "<b>bold" not in text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert SECRET not in text and "sk-..." in text  # keys only abbreviated
    dom = Dom(dump_dom(page, tmp_path / "chromium"))
    assert dom.title == "modelgate run-1: FAILED"  # neither the script nor the onerror ran
    item = dom.items[0]
    assert item["text"].count(HOSTILE) >= 3  # shown verbatim, as text


def test_unknown_rows_show_as_a_key_value_table(tmp_path: Path) -> None:
    rows = [{"widget": "w1", "outcome": "fail", "score": {"a": [1, 2]}, "note": "x" * 30_000},
            {"widget": "w2", "passed": True}, {"id": "seven", "status": "mystery"}]
    report, ledger = _report(tmp_path, rows, gate="new_gate")
    text = render_html_report(report, ledger)
    assert text.count('class="item"') == 3
    assert "<th>widget</th><td>w1</td>" in text and "&quot;a&quot;" in text
    assert "more characters in the details file" in text  # a huge field is clipped
    statuses = re.findall(r'class="item" data-status="(\w+)"', text)
    assert statuses == ["fail", "other", "pass"]  # failed first, unknown words kept apart


def test_a_missing_details_file_is_a_note_not_a_crash(tmp_path: Path) -> None:
    report, ledger = _report(tmp_path, [], details=False)
    report.gates[0].records[0].details_file = "ledger.details/gone.jsonl"
    text = render_html_report(report, ledger)
    assert "details file ledger.details/gone.jsonl not readable" in text
    assert "HumanEval 0/1 = 0% (≥70% gate)" in text


def test_a_gate_without_a_verdict_shows_pytests_message(tmp_path: Path) -> None:
    report, ledger = _report(tmp_path, [])
    broken = GateOutcome(test="gates/x/test_x.py::test_x", alias="embeddings", outcome="error",
                         verdict="error", message=f"setup broke: <b>{SECRET}</b>")
    report = report.model_copy(update={"gates": [*report.gates, broken]})
    text = render_html_report(report, ledger)
    assert text.count("no verdict recorded") == 1 and "No verdict recorded (error)." in text
    assert "setup broke: &lt;b&gt;sk-..." in text and SECRET not in text
