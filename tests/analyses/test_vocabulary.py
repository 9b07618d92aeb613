"""The shared vocabulary: each set of choices defined once, and the typed values that replace status
strings and positional tuples print exactly what the results files have always held."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaexercise.review import replica
from metaexercise.review.analyses import rules_for
from metaexercise.review.declaration import load_review
from metaexercise.review.published import load_published
from metaexercise.review.specs import load_specs
from metaexercise.review.vocabulary import (
    CERTAINTY_LEVELS,
    AnalysisStatus,
    Certainty,
    ContrastId,
    GradeDomain,
    main_ids,
)
from metaexercise.vocabulary import SYNTHETIC_LABEL, DataSource

ROOT = Path(__file__).resolve().parents[2]
REVIEW = load_review(ROOT / "review.yaml")
MAIN_IDS = main_ids(load_specs(ROOT / "analyses", review=REVIEW))


@pytest.mark.parametrize("text", [
    "ok", "insufficient data (k=0)", "insufficient data (k=1 without outliers)",
    "insufficient data (k=3 for 4 coefficients)",
])
def test_an_analysis_status_prints_the_status_column_text_and_reads_it_back(text):
    status = AnalysisStatus.parse(text)
    assert str(status) == text and status.ok == (text == "ok")
    assert AnalysisStatus.insufficient(1, "without outliers") == AnalysisStatus.parse(
        "insufficient data (k=1 without outliers)")
    with pytest.raises(ValueError, match="not an analysis status"):
        AnalysisStatus.parse("fitted")


def test_data_sources_accept_the_books_name_and_label_their_rows():
    assert DataSource.parse("real") is DataSource.parse("extraction") is DataSource.EXTRACTION
    assert DataSource.REPLICA.data_label == SYNTHETIC_LABEL == replica.LABEL
    assert DataSource.EXTRACTION.data_label == "extraction"
    assert (DataSource.EXTRACTION.book_name, DataSource.REPLICA.book_name) == ("real", "replica")
    assert DataSource.EXTRACTION.description == "real extraction"
    with pytest.raises(ValueError, match="not one of extraction, replica"):
        DataSource.parse("fake")


def test_contrast_ids_parse_into_named_parts():
    c = ContrastId.parse("pain_active_short_psych", REVIEW)
    assert (c.outcome, c.comparator, c.window, c.suffix) == ("pain", "active", "short", "psych")
    assert c.id == str(c) == "pain_active_short_psych" and ContrastId.parse("metareg_pain", REVIEW) is None
    registry = load_published(ROOT / "analyses" / "published.yaml")  # finds the project's review.yaml
    (entry,) = [e for e in registry.for_contrast("disability_passive_long", "effect") if e.place == "results"]
    assert entry.contrast_parts == ("disability", "passive", "long", None)
    assert len(MAIN_IDS) == 8 and all(ContrastId.parse(i, REVIEW).suffix is None for i in MAIN_IDS)
    assert set(replica.TARGETS) == set(MAIN_IDS)


def test_each_set_is_defined_once_and_the_code_lists_follow_it():
    assert REVIEW.outcome_ids == ("pain", "disability")
    assert REVIEW.comparator_ids == ("active", "passive", "any") and REVIEW.window_ids == ("short", "long")
    # every control type belongs to exactly one comparator class
    classes = [t for c in REVIEW.comparators for t in c.control_types]
    assert sorted(classes) == sorted(REVIEW.control_types) == sorted(REVIEW.comparator_types("any"))
    assert {w: rule.target for w, rule in rules_for(REVIEW, "pain").windows.items()} == {"short": 12, "long": 52}
    assert CERTAINTY_LEVELS == ("very low", "low", "moderate", "high")
    assert [(c.label, c.symbols) for c in Certainty] == [
        ("Very low", "⨁◯◯◯"), ("Low", "⨁⨁◯◯"), ("Moderate", "⨁⨁⨁◯"), ("High", "⨁⨁⨁⨁")]
    assert [d.label for d in GradeDomain] == [
        "Risk of bias", "Inconsistency", "Indirectness", "Imprecision", "Publication bias"]
