"""The suite's plugins: the core (options, markers, platform, ledger, summary) and one per alias.

Each alias's plugin is `gates/<alias>/plugin.py` (hyphens become underscores); adding a gate
needs no edit here.
"""

from pathlib import Path

pytest_plugins = ["gates.core", "gates.k8s_options", "gates.progress"] + sorted(
    f"gates.{path.parent.name}.plugin"
    for path in (Path(__file__).parent / "gates").glob("*/plugin.py")
)
