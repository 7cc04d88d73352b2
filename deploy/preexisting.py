"""`--no-deploy`: gate what the gateway already routes, deploying and releasing nothing."""

from __future__ import annotations

from deploy.catalog import AliasEntry
from deploy.deployer import STAND_IN_INFO, Deployment
from deploy.litellm_admin import LiteLLMAdmin


class PreexistingDeployer:
    def __init__(self, admin: LiteLLMAdmin):
        self.admin = admin

    def deploy(self, entry: AliasEntry) -> Deployment:
        routes = [m for m in self.admin.model_info() if m.model_name == entry.alias]
        if not routes:
            raise LookupError(
                f"{entry.alias}: the gateway has no route for this alias (GET /model/info); "
                "deploy it first or drop --no-deploy"
            )
        params = routes[0].litellm_params
        api_base = params.get("api_base")
        # An embedded platform's route says which stand-in it serves (deploy/local.py).
        standin = routes[0].model_info.get(STAND_IN_INFO)
        standin = standin if isinstance(standin, dict) and standin.get("model") else None
        return Deployment(
            alias=entry.alias,
            kind="external" if entry.backend == "external" else "preexisting",
            backend_url=api_base,
            served_model_name=str(params.get("model", entry.served_model_name)).split("/", 1)[-1],
            model=standin["model"] if standin else entry.model,
            target=f"gateway route {entry.alias} -> {api_base or params.get('model')}",
            revision=standin.get("revision") if standin else None,
            stand_in=standin is not None,
            # A real route is gated against the catalog's vector size, a stand-in against its own.
            dimensions=routes[0].model_info.get("output_vector_size") if standin else None,
        )

    def release(self, alias: str) -> None:
        pass

    def close(self) -> None:
        pass
