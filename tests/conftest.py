"""Shared fixtures of the suite's own tests.

Real-engine tests (marked `engine`) share ONE embedded platform per session: one gateway double
and the stand-in engines, each started once, whatever the number of tests that use them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.catalog import Catalog, load_catalog
from deploy.deployer import Deployment
from deploy.litellm_admin import LiteLLMAdmin


class SharedPlatform:
    """The session's embedded platform, deploying aliases on demand (each engine once)."""

    def __init__(self, platform, admin: LiteLLMAdmin, catalog: Catalog):
        from deploy.local import LocalDeployer

        self.platform = platform
        self.admin = admin
        self.catalog = catalog
        self.deployer = LocalDeployer(platform, admin, catalog)
        self._deployed: dict[str, Deployment] = {}

    @property
    def gateway_url(self) -> str:
        return self.platform.gateway_url

    def deploy(self, alias: str) -> Deployment:
        if alias not in self._deployed:
            self._deployed[alias] = self.deployer.deploy(self.catalog.get(alias))
        return self._deployed[alias]

    def engine(self, alias: str):
        """The running engine that serves `alias` (started on first use, shared after)."""
        return self.platform.serve(self.catalog.get(alias), self.catalog)

    def gate_env(self) -> dict[str, str]:
        """Environment for a gate run pointed at this platform as if it were a real one."""
        return {**os.environ, "LITELLM_MASTER_KEY": self.platform.master_key}


@pytest.fixture(scope="session")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedPlatform]:
    from fixtures.platform.embedded import EmbeddedPlatform

    platform = EmbeddedPlatform(tmp_path_factory.mktemp("embedded-platform")).start()
    admin = LiteLLMAdmin(platform.gateway_url, platform.master_key)
    shared = SharedPlatform(platform, admin, load_catalog())
    try:
        yield shared
    finally:
        shared.deployer.close()
        admin.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Real-engine tests last: the shared engines stay up until the session ends, and timing
    # tests (the latency harness's 2 ms accuracy) must not share two cores with them.
    items.sort(key=lambda item: item.get_closest_marker("engine") is not None)
