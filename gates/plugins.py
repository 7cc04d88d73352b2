"""The suite's pytest plugins in one place: the core, the Kubernetes options, live progress, the catalog's gates
(one generated plugin per alias: gates/catalog_gates.py).

Registered through the `pytest11` entry point named `gates.plugins` (pyproject.toml), so pytest
knows `--catalog` and the other options before it picks a rootdir: `pytest --catalog PATH` works
from any folder. The repo's conftest.py names this module too, for a checkout that is not
installed; when the entry point has loaded it, pytest sees the name taken and loads nothing twice.
"""

pytest_plugins = ["gates.core", "gates.k8s_options", "gates.progress", "gates.catalog_gates"]
