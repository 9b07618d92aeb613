"""Single-group proportions (``xi`` events out of ``ni``, or ``xi`` and non-events ``mi``) and incidence rates
(``xi`` events over person-time ``ti``), as metafor 3.8-1's `escalc` computes them.

Proportions p = x/n (after metafor's ``add``/``to`` adjustment of x and n − x):

- ``PR``  raw proportion; vi = p(1−p)/n (``vtype="LS"``), p(1−p)/(n−1) (``"UB"``), or with the n-weighted
  mean proportion p̄ in place of p (``"AV"``).
- ``PLN`` log proportion; vi = 1/x − 1/n (``"LS"``) or 1/(p̄n) − 1/n (``"AV"``).
- ``PLO`` logit (log odds); vi = 1/x + 1/(n−x) (``"LS"``) or 1/(p̄n) + 1/((1−p̄)n) (``"AV"``).
- ``PAS`` arcsine square root, asin √p, vi = 1/(4n) (Rücker et al. 2009).
- ``PFT`` Freeman–Tukey double arcsine, ½[asin √(x/(n+1)) + asin √((x+1)/(n+1))], vi = 1/(4n + 2)
  (Freeman & Tukey 1950).

Incidence rates r = x/t: ``IR`` (vi = r/t), ``IRLN`` (log r, vi = 1/x), ``IRS`` (√r, vi = 1/(4t)), ``IRFT``
(Freeman–Tukey ½[√r + √(r + 1/t)], vi = 1/(4t)). metafor's default ``add`` is 0 for PAS, PFT, IRS and IRFT,
½ otherwise; ``to="only0"`` adds it only to studies with a zero cell.
"""

from __future__ import annotations

import numpy as np

from metaexercise.engine.escalc_common import Args, Computed, add_to, isna, stop_if, vtype_vector, wmean

PROPORTIONS: tuple[str, ...] = ("PR", "PLN", "PLO", "PAS", "PFT")
RATES: tuple[str, ...] = ("IR", "IRLN", "IRS", "IRFT")
MEASURES: tuple[str, ...] = PROPORTIONS + RATES
_VTYPES = {"PR": ("UB", "LS", "AV"), "PLN": ("LS", "AV"), "PLO": ("LS", "AV")}


def compute(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    if measure in PROPORTIONS:
        return _proportion(measure, a, add=add, to=to, vtype=vtype)
    return _rate(measure, a, add=add, to=to)


def _proportion(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    xi, mi, ni = a.get("xi"), a.get("mi"), a.get("ni")
    if xi is None or (mi is None and ni is None):
        raise TypeError(f"escalc({measure!r}): give the events 'xi' and either the group sizes 'ni' or the "
                        "non-events 'mi'")
    xi, mi, ni = a.need("xi", optional=("mi", "ni"))
    if mi is not None and ni is not None:
        total = xi + mi
        stop_if(measure, "ni", (ni != total) & ~np.isnan(ni) & ~np.isnan(total), "is not equal to xi + mi", ni)
    if ni is not None:
        mi = ni - xi if mi is None else np.where(np.isnan(mi), ni - xi, mi)
    ni = xi + mi
    stop_if(measure, "xi", xi > ni, "is larger than the group size", xi)
    stop_if(measure, "xi", xi < 0, "is negative", xi)
    stop_if(measure, "mi", mi < 0, "is negative (mi = ni - xi: more events than the group size?)", mi)
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    k = len(xi)
    na = isna(xi, mi)
    ni_u = ni
    x, m = add_to([xi, mi], add, to)
    n = x + m
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        if measure in _VTYPES:
            vt = vtype_vector(measure, vtype, k, _VTYPES[measure])
            pbar = wmean(p, n)
        if measure == "PR":
            yi = p
            vi = np.select([vt == "UB", vt == "LS"], [p * (1 - p) / (n - 1), p * (1 - p) / n],
                           pbar * (1 - pbar) / n)
        elif measure == "PLN":
            yi = np.log(p)
            vi = np.where(vt == "LS", 1 / x - 1 / n, 1 / (pbar * n) - 1 / n)
        elif measure == "PLO":
            yi = np.log(p / (1 - p))
            vi = np.where(vt == "LS", 1 / x + 1 / m, 1 / (pbar * n) + 1 / ((1 - pbar) * n))
        elif measure == "PAS":
            yi = np.arcsin(np.sqrt(p))
            vi = 1 / (4 * n)
        else:  # PFT
            yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
            vi = 1 / (4 * n + 2)
    return Computed(yi, vi, ni_u, na)


def _rate(measure: str, a: Args, *, add: float, to: str) -> Computed:
    xi, ti = a.need("xi", "ti")
    stop_if(measure, "xi", xi < 0, "is negative", xi)
    stop_if(measure, "ti", ti <= 0, "(person-time) is <= 0", ti)
    (x,) = add_to([xi], add, to)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x / ti
        if measure == "IR":
            yi, vi = r, r / ti
        elif measure == "IRLN":
            yi, vi = np.log(r), 1 / x
        elif measure == "IRS":
            yi, vi = np.sqrt(r), 1 / (4 * ti)
        else:  # IRFT
            yi, vi = 0.5 * (np.sqrt(r) + np.sqrt(r + 1 / ti)), 1 / (4 * ti)
    return Computed(yi, vi, ti, isna(xi, ti))
