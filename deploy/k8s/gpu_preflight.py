"""Who holds the GPUs: allocatable nvidia.com/gpu on schedulable nodes against the pods that
request them, each pod traced to the workload that owns it (Pod -> ReplicaSet -> Deployment)."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from pydantic import BaseModel

from deploy.k8s.apply import Cluster
from deploy.k8s.manifests import GPU

_HOLDING_PHASES = {"Pending", "Running", "Unknown"}  # a bound pod keeps its GPU until it ends


class Holder(BaseModel):
    """One pod holding GPUs and the top-level object that owns it."""

    pod: str
    namespace: str
    node: str
    gpus: int
    owner_kind: str | None = None
    owner_name: str | None = None
    labels: dict[str, str] = {}
    terminating: bool = False  # deleted, still holding the GPU until its containers stop

    @property
    def owner(self) -> str:
        if self.owner_kind:
            return f"{self.owner_kind}/{self.namespace}/{self.owner_name}"
        return f"Pod/{self.namespace}/{self.pod}"

    def describe(self) -> str:
        return f"pod {self.namespace}/{self.pod} on {self.node} ({self.gpus} GPU, owner {self.owner})"


class GpuState(BaseModel):
    allocatable: int
    holders: list[Holder]
    nodes: list[str]

    @property
    def in_use(self) -> int:
        return sum(h.gpus for h in self.holders)

    @property
    def free(self) -> int:
        return self.allocatable - self.in_use


def _gpus(pod_spec: dict[str, Any]) -> int:
    def need(c: dict[str, Any]) -> int:
        res = c.get("resources") or {}
        return int((res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0)
    main = sum(need(c) for c in pod_spec.get("containers") or [])
    init = max([need(c) for c in pod_spec.get("initContainers") or []], default=0)
    return max(main, init)


def _schedulable(node: dict[str, Any]) -> bool:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    # A cordon or a NoSchedule taint other than the GPU one (which our pods tolerate).
    return not any(t.get("effect") in ("NoSchedule", "NoExecute") and t.get("key") != GPU
                   for t in spec.get("taints") or [])


def _controller(meta: dict[str, Any]) -> dict[str, Any] | None:
    refs = meta.get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def _owner(cluster: Cluster, pod: dict[str, Any]) -> tuple[str | None, str | None]:
    meta = pod["metadata"]
    ref = _controller(meta)
    if ref is None:
        return None, None
    if ref["kind"] == "ReplicaSet":
        try:
            rs = cluster.json(cluster.apps.read_namespaced_replica_set(
                ref["name"], meta["namespace"], _request_timeout=cluster.timeout))
        except client.ApiException:
            return ref["kind"], ref["name"]
        up = _controller(rs["metadata"])
        if up is not None:
            return up["kind"], up["name"]
    return ref["kind"], ref["name"]


def gpu_state(cluster: Cluster) -> GpuState:
    """GPUs allocatable on schedulable nodes and every pod bound there that requests some."""
    nodes = [cluster.json(n) for n in cluster.core.list_node(_request_timeout=cluster.timeout).items]
    usable = {n["metadata"]["name"]: int(((n.get("status") or {}).get("allocatable") or {})
                                         .get(GPU) or 0)
              for n in nodes if _schedulable(n)}
    pods = [cluster.json(p) for p in
            cluster.core.list_pod_for_all_namespaces(_request_timeout=cluster.timeout).items]
    holders = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        gpus = _gpus(pod.get("spec") or {})
        if not gpus or node not in usable or \
                (pod.get("status") or {}).get("phase") not in _HOLDING_PHASES:
            continue
        kind, name = _owner(cluster, pod)
        holders.append(Holder(pod=pod["metadata"]["name"], namespace=pod["metadata"]["namespace"],
                              node=node, gpus=gpus, owner_kind=kind, owner_name=name,
                              labels=pod["metadata"].get("labels") or {},
                              terminating=bool(pod["metadata"].get("deletionTimestamp"))))
    return GpuState(allocatable=sum(usable.values()), holders=holders, nodes=sorted(usable))
