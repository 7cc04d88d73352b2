"""The shape of the InferenceService fields this suite emits (a CRD: kubernetes_validate has no
schema for it). Strict, so a typo or a misplaced field in the manifest builder fails validation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelFormat(_Strict):
    name: Literal["vLLM", "huggingface"]


class Resources(_Strict):
    requests: dict[str, str] | None = None
    limits: dict[str, str]


class ModelSpec(_Strict):
    model_format: ModelFormat = Field(alias="modelFormat")
    storage_uri: str = Field(alias="storageUri", pattern=r"^oci://[^\s@]+@sha256:[0-9a-f]{64}$")
    image: str | None = None
    args: list[str] = []
    resources: Resources | None = None


class Predictor(_Strict):
    min_replicas: int = Field(alias="minReplicas", ge=0)
    max_replicas: int | None = Field(default=None, alias="maxReplicas", ge=1)
    model: ModelSpec


class Spec(_Strict):
    predictor: Predictor


class Metadata(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class InferenceServiceShape(_Strict):
    api_version: Literal["serving.kserve.io/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["InferenceService"]
    metadata: Metadata
    spec: Spec
