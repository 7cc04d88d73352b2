"""Turning gate progress updates into terminal lines: a live line on a TTY, sparse lines in CI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

DONE = "done"  # the phase of an update that closes a gate test
PREFIX = "modelgate "  # what a progress line starts with
STARTING = "starting"  # a gate test began: its clock starts, nothing to say yet


class Update(BaseModel):
    """One progress event of one gate test, as it travels from a worker to the controller."""

    alias: str
    gate: str
    phase: str
    done: int = 0
    total: int | None = None
    passed: int | None = None
    label: str = ""
    at: float  # wall-clock seconds (time.time): workers and controller share the clock
    worker: str | None = None


class Screen(Protocol):
    """Where the display writes: whole lines, or one live line that is redrawn in place."""

    def line(self, text: str) -> None: ...  # a permanent line (replacing the live one)
    def live(self, text: str) -> None: ...
    def park(self) -> None: ...  # end the live line so other output starts on a fresh line
    @property
    def width(self) -> int: ...


@dataclass
class _Gate:
    """What the display knows of one running gate test."""

    started: float
    update: Update
    phase_started: float
    last_line_at: float = 0.0
    last_line_done: int = -1


def duration(seconds: float) -> str:
    """`45s`, `3m05s`, `1h02m`: short enough for a live line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class Display:
    """Folds updates into one state per running gate and says it on a `Screen`.

    live: one rewritten line shows every running gate (a TTY). Otherwise a line per phase
    change, per `every_items` finished items, and one after `every_s` seconds without a line
    (so a long deploy still shows a sign of life), never a line per redraw.
    """

    screen: Screen
    live: bool
    every_items: int = 10
    every_s: float = 30.0
    redraw_s: float = 0.25
    clock: Callable[[], float] = time.time
    _gates: dict[tuple[str, str], _Gate] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _drawn_at: float = 0.0

    def handle(self, update: Update) -> None:
        with self._lock:
            key = (update.alias, update.gate)
            held = self._gates.get(key)
            if update.phase == DONE:
                if held is not None:
                    self._gates.pop(key)
                    self._say(self.describe(held, update.at, final=True))
                if self.live:
                    self._redraw(force=True)
                return
            if held is None:
                held = self._gates[key] = _Gate(started=update.at, update=update,
                                                phase_started=update.at, last_line_at=update.at)
                changed = update.phase != STARTING
            else:
                changed = update.phase != held.update.phase
                if changed or update.done < held.update.done:  # a new count (FIM: 2nd transport)
                    held.phase_started, held.last_line_done = update.at, 0
                held.update = update
            if self.live:
                if update.phase != STARTING:  # pytest may still write the test's path
                    self._redraw(force=changed)
            elif changed or self._due(held, update):
                self._line(held, update.at)

    def tick(self) -> None:
        """Called about once a second: refresh elapsed times; in CI, a heartbeat line."""
        with self._lock:
            now = self.clock()
            if self.live:
                self._redraw(force=True)
                return
            for held in self._gates.values():
                if now - held.last_line_at >= self.every_s:
                    self._line(held, now)

    def park(self) -> None:
        """Other output is about to be written (a test's result): end the live line first."""
        with self._lock:
            if self.live:
                self.screen.park()

    def describe(self, held: _Gate, now: float, *, final: bool = False) -> str:
        """`coder-chat/humaneval: scoring 12/20, 9 passed, 1m05s, ~40s left`."""
        u = held.update
        head = f"{u.alias}/{u.gate}: "
        if final:
            tail = f"finished in {duration(now - held.started)}"
            if u.total or u.done:
                tail += f" (last phase {u.phase} {self._count(u)})"
            return head + tail
        parts = [u.phase + (f" ({u.label})" if u.label and not u.done and not u.total else "")]
        if u.total or u.done:
            parts[0] += f" {self._count(u)}"
        parts.append(duration(now - held.started))
        left = self._left(held, now)
        if left is not None:
            parts.append(f"~{duration(left)} left")
        return head + ", ".join(parts)

    @staticmethod
    def _count(u: Update) -> str:
        count = f"{u.done}/{u.total}" if u.total else f"{u.done}"
        return count + (f", {u.passed} passed" if u.passed is not None else "")

    @staticmethod
    def _left(held: _Gate, now: float) -> float | None:
        u = held.update
        if not u.total or not u.done or u.done >= u.total:
            return None
        return (now - held.phase_started) / u.done * (u.total - u.done)

    def _due(self, held: _Gate, update: Update) -> bool:
        if update.total and update.done >= update.total:
            return True
        return update.done - max(held.last_line_done, 0) >= self.every_items

    def _line(self, held: _Gate, now: float) -> None:
        held.last_line_at, held.last_line_done = now, held.update.done
        self._say(self.describe(held, now))

    def _say(self, text: str) -> None:
        self.screen.line(PREFIX + text)  # on a TTY it replaces the live line; a redraw follows

    def _redraw(self, *, force: bool) -> None:
        now = self.clock()
        if not self._gates or (not force and now - self._drawn_at < self.redraw_s):
            return
        self._drawn_at = now
        text = PREFIX + " | ".join(self.describe(held, now) for held in self._gates.values())
        width = max(20, self.screen.width - 1)
        self.screen.live(text if len(text) <= width else text[: width - 1] + "…")
