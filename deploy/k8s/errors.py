"""Errors of the Kubernetes deployer; each message names the alias, the object and the reason."""

from __future__ import annotations

from typing import Any


class ClusterUnavailable(RuntimeError):
    """No usable cluster: no configuration found, or the API server does not answer."""


class ManifestError(ValueError):
    """A catalog entry that cannot become manifests (unpinned image, revision or storage URI)."""


class DeployError(RuntimeError):
    """An alias did not become ready; `reason` is the Kubernetes reason (ImagePullBackOff, ...).

    `short` is one line for the summary; `diagnosis` is everything gathered (conditions, events,
    pods, the engine's last log lines and its final exception) for the ledger's details.
    """

    def __init__(self, alias: str, target: str, reason: str, message: str,
                 diagnosis: dict[str, Any] | None = None) -> None:
        self.alias = alias
        self.target = target
        self.reason = reason
        self.detail = message
        self.diagnosis: dict[str, Any] = {"alias": alias, "target": target, "reason": reason,
                                          "message": message, **(diagnosis or {})}
        final = self.diagnosis.get("final_exception")
        first = message.splitlines()[0] if message else ""
        self.short = f"{alias}: {target} {reason}" + (f": {final}" if final else
                                                      f": {first}" if first else "")
        super().__init__(f"{alias}: {target} not ready: {reason}: {message}")


class ApplyConflict(DeployError):
    """Server-side apply refused: fields of the object belong to another field manager."""

    def __init__(self, alias: str, target: str, managers: list[str], fields: list[str],
                 message: str) -> None:
        self.managers, self.fields = managers, fields
        who = ", ".join(managers) or "another field manager"
        text = (f"owned by {who}: {', '.join(fields) or message}; the suite does not take it "
                "over (pass --force-conflicts to take ownership, or rename or remove it)")
        super().__init__(alias, target, "FieldManagerConflict", text,
                         {"managers": managers, "fields": fields, "api_message": message})


class GpuHeld(DeployError):
    """No free GPU: a workload the suite did not start holds it."""
