"""Reading a JSON fixture file into its pydantic model, naming the file when it is not one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def read_json_model(path: str | Path, model: type[M], what: str) -> M:
    """`model` validated from the JSON file at `path`; ValueError "<path>: not a valid <what>: …"."""
    path = Path(path)
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"{path}: not a valid {what}: {exc}") from exc
