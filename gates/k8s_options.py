"""Kubernetes deploy options (a plugin of its own, read where the Kubernetes deployer is built)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelgate-kubernetes", "modelgate: deploying to Kubernetes")
    group.addoption(
        "--force-conflicts", action="store_true", default=False,
        help="take over fields another field manager (e.g. a GitOps controller) owns; without "
        "it such a conflict is an ERROR naming the manager and the fields",
    )
    group.addoption(
        "--scale-gpu-holder", action="store_true", default=False,
        help="when a workload the suite did not start holds the GPU, scale it to zero for the "
        "run and restore it afterwards (default: ERROR naming it)",
    )
    group.addoption(
        "--delete-cache", action="store_true", default=False,
        help="also delete the model-cache PVCs the run created (default: kept, weights survive)",
    )
    group.addoption(
        "--model-source", action="append", default=[], metavar="ALIAS=SOURCE",
        help="where an alias's weights come from: hub (the catalog's Hub id at its pinned "
        "revision) or pvc:PATH (pre-staged on the cache PVC; runs offline); repeatable",
    )
    group.addoption(
        "--runtime-class", default=None, metavar="NAME",
        help="runtimeClassName for GPU pods, where the cluster runs GPU containers under one "
        "(e.g. nvidia)",
    )
