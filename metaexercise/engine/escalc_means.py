"""Two independent groups with means ``m1i, m2i``, SDs ``sd1i, sd2i`` and sizes ``n1i, n2i``, as metafor
3.8-1's `escalc` computes them. d = (m1 − m2)/s_p with the pooled SD s_p (the SD of group 2 for SMD1/SMD1H),
m = n1 + n2 − 2 (n2 − 1 for SMD1/SMD1H) and Hedges' exact correction c(m) (`hedges_correction`).

- ``MD``   m1 − m2; vi = sd1²/n1 + sd2²/n2 (``vtype="LS"``/``"UB"``) or s_p²(1/n1 + 1/n2) (``"HO"``)
  (Borenstein 2009, eqs. 12.5, 12.3).
- ``SMD``  Hedges' g = c(m)·d (Hedges 1981); vi = 1/n1 + 1/n2 + g²/(2n) (``"LS"``, Hedges 1982 eq. 8),
  1/n1 + 1/n2 + (1 − (m−2)/(m c(m)²))·g² (``"UB"``, Hedges 1983 eq. 9), c(m)²(1/n1 + 1/n2 + d²/(2n))
  (``"LS2"``, Borenstein 2009 eq. 12.17), or with the n-weighted mean g (``"AV"``). With ``di`` (Cohen's d) or
  ``ti`` (t-statistics, d = t·√(1/n1 + 1/n2)) given for a study, its means and SDs are not needed.
- ``SMD1`` the same with group 2's SD (Glass's Δ corrected, n = n2); ``SMD1H`` with the heteroscedastic
  vi = (sd1²/sd2²)/n1 + 1/n2 + g²/(2 n2).
- ``SMDH`` c(m)(m1 − m2)/√((sd1² + sd2²)/2) with Bonett's (2008, 2009) heteroscedastic variance (``"LS"``;
  metafor plugs in the corrected value) or the plain delta-method one (``"LS2"``).
- ``ROM``  log(m1/m2); vi = sd1²/(n1 m1²) + sd2²/(n2 m2²) (``"LS"``, Hedges et al. 1999 eq. 1), with s_p for
  both SDs (``"HO"``), with each group's n-weighted mean CV (``"AV"``) or one CV pooled over both groups
  (``"AVHO"``).
- ``RPB``  point-biserial r = d/√(d² + h), h = m/n1 + m/n2 (Tate 1954; vi for fixed group sizes ``"ST"``/``"LS"``
  or cross-sectional sampling ``"CS"``); ``RBIS`` biserial r with Soper's (1914) variance (Jacobs &
  Viechtbauer 2017).
- ``D2ORL``/``D2OR`` π/√3·d and ``D2ORN`` 1.65·d: log odds ratios from d (Hasselblad & Hedges 1995; Cox & Snell).
- ``CVR``  log CV ratio with small-sample terms, ``VR`` log SD ratio (Nakagawa et al. 2015, eq. 12 without the
  correlation terms).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from metaexercise.engine.escalc_common import (
    Args,
    Computed,
    hedges_correction,
    isna,
    scalar_vtype,
    stop_if,
    vtype_vector,
    wmean,
)

MEASURES: tuple[str, ...] = ("MD", "SMD", "SMDH", "SMD1", "SMD1H", "ROM", "RPB", "RBIS", "D2OR", "D2ORN",
                             "D2ORL", "CVR", "VR")
_NEEDS = {"VR": ("sd1i", "sd2i", "n1i", "n2i"), "SMD1": ("m1i", "m2i", "sd2i", "n1i", "n2i")}
_ALL = ("m1i", "m2i", "sd1i", "sd2i", "n1i", "n2i")


def _inputs(measure: str, a: Args) -> dict[str, np.ndarray | None]:
    if measure == "SMD" and (a.get("di") is not None or a.get("ti") is not None):
        n1i, n2i, di, ti, *given = a.need("n1i", "n2i", optional=("di", "ti") + _ALL[:4])
        k = len(n1i)
        full = np.full(k, np.nan)
        m1i, m2i, sd1i, sd2i = (full.copy() if g is None else g.copy() for g in given)
        if ti is not None:  # metafor: di <- replmiss(di, ti * sqrt(1/n1i + 1/n2i))
            d_t = ti * np.sqrt(1 / n1i + 1 / n2i)
            di = d_t if di is None else np.where(np.isnan(di), d_t, di)
        has_d = ~np.isnan(di)
        m1i[has_d], m2i[has_d], sd1i[has_d], sd2i[has_d] = di[has_d], 0.0, 1.0, 1.0
        return dict(m1i=m1i, m2i=m2i, sd1i=sd1i, sd2i=sd2i, n1i=n1i, n2i=n2i)
    needed = _NEEDS.get(measure, _ALL)
    arrays = a.need(*needed, optional=tuple(n for n in _ALL if n not in needed))
    return dict(zip(needed + tuple(n for n in _ALL if n not in needed), arrays))


def compute(measure: str, a: Args, *, add: float, to: str, vtype) -> Computed:
    x = _inputs(measure, a)
    m1, m2, sd1, sd2, n1, n2 = (x[n] for n in _ALL)
    for name in ("sd1i", "sd2i"):
        if x[name] is not None:
            stop_if(measure, name, x[name] < 0, "is negative", x[name])
    stop_if(measure, "n1i", n1 <= 0, "is <= 0", n1)
    stop_if(measure, "n2i", n2 <= 0, "is <= 0", n2)
    k = len(n1)
    used = [x[n] for n in _NEEDS.get(measure, _ALL)]
    na = isna(*used)
    ni = n1 + n2
    one_sd = measure in ("SMD1", "SMD1H")
    mi = n2 - 1 if one_sd else ni - 2
    npi = n2 if one_sd else ni
    cm = None
    with np.errstate(divide="ignore", invalid="ignore"):
        sdp = sd2 if one_sd else np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / mi)
        d = (m1 - m2) / sdp if m1 is not None and m2 is not None else None
        if measure in ("SMD", "SMD1", "SMDH", "SMD1H"):
            cm = hedges_correction(mi)
            na |= np.isnan(cm)  # metafor's .cmicalc gives NA for m <= 1
        yi, vi = _measure(measure, vtype, k, m1, m2, sd1, sd2, n1, n2, ni, mi, npi, sdp, d, cm)
    return Computed(yi, vi, ni, na)


def _measure(measure, vtype, k, m1, m2, sd1, sd2, n1, n2, ni, mi, npi, sdp, d, cm):
    if measure == "MD":
        vt = vtype_vector(measure, vtype, k, ("UB", "LS", "HO"))
        return m1 - m2, np.where(vt == "HO", sdp**2 * (1 / n1 + 1 / n2), sd1**2 / n1 + sd2**2 / n2)
    if measure in ("SMD", "SMD1"):
        vt = vtype_vector(measure, vtype, k, ("UB", "LS", "LS2", "AV"))
        g = cm * d
        gbar = wmean(g, ni)
        base = 1 / n1 + 1 / n2
        vi = np.select([vt == "UB", vt == "LS", vt == "AV"],
                       [base + (1 - (mi - 2) / (mi * cm**2)) * g**2, base + g**2 / (2 * npi),
                        base + gbar**2 / (2 * npi)],
                       cm**2 * (base + d**2 / (2 * npi)))
        return g, vi
    if measure == "SMDH":
        code = scalar_vtype(measure, vtype, ("LS", "LS2"))
        s2 = sd1**2 + sd2**2
        g = cm * (m1 - m2) / np.sqrt(s2 / 2)
        if code == "LS":  # Bonett (2009) with the corrected value plugged in, as metafor does
            vi = cm**2 * (g**2 * (sd1**4 / (n1 - 1) + sd2**4 / (n2 - 1)) / (2 * s2**2)
                          + (sd1**2 / (n1 - 1) + sd2**2 / (n2 - 1)) / (s2 / 2))
        else:
            vi = (g**2 * sd1**2 / (2 * n1 * s2**2) + g**2 * sd2**2 / (2 * n2 * s2**2)
                  + 2 * sd1**2 / (n1 * s2) + 2 * sd2**2 / (n2 * s2))
        return g, vi
    if measure == "SMD1H":
        g = cm * d
        return g, (sd1**2 / sd2**2) / n1 + 1 / n2 + g**2 / (2 * n2)
    if measure == "ROM":
        return np.log(m1 / m2), _rom_vi(vtype, k, m1, m2, sd1, sd2, n1, n2, sdp)
    if measure in ("RPB", "RBIS"):
        return _biserial(measure, vtype, k, n1, n2, ni, mi, d)
    if measure in ("D2OR", "D2ORL", "D2ORN"):
        f = np.pi / np.sqrt(3) if measure != "D2ORN" else 1.65
        return f * d, f**2 * (1 / n1 + 1 / n2 + d**2 / (2 * ni))
    if measure == "CVR":
        yi = np.log(sd1 / m1) + 1 / (2 * (n1 - 1)) - np.log(sd2 / m2) - 1 / (2 * (n2 - 1))
        return yi, 1 / (2 * (n1 - 1)) + sd1**2 / (n1 * m1**2) + 1 / (2 * (n2 - 1)) + sd2**2 / (n2 * m2**2)
    # VR
    return (np.log(sd1 / sd2) + 1 / (2 * (n1 - 1)) - 1 / (2 * (n2 - 1)),
            1 / (2 * (n1 - 1)) + 1 / (2 * (n2 - 1)))


def _rom_vi(vtype, k, m1, m2, sd1, sd2, n1, n2, sdp):
    vt = vtype_vector("ROM", vtype, k, ("LS", "HO", "AV", "AVHO"))
    cv1, cv2 = sd1 / m1, sd2 / m2
    cv1bar, cv2bar = wmean(cv1, n1), wmean(cv2, n2)
    ok = ~(np.isnan(n1) | np.isnan(n2) | np.isnan(cv1) | np.isnan(cv2))
    cvbar = (np.sum(n1[ok] * cv1[ok]) + np.sum(n2[ok] * cv2[ok])) / np.sum((n1 + n2)[ok])
    return np.select([vt == "LS", vt == "HO", vt == "AV"],
                     [sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2), sdp**2 / (n1 * m1**2) + sdp**2 / (n2 * m2**2),
                      cv1bar**2 / n1 + cv2bar**2 / n2],
                     cvbar**2 * (1 / n1 + 1 / n2))


def _biserial(measure, vtype, k, n1, n2, ni, mi, d):
    h = mi / n1 + mi / n2
    rpb = d / np.sqrt(d**2 + h)
    if measure == "RPB":
        vt = vtype_vector(measure, vtype, k, ("ST", "LS", "CS"))
        stratified = h**2 / (h + d**2) ** 3 * (1 / n1 + 1 / n2 + d**2 / (2 * ni))
        cross = (1 - rpb**2) ** 2 * (ni * rpb**2 / (4 * n1 * n2) + (2 - 3 * rpb**2) / (2 * ni))  # Tate (1954)
        return rpb, np.where(vt == "CS", cross, stratified)
    p1, p2 = n1 / ni, n2 / ni
    z = -special.ndtri(p1)  # qnorm(p1, lower.tail=FALSE)
    fz = np.exp(-z**2 / 2) / np.sqrt(2 * np.pi)
    yi = np.sqrt(p1 * p2) / fz * rpb
    yt = np.where(np.abs(yi) > 1, np.sign(yi), yi)
    vi = 1 / (ni - 1) * (p1 * p2 / fz**2 - (1.5 + (1 - p1 * z / fz) * (1 + p2 * z / fz)) * yt**2 + yt**4)
    return yi, vi
