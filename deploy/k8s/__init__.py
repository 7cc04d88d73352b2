"""Deploying catalog aliases to Kubernetes: manifests, server-side apply, readiness, one GPU."""

from deploy.k8s.config import KubeSettings
from deploy.k8s.deployer import KubernetesDeployer
from deploy.k8s.errors import ApplyConflict, ClusterUnavailable, DeployError, GpuHeld, ManifestError
from deploy.k8s.signals import close_on_signals

__all__ = [
    "ApplyConflict", "ClusterUnavailable", "DeployError", "GpuHeld", "KubeSettings",
    "KubernetesDeployer", "ManifestError", "close_on_signals",
]
