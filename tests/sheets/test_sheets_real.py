"""The committed real extraction: valid (warnings only for rows kept as printed), nothing invented.
Numbers checked here are copied from the sources named in each row (see extraction/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sheets_vocabularies import load_extraction, validate

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture(scope="module")
def real():
    return load_extraction(ROOT / "extraction")


def test_real_extraction_has_no_errors():
    problems = validate(ROOT / "extraction")
    assert (problems["severity"] == "error").sum() == 0
    flagged = problems[problems["problem"].str.contains("kept as printed")]
    # Heinrich 12-month PT pain MD, Saner RMDQ and PSFS spreads printed as SD, Apeldoorn ODI and NRS
    assert sorted(flagged["row"].astype(int)) == [32, 49, 50, 51, 52]


def test_confirmed_studies_and_their_status(real):
    s = real.studies.set_index("study_id")
    assert len(s) == 14  # 13 confirmed by the review's sub-chronic sentence + Ulger 2017 (very likely)
    assert set(s.index[s["inclusion_status"] == "included"]) == {
        "apeldoorn2012", "ford2016", "heinrich2009", "lehtola2016", "petersen2011", "saner2015"}
    assert not s["synthetic"].any()
    assert s["source"].str.startswith("http").all()
    assert "VERY LIKELY" in s.loc["ulger2017", "notes"]
    # the review's Discussion: one study (ref 16) holds 414 adverse events, 98 treatment-related
    assert (s.loc["goertz2017", "adverse_events_total"], s.loc["goertz2017", "adverse_events_related"]) == (414, 98)


def test_every_outcome_row_has_provenance(real):
    o = real.outcomes
    assert o["source"].notna().all() and o["location"].notna().all()


def test_heinrich_table_3_as_printed(real):
    o = real.outcomes
    pt_pain_6m = o[(o["study_id"] == "heinrich2009") & (o["arm_id"] == "pt") & (o["instrument"] == "pain-unstated")
                   & (o["timepoint_weeks"] == 26) & (o["value_kind"] == "change")].iloc[0]
    assert (pt_pain_6m["mean"], pt_pain_6m["sd"], pt_pain_6m["reported_as"]) == (2.0, 1.8, "improvement")
    assert pd_isna(pt_pain_6m["n"])  # per-arm analysed n is not printed


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_candidates_are_kept_apart():
    cand = load_extraction(ROOT / "extraction" / "candidates")
    assert set(cand.studies["inclusion_status"]) == {"candidate (not verified)"}
    assert set(cand.studies["study_id"]) == {"okeeffe2020", "vibefersum2013", "frost2004"}
    main = load_extraction(ROOT / "extraction")
    assert not set(cand.studies["study_id"]) & set(main.studies["study_id"])
