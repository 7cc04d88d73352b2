"""Parallel gate runs (`pytest -n N`): one worker per alias, one run id, one GPU alias at a time.

- Every gate test gets `xdist_group(<alias>)` and `--dist load` becomes `--dist loadgroup`, so
  all tests of an alias run on one worker (the alias is deployed and keyed once); the
  scheduler also groups by gate folder (see `alias_scheduler`).
- The controller makes the run id and hands it to the workers (`workerinput`); the ledger
  appends are locked, and the statuses are derived and written once, by the controller.
- A GPU alias (`gpu_count > 0`) deployed by the Kubernetes deployer holds an inter-process
  file lock from its deploy until its last test ends: the platform has one GPU, and the
  deployer makes room for a GPU alias by scaling the others down.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from filelock import FileLock

from deploy.catalog import AliasEntry

RUN_ID_INPUT = "modelgate_run_id"
LOADGROUP_INPUT = "modelgate_loadgroup"
GPU_LOCK_NAME = "gpu-alias.lock"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def worker_id(config: pytest.Config) -> str | None:
    return config.workerinput.get("workerid") if is_worker(config) else None


def worker_run_id(config: pytest.Config) -> str | None:
    """The controller's run id, on a worker."""
    return config.workerinput.get(RUN_ID_INPUT) if is_worker(config) else None


def use_loadgroup(config: pytest.Config) -> None:
    """`-n N` alone means `--dist load`; gates need each alias's tests on one worker.

    On the controller this picks the scheduler; a worker re-parses the command line (where
    `--dist` may be absent), so it learns the mode from `workerinput` (see RunIdToWorkers).
    """
    if is_worker(config):
        if config.workerinput.get(LOADGROUP_INPUT):
            config.option.loadgroup = True  # xdist then suffixes nodeids with `@<group>`
    elif getattr(config.option, "dist", "no") in ("load", "worksteal"):
        config.option.dist = "loadgroup"


def group_by_alias(items: list[pytest.Item], alias_of) -> None:
    for item in items:
        alias = alias_of(item)
        if alias is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(alias))


def gate_test_id(item: pytest.Item) -> str:
    """The nodeid without the `@group` suffix xdist adds under loadgroup: stable across -n."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        group = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        return item.nodeid.removesuffix(f"@{group}")
    return item.nodeid


def alias_of_gate_folder(nodeid: str, aliases: list[str]) -> str | None:
    """The alias a gate test belongs to: a generated gate (`gates::<alias>::<kind>`), or a test
    in a gate folder (`gates/<alias with underscores>/`)."""
    generated = nodeid.split("::")
    if len(generated) == 3 and generated[0] == "gates":
        return generated[1] if generated[1] in aliases else None
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 3 and parts[0] == "gates":
        return next((a for a in aliases if a.replace("-", "_") == parts[1]), None)
    return None


def alias_scheduler(config: pytest.Config, log, aliases: list[str]):
    """xdist's loadgroup scheduler, grouping gate tests by alias from their folder too.

    xdist marks a group by suffixing the worker's nodeid with `@<group>`; under pytest 9 that
    suffix no longer reaches the nodeid (the attribute it sets is gone), so every test would be
    its own group. The controller sees only nodeids, so the alias comes from the gate folder.
    """
    from xdist.scheduler import LoadGroupScheduling

    class AliasGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return alias_of_gate_folder(nodeid, aliases) or super()._split_scope(nodeid)

    return AliasGroupScheduling(config, log)


class RunIdToWorkers:
    """Controller-side xdist hooks: the run id and the dist mode for the workers, the scheduler."""

    def __init__(self, run_id: str, aliases: list[str]):
        self.run_id = run_id
        self.aliases = aliases

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getoption("dist") == "loadgroup":
            return alias_scheduler(config, log, self.aliases)
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[RUN_ID_INPUT] = self.run_id
        node.workerinput[LOADGROUP_INPUT] = node.config.getoption("dist") == "loadgroup"


def holds_exclusive_gpu(deployer: object, entry: AliasEntry) -> bool:
    """Only a GPU alias deployed on the cluster competes for the one GPU."""
    if entry.gpu_count <= 0:
        return False
    # Not imported when unused: a deployer of that class exists only if its module was loaded.
    module = sys.modules.get("deploy.k8s.deployer")
    return module is not None and isinstance(deployer, module.KubernetesDeployer)


class GpuTurn:
    """The inter-process GPU lock of one process, held for one alias at a time.

    `take(alias)` blocks until no other process holds the GPU; taking it again for the alias
    that holds it is a no-op. `give_back()` releases it (after the alias's last test).
    """

    def __init__(self, lock_path: Path, timeout_s: float = -1):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(lock_path), timeout=timeout_s)
        self.holder: str | None = None

    def take(self, alias: str) -> None:
        if self.holder == alias:
            return
        if self.holder is not None:
            self.give_back()
        self._lock.acquire()
        self.holder = alias

    def give_back(self) -> None:
        if self.holder is not None:
            self.holder = None
            self._lock.release(force=True)

    @property
    def held(self) -> bool:
        return self._lock.is_locked
