"""KServe support for an alias before anything is applied: the named runtime exists and serves
the model format, and modelcars (oci:// storage URIs) are enabled in inferenceservice-config."""

from __future__ import annotations

import json
import logging

from kubernetes import client

from deploy.k8s.apply import Cluster
from deploy.k8s.manifests import ISVC_GROUP, Plan

log = logging.getLogger(__name__)
RUNTIME_VERSION = "v1alpha1"


def _runtime(cluster: Cluster, namespace: str, name: str) -> dict | None:
    """The namespaced ServingRuntime of that name, else the ClusterServingRuntime."""
    for call, args in (
        (cluster.custom.get_namespaced_custom_object,
         (ISVC_GROUP, RUNTIME_VERSION, namespace, "servingruntimes", name)),
        (cluster.custom.get_cluster_custom_object,
         (ISVC_GROUP, RUNTIME_VERSION, "clusterservingruntimes", name)),
    ):
        try:
            return call(*args, _request_timeout=cluster.timeout)
        except client.ApiException as exc:
            if exc.status not in (403, 404):
                raise
    return None


def kserve_problems(cluster: Cluster, plan: Plan, kserve_namespace: str) -> list[str]:
    """What keeps this InferenceService from running here (empty: nothing found)."""
    problems = []
    runtime = _runtime(cluster, plan.namespace, plan.runtime or "")
    if runtime is None:
        problems.append(f"runtime {plan.runtime!r} is neither a ServingRuntime in "
                        f"{plan.namespace!r} nor a ClusterServingRuntime")
    else:
        formats = [f.get("name") for f in (runtime.get("spec") or {}).get("supportedModelFormats")
                   or []]
        if plan.model_format not in formats:
            problems.append(f"runtime {plan.runtime!r} supports model formats {formats}, "
                            f"not {plan.model_format!r}")
    if (plan.storage_uri or "").startswith("oci://"):
        try:
            cm = cluster.core.read_namespaced_config_map(
                "inferenceservice-config", kserve_namespace, _request_timeout=cluster.timeout)
        except client.ApiException as exc:
            # A namespaced service account may not read KServe's namespace: say so, go on.
            log.warning("cannot read %s/inferenceservice-config (%s): modelcar support unchecked",
                        kserve_namespace, exc.status)
            return problems
        try:
            storage = json.loads((cm.data or {}).get("storageInitializer") or "{}")
        except ValueError:
            storage = {}
        if not storage.get("enableModelcar"):
            problems.append(f"modelcars are disabled: storage URI {plan.storage_uri.split('@')[0]}"
                            f"@... needs storageInitializer.enableModelcar: true in "
                            f"{kserve_namespace}/inferenceservice-config")
    return problems
