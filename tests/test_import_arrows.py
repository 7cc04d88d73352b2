"""The layout's arrows run one way: every module's imports (parsed, not run) are checked.

evals/ imports nothing of ours; deploy/ never imports evals/ or gates/, and reaches fixtures/ only
from deploy/local.py (the local deployer); fixtures/ never imports deploy/ or gates/; no gate
module imports fixtures/; nothing outside an evals subpackage imports its private `_x` modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("bench", "deploy", "evals", "fixtures", "gates", "tests")


def _modules() -> list[Path]:
    return sorted(p for top in OURS for p in (REPO / top).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def wrong_way(path: Path, name: str) -> str | None:
    """Why importing `name` from `path` breaks an arrow (None: it does not)."""
    rel = path.relative_to(REPO).as_posix()
    here, there = rel.split("/", 1)[0], _top(name)
    if there not in OURS:
        return None
    if here == "evals" and there != "evals":
        return "evals/ imports nothing of ours"
    if here == "deploy" and there in ("evals", "gates", "bench", "tests"):
        return "deploy/ never imports evals/, gates/, bench/ or tests/"
    if here == "deploy" and there == "fixtures" and rel != "deploy/local.py":
        return "only deploy/local.py reaches fixtures/"
    if here == "fixtures" and there in ("deploy", "gates", "bench", "tests"):
        return "fixtures/ takes plain values: no deploy/ or gates/"
    if here == "gates" and there in ("fixtures", "tests"):
        return "gates reach fixtures/ only through the deployers (deploy/local.py)"
    parts = name.split(".")
    # A private module of an evals subpackage (a `_name` inside a plain module is a name).
    if (there == "evals" and len(parts) > 2 and parts[2].startswith("_")
            and (REPO / "evals" / parts[1]).is_dir()):
        package = "/".join(parts[:2])
        if not rel.startswith(package + "/"):
            return f"{'.'.join(parts[:2])}'s private modules are its own: import the package"
    return None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_imports_follow_the_arrows(path: Path) -> None:
    broken = sorted(f"{name}: {why}" for name in imported(path) if (why := wrong_way(path, name)))
    assert not broken, f"{path.relative_to(REPO)} imports the wrong way:\n" + "\n".join(broken)


def test_the_checker_sees_a_wrong_way_import(tmp_path: Path) -> None:
    """The rules above reject what they should (so an empty result means something)."""
    assert wrong_way(REPO / "evals" / "x.py", "deploy.catalog")
    assert wrong_way(REPO / "deploy" / "x.py", "evals.latency")
    assert wrong_way(REPO / "deploy" / "catalog.py", "fixtures.platform.embedded")
    assert wrong_way(REPO / "deploy" / "local.py", "fixtures.platform.embedded") is None
    assert wrong_way(REPO / "fixtures" / "platform" / "x.py", "deploy.catalog.AliasEntry")
    assert wrong_way(REPO / "gates" / "x" / "test_y.py", "fixtures.platform")
    assert wrong_way(REPO / "gates" / "x.py", "evals.fim._gate")
    assert wrong_way(REPO / "evals" / "fim" / "_gate.py", "evals.fim._cases") is None
    assert wrong_way(REPO / "gates" / "x.py", "evals.fim") is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from deploy import catalog\nimport evals.fim\n", encoding="utf-8")
    assert imported(source) >= {"deploy", "deploy.catalog", "evals.fim"}
