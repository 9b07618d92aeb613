"""permutest against metafor 3.8.1's permutest(exact = TRUE): exact tests enumerate every sign flip or
distinct permutation, so the p-values are deterministic (fixture: tests/reference/make_batch_reference.R)."""

import numpy as np
import pytest

from metaexercise.engine.batch import BatchControl
from metaexercise.engine.permutation import _exact_count, _unique_orders, permutest_arrays

#: the fixture's rma() control: which refits fail to converge (and drop out of the p-values) depends on it
METAFOR_RUN = BatchControl(threshold=1e-10, maxiter=100)
CASES = [f"{d}_{m}_{t}" for d in ("int_only", "continuous", "binary") for m in ("REML", "DL") for t in ("z", "knha")]


@pytest.mark.parametrize("case", CASES)
def test_exact_permutest_matches_metafor(batch_reference, case):
    ref = batch_reference["permutest"][case]
    data = batch_reference["perm_sets"][ref["data"]]
    mods = None if data["mods"] is None else np.array(data["mods"])
    res = permutest_arrays(data["yi"], data["vi"], mods, method=ref["method"], test=ref["test"], exact=True,
                           control=METAFOR_RUN)
    assert res.exact
    assert res.iter == ref["iter"][0]
    np.testing.assert_allclose(res.zval, ref["zval"], rtol=1e-8)
    np.testing.assert_allclose(res.QM, ref["QM"][0], rtol=1e-8)
    # p-values are shares of the refits: equal to metafor's exactly (up to float summation)
    np.testing.assert_allclose(res.pval, ref["pval"], rtol=1e-12)
    np.testing.assert_allclose(res.QMp, ref["QMp"][0], rtol=1e-12)


def test_distinct_orders_of_a_multiset_are_counted_and_listed_once():
    labels = np.array([0, 0, 1, 1, 1, 2])
    orders = _unique_orders(labels)
    # hand arithmetic: 6! / (2! 3! 1!) = 720 / 12 = 60
    assert _exact_count(labels) == 60
    assert orders.shape == (60, 6)
    assert len({tuple(o) for o in orders}) == 60


def test_random_permutest_is_reproducible_and_includes_the_observed_order():
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.01, 0.1, 20)
    x = rng.uniform(0, 10, 20)
    yi = rng.normal(0.1 + 0.05 * x, np.sqrt(vi + 0.02))
    a = permutest_arrays(yi, vi, x, iter=200, seed=11)
    b = permutest_arrays(yi, vi, x, iter=200, seed=11)
    assert not a.exact and a.iter == 200
    np.testing.assert_array_equal(a.pval, b.pval)
    np.testing.assert_array_equal(a.zval_perm[0], a.zval)  # first "permutation" is the observed order
    assert 1 / 200 <= a.pval[1] <= 1


def test_permutest_of_a_fitted_model_uses_its_data_method_and_test(batch_reference):
    from metaexercise.engine.model import rma
    from metaexercise.engine.permutation import permutest
    from metaexercise.engine.tau2 import Control

    ref = batch_reference["permutest"]["binary_REML_knha"]
    data = batch_reference["perm_sets"]["binary"]
    fit = rma(np.array(data["yi"]), np.array(data["vi"]), mods=np.array(data["mods"]), test="knha",
              control=Control(threshold=1e-10, maxiter=100))
    res = permutest(fit, iter=1000)  # 210 distinct orders <= 1000: exact, as metafor decides
    assert res.exact and res.iter == 210
    np.testing.assert_allclose(res.zval, fit.zval, rtol=1e-8)
    np.testing.assert_allclose(res.pval, ref["pval"], rtol=1e-12)
    np.testing.assert_allclose(res.QMp, ref["QMp"][0], rtol=1e-12)
