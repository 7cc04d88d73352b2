"""Live gate progress: evals report events, the display turns them into lines, runs show them."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from evals import progress
from evals.model_calls import map_bounded
from evals.progress import ProgressEvent
from gates.progress import Tail, TerminalScreen
from gates.progress_display import DONE, STARTING, Display, Update, duration
from tests.gate_runs import run_gates


class FakeScreen:
    """Records what the display wrote: permanent lines and live redraws."""

    width = 80

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lives: list[str] = []
        self.parks = 0

    def line(self, text: str) -> None:
        self.lines.append(text)

    def live(self, text: str) -> None:
        self.lives.append(text)

    def park(self) -> None:
        self.parks += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def update(phase: str, at: float, done: int = 0, total: int | None = None,
           passed: int | None = None, alias: str = "coder-chat", label: str = "") -> Update:
    return Update(alias=alias, gate="humaneval", phase=phase, done=done, total=total,
                  passed=passed, label=label, at=at)


def test_ci_lines_per_phase_and_every_n_items_not_per_item() -> None:
    clock, screen = Clock(), FakeScreen()
    display = Display(screen, live=False, every_items=10, clock=clock)
    display.handle(update(STARTING, 1000))
    assert screen.lines == []  # a test starting says nothing yet
    display.handle(update("deploying", 1001, label="waiting for ready"))
    display.handle(update("evaluating", 1030, total=20))
    for done in range(1, 21):
        display.handle(update("evaluating", 1030 + done, done=done, total=20))
    display.handle(update("scoring", 1051, total=20, passed=0))
    display.handle(update(DONE, 1060))
    assert screen.lines == [
        "modelgate coder-chat/humaneval: deploying (waiting for ready), 1s",
        "modelgate coder-chat/humaneval: evaluating 0/20, 30s",
        "modelgate coder-chat/humaneval: evaluating 10/20, 40s, ~10s left",
        "modelgate coder-chat/humaneval: evaluating 20/20, 50s",
        "modelgate coder-chat/humaneval: scoring 0/20, 0 passed, 51s",
        "modelgate coder-chat/humaneval: finished in 1m00s (last phase scoring 0/20, 0 passed)",
    ]
    assert screen.lives == []


def test_ci_heartbeat_every_30_seconds_while_a_phase_is_silent() -> None:
    clock, screen = Clock(), FakeScreen()
    display = Display(screen, live=False, every_s=30, clock=clock)
    display.handle(update("deploying", 1000))
    clock.now = 1029
    display.tick()
    assert len(screen.lines) == 1  # not yet 30 s since the phase line
    clock.now = 1031
    display.tick()
    clock.now = 1032
    display.tick()
    assert screen.lines[1:] == ["modelgate coder-chat/humaneval: deploying, 31s"]
    display.handle(update(DONE, 1040))
    clock.now = 2000
    display.tick()  # nothing running: no heartbeat
    assert len(screen.lines) == 3


def test_tty_rewrites_one_live_line_and_keeps_only_the_final_state() -> None:
    clock, screen = Clock(), FakeScreen()
    screen.width = 200
    display = Display(screen, live=True, redraw_s=0.0, clock=clock)
    display.handle(update("evaluating", 1000, total=4))
    display.handle(update("evaluating", 1001, total=4, done=1, alias="embeddings"))
    for done in range(1, 5):
        clock.now = 1000 + done
        display.handle(update("evaluating", clock.now, done=done, total=4))
    assert screen.lines == []  # every item redrew the live line; none became a permanent line
    assert len(screen.lives) >= 5
    last = screen.lives[-1]
    assert "coder-chat/humaneval: evaluating 4/4" in last and "embeddings/humaneval" in last
    assert " | " in last and last.count("modelgate") == 1  # two gates share the live line
    display.handle(update(DONE, 1005))
    assert screen.lines == ["modelgate coder-chat/humaneval: finished in 5s (last phase "
                            "evaluating 4/4)"]
    assert "coder-chat" not in screen.lives[-1]  # the finished gate left the live line


def test_live_line_never_wraps() -> None:
    screen = FakeScreen()
    screen.width = 40
    display = Display(screen, live=True, redraw_s=0.0, clock=Clock())
    display.handle(update("evaluating", 1000, total=164, done=3, label="humaneval: asking"))
    assert all(len(text) <= 39 for text in screen.lives) and screen.lives[-1].endswith("…")


def test_durations_read_short() -> None:
    assert [duration(s) for s in (0, 45, 65, 3725)] == ["0s", "45s", "1m05s", "1h02m"]


def test_map_bounded_reports_items_and_passes_to_the_installed_callback() -> None:
    events: list[ProgressEvent] = []
    with progress.reporting_to(events.append):
        out = map_bounded(lambda x: x * 2, range(5), concurrency=3, progress_label="doubling",
                          phase="scoring", passed=lambda y: y >= 4)
    assert out == [0, 2, 4, 6, 8]
    assert events[0] == ProgressEvent(phase="scoring", total=5, passed=0, label="doubling")
    assert [e.done for e in events[1:]] == [1, 2, 3, 4, 5]
    assert events[-1].passed == 3
    events.clear()
    map_bounded(lambda x: x, range(3))  # no callback installed: nobody hears
    assert events == []


def test_a_broken_callback_never_breaks_the_eval() -> None:
    def broken(event: ProgressEvent) -> None:
        raise RuntimeError("display gone")

    with progress.reporting_to(broken):
        assert map_bounded(lambda x: x + 1, [1, 2]) == [2, 3]


def test_counter_is_bound_where_made_and_counts_from_threads() -> None:
    events: list[ProgressEvent] = []
    with progress.reporting_to(events.append):
        count = progress.counter("evaluating", 40, passed=lambda r: r % 2 == 0)
    threads = [threading.Thread(target=lambda i=i: [count(i * 10 + j) for j in range(10)])
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.done for e in events[1:]) == list(range(1, 41))
    assert (count.done, count.passes) == (40, 20)


def test_tail_reads_new_complete_lines_only(tmp_path: Path) -> None:
    old = update("evaluating", 1, total=2)
    (tmp_path / "gw0.jsonl").write_text(old.model_dump_json() + "\n")  # an earlier run's
    tail = Tail(tmp_path)
    fresh = update("scoring", 2, total=2)
    with (tmp_path / "gw0.jsonl").open("a") as out:
        out.write(fresh.model_dump_json() + "\n" + '{"alias": "half')
    (tmp_path / "gw1.jsonl").write_text("not json\n" + fresh.model_dump_json() + "\n")
    assert tail.poll() == [fresh, fresh]
    with (tmp_path / "gw0.jsonl").open("a") as out:
        out.write('-written"}\n')  # the torn line completes as garbage: skipped
    assert tail.poll() == []


def test_terminal_screen_starts_below_pytests_line_and_redraws_in_place() -> None:
    stream = io.StringIO()
    reporter = SimpleNamespace(currentfspath="gates/x.py", _tw=SimpleNamespace(
        fullwidth=100, width_of_current_line=len("gates/x.py ")))
    screen = TerminalScreen(reporter, stream)
    screen.live("a")
    screen.live("b")
    screen.park()
    screen.line("done")
    assert stream.getvalue() == "\n\r\x1b[Ka\r\x1b[Kb\ndone\n"
    assert reporter.currentfspath is None  # pytest writes its path again before the result


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_control_run_shows_each_phase_of_the_alias(tmp_path: Path, workers: list[str]) -> None:
    run = run_gates("-m", "coder-chat or embeddings", "--control=known-good", *workers,
                    outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    lines = run.output.splitlines()

    def said(alias: str, phase: str) -> bool:
        return any(line.startswith(f"modelgate {alias}/") and f": {phase}" in line for line in lines)

    for phase in ("deploying", "route check", "evaluating", "scoring 20/20, 20 passed",
                  "finished in"):
        assert said("coder-chat", phase), (phase, run.output[-3000:])
    for phase in ("deploying", "evaluating 8/8, 8 passed", "budget check", "finished in"):
        assert said("embeddings", phase), (phase, run.output[-3000:])
    # No redraw per item in a log: 20 HumanEval items make a handful of lines.
    assert sum("coder-chat/" in line and "evaluating" in line for line in lines) <= 4
    assert "\x1b[K" not in run.output
    # Teardown (deleting the key, which reads its spend) is not reported as more gate work.
    assert sum(line.startswith("modelgate embeddings/") and "finished in" in line
               for line in lines) == 1
