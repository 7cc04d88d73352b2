"""Restore replica counts when the run is terminated (CI cancel sends SIGTERM, not Ctrl-C)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Protocol


class Closable(Protocol):
    def close(self) -> None: ...


def close_on_signals(
    deployer: Closable, signums: Iterable[int] = (signal.SIGTERM,)
) -> Callable[[], None]:
    """Install handlers that call `deployer.close()` and then raise KeyboardInterrupt, so the
    run unwinds as after Ctrl-C. Returns a function putting the previous handlers back.
    Only the main thread may install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        deployer.close()
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for signum in signums:
        previous[signum] = signal.signal(signum, handler)

    def uninstall() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return uninstall
