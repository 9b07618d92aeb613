"""Cochrane Handbook ch. 6 conversions against hand arithmetic (shown) and exact identities.
t and z quantiles in the hand arithmetic are the values printed in standard statistical tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaexercise.engine import handbook as hb


def test_sd_from_se():
    # Handbook 6.5.2.2: SD = SE * sqrt(N); 2 * sqrt(25) = 10
    assert hb.sd_from_se(2.0, 25) == pytest.approx(10.0, rel=1e-12)


def test_sd_from_ci_small_sample_uses_t():
    # n = 25 < 60: t(0.975, 24) = 2.0639 (t table); SD = sqrt(25) * (34.2 - 30.0) / (2 * 2.0639) = 5.0875
    assert hb.sd_from_ci(30.0, 34.2, 25) == pytest.approx(5.0 * 4.2 / (2 * 2.0639), rel=1e-4)


def test_sd_from_ci_large_sample_uses_z():
    # n = 100: SD = 10 * (14 - 10) / 3.92 (Handbook's 3.92 = 2 * 1.959964) = 10.2043
    assert hb.sd_from_ci(10.0, 14.0, 100) == pytest.approx(40 / (2 * 1.959964), rel=1e-6)
    assert hb.sd_from_ci(10.0, 14.0, 25, small_sample=False) == pytest.approx(5 * 4 / (2 * 1.959964), rel=1e-6)


def test_se_and_sd_of_a_difference_from_its_ci():
    # n1 = n2 = 100: SE = (5 - 1) / 3.919928 = 1.020427; SD = SE / sqrt(1/100 + 1/100) = 7.21552
    se = hb.se_diff_from_ci(1.0, 5.0, 100, 100)
    assert se == pytest.approx(4 / 3.919928, rel=1e-6)
    assert hb.sd_from_se_diff(se, 100, 100) == pytest.approx(1.020427 / np.sqrt(0.02), rel=1e-5)


def test_se_of_a_difference_from_p_and_t():
    # MD 2, p = 0.05, n1 = n2 = 61: t(0.975, 120) = 1.9799 (t table), SE = 2 / 1.9799 = 1.01015
    assert hb.se_diff_from_p(2.0, 0.05, 61, 61) == pytest.approx(2 / 1.9799, rel=1e-4)
    assert hb.se_diff_from_t(-3.0, 1.5) == pytest.approx(2.0)


def test_change_sd_and_its_inverse():
    # sqrt(4^2 + 3^2 - 2 * 0.5 * 4 * 3) = sqrt(13)  (Handbook 6.5.2.8)
    assert hb.change_sd(4.0, 3.0, 0.5) == pytest.approx(np.sqrt(13.0), rel=1e-12)
    # (16 + 9 - 13) / (2 * 4 * 3) = 0.5
    assert hb.correlation_from_change(4.0, 3.0, np.sqrt(13.0)) == pytest.approx(0.5, rel=1e-12)


def test_estimate_correlation_averages_and_falls_back():
    r, k = hb.estimate_correlation([4.0, 4.0, 1.0], [3.0, 3.0, 1.0], [np.sqrt(13.0), 5.0, 3.0])
    # study 1: r = 0.5; study 2: (16 + 9 - 25) / 24 = 0; study 3: (1 + 1 - 9) / 2 = -3.5 is impossible, dropped
    assert (r, k) == (pytest.approx(0.25), 2)
    assert hb.estimate_correlation([np.nan], [1.0], [1.0], default=0.6) == (0.6, 0)


def test_combine_groups_hand_arithmetic():
    # Table 6.5.a: N = 30, M = (10*1 + 20*3)/30 = 2.3333,
    # SD^2 = (9*4 + 19*16 + 10*20/30*(1 + 9 - 6)) / 29 = 366.667 / 29 -> SD = 3.55580
    n, m, sd = hb.combine_groups(10, 1.0, 2.0, 20, 3.0, 4.0)
    assert (n, m) == (30, pytest.approx(70 / 30))
    assert sd == pytest.approx(np.sqrt((36 + 304 + 200 / 30 * 4) / 29), rel=1e-12)


def test_combine_many_equals_pooling_the_raw_data():
    """Table 6.5.a is exact: combining groups' summaries equals summarising the pooled observations."""
    rng = np.random.default_rng(3)
    groups = [rng.normal(mu, s, n) for mu, s, n in ((1, 2, 12), (3, 1, 30), (-1, 4, 7))]
    n, m, sd = hb.combine_many([len(g) for g in groups], [g.mean() for g in groups], [g.std(ddof=1) for g in groups])
    pooled = np.concatenate(groups)
    assert n == len(pooled)
    assert m == pytest.approx(pooled.mean(), rel=1e-12)
    assert sd == pytest.approx(pooled.std(ddof=1), rel=1e-12)


def test_wan2014_iqr_limit_and_means():
    # As n grows, eta(n) -> 2 * 0.6744898 = 1.34898, the Handbook's "IQR / 1.35" (6.5.2.5)
    _, sd = hb.wan2014(10**7, median=5.0, q1=3.0, q3=8.0)
    assert sd == pytest.approx(5.0 / 1.3489795, rel=1e-5)
    mean, _ = hb.wan2014(50, median=5.0, q1=3.0, q3=8.0)
    assert mean == pytest.approx((3 + 5 + 8) / 3)  # Wan eq. 14
    mean, _ = hb.wan2014(50, median=5.0, minimum=0.0, maximum=20.0)
    assert mean == pytest.approx((0 + 10 + 20) / 4)  # Wan eq. 2


def test_wan2014_range_sd_hand_arithmetic():
    # n = 25: (25 - 0.375) / 25.25 = 0.9752475; Phi^-1 = 1.959964 + 0.0002475 / phi(1.959964) with
    # phi(1.959964) = 0.0584409, so Phi^-1 = 1.964199 and xi = 3.928398; SD = 20 / xi
    _, sd = hb.wan2014(25, median=5.0, minimum=0.0, maximum=20.0)
    assert sd == pytest.approx(20 / 3.928398, rel=1e-4)


def test_luo2018_means_hand_arithmetic():
    # S3, n = 50: w = 0.7 + 0.39/50 = 0.7078; mean = 0.7078 * (3 + 8)/2 + 0.2922 * 5 = 5.3539
    mean, _ = hb.luo2018(50, median=5.0, q1=3.0, q3=8.0)
    assert mean == pytest.approx(0.7078 * 5.5 + 0.2922 * 5, rel=1e-12)
    # S1, n = 16: w = 4 / (4 + 16^0.75) = 4 / 12 = 1/3; mean = (0 + 20)/2 / 3 + 2/3 * 5 = 6.6667
    mean, _ = hb.luo2018(16, median=5.0, minimum=0.0, maximum=20.0)
    assert mean == pytest.approx(10 / 3 + 10 / 3, rel=1e-12)


def test_design_effect_and_effective_n():
    # 1 + (11 - 1) * 0.05 = 1.5; 60 / 1.5 = 40 (Handbook 23.1.4)
    assert hb.design_effect(11, 0.05) == pytest.approx(1.5)
    assert hb.effective_n(60, 11, 0.05) == pytest.approx(40.0)


def test_arrays_in_arrays_out():
    out = hb.sd_from_se(np.array([1.0, 2.0]), np.array([4, 9]))
    assert np.allclose(out, [2.0, 6.0])


_sd = st.floats(0.1, 50)


@settings(max_examples=80, deadline=None)
@given(_sd, _sd, st.floats(-0.95, 0.95))
def test_change_sd_and_correlation_are_inverse(sd_b, sd_f, r):
    assert hb.correlation_from_change(sd_b, sd_f, hb.change_sd(sd_b, sd_f, r)) == pytest.approx(r, abs=1e-7)


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 200), st.integers(2, 200), st.floats(-10, 10), st.floats(-10, 10), _sd, _sd)
def test_combining_groups_is_symmetric(n1, n2, m1, m2, s1, s2):
    assert hb.combine_groups(n1, m1, s1, n2, m2, s2) == pytest.approx(hb.combine_groups(n2, m2, s2, n1, m1, s1))
