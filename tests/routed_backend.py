"""A gateway double with one alias routed to a reference backend that lives in the test process.

The gate run (a subprocess) points at the gateway with `--gateway-url ... --no-deploy`; the
test reads the backend's request counter, so it can prove which runs asked the model at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.catalog import load_catalog
from deploy.litellm_admin import LiteLLMAdmin
from deploy.local import litellm_params, model_info
from fixtures.platform.embedded import EmbeddedPlatform
from fixtures.platform.reference_backends import ScriptedBackend


@dataclass
class RoutedBackend:
    platform: EmbeddedPlatform
    backend: ScriptedBackend

    @property
    def gateway_args(self) -> tuple[str, ...]:
        return (f"--gateway-url={self.platform.gateway_url}", "--no-deploy")

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "LITELLM_MASTER_KEY": self.platform.master_key, **extra}


@contextmanager
def routed_backend(alias: str, backend: ScriptedBackend, folder: Path) -> Iterator[RoutedBackend]:
    entry = load_catalog().get(alias)
    with backend, EmbeddedPlatform(folder) as platform:
        admin = LiteLLMAdmin(platform.gateway_url, platform.master_key)
        try:
            admin.register_model(alias, litellm_params(entry, backend.base_url), model_info(entry))
            yield RoutedBackend(platform, backend)
        finally:
            admin.close()
