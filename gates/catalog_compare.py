"""`modelgate-catalog compare RECORD_A RECORD_B`: two ledger records compared item by item.

The same comparison a gate run prints under its verdict, from the ledger alone: A is the
candidate, B the incumbent. Exit codes: 0 no significant regression of A against B (beyond
`--max-regression` when given); 1 a significant regression; 2 an unknown record id, a missing
ledger, or two records that cannot be compared (other alias or gate, no details). Every other
`modelgate-catalog` command is deploy.catalog_cli's (deploy/ cannot import the statistics).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from deploy.catalog_cli import COMMITTED_LEDGER
from deploy.catalog_cli import main as catalog_main
from deploy.gate_configs import Rate
from deploy.incumbent import IncumbentError, find_record
from deploy.ledger import GateRecord, Ledger, LedgerError
from gates.comparison import compare_records
from gates.kinds.registry import kind

COMMAND = "compare"


class CompareError(ValueError):
    """Two records that cannot be compared, said in one line."""


def _rate(text: str) -> float:
    try:
        return TypeAdapter(Rate).validate_python(float(text))
    except (ValueError, ValidationError):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text}") from None


def _describe(label: str, record: GateRecord) -> str:
    model = record.target.model + (f" @ {record.target.revision}" if record.target.revision else "")
    return (f"{label} {record.record_id}: {record.alias}/{record.gate} {record.verdict.upper()} "
            f"[{record.kind}] {model}, {record.finished_at:%Y-%m-%d %H:%M} UTC: {record.summary}")


def _comparable(a: GateRecord, b: GateRecord) -> None:
    if (a.alias, a.gate) != (b.alias, b.gate):
        raise CompareError(f"{a.record_id} is {a.alias}/{a.gate} but {b.record_id} is "
                           f"{b.alias}/{b.gate}: only records of one alias and gate compare")
    for record in (a, b):
        if not record.details_file:
            raise CompareError(f"{record.record_id} has no details file: nothing to compare")


def compare(ledger: Ledger, candidate_id: str, incumbent_id: str,
            max_regression: float | None) -> tuple[list[str], bool]:
    """The printed lines and whether A significantly regressed against B."""
    a, b = find_record(ledger, candidate_id), find_record(ledger, incumbent_id)
    _comparable(a, b)
    gate = kind(a.gate)
    # 0 when no bound is given: any significant regression counts.
    bound = 0.0 if max_regression is None else max_regression
    result = compare_records(ledger, a, b, items=gate.items, samples=gate.samples,
                             max_regression=bound)
    lines = [_describe("A", a), _describe("B", b), *result.lines]
    verdict = "REGRESSION" if result.regressed else "no significant regression"
    beyond = f" beyond {max_regression:.0%}" if max_regression is not None else ""
    lines.append(f"{verdict}{beyond} of A against B")
    return lines, result.regressed


def compare_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"modelgate-catalog {COMMAND}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidate", metavar="RECORD_A", help="the candidate's record id")
    parser.add_argument("incumbent", metavar="RECORD_B", help="the incumbent's record id")
    parser.add_argument("--ledger", type=Path, default=COMMITTED_LEDGER,
                        help="the ledger holding both (default: ledger/results.jsonl)")
    parser.add_argument("--max-regression", type=_rate, default=None,
                        help="exit 1 only for a significant regression larger than this")
    args = parser.parse_args(argv)
    if not args.ledger.is_file():
        print(f"modelgate-catalog {COMMAND}: {args.ledger}: no such ledger file", file=sys.stderr)
        return 2
    try:
        lines, regressed = compare(Ledger(args.ledger), args.candidate, args.incumbent,
                                   args.max_regression)
    except (IncumbentError, CompareError, LedgerError) as exc:
        print(f"modelgate-catalog {COMMAND}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 1 if regressed else 0


def main(argv: list[str] | None = None) -> int:
    """`modelgate-catalog`: `compare` here, every other command deploy.catalog_cli's."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == COMMAND:
        return compare_main(args[1:])
    return catalog_main(args)


if __name__ == "__main__":
    sys.exit(main())
