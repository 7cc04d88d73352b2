"""Usage errors: one line naming the fix, raised in pytest_configure before any gate runs.

A missing master key, `--control` with a gateway, no cluster to deploy to, or an `-m` naming no
alias are mistakes in the command, not gate verdicts: pytest prints them as one `ERROR:` line
and exits with its usage code (4), instead of a setup ERROR with a traceback on every gate.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from deploy.litellm_admin import redact_url

GATEWAY_ENV = "MODELGATE_GATEWAY_URL"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
GATES_DIR = Path(__file__).resolve().parent
_EXPRESSION_WORDS = {"and", "or", "not", "True", "False", "None"}
# pytest's own identifier pattern for -m (src/_pytest/mark/expression.py), and `name(k=v)` args.
_IDENT = re.compile(r"(?:\w|:|\+|-|\.|\[|\]|\\|/)+")
_MARK_ARGS = re.compile(r"\([^()]*=[^()]*\)")


def given(config: pytest.Config, option: str) -> bool:
    """Whether `option` is on the command line (not a default, not from the environment)."""
    return any(arg == option or arg.startswith(option + "=") for arg in config.invocation_params.args)


def gateway_source(config: pytest.Config) -> str:
    """How the user chose the gateway: the option, or the variable they may have forgotten."""
    if given(config, "--gateway-url"):
        return "--gateway-url"
    return f"{GATEWAY_ENV} (set in the environment)"


def master_key(config: pytest.Config) -> str | None:
    return config.getoption("--master-key") or os.environ.get(MASTER_KEY_ENV) or None


def platform_problem(config: pytest.Config) -> str | None:
    """What is wrong with the platform options, as one line naming the fix, or None."""
    url = config.getoption("--gateway-url")
    if not url:
        return None
    source = gateway_source(config)
    from_env = source != "--gateway-url"
    if config.getoption("--control"):
        fix = f"unset {GATEWAY_ENV}" if from_env else "drop --gateway-url"
        return f"modelgate: --control runs on the embedded platform, but {source} points at " \
               f"{redact_url(url)}: {fix}"
    if not master_key(config):
        fix = f"export {MASTER_KEY_ENV} (or pass --master-key)"
        if from_env:
            fix += f", or unset {GATEWAY_ENV} to run on the embedded platform"
        return f"modelgate: {source} points at {redact_url(url)}, which needs its master key: {fix}"
    return None


# Options after which pytest lists something and runs no test.
_LISTING_OPTIONS = ("collectonly", "help", "version", "markers", "showfixtures", "show_fixtures_per_test")


def may_run_gates(config: pytest.Config) -> bool:
    """Whether this command can run gate tests (`pytest tests` or `--markers` cannot)."""
    if any(config.getoption(name, False) for name in _LISTING_OPTIONS):
        return False
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        path = (config.invocation_params.dir / path).resolve()
        if path == GATES_DIR or GATES_DIR in path.parents or path in GATES_DIR.parents:
            return True
    return False


def check_platform(config: pytest.Config, catalog) -> None:
    """Raise pytest.UsageError for platform options that cannot work (controller only)."""
    problem = platform_problem(config)
    if problem:
        raise pytest.UsageError(problem)
    if config.getoption("--gateway-url") and not config.getoption("--no-deploy"):
        config.stash[DEPLOYER_KEY] = kubernetes_deployer(config, catalog)


DEPLOYER_KEY = pytest.StashKey[object]()


def kubernetes_deployer(config: pytest.Config, catalog):
    """The cluster deployer, checked before any gate runs: a missing cluster is a usage error."""
    from deploy.deploy_cli import parse_sources
    from deploy.k8s.config import KubeSettings
    from deploy.k8s.deployer import KubernetesDeployer
    from deploy.k8s.errors import ClusterUnavailable, ManifestError
    from gates.core import RUN_KEY

    state = config.stash.get(RUN_KEY, None)
    settings = KubeSettings(
        namespace=config.getoption("--namespace"),
        kube_context=config.getoption("--kube-context"),
        prefer_kserve=config.getoption("--kserve"),
        force_conflicts=config.getoption("--force-conflicts"),
        scale_gpu_holder=config.getoption("--scale-gpu-holder"),
        delete_cache=config.getoption("--delete-cache"),
        runtime_class=config.getoption("--runtime-class"),
        run_id=state.run_id if state else None,
    )
    try:
        sources = parse_sources(config.getoption("--model-source"))
        deployer = KubernetesDeployer(settings, model_sources=sources)
        deployer.preflight(catalog.aliases)
    except (ClusterUnavailable, ManifestError) as exc:
        raise pytest.UsageError(
            f"modelgate: cannot deploy to Kubernetes: {exc}; or pass --no-deploy to gate what "
            "the gateway already serves"
        ) from None
    return deployer


def registered_markers(config: pytest.Config) -> list[str]:
    return [line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")]


def marker_names(expression: str) -> list[str]:
    """The marker names an -m expression mentions (keyword arguments of a marker dropped)."""
    words = _IDENT.findall(_MARK_ARGS.sub(" ", expression))
    return [word for word in words if word not in _EXPRESSION_WORDS]


def unknown_marker(config: pytest.Config, aliases: list[str]) -> str | None:
    """One line for an -m naming no alias or marker, with the closest alias, or None."""
    expression = config.getoption("markexpr")
    if not expression:
        return None
    known = registered_markers(config)
    for name in marker_names(expression):
        if name in known:
            continue
        close = difflib.get_close_matches(name, aliases, n=1) or difflib.get_close_matches(
            name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return (f"modelgate: -m {expression!r}: no alias or marker named {name!r}{hint}; "
                f"the aliases are {', '.join(aliases)}")
    return None
