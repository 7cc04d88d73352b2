"""Where derived SLOs are kept: the catalog (for aliases still "to be derived") and the embedded
platform's CPU profile (a build file, never committed).

Both writes are ruamel round-trips (comments and key order stay) and atomic (temporary file and
rename), and both validate what they are about to write.
"""

from __future__ import annotations

import io
import os
import platform
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from deploy.catalog import SLO, Catalog, atomic_write_text, round_trip_yaml

CPU_PROFILE_FILE = Path("embedded") / "slo-cpu.yaml"  # under the build folder
_SLO_KEYS = ("state", "ttft_p95_ms", "itl_p95_ms", "e2e_p95_ms", "max_output_tokens", "source",
             "derived_from_run", "headroom")
_PROFILE_HEADER = (
    "CPU SLO profile of the embedded platform, derived by the suite on this machine.\n"
    "Targets for vLLM on the CPU with the stand-in weights: they say nothing about the GPU the\n"
    "catalog's SLOs are for. A build file: never commit it. Delete it to derive again.\n"
)


class SLOStoreError(ValueError):
    """A profile or catalog that cannot be read or written; the message names the file."""


class CPUProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = "embedded-cpu"
    hardware: str = ""
    aliases: dict[str, SLO] = {}


def cpu_profile_path(build_dir: str | os.PathLike[str]) -> Path:
    return Path(build_dir) / CPU_PROFILE_FILE


def hardware_label() -> str:
    """What the CPU profile was measured on, e.g. "Intel(R) Xeon(R) ... x 2 CPUs (x86_64)"."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or 'unknown CPU'} x {os.cpu_count()} CPUs ({platform.machine()})"


def _load(path: Path) -> object:
    try:
        return round_trip_yaml().load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SLOStoreError(f"{path}: cannot read: {exc.strerror}") from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SLOStoreError(f"{where}: not valid YAML: {exc.problem}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"field '{'.'.join(str(p) for p in err['loc']) or '(top)'}': {err['msg']}" for err in exc.errors()
    )


def _dump(doc: object) -> str:
    out = io.StringIO()
    round_trip_yaml().dump(doc, out)
    return out.getvalue()


def slo_map(slo: SLO) -> CommentedMap:
    """The SLO as a block mapping in the catalog's key order, without unset fields."""
    data = slo.model_dump(exclude_none=True)
    # 250.0 reads as 250 in a hand-kept file.
    data = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in data.items()}
    return CommentedMap((key, data[key]) for key in _SLO_KEYS if key in data)


def load_cpu_profile(path: str | os.PathLike[str]) -> CPUProfile:
    """The CPU profile at `path`; an empty one when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return CPUProfile()
    doc = _load(path)
    try:
        return CPUProfile.model_validate(doc or {})
    except ValidationError as exc:
        raise SLOStoreError(f"{path}: {_problems(exc)}") from exc


def write_cpu_profile_slo(path: str | os.PathLike[str], alias: str, slo: SLO, *, hardware: str) -> CPUProfile:
    """Set (or replace) `alias`'s derived SLO in the CPU profile, keeping everything else."""
    path = Path(path)
    if path.exists():
        doc = _load(path) or CommentedMap()
    else:
        doc = CommentedMap()
        doc.yaml_set_start_comment(_PROFILE_HEADER)
    if not isinstance(doc, CommentedMap):
        raise SLOStoreError(f"{path}: a CPU profile is a mapping with 'aliases'")
    doc.setdefault("profile", "embedded-cpu")
    doc["hardware"] = hardware
    aliases = doc.setdefault("aliases", CommentedMap())
    aliases[alias] = slo_map(slo)
    text = _dump(doc)
    try:
        profile = CPUProfile.model_validate(YAML(typ="safe").load(text))
    except ValidationError as exc:  # never write a profile the gate could not read back
        raise SLOStoreError(f"{path}: refusing to write an invalid profile: {_problems(exc)}") from exc
    atomic_write_text(path, text)
    return profile


def write_catalog_slo(
    source: str | os.PathLike[str], alias: str, slo: SLO, *, target: str | os.PathLike[str] | None = None
) -> None:
    """Write a derived SLO into the catalog for an alias whose SLO is still "to be derived".

    A measured or already derived SLO is never overwritten: replacing a target is a decision for
    a person, made by editing the catalog. Writes to `target` (default: `source`).
    """
    source = Path(source)
    doc = _load(source)
    items = doc.get("aliases") if isinstance(doc, CommentedMap) else None
    item = next((i for i in items or [] if isinstance(i, dict) and i.get("alias") == alias), None)
    if item is None:
        raise SLOStoreError(f"{source}: no alias {alias!r} in the catalog")
    current = item.get("slo") or {}
    state = current.get("state")
    if state != "to be derived":
        line = item.lc.key("slo")[0] + 1 if "slo" in item else item.lc.line + 1
        raise SLOStoreError(
            f"{source}:{line}: alias {alias!r} has slo.state {state!r}, not 'to be derived': "
            "a derivation never replaces targets (edit the catalog by hand to re-derive)"
        )
    item["slo"] = slo_map(slo)
    text = _dump(doc)
    try:
        Catalog.model_validate(YAML(typ="safe").load(text))
    except ValidationError as exc:
        raise SLOStoreError(f"{source}: refusing to write an invalid catalog: {_problems(exc)}") from exc
    atomic_write_text(Path(target) if target else source, text)
