"""The real LiteLLM proxy as a subprocess: its config generated from the catalog, its lifecycle.

The proxy runs from its own virtualenv (scripts/install-litellm.sh), without a database, in
master-key mode. Its `model_list` is built with the same `litellm_params`/`model_info` the local
deployer registers at the gateway double, so both gateways route every alias the same way.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

from deploy.catalog import Catalog
from deploy.local import litellm_params, model_info
from fixtures.platform.loopback import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / "build" / "litellm-venv"
INSTALL_HINT = "bash scripts/install-litellm.sh (or `make conformance`, which runs it)"


class ProxyError(RuntimeError):
    """The real proxy is not installed, did not start, or died."""


def litellm_venv() -> Path:
    """The proxy's virtualenv (env LITELLM_VENV overrides the default build/litellm-venv)."""
    return Path(os.environ.get("LITELLM_VENV") or DEFAULT_VENV)


def proxy_config(catalog: Catalog, api_bases: Mapping[str, str]) -> dict[str, Any]:
    """LiteLLM's config for the catalog's aliases routed to `api_bases` (alias -> URL with /v1).

    The master key is read from the environment by LiteLLM itself (`os.environ/...`), so it
    never lands in the file.
    """
    model_list = []
    for alias, api_base in api_bases.items():
        entry = catalog.get(alias)
        model_list.append({"model_name": alias, "litellm_params": litellm_params(entry, api_base),
                           "model_info": model_info(entry)})
    return {
        "model_list": model_list,
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        # No retries: the conformance tier sees the backend's answer as a tenant would.
        "litellm_settings": {"num_retries": 0, "request_timeout": 120},
    }


@dataclass
class RealProxy:
    """`litellm --config` on a loopback port; `url` once `start()` returned."""

    config: dict[str, Any]
    folder: Path
    venv: Path = field(default_factory=litellm_venv)
    master_key: str = field(default_factory=lambda: "sk-conformance-" + secrets.token_urlsafe(24))
    port: int = 0
    startup_s: float | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "litellm.log"

    def version(self) -> str:
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c",
             "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True, text=True, timeout=60,
        )
        return done.stdout.strip() or "unknown"

    def start(self, timeout_s: float = 180.0) -> RealProxy:
        executable = self.venv / "bin" / "litellm"
        if not executable.is_file():
            raise ProxyError(f"no LiteLLM proxy at {executable}: install it with {INSTALL_HINT}")
        self.folder.mkdir(parents=True, exist_ok=True)
        config_path = self.folder / "litellm-config.yaml"
        with config_path.open("w", encoding="utf-8") as handle:
            YAML().dump(self.config, handle)
        self.port = self.port or free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LITELLM_"))},
            "LITELLM_MASTER_KEY": self.master_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch of the price map
            "LITELLM_LOG": "WARNING",
            "NO_PROXY": "*",  # loopback backends must never go through an environment proxy
        }
        log = self.log_path.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [str(executable), "--config", str(config_path), "--host", LOOPBACK, "--port", str(self.port),
             "--num_workers", "1"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.folder,
        )
        log.close()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ProxyError(f"LiteLLM exited with {self._process.returncode}; see {self.log_path}:\n"
                                 + self._log_tail())
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200:
                    self.startup_s = time.monotonic() - started
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ProxyError(f"LiteLLM did not answer on {self.url} in {timeout_s:.0f} s:\n" + self._log_tail())

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:]).replace(self.master_key, "[master key]")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the uvicorn worker goes too
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> RealProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
