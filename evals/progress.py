"""Progress events an eval reports while it runs (the gates show them on the terminal).

An eval never imports the code that shows progress: whoever runs it installs a callback for
the current context with `reporting_to`, and the evals report phases and finished items to
whatever is installed (nothing, by default). A context variable rather than a parameter on
every runner: the runners are called from many gate plugins, and a callback threaded through
each of them would change every signature for a side channel.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Phase = Literal["deploying", "waiting for ready", "route check", "evaluating", "scoring",
                "budget check"]
T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """A phase started (done=0) or an item of it finished; `total` None: not known ahead."""

    phase: Phase
    done: int = 0
    total: int | None = None
    passed: int | None = None  # items that passed so far, where an item has a pass/fail
    label: str = ""  # what is being counted, e.g. "humaneval: asking"


ProgressCallback = Callable[[ProgressEvent], None]
_CALLBACK: ContextVar[ProgressCallback | None] = ContextVar("modelgate_progress", default=None)


@contextlib.contextmanager
def reporting_to(callback: ProgressCallback | None) -> Iterator[None]:
    """Send this context's progress events to `callback` (None: to nobody) while inside."""
    token = _CALLBACK.set(callback)
    try:
        yield
    finally:
        _CALLBACK.reset(token)


def current() -> ProgressCallback | None:
    """The callback installed for this context, if any (read it before handing work to threads:
    a pool's threads do not inherit the context)."""
    return _CALLBACK.get()


def emit(event: ProgressEvent, callback: ProgressCallback | None = None) -> None:
    """Report `event` to `callback`, else to this context's callback; never fails the eval."""
    target = callback or _CALLBACK.get()
    if target is None:
        return
    with contextlib.suppress(Exception):  # progress is a view: a broken one must not judge
        target(event)


def phase(name: Phase, total: int | None = None, label: str = "") -> None:
    """A new phase begins."""
    emit(ProgressEvent(phase=name, total=total, label=label))


class Counter:
    """Counts the finished items of one phase and reports each one (thread-safe)."""

    def __init__(self, name: Phase, total: int | None, label: str = "", *,
                 passed: Callable[[Any], bool] | None = None,
                 callback: ProgressCallback | None = None):
        self.name, self.total, self.label = name, total, label
        self._passed = passed
        self._callback = callback or _CALLBACK.get()  # bound now: items may finish on threads
        self._lock = threading.Lock()
        self.done = 0
        self.passes = 0
        emit(ProgressEvent(phase=name, total=total, passed=0 if passed else None, label=label),
             self._callback)

    def __call__(self, result: T) -> T:
        """Count `result` as finished and return it (so a call can be wrapped in place)."""
        with self._lock:
            self.done += 1
            if self._passed is not None:
                with contextlib.suppress(Exception):
                    self.passes += bool(self._passed(result))
            event = ProgressEvent(phase=self.name, done=self.done, total=self.total,
                                  passed=self.passes if self._passed else None, label=self.label)
        emit(event, self._callback)
        return result


def counter(name: Phase, total: int | None, label: str = "", *,
            passed: Callable[[Any], bool] | None = None) -> Counter:
    """A `Counter` reporting to this context's callback; `passed(result)` says if an item passed."""
    return Counter(name, total, label, passed=passed)
