"""SIGTERM (a cancelled CI job) and SIGHUP unwind a gate run like Ctrl-C, so cleanup runs.

pytest turns KeyboardInterrupt into an orderly stop: fixtures are torn down (keys deleted,
deployments released, the embedded platform's processes ended) and the exit code is 2.
A signal's default action would kill the run on the spot instead, leaving all of that behind.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_PREVIOUS = pytest.StashKey[dict[int, object]]()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name}: stopping the run and cleaning up")


def install(config: pytest.Config) -> None:
    """Handle SIGTERM and SIGHUP as Ctrl-C for this run (main thread only, as signals need)."""
    if threading.current_thread() is not threading.main_thread() or _PREVIOUS in config.stash:
        return
    config.stash[_PREVIOUS] = {signum: signal.signal(signum, _interrupt) for signum in SIGNALS}


def uninstall(config: pytest.Config) -> None:
    previous = config.stash.get(_PREVIOUS, None)
    if previous is None or threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]
    del config.stash[_PREVIOUS]
