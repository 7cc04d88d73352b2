"""The suite's plugins (gates/plugins.py) for a checkout run without the installed entry point.

Installed (`pip install -e .`), the `pytest11` entry point has loaded them already (as `-p
gates.plugins` does); this file then declares nothing: pytest refuses `pytest_plugins` in a
conftest that is not at the rootdir, which is where it is when pytest runs from another folder.
"""

import sys

if "gates.plugins" not in sys.modules:
    pytest_plugins = ["gates.plugins"]
