"""The malformed-input corpus (tests/sheets/malformed/, written by make_corpus.py from ../valid/ with one
defect per file). Each file's problems are pinned here by hand: severity, sheet, row, column and a
part of the message. Validation must report exactly these problems and must not touch the input."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sheets_vocabularies import load_extraction, validate

from metaexercise.errors import ExtractionError
from metaexercise.extraction.sheets import PROBLEM_COLUMNS

MALFORMED = Path(__file__).parent / "malformed"
VALID = Path(__file__).parent / "valid"

E, W = "error", "warning"

#: file -> [(severity, sheet, row, column, part of the message)]; row None = whole sheet or file.
CASES: dict[str, list[tuple]] = {
    "studies__missing_column.csv": [(E, "studies", 1, "year", "missing column")],
    "studies__extra_column.csv": [(E, "studies", 1, "colour", "unknown column; allowed: study_id")],
    "studies__duplicate_header.csv": [(E, "studies", 1, "first_author", "duplicate column")],
    "studies__text_in_year.csv": [(E, "studies", 2, "year", "text in a numeric cell")],
    "studies__year_not_whole.csv": [(E, "studies", 2, "year", "expected a whole number")],
    "studies__decimal_comma.csv": [(E, "studies", 2, "mean_age", "decimal comma? use a point")],
    "studies__duplicate_id.csv": [
        (E, "studies", 3, "study_id", "duplicate key: same study_id as row 2"),
        # beta2018 is gone, so its arms and outcomes now refer to an unknown study:
        (E, "arms", 4, "study_id", "not in studies"), (E, "arms", 5, "study_id", "not in studies"),
        (E, "outcomes", 8, "study_id", "not in studies"), (E, "outcomes", 9, "study_id", "not in studies"),
    ],
    "studies__bad_code.csv": [(E, "studies", 2, "design", "did you mean 'parallel'?")],
    "studies__cluster_without_icc.csv": [(E, "studies", 3, "icc", "a cluster trial needs icc")],
    "studies__excluded_without_reason.csv": [(E, "studies", 2, "exclusion_reason", "needs a reason")],
    "studies__required_blank.csv": [(E, "studies", 2, "first_author", "required value is blank")],
    "studies__bad_bool.csv": [(E, "studies", 2, "synthetic", "expected true or false")],
    "studies__percent_over_100.csv": [(E, "studies", 2, "percent_female", "must be at most 100")],
    "studies__related_above_total.csv": [(E, "studies", 2, "adverse_events_related", "more treatment-related")],
    "studies__mixed_synthetic.csv": [(E, "studies", 2, "synthetic", "mixed with real rows")],
    "studies__header_only.csv": [(E, "studies", None, None, "header but no data rows")],
    "studies__study_without_arms.csv": [(W, "studies", 4, "study_id", "no arms listed for this study")],
    "studies__empty.csv": [(E, "studies", None, None, "empty sheet: no header row")],
    "studies__semicolons.csv": [(E, "studies", 1, None, "separated by semicolons")],
    "studies__tabs.csv": [(E, "studies", 1, None, "separated by tabs")],
    "studies__ragged_row.csv": [(E, "studies", 2, None, "row has 27 fields but the header has 26")],
    "studies__latin1.csv": [(E, "studies", 2, None, "not UTF-8 text (byte 0xe9 on line 2")],
    "studies__utf16.csv": [(E, "studies", None, None, "UTF-16")],
    "arms__unknown_study.csv": [
        (E, "arms", 2, "study_id", "not in studies"),
        (E, "outcomes", 2, "arm_id", "arm not in arms"), (E, "outcomes", 4, "arm_id", "arm not in arms"),
        (E, "outcomes", 6, "arm_id", "arm not in arms"),
    ],
    "arms__control_without_type.csv": [(E, "arms", 3, "control_type", "a control arm needs its control_type")],
    "arms__individualized_with_type.csv": [(E, "arms", 2, "control_type", "control_type is for control arms")],
    "arms__n_below_2.csv": [(E, "arms", 2, "n_randomised", "must be at least 2")],
    "outcomes__sd_negative.csv": [(E, "outcomes", 2, "sd", "must be greater than 0")],
    "outcomes__sd_zero.csv": [(E, "outcomes", 2, "sd", "must be greater than 0")],
    "outcomes__n_one.csv": [(E, "outcomes", 2, "n", "must be at least 2")],
    "outcomes__mean_outside_range.csv": [(E, "outcomes", 4, "mean", "130 is outside the range of VAS-100 [0, 100]")],
    "outcomes__ci_excludes_estimate.csv": [(E, "outcomes", 8, "mean", "CI 0.2 to 0.8 does not contain its estimate -1")],
    "outcomes__ci_reversed.csv": [(E, "outcomes", 8, "ci_low", "lower CI limit is not below the upper limit")],
    "outcomes__ci_one_limit.csv": [(E, "outcomes", 8, "ci_high", "a CI needs both limits")],
    "outcomes__estimate_off_centre.csv": [(E, "outcomes", 8, "mean", "far from the centre -1 of its CI")],
    "outcomes__as_printed_override.csv": [(W, "outcomes", 8, "mean", "kept as printed: sign probably lost; use = negate")],
    "outcomes__unknown_arm.csv": [(E, "outcomes", 3, "arm_id", "refers to an arm not in arms for study alpha2020")],
    "outcomes__unknown_study.csv": [(E, "outcomes", 2, "study_id", "refers to a study that is not in studies")],
    "outcomes__negative_timepoint.csv": [(E, "outcomes", 4, "timepoint_weeks", "must be at least 0")],
    "outcomes__unknown_instrument.csv": [(E, "outcomes", 6, "instrument", "unknown instrument; known: ")],
    "outcomes__instrument_other_outcome.csv": [(E, "outcomes", 2, "instrument", "'ODI' measures disability")],
    "outcomes__duplicate_key.csv": [(E, "outcomes", 3, None, "duplicate key")],
    "outcomes__contrast_without_comparator.csv": [(E, "outcomes", 8, "comparator_arm_id", "needs comparator_arm_id")],
    "outcomes__contrast_arm_is_control.csv": [
        (E, "outcomes", 8, "arm_id", "must be the experimental arm (arm_role 'individualized')"),
        (E, "outcomes", 8, "comparator_arm_id", "must be a control arm"),
    ],
    "outcomes__baseline_not_at_zero.csv": [(E, "outcomes", 2, "timepoint_weeks", "a baseline row has time point 0")],
    "outcomes__quartiles_disordered.csv": [(E, "outcomes", 9, "q3", "q3 -4 is below median -3")],
    "outcomes__no_numbers.csv": [(E, "outcomes", 6, "mean", "row holds no numbers")],
    "outcomes__change_exceeds_width.csv": [(E, "outcomes", 6, "mean", "exceeds the width 100 of ODI")],
    "outcomes__n_on_contrast.csv": [(E, "outcomes", 8, "n", "contrast rows give n_individualized and n_control")],
    "outcomes__p_zero.csv": [(E, "outcomes", 8, "p_value", "must be greater than 0")],
    "outcomes__unclear_orientation.csv": [(W, "outcomes", 8, "reported_as", "never pooled")],
    "outcomes__final_as_improvement.csv": [(E, "outcomes", 4, "reported_as", "a baseline or final value is 'scale'")],
    "outcomes__use_without_reason.csv": [(E, "outcomes", 8, "as_printed_use", "needs the reason in as_printed")],
    "risk_of_bias__bad_judgement.csv": [(E, "risk_of_bias", 2, "judgement", "'unclear' is not an allowed value")],
    "risk_of_bias__unknown_domain.csv": [(E, "risk_of_bias", 3, "domain", "is not an allowed value")],
    "merged_cells.xlsx": [(W, "studies", 2, None, "merged cells E2:E3")],
    "formula_cached.xlsx": [(W, "arms", 2, None, "cell G2 holds a formula; its saved value 40 is read")],
    "formula_uncached.xlsx": [(E, "arms", 2, None, "cell G2 holds a formula with no saved value")],
    "missing_sheet.xlsx": [(E, "risk_of_bias", None, None, "missing sheet 'risk_of_bias'")],
    "extra_sheet.xlsx": [(W, "my notes", None, None, "extra sheet 'my notes' ignored")],
    "text_in_numeric.xlsx": [(E, "outcomes", 2, "n", "text in a numeric cell")],
    "value_without_header.xlsx": [(E, "arms", 2, None, "value in a column without a header")],
    "empty_sheet.xlsx": [(E, "studies", None, None, "empty sheet: no header row")],
    "not_a_workbook.xlsx": [(E, None, None, None, "not an XLSX workbook")],
    "corrupt_zip.xlsx": [(E, None, None, None, "not a readable XLSX workbook")],
    "old_format.xls": [(E, None, None, None, "expected an .xlsx workbook or a folder")],
}


def _target(name: str, tmp_path: Path) -> Path:
    """A CSV case replaces one sheet of a copy of the valid folder; anything else is read directly."""
    if "__" not in name:
        return MALFORMED / name
    folder = tmp_path / "extraction"
    shutil.copytree(VALID, folder)
    shutil.copy(MALFORMED / name, folder / f"{name.split('__')[0]}.csv")
    return folder


def _digest(path: Path) -> str:
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files if f.is_file())).hexdigest()


def _blank(v) -> bool:
    return v is None or bool(pd.isna(v))


def test_corpus_is_complete():
    files = sorted(p.name for p in MALFORMED.iterdir() if p.suffix != ".py" and p.name != "__pycache__")
    assert len(files) >= 40
    assert set(files) == set(CASES), "every corpus file needs pinned problems, and every pinned case a file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_reports_its_problems(name: str, tmp_path: Path):
    target = _target(name, tmp_path)
    before = _digest(MALFORMED / name)
    problems = validate(target)
    assert list(problems.columns) == list(PROBLEM_COLUMNS)
    got = [(r.severity, None if _blank(r.sheet) else r.sheet, None if _blank(r.row) else int(r.row),
            None if _blank(r.column) else r.column, r.problem) for r in problems.itertuples()]
    expected = CASES[name]
    assert len(got) == len(expected), got
    for exp in expected:
        sev, sheet, row, column, part = exp
        matches = [g for g in got if g[0] == sev and g[1] == sheet and g[2] == row
                   and (column is None or g[3] == column) and part in g[4]]
        assert matches, f"{exp} not in {got}"
    assert _digest(MALFORMED / name) == before, "validation modified its input"
    if any(e[0] == E for e in expected):
        with pytest.raises(ExtractionError, match="error"):
            load_extraction(target)
    else:
        assert len(load_extraction(target).problems) == len(expected)


def test_missing_file_is_named(valid_copy: Path):
    (valid_copy / "arms.csv").unlink()
    problems = validate(valid_copy)
    assert problems["problem"].str.contains("missing file arms.csv").any()
    assert (problems["severity"] == "error").sum() == 1


def test_every_problem_is_reported_at_once(valid_copy: Path):
    """Three defects in three sheets: three rows, not the first only."""
    for sheet, old, new in (("studies", "Alpha,2020", "Alpha,20x0"), ("arms", ",40,", ",1,"),
                            ("outcomes", ",55,18,", ",55,-18,")):
        path = valid_copy / f"{sheet}.csv"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    problems = validate(valid_copy)
    assert sorted(problems["sheet"]) == ["arms", "outcomes", "studies"]


def test_excel_csv_with_bom_and_crlf_is_read(valid_copy: Path):
    path = valid_copy / "studies.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert validate(valid_copy).empty


def test_bad_project_instruments_file_is_a_problem_row(valid_copy: Path):
    (valid_copy / "instruments.yaml").write_text("- id: X\n  name: x\n  outcome: mood\n  higher_is_worse: true\n",
                                                 encoding="utf-8")
    problems = validate(valid_copy)
    assert problems["file"].str.endswith("instruments.yaml").any()
    assert problems["problem"].str.contains("outcome 'mood'").any()


def test_trailing_separators_are_ignored(valid_copy: Path):
    path = valid_copy / "arms.csv"
    path.write_text("".join(line + ",,\n" for line in path.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    assert validate(valid_copy).empty
