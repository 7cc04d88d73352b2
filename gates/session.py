"""One gate run: where it points (embedded or remote), what it deployed, and what it proved."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import openai
from pydantic import BaseModel

from deploy.catalog import AliasEntry, Catalog
from deploy.deployer import Deployer, Deployment
from deploy.judged_rates import JudgedRate
from deploy.ledger import (
    Counts,
    GateRecord,
    Ledger,
    RecordKind,
    Scope,
    Target,
    Verdict,
    now,
)
from deploy.litellm_admin import (
    MASTER_KEY_NAME,
    NO_KEY_DATABASE,
    GatewayUnavailable,
    LiteLLMAdmin,
    VirtualKey,
    gate_key,
    redact_text,
    redact_url,
)
from deploy.route_check import RouteCheckError, route_check
from deploy.status_writeback import write_back
from evals import progress
from evals.response_cache import CacheScope, CacheSwitch, ResponseCache, caching_http_client
from gates.parallel import GpuTurn, holds_exclusive_gpu
from gates.verdicts import GatePlatformError, verdict_message

REPO_ROOT = Path(__file__).resolve().parent.parent


def suite_revision() -> str:
    """The suite's git revision, marked dirty when the tree has uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


@dataclass
class Outputs:
    """Where a run writes: the committed files for a real platform, a build folder otherwise."""

    ledger: Path
    catalog: Path
    doc: Path


class SpendAfterCacheHits(RuntimeError):
    """A gate read its key's spend after answers were replayed from the cache (never charged)."""


class SpendGuardedAdmin:
    """The admin client as a gate sees it. Reading the gate key's spend turns the response cache
    off for the rest of the gate (its later requests are charged, so spend and answers agree),
    and fails loudly if replayed answers came first: a spend check must not be fooled."""

    def __init__(self, admin: LiteLLMAdmin, key: VirtualKey, switch: CacheSwitch):
        self._admin, self._key, self._switch = admin, key, switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._admin, name)

    def __repr__(self) -> str:
        return f"SpendGuardedAdmin({self._admin!r})"

    def _reading_spend(self, key: Any) -> None:
        if getattr(key, "value", key) != self._key.value:
            return  # another key (e.g. a budget check's own): its requests never used the cache
        progress.phase("budget check", label="reading the key's spend")
        self._switch.enabled = False
        if self._switch.hits:
            raise SpendAfterCacheHits(
                f"{self._switch.hits} answers of this gate were replayed from the response "
                "cache and never charged to its key, so its spend cannot be checked: run the "
                "gate with --no-cache, or build its clients with cache=False"
            )

    def key_info(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        self._reading_spend(key)
        return self._admin.key_info(key, *args, **kwargs)

    def wait_for_spend(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        self._reading_spend(key)
        return self._admin.wait_for_spend(key, *args, **kwargs)

    def settled_spend(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        self._reading_spend(key)
        return self._admin.settled_spend(key, *args, **kwargs)


@dataclass
class AliasContext:
    """Everything a gate test of one alias needs: the catalog entry, the deployment, a key."""

    entry: AliasEntry
    deployment: Deployment
    gateway_url: str
    key: VirtualKey
    admin: LiteLLMAdmin | SpendGuardedAdmin
    session: GateSession
    gate: str = ""
    cache_switch: CacheSwitch = field(default_factory=CacheSwitch)

    def client(self, *, cache: bool | None = None, **kwargs: Any) -> openai.OpenAI:
        """An OpenAI client through the gateway with this run's throwaway key (retries: ours).

        Non-streamed completions go through the run's response cache (see `cache_enabled`).
        """
        return openai.OpenAI(
            base_url=f"{self.gateway_url.rstrip('/')}/v1", api_key=self.key.value,
            max_retries=0, **self._cached(cache, kwargs),
        )

    def direct_client(self, *, cache: bool | None = None, **kwargs: Any) -> openai.OpenAI:
        """An OpenAI client straight to the backend (the Service, or the local engine)."""
        if not self.deployment.backend_url:
            raise RuntimeError(f"{self.entry.alias}: the deployment has no direct backend URL")
        return openai.OpenAI(
            base_url=self.deployment.backend_url, api_key="not-needed", max_retries=0,
            **self._cached(cache, kwargs),
        )

    def cache_enabled(self, cache: bool | None = None) -> bool:
        """Whether this gate's clients use the run's response cache.

        Off with `--no-cache` and for a client asked with `cache=False` (a gate comparing its
        key's spend with the answers it got: a replayed answer was paid by an earlier key).
        A gate that reads its key's spend through `.admin` turns it off from then on.
        """
        return self.session.cache is not None and cache is not False

    def _cached(self, cache: bool | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "http_client" in kwargs or not self.cache_enabled(cache):
            return kwargs
        scope = CacheScope(
            model=self.deployment.model, served_model_name=self.deployment.served_model_name,
            revision=self.deployment.revision,
        )
        assert self.session.cache is not None
        http = caching_http_client(self.session.cache, scope, switch=self.cache_switch)
        return {**kwargs, "http_client": http}

    def _served(self, reported: str | None) -> str:
        """What really answered: the names the replies gave, minus the alias itself (LiteLLM
        answers with the alias the client asked for, which names no model), else the
        deployment's served name."""
        names = [name.strip() for name in (reported or "").split(",")]
        return ", ".join(n for n in names if n and n != self.entry.alias) or self.deployment.served_model_name

    def record(
        self,
        *,
        gate: str,
        verdict: Verdict,
        metric: str,
        value: float | None,
        threshold: float | None,
        summary: str,
        reason: str = "",
        counts: Counts | None = None,
        details: list[BaseModel | dict[str, Any]] | None = None,
        served_model_name: str | None = None,
        started_at=None,
        extra: dict[str, Any] | None = None,
        judged: list[JudgedRate] | None = None,
        incumbent_id: str | None = None,
        comparison: dict[str, Any] | None = None,
    ) -> GateRecord:
        record = GateRecord(
            run_id=self.session.run_id,
            alias=self.entry.alias,
            gate=gate,
            verdict=verdict,
            metric=metric,
            value=value,
            threshold=threshold,
            counts=counts or Counts(),
            summary=summary,
            reason=reason,
            target=Target(
                platform=self.session.platform_kind,
                gateway_url=redact_url(self.gateway_url),
                deployment=self.deployment.target,
                model=self.deployment.model,
                served_model_name=self._served(served_model_name),
                revision=self.deployment.revision,
                stand_in=self.deployment.stand_in,
            ),
            started_at=started_at or now(),
            finished_at=now(),
            suite_revision=self.session.revision,
            extra=extra or {},
            judged=judged or [],
            incumbent_id=incumbent_id,
            comparison=comparison,
        )
        self.session.record(record, details or [])
        return record


@dataclass
class GateSession:
    catalog: Catalog
    catalog_path: Path
    outputs: Outputs
    platform_kind: Literal["embedded", "remote"]
    gateway_url: str
    admin: LiteLLMAdmin
    deployer: Deployer
    run_id: str = field(default_factory=lambda: new_run_id())
    revision: str = field(default_factory=suite_revision)
    records: list[GateRecord] = field(default_factory=list)
    # The run's response cache (None: --no-cache) and the GPU turn (None: no lock folder).
    cache: ResponseCache | None = None
    gpu_turn: GpuTurn | None = None
    # Set by the core plugin: tags a record with its test before the append, reports it after.
    annotate: Callable[[GateRecord], None] | None = None
    on_record: Callable[[GateRecord], None] | None = None
    # Set by the core plugin: what this run's records are (a status derives from "gate" only).
    kind: RecordKind = "gate"
    scope: Scope | None = None
    _deployments: dict[str, Deployment] = field(default_factory=dict)

    @property
    def gateway_url_redacted(self) -> str:
        return redact_url(self.gateway_url)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.outputs.ledger)

    def record(self, record: GateRecord, details: list[BaseModel | dict[str, Any]]) -> None:
        # Appended at once, not at session end: a crash later in the run loses no verdict.
        if self.annotate is not None:
            self.annotate(record)
        record.kind = self.kind
        record.scope = record.scope or self.scope
        ledger = self.ledger
        if details:
            ledger.write_details(record, details)
        ledger.append(record)
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def deploy(self, alias: str) -> Deployment:
        if alias not in self._deployments:
            self._deployments[alias] = self.deployer.deploy(self.catalog.get(alias))
        return self._deployments[alias]

    @contextlib.contextmanager
    def alias_context(self, alias: str, *, gate: str) -> Iterator[AliasContext]:
        """Deploy the alias, hold a throwaway key scoped to it, and check the route.

        A deployment that never becomes ready, or a gateway that does not route the alias, is
        recorded as ERROR for the gate (the platform did not answer) before the test errors.
        The key is deleted whatever happens, also on Ctrl-C.
        """
        entry = self.catalog.get(alias)
        started = now()
        if self.gpu_turn is not None and holds_exclusive_gpu(self.deployer, entry):
            # Released by the core plugin after the alias's last test, or at session end.
            self.gpu_turn.take(alias)
        if alias not in self._deployments:  # deployers block until ready: one phase for both
            progress.phase("deploying", label=f"starting {alias} and waiting for ready")
        try:
            deployment = self.deploy(alias)
        except Exception as exc:
            record = self._record_platform_error(entry, gate, "deploy failed", exc, started)
            raise GatePlatformError(verdict_message(record)) from exc
        budget = entry.gate(gate).max_budget_usd
        # A throwaway key; the master key on a gateway without a key database (said once).
        with gate_key(
            self.admin,
            alias=f"modelgate-{self.run_id}-{alias}",
            models=[alias],
            max_budget=budget,
            metadata={"modelgate_run": self.run_id, "gate": gate},
        ) as key:
            progress.phase("route check")
            check = route_check(self.gateway_url, key.value, entry)
            if not check.ok:
                error = RouteCheckError(check.detail)
                record = self._record_platform_error(
                    entry, gate, "route check failed", error, started, deployment)
                raise GatePlatformError(verdict_message(record)) from error
            switch = CacheSwitch()
            progress.phase("evaluating")
            yield AliasContext(
                entry=entry, deployment=deployment, gateway_url=self.gateway_url, key=key,
                admin=SpendGuardedAdmin(self.admin, key, switch), session=self, gate=gate,
                cache_switch=switch,
            )
            if key.key_name == MASTER_KEY_NAME and not any(
                r.alias == alias and r.gate == gate and r.run_id == self.run_id for r in self.records
            ):  # the gate died reading its key's spend: that is an ERROR, never a silent gap
                self._record_platform_error(entry, gate, NO_KEY_DATABASE, RuntimeError(
                    f"{NO_KEY_DATABASE}: this gate reads its key's spend or budget, which a LiteLLM "
                    "without DATABASE_URL does not keep"), started, deployment)

    def _record_platform_error(
        self, entry: AliasEntry, gate: str, what: str, exc: BaseException, started,
        deployment: Deployment | None = None,
    ) -> GateRecord:
        reason = redact_text(str(exc))
        if isinstance(exc, GatewayUnavailable) and exc.status is None:
            # No answer at all (a typo in the URL, a gateway down): say that, not "deploy failed".
            what = f"gateway unreachable at {self.gateway_url_redacted}"
            reason = f"{exc.cause or exc.message} ({exc.route})" if exc.route else exc.cause or exc.message
        # A deployer's diagnosis (events, conditions, the engine's last log lines) goes whole to
        # the record's details; the summary line keeps its short form.
        diagnosis = getattr(exc, "diagnosis", None)
        if diagnosis is not None and getattr(exc, "short", None):
            reason = redact_text(exc.short)
        record = GateRecord(
            run_id=self.run_id, alias=entry.alias, gate=gate, verdict="error", metric=gate,
            value=None, threshold=None, summary=what, reason=reason[:500],
            target=Target(
                platform=self.platform_kind, gateway_url=redact_url(self.gateway_url),
                deployment=deployment.target if deployment else "(not deployed)",
                model=deployment.model if deployment else entry.model,
                served_model_name=entry.served_model_name,
                stand_in=deployment.stand_in if deployment else False,
            ),
            started_at=started, finished_at=now(), suite_revision=self.revision,
        )
        details = [json.loads(redact_text(json.dumps(diagnosis, default=str)))] if diagnosis else []
        self.record(record, details)
        return record

    def close(self) -> None:
        try:
            self.deployer.close()
        finally:
            if self.gpu_turn is not None:
                self.gpu_turn.give_back()


def write_status(catalog_path: Path, outputs: Outputs, aliases: set[str]) -> dict[str, str]:
    """Derive `aliases`' status from the run's ledger; write its catalog and table (once a run)."""
    return write_back(outputs.ledger, Path(catalog_path), aliases, target=outputs.catalog,
                      doc=outputs.doc, build_copy=True)


def default_outputs(platform_kind: str, build_dir: Path, catalog_path: Path) -> Outputs:
    if platform_kind == "embedded":
        base = build_dir / "embedded"
        return Outputs(
            ledger=base / "ledger.jsonl",
            catalog=base / "catalog.yaml",
            doc=base / "served-models.md",
        )
    return Outputs(
        ledger=REPO_ROOT / "ledger" / "results.jsonl",
        catalog=catalog_path,
        doc=REPO_ROOT / "docs" / "served-models.md",
    )


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
