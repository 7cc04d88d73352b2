"""`--resume RUN_ID`: gate tests whose verdict that run already recorded are replayed, not re-run.

A record names its test (`extra["nodeid"]`, set centrally when it is appended). A test whose
latest records in the run are all PASS or FAIL becomes a `RecordedGate`: same id and markers, no
fixtures (so no deploy, no key, no request), and the recorded verdict decides its outcome. A
test with an ERROR record, or none, runs again: an ERROR says the platform did not answer, and
a resume is the moment to ask it again. Within a re-run test the run's response cache (same
run folder) answers what the model already answered before the interruption.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from deploy.catalog import atomic_write_text
from deploy.ledger import GateRecord, Ledger
from deploy.litellm_admin import redact_url
from gates.reports import PROPERTY_PREFIX, record_properties
from gates.verdicts import enforce

NODEID_KEY = "nodeid"
CHOICES_FILE = "run.json"
# What a run gated, as pytest stores it: (dest in config.option, how the user spells it, default).
# Scope is recorded resolved ("auto" becomes promotion or release) and handled like the rest.
RECORDED_OPTIONS = (
    ("markexpr", "-m", ""),
    ("keyword", "-k", ""),
    ("scope", "--scope", "auto"),
    ("control", "--control", None),
    ("humaneval_limit", "--humaneval-limit", None),
    ("fim_limit", "--fim-limit", None),
    ("tool_loop_limit", "--tool-loop-limit", None),
    ("bfcl_limit", "--bfcl-limit", None),
    ("latency_requests", "--latency-requests", None),
)


class RunChoices(BaseModel):
    """What a run was asked to gate, written at its start so `--resume` continues the same run."""

    options: dict[str, str | int | None]
    args: list[str]  # the test paths given, [] when pytest used its testpaths
    gateway: str | None  # the redacted gateway URL, None for the embedded platform


def write_choices(run_folder: Path, choices: RunChoices) -> None:
    atomic_write_text(run_folder / CHOICES_FILE, choices.model_dump_json(indent=2))


def read_choices(run_folder: Path) -> RunChoices | None:
    """The recorded choices, or None for a run recorded before they were (nothing to check)."""
    path = run_folder / CHOICES_FILE
    if not path.is_file():
        return None
    try:
        return RunChoices.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise pytest.UsageError(f"modelgate: {path}: not a run record ({exc.error_count()} "
                                "errors); resume is not possible, start a new run") from None


def given_args(config: pytest.Config) -> list[str] | None:
    """The test paths on the command line (absolute), or None when pytest used its testpaths."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return None
    return [str(config.invocation_params.dir / arg) for arg in config.args]


def _gateway(config: pytest.Config) -> str | None:
    url = config.getoption("--gateway-url")
    return redact_url(url) if url else None


def run_choices(config: pytest.Config, *, scope: str) -> RunChoices:
    """This command's choices, with the scope resolved (`auto` depends on -m)."""
    options = {dest: getattr(config.option, dest, default) for dest, _flag, default in RECORDED_OPTIONS}
    options["scope"] = scope
    return RunChoices(options=options, args=given_args(config) or [], gateway=_gateway(config))


def adopt_recorded_run(config: pytest.Config) -> None:
    """`--resume RUN_ID`: continue the run with the choices it recorded (see adopt_choices)."""
    run_id = config.getoption("--resume")
    recorded = read_choices(config.getoption("--build-dir") / "runs" / run_id)
    if recorded is not None:  # an unknown run is refused later, naming where it was looked for
        adopt_choices(config, recorded, run_id=run_id, gateway=_gateway(config),
                      args=given_args(config))


def _spell(flag: str, value: object) -> str:
    return f"{flag} {shlex.quote(str(value))}"


def adopt_choices(config: pytest.Config, recorded: RunChoices, *, run_id: str,
                  gateway: str | None, args: list[str] | None) -> None:
    """Make this command the recorded run: options left at their default take the recorded
    value; an option given with another value is a usage error naming the difference."""
    differences = []
    for dest, flag, default in RECORDED_OPTIONS:
        if dest not in recorded.options:
            continue
        was, now_ = recorded.options[dest], getattr(config.option, dest, default)
        if now_ == default:
            setattr(config.option, dest, was)
        elif now_ != was:
            differences.append((_spell(flag, was) if was not in (None, "") else f"no {flag}",
                                _spell(flag, now_)))
    if gateway != recorded.gateway:
        differences.append((f"--gateway-url {recorded.gateway}" if recorded.gateway
                            else "the embedded platform",
                            f"--gateway-url {gateway}" if gateway else "the embedded platform"))
    if args is None:
        config.args = list(recorded.args) or config.args
    elif recorded.args and args != recorded.args:
        differences.append((" ".join(recorded.args), " ".join(args)))
    elif not recorded.args and args:
        differences.append(("the default test paths", " ".join(args)))
    if differences:
        was = ", ".join(d[0] for d in differences)
        now_ = ", ".join(d[1] for d in differences)
        raise pytest.UsageError(
            f"modelgate: --resume {run_id}: the run was started with {was}, this command has "
            f"{now_}: drop those options to resume the run as recorded, or start a new run"
        )


class RecordedGate(pytest.Item):
    """A gate test whose verdict this run already recorded: replayed from the ledger."""

    def __init__(self, *, records: list[GateRecord], original: pytest.Item, **kwargs):
        super().__init__(**kwargs)
        self.records = records
        self._original_info = original.reportinfo()
        self.own_markers.extend(original.own_markers)
        self.keywords.update(original.keywords)

    def runtest(self) -> None:
        self.user_properties.append((f"{PROPERTY_PREFIX}.resumed", "true"))
        for record in self.records:
            self.user_properties.extend(record_properties(record))
        for record in self.records:
            enforce(record)

    def reportinfo(self):
        return self._original_info


def recorded_tests(ledger: Path, run_id: str) -> dict[str, list[GateRecord]]:
    """Test id -> its latest record per gate in run `run_id`, for tests that need no re-run."""
    latest: dict[tuple[str, str], GateRecord] = {}
    for record in Ledger(ledger).records():
        test = record.extra.get(NODEID_KEY)
        if record.run_id == run_id and test:
            latest[(test, record.gate)] = record
    by_test: dict[str, list[GateRecord]] = {}
    for (test, _gate), record in latest.items():
        by_test.setdefault(test, []).append(record)
    return {test: records for test, records in by_test.items()
            if all(r.verdict in ("pass", "fail", "inconclusive") for r in records)}


def run_exists(ledger: Path, run_folder: Path, run_id: str) -> bool:
    return run_folder.is_dir() or any(r.run_id == run_id for r in Ledger(ledger).records())


def replace_recorded(items: list[pytest.Item], recorded: dict[str, list[GateRecord]],
                     test_id) -> int:
    """Swap each recorded test for its RecordedGate, in place; returns how many."""
    swapped = 0
    for index, item in enumerate(items):
        records = recorded.get(test_id(item))
        if not records or not isinstance(item, pytest.Function):
            continue
        items[index] = RecordedGate.from_parent(
            item.parent, name=item.name, records=records, original=item
        )
        swapped += 1
    return swapped
