"""Validate an InferenceService against KServe's published CRD schema (openAPIV3Schema).

The kserve SDK cannot join this environment (it pins protobuf<7 and psutil<6, below what vLLM
installs here), and its generated models accept unknown keys anyway; the CRD schema is what the
API server itself checks. It is stored unchanged in data/ with its upstream version; validation
adds what `kubectl apply --validate=strict` adds: unknown fields are errors.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from deploy.k8s.errors import ManifestError

SCHEMA_FILE = Path(__file__).with_name("data") / "inferenceservice-v1beta1.json.gz"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _strict(node: Any) -> Any:
    """Close every object that lists its properties (the API server's Strict field validation)."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def schema_document() -> dict[str, Any]:
    with gzip.open(SCHEMA_FILE, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@cache
def _validator() -> jsonschema.Draft7Validator:
    schema = _strict(copy.deepcopy(schema_document()["openAPIV3Schema"]))
    # metadata is `type: object` in CRDs (the API server checks it); check what we emit.
    schema["properties"]["metadata"] = {
        "type": "object", "required": ["name", "namespace"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": _DNS_1035.pattern, "maxLength": 63},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return jsonschema.Draft7Validator(schema)


def validate_inference_service(manifest: dict[str, Any]) -> None:
    """Raise ManifestError listing every violation, each with its JSON path."""
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if manifest.get("apiVersion") != "serving.kserve.io/v1beta1" or \
            manifest.get("kind") != "InferenceService":
        raise ManifestError("not a serving.kserve.io/v1beta1 InferenceService")
    if errors:
        name = (manifest.get("metadata") or {}).get("name", "?")
        lines = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
                 for e in errors]
        raise ManifestError(f"InferenceService {name!r} does not match the KServe CRD schema "
                            f"({schema_document()['source'].split(',')[0]}): " + "; ".join(lines))
