"""The simulation study: its data-generating model, its performance measures, and that the same seed gives
the same table whatever the scheduler and the number of Dask workers."""

import math

import numpy as np
import pandas as pd
import pytest

from metaexercise.commands.cli import main
from metaexercise.engine.effects import escalc
from metaexercise.engine.simulate import (
    Scenario,
    _measures,
    _Sums,
    review_preset,
    run_simulation,
    simulate_smd,
)


def test_review_preset_mirrors_the_review():
    (scen,) = review_preset()
    n = scen.study_sizes()
    # Fleckenstein et al. 2022: k = 32 comparisons, trial sizes median 121 (IQR 69-238), I^2 = 73 %.
    assert scen.k == 32 and len(n) == 32
    assert abs(np.median(n) - 121) <= 4
    q1, q3 = np.percentile(n, [25, 75])
    assert 60 <= q1 <= 78 and 215 <= q3 <= 260
    assert scen.I2 == pytest.approx(73.0, abs=1e-9)
    assert scen.mu == -0.28


def test_typical_variance_by_hand(monkeypatch):
    # k = 3, n = (10, 20, 40) equal arms, mu = 0: v = 4/n = (0.4, 0.2, 0.1), w = (2.5, 5, 10);
    # s^2 = (k - 1) sum w / ((sum w)^2 - sum w^2) = 2 * 17.5 / (306.25 - 131.25) = 35 / 175 = 0.2
    scen = Scenario(k=3, tau2=0.0, mu=0.0, n_median=20, n_sigma=0.0)
    monkeypatch.setattr(Scenario, "study_sizes", lambda self: np.array([10, 20, 40]))
    assert scen.typical_variance() == pytest.approx(0.2, rel=1e-12)


def test_simulated_effects_are_hedges_g_with_metafors_variance():
    scen = Scenario(k=6, tau2=0.1, mu=0.3, n_median=60, n_sigma=0.5)
    g, vi = simulate_smd(scen, 3, np.random.default_rng(1))
    n = scen.study_sizes()
    n1 = n // 2
    n2 = n - n1
    # Recover d = g / J from the draws and push "mean difference d, SD 1" through the engine's escalc
    # (checked against metafor's escalc("SMD")): it must give back g and vi exactly.
    m = n - 2
    j = np.array([math.exp(math.lgamma(x / 2) - 0.5 * math.log(x / 2) - math.lgamma((x - 1) / 2)) for x in m])
    for r in range(3):
        d = g[r] / j
        es = escalc("SMD", m1i=d, sd1i=np.ones(6), n1i=n1, m2i=np.zeros(6), sd2i=np.ones(6), n2i=n2)
        np.testing.assert_allclose(es.yi, g[r], rtol=1e-12)
        np.testing.assert_allclose(es.vi, vi[r], rtol=1e-12)


def test_monte_carlo_standard_errors_by_hand():
    # errors (1, 2, 3, 4): bias 2.5, SD 1.2910, MCSE(bias) = SD / sqrt(4) = 0.6455;
    # MSE = 30/4 = 7.5, RMSE 2.7386; squared errors (1, 4, 9, 16) have SD 6.6583, so
    # MCSE(RMSE) = SD(e^2) / sqrt(4) / (2 RMSE) = 3.3292 / 5.4772 = 0.6078 (Morris et al. 2019, Table 6, delta method)
    m = _measures({"error": _Sums.of(np.array([1.0, 2.0, 3.0, 4.0]))})
    assert m["bias"] == pytest.approx(2.5)
    assert m["bias_mcse"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert m["rmse"] == pytest.approx(math.sqrt(7.5))
    assert m["rmse_mcse"] == pytest.approx(np.std([1, 4, 9, 16], ddof=1) / 2 / (2 * math.sqrt(7.5)))
    cov = _measures({"coverage": _Sums.of(np.array([1.0, 1.0, 0.0, 1.0])), "width": _Sums.of(np.array([2.0] * 4))})
    assert cov["coverage"] == 0.75
    assert cov["coverage_mcse"] == pytest.approx(np.std([1, 1, 0, 1], ddof=1) / 2)
    assert cov["width_mcse"] == 0


def test_same_seed_same_table_with_one_process_or_two_dask_workers():
    from distributed import Client, LocalCluster

    scenarios = [Scenario.from_i2(5, 0.5, -0.28, 121), *review_preset()]
    one = run_simulation(scenarios, 120, 42, chunk_reps=50, scheduler="synchronous", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        two = run_simulation(scenarios, 120, 42, chunk_reps=50, scheduler=client, progress=False)
    pd.testing.assert_frame_equal(one.table, two.table, check_exact=True)
    other = run_simulation(scenarios, 120, 43, chunk_reps=50, scheduler="synchronous", progress=False)
    assert not one.table["bias"].equals(other.table["bias"])


def test_simulate_command_writes_the_table(tmp_path):
    out = tmp_path / "sim.csv"
    code = main(["simulate", "--preset", "grid", "--k", "4", "--i2", "0", "0.5", "--reps", "40", "--seed", "1",
                 "--workers", "0", "--out", str(out), "--no-progress", "--plot", str(tmp_path / "sim.png")])
    assert code == 0
    table = pd.read_csv(out)
    assert set(table["estimator"]) == {"DL", "REML", "ML", "PM"}
    assert set(table["interval"].dropna()) == {"wald", "knha", "knha_trunc", "z", "t(k-2)"}
    assert len(table) == 2 * 4 * 8
    assert (tmp_path / "sim.png").stat().st_size > 0
    cov = table["coverage"].dropna()
    assert ((cov >= 0) & (cov <= 1)).all()


def test_bad_scenarios_are_refused():
    with pytest.raises(ValueError, match="k = 2"):
        Scenario(k=2, tau2=0.1, mu=0, n_median=100)
    with pytest.raises(ValueError, match="I2 = 1.2"):
        Scenario.from_i2(10, 1.2, 0, 100)
