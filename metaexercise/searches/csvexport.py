"""CSV and tab-delimited exports (Embase, Scopus, Web of Science, our own layout), streaming.

Each layout maps the export's column headers (matched case-insensitively, surrounding spaces ignored) to the
records table. The layout is chosen from the header row: the one that matches the most columns, among those
that find a title. Column headers as the databases' exports label them:

| layout  | title          | authors              | year                      | journal        | DOI | PMID         | abstract |
|---------|----------------|----------------------|---------------------------|----------------|-----|--------------|----------|
| scopus  | Title          | Authors              | Year                      | Source title   | DOI | PubMed ID    | Abstract |
| wos     | TI / Article Title | AU / Authors     | PY / Publication Year     | SO / Source Title | DI | PM / Pubmed Id | AB / Abstract |
| embase  | Title          | Author Names         | Publication Year          | Source         | DOI | Medline PMID | Abstract |
| generic | title          | authors              | year                      | journal        | doi | pmid         | abstract |

Web of Science "tab-delimited" files (savedrecs.txt) are read with a tab delimiter, chosen when the header
row holds a tab. `generic` is the records table's own layout, so a records CSV re-imports unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from metaexercise.errors import SearchImportError
from metaexercise.searches.records import FIELDS, record_row
from metaexercise.searches.tables import MAX_LINE_CHARS, csv_rows

#: layout -> records-table field -> accepted headers (lower-case).
LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "scopus": {
        "title": ("title",), "authors": ("authors",), "year": ("year",), "journal": ("source title",),
        "doi": ("doi",), "pmid": ("pubmed id",), "abstract": ("abstract",),
    },
    "wos": {
        "title": ("ti", "article title"), "authors": ("au", "authors"), "year": ("py", "publication year"),
        "journal": ("so", "source title"), "doi": ("di", "doi"), "pmid": ("pm", "pubmed id"),
        "abstract": ("ab", "abstract"),
    },
    "embase": {
        "title": ("title",), "authors": ("author names",), "year": ("publication year",),
        "journal": ("source",), "doi": ("doi",), "pmid": ("medline pmid",), "abstract": ("abstract",),
    },
    "generic": {field: (field,) for field in FIELDS},
}


def choose_layout(header: list[str], path: Path, layout: str | None = None) -> dict[str, int]:
    """Field → column index for the best-matching (or the named) layout; SearchImportError if none fits."""
    lowered = [h.strip().lower() for h in header]

    def columns(spec: dict[str, tuple[str, ...]]) -> dict[str, int]:
        found = {}
        for field, names in spec.items():
            index = next((lowered.index(n) for n in names if n in lowered), None)
            if index is not None:
                found[field] = index
        return found

    if layout is not None:
        if layout not in LAYOUTS:
            raise SearchImportError(f"unknown CSV layout {layout!r}; choose one of {sorted(LAYOUTS)}")
        candidates = {layout: columns(LAYOUTS[layout])}
    else:
        candidates = {name: columns(spec) for name, spec in LAYOUTS.items()}
    fitting = {name: cols for name, cols in candidates.items() if "title" in cols}
    if not fitting:
        expected = "; ".join(f"{name}: {', '.join(n[0] for n in spec.values())}" for name, spec in LAYOUTS.items()
                             if layout in (None, name))
        raise SearchImportError(
            f"{path.name} line 1: no known CSV layout matches the header ({', '.join(header[:8])}...); "
            f"expected the columns of one of these layouts (case-insensitive) — {expected}"
        )
    return max(fitting.values(), key=len)


def read_csv_export(
    path: Path, *, encoding: str = "utf-8", layout: str | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line where the row starts, records-table row) for each non-empty row, streaming.

    Read strictly by `metaexercise.searches.tables.csv_rows` (cells formula-escaped by this toolkit are
    read back as written). Raises SearchImportError naming file and line for a header no layout matches, a
    row with more or fewer cells than the header, a quote that is not closed (which would merge records),
    a cell longer than `MAX_FIELD_CHARS`, a NUL byte, or a file with a header but no rows."""
    with open(path, encoding=encoding, newline="") as fh:
        first = fh.readline(MAX_LINE_CHARS)
    delimiter = "\t" if "\t" in first else ","
    rows = csv_rows(path, encoding=encoding, delimiter=delimiter, error=SearchImportError)
    try:
        _, header = next(rows)
    except StopIteration:
        raise SearchImportError(f"{path.name} line 1: the file is empty; nothing was imported") from None
    columns = choose_layout(header, path, layout)
    count = 0
    for start, row in _checked_rows(rows, header, path):
        count += 1
        yield start, record_row({field: row[i] for field, i in columns.items()})
    if count == 0:
        raise SearchImportError(f"{path.name} line 2: the CSV has a header but no records")


def _checked_rows(rows: Iterator[tuple[int, list[str]]], header: list[str], path: Path
                  ) -> Iterator[tuple[int, list[str]]]:
    for start, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise SearchImportError(
                f"{path.name} line {start}: {len(row)} cells where the header has {len(header)}; "
                "check quoting in that row"
            )
        yield start, row
