"""One kernel per numerical step (engine.kernels), shared by `rma` (numpy), `rma_batch` (numba) and the
batched meta-regression `batch_mods.fit_permuted` (numba):

* the three paths give the same fit on the same data (relative 1e-10), for REML, ML, DL and PM, including
  data where Fisher scoring needs many steps, where tau^2 is on the boundary, where metafor's ll0check fires,
  where PM must widen its search beyond tau^2 = 100, and where Fisher scoring does not converge;
* the scalar kernels against closed forms (explicit P matrices) and finite differences of the log-likelihood;
* one vocabulary, one set of tolerances, and `rma` without numba.
"""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize

from metaexercise.engine import kernels
from metaexercise.engine.model import rma
from metaexercise.engine.tau2 import Control
from metaexercise.errors import ConvergenceError

METHODS = ("REML", "ML", "DL", "PM")
RTOL = 1e-10
#: ML/REML maxima on the boundary are approached by step-halving, which stops within the threshold of 0
#: (tau^2 ~ 1e-13, not exactly 0); there tau^2 is compared absolutely, to the threshold.
TAU2_ATOL = kernels.THRESHOLD

# --------------------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------------------


def _generated(seed: int, k: int | None = None, tau2: float | None = None):
    """The generator with which the many-step and non-converging cases were found (see DATA)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(5, 40)) if k is None else k
    v = rng.uniform(0.05, 1.0, k)
    t = rng.choice([0.002, 0.01, 0.03]) if tau2 is None else tau2
    y = rng.normal(0.2, np.sqrt(v + t))
    x = rng.normal(size=k)
    return y, v, x


def _data(name: str):
    """(yi, vi, moderators k x q)."""
    if name.startswith("seed"):
        y, v, x = _generated(int(name[4:].split("_")[0]))
        rng = np.random.default_rng(99)
        return y, v, np.column_stack([x, rng.integers(0, 2, y.shape[0])])
    if name == "random_k12":
        rng = np.random.default_rng(1)
        v = rng.uniform(0.01, 0.2, 12)
        y = rng.normal(-0.3, np.sqrt(v + 0.05))
        return y, v, np.column_stack([rng.normal(size=12), rng.integers(0, 2, 12)])
    if name == "large_k700":  # rma's sums switch from one matrix product to three above k = 512
        rng = np.random.default_rng(2)
        v = rng.uniform(0.005, 0.3, 700)
        y = rng.normal(0.1, np.sqrt(v + 0.02))
        return y, v, np.column_stack([rng.normal(size=700), rng.integers(0, 2, 700)])
    if name == "homogeneous":  # Q < k - 1: DL and PM at exactly 0, ML and REML on the boundary
        y = np.array([0.10, 0.12, 0.11, 0.09, 0.10, 0.105])
        v = np.array([0.05, 0.04, 0.06, 0.05, 0.03, 0.07])
        return y, v, np.column_stack([np.arange(6.0), [0, 1, 0, 1, 0, 1]])
    if name == "spread_pm_above_100":  # PM's tau^2 > 100: the search widens to 10 mad(yi)^2, as metafor
        y = np.array([-48.0, -20.5, -3.0, 1.5, 12.0, 30.5, 44.0, 51.0])
        v = np.array([0.5, 1.0, 2.0, 0.8, 1.5, 0.7, 1.2, 0.9])
        return y, v, np.column_stack([np.arange(8.0), [0, 0, 1, 1, 0, 1, 0, 1]])
    raise KeyError(name)


#: seed25: REML Fisher scoring takes ~70 steps (k = 22); seed103: ML ~25; seed220 with a moderator: ML ~150.
DATA = ["random_k12", "large_k700", "homogeneous", "spread_pm_above_100", "seed25", "seed103", "seed220"]
#: Data where Fisher scoring climbs to a local maximum below ll(0): metafor's ll0check sets tau^2 = 0.
LL0_FIRES = {
    "REML": ([-0.131773, 1.935006, -0.067825, 0.878856], [0.042082, 0.75059, 0.004461, 0.56166]),
    "ML": ([0.739717, -0.58663, -0.937856, 0.801913], [0.239032, 0.002643, 0.233781, 1.07495]),
}


def _three_paths(y, v, method):
    from metaexercise.engine.batch import rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    k = y.shape[0]
    fit = rma(y, v, method=method)
    row = rma_batch(y[None, :], v[None, :], method)
    beta, _z, _qm, tau2, conv = fit_permuted(y, v, np.ones((k, 1)), np.arange(k)[None, :], method)
    assert row.converged[0] and conv[0]
    return fit, (row.estimate[0], row.tau2[0]), (beta[0, 0], tau2[0])


def _assert_same(name, want, got):
    est_w, tau2_w = want
    est_g, tau2_g = got
    np.testing.assert_allclose(est_g, est_w, rtol=RTOL, err_msg=f"{name}: estimate")
    np.testing.assert_allclose(tau2_g, tau2_w, rtol=RTOL, atol=TAU2_ATOL, err_msg=f"{name}: tau2")


# --------------------------------------------------------------------------------------------------
# the three paths agree
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", DATA)
def test_rma_rma_batch_and_fit_permuted_agree_intercept_only(name, method):
    y, v, _ = _data(name)
    fit, batch, mods = _three_paths(y, v, method)
    want = (float(fit.estimate), fit.tau2)
    _assert_same(f"rma_batch {name}", want, batch)
    _assert_same(f"fit_permuted {name}", want, mods)
    if name == "homogeneous":
        assert fit.tau2 <= TAU2_ATOL and (method in ("REML", "ML") or fit.tau2 == 0.0)
    if name == "spread_pm_above_100" and method == "PM":
        assert fit.tau2 > 100
    if name == "seed25" and method == "REML":
        assert fit.iterations >= 50  # a long Fisher-scoring climb before the Newton finish


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("name", DATA)
def test_fit_permuted_identity_equals_rma_with_moderators(name, q, method):
    from metaexercise.engine.batch_mods import fit_permuted

    y, v, mods = _data(name)
    M = mods[:, :q]
    X = np.column_stack([np.ones(y.shape[0]), M])
    beta, zval, _qm, tau2, conv = fit_permuted(y, v, X, np.arange(y.shape[0])[None, :], method)
    try:
        fit = rma(y, v, mods=M, method=method)
    except ConvergenceError:  # seed25 with its moderator: REML Fisher scoring oscillates, on both paths
        assert not conv[0]
        return
    assert conv[0]
    np.testing.assert_allclose(beta[0], fit.beta, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(zval[0], fit.zval, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tau2[0], fit.tau2, rtol=RTOL, atol=TAU2_ATOL)
    if name == "seed220" and method == "ML" and q == 1:
        assert fit.iterations >= 100  # meta-regression keeps pure Fisher scoring: a long linear climb


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_the_ll0_check_fires_alike_on_all_three_paths(method):
    y, v = (np.array(a) for a in LL0_FIRES[method])
    stuck = rma(y, v, method=method, control=Control(ll0check=False))
    assert stuck.tau2 > 0.1  # Fisher scoring ends at a local maximum ...
    fit, batch, mods = _three_paths(y, v, method)
    # ... which ll(0) beats by far more than LL0_TOL: tau^2 = 0 on every path
    assert fit.tau2 == 0.0 and batch[1] == 0.0 and mods[1] == 0.0
    _assert_same("rma_batch", (float(fit.estimate), 0.0), batch)
    _assert_same("fit_permuted", (float(fit.estimate), 0.0), mods)


def test_oscillating_fisher_scoring_is_safeguarded_alike_on_all_three_paths():
    # seed 35 of the generator: REML Fisher scoring oscillates (as metafor's does: its ratio of successive
    # distances from the maximum is ~0.99) and never settles within maxiter; kernels.safeguard takes over
    from metaexercise.engine.batch import BatchControl, rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    y, v, _ = _generated(35)
    fit, batch, mods = _three_paths(y, v, "REML")
    _assert_same("rma_batch", (float(fit.estimate), fit.tau2), batch)
    _assert_same("fit_permuted", (float(fit.estimate), fit.tau2), mods)
    assert fit.iterations < 50
    # the maximum: the REML score is zero there (finite differences of the log-likelihood)
    X = np.ones((y.shape[0], 1))
    h = 1e-6 * fit.tau2
    score = (_loglik(y, v, X, fit.tau2 + h, True) - _loglik(y, v, X, fit.tau2 - h, True)) / (2 * h)
    assert abs(score) < 1e-6
    # without the safeguard, metafor's algorithm: non-convergence, reported alike on all three paths (NaN in
    # rma_batch and fit_permuted, never the last iterate)
    with pytest.raises(ConvergenceError, match="did not converge"):
        rma(y, v, control=Control(safeguard=False))
    row = rma_batch(y[None, :], v[None, :], control=BatchControl(safeguard=False))
    *_, tau2, conv = fit_permuted(y, v, X, np.arange(y.shape[0])[None, :], safeguard=False)
    assert not row.converged[0] and not conv[0]
    assert row.iterations[0] == kernels.MAXITER + 1
    assert np.isnan([row.tau2[0], row.estimate[0], row.se[0], row.ci_lb[0], row.pi_ub[0], tau2[0]]).all()


# --------------------------------------------------------------------------------------------------
# the scalar kernels: closed forms and finite differences
# --------------------------------------------------------------------------------------------------


def _example(p: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    k = 9
    v = rng.uniform(0.02, 0.4, k)
    y = rng.normal(0.3, np.sqrt(v + 0.1))
    X = np.ones((k, 1)) if p == 1 else np.column_stack([np.ones(k), rng.normal(size=(k, p - 1))])
    return y, v, X


def _P(v, X, tau2):
    W = np.diag(1 / (v + tau2))
    return W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W


def _loglik(y, v, X, tau2, reml):
    """ML or REML log-likelihood of the random-effects model (constants dropped), straight from matrices."""
    W = np.diag(1 / (v + tau2))
    P = _P(v, X, tau2)
    ll = -0.5 * np.sum(np.log(v + tau2)) - 0.5 * y @ P @ y
    if reml:
        ll -= 0.5 * np.linalg.slogdet(X.T @ W @ X)[1]
    return ll


def _terms(y, v, X, tau2):
    """Σw, Σw², tr P, tr PP, Q, y'PPy, y'PPPy from explicit matrices."""
    w = 1 / (v + tau2)
    P = _P(v, X, tau2)
    return w.sum(), w @ w, np.trace(P), np.trace(P @ P), y @ P @ y, y @ P @ P @ y, y @ P @ P @ P @ y


def test_intercept_terms_equal_the_traces_of_P():
    y, v, X = _example(1)
    tau2 = 0.07
    w = 1 / (v + tau2)
    mu = (w @ y) / w.sum()
    r = y - mu
    sw, sw2, trp, trpp, q, ypp, yppp = _terms(y, v, X, tau2)
    got = kernels.intercept_terms(sw, sw2, np.sum(w**3), np.sum(w**3 * r**2), np.sum(w**2 * r))
    np.testing.assert_allclose(got, (trp, trpp, yppp), rtol=1e-12)
    np.testing.assert_allclose(np.sum(w**2 * r**2), ypp, rtol=1e-12)
    # sums about another centre (the unweighted mean), shifted to the weighted mean
    c = y - y.mean()
    m = mu - y.mean()
    shifted = kernels.shifted_square_sum(np.sum(w**2), np.sum(w**2 * c), np.sum(w**2 * c**2), m)
    np.testing.assert_allclose(shifted, ypp, rtol=1e-12)
    assert math.isnan(kernels.intercept_terms(sw, sw2, 1.0, math.nan, math.nan)[2])


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_fisher_and_newton_steps_are_score_over_information_by_finite_differences(method, p):
    y, v, X = _example(p)
    reml = method == "REML"
    code = kernels.METHOD_CODES[method]
    k = y.shape[0]
    for tau2 in (0.01, 0.08, 0.5):
        h = 1e-4 * tau2
        lm, l0, lp = (_loglik(y, v, X, tau2 + d, reml) for d in (-h, 0.0, h))
        score = (lp - lm) / (2 * h)
        observed = -(lp - 2 * l0 + lm) / h**2
        sw, sw2, trp, trpp, q, ypp, yppp = _terms(y, v, X, tau2)
        expected = 0.5 * (trpp if reml else sw2)
        fisher, newton = kernels.scoring_steps(code, k, p, sw, sw2, trp, trpp, q, ypp, yppp)
        np.testing.assert_allclose(fisher, score / expected, rtol=1e-7)
        if observed > 0:
            np.testing.assert_allclose(newton, score / observed, rtol=1e-5)
        else:
            assert math.isnan(newton)
        # without y'PPPy (outside the Newton phase) there is no Newton step
        assert math.isnan(kernels.scoring_steps(code, k, p, sw, sw2, trp, trpp, q, ypp, math.nan)[1])


def test_empirical_bayes_step_is_morris_formula():
    y, v, X = _example(2)
    sw, sw2, trp, trpp, q, ypp, yppp = _terms(y, v, X, 0.1)
    fisher, newton = kernels.scoring_steps(kernels.EB, 9, 2, sw, sw2, trp, trpp, q, ypp, yppp)
    assert fisher == pytest.approx((q * 9 / 7 - 9) / sw, rel=1e-15) and math.isnan(newton)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_ll0_difference_is_the_log_likelihood_difference(method, p):
    y, v, X = _example(p)
    reml = method == "REML"
    tau2 = 0.2
    want = _loglik(y, v, X, 0.0, reml) - _loglik(y, v, X, tau2, reml)
    W0, W1 = np.diag(1 / v), np.diag(1 / (v + tau2))
    logdet_ratio = np.linalg.slogdet(X.T @ W1 @ X)[1] - np.linalg.slogdet(X.T @ W0 @ X)[1]
    got = kernels.ll0_difference(kernels.METHOD_CODES[method], np.sum(np.log1p(tau2 / v)),
                                 y @ _P(v, X, 0.0) @ y, y @ _P(v, X, tau2) @ y, logdet_ratio)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert kernels.ll0_resets(kernels.LL0_TOL * 1.01) and not kernels.ll0_resets(kernels.LL0_TOL)
    assert kernels.ll0_due(kernels.REML, 2e-12, 1e-12) and not kernels.ll0_due(kernels.REML, 1e-12, 1e-12)
    assert not kernels.ll0_due(kernels.DL, 1.0, 1e-12) and not kernels.ll0_due(kernels.EB, 1.0, 1e-12)


@pytest.mark.parametrize("p", [1, 3])
def test_hedges_start_and_dl_against_their_closed_forms(p):
    y, v, X = _example(p)
    k = y.shape[0]
    P0 = np.eye(k) - X @ np.linalg.inv(X.T @ X) @ X.T
    rss, trpv = y @ P0 @ y, np.trace(P0 @ np.diag(v))
    he = (rss - trpv) / (k - p)
    assert kernels.hedges_start(rss, trpv, k, p, -np.inf) == pytest.approx(he, rel=1e-15)
    assert kernels.hedges_start(rss, trpv, k, p, he + 1) == he + 1  # truncated at the floor
    assert kernels.hedges_start(math.nan, trpv, k, p, 0.0) == 0.0
    if p == 1:
        assert trpv == pytest.approx(v.sum() - v.sum() / k, rel=1e-13)
    P = _P(v, X, 0.0)
    dl = (y @ P @ y - (k - p)) / np.trace(P)
    assert kernels.dl_tau2(y @ P @ y, k, p, np.trace(P), -np.inf) == pytest.approx(dl, rel=1e-15)
    assert kernels.dl_tau2(0.0, k, p, np.trace(P), 0.0) == 0.0


def test_next_tau2_halves_steps_switches_to_newton_and_ignores_bad_steps():
    # step-halving: a step to below the bound is halved until it lands inside
    tau2, change, newton = kernels.next_tau2(0.1, -0.5, math.nan, False, 1.0, 0.0)
    assert tau2 == pytest.approx(0.1 - 0.5 / 8) and change == pytest.approx(0.5 / 8) and not newton
    # Newton is taken only once on, finite and inside the bounds; small changes turn it on
    assert kernels.next_tau2(0.1, 0.02, 0.03, False, 1.0, 0.0)[0] == pytest.approx(0.12)
    assert kernels.next_tau2(0.1, 0.02, 0.03, True, 1.0, 0.0)[0] == pytest.approx(0.13)
    assert kernels.next_tau2(0.1, 0.02, -0.3, True, 1.0, 0.0)[0] == pytest.approx(0.12)
    assert kernels.next_tau2(0.1, 0.02, math.inf, True, 1.0, 0.0)[0] == pytest.approx(0.12)
    assert kernels.next_tau2(0.1, 1e-5, math.nan, False, 1.0, 0.0)[2]
    assert not kernels.next_tau2(0.1, 2 * kernels.NEWTON_SWITCH, math.nan, False, 1.0, 0.0)[2]
    # stepadj scales; a NaN or infinite step is no step (change 0: Fisher scoring stops)
    assert kernels.next_tau2(0.1, 0.02, math.nan, False, 0.5, 0.0)[0] == pytest.approx(0.11)
    for bad in (math.nan, math.inf, -math.inf):
        assert kernels.next_tau2(0.1, bad, math.nan, False, 1.0, 0.0)[:2] == (0.1, 0.0)
    # a start below the bound cannot loop forever
    assert kernels.next_tau2(-1.0, -0.5, math.nan, False, 1.0, 0.0)[0] == -1.0


def test_pm_root_step_newton_inside_bisection_outside_and_the_full_search():
    # Newton inside the bracket; f > 0 moves the lower end up
    assert kernels.pm_root_step(1.0, 2.0, -4.0, 0.0, 10.0) == (1.5, 1.0, 10.0, False)
    # a Newton step out of the bracket bisects; f < 0 moves the upper end down
    assert kernels.pm_root_step(4.0, -1.0, -0.1, 0.0, 10.0) == (2.0, 0.0, 4.0, False)
    # no usable slope: bisect
    assert kernels.pm_root_step(1.0, 1.0, 0.0, 0.0, 3.0)[0] == 2.0
    # converged when the step is at machine precision
    assert kernels.pm_root_step(1.0, 1e-17, -1.0, 0.0, 2.0)[3]
    # the whole search on a real Q(tau^2), against Brent's method
    y, v, X = _example(1)
    k = y.shape[0]

    def q_and_slope(t):
        P = _P(v, X, t)
        return y @ P @ y, -(y @ P @ P @ y)

    x, lo, hi = 0.0, 0.0, 100.0
    q, dq = q_and_slope(x)
    for _ in range(100):
        x, lo, hi, done = kernels.pm_root_step(x, q - (k - 1), dq, lo, hi)
        if done:
            break
        q, dq = q_and_slope(x)
    assert done
    root = optimize.brentq(lambda t: q_and_slope(t)[0] - (k - 1), 0.0, 100.0, xtol=1e-15, rtol=8.9e-16)
    np.testing.assert_allclose(x, root, rtol=1e-13)
    assert kernels.pm_upper(1.0) == kernels.PM_UPPER and kernels.pm_upper(5.0) == 250.0


def test_knha_factor_is_zero_below_machine_epsilon_as_metafor():
    assert kernels.knha_factor(2.0, 4) == 0.5
    assert kernels.knha_factor(np.finfo(float).eps, 4) == 0.0
    assert kernels.knha_factor(2 * np.finfo(float).eps, 4) > 0.0


def test_numba_compiled_kernels_equal_the_python_ones():
    from metaexercise.engine import batch, batch_mods

    args = (kernels.REML, 9, 1, 12.5, 30.1, 10.2, 21.7, 8.3, 11.9, 40.2)
    for compiled in (batch._scoring_steps, batch_mods._scoring_steps):
        np.testing.assert_allclose(compiled(*args), kernels.scoring_steps(*args), rtol=1e-14)
    for a in [(0.1, -0.5, math.nan, False, 1.0, 0.0), (0.1, 0.02, 0.03, True, 1.0, 0.0)]:
        assert batch._next_tau2(*a) == kernels.next_tau2(*a)
    assert batch._pm_root_step(4.0, -1.0, -0.1, 0.0, 10.0) == kernels.pm_root_step(4.0, -1.0, -0.1, 0.0, 10.0)


def test_batch_median_and_mad_equal_numpy_and_r():
    from metaexercise.engine import batch

    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 4, 7, 8, 31, 64):
        for a in (rng.normal(size=n), rng.integers(0, 3, n).astype(float), np.zeros(n)):
            buf = np.empty(n)
            want = kernels.MAD_CONSTANT * np.median(np.abs(a - np.median(a)))
            assert batch._mad(a, n, buf) == want
            buf[:] = a
            assert batch._median(buf, n) == np.median(a)


# --------------------------------------------------------------------------------------------------
# one vocabulary, one set of tolerances, rma without numba
# --------------------------------------------------------------------------------------------------


def test_tolerances_are_defined_once():
    from metaexercise.engine.batch import BatchControl

    assert kernels.LL0_TOL == np.finfo(float).eps ** 0.25 == 1.220703125e-4
    c, b = Control(), BatchControl()
    assert (c.threshold, c.maxiter, c.stepadj, c.tol) == (kernels.THRESHOLD, kernels.MAXITER, kernels.STEPADJ,
                                                           kernels.ROOT_TOL)
    assert (b.threshold, b.maxiter) == (kernels.THRESHOLD, kernels.MAXITER)


def test_one_vocabulary():
    from metaexercise.engine import model, permutation, simulate, tau2
    from metaexercise.engine.batch import rma_batch

    assert set(tau2.ESTIMATORS) == set(kernels.TAU2_ESTIMATORS)
    assert set(model.METHODS) == set(kernels.METHODS) and set(model.TESTS) == set(kernels.TESTS)
    assert simulate.ESTIMATORS == kernels.BATCH_METHODS
    assert set(kernels.BATCH_METHODS) < set(kernels.MODS_METHODS) <= set(kernels.METHOD_CODES)
    assert len(set(kernels.METHOD_CODES.values())) == len(kernels.METHOD_CODES)
    y, v = np.array([[0.1, 0.3, 0.2]]), np.array([[0.01, 0.02, 0.015]])
    with pytest.raises(ValueError, match="EB"):
        rma_batch(y, v, "EB")
    with pytest.raises(ValueError, match="test='t'"):
        permutation.permutest_arrays(y[0], v[0], test="t")


def test_rma_does_not_import_numba():
    code = ("import sys, metaexercise; metaexercise.rma([0.1, 0.3, 0.2], [0.01, 0.02, 0.015]); "
            "metaexercise.rma([0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.015, 0.03], method='PM'); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
