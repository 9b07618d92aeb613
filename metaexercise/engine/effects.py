"""Effect sizes and their sampling variances, as metafor's `escalc` computes them.

Measures:

- ``"SMD"``: Hedges' g, the standardized mean difference with the exact small-sample correction
  c(m) = Γ(m/2) / (√(m/2) · Γ((m−1)/2)), m = n1 + n2 − 2 (Hedges 1981, J Educ Stat 6:107, eq. 6e), and
  metafor's default large-sample variance (``vtype="LS"``): v = 1/n1 + 1/n2 + g² / (2 (n1 + n2))
  (Hedges & Olkin 1985, eq. 5.15; metafor 3.8 `escalc`). Applied to change scores (means and SDs of change),
  as the review did, it gives the SMD of change scores: pass the change means and change SDs as
  ``m1i``/``sd1i`` and ``m2i``/``sd2i``.
- ``"MD"``: the raw mean difference m1 − m2 with v = sd1²/n1 + sd2²/n2 (metafor's default, heteroscedastic).
- ``"GEN"``: a generic effect given directly as ``yi`` with its standard error ``sei`` or a (symmetric, Wald)
  confidence interval ``ci_lb``/``ci_ub`` at level ``level``: se = (ub − lb) / (2 z₁₋α/₂)
  (Cochrane Handbook 6.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

Measure = Literal["SMD", "MD", "GEN"]
MEASURES: tuple[str, ...] = ("SMD", "MD", "GEN")


@dataclass(frozen=True, slots=True)
class EffectSizes:
    """Observed effects ``yi`` and sampling variances ``vi`` (1-D float arrays of equal length)."""

    yi: np.ndarray
    vi: np.ndarray
    measure: str

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)

    def __len__(self) -> int:
        return len(self.yi)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"yi": self.yi, "vi": self.vi})


def hedges_correction(m) -> np.ndarray:
    """Exact bias-correction factor c(m) = exp(lnΓ(m/2) − ln√(m/2) − lnΓ((m−1)/2)), NaN for m ≤ 1.

    Hedges (1981), eq. 6e; metafor's `.cmicalc`.
    """
    m = np.asarray(m, dtype=float)
    out = np.full(m.shape, np.nan)
    ok = m > 1
    mm = m[ok]
    out[ok] = np.exp(special.gammaln(mm / 2) - np.log(np.sqrt(mm / 2)) - special.gammaln((mm - 1) / 2))
    return out


def _arr(name: str, value, k: int | None = None) -> np.ndarray:
    if value is None:
        raise TypeError(f"escalc: argument {name!r} is required for this measure")
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"escalc: {name!r} must be one-dimensional, got shape {a.shape}")
    if k is not None and len(a) != k:
        raise ValueError(f"escalc: {name!r} has length {len(a)}, expected {k} (one value per study)")
    return a


def _check_positive(name: str, a: np.ndarray, *, strict: bool) -> None:
    bad = np.flatnonzero(a <= 0) if strict else np.flatnonzero(a < 0)
    if bad.size:
        what = "<= 0" if strict else "negative"
        raise ValueError(f"escalc: {name} is {what} at positions {bad.tolist()} (0-based): {a[bad].tolist()}")


def escalc(
    measure: Measure,
    *,
    m1i=None,
    sd1i=None,
    n1i=None,
    m2i=None,
    sd2i=None,
    n2i=None,
    yi=None,
    sei=None,
    ci_lb=None,
    ci_ub=None,
    level: float = 95,
) -> EffectSizes:
    """Compute effect sizes and sampling variances (metafor 3.8 `escalc`, defaults ``vtype="LS"``).

    Arrays, lists or pandas Series in; an :class:`EffectSizes` with numpy arrays ``yi`` and ``vi`` out.
    A positive SMD means group 1 has the larger mean.
    """
    if measure not in MEASURES:
        raise ValueError(f"escalc: unknown measure {measure!r}; choose one of {MEASURES}")
    if measure == "GEN":
        y = _arr("yi", yi)
        k = len(y)
        if sei is not None:
            se = _arr("sei", sei, k)
        elif ci_lb is not None and ci_ub is not None:
            lb, ub = _arr("ci_lb", ci_lb, k), _arr("ci_ub", ci_ub, k)
            crit = -special.ndtri((1 - level / 100) / 2)  # scipy.stats' norm.isf
            se = (ub - lb) / (2 * crit)
        else:
            raise TypeError("escalc('GEN'): give 'sei' or both 'ci_lb' and 'ci_ub'")
        _check_positive("sei", se, strict=False)
        return EffectSizes(yi=y, vi=se**2, measure="GEN")

    m1 = _arr("m1i", m1i)
    k = len(m1)
    sd1, n1 = _arr("sd1i", sd1i, k), _arr("n1i", n1i, k)
    m2, sd2, n2 = _arr("m2i", m2i, k), _arr("sd2i", sd2i, k), _arr("n2i", n2i, k)
    _check_positive("sd1i", sd1, strict=False)
    _check_positive("sd2i", sd2, strict=False)
    _check_positive("n1i", n1, strict=True)
    _check_positive("n2i", n2, strict=True)

    if measure == "MD":
        return EffectSizes(yi=m1 - m2, vi=sd1**2 / n1 + sd2**2 / n2, measure="MD")

    ni = n1 + n2
    mi = ni - 2
    sdpi = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / mi)
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (m1 - m2) / sdpi
    g = hedges_correction(mi) * di
    vi = 1 / n1 + 1 / n2 + g**2 / (2 * ni)
    return EffectSizes(yi=g, vi=vi, measure="SMD")
