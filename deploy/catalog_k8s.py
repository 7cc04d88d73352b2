"""The per-alias `kubernetes:` block of the catalog: where weights come from, resources, probes.

Kept apart from deploy/catalog.py (which only names the field) so the deploy fields have one
owner; it lives outside deploy/k8s/ because deploy/catalog.py imports it and deploy/k8s imports
the catalog.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A Kubernetes quantity: "2", "500m", "16Gi", "8G".
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CpuMemory(_Strict):
    cpu: str | None = Field(default=None, pattern=_QUANTITY)
    memory: str = Field(pattern=_QUANTITY)


class KubernetesFields(_Strict):
    """How an alias runs on a cluster (raw vLLM, TEI, KServe); every field has an upstream source.

    - `hub_id` + `revision`: `vllm serve <hub id> --revision <sha>` / TEI `--model-id --revision`,
      downloaded into the Hub cache on the cache PVC (`HF_HOME`, or TEI's `/data`).
    - `source: pvc` + `pvc_path`: the weights are pre-staged on the cache PVC at that path; only
      then is `HF_HUB_OFFLINE=1` set (the vLLM and TEI guides: offline once cached).
    - `hf_token_secret`: an optional Secret whose key `token` becomes `HF_TOKEN`.
    - KServe: `kserve_runtime` names the ServingRuntime explicitly (default the upstream
      `kserve-huggingfaceserver`, format `huggingface`); the weights come from the modelcar in
      the `kserve.storage_uri` of the entry.
    """

    hub_id: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    # A full commit sha: a branch or tag can move under the pinned image.
    revision: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    source: Literal["hub", "pvc"] = "hub"
    pvc_path: str | None = Field(default=None, pattern=r"^[\w.-]+(/[\w.-]+)*$")
    cache_size: str = Field(default="50Gi", pattern=_QUANTITY)
    hf_token_secret: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    requests: CpuMemory
    limits: CpuMemory
    # Start-up budget (download + load + compile): the startup probe allows this long before
    # liveness takes over; production-stack's default is 60 x 10 s.
    startup_budget_s: int = Field(default=600, ge=30)
    kserve_runtime: str = "kserve-huggingfaceserver"
    kserve_model_format: str = "huggingface"

    @model_validator(mode="after")
    def _source_is_complete(self) -> KubernetesFields:
        if self.source == "pvc" and not self.pvc_path:
            raise ValueError("source 'pvc' needs 'pvc_path' (the folder on the cache PVC)")
        if self.source == "hub" and not self.hub_id:
            raise ValueError("source 'hub' needs 'hub_id'")
        return self
