"""The suite's pytest plugins in one place: the core, the Kubernetes options, one per alias.

Registered through the `pytest11` entry point named `gates.plugins` (pyproject.toml), so pytest
knows `--catalog` and the other options before it picks a rootdir: `pytest --catalog PATH` works
from any folder. The repo's conftest.py names this module too, for a checkout that is not
installed; when the entry point has loaded it, pytest sees the name taken and loads nothing twice.
"""

from pathlib import Path

pytest_plugins = ["gates.core", "gates.k8s_options"] + sorted(
    f"gates.{path.parent.name}.plugin"
    for path in Path(__file__).parent.glob("*/plugin.py")
)
