"""metafor 3.8-1's transformation helpers (R/transf.r), Python-style: ``transf.ilogit`` is `transf_ilogit`.

Each takes values ``xi`` (array-like or scalar) and returns a float array (a float for a scalar), so it can be
passed as ``transf=`` to back-transform estimates and interval bounds. Back-transformations that need sample
sizes or person-times take them as metafor does (``ni``, ``ti``); the ``*_int`` versions integrate over a
normal distribution of true effects with variance ``targs["tau2"]`` (metafor's ``targs``), with R's
``integrate`` settings (QUADPACK QAGS, relative and absolute tolerance ε^¼ ≈ 1.2e-4, 100 subintervals) so
that the numbers are metafor's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import integrate, special

__all__ = [
    "transf_rtoz", "transf_ztor", "transf_ztor_int", "transf_exp", "transf_exp_int", "transf_logit",
    "transf_ilogit", "transf_ilogit_int", "transf_arcsin", "transf_iarcsin", "transf_pft", "transf_ipft",
    "transf_ipft_hm", "transf_isqrt", "transf_irft", "transf_iirft", "transf_ahw", "transf_iahw", "transf_abt",
    "transf_iabt", "transf_dtou1", "transf_dtou2", "transf_dtou3", "transf_dtocles", "transf_dtorpb",
    "transf_dtobesd", "transf_dtomd", "transf_logortord", "transf_logortorr",
]

_R_INT_TOL = np.finfo(float).eps ** 0.25  # R's integrate(): rel.tol = abs.tol = .Machine$double.eps^0.25


def _x(xi) -> np.ndarray:
    try:
        return np.asarray(xi, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"transf: 'xi' must be numeric, got {xi!r:.80}") from exc


def _out(z: np.ndarray, xi):
    return float(z) if np.ndim(xi) == 0 and np.ndim(z) == 0 else z


def _norm_pdf(x, mean, sd):
    return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


# -- correlations ------------------------------------------------------------------------------------------------
def transf_rtoz(xi):
    """Fisher's r-to-z, atanh(r) (metafor ``transf.rtoz``)."""
    return _out(np.arctanh(_x(xi)), xi)


def transf_ztor(xi):
    """Fisher's z back to r, tanh(z) (metafor ``transf.ztor``)."""
    return _out(np.tanh(_x(xi)), xi)


# -- log and logit -----------------------------------------------------------------------------------------------
def transf_exp(xi):
    """exp(x): log risk/odds/rate ratios back to ratios (R's ``exp``, metafor's usual ``transf=exp``)."""
    return _out(np.exp(_x(xi)), xi)


def transf_logit(xi):
    """Logit, log(p/(1 − p)) (metafor ``transf.logit`` = R's ``qlogis``)."""
    return _out(special.logit(_x(xi)), xi)


def transf_ilogit(xi):
    """Inverse logit, 1/(1 + e^−x) (metafor ``transf.ilogit`` = R's ``plogis``)."""
    return _out(special.expit(_x(xi)), xi)


# -- integrals over a normal distribution of true effects --------------------------------------------------------
def _targs(name: str, targs) -> tuple[float, float | None, float | None]:
    """metafor's ``.chktargsint``: ``targs`` as a mapping (tau2, lower, upper) or a sequence in that order."""
    if targs is None:
        return 0.0, None, None
    if isinstance(targs, Mapping):
        unknown = set(targs) - {"tau2", "lower", "upper"}
        if unknown:
            raise ValueError(f"{name}: unknown targs {sorted(unknown)}; give tau2, lower, upper")
        t = dict(targs)
    else:
        seq = list(np.atleast_1d(targs))
        if len(seq) > 3:
            raise ValueError(f"{name}: targs has {len(seq)} values; give at most tau2, lower, upper")
        t = dict(zip(("tau2", "lower", "upper"), seq))
    tau2 = float(t.get("tau2", 0.0))
    if not tau2 >= 0:
        raise ValueError(f"{name}: targs tau2 must be >= 0, got {tau2!r}")
    lo, hi = t.get("lower"), t.get("upper")
    return tau2, None if lo is None else float(lo), None if hi is None else float(hi)


def _integrated(name: str, f, xi, targs):
    """E[f(θ)] for θ ~ N(x, τ²), integrated from x − 10τ to x + 10τ unless ``lower``/``upper`` are given
    (metafor's ``transf.*.int``); f(x) itself when τ² = 0; NaN for a missing x."""
    tau2, lower, upper = _targs(name, targs)
    x = _x(xi)
    flat = np.atleast_1d(x).ravel()
    if tau2 == 0:
        return _out(f(x), xi)
    sd = np.sqrt(tau2)
    out = np.full(flat.shape, np.nan)
    for j, m in enumerate(flat):  # one integral per value, as metafor's mapply
        if np.isnan(m):
            continue
        lo = m - 10 * sd if lower is None else lower
        hi = m + 10 * sd if upper is None else upper
        out[j] = integrate.quad(lambda z, m=m: f(z) * _norm_pdf(z, m, sd), lo, hi, epsabs=_R_INT_TOL,
                                epsrel=_R_INT_TOL, limit=100)[0]
    return _out(out.reshape(x.shape), xi)


def transf_exp_int(xi, targs=None):
    """E[exp(θ)], θ ~ N(xi, tau2) (metafor ``transf.exp.int``; ``targs={"tau2": ..., "lower": ..., "upper": ...}``)."""
    return _integrated("transf_exp_int", np.exp, xi, targs)


def transf_ilogit_int(xi, targs=None):
    """E[ilogit(θ)], θ ~ N(xi, tau2) (metafor ``transf.ilogit.int``)."""
    return _integrated("transf_ilogit_int", special.expit, xi, targs)


def transf_ztor_int(xi, targs=None):
    """E[tanh(θ)], θ ~ N(xi, tau2) (metafor ``transf.ztor.int``)."""
    return _integrated("transf_ztor_int", np.tanh, xi, targs)


# -- proportions -------------------------------------------------------------------------------------------------
def transf_arcsin(xi):
    """Arcsine square root, asin √p (metafor ``transf.arcsin``)."""
    return _out(np.arcsin(np.sqrt(_x(xi))), xi)


def transf_iarcsin(xi):
    """Back from the arcsine scale (measure PAS), sin²(x), 0 below 0 and 1 above π/2 (metafor ``transf.iarcsin``)."""
    x = _x(xi)
    z = np.sin(x) ** 2
    z = np.where(x < 0, 0.0, np.where(x > np.arcsin(1.0), 1.0, z))
    return _out(z, xi)


def transf_pft(xi, ni):
    """Freeman–Tukey double arcsine of a proportion p with n: ½[asin √(pn/(n+1)) + asin √((pn+1)/(n+1))]
    (metafor ``transf.pft``; Freeman & Tukey 1950)."""
    x, n = _x(xi), np.asarray(ni, dtype=float)
    with np.errstate(invalid="ignore"):
        z = 0.5 * (np.arcsin(np.sqrt(x * n / (n + 1))) + np.arcsin(np.sqrt((x * n + 1) / (n + 1))))
    return _out(z, xi)


def _ipft(x: np.ndarray, n) -> np.ndarray:
    """Miller's (1978) inverse of the Freeman–Tukey transformation, clipped to [0, 1] at the transformation's
    values for p = 0 and p = 1 (metafor ``transf.ipft``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sin(2 * x)
        z = 0.5 * (1 - np.sign(np.cos(2 * x)) * np.sqrt(1 - (s + (s - 1 / s) / n) ** 2))
        z = np.where(x > transf_pft(1.0, n), 1.0, z)
        z = np.where(x < transf_pft(0.0, n), 0.0, z)
    return z


def transf_ipft(xi, ni):
    """Back from the Freeman–Tukey scale (measure PFT) for each proportion with its own n (metafor
    ``transf.ipft``)."""
    return _out(_ipft(_x(xi), np.asarray(ni, dtype=float)), xi)


def transf_ipft_hm(xi, targs=None, *, ni=None):
    """Back from the Freeman–Tukey scale with the harmonic mean of the sample sizes (metafor ``transf.ipft.hm``,
    ``targs=list(ni=...)``; here ``targs={"ni": ...}`` or ``ni=...``). Missing n are ignored in the mean."""
    if ni is None:
        if isinstance(targs, Mapping) and "ni" in targs:
            ni = targs["ni"]
        elif targs is not None and not isinstance(targs, Mapping):
            ni = targs
        else:
            raise TypeError("transf_ipft_hm: give the sample sizes as targs={'ni': ...} or ni=...")
    n = np.asarray(ni, dtype=float).ravel()
    nhm = 1 / np.mean(1 / n[~np.isnan(n)])
    return _out(_ipft(_x(xi), nhm), xi)


def transf_isqrt(xi):
    """Square, 0 below 0 (metafor ``transf.isqrt``: back from the square-root scale, e.g. IRS)."""
    x = _x(xi)
    return _out(np.where(x < 0, 0.0, x * x), xi)


# -- incidence rates ---------------------------------------------------------------------------------------------
def transf_irft(xi, ti):
    """Freeman–Tukey transformation of an incidence rate r with person-time t, ½[√r + √(r + 1/t)] (metafor
    ``transf.irft``)."""
    x, t = _x(xi), np.asarray(ti, dtype=float)
    with np.errstate(invalid="ignore"):
        return _out(0.5 * (np.sqrt(x) + np.sqrt(x + 1 / t)), xi)


def transf_iirft(xi, ti):
    """Back from the Freeman–Tukey rate scale (measure IRFT): (1/t − 8x² + 16 t x⁴)/(16 x² t), 0 below the
    value for r = 0 and for results ≤ machine ε (metafor ``transf.iirft``)."""
    x, t = _x(xi), np.asarray(ti, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (1 / t - 8 * x**2 + 16 * t * x**4) / (16 * x**2 * t)
        z = np.where(x < transf_irft(0.0, t), 0.0, z)
        z = np.where(z <= np.finfo(float).eps, 0.0, z)
    return _out(z, xi)


# -- Cronbach's alpha --------------------------------------------------------------------------------------------
def transf_ahw(xi):
    """Hakstian & Whalen (1976) transformation of alpha, 1 − (1 − α)^⅓ (metafor ``transf.ahw``)."""
    with np.errstate(invalid="ignore"):
        return _out(1 - (1 - _x(xi)) ** (1 / 3), xi)


def transf_iahw(xi):
    """Back from the AHW scale, 1 − (1 − x)³, clipped to [0, 1] (metafor ``transf.iahw``)."""
    x = _x(xi)
    z = np.where(x > 1, 1.0, np.where(x < 0, 0.0, 1 - (1 - x) ** 3))
    return _out(z, xi)


def transf_abt(xi):
    """Bonett (2002) transformation of alpha, −ln(1 − α) (metafor ``transf.abt``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(-np.log(1 - _x(xi)), xi)


def transf_iabt(xi):
    """Back from the ABT scale, 1 − e^−x, 0 below 0 (metafor ``transf.iabt``)."""
    x = _x(xi)
    return _out(np.where(x < 0, 0.0, 1 - np.exp(-x)), xi)


# -- standardized mean differences -------------------------------------------------------------------------------
def transf_dtou1(xi):
    """Cohen's U1 from d: (2Φ(|d|/2) − 1)/Φ(|d|/2) (metafor ``transf.dtou1``)."""
    u2 = special.ndtr(np.abs(_x(xi)) / 2)
    return _out((2 * u2 - 1) / u2, xi)


def transf_dtou2(xi):
    """Cohen's U2 from d: Φ(d/2) (metafor ``transf.dtou2``)."""
    return _out(special.ndtr(_x(xi) / 2), xi)


def transf_dtou3(xi):
    """Cohen's U3 from d: Φ(d) (metafor ``transf.dtou3``)."""
    return _out(special.ndtr(_x(xi)), xi)


def transf_dtocles(xi):
    """Common-language effect size from d: Φ(d/√2) (metafor ``transf.dtocles``)."""
    return _out(special.ndtr(_x(xi) / np.sqrt(2)), xi)


def transf_dtorpb(xi, n1i=None, n2i=None):
    """Point-biserial r from d: d/√(d² + h), h = m/n1 + m/n2 with m = n1 + n2 − 2, or h = 4 without group sizes
    (metafor ``transf.dtorpb``)."""
    x = _x(xi)
    if n1i is None or n2i is None:
        h = 4.0
    else:
        n1, n2 = np.asarray(n1i, dtype=float), np.asarray(n2i, dtype=float)
        if n1.shape != n2.shape:
            raise ValueError("transf_dtorpb: the lengths of 'n1i' and 'n2i' differ")
        if n1.shape != x.shape:
            raise ValueError("transf_dtorpb: the lengths of 'n1i' and 'n2i' differ from that of 'xi'")
        m = n1 + n2 - 2
        h = m / n1 + m / n2
    return _out(x / np.sqrt(x**2 + h), xi)


def transf_dtobesd(xi):
    """Binomial effect size display from d: ½ + r/2 with r = d/√(d² + 4) (metafor ``transf.dtobesd``)."""
    x = _x(xi)
    return _out(0.5 + x / np.sqrt(x**2 + 4) / 2, xi)


def transf_dtomd(xi, targs=None, *, sd=None):
    """Mean difference from d, d·SD (metafor ``transf.dtomd``, ``targs=list(sd=...)``; here ``targs={"sd": ...}``,
    a number, or ``sd=...``)."""
    if sd is None:
        sd = targs.get("sd") if isinstance(targs, Mapping) else targs
    if sd is None:
        raise TypeError("transf_dtomd: give the standard deviation as targs={'sd': ...} or sd=...")
    if np.size(sd) != 1:
        raise ValueError("transf_dtomd: give a single standard deviation")
    return _out(_x(xi) * float(np.asarray(sd).ravel()[0]), xi)


# -- log odds ratios ---------------------------------------------------------------------------------------------
def _pc(name: str, pc, x: np.ndarray) -> np.ndarray:
    p = np.asarray(pc, dtype=float)
    if p.size == 1:
        p = np.full(x.shape, float(p.ravel()[0]))
    if p.shape != x.shape:
        raise ValueError(f"{name}: the length of 'pc' does not match that of 'xi'")
    bad = np.flatnonzero((p < 0) | (p > 1))
    if bad.size:
        raise ValueError(f"{name}: the control group risk 'pc' must be between 0 and 1; positions {bad.tolist()}")
    return p


def transf_logortord(xi, pc):
    """Risk difference from a log odds ratio and control risk pc: e^x pc/(1 − pc + pc e^x) − pc (metafor
    ``transf.logortord``)."""
    x = _x(xi)
    p = _pc("transf_logortord", pc, x)
    return _out(np.exp(x) * p / (1 - p + p * np.exp(x)) - p, xi)


def transf_logortorr(xi, pc):
    """Risk ratio from a log odds ratio and control risk pc: e^x/(pc(e^x − 1) + 1) (metafor ``transf.logortorr``)."""
    x = _x(xi)
    p = _pc("transf_logortorr", pc, x)
    return _out(np.exp(x) / (p * (np.exp(x) - 1) + 1), xi)
