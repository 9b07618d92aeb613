"""Formula ("CSV") injection is neutralised in every CSV and XLSX the toolkit writes from a project's text:
results/*.csv of `metaexercise run`, the form of `metaexercise template --fill`, the sheets `metaexercise
import` writes, the problem table of `metaexercise validate --csv`. Text a spreadsheet would run (first
character =, +, -, @, tab or carriage return) gets a leading ' (OWASP, "CSV Injection"); numbers, negative
ones included, stay numbers; the toolkit's readers undo the escape, so nothing changes on a round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from metaexercise.commands.cli import main
from metaexercise.spreadsheet_safety import escape_frame, is_number_text, read_csv

REPO = Path(__file__).resolve().parents[2]
METADAT = REPO / "tests" / "reference" / "metadat" / "normand1999_arms.csv"
HOSTILE = ["=HYPERLINK(\"http://example.org\",\"click\")", "=cmd|' /C calc'!A0", "+1+1", "-1+2", "@SUM(A1)",
           "\t=1", "\r=1"]


def _cells(path: Path) -> list[str]:
    return [c for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")) for c in row]


def _live(cell: str) -> bool:
    """True for a cell a spreadsheet would run: a trigger first, and not a plain number."""
    return bool(cell) and cell[0] in "=+-@\t\r" and not is_number_text(cell)


@pytest.fixture
def hostile_project(tmp_path) -> Path:
    root = tmp_path / "p"
    assert main(["init", str(root), "--data", str(METADAT)]) == 0
    studies = pd.read_csv(root / "extraction" / "studies.csv", dtype=str, keep_default_na=False)
    for i, text in enumerate(HOSTILE):
        studies.loc[i, "first_author"] = text
        studies.loc[i, "notes"] = text
    studies.to_csv(root / "extraction" / "studies.csv", index=False, lineterminator="\r\n")  # quotes the CR
    return root


def test_results_csvs_hold_no_live_formula_and_read_back_unchanged(hostile_project, capsys):
    assert main(["--project", str(hostile_project), "run", "--quiet"]) == 0
    results = hostile_project / "results"
    written = {p.name: _cells(p) for p in sorted(results.glob("*.csv"))}
    assert not {n: [c for c in cells if _live(c)] for n, cells in written.items() if any(map(_live, cells))}
    everything = [c for cells in written.values() for c in cells]
    assert "'" + HOSTILE[1] in " ".join(everything) or any(c.startswith("'=cmd") for c in everything)
    assert any(c.startswith("-") and is_number_text(c) for c in everything)  # numbers are not quoted
    frame = read_csv(results / "characteristics.csv", dtype=str, keep_default_na=False)
    assert any(HOSTILE[1] in v for v in frame.to_numpy().ravel())  # read back as written by the project


def test_template_form_and_import_round_trip_hostile_text(hostile_project, tmp_path):
    form = tmp_path / "form.xlsx"
    root = str(hostile_project)
    assert main(["--project", root, "template", str(form), "--fill", root + "/extraction"]) == 0
    ws = openpyxl.load_workbook(form)["studies"]
    header = [c.value for c in ws[1]]
    notes = [ws.cell(r, header.index("notes") + 1) for r in range(2, 2 + len(HOSTILE))]
    assert [c.value for c in notes] == ["'" + t.strip() for t in HOSTILE]  # the sheets' reader strips cells
    assert {c.data_type for c in notes} == {"s"}  # strings, never formulas
    assert all(not c.data_type == "f" for row in ws.iter_rows() for c in row)
    assert main(["--project", root, "import", str(form)]) == 0
    raw = _cells(hostile_project / "extraction" / "studies.csv")
    assert not [c for c in raw if _live(c)]
    assert "'" + HOSTILE[0] in raw
    assert main(["--project", root, "validate"]) == 0
    after = read_csv(hostile_project / "extraction" / "studies.csv", dtype=str, keep_default_na=False)
    assert list(after["notes"][: len(HOSTILE)]) == [t.strip() for t in HOSTILE]
    assert main(["--project", root, "run", "--quiet"]) == 0


def test_validate_problem_table_neutralises_the_values_it_quotes(hostile_project, tmp_path, capsys):
    studies = hostile_project / "extraction" / "studies.csv"
    frame = pd.read_csv(studies, dtype=str, keep_default_na=False)
    frame.loc[0, "design"] = "=cmd|' /C calc'!A0"
    frame.to_csv(studies, index=False)
    table = tmp_path / "problems.csv"
    assert main(["--project", str(hostile_project), "validate", "--csv", str(table)]) == 2
    cells = _cells(table)
    assert "'=cmd|' /C calc'!A0" in cells and not [c for c in cells if _live(c)]


def test_escaping_a_table_keeps_its_numbers_and_their_printing():
    """A column of numbers stored as objects stays objects (pandas would otherwise turn it into floats and
    print it differently); a negative float is a number, "-1+2" is text."""
    frame = pd.DataFrame({"mixed": pd.Series([0.1234567890123, None, -0.5], dtype=object),
                          "text": ["-1+2", "Smith 2010", "-0.5"], "number": [-0.5, 1.0, 2.5]})
    out = escape_frame(frame, headers=True)
    assert out["mixed"].dtype == object
    assert out.to_csv(index=False) == frame.assign(text=["'-1+2", "Smith 2010", "-0.5"]).to_csv(index=False)


def test_a_carriage_return_in_a_cell_does_not_split_the_record():
    frame = pd.DataFrame({"title": ["one\rtwo", "\r=1", "three\r\nfour"], "k": [1, 2, 3]})
    text = escape_frame(frame).to_csv(index=False, lineterminator="\n")
    back = pd.read_csv(io.StringIO(text))
    assert list(back["k"]) == [1, 2, 3]
    assert list(back["title"]) == ["one\ntwo", "\n=1", "three\nfour"]
