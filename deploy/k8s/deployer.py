"""KubernetesDeployer: the `Deployer` protocol against a cluster (raw vLLM, KServe, TEI)."""

from __future__ import annotations

import json
import logging
import time
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
from deploy.k8s.apply import Cluster
from deploy.k8s.config import KubeSettings, api_client_from
from deploy.k8s.diagnose import diagnose_pods
from deploy.k8s.errors import ClusterUnavailable, DeployError
from deploy.k8s.gpu_exclusive import ReplicaBook
from deploy.k8s.manifests import ISVC_GROUP, ISVC_PLURAL, ISVC_VERSION, Plan, plan
from deploy.k8s.readiness import Readiness, deployment_readiness, isvc_readiness
from deploy.k8s.scaling import DeploymentScale, InferenceServiceMinReplicas, ScaleTarget

log = logging.getLogger(__name__)

_SCALE_TO_ZERO_MODES = {"Serverless", "Knative"}


def _transient(exc: BaseException) -> bool:
    """API hiccups worth polling through; anything else (and KeyboardInterrupt) ends the wait."""
    if isinstance(exc, client.ApiException):
        return exc.status is not None and (exc.status >= 500 or exc.status == 429)
    return isinstance(exc, urllib3.exceptions.HTTPError)


class KubernetesDeployer:
    """Deploys catalog aliases to one namespace and undoes its replica changes on `close()`.

    `api_client` is for callers that built their own (tests point it at a stand-in API server);
    otherwise the client comes from `settings` (in-cluster, KUBECONFIG, or `kube_context`).
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
        self._api = api_client
        self._cluster: Cluster | None = None
        self.model_sources = model_sources or {}
        self.sleep = sleep
        self.book = ReplicaBook()
        self.restore_failures: list[str] = []

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            api = self._api or api_client_from(self.settings)
            self._cluster = Cluster(api, self.settings.field_manager, self.settings.request_timeout_s)
        return self._cluster

    # -- before any gate ------------------------------------------------------------------------
    def preflight(self, entries: Iterable[AliasEntry] = ()) -> None:
        """Raise ClusterUnavailable unless the API server answers and the namespace is usable."""
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
        kserve = [e.alias for e in entries if self._plan(e).kind == "kserve"]
        if kserve:
            try:
                cluster.custom.list_namespaced_custom_object(
                    ISVC_GROUP, ISVC_VERSION, ns, ISVC_PLURAL, limit=1,
                    _request_timeout=cluster.timeout,
                )
            except client.ApiException as exc:
                raise ClusterUnavailable(
                    f"Kubernetes API at {host} does not serve {ISVC_GROUP}/{ISVC_VERSION} "
                    f"inferenceservices (needed by {', '.join(kserve)}): {exc.status} {exc.reason}"
                ) from None

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
        """Restore every replica count changed; idempotent, and safe to call from a signal
        handler or a `finally` (an interrupted close leaves the rest for the next call)."""
        self.restore_failures += self.book.restore()

    # -- internals -------------------------------------------------------------------------------
    def _plan(self, entry: AliasEntry) -> Plan:
        return plan(entry, self.settings.namespace, prefer_kserve=self.settings.prefer_kserve,
                    sources=self.model_sources)

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
        if p.gpu:
            stopped = self.book.make_room(target.key, settle=self._wait_settled)
            if stopped:
                log.info("scaled to zero for %s: %s", entry.alias, ", ".join(stopped))
        self.book.remember(entry.alias, target, p.gpu)  # before the apply changes anything
        for manifest in p.manifests:
            try:
                self.cluster.apply(manifest)
            except client.ApiException as exc:
                kind, name = manifest["kind"], manifest["metadata"]["name"]
                raise DeployError(entry.alias, f"{kind}/{p.namespace}/{name}",
                                  exc.reason or str(exc.status), _status_message(exc)) from None
        if target.replicas() == 0:
            target.scale(1)  # scaled down earlier in this session; the apply does not undo that
        obj = self._wait_ready(entry, p)
        return Deployment(
            alias=entry.alias, kind="kubernetes", backend_url=p.backend_url or _isvc_url(obj),
            served_model_name=entry.served_model_name, model=entry.model,
            target=f"{p.target_kind}/{p.namespace}/{p.target_name}",
            revision=_revision(entry, p),
        )

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
            pods = diagnose_pods(self.cluster.core, p.namespace, p.pod_selector, self.cluster.timeout)
            reason = pods.reason or state.reason or "Timeout"
            message = pods.message or state.message
            raise DeployError(entry.alias, target, reason,
                              f"{message} (gave up after {entry.ready_timeout_s}s)") from None
        if state.failed:
            message = state.message
            if state.reason == "ProgressDeadlineExceeded":
                pods = diagnose_pods(self.cluster.core, p.namespace, p.pod_selector,
                                     self.cluster.timeout)
                if pods.reason and pods.reason != "NoPods":
                    message += f"; pods: {pods.reason}: {pods.message}"
            raise DeployError(entry.alias, target, state.reason or "Failed", message)
        assert obj is not None
        return obj

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


def _isvc_url(obj: dict[str, Any]) -> str | None:
    url = (obj.get("status") or {}).get("url")
    return f"{url.rstrip('/')}/v1" if url else None  # the vLLM runtime serves /v1


def _revision(entry: AliasEntry, p: Plan) -> str | None:
    if p.kind == "kserve" and entry.kserve is not None:
        return f"{entry.image} {entry.kserve.storage_uri.rsplit('@', 1)[-1]}"
    return entry.image
