"""The plugins are registered by a `pytest11` entry point, so their options work from any folder.

A fresh `pip install -e .` (what `make setup` runs) installs the entry point; a checkout run
without it loads the same module through conftest.py. These tests run pytest in a subprocess the
way a user would; where the shared environment has not installed the entry point, `-p
gates.plugins` loads the very module the entry point names, at the same early moment.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRY = "gates.plugins"


def _declared() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["entry-points"]["pytest11"]


def _installed() -> bool:
    return any(ep.name == ENTRY and ep.value == ENTRY for ep in entry_points(group="pytest11"))


def test_pyproject_declares_the_entry_point_and_it_lists_every_plugin() -> None:
    assert _declared() == {ENTRY: ENTRY}
    module = importlib.import_module(_declared()[ENTRY])
    plugins = module.pytest_plugins
    assert plugins[:2] == ["gates.core", "gates.k8s_options"]
    assert all(importlib.import_module(name) for name in plugins)
    conftest = (REPO / "conftest.py").read_text(encoding="utf-8")
    # conftest's fallback names the same module, only when nothing loaded it yet.
    assert f'pytest_plugins = ["{ENTRY}"]' in conftest and f'"{ENTRY}" not in sys.modules' in conftest


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    early = [] if _installed() else ["-p", ENTRY]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *early, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("spelling", ["space", "equals"])
def test_catalog_option_works_from_another_folder_in_both_spellings(tmp_path, spelling) -> None:
    missing = tmp_path / "nowhere" / "catalog.yaml"
    args = ["--catalog", str(missing)] if spelling == "space" else [f"--catalog={missing}"]
    proc = _pytest(*args, "--co", "-q", "-m", "coder-chat", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert "unrecognized arguments" not in output, output
    # The path reached the plugin as the catalog (not as a test path): its error names it.
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR and str(missing) in output, output
    assert "the catalog is not usable" in output, output


def test_the_repo_conftest_does_not_register_the_plugins_twice(tmp_path) -> None:
    proc = _pytest("--co", "-q", "-m", "coder-chat", f"--build-dir={tmp_path}", cwd=REPO)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "already registered" not in output and "humaneval" in output, output


@pytest.mark.parametrize("spelling", ["space", "equals"])
def test_gates_are_collected_from_another_folder(tmp_path, spelling) -> None:
    catalog = REPO / "deploy" / "catalog.yaml"
    args = ["--catalog", str(catalog)] if spelling == "space" else [f"--catalog={catalog}"]
    proc = _pytest(*args, "--co", "-q", "-m", "coder-chat", f"--build-dir={tmp_path}", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "gates::coder-chat::humaneval" in output and "1/7 tests collected" in output, output
