"""Which runs may write an eval status: only complete runs at catalog scope (issue 21.5)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deploy.catalog import load_catalog
from gates.run_kind import run_kind

CATALOG = load_catalog()


class FakeConfig:
    """The few options run_kind reads, as pytest's config holds them."""

    def __init__(self, **options):
        defaults = {"control": None, "humaneval_limit": None, "fim_limit": None,
                    "tool_loop_limit": None, "latency_requests": None}
        self.option = SimpleNamespace(**{**defaults, **options})

    def getoption(self, name: str, default=None):
        return getattr(self.option, name.lstrip("-").replace("-", "_"), default)


@pytest.mark.parametrize(("options", "expected"), [
    ({}, ("gate", "")),
    ({"humaneval_limit": 0}, ("gate", "")),  # the gates read 0 as "no limit"
    ({"latency_requests": 40}, ("gate", "")),  # the catalog's count
    ({"latency_requests": 80}, ("gate", "")),  # more than asked is still complete
    ({"humaneval_limit": 2}, ("smoke", "--humaneval-limit=2")),
    ({"fim_limit": 3, "tool_loop_limit": 1}, ("smoke", "--fim-limit=3, --tool-loop-limit=1")),
    ({"latency_requests": 39}, ("smoke", "--latency-requests=39 (catalog: 40)")),
    ({"some_future_limit": 5}, ("smoke", "--some-future-limit=5")),  # any --*-limit option
    ({"control": "known-good", "humaneval_limit": 2}, ("control", "--control=known-good")),
])
def test_run_kind(options: dict, expected: tuple[str, str]) -> None:
    assert run_kind(FakeConfig(**options), CATALOG) == expected
