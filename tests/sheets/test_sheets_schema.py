"""schema.py is the single source: the README dictionary, the template workbook and the importer
all follow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from sheets_vocabularies import BACK_PAIN, load_extraction, validate

from metaexercise.commands.cli import main
from metaexercise.extraction.instruments import builtin_registry
from metaexercise.extraction.schema import form

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
#: The back-pain project's sheets (the repository root's review.yaml).
SHEETS = form(BACK_PAIN).sheets


def test_readme_dictionary_is_generated_from_schema():
    text = (ROOT / "extraction" / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- BEGIN GENERATED DICTIONARY -->\n")[1].split("<!-- END GENERATED DICTIONARY -->")[0]
    assert block == form(BACK_PAIN).dictionary_markdown(), "regenerate the dictionary block of extraction/README.md"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("form") / "form.xlsx"
    assert main(["--project", str(ROOT), "template", str(path)]) == 0
    return path


def test_template_sheets_headers_and_lists(template: Path):
    wb = openpyxl.load_workbook(template)
    assert {s.name for s in SHEETS} | {"README", "Instruments", "lists"} == set(wb.sheetnames)
    for sh in SHEETS:
        ws = wb[sh.name]
        assert [c.value for c in ws[1]] == list(sh.column_names)
    kinds = {}
    for dv in wb["outcomes"].data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            kinds[openpyxl.utils.get_column_letter(rng.min_col)] = (dv.type, dv.formula1)
    header = [c.value for c in wb["outcomes"][1]]
    col = openpyxl.utils.get_column_letter(header.index("value_kind") + 1)
    assert kinds[col][0] == "list" and kinds[col][1].lstrip("'").startswith("lists")
    col = openpyxl.utils.get_column_letter(header.index("instrument") + 1)
    assert kinds[col][0] == "list"
    listed = builtin_registry().for_outcomes(BACK_PAIN.outcome_ids).instruments
    assert kinds[col][1].endswith(f"Instruments'!$A$2:$A${len(listed) + 1}")
    col = openpyxl.utils.get_column_letter(header.index("sd") + 1)
    assert kinds[col][0] == "decimal"
    ids = [r[0] for r in wb["Instruments"].iter_rows(min_row=2, values_only=True)]
    assert sorted(ids) == sorted(listed)  # the instruments of the declared outcomes
    readme_rows = list(wb["README"].iter_rows(min_row=4, values_only=True))
    assert len(readme_rows) == sum(len(s.columns) for s in SHEETS)


def test_empty_template_is_reported_as_empty(template: Path):
    problems = validate(template)
    errors = problems[problems["severity"] == "error"]
    assert sorted(errors["sheet"]) == ["arms", "outcomes", "studies"]
    assert errors["problem"].str.contains("no data rows").all()


def test_template_refuses_to_overwrite(template: Path, capsys):
    assert main(["--project", str(ROOT), "template", str(template)]) == 2
    assert "exists" in capsys.readouterr().err


def _fill(template: Path, folder: Path, target: Path) -> None:
    wb = openpyxl.load_workbook(template)
    for sh in SHEETS:
        df = pd.read_csv(folder / f"{sh.name}.csv", dtype=str, keep_default_na=False)
        header = [c.value for c in wb[sh.name][1]]
        for rec in df.reindex(columns=header, fill_value="").itertuples(index=False):
            wb[sh.name].append([_cell(v) for v in rec])
    wb.save(target)


def _cell(v: str):
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


def test_import_round_trip(template: Path, tmp_path: Path):
    filled = tmp_path / "filled.xlsx"
    _fill(template, HERE / "valid", filled)
    out = tmp_path / "extraction"
    assert main(["--project", str(ROOT), "import", str(filled), "--to", str(out)]) == 0
    a, b = load_extraction(HERE / "valid"), load_extraction(out)
    for name in ("studies", "arms", "outcomes", "risk_of_bias"):
        pd.testing.assert_frame_equal(getattr(a, name).drop(columns="source_row"),
                                      getattr(b, name).drop(columns="source_row"))


def test_import_writes_nothing_on_error(template: Path, tmp_path: Path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(HERE / "valid", bad)
    text = (bad / "outcomes.csv").read_text(encoding="utf-8").replace(",55,18,", ",55,-18,", 1)
    (bad / "outcomes.csv").write_text(text, encoding="utf-8")
    filled = tmp_path / "filled.xlsx"
    _fill(template, bad, filled)
    out = tmp_path / "extraction"
    shutil.copytree(HERE / "valid", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["--project", str(ROOT), "import", str(filled), "--to", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert "nothing written" in capsys.readouterr().err


def test_validate_exit_codes(tmp_path: Path, capsys):
    assert main(["--project", str(ROOT), "validate", str(ROOT / "extraction")]) == 0
    assert main(["--project", str(ROOT), "validate", str(HERE / "malformed" / "not_a_workbook.xlsx"),
                 "--csv", str(tmp_path / "p.csv")]) == 2
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["file", "sheet", "row", "column", "value", "problem", "severity"]
    assert "not an XLSX workbook" in capsys.readouterr().out


def test_template_fill_round_trips_the_real_extraction(tmp_path: Path):
    workbook = tmp_path / "real.xlsx"
    assert main(["--project", str(ROOT), "template", str(workbook), "--fill", str(ROOT / "extraction")]) == 0
    out = tmp_path / "extraction"
    assert main(["--project", str(ROOT), "import", str(workbook), "--to", str(out)]) == 0
    a, b = load_extraction(ROOT / "extraction"), load_extraction(out)
    for name in ("studies", "arms", "outcomes", "risk_of_bias"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_compare_two_extractors(tmp_path: Path, capsys):
    from metaexercise.extraction.sheets import compare_extractions

    other = tmp_path / "second"
    shutil.copytree(HERE / "valid", other)
    text = (other / "outcomes.csv").read_text(encoding="utf-8").replace(",55,18,", ",56,18,", 1)
    (other / "outcomes.csv").write_text(text, encoding="utf-8")
    lines = (other / "risk_of_bias.csv").read_text(encoding="utf-8").splitlines()
    (other / "risk_of_bias.csv").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    diff = compare_extractions(load_extraction(HERE / "valid"), load_extraction(other))
    assert list(diff["difference"]) == ["differs", "only in A"]
    first = diff.iloc[0]
    assert (first["sheet"], first["column"], first["value_a"], first["value_b"], first["row_a"]) == (
        "outcomes", "mean", "55", "56", 2)
    assert main(["--project", str(ROOT), "validate", str(HERE / "valid"), "--compare", str(other)]) == 2
    assert "2 disagreement(s)" in capsys.readouterr().out
    assert main(["--project", str(ROOT), "validate", str(HERE / "valid"), "--compare", str(HERE / "valid")]) == 0
