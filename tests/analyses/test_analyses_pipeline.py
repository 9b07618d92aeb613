"""analyses: spec -> comparisons -> Hedges' g -> REML -> rows, on hand-built sheets with hand arithmetic."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analyses_sheets_helpers import VOCABULARY, build, two_arm

from metaexercise.engine.metaregression import metareg
from metaexercise.engine.model import rma
from metaexercise.errors import ExtractionError
from metaexercise.extraction import sheets
from metaexercise.review.analyses import (
    baseline_sd,
    check_not_mixed,
    comparisons_for,
    moderator_frame,
    run_analysis,
)
from metaexercise.review.declaration import load_review
from metaexercise.review.specs import parse_spec

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")
assert REVIEW.sheet_vocabulary() == VOCABULARY


def load_extraction(folder):
    """The hand-built sheets, read with the back-pain review's vocabulary (their arm roles and moderators)."""
    return sheets.load_extraction(folder, vocabulary=REVIEW.sheet_vocabulary())


def spec(**kw):
    raw = {"id": "pain_active_short", "label": "t", "kind": "meta-analysis", "outcome": "pain",
           "comparator": "active", "window": "short", **kw}
    return parse_spec(raw, "test.yaml", 1, review=REVIEW)


def hedges_g(m1, m2, sd, n1, n2):
    """Hand formula: d = (m1 - m2) / sd; J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)), m = n1 + n2 - 2
    (Hedges 1981); g = J d; v = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)) (metafor vtype LS)."""
    m = n1 + n2 - 2
    j = math.exp(math.lgamma(m / 2) - 0.5 * math.log(m / 2) - math.lgamma((m - 1) / 2))
    g = j * (m1 - m2) / sd
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


@pytest.fixture
def three(tmp_path):
    folder = build(tmp_path / "x",
                   two_arm("aa2020", -2.0, -1.0, 2.0, 20, base_sd=2.0, matched=True),
                   two_arm("bb2020", -1.5, -1.2, 1.5, 40, base_sd=1.0),
                   two_arm("cc2020", -1.0, -0.9, 2.5, 30, control="usual care or advice", base_sd=1.5))
    return load_extraction(folder)


def test_effects_by_hand_and_pooled_like_rma(three):
    res = run_analysis(spec(), three, REVIEW)
    assert res.ok and list(res.studies["study_id"]) == ["aa2020", "bb2020"]
    g1, v1 = hedges_g(-2.0, -1.0, 2.0, 20, 20)
    g2, v2 = hedges_g(-1.5, -1.2, 1.5, 40, 40)
    # d = -1/2; J(38) = 0.980110 (exact; Hedges' approximation 1 - 3/(4*38 - 1) = 0.980132) -> g = -0.490055
    assert g1 == pytest.approx(-0.490055, abs=1e-6)
    np.testing.assert_allclose(res.studies["yi"], [g1, g2], rtol=1e-10)
    np.testing.assert_allclose(res.studies["vi"], [v1, v2], rtol=1e-10)
    direct = rma([g1, g2], [v1, v2])
    row = res.row()
    assert row["estimate"] == pytest.approx(direct.estimate, rel=1e-10)
    assert (row["k"], row["participants"], row["status"]) == (2, 120, "ok")
    assert row["ci_lb"] == pytest.approx(float(direct.ci_lb[0]), rel=1e-10)
    assert "k >= 3" in row["notes"]


def test_vas_points_use_pooled_baseline_sd(three):
    res = run_analysis(spec(), three, REVIEW)
    # baseline SDs 2.0 (2 arms, n 20) and 1.0 (2 arms, n 40): sqrt((2*19*4 + 2*39*1) / (2*19 + 2*39))
    sd = math.sqrt((2 * 19 * 4 + 2 * 39 * 1) / (2 * 19 + 2 * 39))
    assert res.vas_sd == pytest.approx(sd, rel=1e-12)
    assert res.row()["vas_points"] == pytest.approx(res.fit.estimate * sd, rel=1e-12)


def test_k_below_two_gets_a_status_row_not_a_number(three):
    res = run_analysis(spec(comparator="passive", id="pain_passive_short"), three, REVIEW)
    row = res.row()
    assert row["status"] == "insufficient data (k=1)" and row["k"] == 1 and math.isnan(row["estimate"])
    long = run_analysis(spec(window="long", id="pain_active_long"), three, REVIEW)
    assert long.row()["status"] == "insufficient data (k=0)"


def test_filters_select_comparisons(three):
    matched = comparisons_for(spec(filters={"control_matched": True}), three, REVIEW)
    assert list(matched["study_id"]) == ["aa2020"]
    passive_true = comparisons_for(spec(comparator="passive", filters={"control_type": ["true control"]}), three, REVIEW)
    assert passive_true.empty
    both = comparisons_for(spec(comparator="any", kind="meta-regression",
                                moderators=[{"name": "w", "column": "training_weeks"}]), three, REVIEW)
    assert sorted(both["comparator"]) == ["active", "active", "passive"]


def test_real_and_replica_rows_never_pool(tmp_path, three):
    # the sheets layer refuses a folder that mixes them ...
    folder = build(tmp_path / "mix", two_arm("real2020", -2.0, -1.0, 2.0, 20),
                   two_arm("Replica-01", -2.0, -1.5, 2.0, 20, synthetic=True))
    with pytest.raises(ExtractionError, match="mixed with real rows"):
        load_extraction(folder)
    # ... and the analysis refuses to pool them however they got together
    studies = three.studies.assign(synthetic=[True, False, False])
    mixed = dataclasses.replace(three, studies=studies)
    with pytest.raises(ExtractionError, match="never pooled with real rows"):
        run_analysis(spec(), mixed, REVIEW)
    with pytest.raises(ExtractionError, match="real studies"):
        check_not_mixed(studies, "mix")
    assert check_not_mixed(studies[studies["synthetic"]], "ok") is True
    assert check_not_mixed(three.studies, "ok") is False


def test_outliers_are_flagged_and_excluded(tmp_path):
    parts = [two_arm(f"s{i}2020", -1.0 - 0.05 * i, -0.5, 2.0, 60) for i in range(8)]
    parts.append(two_arm("far2020", 4.0, -0.5, 1.0, 200))  # g about +4.5 with a small variance
    ex = load_extraction(build(tmp_path / "o", *parts))
    full = run_analysis(spec(), ex, REVIEW)
    assert "far2020" in full.outliers
    trimmed = run_analysis(spec(exclude_outliers=True, id="sens_pain_active_short_no_outliers"), ex, REVIEW)
    kept = trimmed.studies[~trimmed.studies["excluded_as_outlier"]]
    assert "far2020" not in set(kept["study_id"]) and trimmed.row()["k"] == len(kept)
    direct = rma(kept["yi"], kept["vi"])
    assert trimmed.fit.estimate == pytest.approx(direct.estimate, rel=1e-12)


def test_meta_regression_equals_metareg_on_the_same_rows(tmp_path):
    parts = [two_arm(f"r{i}2020", -1.0 - 0.1 * (i % 4), -0.6, 2.0, 30 + 5 * i, training_weeks=4 + 2 * i,
                     control="active exercise" if i % 2 else "usual care or advice") for i in range(10)]
    ex = load_extraction(build(tmp_path / "r", *parts))
    reg_spec = spec(id="metareg_pain", kind="meta-regression", comparator="any",
                    moderators=[{"name": "weeks", "column": "training_weeks"},
                                {"name": "passive", "column": "comparator", "equals": "passive"},
                                {"name": "mixed", "column": "intervention_type", "equals": "mixed"}])
    res = run_analysis(reg_spec, ex, REVIEW)
    assert res.ok and res.regression.dropped == ("mixed",)  # every study is 'mixed': constant, dropped
    comps = comparisons_for(reg_spec, ex, REVIEW)
    mods = moderator_frame(reg_spec, comps)
    assert mods["passive"].tolist() == [float(c == "passive") for c in comps["comparator"]]
    direct = metareg(comps["yi"], comps["vi"], mods)
    np.testing.assert_allclose(res.regression.beta, direct.beta, rtol=1e-12)
    assert isinstance(res.regression.to_frame(), pd.DataFrame)


def test_without_baseline_sds_pain_uses_the_nrs_typical_sd_and_disability_has_none(tmp_path):
    ex = load_extraction(build(tmp_path / "nb", two_arm("aa2020", -2.0, -1.0, 2.0, 20),
                               two_arm("bb2020", -1.5, -1.2, 1.5, 40)))
    res = run_analysis(spec(), ex, REVIEW)
    assert res.vas_sd == 1.64 and "BetterBack" in res.vas_sd_source  # BetterBack protocol NRS SD
    assert res.row()["vas_points"] == pytest.approx(res.fit.estimate * 1.64, rel=1e-12)
    comps = comparisons_for(spec(), ex, REVIEW)
    sd, why = baseline_sd(ex, comps, REVIEW.outcome("disability"))
    assert math.isnan(sd) and "no typical SD" in why
