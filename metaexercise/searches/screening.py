"""The screening log of an update: two reviewers decide on titles/abstracts, then on full texts.

The log is a CSV (`searches/screening.csv`) or an XLSX workbook (`searches/screening.xlsx`, sheet
"screening", with drop-down lists for the controlled columns); row numbers are the spreadsheet's own
(header = row 1; in the CSV, the line where the row starts). Text that a spreadsheet would run as a formula
is written with a leading `'` (see `metaexercise.spreadsheet_safety`). Columns:

- record_id, title, authors, year, journal, doi, pmid, database: written by `search screen`, do not edit;
- reviewer1, reviewer2: the two reviewers' initials (the review: JF and PF, with DN as third reviewer);
- ta_r1, ta_r2: each reviewer's title/abstract decision: include, exclude or unclear;
- ta_decision: the resolved decision, include or exclude (unclear records go on to full text: include);
- ft_retrieved: yes or no (full text obtained); ft_r1, ft_r2: each reviewer's full-text decision;
- ft_decision: the resolved full-text decision, include or exclude; exclusion_reason: one code of
  `EXCLUSION_REASONS` when ft_decision is exclude;
- resolution: how disagreements were resolved (e.g. "discussion", "third reviewer DN"); study_id: groups the
  reports of one study among the included (defaults to record_id); notes (required for reason "other").

Agreement between the reviewers is Cohen's kappa (Cohen 1960, Educ Psychol Meas 20:37,
doi:10.1177/001316446002000104) over the records both reviewers decided at a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from metaexercise.atomic import atomic_path
from metaexercise.errors import SearchDataError
from metaexercise.searches.tables import read_csv_table
from metaexercise.spreadsheet_safety import escape_frame, unescape_cell, write_xlsx_cell

RECORD_COLUMNS = ("record_id", "title", "authors", "year", "journal", "doi", "pmid", "database")
DECISION_COLUMNS = (
    "reviewer1", "reviewer2", "ta_r1", "ta_r2", "ta_decision", "ft_retrieved", "ft_r1", "ft_r2",
    "ft_decision", "exclusion_reason", "resolution", "study_id", "notes",
)
COLUMNS = RECORD_COLUMNS + DECISION_COLUMNS
SHEET = "screening"

REVIEWER_DECISIONS = ("include", "exclude", "unclear")
FINAL_DECISIONS = ("include", "exclude")
RETRIEVED = ("yes", "no")
#: Full-text exclusion reasons, from the review's eligibility criteria (PICOS; Fleckenstein et al.,
#: medRxiv 2021.12.16.21267900 v2, Methods, "Eligibility criteria" and "Information sources").
EXCLUSION_REASONS: dict[str, str] = {
    "population": "not chronic (> 3 months, or recurrent) non-specific low back pain in most participants",
    "intervention": "exercise not individualized, tailored, personalized or stratified",
    "duration": "exercise intervention shorter than 4 weeks",
    "comparator": "no conservative (non-surgical) control or comparator group",
    "outcome": "no pain intensity or back-specific disability outcome up to 1 year after randomisation",
    "design": "not a randomised controlled trial",
    "language": "not in English, German, French, Spanish or Italian",
    "duplicate": "another report of a study already counted (link it with study_id if included)",
    "other": "other reason, explained in notes",
}
_ALLOWED = {
    "ta_r1": REVIEWER_DECISIONS, "ta_r2": REVIEWER_DECISIONS, "ta_decision": FINAL_DECISIONS,
    "ft_retrieved": RETRIEVED, "ft_r1": REVIEWER_DECISIONS, "ft_r2": REVIEWER_DECISIONS,
    "ft_decision": FINAL_DECISIONS, "exclusion_reason": tuple(EXCLUSION_REASONS),
}


@dataclass(frozen=True, slots=True)
class KappaResult:
    """Cohen's kappa: kappa = (po - pe) / (1 - pe), po the observed and pe the chance-expected agreement
    from the two raters' marginal proportions (Cohen 1960, eq. 1). NaN when pe = 1 (no variation)."""

    kappa: float
    po: float
    pe: float
    n: int
    table: pd.DataFrame

    def summary(self) -> str:
        return f"Cohen's kappa = {self.kappa:.3f} (observed agreement {self.po:.3f}, chance {self.pe:.3f}, n = {self.n})"


def cohen_kappa(rater1, rater2) -> KappaResult:
    """Cohen's kappa between two raters' categorical decisions on the same items (pairs with a missing
    decision, "" or None, are dropped)."""
    a = pd.Series(list(rater1), dtype=object).fillna("")
    b = pd.Series(list(rater2), dtype=object).fillna("")
    if len(a) != len(b):
        raise ValueError(f"the raters decided different numbers of items ({len(a)} and {len(b)})")
    both = (a != "") & (b != "")
    a, b = a[both], b[both]
    categories = sorted(set(a) | set(b))
    table = pd.crosstab(pd.Categorical(a, categories), pd.Categorical(b, categories), dropna=False)
    table.index.name, table.columns.name = "rater1", "rater2"
    n = int(both.sum())
    if n == 0:
        return KappaResult(np.nan, np.nan, np.nan, 0, table)
    counts = table.to_numpy(dtype=float)
    po = np.trace(counts) / n
    pe = float((counts.sum(axis=1) / n) @ (counts.sum(axis=0) / n))
    kappa = (po - pe) / (1 - pe) if pe < 1 else np.nan
    return KappaResult(float(kappa), float(po), pe, n, table)


def stage_kappas(log: pd.DataFrame) -> dict[str, KappaResult]:
    """Kappa between the two reviewers at title/abstract ("title_abstract") and full-text ("full_text")."""
    return {"title_abstract": cohen_kappa(log["ta_r1"], log["ta_r2"]),
            "full_text": cohen_kappa(log["ft_r1"], log["ft_r2"])}


def new_log_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Blank screening-log rows for `records` (records-table rows)."""
    out = records.reindex(columns=list(RECORD_COLUMNS)).astype(object).fillna("")
    for column in DECISION_COLUMNS:
        out[column] = ""
    return out[list(COLUMNS)].reset_index(drop=True)


def update_log(log: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The log with a blank row appended for each record of `records` not already in it. Rows already in the
    log are kept exactly as they are: a record screened once never comes back."""
    fresh = records[~records["record_id"].isin(set(log["record_id"]))]
    return pd.concat([log, new_log_rows(fresh)], ignore_index=True)[list(COLUMNS)]


def read_log(path: Path) -> pd.DataFrame:
    """Read and validate a screening log (CSV or XLSX); SearchDataError lists every problem with file,
    sheet, row and column."""
    if path.suffix.lower() == ".xlsx":
        try:
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # a damaged workbook raises zip, XML or key errors, depending on the damage
            raise SearchDataError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__}: {exc}); "
                                  "open and save it again in a spreadsheet program, or restore it") from None
        if SHEET not in workbook.sheetnames:
            raise SearchDataError(f"{path.name}: no sheet {SHEET!r} (found {', '.join(workbook.sheetnames)})")
        rows = list(workbook[SHEET].iter_rows(values_only=True))
        workbook.close()
        header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else [])]
        while header and header[-1] == "":
            header.pop()
        where = f"{path.name} sheet {SHEET}"
        body = []
        for number, row in enumerate(rows[1:], start=2):
            cells = ["" if v is None else unescape_cell(str(v)) for v in row]
            extra = [k for k in range(len(header), len(cells)) if cells[k].strip()]
            if extra:
                raise SearchDataError(f"{where} row {number}, column {get_column_letter(extra[0] + 1)}: a value "
                                      "in a column without a header; move it into notes")
            body.append((cells + [""] * len(header))[: len(header)])
        frame = pd.DataFrame(body, columns=header, dtype=object)
    else:
        header, lines = read_csv_table(path)
        frame = pd.DataFrame([cells for _, cells in lines], columns=header, dtype=object,
                             index=[line - 2 for line, _ in lines])  # index + 2 = the row's line
        where = path.name
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SearchDataError(f"{where} row 1: missing column(s) {', '.join(missing)}")
    frame = frame[list(COLUMNS)].apply(lambda s: s.str.strip())
    frame = frame[frame.ne("").any(axis=1)].copy()
    for column in _ALLOWED:
        frame[column] = frame[column].str.lower()
    problems = _problems(frame, where)
    if problems:
        raise SearchDataError(f"{len(problems)} problem(s) in the screening log:\n" + "\n".join(problems))
    return frame.reset_index(drop=True)


def _problems(frame: pd.DataFrame, where: str) -> list[str]:
    problems = []
    for index, row in frame.iterrows():
        at = f"{where} row {index + 2}"
        for column, allowed in _ALLOWED.items():
            if row[column] and row[column] not in allowed:
                problems.append(f"{at}, column {column}: {row[column]!r} is not one of {', '.join(allowed)}")
        full_text = [c for c in ("ft_retrieved", "ft_r1", "ft_r2", "ft_decision", "exclusion_reason") if row[c]]
        if row["ta_decision"] != "include" and full_text:
            problems.append(f"{at}, column {full_text[0]}: full-text columns are filled but ta_decision is "
                            f"{row['ta_decision'] or 'empty'}; only records included at title/abstract go on")
        if row["ft_retrieved"] == "no" and row["ft_decision"]:
            problems.append(f"{at}, column ft_decision: a decision on a full text that was not retrieved")
        if row["ft_decision"] == "exclude" and not row["exclusion_reason"]:
            problems.append(f"{at}, column exclusion_reason: required when ft_decision is exclude; one of "
                            + ", ".join(EXCLUSION_REASONS))
        if row["ft_decision"] != "exclude" and row["exclusion_reason"]:
            problems.append(f"{at}, column exclusion_reason: given but ft_decision is not exclude")
        if row["exclusion_reason"] == "other" and not row["notes"]:
            problems.append(f"{at}, column notes: explain the exclusion reason 'other'")
    duplicated = frame["record_id"].duplicated(keep=False)
    for index in frame.index[duplicated]:
        problems.append(f"{where} row {index + 2}, column record_id: {frame.at[index, 'record_id']!r} appears "
                        "more than once")
    return problems


def write_log(path: Path, log: pd.DataFrame) -> None:
    """Write the log atomically as CSV or, for .xlsx, as a workbook with drop-down lists for the
    controlled columns. Text a spreadsheet would run as a formula (a title such as `=HYPERLINK(...)`) is
    escaped with a leading `'` and, in the workbook, stored as a string cell
    (`metaexercise.spreadsheet_safety`); `read_log` undoes the escape."""
    log = log[list(COLUMNS)]
    if path.suffix.lower() != ".xlsx":
        with atomic_path(path) as tmp:
            escape_frame(log).to_csv(tmp, index=False, lineterminator="\n")
        return
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r, row in enumerate(log.itertuples(index=False), start=2):
        for c, value in enumerate(row, start=1):
            write_xlsx_cell(sheet, r, c, value)
    sheet.freeze_panes = "B2"
    last = max(len(log) + 1, 1000)
    for column, allowed in _ALLOWED.items():
        letter = sheet.cell(row=1, column=COLUMNS.index(column) + 1).column_letter
        rule = DataValidation(type="list", formula1='"' + ",".join(allowed) + '"', allow_blank=True)
        rule.error = f"{column}: choose one of {', '.join(allowed)}"
        sheet.add_data_validation(rule)
        rule.add(f"{letter}2:{letter}{last}")
    reasons = workbook.create_sheet("exclusion_reasons")
    reasons.append(["code", "meaning"])
    for code, meaning in EXCLUSION_REASONS.items():
        reasons.append([code, meaning])
    with atomic_path(path) as tmp:
        workbook.save(tmp)
