"""rma_batch against metafor 3.8.1, row by row (fixture: tests/reference/make_batch_reference.R, which runs
rma() to convergence (threshold 1e-13) and predict() for the prediction interval)."""

import numpy as np
import pytest
from batch_helpers import pad

from metaexercise.engine.batch import BatchControl, rma_batch

METAFOR_RUN = BatchControl(threshold=1e-10, maxiter=100)
FIELDS = ("estimate", "se", "ci_lb", "ci_ub", "tau2", "I2", "QE", "pi_lb", "pi_ub")


@pytest.mark.parametrize("method", ["REML", "ML", "DL", "PM"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_rma_batch_matches_metafor_row_by_row(batch_reference, method, test):
    sets = batch_reference["datasets"]
    expected = batch_reference["fits"][f"{method}_{test}"]
    # Scatter the studies among NaN padding so that padding position cannot matter.
    width = max(len(d["yi"]) for d in sets) + 3
    yi = pad([d["yi"] for d in sets], width, shuffle_seed=1)
    vi = pad([d["vi"] for d in sets], width, shuffle_seed=1)
    # both run to convergence: metafor by Fisher scoring to 1e-13, rma_batch by its defaults
    res = rma_batch(yi, vi, method, test=test, chunk_size=17)
    assert res.converged.all()
    np.testing.assert_array_equal(res.k, [len(d["yi"]) for d in sets])
    for name in FIELDS:
        want = np.array([e[name][0] for e in expected], dtype=float)
        # relative 1e-8. Where the REML/ML maximum is on the boundary, both creep toward tau2 = 0 by
        # step-halving and stop within the threshold of it (tau2 ~ 1e-13), which I2 (percent) magnifies by
        # 100 / vt; such values are compared absolutely (tau2 1e-12, I2 1e-7 percentage points).
        atol = 1e-7 if name == "I2" else 1e-12
        np.testing.assert_allclose(getattr(res, name), want, rtol=1e-8, atol=atol, err_msg=name)


def test_pm_widens_its_search_as_metafor_when_tau2_exceeds_100(batch_reference):
    # The last data set spreads effects over +-50: its PM tau^2 is above metafor's default tau2.max of 100,
    # so the search bound must become 10 * mad(yi)^2, as in metafor 3.8.
    d = batch_reference["datasets"][-1]
    want = batch_reference["fits"]["PM_z"][-1]["tau2"][0]
    assert want > 100
    res = rma_batch(np.array([d["yi"]]), np.array([d["vi"]]), "PM", control=METAFOR_RUN)
    np.testing.assert_allclose(res.tau2, [want], rtol=1e-10)
