"""The suite's plugins (gates/plugins.py) for a checkout run without the installed entry point.

Installed (`pip install -e .`), the `pytest11` entry point `gates.plugins` has registered them
under this same name already, and pytest loads nothing twice.
"""

pytest_plugins = ["gates.plugins"]
