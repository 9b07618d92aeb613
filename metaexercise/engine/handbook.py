"""Cochrane Handbook conversions for continuous outcomes (Higgins, Li, Deeks (eds), Cochrane Handbook
for Systematic Reviews of Interventions v6.3, 2022, chapter 6 "Choosing effect measures and computing
estimates of effect"; chapter 23 for cluster and multi-arm trials), plus the median-to-mean estimators of
Wan et al. (2014) and Luo et al. (2018) that the Handbook points to (§6.5.2.5).

All functions take scalars or numpy arrays and return the same shape. None of them modifies its input.
"""

from __future__ import annotations

import numpy as np
from scipy import special

#: Handbook §6.5.2.2: "if sample sizes are small (say fewer than 60 participants in each group)" the
#: 3.92 of a 95% CI is replaced by twice the t quantile.
SMALL_SAMPLE_N = 60

#: Stated default correlation between baseline and final scores for imputing change-score SDs when no
#: study reports all three SDs (Handbook §6.5.2.8 asks for a stated, sensitivity-tested value).
DEFAULT_CORRELATION = 0.5


def _out(x):
    x = np.asarray(x, dtype=float)
    return x if x.ndim else float(x)


def _quantile(level: float, df=None):
    """Two-sided quantile of a `level`% interval: z, or t with `df` degrees of freedom (scipy.stats' `norm.ppf`
    and `t.ppf`, computed as they do)."""
    p = 0.5 + level / 200.0
    return special.ndtri(p) if df is None else special.stdtrit(df, p)


def sd_from_se(se, n):
    """SD of a group mean from its SE: SD = SE * sqrt(n). Handbook §6.5.2.2."""
    return _out(np.asarray(se, dtype=float) * np.sqrt(np.asarray(n, dtype=float)))


def sd_from_ci(ci_low, ci_high, n, *, level: float = 95.0, small_sample: bool = True):
    """SD of a group mean from its CI: SD = sqrt(n) * (upper - lower) / (2 q), q = z quantile (3.92/2 for
    95%), or the t quantile on n - 1 df when n < 60 and `small_sample`. Handbook §6.5.2.2."""
    n = np.asarray(n, dtype=float)
    width = np.asarray(ci_high, dtype=float) - np.asarray(ci_low, dtype=float)
    q = np.where(small_sample & (n < SMALL_SAMPLE_N), _quantile(level, np.maximum(n - 1, 1)), _quantile(level))
    return _out(np.sqrt(n) * width / (2 * q))


def se_diff_from_ci(ci_low, ci_high, n1, n2, *, level: float = 95.0, small_sample: bool = True):
    """SE of a difference in means from its CI: (upper - lower) / (2 q), q = z, or t on n1 + n2 - 2 df
    when either group has fewer than 60 participants and `small_sample`. Handbook §6.5.2.3."""
    n1, n2 = np.asarray(n1, dtype=float), np.asarray(n2, dtype=float)
    width = np.asarray(ci_high, dtype=float) - np.asarray(ci_low, dtype=float)
    small = small_sample & ((n1 < SMALL_SAMPLE_N) | (n2 < SMALL_SAMPLE_N))
    q = np.where(small, _quantile(level, np.maximum(n1 + n2 - 2, 1)), _quantile(level))
    return _out(width / (2 * q))


def se_diff_from_t(difference, t):
    """SE of a difference in means from its t statistic: SE = |MD / t|. Handbook §6.5.2.3."""
    return _out(np.abs(np.asarray(difference, dtype=float) / np.asarray(t, dtype=float)))


def se_diff_from_p(difference, p, n1, n2):
    """SE of a difference in means from its two-sided p value: t = t^-1(1 - p/2; n1 + n2 - 2),
    SE = |MD| / t. Handbook §6.5.2.3."""
    df = np.asarray(n1, dtype=float) + np.asarray(n2, dtype=float) - 2
    t = -special.stdtrit(df, np.asarray(p, dtype=float) / 2)  # scipy.stats' t.isf(p / 2, df)
    return se_diff_from_t(difference, t)


def sd_from_se_diff(se, n1, n2):
    """Pooled within-group SD from the SE of a difference in means: SD = SE / sqrt(1/n1 + 1/n2).
    Handbook §6.5.2.3 (the SD assumed common to both groups)."""
    n1, n2 = np.asarray(n1, dtype=float), np.asarray(n2, dtype=float)
    return _out(np.asarray(se, dtype=float) / np.sqrt(1 / n1 + 1 / n2))


def change_sd(sd_baseline, sd_final, r):
    """SD of change from baseline: sqrt(SD_b^2 + SD_f^2 - 2 r SD_b SD_f). Handbook §6.5.2.8."""
    b, f = np.asarray(sd_baseline, dtype=float), np.asarray(sd_final, dtype=float)
    return _out(np.sqrt(b**2 + f**2 - 2 * np.asarray(r, dtype=float) * b * f))


def correlation_from_change(sd_baseline, sd_final, sd_change):
    """Correlation between baseline and final scores implied by the three SDs of a study that reports
    all of them: r = (SD_b^2 + SD_f^2 - SD_c^2) / (2 SD_b SD_f). Handbook §6.5.2.8."""
    b, f = np.asarray(sd_baseline, dtype=float), np.asarray(sd_final, dtype=float)
    c = np.asarray(sd_change, dtype=float)
    return _out((b**2 + f**2 - c**2) / (2 * b * f))


def estimate_correlation(sd_baseline, sd_final, sd_change, *, default: float = DEFAULT_CORRELATION):
    """(r, k): the mean of the per-study correlations (those within [-1, 1]) implied by studies reporting
    baseline, final and change SDs, and how many studies gave it; (`default`, 0) when none does.
    Handbook §6.5.2.8 ("calculate a correlation coefficient from a study that is reported in
    considerable detail", averaged when several do)."""
    r = np.atleast_1d(correlation_from_change(sd_baseline, sd_final, sd_change))
    r = r[np.isfinite(r) & (np.abs(r) <= 1)]
    return (float(r.mean()), int(r.size)) if r.size else (float(default), 0)


def combine_groups(n1, m1, sd1, n2, m2, sd2):
    """(N, M, SD) of two groups combined into one. Handbook §6.5.2.10, Table 6.5.a:
    N = n1 + n2, M = (n1 m1 + n2 m2) / N,
    SD = sqrt(((n1-1) sd1^2 + (n2-1) sd2^2 + n1 n2 / N (m1^2 + m2^2 - 2 m1 m2)) / (N - 1))."""
    n1, m1, sd1 = (np.asarray(a, dtype=float) for a in (n1, m1, sd1))
    n2, m2, sd2 = (np.asarray(a, dtype=float) for a in (n2, m2, sd2))
    n = n1 + n2
    m = (n1 * m1 + n2 * m2) / n
    sd = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2 + n1 * n2 / n * (m1 - m2) ** 2) / (n - 1))
    return _out(n), _out(m), _out(sd)


def combine_many(ns, means, sds):
    """(N, M, SD) of any number of groups, combined pairwise with `combine_groups` (Table 6.5.a)."""
    ns, means, sds = (list(np.asarray(a, dtype=float)) for a in (ns, means, sds))
    if not ns:
        raise ValueError("no groups to combine")
    n, m, sd = ns[0], means[0], sds[0]
    for n2, m2, sd2 in zip(ns[1:], means[1:], sds[1:], strict=True):
        n, m, sd = combine_groups(n, m, sd, n2, m2, sd2)
    return float(n), float(m), float(sd)


def _xi(n):
    """Wan et al. 2014 eq. 7: xi(n) = 2 Phi^-1((n - 0.375) / (n + 0.25))."""
    return 2 * special.ndtri((n - 0.375) / (n + 0.25))


def _eta(n):
    """Wan et al. 2014 eq. 13: eta(n) = 2 Phi^-1((0.75 n - 0.125) / (n + 0.25))."""
    return 2 * special.ndtri((0.75 * n - 0.125) / (n + 0.25))


def wan2014(n, *, median, q1=None, q3=None, minimum=None, maximum=None):
    """(mean, SD) from a median with the range (scenario C1), the IQR (C3) or both (C2).
    Wan, Wang, Liu, Tong 2014, BMC Med Res Methodol 14:135, doi:10.1186/1471-2288-14-135:
    C1: mean = (a + 2m + b)/4, SD = (b - a)/xi(n) (eqs 2 and 7);
    C2: mean = (a + 2q1 + 2m + 2q3 + b)/8, SD = (b - a)/(2 xi(n)) + (q3 - q1)/(2 eta(n)) (eqs 10 and 12);
    C3: mean = (q1 + m + q3)/3, SD = (q3 - q1)/eta(n) (eqs 14 and 15).
    (The mean in C1 and C2 is Hozo 2005 / Bland 2015's; Luo 2018's means are better, see `luo2018`.)"""
    n = np.asarray(n, dtype=float)
    m = np.asarray(median, dtype=float)
    has_range = minimum is not None and maximum is not None
    has_iqr = q1 is not None and q3 is not None
    if has_range and has_iqr:
        a, b, lo, hi = (np.asarray(v, dtype=float) for v in (minimum, maximum, q1, q3))
        mean = (a + 2 * lo + 2 * m + 2 * hi + b) / 8
        sd = (b - a) / (2 * _xi(n)) + (hi - lo) / (2 * _eta(n))
    elif has_range:
        a, b = np.asarray(minimum, dtype=float), np.asarray(maximum, dtype=float)
        mean, sd = (a + 2 * m + b) / 4, (b - a) / _xi(n)
    elif has_iqr:
        lo, hi = np.asarray(q1, dtype=float), np.asarray(q3, dtype=float)
        mean, sd = (lo + m + hi) / 3, (hi - lo) / _eta(n)
    else:
        raise ValueError("wan2014 needs the range (minimum, maximum), the IQR (q1, q3) or both")
    return _out(mean), _out(sd)


def luo2018(n, *, median, q1=None, q3=None, minimum=None, maximum=None):
    """(mean, SD): mean by Luo, Wan, Liu, Tong 2018, Stat Methods Med Res 27:1785,
    doi:10.1177/0962280216669183 (eqs 7, 11, 15); SD by Wan et al. 2014 (see `wan2014`).
    S1 (range): w = 4/(4 + n^0.75), mean = w (a + b)/2 + (1 - w) m.
    S2 (both): w1 = 2.2/(2.2 + n^0.75), w2 = 0.7 - 0.72/n^0.55,
               mean = w1 (a + b)/2 + w2 (q1 + q3)/2 + (1 - w1 - w2) m.
    S3 (IQR): w = 0.7 + 0.39/n, mean = w (q1 + q3)/2 + (1 - w) m."""
    n = np.asarray(n, dtype=float)
    m = np.asarray(median, dtype=float)
    _, sd = wan2014(n, median=median, q1=q1, q3=q3, minimum=minimum, maximum=maximum)
    has_range = minimum is not None and maximum is not None
    has_iqr = q1 is not None and q3 is not None
    if has_range and has_iqr:
        a, b, lo, hi = (np.asarray(v, dtype=float) for v in (minimum, maximum, q1, q3))
        w1, w2 = 2.2 / (2.2 + n**0.75), 0.7 - 0.72 / n**0.55
        mean = w1 * (a + b) / 2 + w2 * (lo + hi) / 2 + (1 - w1 - w2) * m
    elif has_range:
        a, b = np.asarray(minimum, dtype=float), np.asarray(maximum, dtype=float)
        w = 4 / (4 + n**0.75)
        mean = w * (a + b) / 2 + (1 - w) * m
    else:
        lo, hi = np.asarray(q1, dtype=float), np.asarray(q3, dtype=float)
        w = 0.7 + 0.39 / n
        mean = w * (lo + hi) / 2 + (1 - w) * m
    return _out(mean), sd


def design_effect(mean_cluster_size, icc):
    """Design effect of a cluster-randomised trial: 1 + (m - 1) ICC. Handbook §23.1.4."""
    return _out(1 + (np.asarray(mean_cluster_size, dtype=float) - 1) * np.asarray(icc, dtype=float))


def effective_n(n, mean_cluster_size, icc):
    """Effective sample size of a cluster trial's arm: n / design effect. Handbook §23.1.4."""
    return _out(np.asarray(n, dtype=float) / design_effect(mean_cluster_size, icc))
