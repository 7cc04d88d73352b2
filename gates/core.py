"""The core pytest plugin: options, one marker per catalog alias, the gate session, the summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.catalog import DEFAULT_CATALOG, Catalog, CatalogError, load_catalog
from gates.session import REPO_ROOT, GateSession, default_outputs
from gates.summary import print_summary

CATALOG_KEY = pytest.StashKey[Catalog]()
SESSION_KEY = pytest.StashKey[GateSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelgate", "model platform acceptance gates")
    group.addoption(
        "--gateway-url",
        default=os.environ.get("MODELGATE_GATEWAY_URL"),
        help="LiteLLM gateway to gate (env MODELGATE_GATEWAY_URL). Without it the embedded "
        "platform is started on loopback.",
    )
    group.addoption(
        "--master-key",
        default=None,
        help="LiteLLM master key (prefer env LITELLM_MASTER_KEY: argv is visible to other users)",
    )
    group.addoption(
        "--no-deploy", action="store_true",
        help="the aliases are already served: gate them as they are",
    )
    group.addoption(
        "--namespace", default=os.environ.get("MODELGATE_NAMESPACE", "default"),
        help="Kubernetes namespace the aliases deploy to",
    )
    group.addoption("--kube-context", default=None, help="kubeconfig context (default: current)")
    group.addoption(
        "--kserve", action="store_true",
        help="deploy aliases that have a kserve block through KServe instead of raw vLLM",
    )
    group.addoption("--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog YAML")
    group.addoption(
        "--ledger", type=Path, default=None,
        help="results ledger (default: ledger/results.jsonl for a real platform, "
        "build/embedded/ledger.jsonl for the embedded one)",
    )
    group.addoption(
        "--outputs", type=Path, default=None,
        help="write ledger, catalog and table into this folder instead of the defaults",
    )
    group.addoption("--build-dir", type=Path, default=REPO_ROOT / "build", help="run outputs")
    group.addoption(
        "--scope", choices=["auto", "promotion", "release"], default="auto",
        help="promotion: the fixed subsets (e.g. 20 HumanEval tasks); release: full sets. "
        "auto: promotion when -m selects aliases, release for a plain `pytest`",
    )
    group.addoption(
        "--control", choices=["known-good", "known-bad", "erroring"], default=None,
        help="gate a reference backend instead of a model, to prove the gate itself: "
        "known-good must pass, known-bad must fail, erroring must end as ERROR",
    )
    group.addoption(
        "--budget-status", type=int, choices=[400, 429], default=429,
        help="embedded gateway double: status of budget refusals (older LiteLLM 400, current 429)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--catalog")
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise pytest.UsageError(f"modelgate: the catalog is not usable:\n{exc}") from None
    config.stash[CATALOG_KEY] = catalog
    for entry in catalog.aliases:
        config.addinivalue_line(
            "markers", f"{entry.alias}: the gates of alias {entry.alias} ({entry.model})"
        )


def gate_scope(config: pytest.Config) -> str:
    scope = config.getoption("--scope")
    if scope != "auto":
        return scope
    return "promotion" if config.getoption("markexpr") else "release"


def alias_order(config: pytest.Config) -> list[str]:
    return config.stash[CATALOG_KEY].names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Group gate tests by alias in catalog order, so each alias is deployed once and the
    # one-GPU rule (one serving alias at a time) costs one start per alias.
    order = {alias: i for i, alias in enumerate(alias_order(config))}

    def rank(item: pytest.Item) -> int:
        for mark in item.iter_markers():
            if mark.name in order:
                return order[mark.name]
        return -1

    items.sort(key=rank)


@pytest.fixture(scope="session")
def gate_session(request: pytest.FixtureRequest):
    """The run's platform and ledger; started on first use so `pytest tests` never starts it."""
    from gates.platforms import open_session

    session = open_session(request.config, request.config.stash[CATALOG_KEY])
    request.config.stash[SESSION_KEY] = session
    try:
        yield session
    finally:
        session.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gate = session.config.stash.get(SESSION_KEY, None)
    if gate is None or not gate.records:
        return
    gate.write_status()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    gate = config.stash.get(SESSION_KEY, None)
    if gate is None or not gate.records:
        return
    print_summary(gate, gate.statuses, terminalreporter=terminalreporter)


__all__ = ["default_outputs", "gate_scope"]
