"""How the Kubernetes deployer reaches a cluster: in-cluster, KUBECONFIG, or an explicit context."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from pydantic import BaseModel, ConfigDict, Field

from deploy.k8s.errors import ClusterUnavailable

# Service-account files a pod gets; their presence means "running inside a cluster".
_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeSettings(BaseModel):
    """Where and how to deploy. Timeouts are seconds; poll intervals are short in tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    kube_context: str | None = None
    kubeconfig: str | None = None  # a path; default: $KUBECONFIG, then ~/.kube/config
    field_manager: str = "modelgate"
    poll_interval_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # How long a scale-down may take to release its pods before the next GPU alias starts.
    scale_down_timeout_s: float = Field(default=300.0, gt=0)
    # Use the InferenceService of aliases whose catalog entry has a `kserve` block
    # even when their backend is raw-vllm (qwen-local has both paths).
    prefer_kserve: bool = False
    # Server-side apply takes fields another manager owns only when the user asks for it.
    force_conflicts: bool = False
    # A GPU held by a workload the suite did not start: scale it to zero for the run
    # (restored at the end) instead of stopping with an error naming it.
    scale_gpu_holder: bool = False
    # The model-cache PVCs the suite created are kept (weights survive) unless this is set.
    delete_cache: bool = False
    # Labels every object the suite creates (modelgate.dev/run-id); None: one is made up.
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
    # runtimeClassName for GPU pods (e.g. "nvidia" where the GPU operator installs one).
    runtime_class: str | None = None
    kserve_namespace: str = "kserve"  # where KServe's inferenceservice-config ConfigMap lives


def api_client_from(settings: KubeSettings) -> client.ApiClient:
    """An ApiClient for the configured cluster, or ClusterUnavailable saying what was tried."""
    if settings.kube_context is None and settings.kubeconfig is None and _SA_TOKEN.exists():
        try:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        except ConfigException as exc:
            raise ClusterUnavailable(f"in-cluster configuration is unusable: {exc}") from None
    path = settings.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    # KUBECONFIG may list several files; the loader merges them.
    first = path.split(os.pathsep)[0]
    if not Path(first).exists():
        raise ClusterUnavailable(
            f"no Kubernetes configuration: not in a cluster and kubeconfig {first!r} does not exist "
            "(set KUBECONFIG or pass kubeconfig/kube_context)"
        )
    try:
        return config.new_client_from_config(config_file=path, context=settings.kube_context)
    except (ConfigException, ValueError, OSError) as exc:
        context = f" context {settings.kube_context!r}" if settings.kube_context else ""
        raise ClusterUnavailable(f"kubeconfig {first!r}{context} is unusable: {exc}") from None
