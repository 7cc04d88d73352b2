"""Object storage of the Kubernetes API stand-in: patches, selectors, Status errors."""

from __future__ import annotations

import copy
import json
from typing import Any


class ApiError(Exception):
    """Becomes a `kind: Status` response, the shape the real API server sends."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def lookup(obj: dict[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _pairs(selector: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.replace("==", "=").partition("=")
        if not sep or "!" in key:
            raise ApiError(400, "BadRequest", f"unable to parse {what} {selector!r}: "
                           "the stand-in supports key=value terms only")
        pairs.append((key.strip(), value.strip()))
    return pairs


def matches(obj: dict[str, Any], label_selector: str | None, field_selector: str | None) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for key, value in _pairs(label_selector or "", "labelSelector"):
        if labels.get(key) != value:
            return False
    for key, value in _pairs(field_selector or "", "fieldSelector"):
        if str(lookup(obj, key) or "") != value:
            return False
    return True


Path = tuple[str, ...]


def leaves(obj: dict[str, Any]) -> dict[Path, Any]:
    """The owned leaves of an object: labels, annotations and spec; maps are walked, lists and
    scalars are leaves (real Kubernetes keys list items by merge key: coarser here, on purpose)."""
    out: dict[Path, Any] = {}

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, (*path, key))
        else:
            out[path] = node

    meta = obj.get("metadata") or {}
    for part in ("labels", "annotations"):
        if meta.get(part):
            walk(meta[part], ("metadata", part))
    if "spec" in obj:
        walk(obj["spec"], ("spec",))
    return out


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """Paths in the FieldsV1 shape (`{"f:spec": {"f:replicas": {}}}`)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return root


def from_fields_v1(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, value in fields.items():
        path = (*prefix, key[2:])
        if value:
            out |= from_fields_v1(value, path)
        else:
            out.add(path)
    return out


def dotted(path: Path) -> str:
    return "".join(f".{p}" for p in path)
