"""gosh against metafor 3.8.1's gosh.rma: every subset of dat.bcg (REML, DL; 8,191 subsets) and of
dat.normand1999 (EE, ML, PM, REML, τ² fixed under REML and under DL, PM with a low tau2.max so that some
subsets fail), every column, aligned by subset; plus metafor's order and printout, the random subsets and
bad input.

Reference: tests/reference/make_gosh_reference.R (metafor's gosh on models fitted with threshold = tol =
1e-12, maxiter = 10000, which gosh passes on to every subset). Tolerance: relative 1e-6, absolute floor 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_reference import ATOL, CONTROL, check_all, fixture, mismatch

from metaexercise import Control, rma

pytest.importorskip("numba")
from metaexercise.engine.gosh_subsets import COLUMNS, GoshResult, all_subsets, gosh, random_subsets  # noqa: E402

GOSH = fixture("gosh")
MODELS = list(GOSH["models"])


def _codes(incl: np.ndarray) -> np.ndarray:
    """Each subset as the integer sum of 2^j over its studies j (the fixture's `code`)."""
    return incl.astype(np.int64) @ (1 << np.arange(incl.shape[1], dtype=np.int64))


def _fit(name: str):
    m = GOSH["models"][name]
    d = GOSH["datasets"][m["data"]]
    control = CONTROL
    extra = m.get("control_extra") or {}
    if "tau2.max" in extra:
        control = Control(threshold=CONTROL.threshold, maxiter=CONTROL.maxiter, tol=CONTROL.tol,
                          tau2_max=float(extra["tau2.max"][0]))
    tau2 = m.get("tau2_fixed")
    return rma(np.array(d["yi"]), np.array(d["vi"]), method=m["method"], control=control,
               tau2=None if tau2 is None else float(tau2[0]))


@pytest.fixture(scope="module")
def results() -> dict[str, GoshResult]:
    return {name: gosh(_fit(name)) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_gosh_equals_metafor(results, name):
    ref = GOSH["models"][name]
    g = results[name]
    ours = _codes(g.incl)
    theirs = np.array(ref["code"], dtype=np.int64)
    assert g.exact and len(g) == len(theirs) == 2 ** g.k - 1
    # aligned by subset, whatever the order (the order is checked on its own below)
    pos = {c: i for i, c in enumerate(ours.tolist())}
    idx = np.array([pos[c] for c in theirs.tolist()])
    pairs = [(f"{name} {col}", g.res[col].to_numpy(dtype=float)[idx], ref[col]) for col in COLUMNS if col != "I2"]
    pairs.append((f"{name} fit", g.fit[idx].astype(float), [float(v) for v in ref["fit"]]))
    check_all(pairs)
    # I^2 = 100 tau^2 / (s^2 + tau^2): where tau^2 sits at its bound 0, both sides stop Fisher scoring within the
    # absolute threshold 1e-12 of it (e.g. 5.6e-13 here, 7.1e-14 in metafor, where the REML score is -4.9), so
    # I^2 carries tau^2's absolute floor ATOL magnified by 100/s^2 (s^2: the subset's typical within-study
    # variance, as small as 0.004 here).
    w = 1 / np.array(GOSH["datasets"][ref["data"]]["vi"])
    incl = g.incl[idx].astype(float)
    sw, sw2, kk = incl @ w, incl @ (w * w), incl.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(kk > 1, (kk - 1) * sw / (sw * sw - sw2), np.inf)
    problem = mismatch(f"{name} I2", g.res["I2"].to_numpy(dtype=float)[idx], ref["I2"], atol=100 * ATOL / s2 + ATOL)
    assert problem is None, problem


@pytest.mark.parametrize("name", MODELS)
def test_gosh_order_is_metafors(results, name):
    """expand.grid order (study 1 fastest), stably sorted by subset size."""
    np.testing.assert_array_equal(_codes(results[name].incl), np.array(GOSH["models"][name]["code"], dtype=np.int64))


def test_failed_subsets_are_na_but_k(results):
    g = results["normand1999_PM_tau2max"]
    failed = ~g.fit
    assert 0 < failed.sum() < len(g)
    assert g.res.loc[failed, ["QE", "I2", "H2", "tau2", "estimate"]].isna().all().all()
    np.testing.assert_array_equal(g.res["k"].to_numpy(), g.incl.sum(axis=1))


@pytest.mark.parametrize("name", ["bcg_REML", "bcg_DL", "normand1999_EE", "normand1999_PM_tau2max"])
def test_printout_as_metafor(results, name):
    """print.gosh.rma's layout and numbers (4 decimals; no tau2 row for EE)."""
    ours = [line.rstrip() for line in results[name].summary().strip("\n").splitlines()]
    theirs = [line.rstrip() for line in GOSH["models"][name]["printout"].strip("\n").splitlines()]
    assert ours == theirs


def test_all_subsets_small():
    incl = all_subsets(3)
    # expand.grid rows 1..7 (study 1 fastest), sorted by size: {1}, {2}, {3}, {1,2}, {1,3}, {2,3}, {1,2,3}
    assert _codes(incl).tolist() == [1, 2, 4, 3, 5, 6, 7]


def _bcg():
    d = GOSH["datasets"]["bcg"]
    return np.array(d["yi"]), np.array(d["vi"])


def test_random_subsets_are_fitted_as_the_exact_ones(results):
    """With fewer `subsets` than 2^k - 1, random subsets: each row equals the row of the same subset among
    all subsets (fitted the same way), the draw is reproducible from the seed, sorted by size."""
    yi, vi = _bcg()
    fit = rma(yi, vi, control=CONTROL)
    g = gosh(fit, subsets=2000, seed=1)
    assert not g.exact and len(g) == 2000 and g.incl.shape == (2000, 13)
    assert np.all(np.diff(g.res["k"].to_numpy()) >= 0) and g.res["k"].min() >= 1
    again = gosh(fit, subsets=2000, seed=1)
    np.testing.assert_array_equal(g.incl, again.incl)
    other = gosh(fit, subsets=2000, seed=2)
    assert not np.array_equal(g.incl, other.incl)
    full = results["bcg_REML"]
    pos = {c: i for i, c in enumerate(_codes(full.incl).tolist())}
    idx = np.array([pos[c] for c in _codes(g.incl).tolist()])
    for col in COLUMNS:
        np.testing.assert_allclose(g.res[col].to_numpy(), full.res[col].to_numpy()[idx], rtol=1e-12, atol=1e-14)


def test_random_subset_sizes_follow_metafors_binomial():
    """metafor draws the size m from Binomial(k, 1/2) restricted to m >= 1, then m distinct studies."""
    from scipy import stats

    k, n = 13, 200_000
    incl = random_subsets(k, n, np.random.default_rng(5))
    sizes = incl.sum(axis=1)
    observed = np.bincount(sizes, minlength=k + 1)[1:]
    prob = stats.binom.pmf(np.arange(1, k + 1), k, 0.5)
    expected = n * prob / prob.sum()
    keep = expected > 5
    assert stats.chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()).pvalue > 1e-4
    # given its size, every study is equally likely to be in a subset
    share = incl.mean(axis=0)
    assert np.all(np.abs(share - share.mean()) < 5 * np.sqrt(0.25 / n))


def test_subsets_at_least_all_gives_exact():
    yi, vi = _bcg()
    g = gosh(rma(yi[:5], vi[:5], method="DL"), subsets=31)
    assert g.exact and len(g) == 31
    g = gosh(rma(yi[:5], vi[:5], method="DL"), subsets=30.4, seed=0)  # metafor rounds `subsets`
    assert not g.exact and len(g) == 30


def test_bad_input():
    yi, vi = _bcg()
    fit = rma(yi, vi)
    with pytest.raises(ValueError, match="subsets must be >= 2"):
        gosh(fit, subsets=1)
    with pytest.raises(TypeError, match="subsets must be a number"):
        gosh(fit, subsets="100")
    with pytest.raises(ValueError, match="k = 1"):
        gosh(rma(yi[:1], vi[:1]))
    with pytest.raises(ValueError, match="moderators"):
        gosh(rma(yi, vi, mods=np.arange(13.0)))
    with pytest.raises(ValueError, match="method 'HE'"):
        gosh(rma(yi, vi, method="HE"))
    with pytest.raises(TypeError, match="fitted by rma"):
        gosh((yi, vi))
