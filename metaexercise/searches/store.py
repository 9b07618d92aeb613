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


def read_table(path: Path, columns: tuple[str, ...], usecols: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A CSV of strings ("" for empty cells); an absent file is an empty table with `columns`."""
    wanted = list(usecols or columns)
    if not path.exists():
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in wanted})
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c in wanted)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SearchDataError(f"{path.name} row 1: missing column(s) {', '.join(missing)}")
    return frame[wanted].astype(object)


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write a CSV atomically (whole or not at all)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def read_ledger(folder: SearchFolder) -> pd.DataFrame:
    return read_table(folder.ledger, LEDGER_COLUMNS)


def read_record_keys(folder: SearchFolder) -> pd.DataFrame:
    """The de-duplication keys of every imported record, in import order (ledger order, then file order)."""
    ledger = read_ledger(folder)
    frames = [read_table(folder.records_dir / f"{i}.csv", COLUMNS, KEY_COLUMNS) for i in ledger["import_id"]]
    if not frames:
        return read_table(folder.records_dir / "none.csv", COLUMNS, KEY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def write_header_only(path: Path, columns: tuple[str, ...]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(columns)
