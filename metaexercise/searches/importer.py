"""`search import`: read database exports into `searches/records/`, streaming, all files or none.

Each file is parsed record by record and written to a temporary CSV beside its target, so memory stays
bounded by one record and an error at the last line leaves nothing behind. Only when every file has been
read are the records files renamed into place and the ledger (`imports.csv`) rewritten. Imported files are
only ever opened for reading. No field may exceed `tables.MAX_FIELD_CHARS` (100,000 characters), and text
a spreadsheet would run as a formula (a title such as `=HYPERLINK(...)`) is escaped in the records files
(`metaexercise.spreadsheet_safety`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from metaexercise.atomic import atomic_path
from metaexercise.errors import SearchImportError
from metaexercise.searches.csvexport import read_csv_export
from metaexercise.searches.nbib import read_nbib
from metaexercise.searches.records import COLUMNS, FIELDS
from metaexercise.searches.ris import read_ris
from metaexercise.searches.store import LEDGER_COLUMNS, SearchFolder, read_ledger, write_table
from metaexercise.searches.tables import MAX_FIELD_CHARS
from metaexercise.searches.textfile import detect_encoding
from metaexercise.spreadsheet_safety import escape_row

FORMATS = ("ris", "nbib", "csv")


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """One export as imported: its ledger row and the notes (e.g. an encoding fallback) for the user."""

    import_id: str
    file: str
    sha256: str
    format: str
    database: str
    search_date: str
    records: int
    encoding: str
    notes: tuple[str, ...]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_BY_SUFFIX = {".ris": "ris", ".nbib": "nbib", ".medline": "nbib", ".csv": "csv", ".tsv": "csv"}


def sniff_format(path: Path, encoding: str) -> str:
    """The format by file extension (.ris, .nbib, .csv, .tsv); otherwise (e.g. .txt) "ris" if the first
    non-blank line is an RIS tag line, "nbib" if it starts with "PMID-", else "csv"."""
    if path.suffix.lower() in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix.lower()]
    with open(path, encoding=encoding, newline=None) as fh:
        while line := fh.readline(MAX_FIELD_CHARS):  # bounded: a runaway line is reported by the reader
            if line.strip():
                if re.match(r"^[A-Z][A-Z0-9]  -", line):
                    return "ris"
                if line.startswith("PMID-"):
                    return "nbib"
                return "csv"
    return "csv"


def _parse(path: Path, fmt: str, encoding: str, layout: str | None, allow_unknown_tags: bool
           ) -> Iterator[tuple[int, dict[str, str]]]:
    if fmt == "ris":
        return read_ris(path, encoding=encoding, allow_unknown_tags=allow_unknown_tags)
    if fmt == "nbib":
        return read_nbib(path, encoding=encoding)
    return read_csv_export(path, encoding=encoding, layout=layout)


def check_search_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise SearchImportError(f"--date {text!r} is not a date in the form YYYY-MM-DD") from None


def import_exports(
    folder: SearchFolder,
    files: list[Path],
    *,
    database: str,
    search_date: str,
    fmt: str | None = None,
    layout: str | None = None,
    allow_unknown_tags: bool = False,
) -> list[ImportedFile]:
    """Import every file or none; return what was imported. See the module docstring."""
    search_date = check_search_date(search_date)
    database = database.strip()
    if not database:
        raise SearchImportError("--database must name the database searched, e.g. PubMed or CENTRAL")
    if fmt is not None and fmt not in FORMATS:
        raise SearchImportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    ledger = read_ledger(folder)
    known = dict(zip(ledger["sha256"], ledger["file"], strict=True))
    imported: list[ImportedFile] = []
    with ExitStack() as stack:
        for path in files:
            path = Path(path)
            if not path.is_file():
                raise SearchImportError(f"{path}: no such file")
            digest = sha256_of(path)
            if digest in known:
                raise SearchImportError(
                    f"{path.name}: this export was already imported (as {known[digest]}); nothing was imported"
                )
            known[digest] = path.name
            encoding = detect_encoding(path)
            file_format = fmt or sniff_format(path, encoding.name)
            import_id = f"{_slug(database)}-{search_date}-{digest[:8]}"
            target = folder.records_dir / f"{import_id}.csv"
            tmp = stack.enter_context(atomic_path(target))
            count = _write_records(tmp, _parse(path, file_format, encoding.name, layout, allow_unknown_tags),
                                   import_id=import_id, database=database, search_date=search_date,
                                   source=path.name)
            imported.append(ImportedFile(import_id, path.name, digest, file_format, database, search_date,
                                         count, encoding.name, tuple(n for n in [encoding.note] if n)))
        rows = pd.DataFrame([{c: str(getattr(f, c)) for c in LEDGER_COLUMNS} for f in imported])
        write_table(folder.ledger, pd.concat([ledger, rows], ignore_index=True)[list(LEDGER_COLUMNS)])
    return imported


def _write_records(tmp: Path, rows: Iterator[tuple[int, dict[str, str]]], *, import_id: str, database: str,
                   search_date: str, source: str) -> int:
    count = 0
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for line, row in rows:
            count += 1
            writer.writerow(escape_row([f"{import_id}-{count}", *(row[f] for f in FIELDS), database,
                                        search_date, source, line]))
    return count


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "database"
