"""The dependence sensitivity analysis (`metaexercise.review.dependence`, results/dependence.csv): on hand-built
sheets with two multi-arm trials followed up twice, Hedges' g and the sampling covariance recomputed here from
their sources (Hedges 1981; Gleser & Olkin 2009), the CHE model and CR2 equal to `rma_mv` and `robust` fitted
directly on them; the run writes the table for the extraction and the replica beside analyses.csv; windows with
too few studies give "insufficient data", never an error."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analyses_sheets_helpers import arm, change, study, write_sheets

from metaexercise.engine.cluster_robust import robust
from metaexercise.engine.mv import rma_mv
from metaexercise.engine.sampling_vcov import gleser_olkin_smd_cov
from metaexercise.errors import SpecError
from metaexercise.extraction import sheets
from metaexercise.extraction.comparisons import build_comparisons
from metaexercise.review import dependence, replica
from metaexercise.review import run as runner
from metaexercise.review.analyses import rules_for, run_analysis
from metaexercise.review.declaration import DependenceDecl, load_review
from metaexercise.review.project import Project
from metaexercise.review.specs import load_specs
from metaexercise.review.vocabulary import main_ids
from metaexercise.vocabulary import SYNTHETIC_LABEL

ROOT = Path(__file__).resolve().parents[2]
REVIEW = load_review(ROOT / "review.yaml")
SPECS = {s.id: s for s in load_specs(ROOT / "analyses", review=REVIEW)}
RHO = REVIEW.dependence.rho_time
#: Hand-built trials: (study, arm, role, control type, n) and change scores (arm, weeks, mean, SD). The same n at
#: both follow-ups, and one SD per study and time point, so g and its covariances are simple to write down.
ARMS = [
    ("aa2020", "i", "individualized", None, 40), ("aa2020", "c1", "control", "active exercise", 30),
    ("aa2020", "c2", "control", "active exercise", 35),  # one individualised arm, two active controls
    ("bb2020", "i1", "individualized", None, 25), ("bb2020", "i2", "individualized", None, 28),
    ("bb2020", "c", "control", "active exercise", 50),  # two individualised arms, one control
    ("cc2020", "i", "individualized", None, 60), ("cc2020", "c", "control", "active exercise", 60),
    ("dd2020", "i", "individualized", None, 45), ("dd2020", "c", "control", "active exercise", 44),
]
CHANGES = {  # (study, weeks): SD, {arm: mean}
    ("aa2020", 12): (2.0, {"i": -2.1, "c1": -1.0, "c2": -1.6}), ("aa2020", 52): (2.2, {"i": -1.8, "c1": -1.1, "c2": -1.2}),
    ("bb2020", 12): (1.8, {"i1": -1.5, "i2": -2.9, "c": -1.0}), ("bb2020", 52): (1.9, {"i1": -1.2, "i2": -1.7, "c": -0.9}),
    ("cc2020", 12): (2.5, {"i": -2.6, "c": -0.3}), ("cc2020", 52): (2.4, {"i": -2.2, "c": -0.7}),
    ("dd2020", 12): (1.6, {"i": -1.0, "c": -1.2}),
}
N = {(s, a): n for s, a, _r, _t, n in ARMS}
PAIRS = [("aa2020", "i", "c1"), ("aa2020", "i", "c2"), ("bb2020", "i1", "c"), ("bb2020", "i2", "c"),
         ("cc2020", "i", "c"), ("dd2020", "i", "c")]


def _sheets(folder: Path, keep=lambda sid, weeks: True) -> Path:
    studies = [study(s) for s in dict.fromkeys(s for s, *_ in ARMS)]
    arms = [arm(s, a, role, ctype, n=n) for s, a, role, ctype, n in ARMS]
    outs = [change(s, a, mean, sd, N[(s, a)], weeks=w) for (s, w), (sd, means) in CHANGES.items() if keep(s, w)
            for a, mean in means.items()]
    return write_sheets(folder, studies, arms, outs)


def _load(folder):
    return sheets.load_extraction(folder, vocabulary=REVIEW.sheet_vocabulary())


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return _load(_sheets(tmp_path_factory.mktemp("dep") / "x"))


def hedges_g(m1, m2, sd, n1, n2):
    """Hedges (1981): g = J(m) d, J(m) = Γ(m/2) / (√(m/2) Γ((m−1)/2)), m = n1 + n2 − 2; metafor's large-sample
    variance (vtype "LS") 1/n1 + 1/n2 + g²/(2(n1 + n2))."""
    m = n1 + n2 - 2
    j = math.exp(math.lgamma(m / 2) - 0.5 * math.log(m / 2) - math.lgamma((m - 1) / 2))
    g = j * (m1 - m2) / sd
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def by_hand() -> tuple[pd.DataFrame, np.ndarray]:
    """The effects (one per study × pair × window) and their V, written down from the sources:

    - same window, one shared arm s: Gleser & Olkin (2009), Handbook of Research Synthesis and Meta-Analysis 2nd
      ed., ch. 19, multiple-treatment studies: Cov(gᵢ, gⱼ) = 1/n_s + gᵢ gⱼ / (2N), N the participants of the arms
      of the two comparisons;
    - different windows (same n at both here): rho_time · √(vᵢvⱼ) for one comparison; for two comparisons sharing
      an arm s, rho_time · √(vᵢvⱼ) · (1/n_s) / √((1/n1ᵢ + 1/n2ᵢ)(1/n1ⱼ + 1/n2ⱼ)) (the large-sample correlation of
      two contrasts with a common group); 0 for comparisons without a common arm and between studies."""
    rows = []
    for window, weeks in (("short", 12), ("long", 52)):
        for s, a1, a2 in PAIRS:
            if (s, weeks) not in CHANGES:
                continue
            sd, means = CHANGES[(s, weeks)]
            g, v = hedges_g(means[a1], means[a2], sd, N[(s, a1)], N[(s, a2)])
            rows.append({"study": s, "window": window, "arm1": a1, "arm2": a2, "n1": N[(s, a1)], "n2": N[(s, a2)],
                         "yi": g, "vi": v})
    e = pd.DataFrame(rows)
    k = len(e)
    V = np.diag(e["vi"].to_numpy())
    for i in range(k):
        for j in range(k):
            a, b = e.iloc[i], e.iloc[j]
            if i == j or a.study != b.study:
                continue
            shared = ("arm1" if a.arm1 == b.arm1 else "arm2" if a.arm2 == b.arm2 else None)
            same_pair = a.arm1 == b.arm1 and a.arm2 == b.arm2
            if a.window == b.window:
                if shared is not None:
                    n_s = a.n1 if shared == "arm1" else a.n2
                    total = a.n1 + a.n2 + (b.n2 if shared == "arm1" else b.n1)
                    V[i, j] = 1 / n_s + a.yi * b.yi / (2 * total)
            elif same_pair:
                V[i, j] = RHO * math.sqrt(a.vi * b.vi)
            elif shared is not None:
                n_s = a.n1 if shared == "arm1" else a.n2
                r = (1 / n_s) / math.sqrt((1 / a.n1 + 1 / a.n2) * (1 / b.n1 + 1 / b.n2))
                V[i, j] = RHO * r * math.sqrt(a.vi * b.vi)
    return e, V


def _key(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["study"], frame["window"], frame["arm1"], frame["arm2"], strict=True))


def test_effects_and_v_equal_the_formulas_from_their_sources(hand):
    effects = dependence.dependence_effects(SPECS["pain_active_short"], hand, REVIEW)
    expected, V_hand = by_hand()
    order = [_key(effects).index(x) for x in _key(expected)]  # the same effects, possibly in another order
    got = effects.iloc[order].reset_index(drop=True)
    assert len(effects) == len(expected) == 11
    np.testing.assert_allclose(got["yi"], expected["yi"], rtol=1e-12)
    np.testing.assert_allclose(got["vi"], expected["vi"], rtol=1e-12)
    assert (got["n1i"].to_numpy() == expected["n1"].to_numpy()).all()  # shared arms keep their whole n
    V = dependence.sampling_vcov(effects, RHO).toarray()[np.ix_(order, order)]
    np.testing.assert_allclose(V, V_hand, rtol=1e-12, atol=1e-15)
    # the shared-arm covariances are not zero, and the engine's Gleser–Olkin function agrees on the shared control
    short = (expected["window"] == "short").to_numpy()
    bb = np.flatnonzero(short & (expected["study"] == "bb2020").to_numpy())
    assert V[bb[0], bb[1]] > 0.02
    go = gleser_olkin_smd_cov(expected["yi"].iloc[bb], expected["n1"].iloc[bb], expected["n2"].iloc[bb],
                              ["bb"] * 2, vi=expected["vi"].iloc[bb])
    np.testing.assert_allclose(V[np.ix_(bb, bb)], go, rtol=1e-12)
    assert dependence.not_positive_definite(dependence.sampling_vcov(effects, RHO), effects) == []


def test_che_model_and_cr2_equal_rma_mv_and_robust_fitted_directly(hand):
    expected, V_hand = by_hand()
    direct = rma_mv(expected["yi"], V_hand, mods="~ window - 1", random="~ 1 | study/es",
                    data=expected.assign(es=np.arange(len(expected)),
                                         window=pd.Categorical(expected["window"], ["short", "long"])))
    rob = robust(direct, cluster=expected["study"], clubSandwich=True)
    for aid, j in (("pain_active_short", direct.coef_names.index("windowshort")),
                   ("pain_active_long", direct.coef_names.index("windowlong"))):
        main = run_analysis(SPECS[aid], hand, REVIEW)
        res = dependence.run_dependence(SPECS[aid], hand, REVIEW, main)
        row = res.row
        assert row["status"] == "ok", row["notes"]
        assert row["sigma2_study"] > 0.05 and row["sigma2_es"] > 0.005  # both components inside the space
        for col, want in (("estimate", direct.beta[j]), ("se", direct.se[j]), ("ci_lb", direct.ci_lb[j]),
                          ("ci_ub", direct.ci_ub[j]), ("pval", direct.pval[j]), ("sigma2_study", direct.sigma2[0]),
                          ("sigma2_es", direct.sigma2[1]), ("robust_se", rob.se[j]), ("robust_df", rob.df[j]),
                          ("robust_ci_lb", rob.ci_lb[j]), ("robust_ci_ub", rob.ci_ub[j]),
                          ("robust_pval", rob.pval[j])):
            assert row[col] == pytest.approx(float(want), rel=1e-7, abs=1e-10), (aid, col)
        assert row["main_estimate"] == pytest.approx(main.fit.estimate, rel=1e-14)
        assert row["main_ci_lb"] == pytest.approx(float(main.fit.ci_lb[0]), rel=1e-14)
        assert row["rho_time"] == RHO
    short = dependence.run_dependence(SPECS["pain_active_short"], hand, REVIEW).row
    assert (short["k_effects"], short["k_studies"], short["k_multiarm"], short["k_multitime"]) == (6, 4, 2, 3)
    long = dependence.run_dependence(SPECS["pain_active_long"], hand, REVIEW).row
    assert (long["k_effects"], long["k_studies"], long["k_multiarm"], long["k_multitime"]) == (5, 3, 2, 3)


def test_rho_time_is_the_declared_one(hand):
    other = dataclasses.replace(REVIEW, dependence=DependenceDecl(0.0, "test"))
    effects = dependence.dependence_effects(SPECS["pain_active_short"], hand, other)
    V = dependence.sampling_vcov(effects, 0.0).toarray()
    across = effects["window"].to_numpy()[:, None] != effects["window"].to_numpy()[None, :]
    assert (V[across] == 0).all()
    row = dependence.run_dependence(SPECS["pain_active_short"], hand, other).row
    assert row["rho_time"] == 0.0 and row["status"] == "ok"
    assert row["estimate"] != pytest.approx(dependence.run_dependence(SPECS["pain_active_short"], hand,
                                                                      REVIEW).row["estimate"], rel=1e-6)


def test_mean_differences_share_the_common_arm_s_variance(hand):
    """measure MD: two differences with a common arm s covary by that arm mean's variance SD_s²/n_s (exactly);
    across windows one comparison correlates by rho_time (one SD per study and time point here)."""
    md = dataclasses.replace(REVIEW, measure="MD")
    effects = dependence.dependence_effects(SPECS["pain_active_short"], hand, md)
    V = dependence.sampling_vcov(effects, RHO, "MD").toarray()
    key = _key(effects)
    for s, weeks, (a, b), (sd, _), shared_n in (
            ("aa2020", "short", (("i", "c1"), ("i", "c2")), CHANGES[("aa2020", 12)], N[("aa2020", "i")]),
            ("bb2020", "long", (("i1", "c"), ("i2", "c")), CHANGES[("bb2020", 52)], N[("bb2020", "c")])):
        i, j = key.index((s, weeks, *a)), key.index((s, weeks, *b))
        assert effects["yi"].iloc[i] == pytest.approx(CHANGES[(s, 12 if weeks == "short" else 52)][1][a[0]]
                                                      - CHANGES[(s, 12 if weeks == "short" else 52)][1][a[1]])
        assert V[i, j] == pytest.approx(sd**2 / shared_n, rel=1e-12)
    i, j = key.index(("cc2020", "short", "i", "c")), key.index(("cc2020", "long", "i", "c"))
    assert V[i, j] == pytest.approx(RHO * math.sqrt(V[i, i] * V[j, j]), rel=1e-12)
    row = dependence.run_dependence(SPECS["pain_active_short"], hand, md).row
    assert row["status"] == "ok" and row["k_effects"] == 6
    with pytest.raises(ValueError, match="measure"):
        dependence.sampling_vcov(effects, RHO, "OR")


def test_too_few_studies_in_a_window_is_insufficient_data_not_an_error(tmp_path):
    # long term: only aa2020 (one study, two comparisons); short term: aa2020 and dd2020
    ex = _load(_sheets(tmp_path / "x", keep=lambda s, w: (s == "aa2020") or (s == "dd2020" and w == 12)))
    long = dependence.run_dependence(SPECS["pain_active_long"], ex, REVIEW).row
    assert long["status"] == "insufficient data (k=1 study in the window)"
    assert (long["k_effects"], long["k_studies"], long["k_multiarm"]) == (2, 1, 1) and math.isnan(long["estimate"])
    short = dependence.run_dependence(SPECS["pain_active_short"], ex, REVIEW).row
    assert short["status"] == "ok" and np.isfinite(short["estimate"])  # fitted with the one long-term study beside
    assert "CR2 not computed: 2 studies for 2 coefficients" in short["notes"]
    none = dependence.run_dependence(SPECS["disability_active_short"], ex, REVIEW).row
    assert none["status"] == "insufficient data (k=0 studies in the window)" and none["k_effects"] == 0


def test_a_failed_joint_fit_falls_back_to_the_window_alone(hand, monkeypatch):
    real_fit, calls = dependence.fit_che, []

    def joint_fails(effects, V, **kw):
        calls.append(sorted(set(effects["window"])))
        if len(calls) == 1:
            raise ValueError("simulated failure")
        return real_fit(effects, V, **kw)

    monkeypatch.setattr(dependence, "fit_che", joint_fails)
    row = dependence.run_dependence(SPECS["pain_active_short"], hand, REVIEW).row
    assert calls == [["long", "short"], ["short"]]
    assert row["status"] == "ok" and "joint fit over the windows failed (simulated failure)" in row["notes"]
    effects = dependence.dependence_effects(SPECS["pain_active_short"], hand, REVIEW)
    here = np.flatnonzero(effects["window"].to_numpy() == "short")
    V = dependence.sampling_vcov(effects, RHO).toarray()[np.ix_(here, here)]
    alone = rma_mv(effects["yi"].iloc[here], V, random="~ 1 | study/es",
                   data=effects.iloc[here].assign(es=np.arange(here.size)))
    assert row["estimate"] == pytest.approx(float(alone.beta[0]), rel=1e-10)
    assert row["robust_se"] == pytest.approx(float(robust(alone, cluster=effects["study"].iloc[here],
                                                          clubSandwich=True).se[0]), rel=1e-10)
    monkeypatch.setattr(dependence, "fit_che", lambda *a, **k: (_ for _ in ()).throw(ValueError("never fits")))
    row = dependence.run_dependence(SPECS["pain_active_short"], hand, REVIEW).row
    assert row["status"] == "not estimable" and "fit failed: never fits" in row["notes"]
    assert math.isnan(row["estimate"])


def test_shared_n_keep_keeps_the_shared_arm_whole(hand):
    kw = {"outcome": "pain", "comparators": {"active exercise"}, "rules": rules_for(REVIEW, "pain"),
          "window": "short", "multiarm": "split"}
    divided = build_comparisons(hand, **kw).set_index(["study_id", "arms"])
    kept = build_comparisons(hand, **kw, shared_n="keep").set_index(["study_id", "arms"])
    assert divided.loc[("aa2020", "i vs c1"), "n1i"] == 20 and kept.loc[("aa2020", "i vs c1"), "n1i"] == 40
    assert divided.loc[("bb2020", "i1 vs c"), "n2i"] == 25 and kept.loc[("bb2020", "i1 vs c"), "n2i"] == 50
    with pytest.raises(ValueError, match="shared_n"):
        build_comparisons(hand, **kw, shared_n="half")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A project with the hand-built sheets and the first 14 replica studies, run for both sources (written)."""
    root = tmp_path_factory.mktemp("run") / "p"
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    shutil.copy(ROOT / "review.yaml", root / "review.yaml")
    project = Project(root)
    _sheets(project.extraction)
    rep = replica.generate(review=REVIEW)
    keep = set(rep.studies["study_id"].iloc[:14])
    small = replica.Replica(*(f[f["study_id"].isin(keep)] for f in rep.sheets().values()), seed=rep.seed)
    replica.write(small, project.root / "replica" / "extraction")
    return project, {s: runner.run_project(project, source=s, progress=False) for s in ("extraction", "replica")}


def test_run_writes_dependence_csv_for_both_sources_beside_analyses(ran):
    project, outs = ran
    for source, label in (("extraction", "extraction"), ("replica", SYNTHETIC_LABEL)):
        out = outs[source]
        assert (out.folder / "dependence.csv").is_file()
        dep, analyses = out.frame("dependence"), out.frame("analyses").set_index("analysis_id")
        assert list(dep.columns) == ["data", *dependence.DEPENDENCE_COLUMNS]
        assert (dep["data"] == label).all()
        assert list(dep["analysis_id"]) == list(main_ids(load_specs(project.analyses, review=REVIEW)))
        fitted = dep[dep["status"] == "ok"]
        assert len(fitted) >= 2, (source, dep[["analysis_id", "status", "notes"]])
        ours = analyses.loc[dep["analysis_id"]]
        both = ours["status"].eq("ok").to_numpy()
        np.testing.assert_allclose(dep["main_estimate"].to_numpy()[both], ours["estimate"].to_numpy()[both],
                                   rtol=1e-11)
        np.testing.assert_allclose(dep["main_ci_ub"].to_numpy()[both], ours["ci_ub"].to_numpy()[both], rtol=1e-11)
        assert dep["main_estimate"].isna().to_numpy()[~both].all()
        assert "dependence.csv" in json.loads(out.files["manifest.json"])["outputs"]
    assert json.loads((project.results / "review.json").read_text())["dependence"]["rho_time"] == RHO


def test_contrast_and_sensitivity_pages_show_it_and_label_the_replica(ran, monkeypatch):
    from metaexercise.publish import pages as bp

    project, outs = ran
    monkeypatch.setenv(bp.PROJECT_ENV, str(project.root))
    (project.root / "book").mkdir(exist_ok=True)
    dep = outs["extraction"].frame("dependence").set_index("analysis_id")
    html = "".join(x.html for x in bp.dependence_report("pain_active_short", "real"))
    assert "Gleser &amp; Olkin" in html and "ρ = 0.6" in html and "Pustejovsky JE" in html
    r = dep.loc["pain_active_short"]
    assert f"{r['estimate']:.2f} [{r['ci_lb']:.2f}," in html.replace("\u2212", "-")
    assert f"[{r['robust_ci_lb']:.2f}," in html and f"{r['robust_df']:.1f}" in html
    html = "".join(x.html for x in bp.dependence_report("pain_active_short", "replica"))
    assert SYNTHETIC_LABEL in html.replace("&#x27;", "'")
    html = "".join(x.html for x in bp.dependence_overview("replica"))
    assert "me-synthetic-banner" in html and SYNTHETIC_LABEL in html.replace("&#x27;", "'")
    real = "".join(x.html for x in bp.dependence_overview("real"))
    assert real.count("<tr>") == 1 + len(dep) and "me-synthetic-banner" not in real
    missing = dep[dep["status"] != "ok"].index[0]
    assert "insufficient data" in "".join(x.html for x in bp.dependence_report(missing, "real"))


def test_declaration_block_is_read_strictly(tmp_path):
    assert REVIEW.dependence.rho_time == 0.6 and "Pustejovsky" in REVIEW.dependence.source
    assert REVIEW.to_dict()["dependence"] == {"rho_time": 0.6, "source": REVIEW.dependence.source}
    text = (ROOT / "review.yaml").read_text(encoding="utf-8")
    start = text.index("dependence:")
    end = text.index("\ncomponents:")
    path = tmp_path / "review.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    assert load_review(path).dependence == DependenceDecl()  # omitted: the default, with its source
    for block, message in (("dependence: {rho_time: 1.0, source: x}\n", "rho_time: must be a correlation"),
                           ("dependence: {rho_time: -0.2, source: x}\n", "rho_time: must be a correlation"),
                           ("dependence: {rho_time: 0.5}\n", "dependence.source is required"),
                           ("dependence: {rho: 0.5, source: x}\n", "unknown key in dependence"),
                           ("dependence: {rho_time: yes, source: x}\n", "must be a number")):
        path.write_text(text[:start] + block + text[end:], encoding="utf-8")
        with pytest.raises(SpecError, match=message):
            load_review(path)
    path.write_text(text[:start] + "dependence: {rho_time: 0.3, source: my pilot data}\n" + text[end:],
                    encoding="utf-8")
    assert load_review(path).dependence == DependenceDecl(0.3, "my pilot data")
