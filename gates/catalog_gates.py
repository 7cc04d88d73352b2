"""The gates the catalog declares, generated: one test item per (alias, gate kind).

For every alias with a `gates:` block this plugin provides what a hand-written per-alias plugin
used to: a marker (`-m <alias>`, registered by the core from the catalog), a session fixture
named after the alias (`coder_chat`: deployed, with a throwaway budgeted key) and, under
`gates/`, one item per gate with a readable id: `gates::coder-chat::humaneval`. Each kind's
options are registered once (gates/kinds). Adding an alias that reuses a kind is a catalog edit.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.catalog import DEFAULT_CATALOG, Catalog, CatalogError, load_catalog
from gates.kinds.registry import GateContext, GateKind, kind, kinds, run_gate
from gates.verdicts import alias_mark

GATES_DIR = Path(__file__).resolve().parent


def fixture_name(alias: str) -> str:
    return alias.replace("-", "_")


def _aliases_using(catalog_path: Path) -> dict[str, list[str]]:
    """kind -> aliases binding it, for `--help` (the default catalog when it loads)."""
    try:
        catalog = load_catalog(catalog_path)
    except CatalogError:
        return {}
    using: dict[str, list[str]] = {}
    for entry in catalog.aliases:
        for name in entry.gates.names():
            using.setdefault(name, []).append(entry.alias)
    return using


def pytest_addoption(parser: pytest.Parser) -> None:
    using = _aliases_using(DEFAULT_CATALOG)
    for name, gate in sorted(kinds().items()):
        aliases = ", ".join(using.get(name, [])) or "no alias in the default catalog"
        group = parser.getgroup(f"modelgate-{name}", f"modelgate gate kind {name} ({aliases})")
        for option in gate.options:
            group.addoption(option.flag, **option.kwargs)


def _alias_fixture(alias: str, gates: list[GateKind]) -> Callable[..., Any]:
    def deployed(gate_session):
        with gate_session.alias_context(alias, gate=gates[0].name) as context:
            yield context
        for gate in gates:
            if gate.after_key is not None:
                gate.after_key(context)

    deployed.__doc__ = f"{alias} deployed, with a throwaway budgeted key scoped to it for this run."
    return pytest.fixture(scope="session", name=fixture_name(alias))(deployed)


def alias_plugin(alias: str, gates: list[GateKind]) -> types.ModuleType:
    """The alias's plugin, generated: its deploy-and-key fixture."""
    module = types.ModuleType(f"gates.alias.{fixture_name(alias)}", f"The {alias} plugin (generated).")
    module.deployed = _alias_fixture(alias, gates)  # type: ignore[attr-defined]
    return module


@pytest.hookimpl(trylast=True)  # after the core has loaded and validated the catalog
def pytest_configure(config: pytest.Config) -> None:
    from gates.core import CATALOG_KEY

    catalog: Catalog | None = config.stash.get(CATALOG_KEY, None)
    if catalog is None:
        return
    for entry in catalog.aliases:
        names = entry.gates.names()
        name = f"modelgate-alias-{entry.alias}"
        if names and not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(alias_plugin(entry.alias, [kind(n) for n in names]), name)
    if config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR and not _in_repo(config):
        # Run from another folder with no test path: the gates are still the suite's.
        config.args = [str(GATES_DIR)]


def _in_repo(config: pytest.Config) -> bool:
    return GATES_DIR.parent in (config.invocation_params.dir, *config.invocation_params.dir.parents)


def _gate_test(alias: str, gate: GateKind) -> Callable[..., None]:
    fixture = fixture_name(alias)

    def test(request: pytest.FixtureRequest, **fixtures: Any) -> None:
        from gates.core import gate_scope

        run_gate(GateContext(fixtures[fixture], request.config, gate_scope(request.config)),
                 gate.name)

    # The alias's fixture is an argument, so it is set up in the setup phase: a deployment or
    # route that fails there is a test error (ERROR), as for any fixture.
    test.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(fixture, inspect.Parameter.KEYWORD_ONLY),
    ])
    test.__doc__ = gate.doc
    test.__name__ = gate.name
    return test


class AliasGates(pytest.Collector):
    """One alias's gates, as the catalog binds them."""

    def __init__(self, *, entry: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry

    def collect(self) -> Iterator[pytest.Item]:
        for name in self.entry.gates.names():
            item = pytest.Function.from_parent(self, name=name, callobj=_gate_test(self.entry.alias, kind(name)))
            item.add_marker(alias_mark(self.entry.alias))
            yield item


class CatalogGates(pytest.Directory):
    """gates/: the catalog's aliases, each with its gates (nothing else is collected here)."""

    def collect(self) -> Iterator[pytest.Collector]:
        from gates.core import CATALOG_KEY

        catalog = self.config.stash[CATALOG_KEY]
        for entry in catalog.aliases:
            if entry.gates.names():
                yield AliasGates.from_parent(self, name=entry.alias, entry=entry)


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path.resolve() == GATES_DIR:
        # The same ids whatever the rootdir (pytest run from another folder): gates::<alias>::<kind>.
        return CatalogGates.from_parent(parent, path=path, nodeid="gates")
    return None
