"""The layout of a project's `searches/` folder (described for users in `searches/README.md`).

    searches/
      README.md              what lives here
      imports.csv            ledger: one row per imported export (file, SHA-256, database, search date)
      records/<import>.csv   the records of one export, as imported (records-table columns)
      overrides.csv          manual de-duplication decisions; they win over the automatic ones
      previous_edition.csv   records screened in an earlier edition; they never come back
      duplicates.csv         generated: every merged pair with reason and score
      screening.csv|.xlsx    the screening log of this update's new records
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from metaexercise.atomic import atomic_path
from metaexercise.errors import SearchDataError
from metaexercise.searches.records import COLUMNS
from metaexercise.searches.tables import read_csv_table
from metaexercise.spreadsheet_safety import escape_frame, escape_row

LEDGER_COLUMNS: tuple[str, ...] = (
    "import_id", "file", "sha256", "format", "database", "search_date", "records", "encoding",
)
OVERRIDE_COLUMNS: tuple[str, ...] = ("record_a", "record_b", "decision", "note")
#: An earlier edition's screened records: identifiers for matching, and the decision taken then.
PREVIOUS_COLUMNS: tuple[str, ...] = ("title", "authors", "year", "doi", "pmid", "decision", "edition")
#: De-duplication keys: the columns read from records files (abstracts stay on disk).
KEY_COLUMNS: tuple[str, ...] = ("record_id", "title", "authors", "year", "doi", "pmid", "database")


@dataclass(frozen=True, slots=True)
class SearchFolder:
    """Paths inside a project's `searches/` folder."""

    root: Path

    @property
    def ledger(self) -> Path:
        return self.root / "imports.csv"

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def overrides(self) -> Path:
        return self.root / "overrides.csv"

    @property
    def previous_edition(self) -> Path:
        return self.root / "previous_edition.csv"

    @property
    def duplicates(self) -> Path:
        return self.root / "duplicates.csv"

    def screening_log(self, suffix: str = ".csv") -> Path:
        return self.root / f"screening{suffix}"

    def existing_screening_log(self) -> Path | None:
        """The screening log if there is one (XLSX wins when both exist, since reviewers edit that one)."""
        for suffix in (".xlsx", ".csv"):
            if self.screening_log(suffix).exists():
                return self.screening_log(suffix)
        return None


def read_table(path: Path, columns: tuple[str, ...], usecols: tuple[str, ...] | None = None,
               label: str | None = None) -> pd.DataFrame:
    """A CSV of strings ("" for empty cells), read strictly (`metaexercise.searches.tables`: problems are
    reported with file — `label`, default its name — and line; formula escapes undone); an absent file
    is an empty table with `columns`."""
    wanted = list(usecols or columns)
    if not path.exists():
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in wanted})
    if not path.is_file():
        raise SearchDataError(f"{path}: not a file")
    _, rows = read_csv_table(path, required=tuple(wanted), wanted=tuple(wanted), label=label)
    frame = pd.DataFrame([cells for _, cells in rows], columns=wanted, dtype=object)
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in wanted})
    return frame


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write a CSV atomically (whole or not at all), text a spreadsheet would run as a formula escaped
    (`metaexercise.spreadsheet_safety`)."""
    with atomic_path(path) as tmp:
        escape_frame(frame).to_csv(tmp, index=False, lineterminator="\n")


def read_ledger(folder: SearchFolder) -> pd.DataFrame:
    """The import ledger; SearchDataError names the line of a row without an import_id, with one seen
    before, or with a records count that is not a whole number."""
    ledger = read_table(folder.ledger, LEDGER_COLUMNS)
    seen: set[str] = set()
    for line, (import_id, records) in enumerate(zip(ledger["import_id"], ledger["records"], strict=True), start=2):
        if not import_id.strip() or import_id in seen:
            raise SearchDataError(f"{folder.ledger.name} row {line}, column import_id: "
                                  + ("empty" if not import_id.strip() else f"{import_id!r} appears twice"))
        if not records.strip().isdigit():
            raise SearchDataError(f"{folder.ledger.name} row {line}, column records: {records!r} is not a "
                                  "whole number")
        seen.add(import_id)
    return ledger


def records_files(folder: SearchFolder) -> list[Path]:
    """The records file of every import in the ledger, in ledger order. Raises SearchDataError naming the
    ledger line of a records file that is missing, and any records file that the ledger does not list
    (e.g. after imports.csv was deleted): either would silently change what is de-duplicated."""
    ledger = read_ledger(folder)
    paths = []
    for line, (import_id, file) in enumerate(zip(ledger["import_id"], ledger["file"], strict=True), start=2):
        path = folder.records_dir / f"{import_id}.csv"
        if not path.is_file():
            raise SearchDataError(
                f"{folder.ledger.name} line {line}: the records file records/{path.name} of import {import_id} "
                f"({file}) is missing; restore it (e.g. from version control), or delete line {line} and "
                "import the export again")
        paths.append(path)
    if folder.records_dir.is_dir():
        listed = {p.name for p in paths}
        stray = sorted(p.name for p in folder.records_dir.glob("*.csv") if p.name not in listed)
        if stray:
            raise SearchDataError(
                f"records/{stray[0]}: not listed in {folder.ledger.name}"
                + ("" if folder.ledger.exists() else " (the ledger is missing)")
                + "; restore the ledger, or move the file out of searches/records/")
    return paths


def read_records(folder: SearchFolder, usecols: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every imported record (or its `usecols`), in import order (ledger order, then file order). Raises
    SearchDataError naming file and line when a records file is missing, unlisted or holds another number
    of records than the ledger says."""
    ledger = read_ledger(folder)
    frames = []
    for line, (path, expected) in enumerate(zip(records_files(folder), ledger["records"], strict=True), start=2):
        frame = read_table(path, COLUMNS, usecols, label=f"records/{path.name}")
        if len(frame) != int(expected):
            raise SearchDataError(
                f"records/{path.name} line {len(frame) + 2}: {len(frame)} records where {folder.ledger.name} "
                f"line {line} lists {expected}; the file was changed or truncated after import — restore it")
        frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in (usecols or COLUMNS)})
    return pd.concat(frames, ignore_index=True)


def read_record_keys(folder: SearchFolder) -> pd.DataFrame:
    """The de-duplication keys of every imported record, in import order (ledger order, then file order)."""
    return read_records(folder, KEY_COLUMNS)


def write_header_only(path: Path, columns: tuple[str, ...]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(escape_row(columns))
