"""The coder-fim gate's settings, read from the catalog's `gates.fim` block."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploy.catalog import AliasEntry

GATE = "fim"


class FimGateConfig(BaseModel):
    """`gates.fim` of an alias. Unknown fields are refused, so a misspelt threshold cannot be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_functional_rate: float = Field(ge=0, le=1)
    max_mangled_rate: float = Field(ge=0, le=1)
    max_tokens: int = Field(default=128, gt=0)
    max_budget_usd: float | None = Field(default=None, gt=0)  # the throwaway key's budget
    concurrency: int = Field(default=4, ge=1)  # requests in flight per transport
    check_concurrency: int = Field(default=2, ge=1)  # sandbox checks in flight
    cases: str = "fixtures/fim_cases.json"  # relative to the repository root
    request_timeout_s: float = Field(default=120, gt=0)
    spend_timeout_s: float = Field(default=30, gt=0)  # LiteLLM writes spend in batches


def gate_config(entry: AliasEntry) -> FimGateConfig:
    """The alias's FIM settings; a bad block names the alias and the field at fault."""
    try:
        return FimGateConfig.model_validate(entry.gate(GATE))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"catalog alias {entry.alias!r}, gates.{GATE}: {problems}") from None


def fim_family_of(entry: AliasEntry) -> str:
    if not entry.fim_family:
        raise ValueError(f"catalog alias {entry.alias!r}: the FIM gate needs `fim_family`")
    return entry.fim_family
