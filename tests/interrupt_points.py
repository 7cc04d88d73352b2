"""Test-only pytest plugin: pause a gate run at a named point, so a test can interrupt it there.

Loaded with `-p tests.interrupt_points`. `MODELGATE_TEST_PAUSE` names the point, and
`MODELGATE_TEST_PAUSE_MARK` a file the run writes (the point's name) when it gets there; the
run then sleeps, as a slow step would, until the test's signal interrupts it.

- startup: the gateway double is spawned and not yet answering
- gate: a gate test is running (platform up, backend deployed, key held)
- cleanup: the session is ending: unrouting the first alias ("cleanup-1"), then the platform's
  first stop step ("cleanup-2"), so a second Ctrl-C lands in the middle of cleanup
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest

POINT = os.environ.get("MODELGATE_TEST_PAUSE", "")


def pause(where: str) -> None:
    Path(os.environ["MODELGATE_TEST_PAUSE_MARK"]).write_text(where)
    time.sleep(120)  # interrupted by the test's signal


def pause_before(owner: type, name: str, where: str) -> None:
    original = getattr(owner, name)
    done = []

    @functools.wraps(original)
    def paused(*args, **kwargs):
        if not done:
            done.append(True)
            pause(where)
        return original(*args, **kwargs)

    setattr(owner, name, paused)


def pytest_configure(config: pytest.Config) -> None:
    from deploy.local import ControlDeployer
    from fixtures.platform.embedded import EmbeddedPlatform

    if POINT == "startup":
        pause_before(EmbeddedPlatform, "_wait_live", "startup")
    elif POINT == "cleanup":
        pause_before(ControlDeployer, "release", "cleanup-1")
        pause_before(EmbeddedPlatform, "stop_engines", "cleanup-2")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if POINT == "gate":
        pause("gate")
    return (yield)
