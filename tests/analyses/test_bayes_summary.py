"""The Bayesian model beside each main contrast (`metaexercise.review.bayes_summary`, results/bayes.csv) and the
prediction-interval coverage study (`metaexercise.review.exhibits.pi_coverage_table`, results/pi_coverage.csv):
the run writes bayes.csv for the extraction and the replica with the frequentist numbers of analyses.csv beside
the posterior, which equals `bayesmeta` called directly on the studies of studies.csv with the declared priors;
the MID is converted with the SD of the vas_* columns; review.yaml's `bayes` and `prediction_interval` blocks
are read strictly; the coverage table has its grid and shows z under-covering at k = 3 where t(k-2) does not."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaexercise.engine.bayes import bayesmeta
from metaexercise.errors import SpecError
from metaexercise.review import bayes_summary, exhibits, replica
from metaexercise.review import run as runner
from metaexercise.review.declaration import BayesDecl, PredictionIntervalDecl, TauPriorDecl, load_review
from metaexercise.review.project import Project
from metaexercise.vocabulary import SYNTHETIC_LABEL

ROOT = Path(__file__).resolve().parents[2]
REVIEW = load_review(ROOT / "review.yaml")
#: analyses.csv column -> bayes.csv column (the frequentist fit beside the posterior)
FREQUENTIST = {"estimate": "freq_estimate", "ci_lb": "freq_ci_lb", "ci_ub": "freq_ci_ub", "pi_lb": "freq_pi_lb",
               "pi_ub": "freq_pi_ub", "tau2": "freq_tau2"}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The repository's extraction and the first 20 replica studies with the main analyses, run and written."""
    root = tmp_path_factory.mktemp("bayes") / "p"
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    shutil.copy(ROOT / "review.yaml", root / "review.yaml")
    shutil.copytree(ROOT / "extraction", root / "extraction")
    project = Project(root)
    rep = replica.generate(review=REVIEW)
    keep = set(rep.studies["study_id"].iloc[:20])
    small = replica.Replica(*(f[f["study_id"].isin(keep)] for f in rep.sheets().values()), seed=rep.seed)
    replica.write(small, project.root / "replica" / "extraction")
    return project, {s: runner.run_project(project, source=s, progress=False) for s in ("extraction", "replica")}


def test_bayes_csv_is_written_for_both_sources_beside_the_frequentist_fit(ran):
    project, outs = ran
    for source, label in (("extraction", "extraction"), ("replica", SYNTHETIC_LABEL)):
        out = outs[source]
        assert (out.folder / "bayes.csv").is_file()
        bayes, analyses = out.frame("bayes"), out.frame("analyses").set_index("analysis_id")
        assert list(bayes.columns) == ["data", *bayes_summary.BAYES_COLUMNS]
        assert (bayes["data"] == label).all()
        assert list(bayes["analysis_id"]) == list(analyses.index[analyses["kind"] == "meta-analysis"])
        ours = analyses.loc[bayes["analysis_id"]]
        assert (bayes["k"].to_numpy() == ours["k"].to_numpy()).all()
        fitted = ours["status"].eq("ok").to_numpy()
        assert fitted.sum() >= 2, (source, ours["status"])
        for a, b in FREQUENTIST.items():  # the very numbers of analyses.csv (same fit, same CSV formatting)
            np.testing.assert_array_equal(bayes[b].to_numpy()[fitted], ours[a].to_numpy()[fitted])
        assert bayes.loc[~fitted, ["mu_median", "freq_estimate"]].isna().all(axis=None)
        assert (bayes["status"].to_numpy()[~fitted] == ours["status"].to_numpy()[~fitted]).all()
        assert (bayes.loc[fitted, "freq_pi_method"] == "z").all()
        assert "bayes.csv" in json.loads(out.files["manifest.json"])["outputs"]
    # the coverage study is written once, with the real extraction's results only
    assert "pi_coverage.csv" in outs["extraction"].files and "pi_coverage.csv" not in outs["replica"].files


def test_the_posterior_is_bayesmeta_on_the_studies_with_the_declared_priors(ran):
    _project, outs = ran
    checked = 0
    for out in outs.values():
        bayes = out.frame("bayes").set_index("analysis_id")
        analyses, studies = out.frame("analyses").set_index("analysis_id"), out.frame("studies")
        for aid, row in bayes[bayes["status"] == "ok"].iterrows():
            used = studies[(studies["analysis_id"] == aid) & ~studies["excluded_as_outlier"].astype(bool)]
            outcome = REVIEW.outcome(analyses.loc[aid, "outcome"])
            decl = REVIEW.bayes.tau_prior_for(outcome.id)
            assert decl.name.startswith("Rhodes2015")  # the review's empirical prior, not the default
            res = bayesmeta(used["yi"].to_numpy(float), used["vi"].to_numpy(float), tau_prior=decl.name,
                            tau_prior_scale=decl.scale)
            s = res.summary
            expected = {"mu_median": s.loc["median", "mu"], "mu_mean": s.loc["mean", "mu"],
                        "mu_sd": s.loc["sd", "mu"], "mu_lb": s.loc["95% lower", "mu"],
                        "mu_ub": s.loc["95% upper", "mu"], "tau_median": s.loc["median", "tau"],
                        "tau_lb": s.loc["95% lower", "tau"], "tau_ub": s.loc["95% upper", "tau"],
                        "theta_lb": s.loc["95% lower", "theta"], "theta_ub": s.loc["95% upper", "theta"],
                        "p_benefit": res.prob_exceeds(0.0, "mu", "less")}
            # studies.csv holds yi and vi to 12 significant digits: the posterior moves by ~1e-12
            np.testing.assert_allclose([row[c] for c in expected], list(expected.values()), rtol=1e-8, atol=1e-10)
            assert row["tau_prior_label"] == res.tau_prior.label
            # the MID in points, divided by the SD that re-expresses the SMD in points (analyses.csv vas_sd)
            sd = analyses.loc[aid, "vas_sd"]
            if np.isfinite(sd):
                assert row["mid_effect"] == pytest.approx(outcome.mid.value / sd, rel=1e-10)
                assert row["p_mid"] == pytest.approx(res.prob_exceeds(-outcome.mid.value / sd, "mu", "less"),
                                                     rel=1e-7, abs=1e-12)
                assert row["mid_sd"] == sd
            else:
                assert math.isnan(row["p_mid"]) and "not convertible" in row["mid_note"]
            assert row["p_benefit"] >= row["p_mid"] or math.isnan(row["p_mid"])
            checked += 1
    assert checked >= 6


def test_a_mean_difference_review_without_its_own_prior_and_a_mismatched_pi_are_said(ran):
    _project, outs = ran
    result = next(r for r in outs["replica"].results if r.spec.id == "pain_active_short")
    md = dataclasses.replace(REVIEW, measure="MD", bayes=BayesDecl())  # nothing declared: the SMD default
    row = bayes_summary.bayes_row(result, md)
    assert row["status"] == "not computed" and "SMD scale" in row["notes"] and math.isnan(row["mu_median"])
    assert row["freq_estimate"] == result.fit.estimate  # the frequentist side is still there
    other = dataclasses.replace(REVIEW, prediction_interval=PredictionIntervalDecl("t(k-2)", "why not"))
    row = bayes_summary.bayes_row(result, other)
    assert row["status"] == "ok" and "not the t(k-2) review.yaml states" in row["notes"]
    halfnormal = dataclasses.replace(REVIEW, bayes=dataclasses.replace(REVIEW.bayes, tau_priors=()))
    row = bayes_summary.bayes_row(result, halfnormal)
    assert row["tau_prior"] == "halfnormal(scale=0.5)" == TauPriorDecl().describe()
    assert row["mu_median"] == pytest.approx(bayesmeta(result.fit.yi, result.fit.vi, tau_prior="halfnormal",
                                                       tau_prior_scale=0.5).summary.loc["median", "mu"], rel=1e-12)


def test_the_coverage_table_has_its_grid_and_z_under_covers_at_k_3(ran):
    _project, outs = ran
    cov = pd.read_csv(outs["extraction"].folder / "pi_coverage.csv")
    assert list(cov.columns) == list(exhibits.PI_COVERAGE_COLUMNS)
    assert len(cov) == len(exhibits.PI_COVERAGE_K) * len(exhibits.PI_COVERAGE_TAU2) * len(exhibits.PI_COVERAGE_METHODS)
    assert set(cov["method"]) == set(exhibits.PI_COVERAGE_METHODS) and (cov["n_rep"] == exhibits.PI_COVERAGE_REPS).all()
    assert set(cov.loc[cov["declared"], "method"]) == {"z"}  # review.yaml: prediction_interval.method
    assert cov.loc[cov["method"] == "bayes", "bayes_prior"].str.startswith("log-Student-t").all()
    at3 = cov[(cov["k"] == 3) & (cov["tau2"] > 0)].pivot(index="tau2", columns="method", values="coverage")
    assert (at3["z"] < at3["t(k-2)"] - 0.1).all(), at3  # z is far too narrow with three studies
    assert (at3["z"] < 0.9).all()
    big = cov[(cov["k"] == 30) & (cov["tau2"] == 0.25)].set_index("method")["coverage_expected"]
    assert big["t(k-2)"] == pytest.approx(0.95, abs=0.03)


def test_the_coverage_table_is_the_same_for_the_same_seed_and_changes_with_it():
    small = dict(reps=40)
    a, b = exhibits.pi_coverage_table(REVIEW, **small), exhibits.pi_coverage_table(REVIEW, **small)
    pd.testing.assert_frame_equal(a, b)
    c = exhibits.pi_coverage_table(REVIEW, seed=exhibits.PI_COVERAGE_SEED + 1, **small)
    assert not np.array_equal(a["coverage_expected"].to_numpy(), c["coverage_expected"].to_numpy())


# ---------------------------------------------------------------------------------- the declaration
BASE = (ROOT / "review.yaml").read_text(encoding="utf-8")


def _declared(tmp_path: Path, block: str):
    path = tmp_path / "review.yaml"
    path.write_text(BASE.split("\nbayes:")[0] + "\n" + block + "\ncomponents:" + BASE.split("\ncomponents:")[1],
                    encoding="utf-8")
    return load_review(path)


def test_the_review_declares_its_priors_and_prediction_interval():
    default = REVIEW.bayes.tau_prior  # the default half-normal(0.5), declared with its source
    assert (default.name, default.scale) == ("halfnormal", 0.5) and "Friede" in default.source
    assert REVIEW.bayes.mu_prior is None
    for outcome in ("pain", "disability"):
        assert REVIEW.bayes.tau_prior_for(outcome).name.startswith("Rhodes2015:")
        assert "Rhodes KM" in REVIEW.bayes.tau_prior_for(outcome).source
    assert REVIEW.prediction_interval.method == "z" and "predict.rma" in REVIEW.prediction_interval.why
    d = REVIEW.to_dict()
    assert d["bayes"]["tau_priors"]["pain"]["name"].startswith("Rhodes2015:") and d["bayes"]["mu_prior"] is None
    assert d["prediction_interval"]["method"] == "z"


def test_without_the_blocks_the_defaults_apply(tmp_path):
    review = _declared(tmp_path, "")
    assert review.bayes.tau_prior_for("pain") == TauPriorDecl() and review.bayes.mu_prior is None
    assert review.prediction_interval == PredictionIntervalDecl()


def test_a_normal_mu_prior_is_read(tmp_path):
    review = _declared(tmp_path, "bayes:\n  mu_prior: {mean: 0, sd: 2, source: weakly informative}\n")
    assert (review.bayes.mu_prior.mean, review.bayes.mu_prior.sd) == (0.0, 2.0)


@pytest.mark.parametrize("block, message", [
    ("bayes:\n  tau_prior: {name: halfnormal, scale: 0.5, source: x}\n  tau_prir: {}\n", r"line \d+: tau_prir: unknown key in bayes"),
    ("bayes:\n  tau_priors:\n    back_pain: {name: halfnormal, scale: 0.5, source: x}\n", "unknown key in tau_priors"),
    ("bayes:\n  tau_priors:\n    pain: {name: 'Turner2015:pain:non-pharma:placebo', source: x}\n", "log odds ratios"),
    ("bayes:\n  tau_prior: {name: halfnormel, scale: 0.5, source: x}\n", "is not one of"),
    ("bayes:\n  tau_prior: {name: halfnormal, source: x}\n", "needs tau_prior_scale"),
    ("bayes:\n  tau_prior: {name: halfnormal, scale: -1, source: x}\n", "positive"),
    ("bayes:\n  tau_prior: {name: halfnormal, scale: 0.5}\n", "source is required"),
    ("bayes:\n  tau_prior: {name: halfnormal, scale: 0.5, source: x, shape: 2}\n", "unknown key in tau_prior"),
    ("bayes:\n  tau_priors:\n    pain: {name: 'Rhodes2015:pain:non-pharma:nothing', source: x}\n", "is none of"),
    ("bayes:\n  mu_prior: uniform\n", "not 'flat'"),
    ("bayes:\n  mu_prior: {mean: 0, sd: 0, source: x}\n", "positive finite sd"),
    ("bayes:\n  mu_prior: {mean: 0, sd: 1}\n", "source is required"),
    ("prediction_interval: {method: t(k-3), why: x}\n", "is not one of z, t\\(k-1\\), t\\(k-2\\), knha"),
    ("prediction_interval: {method: z}\n", "why is required"),
    ("prediction_interval: {method: z, why: x, source: y}\n", "unknown key in prediction_interval"),
])
def test_the_blocks_are_read_strictly_with_file_and_line(tmp_path, block, message):
    with pytest.raises(SpecError, match=message) as err:
        _declared(tmp_path, block)
    assert str(tmp_path / "review.yaml") in str(err.value) and ", line " in str(err.value)


def test_rhodes_priors_are_refused_for_mean_differences(tmp_path):
    block = "bayes:\n  tau_priors:\n    pain: {name: 'Rhodes2015:pain:non-pharma:placebo', source: x}\n"
    path = tmp_path / "review.yaml"
    text = BASE.split("\nbayes:")[0] + "\n" + block + "\ncomponents:" + BASE.split("\ncomponents:")[1]
    path.write_text(text.replace("  measure: SMD", "  measure: MD"), encoding="utf-8")
    with pytest.raises(SpecError, match="standardised mean differences"):
        load_review(path)
