"""The Kubernetes pytest options reach the deployer gates/platforms.py builds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy.catalog import load_catalog
from fixtures.platform.loopback import ThreadedServer
from gates.core import RUN_KEY
from gates.usage import kubernetes_deployer as _kubernetes_deployer
from tests.fake_kube import FakeKube


class _Config:
    def __init__(self, options: dict, run_id: str) -> None:
        self.options = options
        self.stash = {RUN_KEY: SimpleNamespace(run_id=run_id)}

    def getoption(self, name: str):
        return self.options[name]


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    server = ThreadedServer(FakeKube().app).start()
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server.url}'}}}}]\n"
        "users: [{name: fake, user: {}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    try:
        yield path
    finally:
        server.stop()


def _options(**over) -> dict:
    base = {"--namespace": "models", "--kube-context": None, "--kserve": False,
            "--force-conflicts": False, "--scale-gpu-holder": False, "--delete-cache": False,
            "--runtime-class": None, "--model-source": []}
    return {**base, **over}


def test_options_reach_the_deployer(kubeconfig: Path) -> None:
    config = _Config(_options(**{"--force-conflicts": True, "--scale-gpu-holder": True,
                                 "--delete-cache": True, "--runtime-class": "nvidia",
                                 "--model-source": ["coder-fim=pvc:weights/fim"]}),
                     "20261204T000000Z-abc123")
    deployer = _kubernetes_deployer(config, load_catalog())
    s = deployer.settings
    assert (s.force_conflicts, s.scale_gpu_holder, s.delete_cache, s.runtime_class) == (
        True, True, True, "nvidia")
    assert deployer.run_id == "20261204T000000Z-abc123"
    assert deployer.model_sources == {"coder-fim": "pvc:weights/fim"}


def test_defaults_never_force_and_never_scale_others(kubeconfig: Path) -> None:
    deployer = _kubernetes_deployer(_Config(_options(), "run-1"), load_catalog())
    s = deployer.settings
    assert (s.force_conflicts, s.scale_gpu_holder, s.delete_cache) == (False, False, False)


def test_a_malformed_model_source_is_a_usage_error(kubeconfig: Path) -> None:
    with pytest.raises(pytest.UsageError, match="expected ALIAS=hub or ALIAS=pvc:PATH"):
        _kubernetes_deployer(_Config(_options(**{"--model-source": ["coder-fim"]}), "r"),
                             load_catalog())


def test_the_plugin_registers_the_options() -> None:
    parser = pytest.Parser()
    import gates.k8s_options as plugin

    plugin.pytest_addoption(parser)
    names = {opt for group in parser._groups for o in group.options for opt in o.names()}
    assert {"--force-conflicts", "--scale-gpu-holder", "--delete-cache", "--model-source",
            "--runtime-class"} <= names
