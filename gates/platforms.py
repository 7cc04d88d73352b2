"""Opening a gate session: a real gateway when one is configured, else the embedded platform."""

from __future__ import annotations

import os

import pytest

from deploy.catalog import Catalog
from deploy.litellm_admin import LiteLLMAdmin
from gates.parallel import worker_id
from gates.session import GateSession, Outputs, default_outputs


def run_outputs(config: pytest.Config) -> Outputs:
    """Where this run's ledger, catalog and table go (known before any platform starts)."""
    build_dir = config.getoption("--build-dir")
    control = config.getoption("--control")
    if control and not config.getoption("--gateway-url"):
        build_dir = build_dir / "controls" / control
    kind = "remote" if config.getoption("--gateway-url") else "embedded"
    outputs = default_outputs(kind, build_dir, config.getoption("--catalog"))
    if config.getoption("--outputs"):
        folder = config.getoption("--outputs")
        outputs = Outputs(folder / "ledger.jsonl", folder / "catalog.yaml", folder / "served-models.md")
    if config.getoption("--ledger"):
        outputs.ledger = config.getoption("--ledger")
    return outputs


def open_session(config: pytest.Config, catalog: Catalog) -> GateSession:
    catalog_path = config.getoption("--catalog")
    build_dir = config.getoption("--build-dir")
    url = config.getoption("--gateway-url")
    if url and config.getoption("--control"):
        raise pytest.UsageError("modelgate: --control runs on the embedded platform; drop --gateway-url")
    if url:
        master = config.getoption("--master-key") or os.environ.get("LITELLM_MASTER_KEY")
        if not master:
            raise pytest.UsageError(
                "modelgate: --gateway-url needs the master key (env LITELLM_MASTER_KEY or --master-key)"
            )
        admin = LiteLLMAdmin(url, master)
        if config.getoption("--no-deploy"):
            from deploy.preexisting import PreexistingDeployer

            deployer = PreexistingDeployer(admin)
        else:
            deployer = _kubernetes_deployer(config, catalog)
        kind = "remote"
    else:
        from deploy.local import open_embedded

        control = config.getoption("--control")
        if control:
            # Controls prove the gate, not a model: their verdicts never touch the real outputs.
            build_dir = build_dir / "controls" / control
        # Each xdist worker runs its own embedded platform, in its own folder.
        folder = "platform" + (f"-{worker_id(config)}" if worker_id(config) else "")
        admin, deployer, url = open_embedded(
            build_dir / "embedded" / folder, catalog,
            budget_status=config.getoption("--budget-status"), control=control,
        )
        kind = "embedded"
    return GateSession(
        catalog=catalog, catalog_path=catalog_path, outputs=run_outputs(config), platform_kind=kind,
        gateway_url=url, admin=admin, deployer=deployer,
    )


def _kubernetes_deployer(config: pytest.Config, catalog: Catalog):
    """The cluster deployer, checked before any gate runs: a missing cluster is a usage error."""
    from deploy.deploy_cli import parse_sources
    from deploy.k8s.config import KubeSettings
    from deploy.k8s.deployer import KubernetesDeployer
    from deploy.k8s.errors import ClusterUnavailable, ManifestError
    from gates.core import RUN_KEY

    state = config.stash.get(RUN_KEY, None)
    settings = KubeSettings(
        namespace=config.getoption("--namespace"),
        kube_context=config.getoption("--kube-context"),
        prefer_kserve=config.getoption("--kserve"),
        force_conflicts=config.getoption("--force-conflicts"),
        scale_gpu_holder=config.getoption("--scale-gpu-holder"),
        delete_cache=config.getoption("--delete-cache"),
        runtime_class=config.getoption("--runtime-class"),
        run_id=state.run_id if state else None,
    )
    try:
        sources = parse_sources(config.getoption("--model-source"))
        deployer = KubernetesDeployer(settings, model_sources=sources)
        deployer.preflight(catalog.aliases)
    except (ClusterUnavailable, ManifestError) as exc:
        raise pytest.UsageError(f"modelgate: {exc} (or pass --no-deploy)") from None
    return deployer
