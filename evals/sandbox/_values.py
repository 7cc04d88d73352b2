"""Plain data across the sandbox boundary: a typed JSON encoding of builtin values (stdlib only).

Only these exact types cross: None, bool, int, float, complex, str, bytes, list, tuple, set,
frozenset, dict. Types are kept (a tuple stays a tuple, True stays a bool, 1.0 stays a float).
JSON null/true/false/numbers/strings/arrays carry None, bool, int, float, str and list; every
other type is a one-key object: {"t": [...]} tuple, {"s": [...]} set, {"f": [...]} frozenset,
{"d": [[k, v], ...]} dict, {"b": "latin-1 text"} bytes, {"c": [re, im]} complex.

`decode` is what the trusted side runs on bytes written by untrusted code: it builds nothing but
the types above, and anything else (wrong shape, unknown tag, too deep, too large) raises
NotPlainData. `encode` runs on either side and refuses anything that is not plain data, subclasses
of builtins included (their `__eq__`, `__repr__` or `__iter__` could say anything).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64

_SCALARS = (type(None), bool, int, float, str)


class NotPlainData(ValueError):
    """A value (or its encoding) that is not plain data of builtin types."""


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _tagged(value: Any, depth: int) -> Any:
    kind = type(value)  # exact types only: isinstance would let subclasses through
    if kind in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH} levels")
    if kind is list:
        return [_tagged(v, depth + 1) for v in value]
    if kind is tuple:
        return {"t": [_tagged(v, depth + 1) for v in value]}
    if kind is set or kind is frozenset:
        return {"s" if kind is set else "f": [_tagged(v, depth + 1) for v in value]}
    if kind is dict:
        return {"d": [[_tagged(k, depth + 1), _tagged(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"b": value.decode("latin-1")}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    raise NotPlainData(f"a {_type_name(value)} is not plain data of a builtin type")


def encode(value: Any) -> bytes:
    """The typed JSON of `value`; NotPlainData if any part is not an exact builtin type."""
    try:
        return json.dumps(_tagged(value, 0), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except NotPlainData:
        raise
    except (ValueError, RecursionError) as exc:  # e.g. an int beyond the str-digits limit
        raise NotPlainData(f"cannot be encoded: {type(exc).__name__}: {exc}"[:200]) from None


def _plain(node: Any, depth: int) -> Any:
    kind = type(node)
    if kind in _SCALARS:
        return node
    if depth >= MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH} levels")
    if kind is list:
        return [_plain(v, depth + 1) for v in node]
    if kind is not dict or len(node) != 1:
        raise NotPlainData("malformed encoding")
    ((tag, body),) = node.items()
    if tag == "b" and type(body) is str:
        return body.encode("latin-1")
    if type(body) is not list:
        raise NotPlainData(f"malformed encoding under tag {tag!r}")
    if tag == "t":
        return tuple(_plain(v, depth + 1) for v in body)
    if tag == "s":
        return {_plain(v, depth + 1) for v in body}
    if tag == "f":
        return frozenset(_plain(v, depth + 1) for v in body)
    if tag == "d":
        pairs = [_plain(p, depth + 1) for p in body]
        if any(type(p) is not list or len(p) != 2 for p in pairs):
            raise NotPlainData("malformed dict encoding")
        return {k: v for k, v in pairs}
    if tag == "c" and len(body) == 2 and all(type(x) in (int, float) for x in body):
        return complex(body[0], body[1])
    raise NotPlainData(f"unknown tag {str(tag)[:20]!r}")


def decode(data: bytes) -> Any:
    """The value `data` encodes, built only from builtin types; NotPlainData for anything else."""
    try:
        return _plain(json.loads(data.decode("utf-8", "surrogatepass")), 0)
    except NotPlainData:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError, UnicodeError) as exc:
        # TypeError: an unhashable set member or dict key; ValueError: bad JSON or bad latin-1.
        raise NotPlainData(f"malformed encoding: {type(exc).__name__}: {exc}"[:200]) from None
