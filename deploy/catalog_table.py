"""The served-models table (PLATFORM.md's columns), rendered between markers in a Markdown file."""

from __future__ import annotations

from pathlib import Path

from deploy.catalog import AliasEntry, Catalog, atomic_write_text
from deploy.ledger import IMPORTED_MARK

BEGIN = "<!-- modelgate:catalog-table:begin (generated from deploy/catalog.yaml; do not edit) -->"
END = "<!-- modelgate:catalog-table:end -->"
DEFAULT_DOC = Path(__file__).resolve().parent.parent / "docs" / "served-models.md"

IMPORTED_NOTE = (
    f"Cells marked {IMPORTED_MARK} hold a status imported from the platform's catalog page (PLATFORM.md) when the "
    "catalog was seeded, not proven by a run of this suite. Its ledger record (kind `imported`, "
    "in `ledger/results.jsonl`) names the source and the date; the alias's next gate run "
    "replaces it."
)

COLUMNS = [
    "alias",
    "model",
    "backend",
    "GPU",
    "context",
    "price in / out (USD per 1M tokens)",
    "SLO target",
    "eval status",
]


class TableError(ValueError):
    pass


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _price(entry: AliasEntry) -> str:
    out = "n/a" if entry.price.output_per_1m is None else f"{entry.price.output_per_1m:g}"
    return f"{entry.price.input_per_1m:g} / {out}"


def row(entry: AliasEntry) -> list[str]:
    return [
        entry.alias,
        entry.model,
        entry.backend_label,
        entry.gpu or "none",
        f"{entry.context}" if entry.context else "provider's",
        _price(entry),
        entry.slo.describe(),
        entry.eval_status,
    ]


def render_table(catalog: Catalog) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for entry in catalog.aliases:
        lines.append("| " + " | ".join(_cell(c) for c in row(entry)) + " |")
    if any(IMPORTED_MARK in entry.eval_status for entry in catalog.aliases):
        lines += ["", IMPORTED_NOTE]  # the footnote marking imported cells
    return "\n".join(lines) + "\n"


def splice(document: str, table: str, *, where: str = "document") -> str:
    """Replace what lies between the markers, keeping every other byte of the document."""
    start = document.find(BEGIN)
    end = document.find(END)
    if start < 0 or end < 0 or end < start:
        raise TableError(
            f"{where}: needs the markers\n{BEGIN}\n{END}\n(in this order) around the table"
        )
    head = document[: start + len(BEGIN)]
    tail = document[end:]
    return head + "\n" + table + tail


def write_table(catalog: Catalog, doc: Path) -> bool:
    """Regenerate the table in `doc`; returns whether the file changed."""
    current = doc.read_bytes().decode("utf-8")
    updated = splice(current, render_table(catalog), where=str(doc))
    if updated != current:
        atomic_write_text(doc, updated)
        return True
    return False


def is_stale(catalog: Catalog, doc: Path) -> bool:
    current = doc.read_bytes().decode("utf-8")
    return splice(current, render_table(catalog), where=str(doc)) != current
