"""`modelgate-catalog`: validate the catalog, render its table, write eval status from the ledger."""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from pathlib import Path

from deploy.catalog import DEFAULT_CATALOG, CatalogError, load_catalog
from deploy.catalog_table import DEFAULT_DOC, TableError, render_table, splice, write_table
from deploy.ledger import Ledger, LedgerError, unbacked_statuses
from deploy.status_writeback import derived_statuses, write_back

COMMITTED_LEDGER = Path(__file__).resolve().parent.parent / "ledger" / "results.jsonl"


def _render_ledger(args: argparse.Namespace) -> Path:
    """The ledger that backs the catalog's statuses: --ledger; else the one beside a run's
    outputs catalog (`<folder>/ledger.jsonl`); else the committed one."""
    if args.ledger is not None:
        return args.ledger
    beside = Path(args.catalog).with_name("ledger.jsonl")
    if Path(args.catalog).resolve() != DEFAULT_CATALOG.resolve() and beside.exists():
        return beside
    return COMMITTED_LEDGER


def _check_backing(catalog, args: argparse.Namespace) -> int:
    """Exit 1 when a status is not what the ledger's records derive (see ledger.status_of)."""
    ledger = _render_ledger(args)
    statuses = {entry.alias: entry.eval_status for entry in catalog.aliases}
    unbacked = unbacked_statuses(statuses, Ledger(ledger))
    for alias, status, derived in unbacked:
        print(
            f"{args.catalog}: alias {alias!r}: eval status {status!r} is backed by no ledger "
            f"record in {ledger}" + (f" (its records give {derived!r})" if derived else ""),
            file=sys.stderr,
        )
    return 1 if unbacked else 0


def _command(args: argparse.Namespace, *words: str) -> str:
    """The command to run next, with the --catalog/--doc the user passed (and only those)."""
    given = [f"--{name} {shlex.quote(str(value))}" for name, value in
             (("catalog", args.given_catalog), ("doc", args.given_doc)) if value is not None]
    return " ".join(["modelgate-catalog", *given, *words])


def table_diff(catalog_path: Path, doc: Path, current: str, rendered: str) -> str:
    """What `render` would change in `doc`, as a unified diff."""
    return "".join(difflib.unified_diff(
        current.splitlines(keepends=True), rendered.splitlines(keepends=True),
        fromfile=f"{doc} (committed)", tofile=f"{doc} (rendered from {catalog_path})",
    ))


def _render(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    if args.check:
        current = args.doc.read_bytes().decode("utf-8")
        rendered = splice(current, render_table(catalog), where=str(args.doc))
        if rendered != current:
            sys.stderr.write(table_diff(args.catalog, args.doc, current, rendered))
            print(
                f"{args.doc}: the served-models table is stale against {args.catalog}; "
                f"run `{_command(args, 'render')}` and commit the result",
                file=sys.stderr,
            )
            return 1
        if _check_backing(catalog, args):
            return 1
        print(f"{args.doc}: table is current and every status is backed by the ledger")
        return 0
    changed = write_table(catalog, args.doc)
    print(f"{args.doc}: {'table regenerated' if changed else 'table already current'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    if not args.ledger.is_file():
        # A missing ledger is a wrong path, not "no record yet": say so instead of exiting 0.
        print(f"modelgate-catalog status: {args.ledger}: no such ledger file "
              "(give the ledger a gate run appended to, e.g. ledger/results.jsonl or "
              "build/embedded/ledger.jsonl)", file=sys.stderr)
        return 2
    catalog = load_catalog(args.catalog)
    statuses = derived_statuses(args.ledger, catalog.names)
    for alias in catalog.names:
        print(f"{alias}: {statuses.get(alias, '(no ledger record; status unchanged)')}")
    if args.write:
        write_back(args.ledger, args.catalog, catalog.names, doc=args.doc)
        print(f"wrote eval status to {args.catalog} and the table in {args.doc}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    print(f"{args.catalog}: valid ({len(catalog.aliases)} aliases)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelgate-catalog", description=__doc__,
        epilog="modelgate-catalog compare RECORD_A RECORD_B [--ledger PATH]: two ledger "
        "records item by item (gates/catalog_compare.py; see its --help)")
    # None = not given: the defaults are filled in below, and hints repeat only what was given.
    parser.add_argument("--catalog", type=Path, default=None, help=f"default: {DEFAULT_CATALOG}")
    parser.add_argument("--doc", type=Path, default=None, help=f"default: {DEFAULT_DOC}")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="regenerate the table between the markers")
    render.add_argument(
        "--check", action="store_true",
        help="exit 1 when the table is stale or a status is backed by no ledger record",
    )
    render.add_argument(
        "--ledger", type=Path, default=None,
        help="ledger backing the statuses (default: ledger.jsonl beside an outputs catalog, "
        "else ledger/results.jsonl)",
    )
    render.set_defaults(func=_render)
    status = sub.add_parser("status", help="derive eval status from the ledger")
    status.add_argument("--ledger", type=Path, required=True)
    status.add_argument("--write", action="store_true", help="write it to the catalog and table")
    status.set_defaults(func=_status)
    sub.add_parser("validate", help="validate the catalog").set_defaults(func=_validate)
    args = parser.parse_args(argv)
    args.given_catalog, args.given_doc = args.catalog, args.doc
    args.catalog, args.doc = args.catalog or DEFAULT_CATALOG, args.doc or DEFAULT_DOC
    try:
        return args.func(args) or 0
    except (CatalogError, TableError, LedgerError) as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
