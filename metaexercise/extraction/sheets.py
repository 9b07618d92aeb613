"""Read extraction sheets (an XLSX workbook or a folder of CSV files) into tidy, typed DataFrames, and
validate them, collecting EVERY problem as a row: file, sheet, row, column, value, problem, severity.

Row numbers are the spreadsheet's own (header = row 1). Inputs are only ever opened for reading.
The checks follow `metaexercise/extraction/schema.py`; the rules that concern a single cell are there (types,
codes, bounds), the rules that concern a row or several sheets are here. This file is long because it
holds one check per rule the extraction form promises; each check is a short function.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
import zlib
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

from metaexercise.errors import ExtractionError
from metaexercise.extraction.instruments import FILE_NAME as INSTRUMENTS_FILE
from metaexercise.extraction.instruments import Registry, load_registry
from metaexercise.extraction.schema import (
    FALSE_WORDS,
    SHEET_NAMES,
    TRUE_WORDS,
    Column,
    Design,
    Form,
    InclusionStatus,
    ReportedAs,
    Sheet,
    ValueKind,
    csv_name,
    form,
)
from metaexercise.extraction.vocabulary import DEFAULT_VOCABULARY, SheetVocabulary
from metaexercise.spreadsheet_safety import csv_cell, unescape_cell

PROBLEM_COLUMNS = ("file", "sheet", "row", "column", "value", "problem", "severity")


class Severity(StrEnum):
    """How bad a problem (extraction sheets) or a finding (`metaexercise.review.audit`) is: an ``error``
    makes the data unusable as they stand, a ``warning`` asks for a look, ``info`` is never reported."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

#: Largest merged range whose top-left value is spread over its cells (larger ones are an error).
MAX_MERGED_CELLS = 100_000
#: Workbook sheets that the template writes for people, not data; never reported as extra.
HELPER_SHEETS = ("README", "Instruments", "lists")
#: An estimate further than this fraction of its CI's width from the CI's centre breaks the "CI is
#: symmetric around its estimate" rule of mean differences and SMDs.
CI_CENTRE_TOLERANCE = 0.10


@dataclass(frozen=True, slots=True)
class Extraction:
    """The extraction sheets as typed DataFrames (column `source_row` = spreadsheet row), the warnings
    found while reading them, and where they came from."""

    studies: pd.DataFrame
    arms: pd.DataFrame
    outcomes: pd.DataFrame
    risk_of_bias: pd.DataFrame
    problems: pd.DataFrame
    source: Path
    registry: Registry
    #: The project's codes the sheets were read with (`metaexercise.extraction.vocabulary`).
    vocabulary: SheetVocabulary = DEFAULT_VOCABULARY

    @property
    def form(self) -> Form:
        """The extraction form the sheets follow (`schema.form(vocabulary)`)."""
        return form(self.vocabulary)

    def summary(self) -> str:
        return (
            f"Extraction from {self.source}: {len(self.studies)} studies, {len(self.arms)} arms, "
            f"{len(self.outcomes)} outcome rows, {len(self.risk_of_bias)} risk-of-bias rows, "
            f"{len(self.problems)} warnings"
        )


@dataclass(slots=True)
class _Raw:
    """One sheet as read: header, rows of text cells and their spreadsheet row numbers."""

    file: str
    sheet: str
    header: list[str]
    rows: list[list[str]]
    row_numbers: list[int]


@dataclass(slots=True)
class _Problems:
    items: list[dict] = field(default_factory=list)

    def add(self, file, sheet, row, column, value, problem, severity: Severity = Severity.ERROR) -> None:
        self.items.append(
            {"file": str(file), "sheet": sheet, "row": row, "column": column,
             "value": "" if value is None else str(value), "problem": problem,
             "severity": Severity(severity).value}
        )

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.items, columns=list(PROBLEM_COLUMNS))
        df["row"] = pd.array(df["row"], dtype="Int64")
        return df


# ---------------------------------------------------------------------------------------------- reading
def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


def _read_csv_file(path: Path, sheet: str, out: _Problems) -> _Raw | None:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        out.add(path, sheet, None, None, None, "file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        out.add(path, sheet, line, None, repr(data[exc.start : exc.start + 1]),
                f"not UTF-8 text (byte {data[exc.start]:#04x} on line {line}; probably Windows-1252 or "
                "Latin-1); save the file as UTF-8 (CSV UTF-8)")
        return None
    if "\x00" in text:
        out.add(path, sheet, None, None, None, "file contains NUL bytes: not a text CSV file")
        return None
    records = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for record in reader:
            records.append(record)
    except csv.Error as exc:  # a field past the reader's size limit: almost always a quote never closed
        line = reader.line_num
        out.add(path, sheet, line, None, None,
                f"cannot read the CSV from line {line} on ({exc}); a cell longer than "
                f"{csv.field_size_limit():,} characters is not extraction data: is a closing quote missing "
                "on this line or above?")
        return None
    while records and not any(c.strip() for c in records[-1]):
        records.pop()
    if not records:
        out.add(path, sheet, None, None, None, "empty sheet: no header row")
        return None
    header = [c.strip() for c in records[0]]
    while len(header) > 1 and not header[-1] and all(not "".join(r[len(header) - 1:]).strip() for r in records[1:]):
        header.pop()  # trailing separators that spreadsheet programs add after the last column
        records = [r[: len(header)] if len(r) > len(header) else r for r in records]
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in records[0][0]:
                out.add(path, sheet, 1, None, records[0][0][:60],
                        f"columns are separated by {name}, not commas; save as comma-separated CSV")
                return None
    rows, numbers = [], []
    for i, rec in enumerate(records[1:], start=2):
        if not any(c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            out.add(path, sheet, i, None, None,
                    f"row has {len(rec)} fields but the header has {len(header)} (a stray comma or a "
                    "missing quote?); its cells are read as far as the header goes")
            rec = (rec + [""] * len(header))[: len(header)]
        rows.append([c.strip() for c in rec])
        numbers.append(i)
    return _Raw(str(path), sheet, header, rows, numbers)


def _read_csv_folder(folder: Path, out: _Problems) -> dict[str, _Raw]:
    raws: dict[str, _Raw] = {}
    for name in SHEET_NAMES:
        path = folder / csv_name(name)
        if path.is_dir():
            out.add(path, name, None, None, None, f"{csv_name(name)} is a folder, not a CSV file (sheet {name!r})")
            continue
        if not path.is_file():
            out.add(path, name, None, None, None, f"missing file {csv_name(name)} (sheet {name!r})")
            continue
        raw = _read_csv_file(path, name, out)
        if raw is not None:
            raws[name] = raw
    return raws


#: What openpyxl and the zip reader raise on a damaged workbook: a truncated file (BadZipFile, zlib.error,
#: EOFError), a missing or broken part (KeyError, XML errors, which are SyntaxError subclasses in both
#: ElementTree and lxml), values that do not fit their declared type (ValueError, TypeError, IndexError, ...).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, OSError, ValueError, TypeError,
            SyntaxError, AttributeError, OverflowError)
_SPREADSHEETML = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
#: The start of a formula (<f>) or of a merged range (<mergeCell>) in a worksheet's XML, any namespace prefix.
_FORMULA_OR_MERGE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:f|mergeCell)[\s/>]")


def _damaged(exc: BaseException) -> str:
    return (f"the workbook is damaged ({type(exc).__name__}: {exc}); open it in Excel or LibreOffice and save "
            "it again")


def _read_workbook(path: Path, out: _Problems) -> dict[str, _Raw]:
    """The data sheets of a workbook, in one pass: openpyxl reads each sheet once, streaming (read-only,
    saved values), and a light scan of the same sheet's XML (`_formulas_and_merges`) finds formula cells
    and merged ranges, which read-only mode does not report. (Loading the workbook twice, with and without
    saved values, took 2 minutes and 3 GB for 100,000 rows.)"""
    import openpyxl

    data = path.read_bytes()
    if not data.startswith(b"PK\x03\x04"):
        out.add(path, None, None, None, None,
                "not an XLSX workbook (not a zip container; an old .xls, CSV or other file renamed?)")
        return {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except _DAMAGED as exc:
        out.add(path, None, None, None, None, f"not a readable XLSX workbook ({type(exc).__name__}: {exc})")
        return {}
    raws: dict[str, _Raw] = {}
    try:
        known = set(SHEET_NAMES)
        for name in book.sheetnames:
            if name not in known and name not in HELPER_SHEETS:
                out.add(path, name, None, None, None,
                        f"extra sheet {name!r} ignored; expected sheets: {', '.join(sorted(known))}",
                        Severity.WARNING)
        for name in SHEET_NAMES:
            if name not in book.sheetnames:
                out.add(path, name, None, None, None, f"missing sheet {name!r}")
                continue
            try:
                ws = book[name]
                raws[name] = _read_worksheet(path, ws, _formulas_and_merges(archive, ws), out)
            except _DAMAGED as exc:
                out.add(path, name, None, None, None, f"sheet {name!r} cannot be read: {_damaged(exc)}")
    finally:
        book.close()
        archive.close()
    return {k: v for k, v in raws.items() if v is not None}


def _formulas_and_merges(archive: zipfile.ZipFile, ws) -> tuple[list[tuple[int, int, str]], list[str]]:
    """The formula cells (row, column, formula as openpyxl writes it, "=...") and the merged ranges
    ("E2:E3") of a read-only worksheet, from its XML part. The part is first scanned as bytes, in
    chunks; only a sheet that has a formula or a merged range is parsed (ElementTree, streaming)."""
    from openpyxl.formula.translate import Translator
    from openpyxl.utils.cell import coordinate_to_tuple, get_column_letter

    part = ws._worksheet_path  # openpyxl's read-only worksheet keeps its part name (tests/sheets checks it)
    with archive.open(part) as fh:
        tail = b""
        while chunk := fh.read(1 << 20):
            if _FORMULA_OR_MERGE.search(tail + chunk):
                break
            tail = chunk[-64:]
        else:
            return [], []
    formulas: list[tuple[int, int, str]] = []
    merged: list[str] = []
    shared: dict[str, Translator] = {}
    row_number = column = 0
    with archive.open(part) as fh:
        for event, element in ElementTree.iterparse(fh, events=("start", "end")):
            tag = element.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "row":
                    row_number = int(element.get("r") or row_number + 1)
                    column = 0
                continue
            if tag == "c":
                reference = element.get("r")
                if reference:
                    row_number, column = coordinate_to_tuple(reference)
                else:
                    column += 1
                    reference = f"{get_column_letter(column)}{row_number}"
                f = element.find(f"{_SPREADSHEETML}f")
                if f is None:
                    f = next((child for child in element if child.tag.rsplit("}", 1)[-1] == "f"), None)
                if f is not None:
                    text = "=" + (f.text or "")
                    if f.get("t") == "shared":  # as openpyxl's WorkSheetParser.parse_formula
                        index = f.get("si")
                        if index in shared:
                            text = shared[index].translate_formula(reference)
                        elif text != "=":
                            shared[index] = Translator(text, reference)
                    formulas.append((row_number, column, text))
                element.clear()
            elif tag == "row":
                element.clear()
            elif tag == "mergeCell" and element.get("ref"):
                merged.append(element.get("ref"))
    return formulas, merged


def _read_worksheet(path: Path, ws, extras: tuple[list[tuple[int, int, str]], list[str]],
                    out: _Problems) -> _Raw | None:
    from openpyxl.utils import get_column_letter, range_boundaries

    formulas, merged = extras
    ws.reset_dimensions()  # read every row, whatever the (often wrong) <dimension> the writer saved
    grid = [list(r) for r in ws.iter_rows(values_only=True)]

    def value(row: int, column: int):
        return grid[row - 1][column - 1] if row <= len(grid) and column <= len(grid[row - 1]) else None

    saved = [value(r, c) for r, c, _ in formulas]
    for coord in merged:
        min_col, min_row, max_col, max_row = range_boundaries(coord)
        cells = (max_row - min_row + 1) * (max_col - min_col + 1)
        if cells > MAX_MERGED_CELLS:  # a whole-sheet merge: spreading its value would fill memory
            out.add(path, ws.title, min_row, None, coord,
                    f"merged cells {coord} span {cells:,} cells; unmerge them")
            continue
        top = value(min_row, min_col)
        out.add(path, ws.title, min_row, None, coord,
                f"merged cells {coord}: the top-left value is used for every cell of the range; "
                "unmerge them", Severity.WARNING)
        while len(grid) < max_row:
            grid.append([])
        for r in range(min_row, max_row + 1):
            row = grid[r - 1]
            row.extend([None] * (max_col - len(row)))
            for c in range(min_col, max_col + 1):
                row[c - 1] = top
    for (row, column, formula), cached in zip(formulas, saved, strict=True):
        where = f"{get_column_letter(column)}{row}"
        if cached is None:
            out.add(path, ws.title, row, None, formula,
                    f"cell {where} holds a formula with no saved value; open and save the workbook "
                    "in Excel or LibreOffice, or type the value")
        else:
            out.add(path, ws.title, row, None, formula,
                    f"cell {where} holds a formula; its saved value {cached!r} is read", Severity.WARNING)
    grid = [[_cell_text(v) for v in r] for r in grid]
    while grid and not any(grid[-1]):
        grid.pop()
    if not grid:
        out.add(path, ws.title, None, None, None, "empty sheet: no header row")
        return None
    header = list(grid[0])
    while header and not header[-1]:
        header.pop()
    width = len(header)
    rows, numbers = [], []
    for i, r in enumerate(grid[1:], start=2):
        cells = (r + [""] * width)[:width]
        extra = [c for c in r[width:] if c]
        if extra:
            out.add(path, ws.title, i, None, extra[0], "value in a column without a header")
        if any(cells):
            rows.append(cells)
            numbers.append(i)
    return _Raw(str(path), ws.title, header, rows, numbers)


def _read_any(path: Path, out: _Problems) -> dict[str, _Raw]:
    if not path.exists():
        out.add(path, None, None, None, None, "no such file or folder")
        return {}
    if path.is_dir():
        return _read_csv_folder(path, out)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_workbook(path, out)
    out.add(path, None, None, None, None,
            "expected an .xlsx workbook or a folder holding studies.csv, arms.csv, outcomes.csv and "
            "risk_of_bias.csv")
    return {}


# ---------------------------------------------------------------------------------------------- cells
def _suggest(value: str, choices: Iterable[str]) -> str:
    from rapidfuzz import process

    best = process.extractOne(value, list(choices))
    return f"; did you mean {best[0]!r}?" if best and best[1] >= 70 else ""


def _parse_cell(col: Column, text: str):
    """(typed value or None, problem text or None) for one cell."""
    if text == "":
        return None, None
    if col.type in ("str", "code"):  # a leading ' that neutralises a formula start is not part of the text
        text = unescape_cell(text)
    if col.type == "str":
        return text, None
    if col.type == "code":
        if text in col.codes:
            return text, None
        declared = f"; declared in {col.origin}" if col.origin else ""
        return None, (f"{text!r} is not an allowed value ({'; '.join(col.codes)}{declared})"
                      f"{_suggest(text, col.codes)}")
    if col.type == "bool":
        low = text.lower()
        if low in TRUE_WORDS:
            return True, None
        if low in FALSE_WORDS:
            return False, None
        return None, "expected true or false"
    try:
        number = float(text)
    except ValueError:
        hint = " (decimal comma? use a point)" if text.replace(",", "", 1).replace("-", "", 1).isdigit() else ""
        return None, f"text in a numeric cell: expected a number{hint}"
    if not math.isfinite(number):
        return None, "expected a finite number"
    if col.type == "int":
        if not number.is_integer():
            return None, "expected a whole number"
        number = int(number)
    if col.minimum is not None:
        if col.open_minimum and number <= col.minimum:
            return None, f"must be greater than {col.minimum:g}"
        if not col.open_minimum and number < col.minimum:
            return None, f"must be at least {col.minimum:g}"
    if col.maximum is not None and number > col.maximum:
        return None, f"must be at most {col.maximum:g}"
    return number, None


_DTYPES = {"str": "string", "code": "string", "bool": "boolean", "int": "Int64", "float": "Float64"}


def _typed_frame(sh: Sheet, raw: _Raw | None, out: _Problems) -> pd.DataFrame:
    """The sheet as a typed DataFrame; every bad cell is reported and left blank."""
    cols = {c.name: [] for c in sh.columns}
    if raw is None:
        return _empty_frame(sh)
    seen: set[str] = set()
    for j, name in enumerate(raw.header, start=1):
        if not name:
            out.add(raw.file, raw.sheet, 1, f"(column {j})", None, "empty column header")
        elif name in seen:
            out.add(raw.file, raw.sheet, 1, name, name, "duplicate column")
        elif name not in cols:
            out.add(raw.file, raw.sheet, 1, name, name,
                    f"unknown column{_suggest(name, cols)}; allowed: {', '.join(sh.column_names)}")
        seen.add(name)
    for name in sh.column_names:
        if name not in raw.header:
            out.add(raw.file, raw.sheet, 1, name, None, "missing column")
    if not raw.rows and not sh.may_be_empty:
        out.add(raw.file, raw.sheet, None, None, None, "sheet has a header but no data rows")
    index = {name: raw.header.index(name) for name in sh.column_names if name in raw.header}
    for cells, rownum in zip(raw.rows, raw.row_numbers, strict=True):
        for col in sh.columns:
            text = cells[index[col.name]] if col.name in index else ""
            value, problem = _parse_cell(col, text)
            if problem:
                out.add(raw.file, raw.sheet, rownum, col.name, text, problem)
            elif value is None and col.required and col.name in index:
                out.add(raw.file, raw.sheet, rownum, col.name, "", "required value is blank")
            cols[col.name].append(value)
    df = pd.DataFrame({c.name: pd.array(cols[c.name], dtype=_DTYPES[c.type]) for c in sh.columns})
    df.insert(0, "source_row", pd.array(raw.row_numbers, dtype="Int64"))
    return df


def _empty_frame(sh: Sheet) -> pd.DataFrame:
    df = pd.DataFrame({c.name: pd.array([], dtype=_DTYPES[c.type]) for c in sh.columns})
    df.insert(0, "source_row", pd.array([], dtype="Int64"))
    return df


# ---------------------------------------------------------------------------------------------- rows
@dataclass(slots=True)
class _Context:
    raws: dict[str, _Raw]
    frames: dict[str, pd.DataFrame]
    registry: Registry
    out: _Problems
    default_file: str
    vocabulary: SheetVocabulary
    #: False when the project's instruments file could not be read (its error is reported once; the
    #: instruments it would have declared are then not reported as unknown, row after row).
    registry_read: bool = True

    def report(self, sheet: str, row, column, value, problem, severity: Severity = Severity.ERROR) -> None:
        file = self.raws[sheet].file if sheet in self.raws else self.default_file
        self.out.add(file, sheet, None if row is None or pd.isna(row) else int(row), column, value, problem,
                     severity)


def _none(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


def _rows(df: pd.DataFrame):
    """Rows as namedtuples with missing values as None (pd.NA has no truth value)."""
    row = namedtuple("Row", list(df.columns))
    columns = [df[c].tolist() for c in df.columns]
    return [row(*map(_none, values)) for values in zip(*columns, strict=True)]


def records(df: pd.DataFrame) -> list[dict]:
    """A sheet's rows as dicts, missing values as None."""
    return [r._asdict() for r in _rows(df)]


def _blank(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _check_duplicates(ctx: _Context, sh: Sheet) -> None:
    df = ctx.frames[sh.name]
    if df.empty:
        return
    key = list(sh.key)
    filled = df[key].astype("string").fillna("")
    first: dict[tuple, int] = {}
    for rownum, k in zip(df["source_row"], filled.itertuples(index=False, name=None), strict=True):
        if k in first:
            ctx.report(sh.name, rownum, ", ".join(key), " | ".join(x for x in k if x),
                       f"duplicate key: same {', '.join(key)} as row {first[k]}")
        else:
            first[k] = int(rownum)


def _check_references(ctx: _Context) -> None:
    """Rows must name known studies and arms. Skipped against a sheet that could not be read or has no
    rows: that sheet's own problem is reported, and one message per referring row would bury it."""
    if ctx.frames["studies"].empty:
        return
    studies = set(ctx.frames["studies"]["study_id"].dropna())
    for name in ("arms", "outcomes", "risk_of_bias"):
        df = ctx.frames[name]
        for rownum, sid in zip(df["source_row"], df["study_id"], strict=True):
            if not _blank(sid) and sid not in studies:
                ctx.report(name, rownum, "study_id", sid, "refers to a study that is not in studies")
    arms = ctx.frames["arms"]
    if arms.empty:
        return
    known_arms = set(zip(arms["study_id"], arms["arm_id"], strict=True))
    roles = dict(zip(zip(arms["study_id"], arms["arm_id"], strict=True), arms["arm_role"], strict=True))
    out = ctx.frames["outcomes"]
    for r in _rows(out):
        if _blank(r.study_id) or r.study_id not in studies:
            continue
        for col in ("arm_id", "comparator_arm_id"):
            arm = getattr(r, col)
            if not _blank(arm) and (r.study_id, arm) not in known_arms:
                ctx.report("outcomes", r.source_row, col, arm, f"refers to an arm not in arms for study {r.study_id}")
        if r.value_kind == ValueKind.CONTRAST:
            exp, ctl = ctx.vocabulary.role_experimental, ctx.vocabulary.role_control
            if roles.get((r.study_id, r.arm_id)) == ctl:
                ctx.report("outcomes", r.source_row, "arm_id", r.arm_id,
                           f"a contrast's arm_id must be the experimental arm (arm_role '{exp}'), this one is a "
                           f"control arm ('{ctl}')")
            if roles.get((r.study_id, r.comparator_arm_id)) == exp:
                ctx.report("outcomes", r.source_row, "comparator_arm_id", r.comparator_arm_id,
                           f"a contrast's comparator_arm_id must be a control arm (arm_role '{ctl}'), this one is "
                           f"the experimental arm ('{exp}')")


def _check_studies(ctx: _Context) -> None:
    df = ctx.frames["studies"]
    for r in _rows(df):
        if r.inclusion_status == InclusionStatus.EXCLUDED and _blank(r.exclusion_reason):
            ctx.report("studies", r.source_row, "exclusion_reason", "", "an excluded study needs a reason")
        if r.design == Design.CLUSTER:
            for col in ("icc", "mean_cluster_size"):
                if _blank(getattr(r, col)):
                    ctx.report("studies", r.source_row, col, "",
                               "a cluster trial needs icc and mean_cluster_size (design effect, Handbook §23.1.4)")
        if not _blank(r.adverse_events_related) and not _blank(r.adverse_events_total) and (
            r.adverse_events_related > r.adverse_events_total
        ):
            ctx.report("studies", r.source_row, "adverse_events_related", r.adverse_events_related,
                       f"more treatment-related adverse events than adverse events in total ({r.adverse_events_total})")
    synthetic = df["synthetic"].dropna()
    if synthetic.nunique() > 1:
        rows = df.loc[df["synthetic"].fillna(False).astype(bool), "source_row"].tolist()
        ctx.report("studies", rows[0] if rows else None, "synthetic", "true",
                   "synthetic replica rows are mixed with real rows; keep the replica in its own folder")


def _check_arms(ctx: _Context) -> None:
    with_arms = set(ctx.frames["arms"]["study_id"].dropna())
    if "arms" in ctx.raws:
        for r in _rows(ctx.frames["studies"]):
            if not _blank(r.study_id) and r.study_id not in with_arms:
                ctx.report("studies", r.source_row, "study_id", r.study_id,
                           "no arms listed for this study in arms", Severity.WARNING)
    exp, ctl = ctx.vocabulary.role_experimental, ctx.vocabulary.role_control
    for r in _rows(ctx.frames["arms"]):
        if r.arm_role == ctl and _blank(r.control_type):
            ctx.report("arms", r.source_row, "control_type", "", "a control arm needs its control_type")
        if r.arm_role == exp and not _blank(r.control_type):
            ctx.report("arms", r.source_row, "control_type", r.control_type,
                       f"control_type is for control arms; this arm is the experimental arm ('{exp}')")


def _overridden(r) -> bool:
    return not _blank(r.as_printed)


def _rule(ctx: _Context, r, column, value, problem) -> None:
    """Report a broken rule: an error, or a warning when the row carries an `as_printed` reason."""
    if _overridden(r):
        ctx.report("outcomes", r.source_row, column, value,
                   f"{problem} (kept as printed: {r.as_printed}; use = {r.as_printed_use or 'exclude'})",
                   Severity.WARNING)
    else:
        ctx.report("outcomes", r.source_row, column, value,
                   f"{problem}; if the source prints it so, copy it and give the reason in as_printed")


def _check_outcome_row(ctx: _Context, r) -> None:
    reg = ctx.registry
    inst = None
    if not _blank(r.as_printed_use) and not _overridden(r):
        ctx.report("outcomes", r.source_row, "as_printed_use", r.as_printed_use,
                   "as_printed_use needs the reason in as_printed")
    if not _blank(r.instrument):
        if r.instrument in reg:
            inst = reg.get(r.instrument)
            if not _blank(r.outcome) and inst.outcome != r.outcome:
                ctx.report("outcomes", r.source_row, "instrument", r.instrument,
                           f"instrument {r.instrument!r} measures {inst.outcome}, the row says {r.outcome}")
        elif ctx.registry_read:
            ctx.report("outcomes", r.source_row, "instrument", r.instrument,
                       f"unknown instrument{_suggest(r.instrument, reg.known())}; known: {', '.join(reg.known())}"
                       f"; add it to extraction/{INSTRUMENTS_FILE}")
    contrast = r.value_kind == ValueKind.CONTRAST
    if contrast:
        if _blank(r.comparator_arm_id):
            ctx.report("outcomes", r.source_row, "comparator_arm_id", "", "a contrast needs comparator_arm_id")
        if _blank(r.contrast_measure):
            ctx.report("outcomes", r.source_row, "contrast_measure", "", "a contrast needs MD or SMD")
        if not _blank(r.n):
            ctx.report("outcomes", r.source_row, "n", r.n, "contrast rows give n_individualized and n_control, not n")
    else:
        for col in ("comparator_arm_id", "contrast_measure", "n_individualized", "n_control"):
            if not _blank(getattr(r, col)):
                ctx.report("outcomes", r.source_row, col, getattr(r, col), "only contrast rows have this column")
    if r.value_kind == ValueKind.BASELINE and not _blank(r.timepoint_weeks) and r.timepoint_weeks != 0:
        ctx.report("outcomes", r.source_row, "timepoint_weeks", r.timepoint_weeks, "a baseline row has time point 0")
    if r.reported_as == ReportedAs.IMPROVEMENT and r.value_kind in (ValueKind.BASELINE, ValueKind.FINAL):
        ctx.report("outcomes", r.source_row, "reported_as", r.reported_as,
                   "'improvement' describes changes and contrasts; a baseline or final value is 'scale'")
    if r.reported_as == ReportedAs.UNCLEAR:
        ctx.report("outcomes", r.source_row, "reported_as", r.reported_as,
                   "orientation not stated by the source: reported, never pooled", Severity.WARNING)
    _check_numbers(ctx, r, inst, contrast)


def _check_numbers(ctx: _Context, r, inst, contrast: bool) -> None:
    numbers = [getattr(r, c) for c in ("mean", "sd", "se", "ci_low", "ci_high", "p_value", "t_value", "median")]
    if all(_blank(v) for v in numbers):
        ctx.report("outcomes", r.source_row, "mean", "", "row holds no numbers (mean, SD, SE, CI, p, t or median)")
        return
    if not _blank(r.sd) and not _blank(r.se) and contrast:
        ctx.report("outcomes", r.source_row, "sd", r.sd, "give either sd or se for a contrast, not both")
    lo, hi, est = r.ci_low, r.ci_high, r.mean
    if _blank(lo) != _blank(hi):
        ctx.report("outcomes", r.source_row, "ci_high" if _blank(hi) else "ci_low", "", "a CI needs both limits")
    elif not _blank(lo):
        if lo >= hi:
            _rule(ctx, r, "ci_low", f"{lo:g} to {hi:g}", "lower CI limit is not below the upper limit")
        elif not _blank(est) and not lo <= est <= hi:
            _rule(ctx, r, "mean", est, f"the CI {lo:g} to {hi:g} does not contain its estimate {est:g}")
        elif not _blank(est) and (contrast or r.value_kind == ValueKind.CHANGE):
            mid = (lo + hi) / 2
            if abs(est - mid) > CI_CENTRE_TOLERANCE * (hi - lo):
                hint = " (the midpoint is the estimate with its sign flipped)" if abs(est + mid) <= 0.01 * (hi - lo) + 0.005 else ""
                _rule(ctx, r, "mean", est, f"estimate {est:g} is far from the centre {mid:g} of its CI {lo:g} to {hi:g}{hint}")
    qs = [(c, getattr(r, c)) for c in ("minimum", "q1", "median", "q3", "maximum") if not _blank(getattr(r, c))]
    for (c1, v1), (c2, v2) in zip(qs, qs[1:]):
        if v1 > v2:
            ctx.report("outcomes", r.source_row, c2, v2, f"{c2} {v2:g} is below {c1} {v1:g}")
    if inst is None or contrast:
        return
    scored = ("mean", "median", "q1", "q3", "minimum", "maximum")
    if r.value_kind in (ValueKind.BASELINE, ValueKind.FINAL):
        for c in scored:
            v = getattr(r, c)
            if not _blank(v) and not inst.contains(v):
                _rule(ctx, r, c, v, f"{v:g} is outside the range of {inst.id} [{inst.minimum:g}, {inst.maximum:g}]")
    elif (r.value_kind == ValueKind.CHANGE and inst.has_range and not _blank(r.mean)
          and abs(r.mean) > inst.width):
        _rule(ctx, r, "mean", r.mean, f"a change of {r.mean:g} exceeds the width {inst.width:g} of {inst.id}")


def _check_outcomes(ctx: _Context) -> None:
    for r in _rows(ctx.frames["outcomes"]):
        before = len(ctx.out.items)
        _check_outcome_row(ctx, r)
        if _overridden(r) and not any(p["severity"] == Severity.WARNING and "kept as printed" in p["problem"]
                                      for p in ctx.out.items[before:]):
            ctx.report("outcomes", r.source_row, "as_printed", r.as_printed,
                       f"kept as printed: {r.as_printed}; use = {r.as_printed_use or 'exclude'}",
                       Severity.WARNING)


def _check_rob(ctx: _Context) -> None:
    rob = ctx.frames["risk_of_bias"]
    if rob.empty and "risk_of_bias" in ctx.raws:
        ctx.report("risk_of_bias", None, None, None, "no risk-of-bias rows yet", Severity.WARNING)


# ---------------------------------------------------------------------------------------------- API
def _collect(path: Path, registry: Registry | str | Path | None, vocabulary: SheetVocabulary | None
             ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, Registry, SheetVocabulary]:
    out = _Problems()
    path = Path(path)
    vocabulary = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    sheets = form(vocabulary).sheets
    registry_read = True
    if not isinstance(registry, Registry):
        extra = Path(registry) if registry is not None else (path if path.is_dir() else path.parent) / INSTRUMENTS_FILE
        try:
            registry = load_registry(extra, vocabulary)
        except ExtractionError as exc:
            out.add(extra, None, None, None, None, str(exc))
            registry, registry_read = load_registry(None), False
    raws = _read_any(path, out)
    frames = {sh.name: _typed_frame(sh, raws.get(sh.name), out) for sh in sheets}
    if raws:
        ctx = _Context(raws, frames, registry, out, str(path), vocabulary, registry_read)
        for sh in sheets:
            _check_duplicates(ctx, sh)
        _check_references(ctx)
        _check_studies(ctx)
        _check_arms(ctx)
        _check_outcomes(ctx)
        _check_rob(ctx)
    return frames, out.frame(), registry, vocabulary


def validate(path: str | Path, *, registry: Registry | str | Path | None = None,
             vocabulary: SheetVocabulary | None = None) -> pd.DataFrame:
    """Every problem in the extraction at `path` (a workbook, or a folder of CSV files), as a DataFrame
    with columns file, sheet, row, column, value, problem, severity ('error' or 'warning').
    `registry`: the project's instruments, as a Registry or as the path of the project's instruments.yaml
    (read on top of the library; a bad file is reported as a problem row); default: an instruments.yaml
    beside the sheets. `vocabulary`: the project's codes (`Review.sheet_vocabulary()`); default: the generic
    `DEFAULT_VOCABULARY`."""
    return _collect(Path(path), registry, vocabulary)[1]


def format_problems(problems: pd.DataFrame) -> str:
    """The problem table as plain text, errors first."""
    if problems.empty:
        return "no problems"
    order = problems.assign(_e=problems["severity"].ne(Severity.ERROR)).sort_values(
        ["_e", "file", "sheet", "row"], kind="stable")
    cols = ["severity", "file", "sheet", "row", "column", "value", "problem"]
    cells = order[cols].astype("string").fillna("").values.tolist()
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols[:-1])]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols[:-1], widths)) + "  problem"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r[:-1], widths)) + "  " + r[-1] for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def load_extraction(path: str | Path, *, registry: Registry | str | Path | None = None,
                    vocabulary: SheetVocabulary | None = None) -> Extraction:
    """Read and validate the extraction at `path` (arguments as `validate`); raise ExtractionError (message =
    the full problem table) when anything is an error. Warnings are kept in `Extraction.problems`."""
    path = Path(path)
    frames, problems, registry, vocabulary = _collect(path, registry, vocabulary)
    errors = problems[problems["severity"] == Severity.ERROR]
    if not errors.empty:
        raise ExtractionError(
            f"{path}: {len(errors)} error(s) in the extraction sheets\n{format_problems(problems)}"
        )
    return Extraction(
        studies=frames["studies"], arms=frames["arms"], outcomes=frames["outcomes"],
        risk_of_bias=frames["risk_of_bias"], problems=problems, source=path, registry=registry,
        vocabulary=vocabulary,
    )


def _csv_text(value) -> str:
    if _blank(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def write_csv_folder(extraction: Extraction, folder: str | Path) -> list[Path]:
    """Write the extraction as one CSV file per sheet (schema column order) into `folder`, as one set: the
    folder is rebuilt beside itself with the new sheets and every other file it holds (instruments.yaml,
    notes, ...) carried over, then swapped in atomically (`metaexercise.atomic.replace_folder`), so a crash
    leaves the previous sheets or the new ones, never a mix. Text a spreadsheet would run as a formula gets
    a leading `'` (`metaexercise.spreadsheet_safety.csv_cell`; the readers here undo it), a carriage return
    in a cell becomes a line feed; numbers stay numbers."""
    from metaexercise.atomic import replace_folder

    folder = Path(folder)
    frames = {"studies": extraction.studies, "arms": extraction.arms, "outcomes": extraction.outcomes,
              "risk_of_bias": extraction.risk_of_bias}
    names = [csv_name(sh.name) for sh in extraction.form.sheets]

    def build(staging: Path) -> None:
        for sh, name in zip(extraction.form.sheets, names, strict=True):
            df = frames[sh.name].astype(object)
            with open(staging / name, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(sh.column_names)
                for rec in df[list(sh.column_names)].itertuples(index=False, name=None):
                    w.writerow([csv_cell(_csv_text(v)) for v in rec])

    replace_folder(folder, build, keep=lambda name: name not in names)
    return [folder / name for name in names]


COMPARE_COLUMNS = ("sheet", "key", "column", "value_a", "value_b", "row_a", "row_b", "difference")
#: Columns that say who extracted a row; two extractors differ there by design.
_NOT_COMPARED = ("source_row", "extractor")


def compare_extractions(a: Extraction, b: Extraction) -> pd.DataFrame:
    """Cell-by-cell disagreements between two independent extractions of the same studies (the review:
    "two independent reviewers extracted the data"): rows only one has, and cells that differ, matched
    on each sheet's key. Columns: sheet, key, column, value_a, value_b, row_a, row_b, difference."""
    out = []
    for sh in a.form.sheets:
        fa, fb = getattr(a, sh.name), getattr(b, sh.name)
        ra = {tuple(r[k] for k in sh.key): r for r in (x._asdict() for x in _rows(fa))}
        rb = {tuple(r[k] for k in sh.key): r for r in (x._asdict() for x in _rows(fb))}
        for key in sorted(set(ra) | set(rb), key=lambda k: tuple("" if v is None else str(v) for v in k)):
            label = " | ".join("" if v is None else _csv_text(v) for v in key)
            x, y = ra.get(key), rb.get(key)
            if x is None or y is None:
                out.append((sh.name, label, "", "", "", x and x["source_row"], y and y["source_row"],
                            "only in A" if y is None else "only in B"))
                continue
            for col in sh.column_names:
                if col in sh.key or col in _NOT_COMPARED:
                    continue
                if _csv_text(x[col]) != _csv_text(y[col]):
                    out.append((sh.name, label, col, _csv_text(x[col]), _csv_text(y[col]), x["source_row"],
                                y["source_row"], "differs"))
    df = pd.DataFrame(out, columns=list(COMPARE_COLUMNS))
    for c in ("row_a", "row_b"):
        df[c] = pd.array(df[c], dtype="Int64")
    return df
