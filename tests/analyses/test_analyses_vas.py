"""VAS back-transformation: points = SMD x patient-level SD (Cochrane Handbook 5.1, 12.6.4), judged
against the outcome's declared MID (review.yaml: 1.5 pain, 1.0 disability) and the 'CI on the side of
benefit' rule."""

import math
from pathlib import Path

import pytest

from metaexercise.review.declaration import OutcomeDecl, Sourced, load_review
from metaexercise.review.vas import pooled_sd, to_vas

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")
PAIN, DISABILITY = REVIEW.outcome("pain"), REVIEW.outcome("disability")


def test_pooled_sd_by_hand():
    # sqrt((9 * 2^2 + 19 * 1^2) / (9 + 19)) = sqrt(55 / 28) = 1.401530...
    assert pooled_sd([2.0, 1.0], [10, 20]) == pytest.approx(math.sqrt(55 / 28), rel=1e-12)
    # missing SDs are skipped; nothing left gives NaN
    assert pooled_sd([2.0, float("nan")], [10, 20]) == pytest.approx(2.0)
    assert math.isnan(pooled_sd([float("nan")], [10]))


def test_review_thresholds():
    assert {o.id: o.mid.value for o in REVIEW.outcomes} == {"pain": 1.5, "disability": 1.0}
    # the NRS common SD is declared for pain only: never applied to disability
    assert PAIN.typical_sd.value == 1.64 and DISABILITY.typical_sd is None


def test_points_and_verdicts_by_hand():
    # SMD -0.28 [-0.42, -0.14] (the review's pain vs active, short term) x NRS SD 1.64:
    # -0.4592 [-0.6888, -0.2296]: CI below zero, |points| < 1.5 -> "probably meaningful".
    v = to_vas(PAIN, -0.28, -0.42, -0.14, 1.64, "NRS typical SD")
    assert (v.points, v.ci_lb, v.ci_ub) == pytest.approx((-0.4592, -0.6888, -0.2296), rel=1e-12)
    assert v.probably_meaningful and not v.clinically_important and v.verdict == "probably meaningful"
    # SMD -0.10 [-0.21, 0.01]: CI crosses zero -> not shown.
    assert to_vas(PAIN, -0.10, -0.21, 0.01, 2.0, "x").verdict == "not shown"
    # SMD -0.6 [-0.9, -0.3] x 2.0 = -1.2 points: disability threshold 1.0 -> clinically important.
    big = to_vas(DISABILITY, -0.6, -0.9, -0.3, 2.0, "x")
    assert big.points == pytest.approx(-1.2) and big.verdict == "clinically important"
    # the same on pain (threshold 1.5) is only probably meaningful
    assert to_vas(PAIN, -0.6, -0.9, -0.3, 2.0, "x").verdict == "probably meaningful"


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive"):
        to_vas(PAIN, -0.2, -0.3, -0.1, 0.0, "zero SD")



def test_direction_of_benefit_and_no_mid():
    """A higher-is-better outcome: a CI above zero is a benefit; without a MID never 'clinically important'."""
    mood = OutcomeDecl("mood", "Mood", benefit="higher")
    assert to_vas(mood, 0.9, 0.5, 1.3, 2.0, "x").verdict == "probably meaningful"
    assert to_vas(mood, -0.9, -1.3, -0.5, 2.0, "x").verdict == "favours control"
    assert to_vas(PAIN, 0.9, 0.5, 1.3, 2.0, "x").verdict == "favours control"
    assert math.isnan(to_vas(mood, 0.9, 0.5, 1.3, 2.0, "x").threshold)
    with_mid = OutcomeDecl("mood", "Mood", benefit="higher", mid=Sourced(1.0))
    assert to_vas(with_mid, 0.9, 0.5, 1.3, 2.0, "x").verdict == "clinically important"
