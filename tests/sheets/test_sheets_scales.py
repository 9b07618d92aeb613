"""Instrument registry and normalisation to an outcome's declared common scale (the back-pain review: "All
scales were normalised to a 0-10 VAS"; 0 = no burden, 10 = worst; spreads scaled, never shifted). Expected
values are hand arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaexercise.errors import ExtractionError
from metaexercise.extraction.instruments import builtin_registry, load_registry
from metaexercise.extraction.normalise import (
    burden_difference,
    difference_to_0_10,
    difference_to_common,
    score_to_0_10,
    score_to_common,
    spread_to_0_10,
    spread_to_common,
)
from metaexercise.extraction.vocabulary import SheetVocabulary

REG = builtin_registry()


def test_registry_holds_the_issue_instruments():
    for i in ("VAS-100", "VAS-10", "NRS", "ODI", "RMDQ", "QBPDS", "PSFS", "EQ-5D-index"):
        assert i in REG
    assert REG.get("RMDQ").maximum == 24 and REG.get("ODI").maximum == 100
    assert not REG.get("PSFS").higher_is_worse


def test_unknown_instrument_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*ODI.*extraction/instruments.yaml"):
        REG.get("Oswestry")


@pytest.mark.parametrize(
    ("instrument", "score", "expected"),
    [
        ("VAS-100", 55.0, 5.5),  # 10 * 55 / 100
        ("VAS-10", 5.5, 5.5),
        ("ODI", 30.0, 3.0),
        ("RMDQ", 12.0, 5.0),  # 10 * 12 / 24
        ("PSFS", 7.0, 3.0),  # higher is better: 10 * (10 - 7) / 10
        ("EQ-5D-index", 1.0, 0.0),  # best health = no burden
        ("EQ-5D-index", -0.594, 10.0),
    ],
)
def test_scores_to_0_10(instrument, score, expected):
    assert score_to_0_10(score, REG.get(instrument)) == pytest.approx(expected, abs=1e-12)


def test_spreads_are_scaled_not_shifted():
    assert spread_to_0_10(20.0, REG.get("VAS-100")) == pytest.approx(2.0)
    assert spread_to_0_10(3.0, REG.get("PSFS")) == pytest.approx(3.0)  # reversed scale: SD stays positive
    assert spread_to_0_10(6.0, REG.get("RMDQ")) == pytest.approx(2.5)


def test_differences_change_sign_on_higher_is_better_scales():
    assert difference_to_0_10(-10.0, REG.get("ODI")) == pytest.approx(-1.0)
    assert difference_to_0_10(2.0, REG.get("PSFS")) == pytest.approx(-2.0)  # +2 function = -2 burden


def test_burden_difference_reads_the_printed_orientation():
    ODI = REG.get("ODI")
    assert burden_difference(4.7, ODI, "improvement") == pytest.approx(-4.7)  # improvement of 4.7 points
    assert burden_difference(-4.7, ODI, "scale") == pytest.approx(-4.7)
    assert burden_difference(1.0, REG.get("PSFS"), "improvement") == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="unclear"):
        burden_difference(1.0, ODI, "unclear")


def test_instrument_without_range_gives_no_0_10_value():
    inst = REG.get("pain-unstated")
    assert not inst.has_range and inst.contains(1e6)
    with pytest.raises(ValueError, match="no stated range.*SMD needs no range"):
        score_to_0_10(3.0, inst)
    assert burden_difference(2.0, inst, "improvement") == pytest.approx(-2.0)  # direction is still known


def test_project_instruments_extend_and_replace(tmp_path: Path):
    extra = tmp_path / "instruments.yaml"
    extra.write_text(
        "- id: HFAQ\n  name: Hannover Functional Ability Questionnaire\n  outcome: disability\n"
        "  minimum: 0\n  maximum: 100\n  higher_is_worse: false\n  rank: 4\n  source: Kohlmann & Raspe 1996\n"
        "- id: RMDQ\n  name: RMDQ as this project uses it\n  outcome: disability\n  minimum: 0\n"
        "  maximum: 23\n  higher_is_worse: true\n",
        encoding="utf-8",
    )
    reg = load_registry(extra)
    assert score_to_0_10(100.0, reg.get("HFAQ")) == pytest.approx(0.0)
    assert reg.get("RMDQ").maximum == 23
    assert builtin_registry().get("RMDQ").maximum == 24  # the built-in registry is not changed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: X\n  name: x\n  outcome: mood\n  higher_is_worse: true\n",
         "instrument #1: outcome 'mood' is not one of the declared outcomes pain, disability"),
        ("- id: X\n  name: x\n  outcome: 3\n  higher_is_worse: true\n", "outcome must be the text"),
        ("- id: X\n  name: x\n  outcome: pain\n", "missing field\\(s\\) higher_is_worse"),
        ("- id: X\n  name: x\n  outcome: pain\n  higher_is_worse: true\n  minimum: 10\n  maximum: 0\n",
         "minimum 10 is not below maximum 0"),
        ("- id: X\n  name: x\n  outcome: pain\n  higher_is_worse: true\n  colour: red\n", "unknown field"),
        ("id: X\n", "expected a list of instruments"),
        ("- [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_instrument_files_are_named(tmp_path: Path, text: str, message: str):
    extra = tmp_path / "instruments.yaml"
    extra.write_text(text, encoding="utf-8")
    with pytest.raises(ExtractionError, match=message):
        load_registry(extra, SheetVocabulary.from_values(outcomes=("pain", "disability")))


def test_project_instruments_name_any_outcome_without_declared_outcomes(tmp_path: Path):
    extra = tmp_path / "instruments.yaml"
    extra.write_text("- id: LOS\n  name: length of stay (days)\n  outcome: length_of_stay\n  minimum: 0\n"
                     "  higher_is_worse: true\n", encoding="utf-8")
    assert load_registry(extra).get("LOS").outcome == "length_of_stay"
    assert load_registry(extra, SheetVocabulary.from_values(outcomes=("length_of_stay",))).get("LOS").rank == 99


def test_common_scale_is_the_declared_one():
    """A common scale other than 0-10: 0-100, and one where higher is better (a quality-of-life index)."""
    odi, psfs = REG.get("ODI"), REG.get("PSFS")
    assert score_to_common(30.0, odi, (0, 100)) == pytest.approx(30.0)
    assert score_to_common(7.0, psfs, (0, 100)) == pytest.approx(30.0)  # reversed: 100 * (10 - 7) / 10
    assert score_to_common(7.0, psfs, (0, 1), higher_is_better=True) == pytest.approx(0.7)
    assert score_to_common(30.0, odi, (1, 5), higher_is_better=True) == pytest.approx(1 + 4 * 0.7)
    assert difference_to_common(2.0, psfs, (0, 1), higher_is_better=True) == pytest.approx(0.2)
    assert difference_to_common(2.0, psfs, (0, 100)) == pytest.approx(-20.0)
    assert spread_to_common(3.0, psfs, (0, 100)) == pytest.approx(30.0)
    assert score_to_0_10(30.0, odi) == score_to_common(30.0, odi, (0, 10))
    vocabulary = SheetVocabulary.from_values(outcomes=(("disability", 0, 100), "length_of_stay"))
    assert vocabulary.common_scale("disability") == (0, 100)
    assert vocabulary.common_scale("length_of_stay") is None  # no common scale: nothing is normalised


RANGED = sorted(i for i, inst in REG.instruments.items() if inst.has_range)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(RANGED), st.floats(0, 1), st.floats(0, 1))
def test_normalisation_is_affine_and_consistent(instrument, u, v):
    """score(y) - score(x) == difference(y - x); ends of the scale map to 0 and 10."""
    inst = REG.get(instrument)
    x, y = inst.minimum + u * inst.width, inst.minimum + v * inst.width
    assert 0 - 1e-9 <= score_to_0_10(x, inst) <= 10 + 1e-9
    assert score_to_0_10(y, inst) - score_to_0_10(x, inst) == pytest.approx(difference_to_0_10(y - x, inst), abs=1e-9)
    best = inst.minimum if inst.higher_is_worse else inst.maximum
    assert score_to_0_10(best, inst) == pytest.approx(0.0, abs=1e-12)
