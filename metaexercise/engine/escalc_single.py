"""Single-group measures from means, reliabilities and genotype counts, as metafor 3.8-1's `escalc` computes them.

Means ``mi``, SDs ``sdi``, sizes ``ni``:

- ``MN``   the mean, vi = sd²/n.
- ``MNLN`` log mean, vi = sd²/(n m²).
- ``CVLN`` log coefficient of variation with small-sample term, log(sd/m) + 1/(2(n − 1)),
  vi = 1/(2(n − 1)) + sd²/(n m²) (Nakagawa et al. 2015, eq. 27 without the correlation term).
- ``SDLN`` log SD with the same term, vi = 1/(2(n − 1)); ``mi`` not needed.
- ``SMN``  standardized mean c(n − 1)·m/sd, vi = 1/n + g²/(2n).

Cronbach's alphas ``ai`` with ``mi`` items and ``ni`` persons: ``ARAW`` (raw, vi = 2m(1 − α)²/((m − 1)(n − 2))),
``AHW`` (Hakstian & Whalen 1976, 1 − (1 − α)^⅓) and ``ABT`` (Bonett 2002, −ln(1 − α)).

``REH``: relative excess heterozygosity (Ziegler et al. 2011) from the counts of homozygous dominant ``ai``,
heterozygous ``bi`` and homozygous recessive ``ci`` individuals: log(p1) − log(2√(p0 p2)),
vi = ((1 − p1)/(4 p0 p2) + 1/p1)/n.
"""

from __future__ import annotations

import numpy as np

from metaexercise.engine.escalc_common import Args, Computed, hedges_correction, isna, stop_if

MEANS: tuple[str, ...] = ("MN", "MNLN", "CVLN", "SDLN", "SMN")
ALPHAS: tuple[str, ...] = ("ARAW", "AHW", "ABT")
MEASURES: tuple[str, ...] = MEANS + ALPHAS + ("REH",)


def compute(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure in MEANS:
            return _mean(measure, a)
        if measure in ALPHAS:
            return _alpha(measure, a)
        return _reh(a)


def _mean(measure: str, a: Args) -> Computed:
    if measure == "SDLN":
        sdi, ni = a.need("sdi", "ni")
        mi = None
    else:
        mi, sdi, ni = a.need("mi", "sdi", "ni")
    stop_if(measure, "sdi", sdi < 0, "is negative", sdi)
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    if measure in ("MNLN", "CVLN"):
        stop_if(measure, "mi", mi < 0, "(mean) is negative", mi)
    na = isna(mi, sdi, ni)
    if measure == "MN":
        yi, vi = mi.copy(), sdi**2 / ni
    elif measure == "MNLN":
        yi, vi = np.log(mi), sdi**2 / (ni * mi**2)
    elif measure == "CVLN":
        yi, vi = np.log(sdi / mi) + 1 / (2 * (ni - 1)), 1 / (2 * (ni - 1)) + sdi**2 / (ni * mi**2)
    elif measure == "SDLN":
        yi, vi = np.log(sdi) + 1 / (2 * (ni - 1)), 1 / (2 * (ni - 1))
    else:  # SMN
        cm = hedges_correction(ni - 1)
        na |= np.isnan(cm)
        yi = cm * mi / sdi
        vi = 1 / ni + yi**2 / (2 * ni)
    return Computed(yi, vi, ni, na)


def _alpha(measure: str, a: Args) -> Computed:
    ai, mi, ni = a.need("ai", "mi", "ni")
    stop_if(measure, "ai", ai > 1, "(alpha) is > 1", ai)
    stop_if(measure, "mi", mi < 2, "(number of items) is < 2", mi)
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    if measure == "ARAW":
        yi, vi = ai.copy(), 2 * mi * (1 - ai) ** 2 / ((mi - 1) * (ni - 2))
    elif measure == "AHW":
        yi = 1 - (1 - ai) ** (1 / 3)
        vi = 18 * mi * (ni - 1) * (1 - ai) ** (2 / 3) / ((mi - 1) * (9 * ni - 11) ** 2)
    else:  # ABT
        yi, vi = -np.log(1 - ai), 2 * mi / ((mi - 1) * (ni - 2))
    return Computed(yi, vi, ni, isna(ai, mi, ni))


def _reh(a: Args) -> Computed:
    ai, bi, ci = a.need("ai", "bi", "ci")
    for name, x in (("ai", ai), ("bi", bi), ("ci", ci)):
        stop_if("REH", name, x < 0, "(group size) is negative", x)
    ni = ai + bi + ci
    p0, p1, p2 = ai / ni, bi / ni, ci / ni
    yi = np.log(p1) - np.log(2 * np.sqrt(p0 * p2))
    vi = ((1 - p1) / (4 * p0 * p2) + 1 / p1) / ni
    return Computed(yi, vi, ni, isna(ai, bi, ci))
