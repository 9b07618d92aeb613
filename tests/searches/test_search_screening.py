"""The screening log: Cohen's kappa against worked examples, CSV/XLSX round trips, validation messages
naming file, sheet, row and column, and updates that never bring a screened record back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from metaexercise.errors import SearchDataError
from metaexercise.searches.screening import (
    COLUMNS,
    cohen_kappa,
    new_log_rows,
    read_log,
    stage_kappas,
    update_log,
    write_log,
)


def test_kappa_two_categories_worked_example():
    """Wikipedia, "Cohen's kappa", worked example (50 grant proposals): both yes 20, both no 15, rater A yes
    and B no 5, A no and B yes 10. By hand: po = (20 + 15) / 50 = 0.70; A says yes 25/50 = 0.5, B says yes
    30/50 = 0.6; pe = 0.5 * 0.6 + 0.5 * 0.4 = 0.50; kappa = (0.70 - 0.50) / (1 - 0.50) = 0.40."""
    a = ["yes"] * 20 + ["no"] * 15 + ["yes"] * 5 + ["no"] * 10
    b = ["yes"] * 20 + ["no"] * 15 + ["no"] * 5 + ["yes"] * 10
    result = cohen_kappa(a, b)
    assert result.n == 50
    assert result.po == pytest.approx(0.70, abs=1e-12)
    assert result.pe == pytest.approx(0.50, abs=1e-12)
    assert result.kappa == pytest.approx(0.40, abs=1e-12)
    assert result.table.loc["yes", "no"] == 5 and result.table.loc["no", "yes"] == 10


def test_kappa_three_categories_by_hand():
    """Three categories, 10 items. Agreement on items 1-7 (include 3, exclude 3, unclear 1): po = 0.7.
    Rater 1 marginals: include 4, exclude 4, unclear 2; rater 2: include 3, exclude 5, unclear 2.
    pe = (4*3 + 4*5 + 2*2) / 100 = 0.36; kappa = (0.7 - 0.36) / 0.64 = 0.53125."""
    r1 = ["include"] * 3 + ["exclude"] * 3 + ["unclear"] + ["include", "exclude", "unclear"]
    r2 = ["include"] * 3 + ["exclude"] * 3 + ["unclear"] + ["exclude", "unclear", "exclude"]
    assert cohen_kappa(r1, r2).kappa == pytest.approx(0.53125, abs=1e-12)


def test_kappa_ignores_undecided_items_and_is_nan_without_variation():
    assert cohen_kappa(["include", "", "exclude"], ["include", "exclude", ""]).n == 1
    assert np.isnan(cohen_kappa(["exclude"] * 3, ["exclude"] * 3).kappa)
    assert cohen_kappa(["include", "exclude"], ["include", "exclude"]).kappa == 1.0


def _records(n):
    return pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "title": [f"Trial {i}" for i in range(n)],
                         "authors": "Roe B", "year": "2024", "journal": "Spine", "doi": "", "pmid": "",
                         "database": "PubMed", "abstract": "not in the log"})


def _decided(log):
    log = log.copy()
    log.loc[0, ["reviewer1", "reviewer2", "ta_r1", "ta_r2", "ta_decision"]] = ["JF", "PF", "include", "include",
                                                                              "include"]
    log.loc[0, ["ft_retrieved", "ft_r1", "ft_r2", "ft_decision", "exclusion_reason"]] = [
        "yes", "exclude", "include", "exclude", "design"]
    log.loc[0, "resolution"] = "third reviewer DN"
    log.loc[1, ["ta_r1", "ta_r2", "ta_decision"]] = ["exclude", "unclear", "exclude"]
    return log


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_log_round_trip(tmp_path, suffix):
    log = _decided(new_log_rows(_records(3)))
    path = tmp_path / f"screening{suffix}"
    write_log(path, log)
    back = read_log(path)
    pd.testing.assert_frame_equal(back, log[list(COLUMNS)].astype(object), check_dtype=False)
    kappas = stage_kappas(back)
    assert kappas["title_abstract"].n == 2 and kappas["full_text"].n == 1


def test_xlsx_has_drop_down_lists(tmp_path):
    path = tmp_path / "screening.xlsx"
    write_log(path, new_log_rows(_records(2)))
    sheet = load_workbook(path)["screening"]
    formulas = {dv.formula1 for dv in sheet.data_validations.dataValidation}
    assert '"include,exclude,unclear"' in formulas
    assert '"population,intervention,duration,comparator,outcome,design,language,duplicate,other"' in formulas


def test_update_keeps_screened_rows_and_adds_only_new_records():
    log = _decided(new_log_rows(_records(2)))
    updated = update_log(log, _records(4))
    assert updated["record_id"].tolist() == ["r0", "r1", "r2", "r3"]
    pd.testing.assert_frame_equal(updated.iloc[:2], log[list(COLUMNS)])
    assert (updated.iloc[2:][["ta_decision", "ft_decision"]] == "").all().all()
    assert update_log(updated, _records(4)).equals(updated)  # a screened record never comes back


def test_invalid_log_lists_every_problem_with_row_and_column(tmp_path):
    log = new_log_rows(_records(4))
    log.loc[0, "ta_r1"] = "yes"
    log.loc[1, ["ta_decision", "ft_decision"]] = ["exclude", "include"]
    log.loc[2, ["ta_decision", "ft_retrieved", "ft_decision"]] = ["include", "yes", "exclude"]
    log.loc[3, ["ta_decision", "ft_retrieved", "ft_decision", "exclusion_reason"]] = [
        "include", "yes", "exclude", "other"]
    path = tmp_path / "screening.xlsx"
    write_log(path, log)
    with pytest.raises(SearchDataError) as caught:
        read_log(path)
    message = str(caught.value)
    assert message.splitlines() == [
        "4 problem(s) in the screening log:",
        "screening.xlsx sheet screening row 2, column ta_r1: 'yes' is not one of include, exclude, unclear",
        "screening.xlsx sheet screening row 3, column ft_decision: full-text columns are filled but "
        "ta_decision is exclude; only records included at title/abstract go on",
        "screening.xlsx sheet screening row 4, column exclusion_reason: required when ft_decision is exclude; "
        "one of population, intervention, duration, comparator, outcome, design, language, duplicate, other",
        "screening.xlsx sheet screening row 5, column notes: explain the exclusion reason 'other'",
    ]


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "screening.csv"
    path.write_text("record_id,title\nr1,A\n")
    with pytest.raises(SearchDataError, match=r"screening.csv row 1: missing column\(s\) authors, year"):
        read_log(path)
