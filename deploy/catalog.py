"""The model catalog: schema, loading with precise errors, and eval-status writeback."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from deploy.catalog_k8s import KubernetesFields
from deploy.gate_configs import (
    EmbeddingsGateConfig,
    FimGate,
    GateConfig,
    Gates,
    HumanEvalGate,
    LatencyGate,
    ToolLoopGate,
    UsageGate,
    validate_gate,
)

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

Backend = Literal["raw-vllm", "kserve", "tei", "external"]
Mode = Literal["chat", "completion", "embedding"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per 1M tokens, as PLATFORM.md states them; per-token values are derived."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float | None = Field(default=None, ge=0)

    @property
    def input_per_token(self) -> float:
        return self.input_per_1m / 1_000_000

    @property
    def output_per_token(self) -> float:
        return (self.output_per_1m or 0.0) / 1_000_000


class SLO(_Strict):
    state: Literal["measured", "derived", "to be derived", "n/a"]
    ttft_p95_ms: float | None = Field(default=None, gt=0)
    itl_p95_ms: float | None = Field(default=None, gt=0)
    e2e_p95_ms: float | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    source: str | None = None
    derived_from_run: str | None = None
    headroom: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _targets_when_measured(self) -> SLO:
        if self.state in ("measured", "derived"):
            missing = [
                name
                for name in ("ttft_p95_ms", "itl_p95_ms", "e2e_p95_ms", "max_output_tokens")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"SLO state {self.state!r} needs {', '.join(missing)}")
        return self

    def describe(self) -> str:
        if self.state in ("measured", "derived"):
            text = (
                f"TTFT p95 < {self.ttft_p95_ms:g} ms, ITL p95 < {self.itl_p95_ms:g} ms, "
                f"E2E p95 < {self.e2e_p95_ms / 1000:g} s (at most {self.max_output_tokens} "
                "output tokens)"
            )
            if self.state == "derived":
                text += f" [derived, run {self.derived_from_run}]"
            return text
        if self.state == "to be derived":
            return "to be derived"
        return "n/a"


class KServeSpec(_Strict):
    name: str
    storage_uri: str
    deployment_mode: Literal["RawDeployment", "Standard", "Serverless", "Knative"] = "RawDeployment"
    autoscaler_class: Literal["hpa", "keda", "none"] | None = None


class AliasEntry(_Strict):
    alias: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    model: str
    served_model_name: str
    backend: Backend
    backend_label: str
    mode: Mode
    gpu: str | None
    gpu_count: int = Field(ge=0)
    context: int | None = Field(gt=0)
    dimensions: int | None = Field(default=None, gt=0)
    price: Price
    slo: SLO
    serve_args: list[str] = []
    image: str | None = None
    kserve: KServeSpec | None = None
    kubernetes: KubernetesFields | None = None  # weights, resources, probes on a cluster
    fim_family: str | None = None
    usage_convention: Literal["agentgateway", "litellm"] | None = None
    ready_timeout_s: int = Field(default=900, gt=0)
    gates: Gates
    eval_status: str

    @model_validator(mode="after")
    def _consistent(self) -> AliasEntry:
        if self.mode == "embedding" and self.dimensions is None:
            raise ValueError("an embedding alias needs 'dimensions'")
        if self.backend != "external" and not self.image:
            raise ValueError(f"backend {self.backend!r} needs an 'image'")
        return self

    @overload
    def gate(self, name: Literal["humaneval"]) -> HumanEvalGate: ...
    @overload
    def gate(self, name: Literal["fim"]) -> FimGate: ...
    @overload
    def gate(self, name: Literal["tool_loop"]) -> ToolLoopGate: ...
    @overload
    def gate(self, name: Literal["embeddings"]) -> EmbeddingsGateConfig: ...
    @overload
    def gate(self, name: Literal["usage"]) -> UsageGate: ...
    @overload
    def gate(self, name: Literal["latency"]) -> LatencyGate: ...
    @overload
    def gate(self, name: str) -> GateConfig: ...

    def gate(self, name: str) -> GateConfig:
        """The typed settings of gate kind `name` (see deploy.gate_configs)."""
        gates = self.gates
        # A copy made in code (`model_copy(update={"gates": {...}})`) skips validation: do it here.
        raw = gates.get(name) if isinstance(gates, dict) else getattr(gates, name, None)
        if raw is None:
            raise KeyError(f"alias {self.alias!r} has no gate {name!r} in the catalog")
        return validate_gate(self.alias, name, raw)

    def vllm_args(self, **options: Any) -> list[str]:
        """`vllm serve` arguments for this alias (deploy.serve_args.vllm_args): stand-ins get
        them from the entry, so fixtures never import the deploy side."""
        from deploy.serve_args import vllm_args  # serve_args imports this module

        return vllm_args(self, **options)


class Catalog(_Strict):
    gateway: dict[str, Any] = {}
    aliases: list[AliasEntry]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: set[str] = set()
        for entry in self.aliases:
            if entry.alias in seen:
                raise ValueError(f"alias {entry.alias!r} appears twice")
            seen.add(entry.alias)
        return self

    def get(self, alias: str) -> AliasEntry:
        for entry in self.aliases:
            if entry.alias == alias:
                return entry
        raise KeyError(f"no alias {alias!r} in the catalog")

    @property
    def names(self) -> list[str]:
        return [entry.alias for entry in self.aliases]


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names file, line and field."""


def round_trip_yaml() -> YAML:
    """A YAML that rewrites the catalog in its own style: comments, order, indentation, nulls."""
    yaml = YAML()  # round-trip mode keeps comments and order for writeback
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  - alias: ...", as the file is written
    yaml.representer.add_representer(type(None), _represent_null)  # "gpu: null", not "gpu:"
    return yaml


def _represent_null(representer, _data: None):
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _line_of(doc: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of `loc` that the document still has."""
    node, line = doc, None
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
            line = node.lc.item(key)[0] + 1
            node = node[key]
        else:
            break
    return line


def _field_path(doc: Any, loc: tuple[Any, ...]) -> str:
    """Readable field path; list items are named by their alias where they have one."""
    parts: list[str] = []
    node = doc
    for key in loc:
        if isinstance(key, int):
            name = node[key].get("alias") if isinstance(node, list) and key < len(node) and isinstance(node[key], dict) else None
            parts.append(f"[{name}]" if name else f"[{key}]")
        else:
            parts.append(f".{key}" if parts else str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


def load_catalog(path: str | os.PathLike[str] = DEFAULT_CATALOG) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror}") from exc
    try:
        doc = round_trip_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CatalogError(f"{where}: not valid YAML: {exc.problem}") from exc
    if not isinstance(doc, dict):
        raise CatalogError(f"{path}:1: the catalog must be a mapping with 'aliases'")
    try:
        return Catalog.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(doc, loc)
            where = f"{path}:{line}" if line else str(path)
            lines.append(f"{where}: field '{_field_path(doc, loc) or '(top)'}': {err['msg']}")
        raise CatalogError("\n".join(lines)) from exc


def _umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _keep_mode_and_owner(tmp: str, path: Path) -> None:
    """Give the temporary file the mode and owner of the file it replaces (mkstemp makes 0600);
    a new file gets what a plain open would give (0666 less the umask)."""
    try:
        held = path.stat()
    except FileNotFoundError:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    os.chmod(tmp, held.st_mode & 0o7777)
    mine = os.stat(tmp)
    if (mine.st_uid, mine.st_gid) != (held.st_uid, held.st_gid):
        try:
            os.chown(tmp, held.st_uid, held.st_gid)
        except PermissionError:  # only root may give a file away; the group may still be kept
            with contextlib.suppress(PermissionError):
                os.chown(tmp, -1, held.st_gid)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file,
    a write killed midway leaves the old file whole, and the file keeps its mode and owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            _keep_mode_and_owner(tmp, path)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_statuses(source: Path, statuses: dict[str, str], target: Path | None = None) -> bool:
    """Set `eval_status` of the named aliases, keeping every comment and the key order.

    Writes to `target` (default: `source` itself). Returns whether anything changed.
    """
    yaml = round_trip_yaml()
    doc = yaml.load(source.read_text(encoding="utf-8"))
    changed = False
    for item in doc["aliases"]:
        status = statuses.get(item["alias"])
        if status is not None and item.get("eval_status") != status:
            item["eval_status"] = status
            changed = True
    out = io.StringIO()
    yaml.dump(doc, out)
    target = target or source
    if changed or target != source:
        text = out.getvalue()
        Catalog.model_validate(YAML(typ="safe").load(text))  # never write an invalid catalog
        atomic_write_text(target, text)
    return changed
