"""rma_batch equals the single-fit engine `rma` row by row (relative 1e-8) on many random data sets,
including NaN padding, k = 2 and sets with no heterogeneity; and the streaming and chunking paths give
the same numbers as one call."""

import numpy as np
import pytest

from metaexercise.engine.batch import cumul_batch, leave1out_batch, rma_batch
from metaexercise.engine.model import rma
from metaexercise.errors import ConvergenceError

FIELDS = ("estimate", "tau2", "I2", "QE", "pi_lb", "pi_ub")
#: absolute floor for values that are (near) zero: tau^2 of order 1e-9 reached by Fisher scoring with
#: threshold 1e-10 differs between two implementations by float rounding only (~1e-13 absolute).
ATOL = 1e-10
SEEDS = {("REML", "z"): 1, ("REML", "knha"): 2, ("ML", "z"): 3, ("ML", "knha"): 4, ("DL", "z"): 5,
         ("DL", "knha"): 6, ("PM", "z"): 7, ("PM", "knha"): 8}


def _random_sets(n: int, seed: int):
    rng = np.random.default_rng(seed)
    ks = rng.choice([2, 2, 3, 4, 5, 7, 10, 15, 30, 45], size=n)
    width = 50
    yi = np.full((n, width), np.nan)
    vi = np.full((n, width), np.nan)
    for r, k in enumerate(ks):
        tau2 = rng.choice([0.0, 0.005, 0.05, 0.3])
        v = rng.uniform(0.002, 0.3, k)
        cols = np.sort(rng.choice(width, k, replace=False))
        yi[r, cols] = rng.normal(-0.3, np.sqrt(v + tau2))
        vi[r, cols] = v
    return yi, vi


@pytest.mark.parametrize("method", ["REML", "ML", "DL", "PM"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_rma_batch_equals_rma_row_by_row(method, test):
    yi, vi = _random_sets(60, seed=SEEDS[method, test])
    res = rma_batch(yi, vi, method, test=test)
    checked = 0
    for r in range(yi.shape[0]):
        keep = ~np.isnan(yi[r])
        try:
            fit = rma(yi[r, keep], vi[r, keep], method=method, test=test)
        except ConvergenceError:
            assert not res.converged[r]
            continue
        assert res.converged[r]
        assert res.k[r] == fit.k
        for name in FIELDS:
            np.testing.assert_allclose(getattr(res, name)[r], getattr(fit, name), rtol=1e-8, atol=ATOL,
                                       err_msg=f"row {r} {name}")
        np.testing.assert_allclose(res.se[r], fit.se[0], rtol=1e-8, err_msg=f"row {r} se")
        np.testing.assert_allclose([res.ci_lb[r], res.ci_ub[r]], [fit.ci_lb[0], fit.ci_ub[0]], rtol=1e-8,
                                   atol=ATOL)
        checked += 1
    assert checked >= 55


def test_streamed_chunks_and_memmap_give_the_same_numbers_as_one_call(tmp_path):
    yi, vi = _random_sets(300, seed=5)
    whole = rma_batch(yi, vi)
    streamed = rma_batch((yi[i:i + 70] for i in range(0, 300, 70)), (vi[i:i + 70] for i in range(0, 300, 70)))
    np.save(tmp_path / "yi.npy", yi)
    np.save(tmp_path / "vi.npy", vi)
    mapped = rma_batch(np.load(tmp_path / "yi.npy", mmap_mode="r"), np.load(tmp_path / "vi.npy", mmap_mode="r"),
                       chunk_size=64)
    for other in (streamed, mapped):
        for name in ("estimate", "se", "tau2", "pi_lb", "iterations", "k"):
            np.testing.assert_array_equal(getattr(other, name), getattr(whole, name))


def test_rows_without_studies_are_nan_and_not_converged():
    yi = np.array([[0.1, 0.3, np.nan], [np.nan, np.nan, np.nan]])
    vi = np.array([[0.01, 0.02, np.nan], [np.nan, np.nan, np.nan]])
    res = rma_batch(yi, vi)
    assert res.converged.tolist() == [True, False]
    assert res.k.tolist() == [2, 0]
    assert np.isnan(res.estimate[1]) and np.isnan(res.tau2[1])


def test_bad_input_names_row_and_column():
    yi = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    vi = np.array([[0.01, 0.02, 0.03], [0.01, -0.02, 0.03]])
    with pytest.raises(ValueError, match=r"vi\[1, 1\]"):
        rma_batch(yi, vi)
    with pytest.raises(ValueError, match="method='XYZ'"):
        rma_batch(yi, np.abs(vi), "XYZ")
    with pytest.raises(ValueError, match="shape"):
        rma_batch(yi, np.abs(vi)[:, :2])


def test_leave1out_and_cumul_batch_equal_refits_with_rma():
    rng = np.random.default_rng(12)
    vi = rng.uniform(0.01, 0.2, 12)
    yi = rng.normal(-0.3, np.sqrt(vi + 0.04))
    loo = leave1out_batch(yi, vi)
    cum = cumul_batch(yi, vi, "DL")
    for i in range(12):
        keep = np.arange(12) != i
        fit = rma(yi[keep], vi[keep])
        np.testing.assert_allclose([loo.estimate[i], loo.tau2[i]], [fit.estimate, fit.tau2], rtol=1e-8, atol=ATOL)
        fit = rma(yi[: i + 1], vi[: i + 1], method="DL")
        np.testing.assert_allclose([cum.estimate[i], cum.tau2[i]], [fit.estimate, fit.tau2], rtol=1e-8, atol=ATOL)


def test_large_chunks_kept_in_memory_maps_give_the_same_numbers():
    # 40,000 rows: results of each 20,000-row chunk exceed 128 KiB, so they live in anonymous memory maps
    # and are concatenated into one; the numbers must equal a single unchunked call.
    rng = np.random.default_rng(8)
    vi = rng.uniform(0.01, 0.2, (40_000, 4))
    yi = rng.normal(0.2, np.sqrt(vi + 0.03))
    one = rma_batch(yi, vi, "DL", chunk_size=40_000)
    two = rma_batch(yi, vi, "DL", chunk_size=20_000)
    for name in ("estimate", "se", "ci_lb", "ci_ub", "tau2", "I2", "QE", "pi_lb", "pi_ub", "k", "converged"):
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name))
    assert two.estimate.flags.writeable and two.estimate.shape == (40_000,)
