"""Correlations (``ri``, ``ni``) and partial / semi-partial correlations from regression t-statistics (``ti``,
``ni``, ``mi`` predictors, ``r2i``), as metafor 3.8-1's `escalc` computes them.

- ``COR``  raw r; vi = (1 − r²)²/(n − 1) (``vtype="LS"``), or with the n-weighted mean r (``"AV"``).
- ``UCOR`` Olkin & Pratt's (1958) unbiased r·₂F₁(½, ½; (n−2)/2; 1 − r²) (missing for n ≤ 4); vi as COR, or
  (``"UB"``) the unbiased r_u² − [1 − (n−3)/(n−2)·(1 − r²)·₂F₁(1, 1; n/2; 1 − r²)] (Hedges 1989).
- ``ZCOR`` Fisher's r-to-z, ½ ln((1 + r)/(1 − r)), vi = 1/(n − 3).
- ``PCOR`` partial r = t/√(t² + n − m − 1), vi = (1 − r²)²/(n − m − 1) (``"LS"``) or with the mean r (``"AV"``).
- ``ZPCOR`` its r-to-z, vi = 1/(n − m − 1).
- ``SPCOR`` semi-partial r = t·√(1 − R²)/√(n − m − 1), vi = [R⁴ − 2R² + (R² − r²) + 1 − (R² − r²)²]/n
  (Aloe & Thompson 2013; ``"AV"`` with the mean r).

Sampling variances for n ≤ 3 are missing (metafor sets them to NA). The hypergeometric function is
scipy's ``hyp2f1`` where metafor calls ``gsl::hyperg_2F1`` (both only for c > a + b, else NA).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from metaexercise.engine.escalc_common import Args, Computed, isna, stop_if, vtype_vector, wmean

CORRELATIONS: tuple[str, ...] = ("COR", "UCOR", "ZCOR")
PARTIALS: tuple[str, ...] = ("PCOR", "ZPCOR", "SPCOR")
MEASURES: tuple[str, ...] = CORRELATIONS + PARTIALS


def compute(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    if measure in CORRELATIONS:
        return _correlation(measure, a, vtype)
    return _partial(measure, a, vtype)


def _hyp2f1(a: float, b: float, c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """₂F₁(a, b; c; x) for 0 ≤ x ≤ 1 where c > a + b, NaN (metafor's NA) elsewhere (metafor's `.Fcalc`).

    scipy's ``hyp2f1`` for c ≤ 20; above, where it returns inf/NaN near x = 1 (scipy 1.17: c ≳ 100), the
    Gauss series Σ (a)ₙ(b)ₙ/((c)ₙ n!) xⁿ, whose terms fall at least as fast as n!Γ(c)/Γ(c + n) there.
    """
    c, x = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(x, dtype=float))
    out = np.full(c.shape, np.nan)
    ok = ~np.isnan(c) & ~np.isnan(x) & (c > a + b)
    small = ok & (c <= 20)
    out[small] = special.hyp2f1(a, b, c[small], x[small])
    big = ok & (c > 20)
    cb, xb = c[big], x[big]
    term = np.ones_like(cb)
    total = np.ones_like(cb)
    for n in range(2000):
        term = term * (a + n) * (b + n) / ((cb + n) * (n + 1)) * xb
        total += term
        if not np.any(term > 1e-17 * total):
            break
    out[big] = total
    return out


def _correlation(measure: str, a: Args, vtype) -> Computed:
    ri, ni = a.need("ri", "ni")
    stop_if(measure, "ri", np.abs(ri) > 1, "is > 1 or < -1", ri)
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    k = len(ri)
    codes = [vtype] if isinstance(vtype, str) else list(vtype)
    if measure != "UCOR" and "UB" in codes:
        raise ValueError(f"escalc({measure!r}): vtype='UB' is only permitted with measure='UCOR'")
    if measure == "UCOR" and np.any(ni <= 4):
        warnings.warn("Cannot compute the bias-corrected correlation coefficient when ni <= 4.", UserWarning,
                      stacklevel=4)
    if measure == "ZCOR" and np.any(ni <= 3):
        warnings.warn("Cannot estimate the sampling variance when ni <= 3.", UserWarning, stacklevel=4)
    na = isna(ri, ni) | (ni <= 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "ZCOR":
            yi = 0.5 * np.log((1 + ri) / (1 - ri))
            vi = 1 / (ni - 3)
        else:
            if measure == "COR":
                yi = ri.copy()
            else:
                yi = ri * _hyp2f1(0.5, 0.5, (ni - 2) / 2, 1 - ri**2)
                na |= ni <= 4
            vt = vtype_vector(measure, vtype, k, ("UB", "LS", "AV") if measure == "UCOR" else ("LS", "AV"))
            ybar = wmean(yi, ni)
            ub = yi**2 - (1 - (ni - 3) / (ni - 2) * (1 - ri**2) * _hyp2f1(1.0, 1.0, ni / 2, 1 - ri**2))
            vi = np.select([vt == "UB", vt == "LS"], [ub, (1 - yi**2) ** 2 / (ni - 1)], (1 - ybar**2) ** 2 / (ni - 1))
    vi = np.where(ni <= 3, np.nan, vi)
    return Computed(yi, vi, ni, na)


def _partial(measure: str, a: Args, vtype) -> Computed:
    if measure == "SPCOR":
        ti, ni, mi, r2i = a.need("ti", "ni", "mi", "r2i")
        stop_if(measure, "r2i", (r2i > 1) | (r2i < 0), "is > 1 or < 0", r2i)
    else:
        ti, ni, mi = a.need("ti", "ni", "mi")
        r2i = None
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    stop_if(measure, "mi", mi < 0, "(number of predictors) is negative", mi)
    stop_if(measure, "ni - mi - 1", ni - mi - 1 <= 0, "(degrees of freedom) is <= 0", ni - mi - 1)
    k = len(ti)
    df = ni - mi - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "SPCOR":
            yi = ti * np.sqrt(1 - r2i) / np.sqrt(df)
        else:
            yi = ti / np.sqrt(ti**2 + df)
        if measure == "ZPCOR":
            yi = 0.5 * np.log((1 + yi) / (1 - yi))
            vi = 1 / df
        else:
            vt = vtype_vector(measure, vtype, k, ("LS", "AV"))
            r = np.where(vt == "LS", yi, wmean(yi, ni))
            if measure == "PCOR":
                vi = (1 - r**2) ** 2 / df
            else:
                vi = (r2i**2 - 2 * r2i + (r2i - r**2) + 1 - (r2i - r**2) ** 2) / ni
    return Computed(yi, vi, ni, isna(ti, ni, mi, r2i))
