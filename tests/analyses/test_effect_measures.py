"""Effect measure MD (review.yaml `effect: {measure: MD}`): tiny generic projects (CSV sheets in tmp) run end to
end through `run_project`.

- measure MD, basis final: the pooled MD equals the engine's `rma(escalc("MD", ...))` and metafor's (values below);
- basis either: a study with change scores and final values uses its change scores, a study with final values
  only uses them, and the `derivation` / `data_kind` columns say which; an MD contrast gives yi = MD, vi = SE²;
  an SMD contrast is left out of the MD analysis with the reason "SMD contrast in an MD analysis";
- a common scale: every study's values in points of the scale (an instrument without a stated range left out),
  the pooled MD judged against the MID as it stands; without a common scale, studies on different instruments
  make the run refuse the analysis with a message naming them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analyses_sheets_helpers import write_sheets

from metaexercise.engine import handbook
from metaexercise.engine.effects import escalc
from metaexercise.engine.model import rma
from metaexercise.errors import ExtractionError
from metaexercise.extraction.comparisons import ComparisonRules
from metaexercise.extraction.sheets import load_extraction
from metaexercise.review.analyses import comparisons_for
from metaexercise.review.project import Project
from metaexercise.review.run import run_project
from metaexercise.review.specs import load_specs

SPECS = """\
analyses:
  - {id: main, label: "Main", kind: meta-analysis, outcome: %s}
"""

LOS_YAML = """\
title: "Early mobilisation after surgery (MD test project)"
effect: {measure: MD, basis: %s}
labels: {experimental: Early mobilisation, control: Usual care}
outcomes:
  - {id: length_of_stay, label: Length of hospital stay, benefit: lower}
control_types: [usual care]
timepoint_unit: days
risk_of_bias:
  domains: [{id: D1, label: randomisation}]
"""

LOS_INSTRUMENTS = """\
- {id: LOS-days, name: length of stay in days, outcome: length_of_stay, higher_is_worse: true, rank: 1, source: test}
"""

#: (study, experimental mean, SD, n, control mean, SD, n): final values (days) at day 4.
TRIALS = [
    ("s1", 5.1, 2.0, 40, 6.0, 2.2, 42), ("s2", 7.2, 3.1, 55, 7.9, 3.0, 50),
    ("s3", 12.5, 4.0, 30, 16.8, 4.4, 31), ("s4", 10.9, 3.8, 60, 11.2, 3.5, 58),
    ("s5", 2.1, 0.9, 80, 2.6, 1.0, 78), ("s6", 1.8, 0.8, 45, 3.5, 1.1, 47),
]
#: R 4 / metafor 3.8.1 (REML run to convergence):
#:
#:     library(metafor)
#:     d <- data.frame(m1i = c(5.1, 7.2, 12.5, 10.9, 2.1, 1.8), sd1i = c(2.0, 3.1, 4.0, 3.8, 0.9, 0.8),
#:                     n1i = c(40, 55, 30, 60, 80, 45), m2i = c(6.0, 7.9, 16.8, 11.2, 2.6, 3.5),
#:                     sd2i = c(2.2, 3.0, 4.4, 3.5, 1.0, 1.1), n2i = c(42, 50, 31, 58, 78, 47))
#:     res <- rma(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
#:                data = d, control = list(threshold = 1e-12))
#:     sprintf("%.12g", c(res$beta, res$se, res$tau2, res$ci.lb, res$ci.ub))
METAFOR_MD = (-1.16607725212, 0.401468629132, 0.696728179085, -1.95294130614, -0.379213198098)


def _row(sid, aid, kind, mean=None, sd=None, n=None, *, inst="LOS-days", outcome="length_of_stay", day=4, **kw):
    return {"study_id": sid, "arm_id": aid, "outcome": outcome, "instrument": inst,
            "timepoint_weeks": 0 if kind == "baseline" else day, "value_kind": kind, "reported_as": "scale",
            "n": n, "mean": mean, "sd": sd, "source": "test", **kw}


def _contrast(sid, measure, mean, se, n1, n2, **kw):
    return _row(sid, "e", "contrast", mean, comparator_arm_id="c", contrast_measure=measure, se=se,
                n_individualized=n1, n_control=n2, **kw)


def _study(sid):
    return {"study_id": sid, "first_author": sid.upper(), "year": 2020, "inclusion_status": "included",
            "synthetic": False, "source": "test", "rob_overall": "low"}


def _arms(sid, n1, n2, control_type="usual care"):
    return [{"study_id": sid, "arm_id": "e", "arm_label": "early", "arm_role": "experimental", "n_randomised": n1,
             "source": "test"},
            {"study_id": sid, "arm_id": "c", "arm_label": "usual", "arm_role": "control",
             "control_type": control_type, "n_randomised": n2, "source": "test"}]


def _project(root, review_yaml, instruments, outcome, outcomes, control_type="usual care") -> Project:
    """A project in `root`: review.yaml, one meta-analysis of `outcome`, and CSV sheets with one study per
    study id of `outcomes` (two arms each)."""
    (root / "review.yaml").write_text(review_yaml, encoding="utf-8")
    (root / "analyses").mkdir()
    (root / "analyses" / "main.yaml").write_text(SPECS % outcome, encoding="utf-8")
    ids = list(dict.fromkeys(r["study_id"] for r in outcomes))
    studies = [_study(s) for s in ids]
    arms = [a for s in ids for a in _arms(s, 40, 40, control_type)]
    folder = write_sheets(root / "extraction", studies, arms, outcomes, Project(root).review.sheet_vocabulary())
    (folder / "instruments.yaml").write_text(instruments, encoding="utf-8")
    return Project(root)


def _analysis(output):
    return output.frame("analyses").set_index("analysis_id").loc["main"]


def _studies(output):
    return output.frame("studies").query("analysis_id == 'main'").set_index("study_id")


def _excluded(project):
    return pd.read_csv(project.results / "excluded.csv").query("analysis_id == 'main'")


# ------------------------------------------------------------------------------------ MD of final values
@pytest.fixture(scope="module")
def final_md(tmp_path_factory):
    rows = []
    for sid, m1, s1, n1, m2, s2, n2 in TRIALS:
        rows += [_row(sid, "e", "final", m1, s1, n1), _row(sid, "c", "final", m2, s2, n2)]
    project = _project(tmp_path_factory.mktemp("md_final"), LOS_YAML % "final", LOS_INSTRUMENTS,
                       "length_of_stay", rows)
    return project, run_project(project, progress=False)


def test_md_of_final_values_pools_like_metafor(final_md):
    _, output = final_md
    row = _analysis(final_md[1])
    assert row["status"] == "ok" and row["k"] == len(TRIALS)
    t = np.array([x[1:] for x in TRIALS], dtype=float)
    es = escalc("MD", m1i=t[:, 0], sd1i=t[:, 1], n1i=t[:, 2], m2i=t[:, 3], sd2i=t[:, 4], n2i=t[:, 5])
    assert es.yi == pytest.approx(t[:, 0] - t[:, 3])
    assert es.vi == pytest.approx(t[:, 1] ** 2 / t[:, 2] + t[:, 4] ** 2 / t[:, 5])
    studies = _studies(output)
    assert studies["yi"].to_numpy() == pytest.approx(es.yi, rel=1e-10)
    assert studies["vi"].to_numpy() == pytest.approx(es.vi, rel=1e-10)
    assert set(studies["data_kind"]) == {"arm final values"}
    fit = rma(es.yi, es.vi)
    assert row["estimate"] == pytest.approx(fit.estimate, rel=1e-10)
    assert (row["estimate"], row["se"], row["tau2"], row["ci_lb"], row["ci_ub"]) == pytest.approx(
        METAFOR_MD, rel=1e-7)
    # in days (no common scale): no SMD re-expression, the verdict on zero alone
    assert pd.isna(row["vas_points"]) and row["meaningful"] == "probably meaningful"
    assert "mean difference in units of LOS-days" in row["notes"]


def test_md_final_basis_leaves_change_only_study_out(tmp_path):
    rows = [_row("a", "e", "final", 5.0, 2.0, 40), _row("a", "c", "final", 6.0, 2.0, 40),
            _row("b", "e", "final", 4.0, 2.0, 40), _row("b", "c", "final", 5.5, 2.0, 40),
            _row("x", "e", "change", -1.0, 1.5, 40), _row("x", "c", "change", -0.2, 1.5, 40)]
    project = _project(tmp_path, LOS_YAML % "final", LOS_INSTRUMENTS, "length_of_stay", rows)
    output = run_project(project, progress=False)
    assert _analysis(output)["k"] == 2
    ex = _excluded(project)
    assert "no final value at this time point" in " ".join(ex.loc[ex["study_id"] == "x", "reason"])


# ------------------------------------------------------------------------- basis either, MD contrasts
#: b1 reports change scores and final values (change used); b2 final values only; b3 a change score in one
#: arm, final and baseline values in the other (change, one computed from final minus baseline); b4 an MD
#: contrast; b5 an SMD contrast (left out of the MD analysis); b6 a change score in one arm and a final value in
#: the other (left out: never a change score against a final value).
EITHER = [
    _row("b1", "e", "change", -2.0, 1.5, 30), _row("b1", "c", "change", -1.0, 1.6, 30),
    _row("b1", "e", "final", 4.0, 2.0, 30), _row("b1", "c", "final", 5.2, 2.1, 30),
    _row("b2", "e", "final", 5.0, 2.2, 40), _row("b2", "c", "final", 6.1, 2.4, 38),
    _row("b3", "e", "change", -1.5, 1.4, 25), _row("b3", "c", "final", 6.0, 2.0, 25),
    _row("b3", "c", "baseline", 6.5, 2.1, 25),
    _contrast("b4", "MD", -0.8, 0.35, 40, 40),
    _contrast("b5", "SMD", -0.4, 0.2, 30, 30),
    _row("b6", "e", "change", -1.5, 1.4, 25), _row("b6", "c", "final", 6.0, 2.0, 25),
]


@pytest.fixture(scope="module")
def either_md(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("md_either"), LOS_YAML % "either", LOS_INSTRUMENTS,
                       "length_of_stay", EITHER)
    return project, run_project(project, progress=False)


def test_either_uses_change_scores_else_final_values(either_md):
    project, output = either_md
    studies = _studies(output)
    # studies.csv has no derivation column: the comparisons the analysis pools do
    spec = load_specs(project.analyses, review=project.review)[0]
    extraction = load_extraction(project.extraction, vocabulary=project.review.sheet_vocabulary())
    built = comparisons_for(spec, extraction, project.review).set_index("study_id")
    # b1 reports both: its change scores
    assert studies.loc["b1", "data_kind"] == "arm change scores"
    assert studies.loc["b1", "yi"] == pytest.approx(-2.0 - -1.0)
    assert studies.loc["b1", "vi"] == pytest.approx(1.5**2 / 30 + 1.6**2 / 30)
    assert "basis either: change scores (every arm reports one" in built.loc["b1", "derivation"]
    # b2 reports final values only: its final values
    assert studies.loc["b2", "data_kind"] == "arm final values"
    assert studies.loc["b2", "yi"] == pytest.approx(5.0 - 6.1)
    assert studies.loc["b2", "vi"] == pytest.approx(2.2**2 / 40 + 2.4**2 / 38)
    assert "basis either: final values (not every arm reports a change score" in built.loc["b2", "derivation"]
    # b3: never a change score against a final value; change, with the control's from final minus baseline
    assert studies.loc["b3", "data_kind"] == "arm change scores"
    assert studies.loc["b3", "yi"] == pytest.approx(-1.5 - (6.0 - 6.5))
    sd_c = float(handbook.change_sd(2.1, 2.0, handbook.DEFAULT_CORRELATION))
    assert studies.loc["b3", "vi"] == pytest.approx(1.4**2 / 25 + sd_c**2 / 25)
    assert "some from final minus baseline" in built.loc["b3", "derivation"]
    # b6: a change score against a final value is never pooled
    assert "b6" not in studies.index
    ex = _excluded(project).query("study_id == 'b6'").set_index("arm_id")["reason"]
    assert "it has the other kind; basis either uses one kind of value for every arm" in ex["e"]
    # b4: an MD contrast gives yi = MD, vi = SE^2 directly
    assert studies.loc["b4", "data_kind"] == "contrast MD"
    assert (studies.loc["b4", "yi"], studies.loc["b4", "vi"]) == pytest.approx((-0.8, 0.35**2))
    # the pooled MD is rma of these rows
    row = _analysis(output)
    assert row["k"] == 4
    fit = rma(studies["yi"].to_numpy(), studies["vi"].to_numpy())
    assert row["estimate"] == pytest.approx(fit.estimate, rel=1e-10)


def test_smd_contrast_left_out_of_md_analysis_with_reason(either_md):
    project, output = either_md
    assert "b5" not in _studies(output).index
    ex = _excluded(project).set_index("arm_id")
    b5 = ex[ex["study_id"] == "b5"]
    assert b5.loc["e vs c", "reason"].startswith("SMD contrast in an MD analysis")
    assert b5.loc["e vs c", "category"] == "SMD contrast in an MD analysis"
    # its arms' reasons do not claim the contrast is used instead
    assert not b5["reason"].str.contains("used instead").any()


def test_either_refused_with_smd():
    with pytest.raises(ValueError, match="only an MD analysis"):
        ComparisonRules(basis="either")
    assert ComparisonRules(basis="either", measure="MD").basis == "either"


# ------------------------------------------------------------------------------------- one scale for an MD
PAIN_YAML = """\
title: "Pain (MD test project)"
effect: {measure: MD, basis: final}
outcomes:
  - {id: pain, label: Pain, benefit: lower%s}
control_types: [usual care]
risk_of_bias:
  domains: [{id: D1, label: randomisation}]
"""
COMMON = ", common_scale: {min: 0, max: 10}, mid: {value: 1.5, source: test}"

PAIN_INSTRUMENTS = """\
- {id: VAS, name: visual analogue scale, outcome: pain, minimum: 0, maximum: 100, higher_is_worse: true, rank: 1, source: test}
- {id: NRS, name: numeric rating scale, outcome: pain, minimum: 0, maximum: 10, higher_is_worse: true, rank: 2, source: test}
- {id: PX, name: a scale without a stated range, outcome: pain, higher_is_worse: true, rank: 3, source: test}
"""

PAIN = [
    _row("d1", "e", "final", 30.0, 20.0, 40, inst="VAS", outcome="pain"),
    _row("d1", "c", "final", 55.0, 22.0, 40, inst="VAS", outcome="pain"),
    _row("d2", "e", "final", 3.5, 2.1, 50, inst="NRS", outcome="pain"),
    _row("d2", "c", "final", 5.1, 2.3, 48, inst="NRS", outcome="pain"),
    _contrast("d3", "MD", -22.0, 5.0, 40, 40, inst="VAS", outcome="pain"),
    _row("d4", "e", "final", 12.0, 5.0, 30, inst="PX", outcome="pain"),
    _row("d4", "c", "final", 15.0, 5.0, 30, inst="PX", outcome="pain"),
]


def test_md_on_the_common_scale(tmp_path):
    project = _project(tmp_path, PAIN_YAML % COMMON, PAIN_INSTRUMENTS, "pain", PAIN)
    output = run_project(project, progress=False)
    studies = _studies(output)
    # VAS 0-100 values in points of 0-10: means and SDs / 10; the VAS contrast's MD and SE too
    yi = np.array([3.0 - 5.5, 3.5 - 5.1, -2.2])
    vi = np.array([2.0**2 / 40 + 2.2**2 / 40, 2.1**2 / 50 + 2.3**2 / 48, 0.5**2])
    assert studies.loc[["d1", "d2", "d3"], "yi"].to_numpy() == pytest.approx(yi, rel=1e-10)
    assert studies.loc[["d1", "d2", "d3"], "vi"].to_numpy() == pytest.approx(vi, rel=1e-10)
    ex = _excluded(project)
    d4 = ex[ex["study_id"] == "d4"].iloc[0]
    assert "PX states no range" in d4["reason"] and d4["category"] == "not on the common scale"
    row = _analysis(output)
    fit = rma(yi, vi)
    assert row["k"] == 3 and row["estimate"] == pytest.approx(fit.estimate, rel=1e-10)
    # already in points: judged against the MID (1.5) as it stands, no SD re-expression
    assert row["vas_points"] == pytest.approx(row["estimate"]) and pd.isna(row["vas_sd"])
    assert row["meaningful"] == "clinically important"
    assert "points of the 0-10 common scale" in row["notes"]


def test_md_without_common_scale_refuses_mixed_instruments(tmp_path):
    project = _project(tmp_path, PAIN_YAML % "", PAIN_INSTRUMENTS, "pain", PAIN)
    with pytest.raises(ExtractionError) as err:
        run_project(project, progress=False)
    msg = str(err.value)
    assert "analysis 'main'" in msg and "declares no common_scale" in msg
    assert "NRS (d2); PX (d4); VAS (d1, d3)" in msg and "measure: SMD" in msg
