"""Deploying catalog aliases to Kubernetes: manifests, server-side apply, readiness, one GPU."""

from deploy.k8s.config import KubeSettings
from deploy.k8s.deployer import KubernetesDeployer
from deploy.k8s.errors import ClusterUnavailable, DeployError, ManifestError
from deploy.k8s.signals import close_on_signals

__all__ = [
    "ClusterUnavailable", "DeployError", "KubeSettings", "KubernetesDeployer", "ManifestError",
    "close_on_signals",
]
