"""regtest, ranktest, trimfill and fsn against metafor 3.8.1 (tests/reference/bias.json, make_reference.R), plus
hand-checked pieces and the error paths. Relative 1e-6, absolute floor 1e-10."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from engine_reference import CONTROL, check_all, fixture

from metaexercise import rma
from metaexercise.engine.bias import _kendall_exact_cdf, fsn, ranktest, regtest, trimfill

BIAS = fixture("bias")
DATASETS = list(BIAS["datasets"])


def _data(name):
    d = BIAS["datasets"][name]
    ni = None if d.get("ni") is None else np.array(d["ni"], dtype=float)
    return np.array(d["yi"]), np.array(d["vi"]), ni


@pytest.mark.parametrize("dataset", DATASETS)
def test_regtest_matches_metafor(dataset):
    yi, vi, ni = _data(dataset)
    entries = BIAS["datasets"][dataset].get("regtest", {})
    pairs = []
    for key, ref in entries.items():
        method, test, model, predictor = key.split("/")
        assert "error" not in ref, f"{dataset} {key}: metafor failed: {ref['error']}"
        fit = rma(yi, vi, method=method, test=test, control=CONTROL)
        r = regtest(fit, model=model, predictor=predictor, ni=ni)
        label = f"{dataset} regtest {key}"
        pairs += [(f"{label} zval", r.zval, ref["zval"]), (f"{label} pval", r.pval, ref["pval"]),
                  (f"{label} df", r.df, ref.get("ddf"))]
        for q in ("est", "ci_lb", "ci_ub"):
            if ref.get(q) is None:
                assert getattr(r, q) is None, f"{label}: metafor gives no {q}, we give {getattr(r, q)}"
            else:
                pairs.append((f"{label} {q}", getattr(r, q), ref[q]))
    check_all(pairs)


@pytest.mark.parametrize("dataset", DATASETS)
def test_ranktest_matches_metafor(dataset):
    yi, vi, _ = _data(dataset)
    ref = BIAS["datasets"][dataset]["ranktest"]
    r = ranktest(yi, vi)
    check_all([(f"{dataset} ranktest tau", r.tau, ref["tau"]), (f"{dataset} ranktest pval", r.pval, ref["pval"])])
    assert ranktest(rma(yi, vi, control=CONTROL)).pval == r.pval


def test_ranktest_fixture_covers_exact_and_tied_cases():
    exact = [ranktest(*_data(n)[:2]).exact for n in DATASETS]
    assert any(exact) and not all(exact)
    # exact p for k >= 50 without ties too, as metafor's cor.test(..., exact=TRUE)
    assert any(e and len(BIAS["datasets"][n]["yi"]) >= 50 for n, e in zip(DATASETS, exact))


@pytest.mark.parametrize("dataset", [n for n in DATASETS if "trimfill" in BIAS["datasets"][n]])
def test_trimfill_matches_metafor(dataset):
    yi, vi, _ = _data(dataset)
    pairs = []
    for key, ref in BIAS["datasets"][dataset]["trimfill"].items():
        method, estimator, side = key.split("/")
        fit = rma(yi, vi, method=method, control=CONTROL)
        label = f"{dataset} trimfill {key}"
        if "error" in ref:
            # metafor stops (e.g. Q0's square root of a negative number); we raise a clear error instead.
            with pytest.raises(ValueError, match="trimfill"):
                trimfill(fit, side=None if side == "auto" else side, estimator=estimator)
            continue
        r = trimfill(fit, side=None if side == "auto" else side, estimator=estimator)
        assert (r.k0, r.side) == (ref["k0"], ref["side"]), f"{label}: k0/side {r.k0}/{r.side} vs metafor " \
                                                           f"{ref['k0']}/{ref['side']}"
        pairs += [(f"{label} se_k0", r.se_k0, ref["se_k0"]), (f"{label} p_k0", r.p_k0, ref["p_k0"]),
                  (f"{label} k", r.fit.k, ref["k"]), (f"{label} beta", r.fit.estimate, ref["beta"]),
                  (f"{label} se", r.fit.se, ref["se"]), (f"{label} zval", r.fit.zval, ref["zval"]),
                  (f"{label} pval", r.fit.pval, ref["pval"]), (f"{label} ci_lb", r.fit.ci_lb, ref["ci_lb"]),
                  (f"{label} ci_ub", r.fit.ci_ub, ref["ci_ub"]), (f"{label} tau2", r.fit.tau2, ref["tau2"]),
                  (f"{label} QE", r.fit.QE, ref["QE"]), (f"{label} yi", r.yi, ref["yi"]),
                  (f"{label} vi", r.vi, ref["vi"]), (f"{label} fill", r.fill, ref["fill"])]
    check_all(pairs)


@pytest.mark.parametrize("dataset", DATASETS)
def test_fsn_matches_metafor(dataset):
    yi, vi, _ = _data(dataset)
    pairs = []
    for key, ref in BIAS["datasets"][dataset]["fsn"].items():
        kind = key.split("_")[0]
        r = fsn(yi, vi, type=kind, target=0.05 if key.endswith("_target") else None,
                weighted=key.endswith("_weighted"))
        for q in ("fsnum", "pval", "meanes", "target", "alpha"):
            pairs.append((f"{dataset} fsn {key} {q}", getattr(r, q), ref[q]))
    check_all(pairs)


@pytest.mark.parametrize("key", list(BIAS["metareg_regtest"]))
def test_regtest_on_a_meta_regression_matches_metafor(key):
    # The predictor joins the fit's moderators; metafor reports no limit estimate then.
    d = BIAS["metareg_regtest"][key]
    test, model = key.split("/")[1:]
    fit = rma(np.array(d["yi"]), np.array(d["vi"]), mods=np.array(d["mods"]), test=test, control=CONTROL)
    r = regtest(fit, model=model)
    assert r.est is None and d["est"] is None
    check_all([(f"{key} zval", r.zval, d["zval"]), (f"{key} pval", r.pval, d["pval"]),
               (f"{key} df", r.df, d.get("ddf"))])


def test_fixture_grid_is_complete():
    for name, d in BIAS["datasets"].items():
        k = len(d["yi"])
        assert {"ranktest", "fsn"} <= set(d)
        if k >= 3:
            preds = ["sei", "vi"] + (["ni", "ninv", "sqrtni", "sqrtninv"] if d.get("ni") is not None else [])
            for p in preds:
                for fit in ("REML/z", "REML/knha", "DL/z", "DL/knha", "EE/z"):
                    assert f"{fit}/rma/{p}" in d["regtest"], (name, fit, p)
                assert f"REML/z/lm/{p}" in d["regtest"], (name, p)
            for m in ("REML", "EE", "DL"):
                for e in ("L0/auto", "R0/auto", "Q0/auto", "L0/left", "L0/right"):
                    assert f"{m}/{e}" in d["trimfill"], (name, m, e)


# --- hand-checked pieces ----------------------------------------------------------------------------------------
def test_kendall_exact_distribution_is_mahonian():
    # Permutations of 4 items by number of concordant pairs: 1, 3, 5, 6, 5, 3, 1 of 24 (Mahonian numbers,
    # OEIS A008302, row 4); the CDF is their running sum over 24.
    counts = np.array([1, 3, 5, 6, 5, 3, 1])
    np.testing.assert_allclose(_kendall_exact_cdf(4), np.cumsum(counts) / 24, rtol=1e-15)
    assert _kendall_exact_cdf(120)[-1] == pytest.approx(1.0, abs=1e-12)


def test_ranktest_perfect_order_hand_computed():
    # Equal variances are all tied, so use increasing vi with yi increasing as well: y* is monotone in vi,
    # tau = 1; exact two-sided p = 2 * P(T >= 10) = 2/5! = 1/60 for n = 5.
    vi = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    yi = np.array([-1.0, -0.2, 0.5, 1.5, 3.0])
    r = ranktest(yi, vi)
    assert r.exact and r.tau == pytest.approx(1.0)
    assert r.pval == pytest.approx(2 / math.factorial(5), rel=1e-12)


def test_fsn_orwin_hand_computed():
    # Orwin: k (mean - target) / target = 4 (0.5 - 0.2) / 0.2 = 6 (unweighted mean of 0.2, 0.4, 0.6, 0.8).
    r = fsn([0.2, 0.4, 0.6, 0.8], [0.1] * 4, type="Orwin", target=0.2)
    assert r.meanes == pytest.approx(0.5) and r.fsnum == 6
    assert fsn([0.2, 0.4], [0.1, 0.1], type="Orwin", target=0).fsnum == math.inf


def test_regtest_on_raw_data_equals_regtest_on_default_fit():
    yi, vi, _ = _data("bcg")
    a, b = regtest(yi, vi), regtest(rma(yi, vi))
    assert a.zval == pytest.approx(b.zval, rel=1e-9) and a.est == pytest.approx(b.est, rel=1e-9)
    assert regtest(yi, sei=np.sqrt(vi)).zval == pytest.approx(a.zval, rel=1e-12)


def test_errors_name_the_problem():
    yi, vi, _ = _data("bcg")
    fit = rma(yi, vi)
    with pytest.raises(ValueError, match="needs the sample sizes 'ni'"):
        regtest(fit, predictor="ni")
    with pytest.raises(ValueError, match="unknown predictor"):
        regtest(fit, predictor="se")
    with pytest.raises(ValueError, match="only applicable to models without moderators"):
        trimfill(rma(yi, vi, mods=np.arange(13.0)))
    with pytest.raises(ValueError, match=r"positions \[2\]"):
        ranktest([0.1, 0.2, 0.3], [0.1, 0.1, -0.1])
    with pytest.raises(ValueError, match="cannot be fitted"):
        regtest(yi[:2], vi[:2])


def test_results_are_frozen_and_tabulate():
    yi, vi, _ = _data("bcg")
    fit = rma(yi, vi)
    results = [regtest(fit), ranktest(fit), trimfill(fit), fsn(yi, vi)]
    for r in results:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(r, dataclasses.fields(r)[0].name, None)
        assert len(r.to_frame()) in (1, fit.k + trimfill(fit).k0)
        assert r._repr_html_().startswith("<pre>")
    assert regtest(fit).tval is None and regtest(rma(yi, vi, test="knha")).tval is not None
