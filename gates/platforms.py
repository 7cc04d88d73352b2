"""Opening a gate session: a real gateway when one is configured, else the embedded platform."""

from __future__ import annotations

import pytest

from deploy.catalog import Catalog
from deploy.litellm_admin import LiteLLMAdmin
from gates import usage
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
    problem = usage.platform_problem(config)  # checked at configure; here for other entry points
    if problem:
        raise pytest.UsageError(problem)
    if url:
        admin = LiteLLMAdmin(url, usage.master_key(config) or "")
        if config.getoption("--no-deploy"):
            from deploy.preexisting import PreexistingDeployer

            deployer = PreexistingDeployer(admin)
        else:
            deployer = config.stash.get(usage.DEPLOYER_KEY, None) or usage.kubernetes_deployer(
                config, catalog)
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
