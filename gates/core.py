"""The core pytest plugin: options, one marker per catalog alias, the gate session, the summary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.catalog import DEFAULT_CATALOG, Catalog, CatalogError, load_catalog
from deploy.ledger import GateRecord
from evals.response_cache import ResponseCache
from gates import interrupts, parallel, reports, resume, usage
from gates.decision import exit_status
from gates.run_kind import run_kind
from gates.session import REPO_ROOT, GateSession, Outputs, default_outputs, new_run_id, write_status
from gates.summary import print_summary
from gates.verdicts import GatePlatformError

CATALOG_KEY = pytest.StashKey[Catalog]()
SESSION_KEY = pytest.StashKey[GateSession]()
RUN_KEY = pytest.StashKey["RunState"]()


@dataclass
class RunState:
    """What the whole run shares, controller and workers alike (known before any platform)."""

    run_id: str
    outputs: Outputs
    run_folder: Path
    resumed: bool
    outcomes: reports.TestOutcomes | None = None  # the controller's collector
    current: pytest.Item | None = None  # the test running in this process
    records: list[GateRecord] | None = None
    statuses: dict[str, str] | None = None
    interrupted_at: pytest.Item | None = None  # the gate test a Ctrl-C cut short
    notes: list[str] | None = None  # said under the verdict table: interrupted, no status...
    html_report: Path | None = None  # the run's report.html, once written
    replayed: set[str] | None = None  # test ids whose recorded verdicts a resume replays


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelgate", "model platform acceptance gates")
    group.addoption(
        "--gateway-url",
        default=os.environ.get("MODELGATE_GATEWAY_URL"),
        help="LiteLLM gateway to gate (env MODELGATE_GATEWAY_URL). Without it the embedded "
        "platform is started on loopback.",
    )
    group.addoption(
        "--master-key",
        default=None,
        help="LiteLLM master key (prefer env LITELLM_MASTER_KEY: argv is visible to other users)",
    )
    group.addoption(
        "--no-deploy", action="store_true",
        help="the aliases are already served: gate them as they are",
    )
    group.addoption(
        "--namespace", default=os.environ.get("MODELGATE_NAMESPACE", "default"),
        help="Kubernetes namespace the aliases deploy to",
    )
    group.addoption("--kube-context", default=None, help="kubeconfig context (default: current)")
    group.addoption(
        "--kserve", action="store_true",
        help="deploy aliases that have a kserve block through KServe instead of raw vLLM",
    )
    group.addoption("--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog YAML")
    group.addoption(
        "--ledger", type=Path, default=None,
        help="results ledger (default: ledger/results.jsonl for a real platform, "
        "build/embedded/ledger.jsonl for the embedded one)",
    )
    group.addoption(
        "--outputs", type=Path, default=None,
        help="write ledger, catalog and table into this folder instead of the defaults",
    )
    group.addoption("--build-dir", type=Path, default=REPO_ROOT / "build", help="run outputs")
    group.addoption(
        "--scope", choices=["auto", "promotion", "release"], default="auto",
        help="promotion: the fixed subsets (e.g. 20 HumanEval tasks); release: full sets. "
        "auto: promotion when -m selects aliases, release for a plain `pytest`",
    )
    group.addoption(
        "--control", choices=["known-good", "known-bad", "erroring"], default=None,
        help="gate a reference backend instead of a model, to prove the gate itself: "
        "known-good must pass, known-bad must fail, erroring must end as ERROR",
    )
    group.addoption(
        "--budget-status", type=int, choices=[400, 422, 429], default=422,
        help="embedded gateway double: status of budget refusals (LiteLLM's default since "
        "v1.104.0 is 422; older builds sent 429, the oldest 400)",
    )
    group.addoption(
        "--resume", metavar="RUN_ID", default=None,
        help="continue run RUN_ID (same outputs): gates it recorded as PASS or FAIL are replayed "
        "from the ledger, the rest run again, answered from the run's response cache first",
    )
    group.addoption(
        "--baseline", metavar="RECORD_ID", default=None,
        help="compare the gate with this ledger record instead of its incumbent (the latest "
        "passed record on another model or revision of the same alias and gate)",
    )
    group.addoption(
        "--no-cache", action="store_true",
        help="ask the model for every completion (no response cache)",
    )
    group.addoption(
        "--modelgate-json", metavar="PATH", type=Path, default=None,
        help="JSON report of the run (default: <build-dir>/runs/<run id>/report.json)",
    )
    group.addoption(
        "--modelgate-markdown", metavar="PATH", type=Path, default=None,
        help="Markdown summary of the run (default: <build-dir>/runs/<run id>/summary.md); "
        "also appended to $GITHUB_STEP_SUMMARY when set",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--catalog")
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise pytest.UsageError(f"modelgate: the catalog is not usable:\n{exc}") from None
    config.stash[CATALOG_KEY] = catalog
    for entry in catalog.aliases:
        config.addinivalue_line(
            "markers", f"{entry.alias}: the gates of alias {entry.alias} ({entry.model})"
        )
    interrupts.install(config)
    if config.getoption("--resume"):  # workers too: xdist gives them the command line, not ours
        resume.adopt_recorded_run(config)
    _configure_run(config, catalog)


# trylast: every plugin has registered its markers by then.
@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_usage(config: pytest.Config) -> None:
    """Mistakes in the command are one line and pytest's usage exit code, before any gate."""
    if parallel.is_worker(config) or CATALOG_KEY not in config.stash:
        return  # the controller checked
    catalog = config.stash[CATALOG_KEY]
    problem = usage.unknown_marker(config, catalog.names)
    if problem:
        raise pytest.UsageError(problem)
    if usage.may_run_gates(config):
        usage.check_platform(config, catalog)


def pytest_unconfigure(config: pytest.Config) -> None:
    interrupts.uninstall(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(RUN_KEY, None)
    if state is None or state.resumed or parallel.is_worker(config) or config.getoption("collectonly"):
        return
    if usage.may_run_gates(config):  # what --resume needs to continue this run as it was
        resume.write_choices(state.run_folder, resume.run_choices(config, scope=gate_scope(config)))


def _configure_run(config: pytest.Config, catalog: Catalog) -> None:
    from gates.platforms import run_outputs

    outputs = run_outputs(config)
    resumed = config.getoption("--resume")
    run_id = parallel.worker_run_id(config) or resumed or new_run_id()
    run_folder = config.getoption("--build-dir") / "runs" / run_id
    if resumed and not parallel.is_worker(config) and not resume.run_exists(outputs.ledger, run_folder, run_id):
        raise pytest.UsageError(
            f"modelgate: --resume {run_id}: no such run in {outputs.ledger} or {run_folder} "
            "(resume with the same --outputs/--build-dir as the interrupted run)"
        )
    state = RunState(run_id=run_id, outputs=outputs, run_folder=run_folder, resumed=bool(resumed))
    if resumed:  # before this run appends: the tests collection will replay
        state.replayed = set(resume.recorded_tests(outputs.ledger, run_id))
    config.stash[RUN_KEY] = state
    parallel.use_loadgroup(config)
    if not parallel.is_worker(config):
        aliases = catalog.names
        config.pluginmanager.register(parallel.RunIdToWorkers(run_id, aliases), "modelgate-xdist")
        state.outcomes = reports.TestOutcomes(
            lambda report: dict(report.user_properties).get(reports.ALIAS_PROPERTY)
        )
        config.pluginmanager.register(state.outcomes, "modelgate-outcomes")


def gate_scope(config: pytest.Config) -> str:
    scope = config.getoption("--scope")
    if scope != "auto":
        return scope
    return "promotion" if config.getoption("markexpr") else "release"


def alias_order(config: pytest.Config) -> list[str]:
    return config.stash[CATALOG_KEY].names


def item_alias(config: pytest.Config, item: pytest.Item) -> str | None:
    names = set(alias_order(config))
    return next((mark.name for mark in item.iter_markers() if mark.name in names), None)


# tryfirst: before xdist's own hook, which reads the xdist_group markers added here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Group gate tests by alias in catalog order, so each alias is deployed once and the
    # one-GPU rule (one serving alias at a time) costs one start per alias.
    order = {alias: i for i, alias in enumerate(alias_order(config))}

    def rank(item: pytest.Item) -> int:
        for mark in item.iter_markers():
            if mark.name in order:
                return order[mark.name]
        return -1

    items.sort(key=rank)
    state = config.stash[RUN_KEY]
    if state.resumed:
        recorded = resume.recorded_tests(state.outputs.ledger, state.run_id)
        resume.replace_recorded(items, recorded, parallel.gate_test_id)
    parallel.group_by_alias(items, lambda item: item_alias(config, item))
    for item in items:
        alias = item_alias(config, item)
        if alias is not None:  # marks a gate test in every report, also on the controller
            item.user_properties.append((reports.ALIAS_PROPERTY, alias))


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -m and -k deselected: the gates this run will really measure.
    if not parallel.is_worker(session.config):
        _check_baseline(session.config, session.items)


def _check_baseline(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--baseline` must name a ledger record of a selected gate: else one usage line, exit 4."""
    from deploy.ledger import Ledger
    from gates.comparison import BASELINE_FLAG, baseline_problem

    record_id = config.getoption(BASELINE_FLAG)
    if not record_id:
        return
    state = config.stash[RUN_KEY]
    selected = [(alias, item.nodeid.rsplit("::", 1)[-1]) for item in items
                if (alias := item_alias(config, item)) is not None]
    problem = baseline_problem(record_id, Ledger(state.outputs.ledger), selected)
    if problem:
        raise pytest.UsageError(problem)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The selected gates as a readable list (also under `--collect-only -q`)."""
    lines = []
    for item in items:
        alias = item_alias(config, item)
        if alias is None:
            continue
        # The test's docstring, else its module's: gate modules open with what they gate.
        doc = (getattr(getattr(item, "obj", None), "__doc__", None)
               or getattr(getattr(item, "module", None), "__doc__", None) or "").strip()
        title = item.name.removeprefix("test_").replace("_", " ")
        lines.append(f"  {alias}: {title}" + (f" ({doc.splitlines()[0]})" if doc else ""))
    if not lines:
        return []
    return [f"modelgate: {len(lines)} gate test(s) selected", *lines]


@pytest.fixture(scope="session")
def gate_session(request: pytest.FixtureRequest):
    """The run's platform and ledger; started on first use so `pytest tests` never starts it."""
    from gates.platforms import open_session

    config = request.config
    session = open_session(config, config.stash[CATALOG_KEY])
    try:  # from here on an interrupt still closes the platform
        state = config.stash[RUN_KEY]
        session.run_id = state.run_id
        session.kind = run_kind(config, config.stash[CATALOG_KEY])[0]
        session.scope = gate_scope(config)  # type: ignore[assignment]
        if not config.getoption("--no-cache"):
            session.cache = ResponseCache(state.run_folder / "cache")
        session.gpu_turn = parallel.GpuTurn(config.getoption("--build-dir") / parallel.GPU_LOCK_NAME)

        def annotate(record: GateRecord) -> None:
            if state.current is not None:  # which test proved it: what --resume matches on
                record.extra.setdefault(resume.NODEID_KEY, parallel.gate_test_id(state.current))

        def on_record(record: GateRecord) -> None:
            if state.current is not None:  # JUnit properties, forwarded by xdist to the controller
                state.current.user_properties.extend(reports.record_properties(record))

        session.annotate, session.on_record = annotate, on_record
        config.stash[SESSION_KEY] = session
        yield session
    finally:
        session.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(GatePlatformError):
        # The platform did not answer and the record says so: its one line is the report (the
        # JUnit element keeps it as its message); a traceback through the suite adds nothing.
        report.longrepr = call.excinfo.getrepr(style="value", chain=False)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    state = item.config.stash[RUN_KEY]
    state.current = item
    try:
        return (yield)
    except KeyboardInterrupt:
        state.interrupted_at = item  # pytest reports nothing for it: sessionfinish says so
        raise
    finally:
        state.current = None
        gate = item.config.stash.get(SESSION_KEY, None)
        if gate is not None and gate.gpu_turn is not None and gate.gpu_turn.holder is not None:
            # The GPU alias's last test on this worker is done: another worker may take the GPU.
            following = item_alias(item.config, nextitem) if nextitem is not None else None
            if following != gate.gpu_turn.holder:
                gate.gpu_turn.give_back()


# trylast: after pytest's JUnit writer, whose file is rewritten here.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(RUN_KEY, None)
    if state is None or parallel.is_worker(config) or config.getoption("collectonly"):
        return  # statuses and reports are the controller's, written once
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or state.interrupted_at is not None
    kind, why = run_kind(config, config.stash[CATALOG_KEY])
    state.records = reports.run_records(state.outputs.ledger, state.run_id)
    # Only complete gates at catalog scope make a status (a gate cut short wrote no record).
    proven = [r for r in state.records if r.kind == "gate"]
    if proven:
        state.statuses = write_status(
            config.getoption("--catalog"), state.outputs, {r.alias for r in proven}
        )
    gates = state.outcomes.gates(state.records) if state.outcomes else []
    gates = reports.mark_interrupted(gates, _unfinished(config, state))
    if not gates:
        return  # no gate selected (e.g. `pytest tests`): nothing to report
    state.notes = reports.run_notes(kind=kind, why=why, interrupted=interrupted,
                                    unfinished=_unfinished(config, state))
    if session.exitstatus == pytest.ExitCode.OK and any(g.outcome != "passed" for g in gates):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a skipped gate did not pass
    # Failed only because gates were INCONCLUSIVE: its own exit code (gates.decision).
    inconclusive = sum(g.verdict == "inconclusive" for g in gates)
    if session.testsfailed == inconclusive:  # no other test failed beside them
        session.exitstatus = exit_status(int(session.exitstatus), [g.verdict for g in gates],
                                         pytest.ExitCode.TESTS_FAILED)
    xml_path = getattr(config.option, "xmlpath", None)
    if xml_path and Path(xml_path).exists():
        reports.errors_as_error_elements(Path(xml_path))
        reports.interrupted_as_error_elements(Path(xml_path), gates)
    report = reports.build_report(
        run_id=state.run_id, platform="remote" if config.getoption("--gateway-url") else "embedded",
        control=config.getoption("--control"), started_at=state.outcomes.started_at,
        exit_status=int(session.exitstatus), gates=gates, statuses=state.statuses or {},
        ledger=state.outputs.ledger, catalog=state.outputs.catalog, table=state.outputs.doc,
        kind=kind, interrupted=interrupted, notes=state.notes,
    )
    json_path = Path(config.getoption("--modelgate-json") or state.run_folder / "report.json")
    reports.write_json(report, json_path)
    from gates.html_report import write_html_report  # matplotlib: loaded only at the run's end

    state.html_report = write_html_report(
        report, state.outputs.ledger, json_path.with_name("report.html"))
    reports.write_markdown(
        reports.render_markdown(report),
        config.getoption("--modelgate-markdown") or state.run_folder / "summary.md",
    )


def _unfinished(config: pytest.Config, state: RunState) -> list[tuple[str, str | None]]:
    """(test id, alias) of the gate test a Ctrl-C cut short, if any."""
    item = state.interrupted_at
    if item is None:
        return []
    return [(item.nodeid, item_alias(config, item))]


@dataclass
class _RunView:
    """What the verdict table prints, on the controller (which may have no GateSession)."""

    run_id: str
    platform_kind: str
    gateway_url_redacted: str
    records: list[GateRecord]
    outputs: Outputs


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(RUN_KEY, None)
    if state is None or not (state.records or state.notes):
        return
    from deploy.litellm_admin import redact_url

    url = config.getoption("--gateway-url")
    view = _RunView(state.run_id, "remote" if url else "embedded", redact_url(url or ""),
                    state.records, state.outputs)
    replayed = state.replayed or set()
    print_summary(view, state.statuses or {}, terminalreporter=terminalreporter,
                  notes=state.notes or [],
                  replayed=lambda record: record.extra.get(resume.NODEID_KEY) in replayed,
                  report=state.html_report)
    terminalreporter.write_line(f"run id {state.run_id} (an interrupted run continues with "
                                f"--resume {state.run_id})")


__all__ = ["default_outputs", "gate_scope"]
