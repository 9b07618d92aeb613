"""GRADE domains, judgements and the summary-of-findings table on small hand-made cases."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from metaexercise.engine.model import rma
from metaexercise.errors import SpecError
from metaexercise.review.declaration import load_review
from metaexercise.review.grade import (
    GradeThresholds,
    Judgement,
    evidence_profile,
    grade_analysis,
    judgements_for,
    load_judgements,
    optimal_information_size,
    rate_imprecision,
    rate_inconsistency,
    rate_publication_bias,
    rate_risk_of_bias,
    summary_of_findings,
)
from metaexercise.review.published import load_published

ROOT = Path(__file__).resolve().parents[2]
# MID 1.5 VAS points, SD 2.0 points -> MID = 0.75 SMD
TH = GradeThresholds(mid_points=1.5, sd_points=2.0, sd_source="hand-made")


@pytest.mark.parametrize(("delta", "expected"), [(0.2, 785), (0.28, 400), (0.5, 126)])
def test_optimal_information_size(delta, expected):
    # 4 (z_0.975 + z_0.8)^2 / delta^2 = 4 (1.959964 + 0.841621)^2 / delta^2 = 31.396 / delta^2
    # (GRADE 6: ~785 for 0.2 SD, ~400 for 0.28, ~126 for 0.5)
    assert optimal_information_size(delta) == pytest.approx(expected, abs=0.6)
    assert TH.ois == pytest.approx(31.396 / 0.75**2, rel=1e-4)


def test_risk_of_bias_share_of_weight_from_high_risk_studies():
    rob = np.array(["high", "some concerns", "high"])
    assert rate_risk_of_bias(rob, np.array([50.0, 30.0, 20.0]), TH)[0] == 1  # 70% > 25%
    assert rate_risk_of_bias(rob, np.array([10.0, 85.0, 5.0]), TH)[0] == 0  # 15%
    down, reason = rate_risk_of_bias(rob, np.array([12.5, 75.0, 12.5]), TH)  # exactly 25%: not more than
    assert down == 0 and "2 of 3 studies" in reason and "25% of the weight" in reason


def fake_fit(i2, pi_lb, pi_ub, yi=(-0.2, -0.1, 0.1)):
    return SimpleNamespace(I2=i2, pi_lb=pi_lb, pi_ub=pi_ub, yi=np.array(yi), k=len(yi), QE=9.0, QEp=0.01)


@pytest.mark.parametrize(
    ("i2", "pi", "expected"),
    [
        (30, (-0.5, 0.1), 0),  # I2 < 40%
        (60, (-0.5, -0.1), 0),  # 40-74%, one direction
        (60, (-0.5, 0.1), 1),  # 40-74%, directions differ
        (80, (-0.5, -0.1), 1),  # >= 75%, one direction
        (80, (-0.5, 0.1), 2),  # >= 75%, directions differ
    ],
)
def test_inconsistency_decision_matrix(i2, pi, expected):
    down, reason = rate_inconsistency(fake_fit(i2, *pi), TH)
    assert down == expected
    assert "2 of 3 point estimates favour" in reason


@pytest.mark.parametrize(
    ("ci", "n", "expected"),
    [
        ((-0.42, -0.14), 3000, 0),  # excludes 0; n >= OIS = 55.8
        ((-0.50, -0.10), 40, 1),  # excludes 0 but n = 40 < 55.8
        ((-0.21, 0.01), 3000, 1),  # crosses 0
        ((-0.90, 0.80), 3000, 2),  # spans -0.75 and +0.75
    ],
)
def test_imprecision_ci_against_zero_mid_and_ois(ci, n, expected):
    assert rate_imprecision(sum(ci) / 2, *ci, n, TH)[0] == expected


def test_publication_bias_needs_k_10_and_asymmetry_towards_benefit():
    egger = SimpleNamespace(zval=-3.313, pval=0.001)
    rank = SimpleNamespace(tau=-0.373, pval=0.009)
    assert rate_publication_bias(9, egger, rank, TH)[0] == 0
    assert rate_publication_bias(32, egger, rank, TH)[0] == 1
    assert rate_publication_bias(32, None, rank, TH)[0] == 1
    assert rate_publication_bias(32, SimpleNamespace(zval=2.6, pval=0.009), None, TH)[0] == 0  # towards harm
    assert rate_publication_bias(32, SimpleNamespace(zval=-1.407, pval=0.159), None, TH)[0] == 0
    assert rate_publication_bias(32, None, None, TH)[0] == 0


YI = np.array([-0.6, -0.1, -0.5, 0.2, -0.3, -0.8, 0.1, -0.4, -0.2, -0.7, -0.05, -0.35])
VI = np.array([0.04, 0.02, 0.05, 0.03, 0.02, 0.06, 0.03, 0.04, 0.02, 0.05, 0.01, 0.03])
STUDIES = pd.DataFrame({
    "study_id": [f"S{i:02d}" for i in range(12)],
    "rob_overall": ["high", "some concerns"] * 6,
    "n_total": [100] * 12,
})


def test_grade_analysis_end_to_end_on_a_small_fit():
    fit = rma(YI, VI)
    a = grade_analysis("pain_active_short", fit, STUDIES, thresholds=TH)
    assert (a.k, a.participants) == (12, 1200)
    share = fit.weights[::2].sum()  # weight of the six high-risk studies, percent
    assert a.domain("risk_of_bias").suggestion == int(share > 25)
    assert a.domain("inconsistency").suggestion == rate_inconsistency(fit, TH)[0]
    assert a.level == 4 - sum(d.downgrade for d in a.domains)
    assert a.points == pytest.approx(fit.estimate * 2.0)
    assert "Certainty:" in a.summary() and len(a.to_frame()) == 5


def test_a_judgement_overrides_only_its_domain():
    fit = rma(YI, VI)
    plain = grade_analysis("pain_active_short", fit, STUDIES, thresholds=TH)
    judged = grade_analysis("pain_active_short", fit, STUDIES, thresholds=TH,
                            judgements={"indirectness": Judgement("indirectness", 1, "older adults only")})
    assert judged.domain("indirectness").downgrade == 1
    assert judged.domain("indirectness").suggestion == 0
    assert max(1, plain.level - 1) == judged.level


def test_bad_inputs_are_refused():
    fit = rma(YI, VI)
    with pytest.raises(ValueError, match="12 rows|k = 12"):
        grade_analysis("x", fit, STUDIES.iloc[:5], thresholds=TH)
    with pytest.raises(ValueError, match="rob_overall"):
        grade_analysis("x", fit, STUDIES.assign(rob_overall="unclear"), thresholds=TH)
    with pytest.raises(ValueError, match="unknown domain"):
        grade_analysis("x", fit, STUDIES, thresholds=TH, judgements={"vibes": Judgement("vibes", 1, "r")})


def _write(tmp_path, text):
    p = tmp_path / "grade.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_judgements_file_defaults_and_overrides(tmp_path):
    p = _write(tmp_path, "defaults:\n  indirectness: {downgrade: 0, rationale: matches}\n"
                         "analyses:\n  pain_active_short:\n    indirectness: {downgrade: 1, rationale: why}\n")
    table = load_judgements(p)
    assert judgements_for(table, "pain_active_short")["indirectness"].downgrade == 1
    assert judgements_for(table, "pain_active_long")["indirectness"].downgrade == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults:\n  indirectness: {downgrade: 1}\n", "written rationale"),
        ("defaults:\n  indirectness: {downgrade: 1, rationale: '  '}\n", "written rationale"),
        ("defaults:\n  indirectness: {downgrade: 3, rationale: x}\n", "0, 1 or 2"),
        ("defaults:\n  tone: {downgrade: 1, rationale: x}\n", "unknown domain 'tone'"),
        ("defaults:\n  indirectness: {downgrade: 1, rationale: x, by: me}\n", "unknown key"),
        ("preferences: {}\n", "top-level keys"),
    ],
)
def test_bad_judgement_files_raise(tmp_path, text, message):
    with pytest.raises(SpecError, match=message):
        load_judgements(_write(tmp_path, text))


def test_the_committed_grade_yaml_loads():
    table = load_judgements(ROOT / "analyses" / "grade.yaml")
    assert table["*"]["indirectness"].rationale


def test_summary_of_findings_layout_and_review_rating():
    fit = rma(YI, VI)
    published = load_published(ROOT / "analyses" / "published.yaml")
    rows = [grade_analysis(aid, fit, STUDIES, thresholds=TH) for aid in ("pain_active_short",
                                                                          "disability_passive_short")]
    sof = summary_of_findings(rows, published, load_review(ROOT / "review.yaml"))
    assert list(sof.columns) == [
        "Outcome", "Comparison", "№ of participants (studies)", "Effect (SMD, 95% CI)",
        "Effect in VAS points (95% CI)", "Certainty (GRADE)", "Explanations", "Review's certainty",
    ]
    first = sof.iloc[0]
    assert first["Outcome"] == "Pain intensity, short term (~12 weeks)"
    assert first["№ of participants (studies)"] == "1200 (12 RCTs)"
    assert first["Effect (SMD, 95% CI)"].startswith(f"SMD {abs(fit.estimate):.2f} SD lower")
    assert first["Review's certainty"] == "Low"
    # the review rates disability vs passive (short) moderate in the results and low in the abstract
    assert sof.iloc[1]["Review's certainty"] == "Moderate (results); Low (abstract)"
    downgraded = [d for d in rows[0].domains if d.downgrade]
    assert first["Explanations"].count("Downgraded") == len(downgraded)
    if downgraded:
        assert first["Explanations"].startswith("a. Downgraded")


def test_evidence_profile_has_one_column_per_domain():
    fit = rma(YI, VI)
    a = grade_analysis("pain_active_short", fit, STUDIES, thresholds=TH,
                       judgements={"indirectness": Judgement("indirectness", 0, "matches the question")})
    row = evidence_profile([a]).iloc[0]
    assert row["Indirectness"] == "not serious (reviewer)"
    assert row["Risk of bias"] == a.domain("risk_of_bias").rating
    assert row["Other considerations"] in ("none", "publication bias strongly suspected")
    assert row["Certainty"] == f"{a.symbols} {a.certainty}"


def test_grade_takes_the_engines_regtest_and_ranktest():
    from metaexercise.engine.bias import ranktest, regtest

    fit = rma(YI, VI)
    eg, rk = regtest(fit), ranktest(fit)
    a = grade_analysis("pain_active_short", fit, STUDIES, eg, rk, thresholds=TH)
    expected = int((eg.pval < 0.10 and eg.zval < 0) or (rk.pval < 0.10 and rk.tau < 0))
    assert a.domain("publication_bias").suggestion == expected
    assert f"Egger z = {eg.zval:.2f}" in a.domain("publication_bias").reason
