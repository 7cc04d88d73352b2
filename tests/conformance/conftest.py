"""The conformance tier: the real LiteLLM proxy and the gateway double, side by side.

Runs only when a path inside this folder is asked for (`make conformance`), never under a plain
`pytest tests`: it needs the proxy's own virtualenv (scripts/install-litellm.sh).

Backends: `--conformance-backends reference` (the default, what CI runs) routes every alias to
its known-good reference backend (the gate controls: deterministic OpenAI-compatible loopback
servers, and the agentgateway/Anthropic stand-in for claude-haiku), so the tier is bounded in
time. The routes, streams, tool calls and errors crossing the gateway are the same a vLLM engine
produces; the tier proves the gateways, not the models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.catalog import Catalog, load_catalog
from deploy.litellm_admin import LiteLLMAdmin
from deploy.local import litellm_params, model_info
from fixtures.platform.controls import control_backend
from fixtures.platform.gateway import GatewayDouble
from fixtures.platform.loopback import ThreadedServer
from tests.conformance.proxy import ProxyError, RealProxy, proxy_config

HERE = Path(__file__).resolve().parent
DOUBLE_MASTER = "sk-conformance-double-master"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("conformance").addoption(
        "--conformance-backends", choices=["reference"], default="reference",
        help="what the gateways route the aliases to: the known-good reference backends",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collected only when the command line names this folder or a file in it."""
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if any(path == HERE or HERE in path.parents for path in asked):
        return None
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.conformance)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: the real LiteLLM proxy tier (make conformance)")


@dataclass
class Gateway:
    """One gateway under test: its name, URL and master key (never printed)."""

    name: str
    url: str
    master_key: str
    admin: LiteLLMAdmin

    def __repr__(self) -> str:  # pytest shows ids, never the key
        return f"Gateway({self.name})"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def api_bases(catalog: Catalog) -> Iterator[dict[str, str]]:
    """Every alias's known-good reference backend, started once for both gateways."""
    with contextlib.ExitStack() as stack:
        bases = {}
        for entry in catalog.aliases:
            backend = control_backend(entry, "known-good").start()
            stack.callback(backend.stop)
            bases[entry.alias] = backend.base_url
        yield bases


@pytest.fixture(scope="session")
def real_proxy(catalog: Catalog, api_bases: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    proxy = RealProxy(proxy_config(catalog, api_bases), tmp_path_factory.mktemp("litellm"))
    try:
        proxy.start()
    except ProxyError as exc:
        pytest.fail(str(exc), pytrace=False)
    admin = LiteLLMAdmin(proxy.url, proxy.master_key, attempts=1)
    try:
        yield Gateway(f"litellm {proxy.version()}", proxy.url, proxy.master_key, admin)
    finally:
        admin.close()
        proxy.stop()


@pytest.fixture(scope="session")
def double(catalog: Catalog, api_bases: dict[str, str]) -> Iterator[Gateway]:
    """The gateway double with the same routes as the real proxy (as the local deployer adds)."""
    gateway = GatewayDouble(DOUBLE_MASTER)
    for alias, api_base in api_bases.items():
        entry = catalog.get(alias)
        gateway.register_model(alias, litellm_params(entry, api_base), model_info(entry))
    with ThreadedServer(gateway) as server:
        admin = LiteLLMAdmin(server.url, DOUBLE_MASTER, attempts=1)
        try:
            yield Gateway("double", server.url, DOUBLE_MASTER, admin)
        finally:
            admin.close()
            gateway.close()


@pytest.fixture(scope="session", params=["litellm", "double"])
def gateway(request: pytest.FixtureRequest) -> Gateway:
    """Each gate path through both gateways (the real proxy first)."""
    return request.getfixturevalue("real_proxy" if request.param == "litellm" else "double")
