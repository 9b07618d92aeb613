"""De-duplication: precision and recall on a constructed set with known duplicates, identifier
normalisation, overrides, and the earlier edition."""

from __future__ import annotations

import pandas as pd
import pytest
from constructed_duplicates import VARIATIONS, constructed_set, pair_set

from metaexercise.errors import SearchDataError
from metaexercise.searches.dedupe import deduplicate
from metaexercise.searches.normalise import main_title, normalise_doi, normalise_pmid, normalise_title


def _record(record_id, title, authors="Smith J", year="2012", doi="", pmid=""):
    return {"record_id": record_id, "title": title, "authors": authors, "year": year, "doi": doi, "pmid": pmid}


def test_precision_and_recall_on_the_constructed_set():
    frame = constructed_set()
    result = deduplicate(frame)
    truth = pair_set(frame["record_id"], frame["truth"])
    found = pair_set(result.records["record_id"], result.records["cluster"])
    true_positives = len(truth & found)
    precision, recall = true_positives / len(found), true_positives / len(truth)
    print(f"constructed set: {len(frame)} records, {len(truth)} true duplicate pairs, {len(found)} found, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert len(truth) == 2 * len(VARIATIONS)  # by construction: each variation applied to two base records
    assert precision == 1.0
    assert recall == 1.0
    # every duplicate removed is listed with its reason and score
    assert result.n_duplicates == len(truth)
    merged = result.pairs[result.pairs["merged"]]
    assert set(merged["reason"]) <= {"doi", "pmid", "fuzzy"}
    assert merged["score"].between(95, 100).all()


@pytest.mark.parametrize("kind", VARIATIONS)
def test_each_variation_is_found(kind):
    frame = constructed_set()
    variant = frame[frame["variation"] == kind]
    originals = frame[(frame["variation"] == "original") & frame["truth"].isin(variant["truth"])]
    result = deduplicate(pd.concat([originals, variant]))
    assert result.n_duplicates == len(variant)


def test_identifiers_are_normalised():
    assert normalise_doi("https://doi.org/10.1097/BRS.0B013E31824D9F2B.") == "10.1097/brs.0b013e31824d9f2b"
    assert normalise_doi("doi: 10.1186/S12891-016-0986-Y") == "10.1186/s12891-016-0986-y"
    assert normalise_doi("http://dx.doi.org/10.1016/j.math.2015.02.005") == "10.1016/j.math.2015.02.005"
    assert normalise_doi("not a doi") == ""
    assert normalise_pmid("PMID: 022333955") == "22333955"
    assert normalise_pmid("n/a") == ""
    assert normalise_title("Back-Pain: a TRIAL. [Article in German]") == "back pain a trial"
    assert main_title("Graded activity: a randomized trial") == "graded activity"


def test_companion_reports_with_different_dois_stay_apart():
    title = "Tailored versus general exercise for low back pain with movement control impairment"
    frame = pd.DataFrame([_record("a", f"{title}: 6-month outcomes", doi="10.1016/j.math.2015.02.005"),
                          _record("b", f"{title}: 12-month outcomes", doi="10.1016/j.math.2016.01.001")])
    result = deduplicate(frame)
    assert result.n_duplicates == 0
    assert result.pairs["reason"].tolist() == ["doi conflict"]


def test_known_limit_companion_reports_without_identifiers_need_an_override():
    """Two reports differing only in '6-month' vs '12-month' score 98.6 on the title: merged automatically,
    which a reviewer undoes with a 'different' override."""
    title = "Tailored versus general exercise for low back pain with movement control impairment"
    frame = pd.DataFrame([_record("a", f"{title}: 6-month outcomes"), _record("b", f"{title}: 12-month outcomes")])
    assert deduplicate(frame).n_duplicates == 1
    overrides = pd.DataFrame([{"record_a": "b", "record_b": "a", "decision": "different", "note": "two reports"}])
    result = deduplicate(frame, overrides=overrides)
    assert result.n_duplicates == 0
    assert result.pairs["reason"].tolist() == ["override: different"]


def test_override_same_merges_and_wins():
    frame = pd.DataFrame([_record("a", "Exercise for back pain"), _record("b", "Completely different words")])
    overrides = pd.DataFrame([{"record_a": "a", "record_b": "b", "decision": "Same", "note": "erratum"}])
    result = deduplicate(frame, overrides=overrides)
    assert result.records["status"].tolist() == ["kept", "duplicate"]
    assert result.pairs.iloc[0][["reason", "merged"]].tolist() == ["override", True]


def test_bad_overrides_name_row_and_column():
    frame = pd.DataFrame([_record("a", "Exercise for back pain")])
    bad = pd.DataFrame([{"record_a": "a", "record_b": "zz", "decision": "same", "note": ""}])
    with pytest.raises(SearchDataError, match=r"overrides.csv row 2, column record_b: no imported record 'zz'"):
        deduplicate(frame, overrides=bad)
    bad = pd.DataFrame([{"record_a": "a", "record_b": "a", "decision": "maybe", "note": ""}])
    with pytest.raises(SearchDataError, match=r"row 2, column decision: 'maybe' is not 'same' or 'different'"):
        deduplicate(frame, overrides=bad)


def test_different_override_contradicted_by_a_chain_is_an_error():
    t = "Individualised exercise for chronic low back pain in primary care"
    frame = pd.DataFrame([_record("a", t, doi="10.1186/s12891-016-0986-y"), _record("b", t.upper(), doi="10.1186/S12891-016-0986-Y"),
                          _record("c", t + ".")])
    overrides = pd.DataFrame([{"record_a": "a", "record_b": "b", "decision": "different", "note": ""}])
    with pytest.raises(SearchDataError, match="a and b are marked 'different' but other links still join"):
        deduplicate(frame, overrides=overrides)


def test_records_of_the_earlier_edition_never_come_back():
    previous = pd.DataFrame([{"title": "Graded activity for low back pain: a randomised trial", "authors": "Roe B",
                              "year": "2019", "doi": "", "pmid": "", "decision": "exclude", "edition": "2022"}])
    frame = pd.DataFrame([
        _record("a", "Graded Activity for Low-Back Pain: A Randomised Trial", authors="Roe, B.", year="2019"),
        _record("b", "Graded activity for low back pain: a randomised trial", authors="Roe B", year="2020"),
        _record("c", "A new trial of tailored exercise"),
    ])
    result = deduplicate(frame, previous=previous)
    assert result.records["status"].tolist() == ["previously screened", "previously screened", "unique"]
    assert result.records["duplicate_of"].tolist()[:2] == ["previous:2", "previous:2"]
    assert result.kept == ["c"]
    assert result.n_previously_screened == 2


def test_a_record_already_in_the_screening_log_is_the_one_kept():
    frame = pd.DataFrame([_record("a", "Exercise for back pain in adults", doi="10.1097/brs.0000000000001061", pmid="1"),
                          _record("b", "Exercise for back pain in adults", doi="10.1097/brs.0000000000001061")])
    assert deduplicate(frame).kept == ["a"]  # more identifiers
    assert deduplicate(frame, prefer=["b"]).kept == ["b"]  # already screened wins


def test_empty_input():
    empty = pd.DataFrame(columns=["record_id", "title", "authors", "year", "doi", "pmid"])
    result = deduplicate(empty)
    assert result.kept == [] and result.pairs.empty
