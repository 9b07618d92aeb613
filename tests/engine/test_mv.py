"""`rma_mv` beyond the metafor fixtures: the block-diagonal kernel against dense k × k algebra, its analytic gradient
against finite differences, the M / M⁻¹ protocol that `robust()` uses, equivalent ways of giving V and moderators,
boundary estimates, and refusals of bad input. Synthetic data are drawn from seeded generators (labelled so)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import fixture
from scipy import sparse

from metaexercise.engine.model import rma
from metaexercise.engine.mv import RMAMVWarning, rma_mv
from metaexercise.engine.mv_fit import Objective
from metaexercise.engine.mv_structures import Structure

MV = fixture("mv")
KONST = pd.DataFrame(MV["data"]["konstantopoulos2011"]["columns"])
BERKEY = pd.DataFrame(MV["data"]["berkey1998"]["columns"])
V_BERKEY = np.array(MV["data"]["berkey1998"]["V"])
ASSINK = pd.DataFrame(MV["data"]["assink2016"]["columns"])
V_ASSINK = np.array(MV["data"]["assink2016"]["V"])


def synthetic_three_level(seed: int = 7, clusters: int = 40, per: int = 5) -> pd.DataFrame:
    """Synthetic (seeded) three-level data: ``per`` effects in each of ``clusters`` clusters."""
    rng = np.random.default_rng(seed)
    k = clusters * per
    cl = np.repeat(np.arange(clusters), per)
    vi = rng.uniform(0.01, 0.1, k)
    yi = (0.3 + rng.normal(0, math.sqrt(0.05), clusters)[cl] + rng.normal(0, math.sqrt(0.03), k)
          + rng.normal(0, np.sqrt(vi)))
    return pd.DataFrame({"yi": yi, "vi": vi, "cl": cl, "es": np.arange(k), "x": rng.normal(size=k)})


def _dense_ll(fit, reml: bool) -> float:
    """The (restricted) log-likelihood by dense k × k algebra (metafor's .ll.rma.mv), from the fit's M."""
    M = fit.marginal_vcov().toarray()
    X, y, k, p = fit.X, fit.yi, fit.k, fit.p
    W = np.linalg.inv(M)
    A = X.T @ W @ X
    b = np.linalg.solve(A, X.T @ W @ y)
    r = y - X @ b
    ld = np.linalg.slogdet(M)[1]
    if not reml:
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * ld - 0.5 * r @ W @ r
    return (-0.5 * (k - p) * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(X.T @ X)[1] - 0.5 * ld
            - 0.5 * np.linalg.slogdet(A)[1] - 0.5 * r @ W @ r)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_block_kernel_equals_dense_algebra(method):
    fit = rma_mv("yi", V_BERKEY, mods="~ outcome - 1", random="~ outcome | trial", struct="UN", data=BERKEY,
                 method=method)
    assert fit.ll == pytest.approx(_dense_ll(fit, method == "REML"), rel=1e-12)
    fit = rma_mv("yi", "vi", random="~ 1 | district/school", mods="~ year", data=KONST, method=method)
    # X'X has condition number ~1e9 here (year ~ 1990 beside the intercept): the log-determinants differ in rounding
    assert fit.ll == pytest.approx(_dense_ll(fit, method == "REML"), rel=1e-10)


@pytest.mark.parametrize("struct", ["CS", "HCS", "UN", "AR", "HAR", "DIAG"])
def test_analytic_gradient_equals_finite_differences(struct):
    df = ASSINK
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMAMVWarning)
        fit = rma_mv("yi", V_ASSINK, random=["~ 1 | id", "~ deltype | study"], struct=struct, data=df,
                     mods="~ pubstatus")
    spec = fit._spec
    obj = Objective(spec.kernel, spec.structs, spec.n_inner, spec.fixed, spec.reml)
    rng = np.random.default_rng(3)
    theta = rng.normal(-1.0, 0.5, obj.n_par)
    f, g = obj(theta)
    h = 1e-6
    fd = np.array([(obj(theta + h * e, gradient=False)[0] - obj(theta - h * e, gradient=False)[0]) / (2 * h)
                   for e in np.eye(obj.n_par)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_marginal_vcov_and_weight_matrix_protocol():
    """What robust() relies on: k × k sparse M and M⁻¹ in the data's order, block-diagonal over ``clusters``."""
    fit = rma_mv("yi", "vi", random="~ 1 | district/school", data=KONST)
    M, W = fit.marginal_vcov(), fit.weight_matrix()
    assert sparse.issparse(M) and sparse.issparse(W) and M.shape == W.shape == (fit.k, fit.k)
    np.testing.assert_allclose((W @ M).toarray(), np.eye(fit.k), atol=1e-12)
    assert fit.n_clusters == KONST["district"].nunique() == 11
    i, j = M.nonzero()
    assert np.all(fit.clusters[i] == fit.clusters[j])
    # M by its definition: V + sigma2_1 [same district] + sigma2_2 [same school]
    d = KONST["district"].to_numpy()
    s = KONST["school"].to_numpy()
    dense = (np.diag(KONST["vi"]) + fit.sigma2[0] * (d[:, None] == d[None, :])
             + fit.sigma2[1] * ((d[:, None] == d[None, :]) & (s[:, None] == s[None, :])))
    np.testing.assert_allclose(M.toarray(), dense, rtol=1e-14)
    # the GLS estimate from the protocol's pieces
    X, y = fit.X, fit.yi
    b = np.linalg.solve(X.T @ (W @ X), X.T @ (W @ y))
    np.testing.assert_allclose(b, fit.beta, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(X.T @ (W @ X)), fit.vb, rtol=1e-10)
    assert [len(b) for b in fit.cluster_blocks()] == list(np.bincount(fit.clusters))


def test_ways_of_giving_V_agree():
    dense = rma_mv("yi", V_BERKEY, mods="~ outcome - 1", random="~ outcome | trial", struct="UN", data=BERKEY)
    blocks = [V_BERKEY[i:i + 2, i:i + 2] for i in range(0, 10, 2)]
    for V in (sparse.csr_array(V_BERKEY), blocks):
        other = rma_mv("yi", V, mods="~ outcome - 1", random="~ outcome | trial", struct="UN", data=BERKEY)
        np.testing.assert_allclose(other.beta, dense.beta, rtol=1e-12)
        np.testing.assert_allclose(other.tau2, dense.tau2, rtol=1e-9)
    # a diagonal matrix is the vector of variances
    a = rma_mv("yi", np.diag(KONST["vi"]), random="~ 1 | district/school", data=KONST)
    b = rma_mv(KONST["yi"], KONST["vi"].to_numpy(), random="~ 1 | district/school", data=KONST)
    assert a.ll == b.ll and np.array_equal(a.sigma2, b.sigma2)


def test_array_moderators_equal_the_formula():
    f = rma_mv("yi", "vi", random="~ 1 | district/school", mods="~ year", data=KONST)
    a = rma_mv("yi", "vi", random="~ 1 | district/school", mods=KONST[["year"]], data=KONST)
    assert a.coef_names == f.coef_names == ("intrcpt", "year")
    np.testing.assert_allclose(a.beta, f.beta, rtol=1e-12)


def test_random_intercept_per_estimate_is_rma_reml():
    """~ 1 | id with one level per estimate is the random-effects model: τ² equals rma's REML estimate."""
    df = KONST.assign(id=np.arange(len(KONST)))
    mv = rma_mv("yi", "vi", random="~ 1 | id", data=df, mods="~ year")
    uni = rma(df["yi"], df["vi"], mods=df["year"])
    assert mv.sigma2[0] == pytest.approx(uni.tau2, rel=1e-8)
    np.testing.assert_allclose(mv.beta, np.atleast_1d(uni.beta), rtol=1e-7)
    assert mv.ll == pytest.approx(uni.ll, rel=1e-10)


def test_categorical_inner_factor_keeps_its_level_order():
    df = BERKEY.assign(outcome=pd.Categorical(BERKEY["outcome"], categories=["PD", "AL"]))
    fit = rma_mv("yi", V_BERKEY, mods="~ outcome - 1", random="~ outcome | trial", struct="HCS", data=df)
    ref = rma_mv("yi", V_BERKEY, mods="~ outcome - 1", random="~ outcome | trial", struct="HCS", data=BERKEY)
    assert fit.g_levels == ("PD", "AL") and ref.g_levels == ("AL", "PD")
    np.testing.assert_allclose(fit.tau2, ref.tau2[::-1], rtol=1e-7)


def test_variance_at_the_boundary_is_exactly_zero():
    """Synthetic (seeded) data without a within-cluster component: σ²₂ is estimated at exactly 0, and the fit's
    log-likelihood is not below the model's at a small positive σ²₂."""
    rng = np.random.default_rng(11)
    cl = np.repeat(np.arange(30), 4)
    vi = rng.uniform(0.05, 0.1, len(cl))
    yi = rng.normal(0, 0.4, 30)[cl] + rng.normal(0, np.sqrt(vi)) * 0.5
    df = pd.DataFrame({"yi": yi, "vi": vi, "cl": cl, "es": np.arange(len(cl))})
    fit = rma_mv("yi", "vi", random="~ 1 | cl/es", data=df)
    assert fit.sigma2[1] == 0.0 and fit.sigma2[0] > 0.05
    near = rma_mv("yi", "vi", random="~ 1 | cl/es", data=df, sigma2=[None, 1e-6])
    assert fit.ll >= near.ll


def test_three_level_model_uses_one_block_per_cluster():
    df = synthetic_three_level(clusters=60, per=7)
    fit = rma_mv("yi", "vi", random="~ 1 | cl/es", mods="~ x", data=df)
    assert fit.n_clusters == 60 and fit.converged
    assert [g.idx.shape for g in fit._spec.kernel.groups] == [(60, 7)]
    assert fit.ll == pytest.approx(_dense_ll(fit, True), rel=1e-12)


def test_equal_effects_model_ignores_random_with_a_warning():
    with pytest.warns(RMAMVWarning, match="disregarded"):
        fit = rma_mv("yi", "vi", random="~ 1 | district", data=KONST, method="EE")
    w = 1 / KONST["vi"].to_numpy()
    assert fit.beta[0] == pytest.approx(np.sum(w * KONST["yi"]) / np.sum(w), rel=1e-13)
    assert fit.sigma2.size == 0 and "Variance Components: none" in str(fit)


def test_t_tests_use_k_minus_p_degrees_of_freedom():
    fit = rma_mv("yi", "vi", random="~ 1 | district/school", mods="~ year", data=KONST, test="t")
    assert np.all(fit.ddf == fit.k - fit.p) and fit.QM_df == (1.0, float(fit.k - fit.p))


def test_single_level_factor_is_fixed_at_zero_with_metafors_warning():
    df = KONST.assign(one=1)
    with pytest.warns(RMAMVWarning, match="Single-level factor"):
        fit = rma_mv("yi", "vi", random=["~ 1 | one", "~ 1 | district"], data=df)
    assert fit.sigma2[0] == 0 and fit.vc_fix["sigma2"] == (True, False)
    assert fit.n_clusters == 11  # the fixed-at-0 factor links nothing


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(V=np.ones(3)), ValueError, "yi has 56 values but V has 3"),
    (dict(V=np.triu(np.ones((56, 56)))), ValueError, "symmetric"),
    (dict(random="~ 1 | nosuchcolumn"), ValueError, "'nosuchcolumn' is not a column"),
    (dict(random="1 | district"), ValueError, "not of the form"),
    (dict(random="~ 1 | district/school", struct="XYZ"), ValueError, "unknown struct"),
    (dict(method="DL"), ValueError, "unknown method"),
    (dict(test="knha"), ValueError, "unknown test"),
    (dict(random="~ 1 | district/school", sigma2=[0.1, 0.2, 0.3]), ValueError, "sigma2 has 3 value"),
    (dict(random="~ 1 | district/school", sigma2=[-0.1, None]), ValueError, "must be in"),
    (dict(mods="~ nosuch"), ValueError, "cannot build the model matrix"),
    (dict(control={"nosuch": 1}), ValueError, "unknown control"),
])
def test_bad_input_is_refused_with_a_message(kwargs, exc, match):
    args = dict(V=KONST["vi"].to_numpy(), random="~ 1 | district", data=KONST) | kwargs
    V = args.pop("V")
    with pytest.raises(exc, match=match):
        rma_mv("yi", V, **args)


def test_missing_values_are_refused_by_position():
    y = KONST["yi"].to_numpy().copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"positions \[3\]"):
        rma_mv(y, KONST["vi"].to_numpy(), random="~ 1 | district", data=KONST)
    v = KONST["vi"].to_numpy().copy()
    v[5] = -1
    with pytest.raises(ValueError, match="must not be negative"):
        rma_mv("yi", v, random="~ 1 | district", data=KONST)
    df = KONST.assign(district=KONST["district"].astype(float))
    df.loc[2, "district"] = np.nan
    with pytest.raises(ValueError, match=r"'district' is missing at positions \[2\]"):
        rma_mv("yi", "vi", random="~ 1 | district", data=df)


def test_structure_G_definitions():
    s = Structure("AR", 3, np.array([np.nan]), np.array([np.nan]))
    G = s.G(np.array([2.0]), np.array([0.5]))
    np.testing.assert_allclose(G, 2 * np.array([[1, .5, .25], [.5, 1, .5], [.25, .5, 1]]))
    s = Structure("HCS", 2, np.full(2, np.nan), np.array([np.nan]))
    np.testing.assert_allclose(s.G(np.array([1.0, 4.0]), np.array([0.5])), [[1, 1], [1, 4]])


def test_result_is_immutable_and_prints():
    fit = rma_mv("yi", "vi", random="~ 1 | district/school", data=KONST)
    with pytest.raises(AttributeError):
        fit.k = 3  # type: ignore[misc]
    assert str(fit) == fit.summary() and "sigma^2.2" in str(fit)
    assert list(fit.to_frame().columns) == ["estimate", "se", "zval", "pval", "ci_lb", "ci_ub"]


def test_remlf_false_leaves_out_half_log_det_XtX():
    """metafor's control REMLf=FALSE: the REML log-likelihood without ½ log|X'X|; the estimates do not change."""
    a = rma_mv("yi", "vi", random="~ 1 | district/school", mods="~ year", data=KONST)
    b = rma_mv("yi", "vi", random="~ 1 | district/school", mods="~ year", data=KONST, control={"REMLf": False})
    half = 0.5 * np.linalg.slogdet(a.X.T @ a.X)[1]
    assert a.ll - b.ll == pytest.approx(half, rel=1e-10)
    np.testing.assert_allclose(b.sigma2, a.sigma2, rtol=1e-7)
