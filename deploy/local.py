"""The local deployer: serves aliases as processes on the embedded platform and routes them."""

from __future__ import annotations

import contextlib
from pathlib import Path

from deploy.catalog import AliasEntry, Catalog
from deploy.deployer import STAND_IN_INFO, Deployment
from deploy.litellm_admin import LiteLLMAdmin
from fixtures.platform.children import close_all
from fixtures.platform.embedded import EmbeddedPlatform, standin_model
from fixtures.platform.standin_models import StandIn

# LiteLLM provider prefixes per mode (CONTRACTS.md §1): hosted_vllm forwards prompts unchanged.
_PROVIDER = {"chat": "hosted_vllm", "completion": "hosted_vllm", "embedding": "hosted_vllm"}
# LiteLLM's `openai/` provider refuses to call an api_base without a key (500 "Missing
# credentials"). The egress holds the provider key and ignores this one: a placeholder, not a secret.
EGRESS_PLACEHOLDER_KEY = "placeholder-the-egress-holds-the-provider-key"


def litellm_params(entry: AliasEntry, api_base: str, served_model_name: str | None = None) -> dict:
    """The alias's `litellm_params` as real LiteLLM needs them (CONTRACTS.md §1)."""
    # An external alias reaches its egress (agentgateway) as an ordinary OpenAI backend.
    provider = "openai" if entry.backend == "external" else _PROVIDER[entry.mode]
    params = {"model": f"{provider}/{served_model_name or entry.served_model_name}", "api_base": api_base}
    if provider == "openai":
        params["api_key"] = EGRESS_PLACEHOLDER_KEY
    return params


def model_info(entry: AliasEntry, standin: StandIn | None = None) -> dict:
    info = {
        "mode": entry.mode,
        "input_cost_per_token": entry.price.input_per_token,
        "output_cost_per_token": entry.price.output_per_token,
    }
    if standin is not None:
        info[STAND_IN_INFO] = {"model": standin.name, "revision": standin.revision}
        if standin.dimensions:
            info["output_vector_size"] = standin.dimensions  # LiteLLM's field for embedding size
    return info


class LocalDeployer:
    """Deploy = start the alias's stand-in engine and register the alias at the gateway."""

    def __init__(self, platform: EmbeddedPlatform, admin: LiteLLMAdmin, catalog: Catalog | None = None):
        self.platform = platform
        self.admin = admin
        self.catalog = catalog
        self._routes: dict[str, str] = {}

    def deploy(self, entry: AliasEntry) -> Deployment:
        if entry.backend == "external":
            return self._deploy_external(entry)
        standin = standin_model(entry)
        engine = self.platform.serve(entry, self.catalog)
        if entry.alias not in self._routes:
            self._routes[entry.alias] = self.admin.register_model(
                entry.alias, litellm_params(entry, engine.url, engine.served_model_name),
                model_info(entry, standin),
            )
        return Deployment(
            alias=entry.alias,
            kind="local",
            backend_url=engine.url,
            served_model_name=engine.served_model_name,
            model=standin.name,
            target=f"local vLLM (CPU) pid {engine.pid} at {engine.base_url}",
            revision=standin.revision,
            stand_in=True,
            dimensions=standin.dimensions,
        )

    def _deploy_external(self, entry: AliasEntry) -> Deployment:
        """An external alias: its egress stand-in (holding the provider key) behind the gateway."""
        egress = self.platform.serve_external(entry)
        label = f"simulated {entry.served_model_name} (Anthropic stand-in via agentgateway stand-in)"
        if entry.alias not in self._routes:
            info = {**model_info(entry), STAND_IN_INFO: {"model": label, "revision": None}}
            self._routes[entry.alias] = self.admin.register_model(
                entry.alias, litellm_params(entry, egress.base_url), info
            )
        return Deployment(
            alias=entry.alias,
            kind="local",
            backend_url=egress.base_url,
            served_model_name=entry.served_model_name,
            model=label,
            target=f"agentgateway stand-in at {egress.base_url} -> Anthropic Messages stand-in",
            stand_in=True,
        )

    def release(self, alias: str) -> None:
        route = self._routes.pop(alias, None)
        if route is not None:
            self.admin.delete_model(route)

    def close(self) -> None:
        # The platform stops even when an unroute fails or is interrupted (Ctrl-C in cleanup):
        # the routes die with its gateway, its processes must not outlive the run.
        try:
            for alias in list(self._routes):
                with contextlib.suppress(Exception):
                    self.release(alias)
        finally:
            self.platform.close()


class ControlDeployer:
    """Deploy = start the alias's reference backend (a gate control) and route the alias to it."""

    def __init__(self, platform: EmbeddedPlatform, admin: LiteLLMAdmin, control: str):
        from fixtures.platform.controls import control_backend

        self.platform = platform
        self.admin = admin
        self.control = control
        self._make = control_backend
        self._live: dict[str, tuple[object, str]] = {}

    def deploy(self, entry: AliasEntry) -> Deployment:
        if entry.alias not in self._live:
            backend = self._make(entry, self.control).start()
            self._live[entry.alias] = (backend, None)  # stopped by close() from now on
            route = self.admin.register_model(
                entry.alias, litellm_params(entry, backend.base_url), model_info(entry)
            )
            self._live[entry.alias] = (backend, route)
        backend = self._live[entry.alias][0]
        return Deployment(
            alias=entry.alias,
            kind="local",
            backend_url=backend.base_url,
            served_model_name=entry.served_model_name,
            model=f"reference backend ({self.control} control)",
            target=f"{self.control} control at {backend.base_url}",
            stand_in=True,
        )

    def release(self, alias: str) -> None:
        backend, route = self._live.pop(alias, (None, None))
        if route is not None:
            self.admin.delete_model(route)
        if backend is not None:
            backend.stop()

    def close(self) -> None:
        # As LocalDeployer.close; a backend may be a process (the streaming control), so what
        # an interrupt left unreleased is still stopped before the platform.
        try:
            for alias in list(self._live):
                with contextlib.suppress(Exception):
                    self.release(alias)
        finally:
            left = [backend.stop for backend, _route in self._live.values()]
            self._live.clear()
            close_all(*left, self.platform.close)


def open_embedded(
    run_dir: Path, catalog: Catalog, *, budget_status: int = 422, control: str | None = None
) -> tuple[LiteLLMAdmin, LocalDeployer | ControlDeployer, str]:
    """Start the embedded platform; returns its admin client, a deployer onto it, its gateway URL.

    With `control`, aliases are served by their reference backends instead of stand-in models.
    """
    platform = EmbeddedPlatform(run_dir, budget_status=budget_status).start()
    try:
        admin = LiteLLMAdmin(platform.gateway_url, platform.master_key)
        deployer = (
            ControlDeployer(platform, admin, control) if control
            else LocalDeployer(platform, admin, catalog)
        )
    except BaseException:
        platform.close()
        raise
    return admin, deployer, platform.gateway_url
