"""metafor's formula interface and the functions around a fitted model, against metafor 3.8.1
(tests/reference/formula.json, written by tests/reference/make_formula_reference.R; issue 13).

Each fixture fit is refitted with `rma(yi, vi, mods="~ ...", data=df, ...)` (weights, subset, missing values,
vi = 0, intercept=False) and compared at 1e-6 relative: coefficient names exactly as R prints them, the fit,
its warnings (or metafor's stop), and predict(), blup(), ranef(), rstandard(), residuals(), vcov(), fitstats(),
hatvalues(). Then anova() Wald tests (btt by position and by name, linear contrasts X, rhs) and likelihood-
ratio tests, with their printouts line by line, and predict() with newmods (a design matrix, or a DataFrame of
the original variables) and transf=np.exp.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import CONTROL, as_array, check_all, fixture

from metaexercise.engine.extractors import (
    blup,
    fitstats,
    hatvalues,
    logLik,
    ranef,
    residuals,
    rstandard,
    vcov,
)
from metaexercise.engine.hypothesis import LikelihoodRatioTest, LRTWarning, WaldTest, anova
from metaexercise.engine.model import NonPositiveVariancesWarning, RedundantPredictorsWarning, rma
from metaexercise.engine.model_inputs import NAOmittedWarning

REF = fixture("formula")
FITS = REF["fits"]

#: metafor's warning messages and the warning classes the engine gives for them
WARNINGS = {"Studies with NAs omitted": NAOmittedWarning, "Redundant predictors": RedundantPredictorsWarning,
            "non-positive sampling variances": NonPositiveVariancesWarning,
            "REML comparisons not meaningful": LRTWarning, "LRTs should be based on ML/REML": LRTWarning}


def frame(name: str) -> pd.DataFrame:
    cols = {}
    for key, values in REF["datasets"][name].items():
        if any(isinstance(v, str) for v in values):
            cols[key] = values
        else:
            cols[key] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return pd.DataFrame(cols)


def rma_kwargs(entry: dict) -> dict:
    args = entry["args"]
    data = frame(entry["data"])
    kw = {"data": data, "method": args["method"], "test": args["test"], "control": CONTROL}
    if "mods_columns" in args:  # R's cbind(one = 1, ablat = ablat): a named matrix, here a DataFrame
        kw["mods"] = pd.DataFrame({c: np.ones(len(data)) if c == "ones" else data[c] for c in args["mods_columns"]})
        kw.pop("data")
        return {"yi": data["yi"].to_numpy(), "vi": data["vi"].to_numpy(), "intercept": args["intercept"], **kw}
    if args.get("mods") is not None:
        kw["mods"] = args["mods"]
    for key in ("weights", "tau2", "intercept"):
        if key in args:
            kw[key] = args[key]
    if "subset" in args:
        kw["subset"] = np.array(args["subset"], dtype=bool)
    if "subset_1based" in args:
        kw["subset"] = np.asarray(args["subset_1based"], dtype=int) - 1
    return {"yi": args["yi"], "vi": args["vi"], **kw}


def fit_entry(name: str):
    """Refit a fixture fit, recording the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = rma(**rma_kwargs(FITS[name]))
    return fit, caught


def assert_warnings(r_messages: list[str], caught, where: str) -> None:
    classes = {w.category for w in caught}
    for message in r_messages:
        want = [cls for key, cls in WARNINGS.items() if key in message]
        assert want, f"{where}: no engine warning mapped to metafor's {message!r}"
        assert want[0] in classes, f"{where}: metafor warned {message!r}, the engine gave {classes}"
    for cls in (NAOmittedWarning, RedundantPredictorsWarning, NonPositiveVariancesWarning):
        if cls in classes:
            assert any(WARNINGS[k] is cls and k in m for m in r_messages for k in WARNINGS), \
                f"{where}: the engine warned {cls.__name__}, metafor did not"


OK_FITS = [n for n, e in FITS.items() if "error" not in e["result"]]
ERROR_FITS = [n for n, e in FITS.items() if "error" in e["result"]]


def test_fixture_covers_the_brief():
    assert REF["source"]["metafor_version"] == "3.8.1"
    assert "threshold=1e-12" in REF["source"]["control"]
    assert {"bcg", "molloy2014", "raudenbush1985", "bangertdrowns2004", "hackshaw1998"} <= set(REF["datasets"])
    args = [e["args"] for e in FITS.values()]
    assert any("weights" in a for a in args) and any("subset" in a for a in args)
    assert any("subset_1based" in a for a in args) and any(a.get("intercept") is False for a in args)
    assert any(" - 1" in (a.get("mods") or "") for a in args) and any("*" in (a.get("mods") or "") for a in args)
    assert any(any("NAs omitted" in w for w in e["warnings"]) for e in FITS.values())
    assert any(e["data"] == "bcg_vi0" for e in FITS.values()) and ERROR_FITS


@pytest.mark.parametrize("name", OK_FITS)
def test_fit_matches_metafor(name):
    entry = FITS[name]
    ref = entry["result"]
    fit, caught = fit_entry(name)
    assert list(fit.coef_names) == ref["coef_names"], name
    assert_warnings(entry["warnings"], caught, name)
    assert (fit.k, fit.k_all, fit.k_f, fit.p, fit.parms) == (ref["k"], ref["k_all"], ref["k_f"], ref["p"],
                                                             ref["parms"]), name
    assert fit.int_incl == ref["int_incl"] and fit.int_only == ref["int_only"], name
    assert [b + 1 for b in fit.btt] == ref["btt"], name
    if fit.not_na is not None and not all(ref["not_na"]):
        assert fit.not_na.tolist() == ref["not_na"], name
    pairs = [(f"{name} {key}", getattr(fit, attr), ref[key]) for key, attr in (
        ("beta", "beta"), ("se", "se"), ("zval", "zval"), ("pval", "pval"), ("ci_lb", "ci_lb"),
        ("ci_ub", "ci_ub"), ("vb", "vb"), ("tau2", "tau2"), ("se_tau2", "se_tau2"), ("I2", "I2"), ("H2", "H2"),
        ("QE", "QE"), ("QEp", "QEp"), ("QM", "QM"), ("QMp", "QMp"), ("weights", "weights"))]
    pairs.append((f"{name} QMdf", [fit.QM_df[0], np.nan if fit.QM_df[1] is None else fit.QM_df[1]], ref["QMdf"]))
    pairs.append((f"{name} R2", np.nan if fit.R2 is None else fit.R2, ref["R2"]))
    pairs.append((f"{name} fit_stats ML", fit.fit_stats["ML"], ref["fit_stats_ML"]))
    pairs.append((f"{name} fit_stats REML", fit.fit_stats["REML"], ref["fit_stats_REML"]))
    if ref["ddf"] is not None:
        pairs.append((f"{name} ddf", fit.ddf, ref["ddf"]))
    check_all(pairs)


@pytest.mark.parametrize("name", ERROR_FITS)
def test_fit_stops_where_metafor_stops(name):
    message = FITS[name]["result"]["error"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:
            rma(**rma_kwargs(FITS[name]))
    text = str(info.value)
    if "Division by zero" in message:
        assert "Division by zero" in text and "vi = 0" in text
    else:
        assert "non-positive sampling variances" in text and FITS[name]["args"]["method"] in text


def _study_pairs(name: str, label: str, ours, ref: dict, keys: tuple[str, ...]):
    return [(f"{name} {label} {k}", getattr(ours, k), ref[k]) for k in keys]


@pytest.mark.parametrize("name", OK_FITS)
def test_extractors_match_metafor(name):
    ex = FITS[name]["extras"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit, _ = fit_entry(name)
    pairs = []
    pr = fit.predict()
    pairs += _study_pairs(name, "predict", pr, ex["predict"], ("pred", "se", "ci_lb", "ci_ub"))
    if ex["predict"]["pi_lb"]:  # metafor gives no prediction interval for EE models (the engine: the CI)
        pairs += _study_pairs(name, "predict", pr, ex["predict"], ("pi_lb", "pi_ub"))
    else:
        assert fit.method == "EE" and np.allclose(pr.pi_lb, pr.ci_lb, rtol=1e-14)
    for label, func in (("blup", blup), ("ranef", ranef)):
        if "error" in ex[label]:
            assert "non-standard weights" in ex[label]["error"]
            with pytest.raises(ValueError, match="non-standard weights"):
                func(fit)
        else:
            pairs += _study_pairs(name, label, func(fit), ex[label], ("pred", "se", "pi_lb", "pi_ub"))
    for kind in ("marginal", "conditional"):
        ref = ex[f"rstandard_{kind}"]
        if "error" in ref:
            with pytest.raises(ValueError, match="non-standard weights"):
                rstandard(fit, kind)
        else:
            ours = rstandard(fit, kind)
            # a study the model fits exactly (hat value 1: the only one at its factor level): metafor's conditional
            # SE and z are rounding noise (1e-8, NaN, -Inf); the engine's are 0
            exact = np.asarray(ex["hatvalues"]) > 1 - 1e-8 if kind == "conditional" else np.zeros(fit.k, bool)
            assert (ours.se[exact] == 0).all() and (ours.z[exact] == 0).all()
            pairs += [(f"{name} rstandard {kind} {q}", getattr(ours, q)[~exact], as_array(ref[q])[~exact].tolist())
                      for q in ("resid", "se", "z")]
    for kind in ("response", "rstandard", "pearson"):
        pairs.append((f"{name} residuals {kind}", residuals(fit, kind), ex[f"residuals_{kind}"]))
    pairs.append((f"{name} vcov fixed", vcov(fit, "fixed"), ex["vcov_fixed"]))
    pairs.append((f"{name} vcov obs", vcov(fit, "obs"), ex["vcov_obs"]))
    pairs.append((f"{name} fitstats ML", list(fitstats(fit, REML=False).values()), ex["fitstats_ML"]))
    pairs.append((f"{name} fitstats REML", list(fitstats(fit, REML=True).values()), ex["fitstats_REML"]))
    pairs.append((f"{name} logLik", logLik(fit), ex["logLik"]))
    pairs.append((f"{name} hatvalues", hatvalues(fit), ex["hatvalues"]))
    check_all(pairs)


def test_methods_equal_the_functions():
    fit, _ = fit_entry("bcg_ablat_alloc_REML_z")
    assert np.array_equal(fit.blup().pred, blup(fit).pred) and np.array_equal(fit.ranef().se, ranef(fit).se)
    assert np.array_equal(fit.rstandard().z, rstandard(fit).z)
    assert np.array_equal(fit.residuals("pearson"), residuals(fit, "pearson"))
    assert np.array_equal(fit.vcov(), fit.vb) and fit.fitstats() == fitstats(fit)
    assert np.array_equal(fit.hatvalues(), hatvalues(fit))
    assert fit.anova(btt="alloc").QM == anova(fit, btt="alloc").QM
    assert fit.fitstats()["logLik"] == fit.ll and fit.fitstats(REML=False)["logLik"] == fit.fit_stats["ML"][0]
    # vcov "fitted" and "resid" (metafor's other types), against their definitions
    H = hatvalues(fit, "matrix")
    assert np.allclose(np.diag(H), hatvalues(fit), rtol=1e-12)
    assert np.allclose(vcov(fit, "fitted"), fit.X @ fit.vb @ fit.X.T, rtol=1e-12)
    ImH = np.eye(fit.k) - H
    assert np.allclose(vcov(fit, "resid"), ImH @ np.diag(fit.vi + fit.tau2) @ ImH.T, rtol=1e-10, atol=1e-14)
    assert np.allclose(np.sqrt(np.diag(vcov(fit, "resid"))), rstandard(fit).se, rtol=1e-10)


# -- anova --------------------------------------------------------------------------------------------------------
def _fit_of(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_entry(name)[0]


@pytest.mark.parametrize("name", list(REF["anova"]))
def test_anova_wald_matches_metafor(name):
    entry = REF["anova"][name]
    fit = _fit_of(entry["fit"])
    args = dict(entry["args"])
    if "btt" in args and not isinstance(args["btt"], str):
        args["btt"] = [int(b) for b in args["btt"]]
    if "X" in args:
        args["X"] = np.asarray(args["X"], dtype=float)
    ref = entry["result"]
    if "error" in ref:
        with pytest.raises(ValueError, match="cannot identify coefficient"):
            anova(fit, **args)
        return
    res = anova(fit, **args)
    assert isinstance(res, WaldTest)
    pairs = [(f"{name} QM", res.QM, ref["QM"]), (f"{name} QMp", res.QMp, ref["QMp"])]
    if ref["QMdf"] in (None, [None]):  # X without full row rank: no joint test (metafor: NA)
        assert np.isnan(res.QM_df[0]), name
    else:
        pairs.append((f"{name} QMdf", [np.nan if d is None else d for d in res.QM_df], ref["QMdf"]))
    assert res.m == ref["m"]
    if "btt" in ref:
        assert [b + 1 for b in res.btt] == ref["btt"], name
    else:
        pairs += [(f"{name} {k}", getattr(res, k), ref[k]) for k in ("Xb", "se", "zval", "pval", "ddf")]
        assert list(res.hyp) == ref["hyp"], name
    check_all(pairs)
    assert res.summary().split("\n") == entry["printout"], f"{name}:\n{res.summary()}"


@pytest.mark.parametrize("name", list(REF["lrt"]))
def test_anova_lrt_matches_metafor(name):
    entry = REF["lrt"][name]
    full, reduced = _fit_of(entry["full"]), _fit_of(entry["reduced"])
    ref = entry["result"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "error" in ref:
            with pytest.raises(ValueError, match="metafor stops here too"):
                anova(full, reduced, refit=entry["refit"])
            return
        res = anova(full, reduced, refit=entry["refit"])
    assert_warnings(entry["warnings"], caught, name)
    assert not entry["warnings"] or any(w.category is LRTWarning for w in caught)
    assert isinstance(res, LikelihoodRatioTest) and res.method == ref["method"]
    assert (res.parms_f, res.parms_r) == (ref["parms_f"], ref["parms_r"])
    check_all([(f"{name} {k}", getattr(res, k), ref[k]) for k in
               ("LRT", "pval", "fit_stats_f", "fit_stats_r", "QE_f", "QE_r", "tau2_f", "tau2_r", "R2")])
    assert res.summary().split("\n") == entry["printout"], f"{name}:\n{res.summary()}"


def test_anova_btt_forms():
    fit = _fit_of("bcg_ablat_alloc_REML_z")
    assert anova(fit).QM == pytest.approx(fit.QM, rel=1e-14) and anova(fit).btt == (1, 2, 3)
    assert anova(fit, btt="alloc").btt == (2, 3) == anova(fit, btt=[2, 3]).btt == anova(fit, btt=(3, 2)).btt
    assert anova(fit, btt="factor(alloc)", fixed=True).btt == (2, 3)  # literally, not as a regular expression
    assert anova(fit, btt=1).btt == (1,) == anova(fit, btt=np.int64(1)).btt
    both = anova(fit, btt=["ablat", "alloc"])  # metafor: a character vector gives one test per element
    assert isinstance(both, list) and [t.btt for t in both] == [(1,), (2, 3)]
    assert [t.btt for t in anova(fit, btt=[[1], [2, 3]])] == [(1,), (2, 3)]
    for bad in (-1, 4, [0, 7]):
        with pytest.raises(ValueError, match="0-based positions"):
            anova(fit, btt=bad)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        anova(fit, btt="factor(")
    with pytest.raises(TypeError, match="either btt= or X="):
        anova(fit, btt=1, X=[0, 1, 0, 0])
    with pytest.raises(ValueError, match="X has 2 columns"):
        anova(fit, X=[1, 2])
    with pytest.raises(TypeError, match="needs a fitted model"):
        anova("fit")
    wald = anova(_fit_of("bcg_ablat_alloc_ML_z"), _fit_of("bcg_ablat_ML"), test="Wald")
    assert wald.btt == (2, 3)


# -- predict ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REF["predict"]))
def test_predict_matches_metafor(name):
    entry = REF["predict"][name]
    fit = _fit_of(entry["fit"])
    args = dict(entry["args"])
    ref = entry["result"]
    newdata = args.pop("newdata", None)
    if args.get("transf") == "exp":
        args["transf"] = np.exp
    if "newmods" in args:
        args["newmods"] = np.asarray(args["newmods"], dtype=float)
    if "error" in ref:
        with pytest.raises(ValueError, match="models without moderators"):
            fit.predict(**args)
        return
    variants = [fit.predict(**args)]
    if newdata is not None:  # the same predictions from the original variables, through the formula
        args["newmods"] = pd.DataFrame(newdata)
        variants.append(fit.predict(**args))
    for j, pr in enumerate(variants):
        where = f"{name}[{'DataFrame' if j else 'matrix'}]"
        pairs = [(f"{where} {k}", getattr(pr, k), ref[k]) for k in ("pred", "se", "ci_lb", "ci_ub")]
        if ref["pi_lb"] is not None:
            pairs += [(f"{where} {k}", getattr(pr, k), ref[k]) for k in ("pi_lb", "pi_ub")]
        if ref["X"] is not None:
            pairs.append((f"{where} X", pr.X, ref["X"]))
        check_all(pairs)
        assert pr.transf == ("transf" in args)


def test_predict_newmods_forms_and_errors():
    fit = _fit_of("bcg_ablat_alloc_REML_z")
    want = fit.predict(np.array([[30, 1, 0]])).pred
    named = pd.DataFrame({"factor(alloc)systematic": [0], "ablat": [30], "factor(alloc)random": [1]})
    assert fit.predict(named).pred == pytest.approx(want, rel=1e-14)  # columns matched by coefficient name
    assert fit.predict({"ablat": [30], "alloc": ["random"]}).pred == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="levels the model was not fitted with.*nonesuch"):
        fit.predict(pd.DataFrame({"ablat": [30], "alloc": ["nonesuch"]}))
    with pytest.raises(ValueError, match="needs 3 column"):
        fit.predict(np.array([[30, 1]]))
    plain = rma(fit.yi, fit.vi, mods=fit.X[:, 1:], control=CONTROL)
    with pytest.raises(ValueError, match="needs a model fitted with a formula"):
        plain.predict(pd.DataFrame({"ablat": [30], "alloc": ["random"]}))
    tr = fit.predict(np.array([[30, 1, 0]]), transf=lambda x: -x)  # a decreasing transf: bounds re-sorted
    assert tr.ci_lb[0] < tr.ci_ub[0] and np.isnan(tr.se).all() and "se" not in tr.to_frame()
    import math

    assert fit.predict(np.array([[30, 1, 0]]), transf=math.exp).pred == pytest.approx(np.exp(want), rel=1e-14)


# -- inputs -------------------------------------------------------------------------------------------------------
def test_missing_values_are_omitted_as_the_complete_cases():
    data = frame("bcg_na")
    with pytest.warns(NAOmittedWarning, match=r"2 of 13 \(positions \[1, 6\]"):
        fit = rma("yi", "vi", mods="~ ablat + factor(alloc)", data=data, control=CONTROL)
    keep = data["yi"].notna().to_numpy()
    ref = rma(data["yi"][keep].to_numpy(), data["vi"][keep].to_numpy(),
              mods=pd.get_dummies(data[keep][["ablat", "alloc"]], drop_first=True, dtype=float), control=CONTROL)
    assert np.allclose(fit.beta, ref.beta, rtol=1e-12) and fit.tau2 == pytest.approx(ref.tau2, rel=1e-12)
    assert fit.positions.tolist() == np.flatnonzero(keep).tolist() and fit.k_all == 13
    # arrays too: NaN in yi, vi, mods or weights omits the study
    y, v, x = data["yi"].to_numpy(), data["vi"].to_numpy(), data["ablat"].to_numpy()
    with pytest.warns(NAOmittedWarning):
        a = rma(y, v, mods=x)
    with pytest.warns(NAOmittedWarning):
        b = rma(y[keep], v[keep], mods=np.where(np.arange(11) == 3, np.nan, x[keep]))
    assert a.k == 11 and b.k == 10
    with pytest.warns(NAOmittedWarning), pytest.raises(ValueError, match="k = 0"):
        rma([np.nan, np.nan], [0.1, 0.1])


def test_bad_inputs_are_named():
    data = frame("bcg")
    with pytest.raises(TypeError, match="data="):
        rma("yi", "vi", mods="~ ablat")
    with pytest.raises(TypeError, match="data="):
        rma(data["yi"], data["vi"], mods="~ ablat")
    with pytest.raises(ValueError, match="not a column"):
        rma("effect", "vi", data=data)
    with pytest.raises(ValueError, match="one-sided formula"):
        rma("yi", "vi", mods="ablat", data=data)
    with pytest.raises(ValueError, match="cannot build the model matrix"):
        rma("yi", "vi", mods="~ nonesuch", data=data)
    with pytest.raises(TypeError, match="non-numeric"):
        rma("yi", "vi", mods=data[["ablat", "alloc"]], data=data)
    with pytest.raises(ValueError, match=r"weights must be finite and non-negative.*positions \[2\]"):
        rma("yi", "vi", weights=np.r_[1.0, 1.0, -1.0, np.ones(10)], data=data)
    with pytest.raises(ValueError, match="0-based"):
        rma("yi", "vi", subset=[13], data=data)
    with pytest.raises(ValueError, match="k = 0 after subsetting"):
        rma("yi", "vi", subset=np.zeros(13, dtype=bool), data=data)
    with pytest.raises(ValueError, match=r"yi is infinite at positions \[4\]"):
        rma(np.r_[data["yi"][:4], np.inf, data["yi"][5:]], data["vi"])
    with pytest.raises(ValueError, match=r"vi = \[-0.1\] at positions \[4\]"):
        rma(data["yi"], np.r_[data["vi"][:4], -0.1, data["vi"][5:]])


def test_two_sided_formula_and_sei_and_escalc_style_columns():
    data = frame("bcg")
    a = rma("yi", "vi", mods="~ ablat + factor(alloc)", data=data, control=CONTROL)
    b = rma("yi ~ ablat + factor(alloc)", "vi", data=data, control=CONTROL)
    c = rma("yi", sei=np.sqrt(data["vi"]), mods="~ ablat + factor(alloc)", data=data, control=CONTROL)
    for other in (b, c):
        assert other.coef_names == a.coef_names and np.allclose(other.beta, a.beta, rtol=1e-12)


def test_intercept_false_without_moderators_coerces_the_intercept():
    data = frame("bcg")
    with pytest.warns(UserWarning, match="intercept coerced"):
        fit = rma(data["yi"], data["vi"], intercept=False)
    assert fit.int_only and fit.coef_names == ("intrcpt",)


def test_array_rma_imports_neither_formulaic_nor_pandas(tmp_path):
    code = ("import sys, metaexercise; metaexercise.rma([0.1, 0.3, 0.35, 0.6], [0.01, 0.02, 0.015, 0.03], "
            "mods=[1, 2, 3, 5]); print(sorted(m for m in ('formulaic', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
