"""What every deployer (local processes, Kubernetes) promises the gates."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel

from deploy.catalog import AliasEntry

# The key of a gateway route's model_info naming the stand-in it serves ({"model", "revision"}):
# the local deployer writes it, so a run pointed at that gateway with --no-deploy knows it too.
STAND_IN_INFO = "modelgate_stand_in"


class Deployment(BaseModel):
    """One alias, served and ready: where its backend answers and what it actually serves."""

    alias: str
    kind: Literal["local", "kubernetes", "external", "preexisting"]
    # OpenAI-compatible base URL of the backend itself (the Service, or the local vLLM port), with /v1.
    backend_url: str | None
    served_model_name: str
    # What really runs: the stand-in on the embedded platform, the catalog model on a cluster.
    model: str
    # Identifies the deployed thing: Deployment/InferenceService name, or the local process.
    target: str
    revision: str | None = None
    stand_in: bool = False
    # Vector size of an embeddings stand-in (which differs from the catalog's); None: the catalog's.
    dimensions: int | None = None


class Deployer(Protocol):
    def deploy(self, entry: AliasEntry) -> Deployment:
        """Make the alias served and ready (blocking), registering it at the gateway if needed."""
        ...

    def release(self, alias: str) -> None:
        """Undo what deploy() changed for this alias (stop processes / restore replica counts)."""
        ...

    def close(self) -> None:
        """Release everything this deployer changed; safe to call twice and on interrupt."""
        ...
