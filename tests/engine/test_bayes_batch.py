"""predictive_intervals, the batched Bayesian prediction intervals of the coverage study, against bayesmeta's
adaptive integration (row by row), and its handling of padding and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from metaexercise.engine.bayes import bayesmeta, predictive_intervals
from metaexercise.engine.bayes_priors import half_cauchy, half_normal, log_normal, rhodes_prior
from metaexercise.engine.prediction_coverage import review_vi_sampler


def _replicates(k, tau2, n, seed):
    """synthetic: SMD-sized meta-analyses from a seeded generator"""
    rng = np.random.default_rng(seed)
    vi = review_vi_sampler(rng, n, k)
    return rng.normal(-0.3, np.sqrt(vi + tau2)), vi


def _exact(yi, vi, prior, mu_prior=None):
    return np.array([bayesmeta(y, v, tau_prior=prior, mu_prior=mu_prior, interval_type="central")
                     .post_interval(theta_level=0.95) for y, v in zip(yi, vi, strict=True)])


@pytest.mark.parametrize(("k", "tau2"), [(3, 0.0), (3, 0.5), (8, 0.05), (25, 0.2), (30, 0.5)])
def test_batched_intervals_equal_bayesmeta_row_by_row(k, tau2):
    yi, vi = _replicates(k, tau2, 6, seed=100 * k + int(100 * tau2))
    lo, hi = predictive_intervals(yi, vi, half_normal(0.5))
    ex = _exact(yi, vi, half_normal(0.5))
    # measured: at most 1e-11 on these (SMD-sized) data with the default 16 x 8 nodes
    np.testing.assert_allclose(lo, ex[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(hi, ex[:, 1], rtol=0, atol=1e-9)


@pytest.mark.parametrize(("k", "tau2"), [(3, 0.0), (5, 0.1), (20, 0.5)])
def test_other_priors_and_a_normal_mu_prior(k, tau2):
    yi, vi = _replicates(k, tau2, 4, seed=3 + k)
    for prior, mu_prior in ((half_cauchy(0.5), None), (rhodes_prior("pain", "non-pharma", "placebo"), (0.0, 1.0)),
                            (log_normal(-2.0, 1.5), None)):
        lo, hi = predictive_intervals(yi, vi, prior, mu_prior=mu_prior)
        ex = _exact(yi, vi, prior, mu_prior)
        # measured: 1e-14 (half-Cauchy) to 3e-8 (log-normal, k = 20, tau^2 = 0.5)
        np.testing.assert_allclose(np.c_[lo, hi], ex, rtol=0, atol=1e-7)


def test_padding_and_level():
    yi, vi = _replicates(6, 0.1, 3, seed=9)
    lo, hi = predictive_intervals(yi, vi, half_normal(0.5), level=0.8)
    padded_y = np.hstack([yi, np.full((3, 2), np.nan)])
    padded_v = np.hstack([vi, np.full((3, 2), np.nan)])
    plo, phi = predictive_intervals(padded_y, padded_v, half_normal(0.5), level=0.8)
    np.testing.assert_allclose(np.c_[plo, phi], np.c_[lo, hi], rtol=0, atol=1e-13)
    ex = np.array([bayesmeta(y, v, tau_prior=half_normal(0.5)).post_interval(theta_level=0.8, method="central")
                   for y, v in zip(yi, vi, strict=True)])
    np.testing.assert_allclose(np.c_[lo, hi], ex, rtol=0, atol=1e-9)


def test_bad_input():
    yi, vi = _replicates(4, 0.1, 2, seed=1)
    with pytest.raises(ValueError, match="2-D arrays of one shape"):
        predictive_intervals(yi[0], vi[0], half_normal(0.5))
    bad = vi.copy()
    bad[1, 2] = -1
    with pytest.raises(ValueError, match=r"vi\[1, 2\] = -1.0"):
        predictive_intervals(yi, bad, half_normal(0.5))
    with pytest.raises(TypeError, match="TauPrior"):
        predictive_intervals(yi, vi, "halfnormal")
    with pytest.raises(ValueError, match="has no study"):
        predictive_intervals(np.full((1, 3), np.nan), np.full((1, 3), np.nan), half_normal(0.5))
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        predictive_intervals(yi, vi, half_normal(0.5), level=95)
