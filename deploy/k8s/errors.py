"""Errors of the Kubernetes deployer; each message names the alias, the object and the reason."""

from __future__ import annotations


class ClusterUnavailable(RuntimeError):
    """No usable cluster: no configuration found, or the API server does not answer."""


class ManifestError(ValueError):
    """A catalog entry that cannot become manifests (unpinned image or storage URI, no kserve block)."""


class DeployError(RuntimeError):
    """An alias did not become ready; `reason` is the Kubernetes reason (ImagePullBackOff, ...)."""

    def __init__(self, alias: str, target: str, reason: str, message: str) -> None:
        self.alias = alias
        self.target = target
        self.reason = reason
        self.detail = message
        super().__init__(f"{alias}: {target} not ready: {reason}: {message}")
