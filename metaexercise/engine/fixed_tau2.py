"""The standard error metafor 3.8's `rma.uni` reports for a τ² fixed by the user (``tau2=``): the estimator's own
SE formula evaluated at the fixed value (metafor computes the chosen method's quantities with τ² = tau2.val and
then its ``se.tau2``), so ``print`` shows "(SE = ...)" as metafor's does. The formulas are those of engine.tau2
(Viechtbauer 2005, J Educ Behav Stat 30:261, for ML/REML; the moment estimators' delta-method SEs), evaluated
through engine.wls's traces.
"""

from __future__ import annotations

import math

import numpy as np

from metaexercise.engine.tau2 import Control
from metaexercise.engine.wls import wls


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else math.nan


def se_fixed_tau2(method: str, yi: np.ndarray, vi: np.ndarray, X: np.ndarray, tau2: float,
                  control: Control) -> float:
    """SE of τ² = `tau2` (fixed) under `method`'s formula; NaN where metafor's formula divides by zero."""
    k, p = X.shape
    t = max(tau2, 0.0)
    if method == "REML":
        trpp = wls(X, yi, 1 / (vi + tau2)).tr_PP()
        return _sqrt(2 / trpp) if trpp != 0.0 else math.nan
    w = 1 / (vi + tau2)
    if method == "ML":
        return _sqrt(2 / float(np.dot(w, w)))
    if method in ("EB", "PM"):
        return _sqrt(2 * k**2 / (k - p) / float(w.sum()) ** 2) if k > p else math.nan
    if method in ("DL", "HS"):
        f = wls(X, yi, 1 / vi)
        trp = f.tr_P()
        scale = trp if method == "DL" else float(f.w.sum())
        return _sqrt(1 / scale**2 * (2 * (k - p) + 4 * t * trp + 2 * t**2 * f.tr_PP()))
    if method == "HE":
        if k == p:
            return math.nan
        f = wls(X, yi, np.ones(k))
        return _sqrt(1 / (k - p) ** 2 * (2 * f.tr_PVPV(vi) + 4 * t * f.tr_PV(vi) + 2 * t**2 * (k - p)))
    if method == "SJ":
        if k == p:
            return math.nan
        t0 = float(np.mean((yi - yi.mean()) ** 2)) if control.tau2_init is None else control.tau2_init
        f = wls(X, yi, 1 / (vi + t0))
        return _sqrt(t0**2 / (k - p) ** 2 * (2 * f.tr_PVPV(vi) + 4 * t * f.tr_PPV(vi) + 2 * t**2 * f.tr_PP()))
    return math.nan


__all__ = ["se_fixed_tau2"]
