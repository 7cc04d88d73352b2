"""Running the gates as a user does (`pytest -m <alias> ...` in a subprocess) and reading the result."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from deploy.ledger import GateRecord, Ledger, status_of

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "gates.plugins"  # the entry point's name and module


@dataclass
class GateRun:
    returncode: int
    output: str
    records: list[GateRecord]
    outputs: Path

    def record(self, gate: str) -> GateRecord:
        matches = [r for r in self.records if r.gate == gate]
        assert matches, f"no ledger record for gate {gate!r}; output:\n{self.output[-3000:]}"
        return matches[-1]

    def status(self, alias: str) -> str:
        """The status this run's verdicts would make in a complete run at catalog scope.

        Controls and smoke runs write none (they only prove the gate), which is checked here;
        their tests read what the verdicts say through this instead.
        """
        assert not (self.outputs / "catalog.yaml").exists(), "a control or smoke run wrote a status"
        assert not (self.outputs / "served-models.md").exists(), "a control or smoke run wrote the table"
        assert {r.kind for r in self.records} <= {"control", "smoke"}, self.records
        proven = [r.model_copy(update={"kind": "gate"}) for r in self.records if r.alias == alias]
        return status_of(proven) or ""


def plugins_installed() -> bool:
    """Whether the `pytest11` entry point is installed (else `-p` loads the same module early)."""
    return any(ep.name == PLUGINS for ep in entry_points(group="pytest11"))


def gate_command(*args: str, outputs: Path) -> list[str]:
    """The `pytest <args>` command line of a gate run writing under `outputs`."""
    # The plugins load before the command line is parsed, as the installed entry point does,
    # so `--catalog PATH` (space-separated) is an option, not a test path.
    early = [] if plugins_installed() else ["-p", PLUGINS]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *early, f"--outputs={outputs}",
            f"--build-dir={outputs / 'build'}", *args]


def start_gates(*args: str, outputs: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A gate run in the background, in its own session (a test can signal it alone); its
    output goes to `outputs/run.log`."""
    outputs.mkdir(parents=True, exist_ok=True)
    with (outputs / "run.log").open("wb") as log:
        return subprocess.Popen(gate_command(*args, outputs=outputs), cwd=REPO_ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_gates(*args: str, outputs: Path, env: dict[str, str] | None = None, timeout: float = 900) -> GateRun:
    """`pytest <args>` from the repository root with ledger, catalog and table under `outputs`."""
    command = gate_command(*args, outputs=outputs)
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    return GateRun(proc.returncode, output, Ledger(outputs / "ledger.jsonl").records(), outputs)
