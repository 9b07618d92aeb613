"""Properties any correct random-effects fit has (engine issue #2), checked on random data with hypothesis:

- permuting the studies changes nothing;
- adding a constant a to every yi adds a to the estimate and its CI, and leaves SE, tau2, Q, I2 and p-values of
  heterogeneity unchanged;
- multiplying yi by c > 0 and vi by c^2 multiplies estimate, SE and CI by c and tau2 by c^2, and leaves z, every
  p-value, Q, I2 and H2 unchanged (the model is location-scale equivariant).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from metaexercise import Control, ConvergenceError
from metaexercise import rma as _rma

CONTROL = Control(threshold=1e-13, maxiter=1000)
METHODS = ("REML", "DL", "PM", "ML", "EE", "SJ", "HE")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def meta_data(draw):
    k = draw(st.integers(min_value=3, max_value=25))
    yi = draw(st.lists(st.floats(-3, 3, allow_nan=False, allow_subnormal=False), min_size=k, max_size=k))
    log_vi = draw(st.lists(st.floats(-3, 0.5, allow_nan=False), min_size=k, max_size=k))
    return np.array(yi), 10.0 ** np.array(log_vi)


def rma(*args, **kwargs):
    """rma, with data on which Fisher scoring does not converge rejected: metafor fails on them too (e.g.
    yi = (1, 0, 0, 0, 0), vi = (0.1, 1, 1, 1, 1): "Fisher scoring algorithm did not converge", metafor 3.8.1),
    and the properties are about fitted models."""
    try:
        return _rma(*args, **kwargs)
    except ConvergenceError:
        reject()


def _close(a, b, scale=1.0, rtol=1e-6):
    """Equal to rtol, with an absolute floor proportional to the data's scale (for values near zero)."""
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-8 * scale)


@SETTINGS
@given(data=meta_data(), method=st.sampled_from(METHODS), seed=st.integers(0, 2**32 - 1))
def test_order_invariance(data, method, seed):
    yi, vi = data
    perm = np.random.default_rng(seed).permutation(len(yi))
    a = rma(yi, vi, method=method, control=CONTROL)
    b = rma(yi[perm], vi[perm], method=method, control=CONTROL)
    for q in ("estimate", "tau2", "QE", "I2", "H2", "pi_lb", "pi_ub"):
        _close(getattr(b, q), getattr(a, q))
    _close(b.se, a.se)
    _close(b.pval, a.pval)
    _close(b.weights, a.weights[perm])


@SETTINGS
@given(data=meta_data(), method=st.sampled_from(METHODS), shift=st.floats(-50, 50, allow_nan=False))
def test_shift_equivariance(data, method, shift):
    yi, vi = data
    a = rma(yi, vi, method=method, control=CONTROL)
    b = rma(yi + shift, vi, method=method, control=CONTROL)
    _close(b.estimate, a.estimate + shift, scale=1 + abs(shift))
    _close(b.ci_lb, a.ci_lb + shift, scale=1 + abs(shift))
    for q in ("tau2", "QE", "QEp", "I2", "H2"):
        _close(getattr(b, q), getattr(a, q), scale=1 + abs(shift), rtol=1e-5)
    _close(b.se, a.se, rtol=1e-5)


@SETTINGS
@given(data=meta_data(), method=st.sampled_from(METHODS), log_c=st.floats(-2, 2, allow_nan=False),
       test=st.sampled_from(("z", "knha")))
def test_scale_equivariance(data, method, log_c, test):
    yi, vi = data
    c = 10.0**log_c
    a = rma(yi, vi, method=method, test=test, control=CONTROL)
    # the convergence threshold is absolute on tau2 (as metafor's), so it scales with c^2 too
    b = rma(c * yi, c**2 * vi, method=method, test=test,
            control=Control(threshold=CONTROL.threshold * c**2, maxiter=CONTROL.maxiter))
    _close(b.estimate, c * a.estimate, scale=c)
    _close(b.se, c * a.se, scale=c)
    _close(b.ci_ub, c * a.ci_ub, scale=c)
    _close(b.tau2, c**2 * a.tau2, scale=c**2)
    _close(b.zval, a.zval)
    _close(b.pval, a.pval)
    for q in ("QE", "QEp", "I2", "H2"):
        _close(getattr(b, q), getattr(a, q))


def test_scale_equivariance_example_by_hand():
    # A fixed case whose numbers can be followed by hand: two studies with equal variance 0.04 and effects
    # 0.2 and 0.6 give, under EE, estimate 0.4 and SE sqrt(0.04/2) = 0.1414...; doubling yi and quadrupling
    # vi doubles both.
    a = rma([0.2, 0.6], [0.04, 0.04], method="EE")
    b = rma([0.4, 1.2], [0.16, 0.16], method="EE")
    assert a.estimate == pytest.approx(0.4) and a.se[0] == pytest.approx(np.sqrt(0.02))
    assert b.estimate == pytest.approx(0.8) and b.se[0] == pytest.approx(2 * np.sqrt(0.02))
    assert b.pval[0] == pytest.approx(a.pval[0])


# --- diagnostics ------------------------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=meta_data(), seed=st.integers(0, 2**32 - 1))
def test_influence_rows_follow_the_studies(data, seed):
    from metaexercise.engine.diagnostics import influence

    yi, vi = data
    perm = np.random.default_rng(seed).permutation(len(yi))
    a = influence(rma(yi, vi, control=CONTROL))
    b = influence(rma(yi[perm], vi[perm], control=CONTROL))
    for col in ("rstudent", "cooks_d", "hat", "tau2_del", "dfbs_intrcpt"):
        _close(b[col].to_numpy(), a[col].to_numpy()[perm], rtol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=meta_data(), log_c=st.floats(-2, 2, allow_nan=False), shift=st.floats(-5, 5, allow_nan=False))
def test_funnel_tests_are_location_scale_invariant(data, log_c, shift):
    # Egger's slope on sei and Begg's tau only see (yi - centre)/scale: z, p and tau do not change when yi is
    # shifted and rescaled by c with vi rescaled by c^2.
    from metaexercise.engine.bias import ranktest, regtest

    yi, vi = data
    assume(np.ptp(vi) > 1e-3 * vi.max())  # a constant predictor has no slope (regtest refuses it, as metafor)
    c = 10.0**log_c
    try:
        a_reg, b_reg = regtest(yi, vi), regtest(c * (yi + shift), c**2 * vi)
    except ConvergenceError:
        reject()
    _close(b_reg.zval, a_reg.zval, rtol=1e-5)
    _close(b_reg.pval, a_reg.pval, rtol=1e-5)
    # Ranks are only invariant when rounding cannot create or break ties: exclude standardized effects that are
    # distinct but closer than 1e-9 (e.g. 0 and 2.2e-16, which coincide after adding 1).
    w = 1 / vi
    ystar = np.sort((yi - np.sum(w * yi) / np.sum(w)) / np.sqrt(vi - 1 / np.sum(w)))
    gaps = np.diff(ystar)
    assume(np.all((gaps == 0) | (gaps > 1e-9 * (1 + np.abs(ystar[1:])))))
    # ... and sampling variances that are distinct but within rounding of each other (3.1622776601683795 and
    # 3.162277660168379 become equal once multiplied by c^2 = 10^0.156, making a tie that was not there)
    vs = np.sort(vi)
    assume(np.all((np.diff(vs) == 0) | (np.diff(vs) > 1e-9 * vs[1:])))
    a_rank, b_rank = ranktest(yi, vi), ranktest(c * (yi + shift), c**2 * vi)
    _close(b_rank.tau, a_rank.tau)  # NaN (as metafor's NA) when all standardized effects are equal
    _close(b_rank.pval, a_rank.pval)
