"""The prediction-interval coverage study: its coverage against coverage computed analytically, the nesting
of the interval methods, reproducibility, and the same table on one process or two Dask workers.

Analytic coverage with equal sampling variances v (known): the data enter every interval only through
ybar and S = sum (y - ybar)^2, independent, with S / (v + tau^2) ~ chi^2_{k-1}. REML gives
tau2_hat = max(0, S / (k - 1) - v), se^2 = (v + tau2_hat) / k, and the Knapp-Hartung factor
q = S / ((k - 1)(v + tau2_hat)); every interval is ybar +/- h(S) (the Bayesian predictive distribution is a
mixture of normals all centred at ybar, so it is symmetric too), and theta_new - ybar ~ N(0, tau^2 +
(v + tau^2) / k) independently of S. Hence coverage = E_S[2 Phi(h(S) / sqrt(tau^2 + (v + tau^2) / k)) - 1], a
one-dimensional integral done here by quadrature over chi^2 quantiles. (For the Bayesian interval h(S) comes
from `predictive_intervals` itself, whose accuracy test_bayes_batch.py checks; here the simulation and its
bookkeeping are under test.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from metaexercise.engine.bayes import predictive_intervals
from metaexercise.engine.prediction_coverage import (
    BAYES_PRIOR,
    METHODS,
    ConstantVI,
    pi_coverage,
    review_vi_sampler,
)

V = 0.04


def _analytic_coverage(k: int, tau2: float, v: float = V, level: float = 95) -> dict[str, float]:
    alpha = 1 - level / 100
    t, w = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(0, 1, 41)
    u = ((edges[:-1] + edges[1:])[:, None] / 2 + (np.diff(edges) / 2)[:, None] * t).ravel()
    wu = ((np.diff(edges) / 2)[:, None] * w).ravel()
    s = (v + tau2) * stats.chi2.ppf(u, k - 1)
    t2 = np.maximum(0.0, s / (k - 1) - v)
    se2 = (v + t2) / k
    q = s / ((k - 1) * (v + t2))
    z = special.ndtri(1 - alpha / 2)
    t1 = stats.t.ppf(1 - alpha / 2, k - 1)
    t2c = stats.t.ppf(1 - alpha / 2, k - 2)
    half = {"z": z * np.sqrt(t2 + se2), "t_k-1": t1 * np.sqrt(t2 + se2), "t_k-2": t2c * np.sqrt(t2 + se2),
            "knha": t1 * np.sqrt(t2 + q * se2)}
    # Bayesian: data with mean 0 and sum of squares S, equal variances
    e = np.arange(k) - (k - 1) / 2
    e = e / math.sqrt(np.sum(e * e))
    lo, hi = predictive_intervals(np.sqrt(s)[:, None] * e[None, :], np.full((s.size, k), v), BAYES_PRIOR,
                                  level=level / 100)
    half["bayes"] = (hi - lo) / 2
    sd = math.sqrt(tau2 + (v + tau2) / k)
    return {m: float(np.sum(wu * (2 * special.ndtr(h / sd) - 1))) for m, h in half.items()}


@pytest.fixture(scope="module")
def equal_v_study():
    return pi_coverage(k_values=(3, 4, 10), tau2_grid=(0.0, 0.1), n_rep=4000, vi_sampler=ConstantVI(V), seed=11,
                       chunk_reps=2000)


def test_coverage_matches_the_analytic_coverage_within_4_monte_carlo_ses(equal_v_study):
    problems = []
    for row in equal_v_study.table.itertuples():
        exact = _analytic_coverage(row.k, row.tau2)[row.method]
        for col in ("coverage", "coverage_expected"):
            got, mcse = getattr(row, col), getattr(row, f"{col}_mcse")
            # where (nearly) every interval covers, the estimated MCSE is 0: use the binomial SE at the analytic
            # coverage for the draws, and a floor of 1e-4 for the conditional coverage
            floor = math.sqrt(exact * (1 - exact) / row.n_used) if col == "coverage" else 1e-4
            if not abs(got - exact) <= 4 * max(mcse, floor):
                problems.append(f"k={row.k} tau2={row.tau2} {row.method} {col}: {got:.4f} vs analytic {exact:.4f} "
                                f"(MCSE {mcse:.4f})")
    assert not problems, "\n".join(problems)


def test_the_analytic_coverages_differ_enough_for_the_test_to_bite(equal_v_study):
    # at k = 4, tau^2 = 0.1 the methods' coverages lie far apart next to the Monte Carlo error of the
    # conditional coverage (4,000 replicates), so a mix-up of quantiles or variances fails the test above
    c = _analytic_coverage(4, 0.1)
    values = sorted(c[m] for m in ("z", "t_k-1", "t_k-2", "knha", "bayes"))
    gaps = np.diff(values)
    t = equal_v_study.table
    mcse = t[(t.k == 4) & (t.tau2 == 0.1)]["coverage_expected_mcse"].max()
    assert gaps.min() > 4 * mcse, (values, mcse)


def test_nested_intervals_have_ordered_coverage_and_width():
    # the same fit, wider critical value: z < t(k-1) < t(k-2) interval by interval
    res = pi_coverage(k_values=(3, 6), tau2_grid=(0.0, 0.05, 0.2), n_rep=600, methods=("z", "t_k-1", "t_k-2"),
                      seed=5, chunk_reps=300)
    t = res.table.set_index(["k", "tau2", "method"]).sort_index()
    for k in (3, 6):
        for tau2 in (0.0, 0.05, 0.2):
            row = t.loc[(k, tau2)]
            assert row.loc["z", "width"] < row.loc["t_k-1", "width"] < row.loc["t_k-2", "width"]
            assert row.loc["z", "coverage"] <= row.loc["t_k-1", "coverage"] <= row.loc["t_k-2", "coverage"]
            assert (row.loc["z", "coverage_expected"] <= row.loc["t_k-1", "coverage_expected"]
                    <= row.loc["t_k-2", "coverage_expected"])
            ratio = stats.t.ppf(0.975, k - 2) / stats.norm.ppf(0.975)
            assert row.loc["t_k-2", "width"] / row.loc["z", "width"] == pytest.approx(ratio, rel=1e-12)


def test_same_seed_same_table_and_another_seed_another():
    kw = {"k_values": (4, 7), "tau2_grid": (0.0, 0.1), "n_rep": 250, "chunk_reps": 100}
    a = pi_coverage(seed=3, **kw)
    b = pi_coverage(seed=3, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    c = pi_coverage(seed=4, **kw)
    assert not np.allclose(a.table["width"], c.table["width"])
    assert list(a.table.columns) == ["k", "tau2", "method", "n_rep", "n_used", "failure_rate", "coverage",
                                     "coverage_mcse", "coverage_expected", "coverage_expected_mcse", "width",
                                     "width_mcse"]
    assert len(a.table) == 2 * 2 * len(METHODS) and set(a.table["method"]) == set(METHODS)
    assert (a.table["n_used"] == 250).all() and (a.table["failure_rate"] == 0).all()
    assert "Prediction-interval coverage" in str(a) and "half-normal(scale=0.5)" in str(a)


def test_same_table_on_one_process_and_two_dask_workers():
    from distributed import Client, LocalCluster

    kw = {"k_values": (3, 5), "tau2_grid": (0.0, 0.2), "n_rep": 300, "chunk_reps": 100, "seed": 8}
    one = pi_coverage(**kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        two = pi_coverage(**kw, dask=client)
    pd.testing.assert_frame_equal(one.table, two.table)


def test_the_default_sampler_gives_smd_variances_of_the_reviews_trial_sizes():
    vi = review_vi_sampler(np.random.default_rng(1), 20000, 1).ravel()
    # vi = 1/n1 + 1/n2 ~ 4/n: the median trial (121 patients) gives ~0.033
    assert np.median(vi) == pytest.approx(4 / 121, rel=0.05)
    assert vi.max() <= 1 / 2 + 1 / 2 and vi.min() > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k_values": (2, 5)}, "k_values must be integers >= 3"),
    ({"tau2_grid": (-0.1,)}, "tau2_grid"),
    ({"n_rep": 1}, "n_rep"),
    ({"methods": ("z", "hksj")}, "unknown methods"),
    ({"level": 0.95, "n_rep": 10}, None),
    ({"chunk_reps": 0}, "chunk_reps"),
    ({"dask": 3, "n_rep": 10, "k_values": (3,), "tau2_grid": (0,)}, "dask must be"),
])
def test_bad_arguments(kwargs, message):
    if message is None:  # a level of 0.95 % is legal (if odd): it runs
        res = pi_coverage(k_values=(3,), tau2_grid=(0.0,), **kwargs)
        assert (res.table["width"] < 0.05).all()
        return
    with pytest.raises((ValueError, TypeError), match=message):
        pi_coverage(**kwargs)


def test_a_sampler_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match="vi_sampler returned shape"):
        pi_coverage(k_values=(3,), tau2_grid=(0.0,), n_rep=10, vi_sampler=lambda rng, n, k: np.ones(n))
