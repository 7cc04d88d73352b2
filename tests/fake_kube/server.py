"""FakeKube: a STAND-IN for the Kubernetes API server (not Kubernetes), for the suite's own tests.

It speaks the REST paths and JSON shapes the official kubernetes Python client uses: apps/v1
deployments (with /scale) and replicasets, v1 services, persistentvolumeclaims, pods (with /log,
and across namespaces), nodes and events, serving.kserve.io/v1beta1 inferenceservices, KServe's
ClusterServingRuntimes and its inferenceservice-config ConfigMap; GET, LIST (labelSelector,
fieldSelector), DELETE (foreground: a Deployment's pods and an InferenceService's predictor go
with it) and PATCH (server-side apply with dryRun=All, merge, strategic merge). Errors are
`kind: Status` objects.

Instead of controllers it runs scripted transitions, advanced by reads of the owning object so
that tests are deterministic: a Deployment becomes ready, never schedules (Insufficient
nvidia.com/gpu), fails to pull its image, crash-loops with logs, exceeds its progress deadline
or reports ReplicaFailure; an InferenceService's Ready flips to True (in Standard/RawDeployment
mode it creates a `<name>-predictor` Deployment, as KServe does) or it reports InvalidSpec /
ModelLoadFailed in `status.modelStatus`. Pods are bound to one node with `gpus` allocatable
nvidia.com/gpu and owned Pod -> ReplicaSet -> Deployment.

Server-side apply follows Kubernetes' field ownership: managedFields per (manager, operation) in
the FieldsV1 shape; an unforced apply that changes a value another manager owns is a 409 whose
`details.causes` name the manager and the field; force moves the fields. Simplifications,
deliberately: maps merge, lists are owned and replaced whole (no merge keys), and fields a manager
stops applying are not pruned. Every change of a replica count is recorded in `history`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fake_kube.resources import RESOURCES, Resource
from tests.fake_kube.store import (
    ApiError,
    Path,
    dotted,
    from_fields_v1,
    leaves,
    matches,
    merge_patch,
    same,
    to_fields_v1,
)

GPU = "nvidia.com/gpu"
UNSCHEDULABLE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
Scenario = Literal["ready", "unschedulable", "image_pull", "crash_loop", "progress_deadline",
                   "replica_failure", "invalid_spec", "model_load_failed"]


class Script(BaseModel):
    """What happens to a Deployment (or an InferenceService: `ready` only) after a spec change.

    The transition shows once the object has been read `after_reads` times since the change.
    """

    scenario: Scenario = "ready"
    after_reads: int = 1
    logs: list[str] = []


@dataclass(frozen=True)
class ReplicaEvent:
    kind: str
    name: str
    replicas: int
    gpu: bool


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None


def _gpu_of(pod_spec: dict[str, Any]) -> bool:
    for c in pod_spec.get("containers") or []:
        res = c.get("resources") or {}
        if GPU in (res.get("limits") or {}) or GPU in (res.get("requests") or {}):
            return True
    return False


class FakeKube:
    """Stand-in Kubernetes API server state plus its starlette app (`.app`)."""

    def __init__(self, namespaces: tuple[str, ...] = ("default", "models"), *,
                 kserve: bool = True, gpus: int = 1,
                 runtimes: tuple[str, ...] = ("kserve-huggingfaceserver",),
                 modelcar: bool = True) -> None:
        self.namespaces = set(namespaces)
        self.kserve = kserve  # False: a cluster without the KServe CRDs
        # One schedulable node with `gpus` allocatable nvidia.com/gpu (a single L4 by default).
        self.nodes: list[dict[str, Any]] = [_node("gpu-node-1", gpus)]
        self.runtimes = {name: ["huggingface"] for name in runtimes}  # ClusterServingRuntimes
        self.modelcar = modelcar  # storageInitializer.enableModelcar in inferenceservice-config
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.scripts: dict[str, Script] = {}
        self.history: list[ReplicaEvent] = []
        self.calls: list[Call] = []
        self.logs: dict[str, list[str]] = {}  # pod name -> previous container's log lines
        self.deleted: list[str] = []  # "Kind/ns/name" of every DELETE
        self._reads: dict[tuple[str, str, str], int] = {}
        self._lock = threading.RLock()
        self._rv = itertools.count(1000)
        self._clock = itertools.count(1)
        self._ips = itertools.count(10)
        self.app = Starlette(routes=[
            Route("/version", self._version),
            Route("/version/", self._version),
            Route("/api/v1/namespaces/{ns}", self._namespace),
            Route("/api/v1/nodes", self._nodes),
            Route("/api/v1/pods", self._all_pods),
            Route("/api/v1/namespaces/kserve/configmaps/inferenceservice-config",
                  self._kserve_config),
            Route("/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{name}",
                  self._runtime),
            Route("/api/v1/namespaces/{ns}/pods/{name}/log", self._pod_log),
            Route("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale", self._scale,
                  methods=["GET", "PATCH"]),
            Route("/api/v1/namespaces/{ns}/{plural}", self._collection),
            Route("/api/v1/namespaces/{ns}/{plural}/{name}", self._item,
                  methods=["GET", "PATCH", "DELETE"]),
            Route("/apis/{group}/{version}/namespaces/{ns}/{plural}", self._collection),
            Route("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", self._item,
                  methods=["GET", "PATCH", "DELETE"]),
        ])

    # -- test-facing helpers -------------------------------------------------------------------
    def script(self, name: str, scenario: Scenario = "ready", *, after_reads: int = 1,
               logs: list[str] | None = None) -> None:
        self.scripts[name] = Script(scenario=scenario, after_reads=after_reads, logs=logs or [])

    def put(self, obj: dict[str, Any], manager: str = "kubectl",
            operation: Literal["Update", "Apply"] = "Update") -> dict[str, Any]:
        """Create an object as another client would (a pre-existing workload; `Apply` for a
        GitOps controller that uses server-side apply)."""
        plural = next(r.plural for r in RESOURCES.values() if r.kind == obj["kind"])
        meta = obj["metadata"]
        with self._lock:
            self.namespaces.add(meta["namespace"])
            return copy.deepcopy(self._write(RESOURCES[plural], meta["namespace"], meta["name"],
                                             obj, manager, operation, force=True))

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def max_gpu_up_at_once(self) -> int:
        """Over the recorded history: the most GPU workloads with replicas > 0 at one time."""
        current: dict[tuple[str, str], int] = {}
        worst = 0
        for ev in self.history:
            if ev.gpu:
                current[(ev.kind, ev.name)] = ev.replicas
                worst = max(worst, sum(1 for n in current.values() if n > 0))
        return worst

    def replicas_of(self, name: str, namespace: str = "models") -> int | None:
        obj = self.get("deployments", namespace, name)
        return None if obj is None else obj["spec"].get("replicas", 1)

    def reads_of(self, plural: str, name: str) -> int:
        """GETs of one object so far (readiness polls)."""
        return sum(1 for c in self.calls if c.method == "GET" and c.path.endswith(f"/{plural}/{name}"))

    # -- storage --------------------------------------------------------------------------------
    def _now(self) -> str:
        tick = next(self._clock)
        return f"2026-01-01T{tick // 3600 % 24:02d}:{tick // 60 % 60:02d}:{tick % 60:02d}Z"

    def _store(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Save if different; bump resourceVersion only on a real change."""
        key = (plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        old = self.objects.get(key)
        if old is not None and same(old, obj):
            return old
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        return obj

    def _write(self, res: Resource, ns: str, name: str, body: dict[str, Any], manager: str,
               operation: str, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        if ns not in self.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
        if body.get("kind") != res.kind or body.get("apiVersion") != res.api_version:
            raise ApiError(400, "BadRequest", f"body is {body.get('apiVersion')}/{body.get('kind')}, "
                           f"the URL is {res.api_version}/{res.kind}")
        if (body.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        key = (res.plural, ns, name)
        old = self.objects.get(key)
        if old is None:
            obj = self._create(res, ns, name, body)
            touched = set(leaves(body))
        else:
            obj = copy.deepcopy(old)
            for part in ("labels", "annotations"):
                if part in body["metadata"]:
                    obj["metadata"][part] = merge_patch(obj["metadata"].get(part) or {},
                                                        body["metadata"][part])
            if "spec" in body:
                obj["spec"] = merge_patch(obj.get("spec") or {}, body["spec"])
            if operation == "Apply" and not force:
                self._refuse_conflicts(res, old, body, manager)
            if same(old, obj):
                return old  # a no-op apply writes nothing
            before, after = leaves(old), leaves(obj)
            touched = set(leaves(body)) if operation == "Apply" else \
                {p for p in after.keys() | before.keys() if before.get(p) != after.get(p)}
            if not same(old.get("spec"), obj.get("spec")):
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._own(obj, manager, operation, res.api_version, touched, old)
        if dry_run:
            return obj  # dryRun=All: validated and answered, never stored
        obj = self._store(res.plural, obj)
        self._reads[key] = 0 if old is None or not same(old.get("spec"), obj.get("spec")) \
            else self._reads.get(key, 0)
        self._after_change(res, obj, old)
        return self.objects[key]

    def _refuse_conflicts(self, res: Resource, old: dict[str, Any], body: dict[str, Any],
                          manager: str) -> None:
        """409 when the apply changes a value another manager owns (what SSA does unforced)."""
        applied, stored = leaves(body), leaves(old)
        causes = []
        for entry in old["metadata"].get("managedFields", []):
            if entry["manager"] == manager:
                continue
            owned = from_fields_v1(entry.get("fieldsV1") or {})
            for path in sorted(p for p in applied if p in owned and stored.get(p) != applied[p]):
                causes.append({"reason": "FieldManagerConflict", "field": dotted(path),
                               "message": f'conflict with "{entry["manager"]}" using '
                                          f'{entry["apiVersion"]}'})
        if causes:
            lines = "\n".join(f"- {c['message']}: {c['field']}" for c in causes)
            raise ApiError(409, "Conflict", f"Apply failed with {len(causes)} conflict"
                           f"{'s' if len(causes) > 1 else ''}: {lines}",
                           details={"name": old["metadata"]["name"], "group": res.prefix,
                                    "kind": res.plural, "causes": causes})

    def _create(self, res: Resource, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        obj = {
            "apiVersion": res.api_version, "kind": res.kind,
            "metadata": {
                "name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                "generation": 1, "creationTimestamp": self._now(),
                **({"labels": meta["labels"]} if meta.get("labels") else {}),
                **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
            },
            "spec": copy.deepcopy(body.get("spec") or {}),
            "status": {},
        }
        if res.kind == "Deployment":
            obj["spec"].setdefault("replicas", 1)
        elif res.kind == "Service":
            obj["spec"].setdefault("clusterIP", f"10.96.0.{next(self._ips)}")
            obj["spec"].setdefault("type", "ClusterIP")
        elif res.kind == "PersistentVolumeClaim":
            obj["status"] = {"phase": "Bound"}
        return obj

    def _own(self, obj: dict[str, Any], manager: str, operation: str, api_version: str,
             touched: set[Path], old: dict[str, Any] | None) -> None:
        """managedFields per (manager, operation), FieldsV1-shaped; changed fields move to the
        writer (after a forced apply or any update), equal values stay shared."""
        before = leaves(old) if old else {}
        after = leaves(obj)
        moved = {p for p in touched if before.get(p) != after.get(p)}
        entries = []
        mine: set[Path] = set()
        for entry in obj["metadata"].get("managedFields", []):
            paths = from_fields_v1(entry.get("fieldsV1") or {})
            if (entry["manager"], entry["operation"]) == (manager, operation):
                mine = paths if operation == "Update" else set()
                continue
            paths -= moved
            if paths:
                entries.append({**entry, "fieldsV1": to_fields_v1(paths)})
        entries.append({"manager": manager, "operation": operation, "apiVersion": api_version,
                        "time": self._now(), "fieldsType": "FieldsV1",
                        "fieldsV1": to_fields_v1(mine | touched)})
        obj["metadata"]["managedFields"] = entries

    # -- scripted controllers -------------------------------------------------------------------
    def _after_change(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if res.kind == "Deployment":
            before = None if old is None else old["spec"].get("replicas", 1)
            if obj["spec"].get("replicas", 1) != before:
                self.history.append(ReplicaEvent("Deployment", obj["metadata"]["name"],
                                                 obj["spec"].get("replicas", 1),
                                                 _gpu_of(obj["spec"]["template"]["spec"])))
            self._sync_deployment(obj)
        elif res.kind == "InferenceService":
            self._sync_isvc(obj, old)

    def _sync_deployment(self, dep: dict[str, Any]) -> None:
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        script = self.scripts.get(name, Script())
        shown = self._reads.get(("deployments", ns, name), 0) >= script.after_reads
        wanted = dep["spec"].get("replicas", 1)
        template = dep["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        rs_name = f"{name}-{digest}"
        self._store("replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "uid": rs_name,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": name, "uid": dep["metadata"]["uid"],
                                              "controller": True}]},
            "spec": {"replicas": wanted, "selector": copy.deepcopy(dep["spec"]["selector"])},
            "status": {"replicas": wanted}})
        pods = [self._pod(dep, f"{name}-{digest}-{i}", digest, script, shown) for i in range(wanted)]
        keep = {p["metadata"]["name"] for p in pods}
        for key in [k for k, o in self.objects.items() if k[0] == "pods" and k[1] == ns
                    and o["metadata"].get("labels", {}).get("fake.modelgate/owner") == name
                    and k[2] not in keep]:
            del self.objects[key]
        ready = sum(1 for p in pods if p["status"].pop("_ready"))
        for pod in pods:
            self._store("pods", pod)
        available = ready == wanted
        conditions = [{"type": "Available", "status": "True" if available else "False",
                       "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                       "message": "Deployment has minimum availability." if available
                       else "Deployment does not have minimum availability."}]
        if script.scenario == "replica_failure" and shown and wanted > 0:
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                               "message": f'pods "{name}-{digest}-0" is forbidden: exceeded quota: '
                                          "gpu-quota, requested: requests.nvidia.com/gpu=1, "
                                          "used: requests.nvidia.com/gpu=1, limited: "
                                          "requests.nvidia.com/gpu=1"})
        if script.scenario == "progress_deadline" and shown and wanted > 0:
            conditions.append({"type": "Progressing", "status": "False",
                               "reason": "ProgressDeadlineExceeded",
                               "message": f'ReplicaSet "{name}-{digest}" has timed out progressing.'})
        else:
            conditions.append({"type": "Progressing", "status": "True",
                               "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                               "message": f'ReplicaSet "{name}-{digest}" is progressing.'})
        status = {"observedGeneration": dep["metadata"]["generation"], "replicas": wanted,
                  "updatedReplicas": wanted, "readyReplicas": ready, "availableReplicas": ready,
                  "unavailableReplicas": wanted - ready, "conditions": conditions}
        if wanted - ready == 0:
            status.pop("unavailableReplicas")
        updated = copy.deepcopy(dep)
        updated["status"] = status
        self._store("deployments", updated)

    def _pod(self, dep: dict[str, Any], name: str, digest: str, script: Script,
             shown: bool) -> dict[str, Any]:
        ns = dep["metadata"]["namespace"]
        spec = copy.deepcopy(dep["spec"]["template"]["spec"])
        container = spec["containers"][0]
        labels = {**(dep["spec"]["template"].get("metadata", {}).get("labels") or {}),
                  "pod-template-hash": digest, "fake.modelgate/owner": dep["metadata"]["name"]}
        cs: dict[str, Any] = {"name": container["name"], "image": container["image"],
                              "imageID": "", "ready": False, "restartCount": 0, "started": False,
                              "state": {"waiting": {"reason": "ContainerCreating"}}}
        scheduled = {"type": "PodScheduled", "status": "True"}
        phase, ready = "Pending", False
        sc = script.scenario
        if sc == "unschedulable":
            scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": UNSCHEDULABLE}
            self._event(ns, name, "FailedScheduling", UNSCHEDULABLE, source="default-scheduler")
            cs = None
        elif sc == "image_pull":
            img = container["image"]
            reason = "ImagePullBackOff" if shown else "ErrImagePull"
            cs["state"] = {"waiting": {"reason": reason, "message": f'Back-off pulling image "{img}"'}}
            self._event(ns, name, "Failed", f'Failed to pull image "{img}": rpc error: code = '
                        f'NotFound desc = failed to pull and unpack image "{img}": not found')
            if shown:
                self._event(ns, name, "BackOff", f'Back-off pulling image "{img}"')
        elif sc == "crash_loop" and shown:
            phase = "Running"
            cs.update(restartCount=3, state={"waiting": {"reason": "CrashLoopBackOff", "message":
                      f"back-off 40s restarting failed container={container['name']} pod={name}"}},
                      lastState={"terminated": {"exitCode": 1, "reason": "Error"}})
            self.logs[name] = list(script.logs)
            self._event(ns, name, "BackOff", "Back-off restarting failed container")
        elif sc == "ready" and shown:
            phase, ready = "Running", True
            cs.update(ready=True, started=True, state={"running": {"startedAt": "2026-01-01T00:00:00Z"}})
        if sc != "unschedulable":
            spec["nodeName"] = self.nodes[0]["metadata"]["name"]
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": name,
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": f"{dep['metadata']['name']}-{digest}",
                                              "uid": f"{dep['metadata']['name']}-{digest}",
                                              "controller": True}]},
            "spec": spec,
            "status": {"phase": phase,
                       "conditions": [scheduled, {"type": "Ready", "status": str(ready)}],
                       **({"containerStatuses": [cs]} if cs else {}), "_ready": ready},
        }
        old = self.objects.get(("pods", ns, name))
        if old is not None:
            pod["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        return pod

    def _event(self, ns: str, pod: str, reason: str, message: str, source: str = "kubelet") -> None:
        name = f"{pod}.{reason.lower()}"
        if ("events", ns, name) in self.objects:
            return
        self._store("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "source": {"component": source}, "firstTimestamp": self._now(),
            "lastTimestamp": self._now(),
        })

    def _sync_isvc(self, isvc: dict[str, Any], old: dict[str, Any] | None) -> None:
        ns, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        mode = (isvc["metadata"].get("annotations") or {}).get(
            "serving.kserve.io/deploymentMode", "Standard")
        predictor = isvc["spec"]["predictor"]
        gpu = GPU in ((predictor.get("model") or {}).get("resources") or {}).get("limits", {})
        min_replicas = predictor.get("minReplicas", 1)
        predictor_ready = True
        if mode in ("Serverless", "Knative"):
            before = None if old is None else old["spec"]["predictor"].get("minReplicas", 1)
            if min_replicas != before:
                self.history.append(ReplicaEvent("InferenceService", name, min_replicas, gpu))
        else:
            dep_name = f"{name}-predictor"
            if ("deployments", ns, dep_name) not in self.objects:
                model = predictor.get("model") or {}
                labels = {"serving.kserve.io/inferenceservice": name, "app": dep_name}
                container = {"name": "kserve-container", "image": model.get("image", "kserve"),
                             "args": model.get("args", []), "resources": model.get("resources", {})}
                self.scripts.setdefault(dep_name, Script(after_reads=0))
                self._write(RESOURCES["deployments"], ns, dep_name, {
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": dep_name, "namespace": ns, "labels": labels},
                    "spec": {
                        "replicas": max(min_replicas, 1),  # the HPA never goes below 1
                        "selector": {"matchLabels": {"app": dep_name}},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [container]}},
                    },
                }, "kserve-controller", "Update")
            dep = self.objects[("deployments", ns, dep_name)]
            predictor_ready = dep["spec"].get("replicas", 1) > 0 and \
                dep["status"].get("availableReplicas", 0) >= 1
        script = self.scripts.get(name, Script())
        shown = self._reads.get(("inferenceservices", ns, name), 0) >= script.after_reads
        ready = shown and predictor_ready and script.scenario == "ready"
        generation = isvc["metadata"]["generation"]
        flag = "True" if ready else "False"
        conditions = [
            {"type": "IngressReady", "status": flag, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "PredictorReady", "status": flag, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": flag, "lastTransitionTime": "2026-01-01T00:00:00Z",
             **({} if ready else {"reason": "PredictorNotReady",
                                  "message": "predictor is not ready yet"})},
        ]
        status: dict[str, Any] = {
            "observedGeneration": generation if ready else generation - 1,
            "conditions": conditions,
            "modelStatus": {"states": {"activeModelState": "Loaded" if ready else "Pending",
                                       "targetModelState": "Loaded"}},
        }
        if ready:
            status["url"] = f"http://{name}-predictor.{ns}.svc.cluster.local"
        if shown and script.scenario in ("invalid_spec", "model_load_failed"):
            invalid = script.scenario == "invalid_spec"
            status["modelStatus"] = {
                "transitionStatus": "InvalidSpec" if invalid else "BlockedByFailedLoad",
                "states": {"activeModelState": "" if invalid else "FailedToLoad",
                           "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {
                    "reason": "InvalidPredictorSpec" if invalid else "ModelLoadFailed",
                    "location": f"{name}-predictor-0",
                    "message": script.logs[-1] if script.logs else
                    ("specified runtime does not support specified framework/version"
                     if invalid else "model failed to load")}}
            conditions[-1].update(reason=status["modelStatus"]["transitionStatus"],
                                  message=status["modelStatus"]["lastFailureInfo"]["message"])
        updated = copy.deepcopy(isvc)
        updated["status"] = status
        self._store("inferenceservices", updated)

    # -- HTTP -----------------------------------------------------------------------------------
    def _record(self, request: Request) -> None:
        self.calls.append(Call(request.method, request.url.path, dict(request.query_params),
                               request.headers.get("content-type")))

    def _resource(self, request: Request) -> Resource:
        p = request.path_params
        res = RESOURCES.get(p["plural"])
        prefix = f"/apis/{p['group']}/{p['version']}" if "group" in p else "/api/v1"
        if res is None or res.prefix != prefix or (res.custom and not self.kserve):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({prefix}/{p['plural']})")
        return res

    def _read(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        key = (res.plural, ns, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{res.plural}.{res.api_version.split("/")[0]} '
                           f'"{name}" not found')
        if res.kind in ("Deployment", "InferenceService"):
            self._reads[key] = self._reads.get(key, 0) + 1  # time passes for scripted transitions
            if res.kind == "Deployment":
                self._sync_deployment(self.objects[key])
            else:
                self._sync_isvc(self.objects[key], self.objects[key])
        return self.objects[key]

    async def _handle(self, request: Request, fn: Any) -> Response:
        body = await request.body()
        with self._lock:
            self._record(request)
            try:
                return fn(body)
            except ApiError as err:
                return JSONResponse(err.status(), status_code=err.code)

    async def _version(self, request: Request) -> Response:
        return await self._handle(request, lambda _: JSONResponse({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64",
        }))

    async def _namespace(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            ns = request.path_params["ns"]
            if ns not in self.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
            return JSONResponse({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns, "uid": ns},
                                 "status": {"phase": "Active"}})
        return await self._handle(request, run)

    async def _collection(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            res, ns = self._resource(request), request.path_params["ns"]
            q = request.query_params
            if q.get("watch") in ("true", "1"):
                raise ApiError(405, "MethodNotAllowed", "the stand-in does not stream watches")
            items = [copy.deepcopy(o) for (plural, o_ns, _), o in sorted(self.objects.items())
                     if plural == res.plural and o_ns == ns
                     and matches(o, q.get("labelSelector"), q.get("fieldSelector"))]
            if q.get("limit"):
                items = items[: int(q["limit"])]
            return JSONResponse({"apiVersion": res.api_version, "kind": f"{res.kind}List",
                                 "metadata": {"resourceVersion": str(next(self._rv))},
                                 "items": items})
        return await self._handle(request, run)

    async def _item(self, request: Request) -> Response:
        def run(body: bytes) -> Response:
            res, ns, name = self._resource(request), request.path_params["ns"], request.path_params["name"]
            if request.method == "GET":
                return JSONResponse(copy.deepcopy(self._read(res, ns, name)))
            if request.method == "DELETE":
                return JSONResponse(self._delete(res, ns, name))
            created = (res.plural, ns, name) not in self.objects
            obj = self._patch(request, res, ns, name, body)
            return JSONResponse(copy.deepcopy(obj), status_code=201 if created else 200)
        return await self._handle(request, run)

    def _patch(self, request: Request, res: Resource, ns: str, name: str,
               body: bytes) -> dict[str, Any]:
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip()
        q = request.query_params
        try:
            patch = yaml.safe_load(body) if ctype == "application/apply-patch+yaml" else json.loads(body)
        except (yaml.YAMLError, ValueError) as exc:
            raise ApiError(400, "BadRequest", f"cannot decode the patch body: {exc}") from None
        if ctype == "application/apply-patch+yaml":
            if not q.get("fieldManager"):
                raise ApiError(400, "BadRequest",
                               "PATCH, application/apply-patch+yaml: fieldManager is required")
            return self._write(res, ns, name, patch, q["fieldManager"], "Apply",
                               force=q.get("force") == "true", dry_run=q.get("dryRun") == "All")
        if ctype == "application/strategic-merge-patch+json" and res.custom:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media "
                           "types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"the stand-in does not accept {ctype!r}")
        old = self.objects.get((res.plural, ns, name))
        if old is None:
            raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
        merged = merge_patch(old, patch)
        merged.setdefault("metadata", {}).update(name=name, namespace=ns)
        return self._write(res, ns, name, merged, q.get("fieldManager") or "kubernetes-python",
                           "Update")

    async def _scale(self, request: Request) -> Response:
        def run(body: bytes) -> Response:
            ns, name = request.path_params["ns"], request.path_params["name"]
            res = RESOURCES["deployments"]
            dep = self.objects.get(("deployments", ns, name))  # not a poll: no time passes
            if dep is None:
                raise ApiError(404, "NotFound", f'deployments.apps "{name}" not found')
            if request.method == "PATCH":
                patch = json.loads(body)
                replicas = (patch.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise ApiError(422, "Invalid", "spec.replicas must be a non-negative integer")
                new = copy.deepcopy(dep)
                new["spec"]["replicas"] = replicas
                dep = self._write(res, ns, name, new, "kubernetes-python", "Update")
            selector = ",".join(f"{k}={v}" for k, v in
                                sorted(dep["spec"]["selector"]["matchLabels"].items()))
            return JSONResponse({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: dep["metadata"][k] for k in
                             ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": dep["spec"].get("replicas", 1)},
                "status": {"replicas": dep["status"].get("replicas", 0), "selector": selector},
            })
        return await self._handle(request, run)

    def _delete(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        """Delete an object; a Deployment takes its ReplicaSets and pods along (foreground
        propagation, done at once), an InferenceService its predictor Deployment."""
        key = (res.plural, ns, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{res.plural} "{name}" not found')
        obj = self.objects.pop(key)
        self.deleted.append(f"{res.kind}/{ns}/{name}")
        if res.kind == "Deployment":
            if obj["spec"].get("replicas", 1) > 0:
                self.history.append(ReplicaEvent("Deployment", name, 0,
                                                 _gpu_of(obj["spec"]["template"]["spec"])))
            for k in [k for k, o in self.objects.items() if k[1] == ns and (
                    (k[0] == "pods" and o["metadata"].get("labels", {}).get(
                        "fake.modelgate/owner") == name)
                    or (k[0] == "replicasets" and o["metadata"]["ownerReferences"][0]["name"] == name))]:
                del self.objects[k]
        elif res.kind == "InferenceService" and ("deployments", ns, f"{name}-predictor") in self.objects:
            self._delete(RESOURCES["deployments"], ns, f"{name}-predictor")
        return {"kind": "Status", "apiVersion": "v1", "status": "Success",
                "details": {"name": name, "kind": res.plural}}

    async def _nodes(self, request: Request) -> Response:
        return await self._handle(request, lambda _: JSONResponse({
            "apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
            "items": copy.deepcopy(self.nodes)}))

    async def _all_pods(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            for (plural, _ns, _name), obj in list(self.objects.items()):
                if plural == "deployments":  # time passes for every workload
                    self._sync_deployment(obj)
            q = request.query_params
            items = [copy.deepcopy(o) for (plural, _, _), o in sorted(self.objects.items())
                     if plural == "pods" and matches(o, q.get("labelSelector"), None)]
            return JSONResponse({"apiVersion": "v1", "kind": "PodList",
                                 "metadata": {"resourceVersion": str(next(self._rv))},
                                 "items": items})
        return await self._handle(request, run)

    async def _runtime(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            name = request.path_params["name"]
            if not self.kserve or name not in self.runtimes:
                raise ApiError(404, "NotFound",
                               f'clusterservingruntimes.serving.kserve.io "{name}" not found')
            return JSONResponse({
                "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
                "metadata": {"name": name},
                "spec": {"supportedModelFormats": [{"name": f, "version": "1", "autoSelect": True}
                                                   for f in self.runtimes[name]],
                         "containers": [{"name": "kserve-container",
                                         "image": "kserve/huggingfaceserver:v0.20.0",
                                         "args": ["--model_name={{.Name}}"]}]}})
        return await self._handle(request, run)

    async def _kserve_config(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            if not self.kserve:
                raise ApiError(404, "NotFound", 'configmaps "inferenceservice-config" not found')
            storage = {"image": "kserve/storage-initializer:v0.20.0",
                       "enableModelcar": self.modelcar, "cpuModelcar": "10m",
                       "memoryModelcar": "15Mi"}
            return JSONResponse({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "inferenceservice-config",
                                              "namespace": "kserve"},
                                 "data": {"storageInitializer": json.dumps(storage)}})
        return await self._handle(request, run)

    async def _pod_log(self, request: Request) -> Response:
        def run(_: bytes) -> Response:
            ns, name = request.path_params["ns"], request.path_params["name"]
            if ("pods", ns, name) not in self.objects:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            previous = request.query_params.get("previous") == "true"
            lines = self.logs.get(name) if previous else []
            if previous and lines is None:
                raise ApiError(400, "BadRequest", f'previous terminated container in pod "{name}" '
                               "not found")
            tail = int(request.query_params.get("tailLines") or 0)
            lines = (lines or [])[-tail:] if tail else (lines or [])
            return PlainTextResponse("".join(f"{line}\n" for line in lines))
        return await self._handle(request, run)


def _node(name: str, gpus: int) -> dict[str, Any]:
    allocatable = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    if gpus:
        allocatable[GPU] = str(gpus)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]
                     if gpus else []},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable)}}
