"""Nothing the suite starts outlives the run: interrupted at start-up, in a gate, in cleanup
(twice), by SIGTERM, or killed outright. The witnesses are the run's child processes and the
ports it listened on, taken while it was paused at the point, looked for after it ended."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from fixtures.platform import children
from tests.gate_runs import start_gates

GATE = ("-m", "coder-chat", "--control=known-good", "-p", "tests.interrupt_points")


@dataclass
class Snapshot:
    """The run's descendants (pid, start time, command) and its listening loopback ports."""

    processes: list[tuple[int, float, str]]
    ports: set[int]

    @classmethod
    def of(cls, pid: int) -> Snapshot:
        root = psutil.Process(pid)
        procs = root.children(recursive=True)
        ports = set()
        for proc in [root, *procs]:
            try:
                ports |= {c.laddr.port for c in proc.net_connections(kind="tcp")
                          if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                continue
        return cls([(p.pid, p.create_time(), " ".join(p.cmdline())) for p in procs], ports)

    def left_running(self) -> list[str]:
        left = []
        for pid, started, command in self.processes:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"pid {pid}: {command}")
            except psutil.NoSuchProcess:
                continue
        return left

    def still_listening(self) -> list[int]:
        open_ = []
        for port in self.ports:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    open_.append(port)
        return open_


def wait_for_mark(run: subprocess.Popen, mark: Path, content: str, outputs: Path,
                  timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not (mark.is_file() and mark.read_text() == content):
        if run.poll() is not None or time.monotonic() > deadline:
            run.kill()
            log = (outputs / "run.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the run never reached {content!r} (exit {run.poll()}):\n{log}")
        time.sleep(0.1)


def assert_nothing_left(before: Snapshot, outputs: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while (before.left_running() or before.still_listening()) and time.monotonic() < deadline:
        time.sleep(0.2)
    log = (outputs / "run.log").read_text(errors="replace")[-2000:]
    assert not before.left_running(), f"left running: {before.left_running()}\n{log}"
    assert not before.still_listening(), f"still listening: {before.still_listening()}\n{log}"


def interrupted_run(tmp_path: Path, point: str, *signals: tuple[str, int]) -> tuple[int, Snapshot]:
    """Run the gate paused at `point`; at each (mark, signal) send the signal; return the exit
    code and what the run had started before the first signal."""
    outputs, mark = tmp_path / "out", tmp_path / "mark"
    env = {**os.environ, "MODELGATE_TEST_PAUSE": point, "MODELGATE_TEST_PAUSE_MARK": str(mark)}
    run = start_gates(*GATE, outputs=outputs, env=env)
    try:
        snapshot = None
        for where, signum in signals:
            wait_for_mark(run, mark, where, outputs)
            snapshot = snapshot or Snapshot.of(run.pid)
            run.send_signal(signum)
        code = run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert snapshot is not None
    assert_nothing_left(snapshot, outputs)
    return code, snapshot


def gateway_double(snapshot: Snapshot) -> list[str]:
    return [command for _pid, _t, command in snapshot.processes if "fixtures.platform.gateway" in command]


def test_ctrl_c_during_startup_leaves_nothing(tmp_path: Path) -> None:
    code, before = interrupted_run(tmp_path, "startup", ("startup", signal.SIGINT))
    assert gateway_double(before), before  # the gateway double was starting when interrupted
    assert code == pytest.ExitCode.INTERRUPTED


def test_ctrl_c_during_a_gate_leaves_nothing(tmp_path: Path) -> None:
    code, before = interrupted_run(tmp_path, "gate", ("gate", signal.SIGINT))
    assert gateway_double(before) and before.ports  # gateway double and the control backend
    assert code == pytest.ExitCode.INTERRUPTED


def test_sigterm_from_ci_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    code, before = interrupted_run(tmp_path, "gate", ("gate", signal.SIGTERM))
    assert gateway_double(before)
    assert code == pytest.ExitCode.INTERRUPTED  # unwound as an interrupt, not killed outright
    assert "SIGTERM" in (tmp_path / "out" / "run.log").read_text()


def test_ctrl_c_twice_during_cleanup_leaves_nothing(tmp_path: Path) -> None:
    # The case: Ctrl-C while the session closes orphaned the listening gateway double.
    code, before = interrupted_run(
        tmp_path, "cleanup", ("cleanup-1", signal.SIGINT), ("cleanup-2", signal.SIGINT))
    assert gateway_double(before)
    # The HumanEval gate ran, so the sandbox's fork server was up as well.
    assert any("sandbox" in command for _pid, _t, command in before.processes), before
    assert code != 0


# ---- the primitives --------------------------------------------------------------------------

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"


def test_an_interrupted_stop_kills_the_group_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = children.spawn([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"  # ignores SIGTERM now
    real_wait = proc.wait

    def interrupted_wait(timeout=None):
        if timeout and timeout > 5:  # the grace period: the second Ctrl-C lands here
            raise KeyboardInterrupt
        return real_wait(timeout)

    monkeypatch.setattr(proc, "wait", interrupted_wait)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        children.stop_group(proc, grace_s=60)
    assert time.monotonic() - started < 10  # no grace period waited out
    assert proc.poll() is not None and not children.group_alive(proc)
    assert proc not in children.live()


def test_close_all_runs_every_step_when_one_is_interrupted() -> None:
    ran = []

    def interrupted() -> None:
        ran.append("interrupted")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        children.close_all(lambda: ran.append("first"), interrupted, lambda: ran.append("last"))
    assert ran == ["first", "interrupted", "last"]


PARENT = f"""
import subprocess, sys, time
from fixtures.platform import children
child = children.spawn([sys.executable, "-c", {STUBBORN!r}], stdout=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_child_dies_with_a_killed_parent(tmp_path: Path) -> None:
    # SIGKILL runs no cleanup at all: the parent-death signal is what ends the child.
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parent.parent)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait(10)
    child.wait(timeout=10)  # raises TimeoutExpired if the child outlived its parent
    assert not child.is_running()
