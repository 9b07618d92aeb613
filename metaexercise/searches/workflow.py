"""The steps of a search update over a project's `searches/` folder: import (then de-duplicate),
de-duplicate, create or update the screening log, and count the PRISMA flow. Each step reads the files it
needs and writes its outputs atomically; the command module (`metaexercise.commands.search`) only calls
these."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metaexercise.searches.dedupe import Deduplication, deduplicate
from metaexercise.searches.handoff import new_studies
from metaexercise.searches.importer import ImportedFile, import_exports
from metaexercise.searches.prisma import PrismaCounts, count_flow
from metaexercise.searches.records import COLUMNS
from metaexercise.searches.screening import new_log_rows, read_log, update_log, write_log
from metaexercise.searches.store import (
    OVERRIDE_COLUMNS,
    PREVIOUS_COLUMNS,
    SearchFolder,
    read_ledger,
    read_record_keys,
    read_records,
    read_table,
    records_files,
    write_table,
)

DEDUPLICATED = "deduplicated.csv"
NEW_STUDIES = "new_studies.csv"


def _checked(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A hand-edited table of the folder (read strictly: problems name file and line)."""
    return read_table(path, columns)


def run_dedupe(folder: SearchFolder) -> Deduplication:
    """De-duplicate every imported record against each other and the earlier edition, apply overrides, and
    write `duplicates.csv` (pairs) and `deduplicated.csv` (one status per record)."""
    keys = read_record_keys(folder)
    previous = _checked(folder.previous_edition, PREVIOUS_COLUMNS)
    overrides = _checked(folder.overrides, OVERRIDE_COLUMNS)
    log_path = folder.existing_screening_log()
    prefer = read_log(log_path)["record_id"].tolist() if log_path else []
    result = deduplicate(keys, previous=previous, overrides=overrides, prefer=prefer)
    write_table(folder.duplicates, result.pairs)
    write_table(folder.root / DEDUPLICATED, result.records)
    return result


def run_import(folder: SearchFolder, files: list[Path], **options) -> tuple[list[ImportedFile], Deduplication]:
    """Import exports (all or none), then de-duplicate everything imported so far. The hand-edited inputs of
    de-duplication are checked first, so a malformed one stops the import before anything is written."""
    _checked(folder.previous_edition, PREVIOUS_COLUMNS)
    _checked(folder.overrides, OVERRIDE_COLUMNS)
    records_files(folder)  # a missing or unlisted records file stops the import before anything is written
    log_path = folder.existing_screening_log()
    if log_path:
        read_log(log_path)
    imported = import_exports(folder, files, **options)
    return imported, run_dedupe(folder)


def run_screen(folder: SearchFolder, suffix: str | None = None) -> tuple[Path, int]:
    """Create or update the screening log with the records kept by de-duplication; return its path and
    the number of rows added. Existing rows are never changed or dropped."""
    dedup = _read_deduplicated(folder)
    existing = folder.existing_screening_log()
    target = folder.screening_log(suffix) if suffix else (existing or folder.screening_log(".csv"))
    log = read_log(existing) if existing else new_log_rows(pd.DataFrame(columns=list(COLUMNS)))
    kept = set(dedup.loc[dedup["status"].isin(["unique", "kept"]), "record_id"])
    records = _all_records(folder)
    updated = update_log(log, records[records["record_id"].isin(kept)])
    write_log(target, updated)
    return target, len(updated) - len(log)


def run_status(folder: SearchFolder, previous_studies: int | None = None) -> PrismaCounts:
    """PRISMA 2020 counts of the update so far (see `metaexercise.searches.prisma`)."""
    dedup = _read_deduplicated(folder)
    log_path = folder.existing_screening_log()
    log = read_log(log_path) if log_path else new_log_rows(pd.DataFrame(columns=list(COLUMNS)))
    extra = {} if previous_studies is None else {"previous_studies": previous_studies}
    return count_flow(read_ledger(folder), dedup, log, **extra)


def run_included(folder: SearchFolder, extraction_studies: Path | None = None) -> tuple[Path, pd.DataFrame]:
    """Write `searches/new_studies.csv`: the update's included studies, ready for extraction (see
    `metaexercise.searches.handoff`). Ids already in `extraction_studies` (a studies.csv) are not reused."""
    log_path = folder.existing_screening_log()
    log = read_log(log_path) if log_path else new_log_rows(pd.DataFrame(columns=list(COLUMNS)))
    taken: list[str] = []
    if extraction_studies is not None and extraction_studies.exists():
        taken = read_table(extraction_studies, ("study_id",))["study_id"].tolist()
    studies = new_studies(log, _all_records(folder), taken)
    target = folder.root / NEW_STUDIES
    write_table(target, studies)
    return target, studies


def _all_records(folder: SearchFolder) -> pd.DataFrame:
    return read_records(folder)


def _read_deduplicated(folder: SearchFolder) -> pd.DataFrame:
    path = folder.root / DEDUPLICATED
    if not path.exists():
        if read_ledger(folder).empty:
            return pd.DataFrame({"record_id": [], "cluster": [], "status": [], "duplicate_of": []}, dtype=object)
        return run_dedupe(folder).records
    return read_table(path, ("record_id", "cluster", "status", "duplicate_of"))
