"""Change scores and matched designs: one group measured twice (or matched pairs), with means ``m1i, m2i``,
SDs ``sd1i, sd2i``, the correlation ``ri`` between the two measurements and size ``ni``, as metafor 3.8-1's
`escalc` computes them (m1 is usually the post-test, m2 the pre-test). m = n − 1, c(m) Hedges' correction,
s_d² = sd1² + sd2² − 2 r sd1 sd2 the variance of the differences.

- ``MC``    m1 − m2, vi = s_d²/n.
- ``SMCC``  change-score standardization g = c(m)(m1 − m2)/s_d (Gibbons et al. 1993); vi = 1/n + g²/(2n)
  (``vtype="LS"``) or c(m)²(1/n + d²/(2n)) (``"LS2"``).
- ``SMCR``  raw-score standardization g = c(m)(m1 − m2)/sd1 (Becker 1988; Morris 2000); vi = 2(1 − r)/n + g²/(2n)
  (``"LS"``) or c(m)²(2(1 − r)/n + d²/(2n)) (``"LS2"``, Borenstein et al. 2009 corrected). ``sd2i`` not needed.
- ``SMCRH`` the same g with Bonett's (2008) heteroscedastic vi = c(m)²[s_d²/(sd1²(n − 1)) + g²/(2(n − 1))].
- ``ROMC``  log(m1/m2), vi = sd1²/(n m1²) + sd2²/(n m2²) − 2r sd1 sd2/(m1 m2 n) (Lajeunesse 2011, eq. 6).
- ``CVRC``  log CV ratio and ``VRC`` log SD ratio for paired data, vi with (1 − r²)/(n − 1).
"""

from __future__ import annotations

import numpy as np

from metaexercise.engine.escalc_common import Args, Computed, hedges_correction, isna, stop_if, vtype_vector

MEASURES: tuple[str, ...] = ("MC", "SMCC", "SMCR", "SMCRH", "ROMC", "CVRC", "VRC")
_NEEDS = {"SMCR": ("m1i", "m2i", "sd1i", "ni", "ri"), "VRC": ("sd1i", "sd2i", "ni", "ri")}


def compute(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    needed = _NEEDS.get(measure, ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"))
    x = dict(zip(needed, a.need(*needed)))
    m1, m2, sd1, sd2, ni, ri = (x.get(n) for n in ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"))
    for name in ("sd1i", "sd2i"):
        if name in x:
            stop_if(measure, name, x[name] < 0, "is negative", x[name])
    stop_if(measure, "ri", np.abs(ri) > 1, "is > 1 or < -1", ri)
    stop_if(measure, "ni", ni <= 0, "is <= 0", ni)
    k = len(ni)
    na = isna(*x.values())
    mi = ni - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure in ("SMCC", "SMCR", "SMCRH"):
            cm = hedges_correction(mi)
            na |= np.isnan(cm)  # metafor's .cmicalc gives NA for m <= 1
        if measure == "MC":
            yi, vi = m1 - m2, (sd1**2 + sd2**2 - 2 * ri * sd1 * sd2) / ni
        elif measure == "SMCC":
            d = (m1 - m2) / np.sqrt(sd1**2 + sd2**2 - 2 * ri * sd1 * sd2)
            yi = cm * d
            vt = vtype_vector(measure, vtype, k, ("LS", "LS2"))
            vi = np.where(vt == "LS", 1 / ni + yi**2 / (2 * ni), cm**2 * (1 / ni + d**2 / (2 * ni)))
        elif measure == "SMCR":
            d = (m1 - m2) / sd1
            yi = cm * d
            vt = vtype_vector(measure, vtype, k, ("LS", "LS2"))
            vi = np.where(vt == "LS", 2 * (1 - ri) / ni + yi**2 / (2 * ni),
                          cm**2 * (2 * (1 - ri) / ni + d**2 / (2 * ni)))
        elif measure == "SMCRH":
            yi = cm * (m1 - m2) / sd1
            vd = sd1**2 + sd2**2 - 2 * ri * sd1 * sd2
            vi = cm**2 * (vd / (sd1**2 * (ni - 1)) + yi**2 / (2 * (ni - 1)))
        elif measure == "ROMC":
            yi = np.log(m1 / m2)
            vi = sd1**2 / (ni * m1**2) + sd2**2 / (ni * m2**2) - 2 * ri * sd1 * sd2 / (m1 * m2 * ni)
        elif measure == "CVRC":
            yi = np.log(sd1 / m1) - np.log(sd2 / m2)
            vi = (1 - ri**2) / (ni - 1) + (m1**2 * sd2**2 + m2**2 * sd1**2 - 2 * m1 * m2 * ri * sd1 * sd2) / (
                m1**2 * m2**2 * ni)
        else:  # VRC
            yi, vi = np.log(sd1 / sd2), (1 - ri**2) / (ni - 1)
    return Computed(yi, vi, ni, na)
