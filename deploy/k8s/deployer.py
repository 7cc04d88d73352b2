"""KubernetesDeployer: the `Deployer` protocol against a cluster (raw vLLM, KServe, TEI)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from kubernetes import client
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from deploy.catalog import AliasEntry
from deploy.deployer import Deployment
from deploy.k8s.apply import Cluster, Conflict
from deploy.k8s.config import KubeSettings, api_client_from
from deploy.k8s.diagnose import Diagnosis, diagnose_pods, events_of
from deploy.k8s.errors import ApplyConflict, ClusterUnavailable, DeployError, GpuHeld
from deploy.k8s.gpu_exclusive import ReplicaBook
from deploy.k8s.gpu_preflight import GpuState, Holder, gpu_state
from deploy.k8s.kserve_preflight import kserve_problems
from deploy.k8s.manifests import (
    HF_OPENAI_PREFIX,
    ISVC_GROUP,
    ISVC_PLURAL,
    ISVC_VERSION,
    Plan,
    kind_of,
    plan,
)
from deploy.k8s.readiness import Readiness, deployment_readiness, isvc_readiness
from deploy.k8s.scaling import DeploymentScale, InferenceServiceMinReplicas, ScaleTarget

log = logging.getLogger(__name__)

_SCALE_TO_ZERO_MODES = {"Serverless", "Knative"}
HOLDER = "(gpu holder)"  # the book's alias for workloads scaled down to free the GPU


def _transient(exc: BaseException) -> bool:
    """API hiccups worth polling through; anything else (and KeyboardInterrupt) ends the wait."""
    if isinstance(exc, client.ApiException):
        return exc.status is not None and (exc.status >= 500 or exc.status == 429)
    return isinstance(exc, urllib3.exceptions.HTTPError)


class KubernetesDeployer:
    """Deploys catalog aliases to one namespace; `close()` restores every replica count it
    changed and deletes what it created (the model-cache PVCs only with `delete_cache`).

    `api_client` is for callers that built their own (tests point it at a stand-in API server);
    otherwise the client comes from `settings` (in-cluster, KUBECONFIG, or `kube_context`).
    `model_sources` maps an alias to `hub` or `pvc:PATH` (overriding the catalog's source).
    `sleep` is the pause between readiness polls.
    """

    def __init__(
        self,
        settings: KubeSettings | None = None,
        *,
        api_client: client.ApiClient | None = None,
        model_sources: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or KubeSettings()
        self.run_id = self.settings.run_id or f"modelgate-{uuid.uuid4().hex[:8]}"
        self._api = api_client
        self._cluster: Cluster | None = None
        self.model_sources = model_sources or {}
        self.sleep = sleep
        self.book = ReplicaBook()
        self.created: list[tuple[str, str, str]] = []  # (kind, namespace, name), in apply order
        self.cache_claims: set[str] = set()
        self.restore_failures: list[str] = []

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            api = self._api or api_client_from(self.settings)
            self._cluster = Cluster(api, self.settings.field_manager, self.settings.request_timeout_s)
        return self._cluster

    # -- before any gate ------------------------------------------------------------------------
    def preflight(self, entries: Iterable[AliasEntry] = ()) -> None:
        """Raise ClusterUnavailable unless the API server answers, the namespace is usable and
        the KServe aliases' runtime (and modelcar support) is there."""
        entries = list(entries)
        ns = self.settings.namespace
        cluster = self.cluster  # ClusterUnavailable when there is no configuration at all
        host = cluster.api.configuration.host
        try:
            client.VersionApi(cluster.api).get_code(_request_timeout=cluster.timeout)
            try:
                cluster.core.read_namespace(ns, _request_timeout=cluster.timeout)
            except client.ApiException as exc:
                if exc.status != 403:  # a namespaced service account may not read namespaces
                    raise
            cluster.apps.list_namespaced_deployment(ns, limit=1, _request_timeout=cluster.timeout)
        except client.ApiException as exc:
            raise ClusterUnavailable(
                f"Kubernetes API at {host} refused namespace {ns!r}: {exc.status} {exc.reason}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(
                f"Kubernetes API at {host} is unreachable: {type(exc).__name__}"
            ) from None
        kserve = [e for e in entries if kind_of(e, self.settings.prefer_kserve) == "kserve"]
        if kserve:
            try:
                cluster.custom.list_namespaced_custom_object(
                    ISVC_GROUP, ISVC_VERSION, ns, ISVC_PLURAL, limit=1,
                    _request_timeout=cluster.timeout,
                )
            except client.ApiException as exc:
                raise ClusterUnavailable(
                    f"Kubernetes API at {host} does not serve {ISVC_GROUP}/{ISVC_VERSION} "
                    f"inferenceservices (needed by {', '.join(e.alias for e in kserve)}): "
                    f"{exc.status} {exc.reason}"
                ) from None
            for entry in kserve:
                problems = kserve_problems(cluster, self._plan(entry), self.settings.kserve_namespace)
                if problems:
                    raise ClusterUnavailable(f"KServe cannot run {entry.alias}: "
                                             + "; ".join(problems))

    # -- the Deployer protocol -------------------------------------------------------------------
    def deploy(self, entry: AliasEntry) -> Deployment:
        p = self._plan(entry)
        if p.kind == "external":
            return Deployment(alias=entry.alias, kind="external", backend_url=None,
                              served_model_name=entry.served_model_name, model=entry.model,
                              target="external")
        try:
            return self._deploy(entry, p)
        except KeyboardInterrupt:
            log.warning("interrupted while deploying %s: restoring replica counts", entry.alias)
            self.close()
            raise
        except Exception:
            self.release(entry.alias)  # a failed alias must not keep holding (or waiting for) the GPU
            raise

    def release(self, alias: str) -> None:
        self.restore_failures += self.book.restore(alias)

    def close(self) -> None:
        """Restore every replica count changed, then delete what this run created; idempotent,
        and safe from a signal handler or a `finally` (an interrupted close leaves the rest for
        the next call)."""
        self.restore_failures += self.book.restore()
        while self.created:
            kind, ns, name = self.created[-1]  # reverse order: workloads before their claims
            if kind == "PersistentVolumeClaim" and name in self.cache_claims \
                    and not self.settings.delete_cache:
                self.created.pop()
                log.info("kept the model cache %s/%s (pass --delete-cache to remove it)", ns, name)
                continue
            try:
                self.cluster.delete(kind, ns, name)
                log.info("deleted %s/%s/%s", kind, ns, name)
            except Exception as exc:  # noqa: BLE001 - keep deleting the others
                self.restore_failures.append(f"{kind}/{ns}/{name}: cannot delete: {exc}")
            self.created.pop()

    # -- internals -------------------------------------------------------------------------------
    def _plan(self, entry: AliasEntry) -> Plan:
        return plan(entry, self.settings.namespace, prefer_kserve=self.settings.prefer_kserve,
                    sources=self.model_sources, run_id=self.run_id,
                    runtime_class=self.settings.runtime_class)

    def _scale_target(self, entry: AliasEntry, p: Plan) -> ScaleTarget:
        ns, name = p.namespace, p.target_name or entry.alias
        if p.target_kind == "Deployment":
            return DeploymentScale(self.cluster, ns, name)
        spec = entry.kserve
        assert spec is not None
        if spec.deployment_mode in _SCALE_TO_ZERO_MODES or spec.autoscaler_class == "keda":
            return InferenceServiceMinReplicas(self.cluster, ns, name)
        # Standard/RawDeployment: minReplicas 0 is raised to 1, so scale the predictor itself.
        return DeploymentScale(self.cluster, ns, f"{name}-predictor")

    def _deploy(self, entry: AliasEntry, p: Plan) -> Deployment:
        target = self._scale_target(entry, p)
        where = f"{p.target_kind}/{p.namespace}/{p.target_name}"
        if p.gpu:
            stopped = self.book.make_room(target.key, settle=self._wait_settled)
            if stopped:
                log.info("scaled to zero for %s: %s", entry.alias, ", ".join(stopped))
            self._ensure_gpu(entry, p, where)
        self.book.remember(entry.alias, target, p.gpu)  # before the apply changes anything
        for manifest in p.manifests:
            self._apply(entry, p, manifest)
        if target.replicas() == 0:
            target.scale(1)  # scaled down earlier in this session; the apply does not undo that
        obj = self._wait_ready(entry, p)
        if p.kind == "kserve":
            url = (obj.get("status") or {}).get("url", "").rstrip("/")
            backend = f"{url}{HF_OPENAI_PREFIX}"  # kserve-huggingfaceserver's OpenAI routes
        else:
            backend = p.backend_url
        return Deployment(
            alias=entry.alias, kind="kubernetes", backend_url=backend,
            served_model_name=entry.served_model_name, model=entry.model,
            target=where, revision=_revision(entry, p, self.model_sources),
        )

    def _apply(self, entry: AliasEntry, p: Plan, manifest: dict[str, Any]) -> None:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        where = f"{kind}/{p.namespace}/{name}"
        try:
            existed = self.cluster.exists(kind, p.namespace, name)
            self.cluster.apply(manifest, force=self.settings.force_conflicts)
        except Conflict as conflict:
            raise ApplyConflict(entry.alias, where, conflict.managers, conflict.fields,
                                conflict.message) from None
        except client.ApiException as exc:
            raise DeployError(entry.alias, where, exc.reason or str(exc.status),
                              _status_message(exc)) from None
        if not existed:
            self.created.append((kind, p.namespace, name))
            if name == p.cache_pvc:
                self.cache_claims.add(name)

    def _ensure_gpu(self, entry: AliasEntry, p: Plan, where: str) -> None:
        """Enough free GPUs for this alias, or an error naming who holds them (or, when the
        user allowed it, those holders scaled to zero until the end of the run). Pods the suite
        just stopped, or any pod already terminating, are waited out, not blamed."""
        retrying = Retrying(
            stop=stop_after_delay(self.settings.scale_down_timeout_s),
            wait=wait_fixed(self.settings.poll_interval_s),
            retry=retry_if_result(lambda r: r is not None and r[1])
            | retry_if_exception(_transient),
            sleep=self.sleep,
        )
        try:
            found = retrying(self._gpu_shortfall, p)
        except RetryError as exc:
            found = exc.last_attempt.result() if not exc.last_attempt.failed else None
            if found is None:
                raise DeployError(entry.alias, where, "Unreachable",
                                  f"API errors while checking GPUs: {exc.last_attempt.exception()}"
                                  ) from None
        if found is None:
            return
        state, waited = found
        own = [h for h in state.holders if self._is_own(h, p)]
        free = state.free + sum(h.gpus for h in own)
        gpu_info = {"allocatable": state.allocatable, "in_use": state.in_use,
                    "nodes": state.nodes, "holders": [h.model_dump() | {"owner": h.owner}
                                                      for h in state.holders]}
        if state.allocatable == 0:
            raise GpuHeld(entry.alias, where, "NoGPU",
                          f"no schedulable node has allocatable nvidia.com/gpu "
                          f"(schedulable nodes: {', '.join(state.nodes) or 'none'})",
                          {"gpu": gpu_info})
        foreign = [h for h in state.holders if h not in own]
        named = "; ".join(h.describe() for h in foreign)
        if waited:
            raise GpuHeld(entry.alias, where, "GPUNotReleased",
                          f"needs {p.gpu_count} nvidia.com/gpu, {free} of {state.allocatable} "
                          f"free: still held after {self.settings.scale_down_timeout_s}s by "
                          f"{named} (stopping or terminating)", {"gpu": gpu_info})
        if not self.settings.scale_gpu_holder:
            raise GpuHeld(entry.alias, where, "GPUHeld",
                          f"needs {p.gpu_count} nvidia.com/gpu, {free} of {state.allocatable} "
                          f"free: held by {named}; the suite did not start it and will not stop it "
                          "(pass --scale-gpu-holder to scale it to zero for the run and restore "
                          "it afterwards)", {"gpu": gpu_info})
        for holder in foreign:
            if holder.owner_kind != "Deployment":
                raise GpuHeld(entry.alias, where, "GPUHeld",
                              f"held by {holder.describe()}: --scale-gpu-holder scales "
                              f"Deployments only, not {holder.owner_kind or 'a bare Pod'}",
                              {"gpu": gpu_info})
            owner = DeploymentScale(self.cluster, holder.namespace, holder.owner_name or "")
            log.warning("scaling %s to zero for %s (restored at the end of the run)",
                        holder.owner, entry.alias)
            self.book.scale(HOLDER, owner, 0, gpu=True)
            self._wait_settled(owner)

    def _gpu_shortfall(self, p: Plan) -> tuple[GpuState, bool] | None:
        """None when enough GPUs are free (or they cannot be counted); else the state and
        whether waiting can help (only the suite's own or terminating pods are in the way)."""
        try:
            state = gpu_state(self.cluster)
        except client.ApiException as exc:
            if exc.status in (401, 403):  # a namespaced service account may not list nodes
                log.warning("cannot list nodes or pods (%s): GPU preflight skipped", exc.status)
                return None
            raise
        own = [h for h in state.holders if self._is_own(h, p)]
        if state.free + sum(h.gpus for h in own) >= p.gpu_count:
            return None
        others = [h for h in state.holders if h not in own]
        passing = [h for h in others if h.terminating or self._stopped_by_suite(h)]
        return state, bool(others) and len(passing) == len(others)

    @staticmethod
    def _is_own(holder: Holder, p: Plan) -> bool:
        """The alias's own pod: Recreate replaces it, so its GPU counts as free."""
        return holder.namespace == p.namespace and p.pod_selector.items() <= holder.labels.items()

    def _stopped_by_suite(self, holder: Holder) -> bool:
        keys = set(self.book.keys())
        isvc = holder.labels.get("serving.kserve.io/inferenceservice")
        return holder.owner in keys or (
            isvc is not None and f"InferenceService/{holder.namespace}/{isvc}" in keys)

    def _poll(self, p: Plan) -> tuple[Readiness, dict[str, Any] | None]:
        obj = self.cluster.get(p.target_kind or "", p.namespace, p.target_name or "")
        if obj is None:
            return Readiness(ready=False, reason="NotFound", message="object not found"), None
        judge = isvc_readiness if p.target_kind == "InferenceService" else deployment_readiness
        state = judge(obj)
        if state.ready or state.failed:
            return state, obj
        pods = diagnose_pods(self.cluster.core, p.namespace, p.pod_selector, self.cluster.timeout)
        if pods.terminal:
            return Readiness(ready=False, failed=True, reason=pods.reason, message=pods.message), obj
        return state, obj

    def _wait_ready(self, entry: AliasEntry, p: Plan) -> dict[str, Any]:
        target = f"{p.target_kind}/{p.namespace}/{p.target_name}"
        retrying = Retrying(
            stop=stop_after_delay(entry.ready_timeout_s),
            wait=wait_fixed(self.settings.poll_interval_s),
            retry=retry_if_result(lambda r: not (r[0].ready or r[0].failed))
            | retry_if_exception(_transient),
            sleep=self.sleep,
        )
        try:
            state, obj = retrying(self._poll, p)
        except RetryError as exc:
            last = exc.last_attempt
            if last.failed:
                err = last.exception()
                raise DeployError(entry.alias, target, "Unreachable",
                                  f"API errors while waiting: {err}") from None
            state, obj = last.result()
            # Timed out: the pods usually say why (Unschedulable, ...) better than the object.
            pods = self._diagnose(p)
            reason = pods.reason or state.reason or "Timeout"
            message = pods.message or state.message
            raise DeployError(entry.alias, target, reason,
                              f"{message} (gave up after {entry.ready_timeout_s}s)",
                              self._diagnosis(p, obj, pods)) from None
        if state.failed:
            pods = self._diagnose(p)
            message = state.message
            if state.reason in ("ProgressDeadlineExceeded",) or p.kind == "kserve":
                if pods.reason and pods.reason != "NoPods" and pods.message not in message:
                    message += f"; pods: {pods.reason}: {pods.message}"
            raise DeployError(entry.alias, target, state.reason or "Failed", message,
                              self._diagnosis(p, obj, pods))
        assert obj is not None
        return obj

    def _diagnose(self, p: Plan) -> Diagnosis:
        try:
            return diagnose_pods(self.cluster.core, p.namespace, p.pod_selector,
                                 self.cluster.timeout)
        except client.ApiException as exc:
            return Diagnosis(message=f"(pods unavailable: {exc.status} {exc.reason})")

    def _diagnosis(self, p: Plan, obj: dict[str, Any] | None, pods: Diagnosis) -> dict[str, Any]:
        """Everything known about the failure, for the ledger's details."""
        status = (obj or {}).get("status") or {}
        try:
            events = [{k: e.get(k) for k in ("type", "reason", "message", "count")}
                      for e in events_of(self.cluster.core, p.namespace, p.target_kind or "",
                                         p.target_name or "", self.cluster.timeout)]
        except client.ApiException:
            events = []
        out: dict[str, Any] = {
            "conditions": status.get("conditions") or [],
            "events": events,
            "pods": pods.details.get("pods", []),
            "final_exception": pods.final_exception,
        }
        if p.kind == "kserve":
            out["model_status"] = status.get("modelStatus") or {}
        logs = [line for pod in out["pods"] for line in pod.get("logs") or []]
        if logs:
            out["last_log_lines"] = logs
        return out

    def _wait_settled(self, target: ScaleTarget) -> None:
        retrying = Retrying(
            stop=stop_after_delay(self.settings.scale_down_timeout_s),
            wait=wait_fixed(self.settings.poll_interval_s),
            retry=retry_if_result(lambda settled: not settled) | retry_if_exception(_transient),
            sleep=self.sleep,
        )
        try:
            retrying(target.settled)
        except RetryError:
            # Not fatal: the next alias may show Unschedulable until the pods are gone.
            log.warning("%s still has pods after %ss", target.key, self.settings.scale_down_timeout_s)


def _status_message(exc: client.ApiException) -> str:
    """The message of the API server's Status body (the server-side apply error)."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    return f"{exc.status}: {body.get('message') or exc.reason}"


def _revision(entry: AliasEntry, p: Plan, sources: dict[str, str]) -> str | None:
    """What identifies the served weights and engine: image plus Hub revision or modelcar digest."""
    if p.kind == "kserve" and entry.kserve is not None:
        return f"{p.runtime} {entry.kserve.storage_uri.rsplit('@', 1)[-1]}"
    fields = entry.kubernetes
    if fields is None:
        return entry.image
    source = sources.get(entry.alias, fields.source)
    if source.startswith("pvc"):
        return f"{entry.image} pvc:{source[4:] or fields.pvc_path}"
    return f"{entry.image} {fields.hub_id}@{fields.revision}"
