"""BFCL's own AST checker, imported without the package's model registry.

`bfcl_eval.eval_checker.ast_eval.ast_checker` imports `bfcl_eval.constants.model_config` only to
ask whether a model's function names had their dots replaced (`convert_func_name`); that module
imports every provider SDK BFCL supports. The checker is imported here with a one-entry registry
in its place, for the way this gate sends tools (BFCL's OpenAI function-calling style, dots
replaced by underscores, `underscore_to_dot=True`), and the real module name is released again
at once: the checker's code is BFCL's, unchanged.
"""

from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass
from functools import cache
from typing import Any

from evals.bfcl.data import bfcl_module

MODEL_NAME = "modelgate-openai-fc"  # no underscore: BFCL maps "_" to "/" in registry keys
_REGISTRY = "bfcl_eval.constants.model_config"
_lock = threading.Lock()


@dataclass(frozen=True)
class _FcModel:
    """The only field of BFCL's ModelConfig the checker reads."""

    underscore_to_dot: bool = True


@cache
def ast_module() -> types.ModuleType:
    """`bfcl_eval.eval_checker.ast_eval.ast_checker`, BFCL's code."""
    with _lock:
        name = "bfcl_eval.eval_checker.ast_eval.ast_checker"
        if name in sys.modules:
            return sys.modules[name]
        bfcl_module("constants.enums")  # the package is there (else one clear error line)
        registry = types.ModuleType(_REGISTRY)
        registry.MODEL_CONFIG_MAPPING = {MODEL_NAME: _FcModel()}  # type: ignore[attr-defined]
        previous = sys.modules.get(_REGISTRY)
        sys.modules[_REGISTRY] = registry
        try:
            return bfcl_module("eval_checker.ast_eval.ast_checker")
        finally:
            if previous is None:
                sys.modules.pop(_REGISTRY, None)
            else:
                sys.modules[_REGISTRY] = previous


def ast_check(category: str, functions: list[dict[str, Any]], decoded: list[dict[str, Any]],
              ground_truth: list[dict[str, Any]]) -> dict[str, Any]:
    """BFCL's verdict on decoded calls (`[{name: {param: value}}]`): `{"valid", "error", ...}`."""
    module = ast_module()
    language = bfcl_module("constants.enums").Language.PYTHON
    return module.ast_checker(functions, decoded, ground_truth, language, category, MODEL_NAME)
