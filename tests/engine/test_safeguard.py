"""Fisher scoring that oscillates (hardening issue): kernels.safeguard, shared by `rma`, `rma_batch` and the
batched meta-regression, brings every intercept-only ML/REML fit to the likelihood maximum.

* The data sets on which metafor 3.8.1's Fisher scoring does not converge (tests/reference/robustness.json,
  drawn by make_robustness_reference.R): our fit equals metafor's with damped steps (stepadj = 0.5), on
  all three paths; without the safeguard (Control(safeguard=False), metafor's algorithm) they fail.
* At least 20 formerly non-converging rows of 100,000 random k = 30 data sets (yi ~ N(0, vi + tau^2),
  vi ~ chi^2(4)/40, tau^2 ~ U(0, 0.5)): the score is zero there (or tau^2 = 0 with a negative score) and
  the log-likelihood is at least that of the best point of a fine grid; the rows that converged without the
  safeguard keep their answers.
* The scalar kernels: safeguard, converged, rescale_exponent, dominated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from metaexercise.engine import kernels
from metaexercise.engine.model import rma
from metaexercise.engine.tau2 import Control
from metaexercise.errors import ConvergenceError

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "robustness.json"


def _first(x) -> float:
    return float(np.atleast_1d(x)[0])


@pytest.fixture(scope="module")
def nonconvergence() -> list[dict]:
    return json.loads(REFERENCE.read_text())["nonconvergence"]


def loglik(y: np.ndarray, v: np.ndarray, tau2: np.ndarray, reml: bool) -> np.ndarray:
    """ML or REML log-likelihood of the intercept-only model at each tau2 (constants dropped)."""
    t = np.atleast_1d(tau2)[:, None]
    w = 1 / (v[None, :] + t)
    sw = w.sum(axis=1)
    mu = (w * y).sum(axis=1) / sw
    q = (w * (y[None, :] - mu[:, None]) ** 2).sum(axis=1)
    ll = -0.5 * np.log(v[None, :] + t).sum(axis=1) - 0.5 * q
    return ll - 0.5 * np.log(sw) if reml else ll


def assert_at_maximum(y, v, tau2, reml, where):
    """The score is zero at tau2 (relative to its two terms), or tau2 = 0 with a negative score; and no point
    of a fine grid has a higher likelihood."""
    w = 1 / (v + tau2)
    r = y - np.sum(w * y) / np.sum(w)
    a = float(np.sum((w * r) ** 2))
    b = float(np.sum(w) - np.sum(w * w) / np.sum(w)) if reml else float(np.sum(w))
    assert abs(a - b) <= 1e-9 * b or (tau2 <= kernels.THRESHOLD and a < b), f"{where}: score terms {a}, {b}"
    top = 4 * max(tau2, float(np.var(y)), 0.01)
    grid = np.linspace(0.0, top, 20_001)
    ll_grid = loglik(y, v, grid, reml)
    best = int(np.argmax(ll_grid))
    fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)], 2001)
    ll_best = max(float(ll_grid.max()), float(loglik(y, v, fine, reml).max()))
    assert float(loglik(y, v, tau2, reml)[0]) >= ll_best - 1e-12 * abs(ll_best), f"{where}: grid is higher"


# ------------------------------------------------------------------------------------------------------------
# metafor's non-converging data sets
# ------------------------------------------------------------------------------------------------------------


def test_metafor_nonconvergence_fixture_is_large_enough(nonconvergence):
    assert sum(e["method"] == "REML" for e in nonconvergence) >= 20
    assert sum(e["method"] == "ML" for e in nonconvergence) >= 8
    # every one fails in metafor with its defaults too, and converges there with stepadj = 0.5
    assert all(e.get("default_error") and "did not converge" in e["default_error"] for e in nonconvergence)
    assert all(e.get("stepadj") == 0.5 for e in nonconvergence)


def test_where_metafor_does_not_converge_all_three_paths_reach_its_damped_answer(nonconvergence):
    from metaexercise.engine.batch import BatchControl, rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    failed_before = 0
    for e in nonconvergence:
        y, v, method = np.array(e["yi"]), np.array(e["vi"]), e["method"]
        where = f"draw {e['draw']} {method}"
        try:
            rma(y, v, method=method, control=Control(safeguard=False))
        except ConvergenceError:
            failed_before += 1
        fit = rma(y, v, method=method)
        assert fit.converged and fit.iterations < 30, where
        np.testing.assert_allclose(fit.tau2, _first(e["tau2"]), rtol=1e-10, err_msg=where)
        np.testing.assert_allclose(fit.estimate, _first(e["beta"]), rtol=1e-10, err_msg=where)
        np.testing.assert_allclose(float(fit.se), _first(e["se"]), rtol=1e-10, err_msg=where)
        np.testing.assert_allclose(fit.ll, _first(e["ll"]), rtol=1e-12, err_msg=where)
        assert_at_maximum(y, v, fit.tau2, method == "REML", where)
        row = rma_batch(y[None, :], v[None, :], method)
        assert row.converged[0], where
        np.testing.assert_allclose([row.tau2[0], row.estimate[0]], [fit.tau2, fit.estimate], rtol=1e-10)
        *_, tau2, conv = fit_permuted(y, v, np.ones((30, 1)), np.arange(30)[None, :], method)
        assert conv[0], where
        np.testing.assert_allclose(tau2[0], fit.tau2, rtol=1e-10, err_msg=where)
        # metafor's algorithm in rma_batch: not converged, NaN
        old = rma_batch(y[None, :], v[None, :], method, control=BatchControl(safeguard=False))
        assert old.converged[0] or np.isnan(old.tau2[0])
    # our Fisher scoring without the safeguard (with its Newton finish) fails on nearly all of them
    assert failed_before >= len(nonconvergence) - 3


# ------------------------------------------------------------------------------------------------------------
# 100,000 random data sets
# ------------------------------------------------------------------------------------------------------------


def _random_rows(n: int = 100_000, k: int = 30, seed: int = 20240601):
    rng = np.random.default_rng(seed)
    vi = rng.chisquare(4, (n, k)) / 40
    tau2 = rng.uniform(0, 0.5, (n, 1))
    return rng.normal(0.0, np.sqrt(vi + tau2)), vi


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_formerly_non_converging_random_fits_reach_the_likelihood_maximum(method):
    from metaexercise.engine.batch import BatchControl, rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    yi, vi = _random_rows()
    old = rma_batch(yi, vi, method, control=BatchControl(safeguard=False))
    new = rma_batch(yi, vi, method)
    formerly = np.flatnonzero(~old.converged)
    assert formerly.size >= (20 if method == "REML" else 10)
    # not the last iterate: NaN
    assert np.isnan(old.tau2[formerly]).all() and np.isnan(old.estimate[formerly]).all()
    assert np.isnan(old.pi_lb[formerly]).all() and np.isfinite(old.QE[formerly]).all()
    # now every row converges, the formerly non-converging ones in a few steps
    assert new.converged.all()
    assert new.iterations[formerly].max() < 30
    for r in formerly[:40]:
        y, v = yi[r], vi[r]
        where = f"row {r} {method}"
        fit = rma(y, v, method=method)
        np.testing.assert_allclose([fit.tau2, fit.estimate], [new.tau2[r], new.estimate[r]], rtol=1e-10,
                                   err_msg=where)
        *_, tau2, conv = fit_permuted(y, v, np.ones((30, 1)), np.arange(30)[None, :], method)
        assert conv[0] and tau2[0] == pytest.approx(fit.tau2, rel=1e-10), where
        assert_at_maximum(y, v, fit.tau2, method == "REML", where)
    # the rows that converged without the safeguard keep their answers (most take the very same path; those
    # that oscillated slowly or crept for over 100 steps reach the same maximum by safeguarded steps)
    kept = old.converged
    same_path = kept & (old.iterations == new.iterations)
    assert same_path.sum() >= 0.99 * kept.sum()
    np.testing.assert_array_equal(new.tau2[same_path], old.tau2[same_path])
    np.testing.assert_allclose(new.tau2[kept], old.tau2[kept], rtol=1e-10, atol=kernels.THRESHOLD)
    np.testing.assert_allclose(new.estimate[kept], old.estimate[kept], rtol=1e-10, atol=1e-12)


def test_meta_regression_safeguard_is_opt_in():
    # seed 25 of tests/engine/test_kernels.py's generator, with its moderators: REML Fisher scoring oscillates
    # (metafor's too); meta-regressions keep metafor's algorithm unless asked
    from test_kernels import _data

    from metaexercise.engine.batch_mods import fit_permuted

    y, v, mods = _data("seed25")
    X = np.column_stack([np.ones(y.shape[0]), mods[:, :1]])
    with pytest.raises(ConvergenceError, match=r"Control\(safeguard=True\)"):
        rma(y, v, mods=mods[:, :1])
    fit = rma(y, v, mods=mods[:, :1], control=Control(safeguard=True))
    assert fit.converged and fit.iterations < 100
    # the REML score of the meta-regression is zero: y'PPy = tr(P) at the fitted tau^2
    w = 1 / (v + fit.tau2)
    W = np.diag(w)
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
    assert y @ P @ P @ y == pytest.approx(np.trace(P), rel=1e-9)
    perm = np.arange(y.shape[0])[None, :]
    assert not fit_permuted(y, v, X, perm)[4][0]
    beta, _z, _qm, tau2, conv = fit_permuted(y, v, X, perm, safeguard=True)
    assert conv[0] and tau2[0] == pytest.approx(fit.tau2, rel=1e-10)
    np.testing.assert_allclose(beta[0], fit.beta, rtol=1e-9)


def test_tiny_scales_are_fitted_as_their_rescaled_data():
    # yi 2^-30 and vi 2^-60 times the base data: tau^2 is the base's times 2^-60 (metafor's absolute threshold
    # would stop Fisher scoring at its first step; the engine fits y/2^j, v/4^j and scales back)
    rng = np.random.default_rng(3)
    v = rng.uniform(0.01, 0.2, 15)
    y = rng.normal(0.2, np.sqrt(v + 0.05))
    c = 2.0**-30
    for method in ("REML", "ML", "EB"):
        base = rma(y, v, method=method)
        tiny = rma(y * c, v * c * c, method=method)
        assert tiny.tau2 == pytest.approx(base.tau2 * c * c, rel=1e-9), method
        assert tiny.estimate == pytest.approx(base.estimate * c, rel=1e-12), method
    from metaexercise.engine.batch import rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    for method in ("REML", "ML"):
        base = rma(y, v, method=method)
        row = rma_batch((y * c)[None, :], (v * c * c)[None, :], method)
        assert row.tau2[0] == pytest.approx(base.tau2 * c * c, rel=1e-9)
        *_, tau2, conv = fit_permuted(y * c, v * c * c, np.ones((15, 1)), np.arange(15)[None, :], method)
        assert conv[0] and tau2[0] == pytest.approx(base.tau2 * c * c, rel=1e-9)


# ------------------------------------------------------------------------------------------------------------
# the scalar kernels
# ------------------------------------------------------------------------------------------------------------


def test_safeguard_keeps_steps_inside_the_bracket_and_bisects_otherwise():
    sg = kernels.safeguard
    inf = math.inf
    # monotone climb: the proposal is taken, the bracket follows the score's sign
    assert sg(0.1, 0.2, 0.5, math.nan, -inf, inf, False, inf, 1, 0.0, True) == (0.2, pytest.approx(0.1), 0.1, inf,
                                                                                False)
    # (a) a proposal beyond a point on the other side of the maximum: bisect
    new, change, lo, hi, safe = sg(0.5, 0.05, -1.0, math.nan, 0.1, inf, False, 0.4, 3, 0.0, True)
    assert (lo, hi, safe) == (0.1, 0.5, True) and new == pytest.approx(0.3)
    # ... or take the Newton step if it lands inside and is at most half the previous change
    assert sg(0.5, 0.05, -1.0, -0.15, 0.1, inf, False, 0.4, 3, 0.0, True)[0] == pytest.approx(0.35)
    assert sg(0.5, 0.05, -1.0, -0.3, 0.1, inf, False, 0.4, 3, 0.0, True)[0] == pytest.approx(0.3)
    # (b) a step across more than OSCILLATION_RATIO of a two-sided bracket: an oscillation that decays slowly
    r = kernels.OSCILLATION_RATIO
    assert not sg(0.1, 0.1 + 0.9 * r * 0.4, 1.0, math.nan, 0.05, 0.5, False, 0.4, 3, 0.0, True)[4]
    assert sg(0.1, 0.1 + 1.01 * r * 0.4, 1.0, math.nan, 0.05, 0.5, False, 0.4, 3, 0.0, True)[4]
    # (c) beyond SAFEGUARD_AFTER iterations; the lower end is the bound tau2_min until a score is positive
    new, *_rest, safe = sg(0.2, 0.19, -1.0, math.nan, -inf, inf, False, 0.01, kernels.SAFEGUARD_AFTER + 1, 0.0, True)
    assert safe and new == pytest.approx(0.1)
    # disabled: metafor's step, always; a non-finite score stops (NaN change) either way
    assert sg(0.5, 0.05, -1.0, math.nan, 0.1, inf, False, 0.4, 3, 0.0, False)[:2] == (0.05, pytest.approx(0.45))
    for enabled in (True, False):
        assert math.isnan(sg(0.5, 0.6, math.nan, math.nan, 0.1, inf, False, 0.4, 3, 0.0, enabled)[1])


def test_converged_rescale_exponent_and_dominated():
    assert kernels.converged(1e-12, 0.5, 1e-12) and not kernels.converged(2e-12, 0.5, 1e-12)
    assert kernels.converged(1e30, 1e48, 1e-12)  # a few units in the last place of tau^2 ~ 1e48
    assert not kernels.converged(math.nan, 0.5, 1e-12) and not kernels.converged(math.inf, 0.5, 1e-12)
    assert kernels.rescale_exponent(0.1, 0.2) == 0 and kernels.rescale_exponent(kernels.SCALE_MIN, 0.0) == 0
    for s in (2.0**-21, 1e-12, 3e-40, 1e-50):
        j = kernels.rescale_exponent(s, s / 3)
        assert j < 0 and 0.5 <= s / 4.0**j < 2.0
    assert kernels.rescale_exponent(0.0, 0.0) == 0 and kernels.rescale_exponent(math.nan, math.nan) == 0
    assert not kernels.dominated(0.1, 30.0, 3) and not kernels.dominated(1e-9, 1e9 + 1e-8, 1)
    assert kernels.dominated(1e-9, 1e9 + 1.0, 2) and not kernels.dominated(1e-9, 1e9 + 20.0, 2)


def test_compiled_kernels_equal_the_python_ones():
    from metaexercise.engine import batch, batch_mods

    args = (0.5, 0.05, -1.0, -0.15, 0.1, math.inf, False, 0.4, 3, 0.0, True)
    for compiled in (batch._safeguard, batch_mods._safeguard):
        assert compiled(*args) == kernels.safeguard(*args)
    assert batch._rescale_exponent(3e-40, 1e-41) == kernels.rescale_exponent(3e-40, 1e-41)
    assert batch._dominated(1e-9, 1e9 + 1.0, 2) == kernels.dominated(1e-9, 1e9 + 1.0, 2)
    assert batch._converged(1e30, 1e48, 1e-12) == kernels.converged(1e30, 1e48, 1e-12)
