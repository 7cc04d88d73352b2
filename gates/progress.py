"""The progress plugin: what each gate is doing, live on the terminal, also under capture and -n.

Evals report phases and finished items through `evals.progress` (a context-scoped callback);
this plugin installs that callback around every gate test and shows the updates.

- Capture: pytest redirects file descriptor 1 into a temporary file while a test runs, so a
  write through the terminal reporter from inside a test (or from a timer thread) is swallowed.
  The plugin writes to its own duplicate of the terminal's descriptor, taken at configure time
  (capture is suspended then); capture never touches that descriptor, and no thread has to
  toggle pytest's capture state (which is not thread-safe).
- xdist: a worker's only live channel to the controller is xdist's own event set (test
  reports, warnings, logging), and `workeroutput` arrives only when the worker ends. So each
  worker appends its updates as JSON lines to `<run folder>/progress/<worker id>.jsonl`, and
  the controller tails that folder in a thread. Files need no xdist internals, survive any
  worker crash, and leave a record of how long each phase took.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from evals.progress import ProgressEvent, reporting_to
from gates import parallel
from gates.progress_display import DONE, STARTING, Display, Update

PROGRESS_KEY = pytest.StashKey["ProgressPlugin"]()
FOLDER = "progress"  # under the run folder: one JSON-lines file per xdist worker
POLL_S = 0.5


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("modelgate").addoption(
        "--modelgate-progress", choices=["auto", "live", "lines", "off"], default="auto",
        help="progress of each gate: a live line (a terminal), a line per phase and every few "
        "items or 30 s (CI logs), or none. auto: live on a terminal, lines otherwise",
    )


class TerminalScreen:
    """Writes to a duplicate of the terminal's descriptor, keeping pytest's own line intact."""

    def __init__(self, reporter, stream: IO[str]):
        self.reporter, self.stream = reporter, stream
        self._live = False
        self._seen_width = 0  # pytest's current-line width after our last line break

    @property
    def width(self) -> int:
        return int(getattr(self.reporter._tw, "fullwidth", 80))

    def _fresh_line(self) -> None:
        """Start below whatever pytest left on its current line (a path and dots)."""
        width = getattr(self.reporter._tw, "width_of_current_line", 0)
        if self.reporter.currentfspath or (width and width != self._seen_width):
            self.stream.write("\n")
            self.reporter.currentfspath = None  # pytest repeats the path on its next result
        self._seen_width = width

    def line(self, text: str) -> None:
        if not self._live:
            self._fresh_line()
        self.stream.write(("\r\x1b[K" if self._live else "") + text + "\n")
        self._live = False
        self.stream.flush()

    def live(self, text: str) -> None:
        if not self._live:
            self._fresh_line()
        self.stream.write("\r\x1b[K" + text)
        self._live = True
        self.stream.flush()

    def park(self) -> None:
        if self._live:
            self.stream.write("\n")
            self.stream.flush()
            self._live = False
            self._seen_width = getattr(self.reporter._tw, "width_of_current_line", 0)


class FileForward:
    """A worker's updates, appended as JSON lines for the controller to tail."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def handle(self, update: Update) -> None:
        line = update.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)


class Tail:
    """New complete lines of the workers' files since the run started."""

    def __init__(self, folder: Path):
        self.folder = folder
        # A resumed run reuses its run folder: what the interrupted run wrote is history.
        self.offsets = {path: path.stat().st_size for path in self._files()}

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def poll(self) -> list[Update]:
        updates = []
        for path in self._files():
            with path.open("rb") as handle:
                handle.seek(self.offsets.get(path, 0))
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for its end
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            for raw in complete.splitlines():
                with contextlib.suppress(ValueError):  # a torn line is skipped, not fatal
                    updates.append(Update.model_validate_json(raw))
        return updates


class ProgressPlugin:
    """Installs the progress callback around gate tests; on the controller, shows updates."""

    def __init__(self, config: pytest.Config, display: Display | None, forward: FileForward | None,
                 tail: Tail | None, stream: IO[str] | None):
        self.config, self.display, self.forward, self.tail = config, display, forward, tail
        self.stream = stream
        self._stop = threading.Event()
        self._finished_items: set[str] = set()  # gate tests whose call is over
        self._thread: threading.Thread | None = None
        if display is not None:
            self._thread = threading.Thread(target=self._run, name="modelgate-progress", daemon=True)
            self._thread.start()

    def send(self, update: Update) -> None:
        if self.forward is not None:
            self.forward.handle(update)
        elif self.display is not None:
            self.display.handle(update)

    def _run(self) -> None:
        assert self.display is not None
        last_tick = 0.0
        while not self._stop.wait(POLL_S):
            with contextlib.suppress(Exception):  # a view must never end the run
                self._drain()
                if time.monotonic() - last_tick >= 1.0:
                    last_tick = time.monotonic()
                    self.display.tick()

    def _drain(self) -> None:
        if self.tail is not None and self.display is not None:
            for update in self.tail.poll():
                self.display.handle(update)

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            with contextlib.suppress(Exception):
                self._drain()  # what the workers said last
            if self.display is not None:
                self.display.park()
        if self.stream is not None:
            with contextlib.suppress(OSError):
                self.stream.close()
            self.stream = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        from gates.core import item_alias

        alias = item_alias(item.config, item)
        if alias is None:
            return (yield)
        gate = gate_name(item)
        worker = parallel.worker_id(item.config)

        def callback(event: ProgressEvent) -> None:
            if item.nodeid in self._finished_items:
                return  # teardown (deleting the key, reading its spend) is not the gate's work
            self.send(Update(alias=alias, gate=gate, phase=event.phase, done=event.done,
                             total=event.total, passed=event.passed, label=event.label,
                             at=time.time(), worker=worker))

        self.send(Update(alias=alias, gate=gate, phase=STARTING, at=time.time(), worker=worker))
        try:
            with reporting_to(callback):
                return (yield)
        finally:  # a test whose setup failed never reached the call
            self._finished(item)
            self._finished_items.discard(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        try:
            return (yield)
        finally:  # the gate's work is done: say so before pytest writes its result
            self._finished(item)

    def _finished(self, item: pytest.Item) -> None:
        from gates.core import item_alias

        alias = item_alias(item.config, item)
        if alias is not None and item.nodeid not in self._finished_items:
            self._finished_items.add(item.nodeid)
            self.send(Update(alias=alias, gate=gate_name(item), phase=DONE, at=time.time(),
                             worker=parallel.worker_id(item.config)))

    # The controller's own output (a test's result) starts on a line of its own.
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self) -> None:
        if self.display is not None:
            self.display.park()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A setup or teardown that passed prints nothing: the live line may stay.
        if self.display is not None and (report.when == "call" or not report.passed):
            self.display.park()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.stop()  # before the verdict table

    def pytest_unconfigure(self) -> None:
        self.stop()


def gate_name(item: pytest.Item) -> str:
    """A short name for a gate test: its parameter id, else its name without `test_`."""
    name = item.name
    if "[" in name and name.endswith("]"):
        name = name[name.index("[") + 1 : -1]
    name = name.removeprefix("test_")
    return name if len(name) <= 24 else name[:23] + "…"  # the live line holds several


def _terminal_stream() -> IO[str] | None:
    """A line-buffered duplicate of stdout's descriptor (capture is suspended at configure)."""
    try:
        fd = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return None  # no real descriptor (an in-process pytester run): no live progress
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")


@pytest.hookimpl(trylast=True)  # after the core plugin made the run's state
def pytest_configure(config: pytest.Config) -> None:
    from gates.core import RUN_KEY

    mode = config.getoption("--modelgate-progress", "auto")
    state = config.stash.get(RUN_KEY, None)
    if mode == "off" or state is None or config.getoption("collectonly"):
        return
    folder = state.run_folder / FOLDER
    if parallel.is_worker(config):
        forward = FileForward(folder / f"{parallel.worker_id(config)}.jsonl")
        plugin = ProgressPlugin(config, None, forward, None, None)
    else:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        stream = _terminal_stream() if reporter is not None else None
        if stream is None:
            return
        live = mode == "live" or (mode == "auto" and stream.isatty())
        display = Display(TerminalScreen(reporter, stream), live=live)
        tail = Tail(folder) if _distributed(config) else None
        plugin = ProgressPlugin(config, display, None, tail, stream)
    config.stash[PROGRESS_KEY] = plugin
    config.pluginmanager.register(plugin, "modelgate-progress")


def _distributed(config: pytest.Config) -> bool:
    """Whether xdist workers run the tests (`-n N` with N > 0)."""
    return bool(getattr(config.option, "numprocesses", None)) and \
        getattr(config.option, "dist", "no") != "no"
