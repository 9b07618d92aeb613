"""rma: cross-checks by independent routes and the hard cases the engine issue lists.

Reference numbers come from (a) metafor 3.8.1 printouts quoted in the test (dat.bcg, the canonical example in
metafor's documentation and in Viechtbauer 2010, J Stat Softw 36(3)), (b) statsmodels' WLS at weights
1/(vi + tau2) (an independent implementation of the same estimator), or (c) closed forms shown in the test.
The full metafor comparison on 35+ data sets is in test_reference_*.py.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from metaexercise import Control, ConvergenceError, escalc, rma
from metaexercise.engine.model import RedundantPredictorsWarning, refit
from metaexercise.engine.model_inputs import NAOmittedWarning

# dat.bcg: log risk ratios and variances, escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg).
TPOS = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27])
TNEG = np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886])
CPOS = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29])
CNEG = np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825])
ABLAT = np.array([44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33])


def bcg():
    yi = np.log((TPOS / (TPOS + TNEG)) / (CPOS / (CPOS + CNEG)))
    vi = 1 / TPOS - 1 / (TPOS + TNEG) + 1 / CPOS - 1 / (CPOS + CNEG)
    return yi, vi


def test_dat_bcg_reml_matches_metafor_printout():
    # metafor 3.8.1, print(rma(yi, vi, data=dat)): estimate -0.7145, se 0.1798, zval -3.9744, ci -1.0669 to
    # -0.3622, tau^2 0.3132 (SE 0.1664), I^2 92.22%, H^2 12.86, Q(df = 12) = 152.2330;
    # predict(): pi -1.8667 to 0.4376 (reader-expectations §6 of the project's research notes).
    fit = rma(*bcg())
    assert fit.estimate == pytest.approx(-0.7145, abs=5e-5)
    assert fit.se[0] == pytest.approx(0.1798, abs=5e-5)
    assert fit.zval[0] == pytest.approx(-3.9744, abs=5e-5)
    assert (fit.ci_lb[0], fit.ci_ub[0]) == pytest.approx((-1.0669, -0.3622), abs=5e-5)
    assert fit.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert fit.se_tau2 == pytest.approx(0.1664, abs=5e-5)
    assert fit.I2 == pytest.approx(92.22, abs=5e-3)
    assert fit.H2 == pytest.approx(12.86, abs=5e-3)
    assert fit.QE == pytest.approx(152.2330, abs=5e-5)
    assert (fit.pi_lb, fit.pi_ub) == pytest.approx((-1.8667, 0.4376), abs=5e-5)
    ci = fit.confint()  # confint(res): tau^2 0.3132 [0.1197, 1.1115]
    assert ci.tau2[1:] == pytest.approx((0.1197, 1.1115), abs=5e-5)


@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "HS", "SJ", "EB", "PM", "EE"])
def test_coefficients_equal_weighted_least_squares(method):
    """β̂ and SE equal WLS at weights 1/(vi + τ̂²) with the scale fixed at 1 (statsmodels as the second route)."""
    yi, vi = bcg()
    fit = rma(yi, vi, mods=ABLAT, method=method)
    w = 1 / (vi + fit.tau2)
    ols = sm.WLS(yi, sm.add_constant(ABLAT.astype(float)), weights=w).fit()
    assert fit.beta == pytest.approx(ols.params, rel=1e-10)
    assert fit.se == pytest.approx(ols.bse / np.sqrt(ols.scale), rel=1e-10)


def test_knapp_hartung_scale_is_the_wls_residual_variance():
    # Under knha, Var(β̂) is scaled by s² = Σw(y − Xβ̂)²/(k − p): statsmodels' WLS scale estimate.
    yi, vi = bcg()
    fit = rma(yi, vi, mods=ABLAT, test="knha")
    ols = sm.WLS(yi, sm.add_constant(ABLAT.astype(float)), weights=1 / (vi + fit.tau2)).fit()
    assert fit.se == pytest.approx(ols.bse, rel=1e-10)
    assert fit.pval == pytest.approx(ols.pvalues, rel=1e-8)
    assert fit.ddf == 11


def test_mods_as_categorical_give_the_subgroup_test():
    # Two subgroups coded 0/1: QM equals the squared z of the difference between subgroup estimates
    # when tau² is shared (here EE so each subgroup's estimate is its inverse-variance mean).
    yi, vi = bcg()
    g = (ABLAT > 30).astype(float)
    fit = rma(yi, vi, mods=g, method="EE")
    m = [np.average(yi[g == j], weights=1 / vi[g == j]) for j in (0, 1)]
    v = [1 / np.sum(1 / vi[g == j]) for j in (0, 1)]
    assert fit.QM == pytest.approx((m[1] - m[0]) ** 2 / (v[0] + v[1]), rel=1e-10)


def test_k_equals_one():
    fit = rma([0.5], [0.04])
    assert fit.tau2 == 0 and fit.QE == 0 and fit.QEp == 1
    assert fit.estimate == 0.5 and fit.se[0] == pytest.approx(0.2)
    assert "k = 1" in fit.notes[0]
    with pytest.raises(ValueError, match="k = 1"):
        fit.confint()


def test_k_equals_two_closed_form_dl():
    # DL with k = 2: Q = (y1 − y2)²/(v1 + v2); tau² = (Q − 1)/(Σw − Σw²/Σw).
    y, v = np.array([0.1, 0.9]), np.array([0.02, 0.03])
    w = 1 / v
    q = (y[0] - y[1]) ** 2 / (v[0] + v[1])
    fit = rma(y, v, method="DL")
    assert fit.QE == pytest.approx(q, rel=1e-12)
    assert fit.tau2 == pytest.approx((q - 1) / (w.sum() - (w**2).sum() / w.sum()), rel=1e-12)


def test_identical_effects_give_tau2_on_the_boundary():
    fit = rma([0.3] * 6, [0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    assert fit.tau2 == 0 and fit.I2 == 0 and fit.QE == pytest.approx(0, abs=1e-20)
    assert fit.estimate == pytest.approx(0.3, rel=1e-14)
    assert any("lower bound" in n for n in fit.notes)


@pytest.mark.parametrize(
    "vi, positions", [([0.1, 0.0, 0.2], "[1]"), ([0.1, -0.2, 0.2], "[1]"), ([np.inf, 0.1, 0.1], "[0]")]
)
def test_bad_variances_are_named_by_position(vi, positions):
    # vi = 0 is allowed as in metafor, but here REML's tau^2 reaches 0 and 1/vi is infinite: metafor stops
    # ("Division by zero when computing the inverse variance weights."); negative and infinite vi stop too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=rf"positions {re.escape(positions)}"):
            rma([0.1, 0.2, 0.3], vi)


def test_missing_effect_is_omitted_and_an_infinite_one_named():
    # metafor 3.8 (na.action = "na.omit"): "Studies with NAs omitted from model fitting."
    with pytest.warns(NAOmittedWarning, match=r"positions \[2\]"):
        fit = rma([0.1, 0.2, np.nan, 0.4], [0.1, 0.1, 0.1, 0.2])
    assert (fit.k, fit.k_all) == (3, 4) and fit.estimate == rma([0.1, 0.2, 0.4], [0.1, 0.1, 0.2]).estimate
    with pytest.raises(ValueError, match=r"yi is infinite at positions \[2\]"):
        rma([0.1, 0.2, np.inf], [0.1, 0.1, 0.1])


def test_nonconvergence_raises_with_remedies():
    yi, vi = bcg()
    with pytest.raises(ConvergenceError, match="stepadj"):
        rma(yi, vi, control=Control(maxiter=2, threshold=1e-300))


def test_unknown_method_and_keyword_are_errors():
    with pytest.raises(ValueError, match="unknown method 'FE'"):
        rma([0.1, 0.2], [0.1, 0.1], method="FE")
    with pytest.raises(TypeError):
        rma([0.1, 0.2], [0.1, 0.1], knha=True)


def test_escalc_smd_matches_hand_computation():
    # Hedges' g with the exact correction (Hedges 1981, eq. 6e): c(m) = Γ(m/2)/(√(m/2)·Γ((m−1)/2)); m = 18
    # here, and d = 1, so g = c(18) = Γ(9)/(3·Γ(8.5)) = 40320/(3·14034.40729348341) by hand; the
    # approximation 1 − 3/(4m − 1) (eq. 6b) agrees to 1.1e-4.
    es = escalc("SMD", m1i=[2.0], sd1i=[1.0], n1i=[10], m2i=[1.0], sd2i=[1.0], n2i=[10])
    assert es.yi[0] == pytest.approx(40320 / (3 * 14034.40729348341), rel=1e-13)
    assert es.yi[0] == pytest.approx(math.gamma(9) / (3 * math.gamma(8.5)), rel=1e-13)
    assert abs(es.yi[0] - (1 - 3 / (4 * 18 - 1))) < 1.1e-4
    assert es.vi[0] == pytest.approx(1 / 10 + 1 / 10 + es.yi[0] ** 2 / 40, rel=1e-14)


def test_escalc_generic_from_ci():
    es = escalc("GEN", yi=[0.5], ci_lb=[0.5 - 1.959963984540054 * 0.2], ci_ub=[0.5 + 1.959963984540054 * 0.2])
    assert es.vi[0] == pytest.approx(0.04, rel=1e-12)


def test_printout_matches_metafor_for_dat_bcg():
    # capture.output(print(rma(yi, vi, data=dat))) under metafor 3.8.1, R 4.2.2.
    expected = """
Random-Effects Model (k = 13; tau^2 estimator: REML)

tau^2 (estimated amount of total heterogeneity): 0.3132 (SE = 0.1664)
tau (square root of estimated tau^2 value):      0.5597
I^2 (total heterogeneity / total variability):   92.22%
H^2 (total variability / sampling variability):  12.86

Test for Heterogeneity:
Q(df = 12) = 152.2330, p-val < .0001

Model Results:

estimate      se     zval    pval    ci.lb    ci.ub      \n -0.7145  0.1798  -3.9744  <.0001  -1.0669  -0.3622  *** \n
---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1

"""
    assert str(rma(*bcg())) == expected


def test_fit_is_immutable():
    fit = rma(*bcg())
    with pytest.raises(AttributeError):
        fit.tau2 = 0.0


def test_intercept_only_coefficients_are_plain_floats():
    # Outside users' reports: per-coefficient fields of an intercept-only fit must behave as floats everywhere
    # (np.exp([fit.estimate, fit.ci_lb, fit.ci_ub]) gave a ragged array with the 1-D CoefArray).
    fit = rma(*bcg())
    fields = {f: getattr(fit, f) for f in ("beta", "se", "zval", "pval", "ci_lb", "ci_ub")}
    for name, x in fields.items():
        assert isinstance(x, float), name
        assert x[0] == x[-1] == float(x) and type(x[0]) is float, name
        assert len(x) == 1 and list(x) == [float(x)] and np.atleast_1d(x).shape == (1,), name
        assert np.asarray(x).shape == () and np.ndim(x) == 0, name
        assert type(x * 2) is float and type(-x) is float and type(round(x, 2)) is float, name
        assert json.loads(json.dumps(float(x))) == float(x) and json.loads(json.dumps(x)) == float(x), name
        assert pickle.loads(pickle.dumps(x)) == x and repr(x) == repr(float(x)), name
        with pytest.raises(IndexError):
            x[1]
    rr = np.exp([fit.estimate, fit.ci_lb, fit.ci_ub])
    assert rr.shape == (3,) and rr.dtype == float
    assert rr == pytest.approx(np.exp([-0.7145, -1.0669, -0.3622]), abs=5e-4)
    assert np.array([fit.se, fit.zval, fit.pval]).shape == (3,)
    assert f"{fit.pval:.3f}" == "0.000" and f"{fit.se:.4f}" == "0.1798" and round(fit.zval, 2) == -3.97
    assert (fit.pval < 0.05) is True and math.isclose(float(fit.se), fit.se[0])
    assert fit.beta[0] == fit.estimate and dict(zip(fit.coef_names, fit.beta)) == {"intrcpt": fit.estimate}
    # pandas reads them as scalars: a column broadcasts, a cell holds a float
    frame = pd.DataFrame({"study": ["a", "b", "c"]})
    frame["se"] = fit.se
    assert frame["se"].tolist() == [float(fit.se)] * 3 and frame["se"].dtype == float
    cells = pd.DataFrame([{"estimate": fit.estimate, "ci_lb": fit.ci_lb, "pval": fit.pval}])
    assert cells.dtypes.tolist() == [np.dtype(float)] * 3
    assert fit.to_frame().shape == (1, 6) and fit.conf_int(90).shape == (1, 3)
    assert fit.fitted == pytest.approx([fit.estimate] * fit.k)


def test_moderator_fits_hold_one_dimensional_arrays():
    reg = rma(*bcg(), mods=ABLAT)
    for name in ("beta", "se", "zval", "pval", "ci_lb", "ci_ub"):
        x = getattr(reg, name)
        assert type(x) is np.ndarray and x.shape == (2,) and x.dtype == float, name
    with pytest.raises(TypeError):
        float(reg.se)
    assert reg.to_frame().shape == (2, 6)


# A saturated model (k = p): dat with two studies and one moderator, and three studies with two moderators.
# Reference: metafor 3.8.1, rma(yi, vi, mods = ~ x, method = "EE") and its print(), R 4.2.2 (values to 15
# significant digits with sprintf("%.15g", ...)).
SAT_Y, SAT_V, SAT_X = [0.1, 0.5], [0.01, 0.02], [1.0, 2.0]
SAT_PRINT = """
Fixed-Effects with Moderators Model (k = 2)

I^2 (residual heterogeneity / unaccounted variability): 0.00%
H^2 (unaccounted variability / sampling variability):   1.00
R^2 (amount of heterogeneity accounted for):            NA%

Test for Residual Heterogeneity:
QE(df = 0) = 0.0000, p-val = 1.0000

Test of Moderators (coefficient 2):
QM(df = 1) = 5.3333, p-val = 0.0209

Model Results:

         estimate      se     zval    pval    ci.lb   ci.ub    \n\
intrcpt   -0.3000  0.2449  -1.2247  0.2207  -0.7801  0.1801    \n\
x          0.4000  0.1732   2.3094  0.0209   0.0605  0.7395  * \n\

---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1

"""


def test_saturated_equal_effects_fit_is_exact_as_metafor():
    fit = rma(SAT_Y, SAT_V, mods=pd.DataFrame({"x": SAT_X}), method="EE")
    assert fit.beta == pytest.approx([-0.3, 0.4], rel=1e-12)
    assert fit.se == pytest.approx([0.244948974278318, 0.173205080756888], rel=1e-12)
    assert fit.pval == pytest.approx([0.220671361919847, 0.020921335337794], rel=1e-10)
    assert (fit.ci_lb[1], fit.ci_ub[1]) == pytest.approx((0.0605242797771486, 0.739475720222852), rel=1e-10)
    # rma.uni, `if (k > p) ... else { QE <- 0; QEp <- 1; I2 <- 0; H2 <- 1; vt <- 0 }`
    assert (fit.QE, fit.QEp, fit.I2, fit.H2, fit.vt) == (0.0, 1.0, 0.0, 1.0, 0.0)
    assert fit.QM == pytest.approx(5.33333333333334, rel=1e-12)
    assert fit.QMp == pytest.approx(0.020921335337794, rel=1e-10)
    assert math.isnan(fit.R2)  # summary(lm(...))$adj.r.squared is NaN with 0 residual df; metafor prints NA%
    # ML fit statistics (ll, dev, AIC, BIC, AICc)
    assert (fit.ll, fit.deviance, fit.AIC, fit.BIC, fit.AICc) == pytest.approx(
        (2.42071952929877, 0.0, -0.841439058597546, -3.45514469747765, 11.1585609414025), rel=1e-12)
    assert str(fit) == SAT_PRINT
    three = rma([0.1, 0.5, 0.2], [0.01, 0.02, 0.03], mods=np.column_stack([[1, 2, 4], [0, 1, 1]]), method="EE")
    assert three.beta == pytest.approx([0.25, -0.15, 0.55], rel=1e-12)
    assert (three.QE, three.QEp) == (0.0, 1.0) and three.QM == pytest.approx(5.363636363636, rel=1e-10)


@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "HS", "SJ", "EB", "PM"])
def test_saturated_random_effects_fit_stops_as_metafor(method):
    # metafor's rma.uni: a random-effects model estimates p + 1 parameters; `if ((p+1) > k) stop("Number of
    # parameters to be estimated is larger than the number of observations.")`
    with pytest.raises(ValueError, match=r"Number of parameters to be estimated is larger than the number "
                                         r"of observations\. The model has 2 coefficients and tau\^2"):
        rma(SAT_Y, SAT_V, mods=SAT_X, method=method)
    # one study: its moderator is collinear with the intercept; metafor 3.8.1 drops it (with a warning) before
    # counting parameters, and fits the intercept-only model with k = 1
    with pytest.warns(RedundantPredictorsWarning, match="mods"):
        single = rma([0.3], [0.04], mods=[1.0], method=method)
    assert (single.k, single.p, single.tau2, single.dropped) == (1, 1, 0.0, ("mods",))
    assert float(single.se) == pytest.approx(0.2, rel=1e-15)
    # p + 1 = k is estimable
    assert rma([0.1, 0.5, 0.2], [0.01, 0.02, 0.03], mods=[1, 2, 4], method=method).k == 3


def test_more_coefficients_than_studies_are_redundant_and_dropped_as_metafor():
    # metafor 3.8.1 drops redundant predictors (R's lm QR) before it counts parameters, so an equal-effects
    # model never has more coefficients than studies: rma(0.3, 0.04, mods = 1, method = "EE") warns
    # "Redundant predictors dropped from the model." and fits the single study
    with pytest.warns(RedundantPredictorsWarning):
        fit = rma([0.3], [0.04], mods=[1.0], method="EE")
    assert (fit.p, fit.coef_names, float(fit.beta)) == (1, ("intrcpt",), 0.3)
    with pytest.warns(RedundantPredictorsWarning, match="mods2"):  # k = 2, 3 columns: the last is redundant
        fit = rma([0.1, 0.5], [0.01, 0.02], mods=[[1.0, 3.0], [2.0, 5.0]], method="EE")
    assert fit.coef_names == ("intrcpt", "mods1") and fit.dropped == ("mods2",)
    assert fit.beta == pytest.approx([-0.3, 0.4], rel=1e-12)  # metafor 3.8.1: coef.na FALSE FALSE TRUE


def test_saturated_fit_with_fixed_tau2_is_exact_as_metafor():
    # metafor 3.8.1, rma(yi, vi, mods = ~ x, tau2 = 0.1): p parameters only; se 0.7483 and 0.4796, QE 0,
    # I^2 0%, H^2 1.00, R^2 0.00%
    fit = rma(SAT_Y, SAT_V, mods=SAT_X, tau2=0.1)
    assert fit.se == pytest.approx([0.7483, 0.4796], abs=5e-5)
    assert (fit.QE, fit.QEp, fit.I2, fit.H2, fit.R2) == (0.0, 1.0, 0.0, 1.0, 0.0)
    assert fit.BIC == -math.inf  # REML: parms * log(k - p) = log(0)


def test_saturated_equal_effects_with_knha_as_metafor():
    # metafor 3.8.1 (with its warning on knha for EE models): s2w = 0 (RSS = 0), so se = 0, zval = +-Inf,
    # pval, CI and QM NA, QMdf = c(1, 0), ddf = 0, R2 NaN.
    fit = rma(SAT_Y, SAT_V, mods=SAT_X, method="EE", test="knha")
    assert fit.se.tolist() == [0.0, 0.0] and fit.zval.tolist() == [-math.inf, math.inf]
    assert np.isnan(fit.pval).all() and np.isnan(fit.ci_lb).all() and np.isnan(fit.ci_ub).all()
    assert math.isnan(fit.QM) and math.isnan(fit.QMp) and fit.QM_df == (1.0, 0.0) and fit.ddf == 0
    assert math.isnan(fit.R2)


@pytest.mark.parametrize("method", ["EE", "REML", "ML", "DL", "HE", "HS", "SJ", "EB", "PM"])
def test_k_equals_one_fits_the_study_with_every_method(method):
    # metafor: an intercept-only model with k = 1 is exempt from the parameter count; tau^2 = 0, test "z";
    # fit.stats REML: ll 0, BIC -Inf (log(k - p) = log(0)), AICc 16 for random-effects methods.
    fit = rma([0.3], [0.04], method=method, test="knha")
    assert (fit.estimate, fit.se, fit.tau2, fit.QE, fit.QEp, fit.test) == (0.3, pytest.approx(0.2), 0.0, 0.0, 1.0, "z")
    assert fit.pval == pytest.approx(0.133614402537716, rel=1e-12)
    if method == "REML":
        assert (fit.BIC, fit.AICc) == (-math.inf, pytest.approx(16.0))


def test_influence_rows_of_unestimable_deletions_are_na_as_metafor():
    # metafor 3.8.1, influence(rma(yi, vi, mods = ~ x1)) with k = 3: each deletion leaves k = p = 2, which
    # rma.uni refuses (p + 1 > k), so every deleted-case column is NA (metafor's try()); hat 0.7403, 0.3412, 0.9185.
    from metaexercise import influence

    inf = influence(rma([0.1, 0.5, 0.2], [0.01, 0.02, 0.03], mods=[1, 2, 4]))
    assert inf[["rstudent", "dffits", "cooks_d", "cov_r", "tau2_del", "QE_del"]].isna().all().all()
    assert inf["hat"].tolist() == pytest.approx([0.7402597403, 0.3412042503, 0.9185360094], abs=1e-10)
    assert not inf["inf"].any()


def test_refit_keeps_design_weights_and_names():
    # engine.model.refit (leave1out, cumul) refits the same design: no intercept, user weights, names kept
    yi, vi = bcg()
    x = np.linspace(10.0, 55.0, len(yi))
    w = np.arange(1.0, len(yi) + 1)
    fit = rma(yi, vi, mods=pd.DataFrame({"x": x}), intercept=False, weights=w)
    keep = np.arange(len(yi)) != 4
    r = refit(fit, keep)
    want = rma(yi[keep], vi[keep], mods=pd.DataFrame({"x": x[keep]}), intercept=False, weights=w[keep])
    assert r.coef_names == want.coef_names == ("x",) and not r.int_incl
    assert np.allclose(r.beta, want.beta, rtol=1e-14) and np.allclose(r.vb, want.vb, rtol=1e-14)
    assert np.allclose(r.weights, 100 * w[keep] / w[keep].sum(), rtol=1e-14)  # metafor's weights(): user weights


def test_a_single_variance_is_recycled_as_metafor():
    yi, vi = bcg()
    assert rma(yi, 0.1).tau2 == rma(yi, np.full(len(yi), 0.1)).tau2


def test_diagnostics_refuse_what_they_do_not_compute_yet():
    """influence/regtest/permutest assume an intercept and weights 1/(vi + tau^2); fits with user weights or
    without an intercept get a clear error instead of silently wrong numbers."""
    import metaexercise as mx

    y = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    v = np.array([0.01, 0.02, 0.03, 0.02, 0.01])
    weighted = mx.rma(y, v, weights=np.ones(5))
    for verb in (mx.influence, mx.regtest):
        with pytest.raises(ValueError, match="user weights"):
            verb(weighted)
    with pytest.raises(ValueError, match="without an intercept"):
        mx.permutest(mx.rma(y, v, mods=np.arange(5.0), intercept=False))
