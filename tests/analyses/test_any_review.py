"""Any review is a project: a tiny generic project (outcome `length_of_stay`, no follow-up windows, final values,
roles experimental/control, CSV sheets) runs end to end through `run_project`; its numbers equal metafor's
(values below from R 4 / metafor 3.8.1, script in the docstrings) and the engine's own escalc + rma; a spec naming
an undeclared outcome fails naming file, line and key; a categorical moderator is coded as R's factor; every
study left out is listed with its reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from analyses_sheets_helpers import write_sheets

from metaexercise.engine.effects import escalc
from metaexercise.engine.model import rma
from metaexercise.errors import SpecError
from metaexercise.review.project import Project
from metaexercise.review.run import run_project
from metaexercise.review.specs import load_specs

REVIEW_YAML = """\
title: "Early mobilisation after surgery (test project)"
effect: {measure: SMD, basis: final}
labels: {experimental: Early mobilisation, control: Usual care}
arm_roles: {experimental: experimental, control: control}
outcomes:
  - {id: length_of_stay, label: Length of hospital stay, benefit: lower}
control_types: [usual care]
timepoint_unit: days
moderators:
  - {name: setting, label: ward type, type: categorical, levels: [ward, icu, day]}
risk_of_bias:
  domains: [{id: D1, label: randomisation}]
"""

SPECS = """\
analyses:
  - {id: los, label: "Length of stay", kind: meta-analysis, outcome: length_of_stay}
  - id: los_setting
    label: "Length of stay by setting"
    kind: meta-regression
    outcome: length_of_stay
    moderators: [{moderator: setting}]
"""

INSTRUMENTS = """\
- {id: LOS-days, name: length of stay in days, outcome: length_of_stay, higher_is_worse: true, rank: 1, source: test}
"""

#: (study, setting, experimental mean, SD, n, control mean, SD, n): final values at day 4.
TRIALS = [
    ("s1", "ward", 5.1, 2.0, 40, 6.0, 2.2, 42), ("s2", "ward", 7.2, 3.1, 55, 7.9, 3.0, 50),
    ("s3", "icu", 12.5, 4.0, 30, 14.8, 4.4, 31), ("s4", "icu", 10.9, 3.8, 60, 11.2, 3.5, 58),
    ("s5", "day", 2.1, 0.9, 80, 2.6, 1.0, 78), ("s6", "day", 1.8, 0.8, 45, 2.5, 1.1, 47),
]
#: metafor 3.8.1: es <- escalc("SMD", m1i, sd1i, n1i, m2i, sd2i, n2i); rma(yi, vi, data = es, control =
#: list(threshold = 1e-12)) (REML run to convergence; metafor's default stops at a tau^2 change below 1e-5)
METAFOR_POOLED = (-0.405154100365, 0.0983525226126, 0.0169785636981)  # estimate, se, tau2
#: metafor: rma(yi, vi, mods = ~ factor(setting, levels = c("ward", "icu", "day")), data = es, control = ...)
METAFOR_FACTOR_BETA = (-0.312861502717, 0.0788054064416, -0.281300079931)
METAFOR_FACTOR_SE = (0.147344239366, 0.210585292116, 0.196057278772)


def _final(sid, aid, mean, sd, n, day=4):
    return {"study_id": sid, "arm_id": aid, "outcome": "length_of_stay", "instrument": "LOS-days",
            "timepoint_weeks": day, "value_kind": "final", "reported_as": "scale", "n": n, "mean": mean, "sd": sd,
            "source": "test"}


def _study(sid, setting, status="included", **kw):
    return {"study_id": sid, "first_author": sid.upper(), "year": 2020, "inclusion_status": status,
            "synthetic": False, "source": "test", "setting": setting, "rob_overall": "low", **kw}


def _arms(sid, n1, n2):
    return [{"study_id": sid, "arm_id": "e", "arm_label": "early", "arm_role": "experimental", "n_randomised": n1,
             "source": "test"},
            {"study_id": sid, "arm_id": "c", "arm_label": "usual", "arm_role": "control",
             "control_type": "usual care", "n_randomised": n2, "source": "test"}]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("generic")
    (root / "review.yaml").write_text(REVIEW_YAML, encoding="utf-8")
    (root / "analyses").mkdir()
    (root / "analyses" / "main.yaml").write_text(SPECS, encoding="utf-8")
    studies, arms, outcomes = [], [], []
    for sid, setting, m1, s1, n1, m2, s2, n2 in TRIALS:
        studies.append(_study(sid, setting))
        arms += _arms(sid, n1, n2)
        outcomes += [_final(sid, "e", m1, s1, n1), _final(sid, "c", m2, s2, n2)]
    # s7 reports two time points and the project declares no windows: left out, with the reason
    studies.append(_study("s7", "ward"))
    arms += _arms("s7", 30, 30)
    outcomes += [_final("s7", "e", 5.0, 2.0, 30), _final("s7", "c", 6.0, 2.0, 30),
                 _final("s7", "e", 4.0, 2.0, 30, day=8), _final("s7", "c", 5.0, 2.0, 30, day=8)]
    # s8 was excluded by the reviewers
    studies.append(_study("s8", "icu", status="excluded", exclusion_reason="not randomised"))
    arms += _arms("s8", 20, 20)
    outcomes += [_final("s8", "e", 9.0, 3.0, 20), _final("s8", "c", 10.0, 3.0, 20)]
    folder = write_sheets(root / "extraction", studies, arms, outcomes, Project(root).review.sheet_vocabulary())
    (folder / "instruments.yaml").write_text(INSTRUMENTS, encoding="utf-8")
    return Project(root)


@pytest.fixture(scope="module")
def output(project):
    return run_project(project, progress=False)


def _effects():
    t = np.array([x[2:] for x in TRIALS], dtype=float)
    return escalc("SMD", m1i=t[:, 0], sd1i=t[:, 1], n1i=t[:, 2], m2i=t[:, 3], sd2i=t[:, 4], n2i=t[:, 5])


def test_generic_project_pools_like_rma_of_escalc(output):
    row = output.frame("analyses").set_index("analysis_id").loc["los"]
    assert row["status"] == "ok" and row["k"] == 6 and pd.isna(row["window"])
    es = _effects()
    fit = rma(es.yi, es.vi)
    assert row["estimate"] == pytest.approx(fit.estimate, rel=1e-10)
    assert (row["estimate"], row["se"], row["tau2"]) == pytest.approx(METAFOR_POOLED, rel=1e-7)
    # benefit "lower": the experimental arm's shorter stays give SMD < 0; no MID declared, so no points
    assert row["meaningful"] == "probably meaningful" and pd.isna(row["vas_points"])


def test_categorical_moderator_is_rs_factor(output):
    reg = output.frame("metareg").query("analysis_id == 'los_setting'")
    assert list(reg["term"]) == ["intrcpt", "setting[icu]", "setting[day]"]
    assert list(reg["moderator"])[1] == "ward type: icu (vs ward)"
    es = _effects()
    setting = [x[1] for x in TRIALS]
    dummies = np.column_stack([[s == "icu" for s in setting], [s == "day" for s in setting]]).astype(float)
    fit = rma(es.yi, es.vi, mods=dummies)
    assert reg["estimate"].to_numpy() == pytest.approx(np.asarray(fit.beta).ravel(), rel=1e-8, abs=1e-10)
    assert reg["estimate"].to_numpy() == pytest.approx(METAFOR_FACTOR_BETA, abs=1e-6)
    assert reg["se"].to_numpy() == pytest.approx(METAFOR_FACTOR_SE, abs=1e-6)


def test_excluded_lists_every_study_left_out_with_its_reason(output, project):
    ex = pd.read_csv(project.results / "excluded.csv").query("analysis_id == 'los'").set_index("study_id")
    assert list(ex.columns[:1]) == ["data"]
    assert "several time points (4, 8 days)" in ex.loc["s7", "reason"]
    assert ex.loc["s8", "category"] == "not included" and "excluded" in ex.loc["s8", "reason"]
    assert not set(ex.index) & {x[0] for x in TRIALS}
    assert "los: ok, k = 6; left out or combined: 2 studies" in output.summary()


def test_review_json_carries_the_declaration(output, project):
    doc = json.loads((project.results / "review.json").read_text(encoding="utf-8"))
    assert doc["title"].startswith("Early mobilisation")
    assert doc["outcomes"][0] == {"id": "length_of_stay", "label": "Length of hospital stay", "benefit": "lower",
                                  "common_scale": None, "mid": None, "typical_sd": None}
    assert doc["windows"] == [] and doc["components"]["replica"] is False and doc["main_analyses"] == ["los"]
    # GRADE without a MID: imprecision judged on zero alone, and the reason says so
    grade = output.frame("grade").query("analysis_id == 'los' and domain == 'imprecision'").iloc[0]
    assert "declares no MID" in grade["reason"]


def test_undeclared_outcome_fails_naming_file_line_and_key(project, tmp_path):
    folder = tmp_path / "analyses"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "analyses:\n  - id: x\n    label: x\n    kind: meta-analysis\n    outcome: pain\n", encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_specs(folder, review=project.review)
    assert "bad.yaml, line 5, analysis 'x': key 'outcome' is 'pain'" in str(err.value)
    assert "length_of_stay" in str(err.value)
    (folder / "bad.yaml").write_text(
        "analyses:\n  - {id: x, label: x, kind: meta-analysis, outcome: length_of_stay, window: short}\n",
        encoding="utf-8")
    with pytest.raises(SpecError, match="declares no follow-up windows"):
        load_specs(folder, review=project.review)


def test_missing_project_file_is_a_located_error(tmp_path):
    with pytest.raises(SpecError, match="review.yaml: no project file"):
        _ = Project(tmp_path).review
