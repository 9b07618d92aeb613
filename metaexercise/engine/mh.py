"""Mantel–Haenszel and Peto equal-effects meta-analyses of 2×2 tables and incidence rates, as metafor 3.8's
`rma.mh` and `rma.peto`.

Pooled estimates (N = a + b + c + d per table, T = t₁ + t₂):

- OR: ψ = Σ(a d/N) / Σ(b c/N) (Mantel & Haenszel 1959, J Natl Cancer Inst 22:719), variance of ln ψ by
  Robins, Breslow & Greenland (1986, Biometrics 42:311, eq. 11);
- RR: Σ(a n₂/N) / Σ(c n₁/N), RD: Σ(a n₂/N − c n₁/N) / Σ(n₁ n₂/N), variances by Greenland & Robins (1985,
  Biometrics 41:55; the RD variance in Sato's form as metafor codes it);
- IRR: Σ(x₁ t₂/T) / Σ(x₂ t₁/T), IRD: Σ((x₁ t₂ − x₂ t₁)/T) / Σ(t₁ t₂/T) (Rothman, Greenland & Lash 2008,
  Modern Epidemiology, ch. 15);
- Peto: Σ(a − E) / ΣV with E and the hypergeometric V of each table (Yusuf et al. 1985, Prog Cardiovasc
  Dis 27:335).

Tests: the Cochran–Mantel–Haenszel test of ψ = 1 (``MH``, continuity-corrected by default; Cochran's version with
N in place of N − 1 as ``CO``), the Breslow–Day (``BD``) and Tarone (1985, Biometrika 72:91; ``TA``) tests of
homogeneity of odds ratios; for IRR the Mantel–Haenszel test of rate ratio 1. Heterogeneity ``QE`` = Σ (yᵢ −
θ̂)²/vᵢ with the `escalc` yi/vi of the tables (Cochran's Q around the MH estimate), I² = (QE − (k − 1))/QE and
H² = QE/(k − 1); for Peto, Q = Σ (a − E)²/V − (Σ (a − E))²/ΣV (Yusuf et al. 1985).

Zero cells as metafor: ``add``, ``to`` and ``drop00`` take one or two values; the first applies to the yi/vi
behind Q (defaults 1/2, "only0", True: studies without events in both groups have no yi), the second to the
tables of the pooled estimate (defaults 0, "none", False). Tables with missing counts are omitted, as are
missing yi/vi from Q, with metafor's warnings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from metaexercise.engine import escalc_counts as ec

MH_MEASURES: tuple[str, ...] = ("OR", "RR", "RD", "IRR", "IRD")
TABLE_WARNING = "Tables with NAs omitted from model fitting."
YIVI_WARNING = "Some yi/vi values are NA."


def _rmax0(x: float) -> np.float64:
    """R's ``max(0, x)``: NaN stays NaN (Python's ``max`` would return 0)."""
    return np.float64(x) if np.isnan(x) else np.float64(max(0.0, x))


def _alpha(level: float) -> float:
    """metafor's `.level`: 95 or 0.95 → α = 0.05."""
    level = float(level)
    if level == 0:
        return 1.0
    if level >= 1:
        return (100 - level) / 100
    return 1 - level if level > 0.5 else level


def _pair(value, default, name: str, caller: str) -> tuple:
    """metafor's one-or-two-valued ``add``/``to``/``drop00``: a single value is (value, default)."""
    if value is None or isinstance(value, str | bool | int | float | np.floating | np.integer | np.bool_):
        return value, default
    vals = tuple(value)
    if len(vals) not in (1, 2):
        raise ValueError(f"{caller}: argument {name!r} should specify one or two values, got {len(vals)}")
    return (vals[0], default) if len(vals) == 1 else vals


def _column(data, name: str, value, caller: str):
    if isinstance(value, str):
        if data is None:
            raise TypeError(f"{caller}: {name}={value!r} names a column, but no 'data' was given")
        if value not in data:
            raise ValueError(f"{caller}: {name}={value!r} is not a column of 'data'")
        return data[value]
    return value


def _subset(subset, k: int, caller: str) -> np.ndarray | None:
    """A boolean mask or 0-based positions (metafor's `subset`, in Python's indexing) as a boolean mask."""
    if subset is None:
        return None
    s = np.asarray(subset)
    if s.dtype == bool:
        if s.shape != (k,):
            raise ValueError(f"{caller}: a boolean 'subset' needs one value per study ({k}), got shape {s.shape}")
        return s
    if not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"{caller}: 'subset' must be a boolean mask or integer positions, got dtype {s.dtype}")
    out = np.zeros(k, dtype=bool)
    bad = s[(s < -k) | (s >= k)]
    if bad.size:
        raise ValueError(f"{caller}: 'subset' positions {bad.tolist()} are out of range for {k} studies")
    out[s] = True
    return out


@dataclass(frozen=True, slots=True)
class MHPrediction:
    """The pooled estimate with its CI (metafor's `predict` on an `rma.mh`/`rma.peto` fit), back-transformed
    when ``transf`` was given (then ``se`` is NaN, as metafor's NA)."""

    pred: float
    se: float
    ci_lb: float
    ci_ub: float


@dataclass(frozen=True, slots=True)
class MHResult:
    """A Mantel–Haenszel (``model="rma.mh"``) or Peto (``model="rma.peto"``, measure "PETO") fit.

    ``beta``, ``ci_lb``, ``ci_ub`` are on the log scale for ratio measures (OR, RR, IRR, PETO). NaN stands for
    metafor's NA (e.g. an odds ratio when no table has events in one group; ``MH``/``TA`` for measures other
    than OR). ``k`` counts the tables used for the estimate, ``k_yi`` the studies with a yi (those in ``QE``),
    ``k_pos`` the tables informative for the Breslow–Day/Tarone tests (OR) or with positive Peto variance.
    """

    model: str
    measure: str
    level: float
    k: int
    k_yi: int
    k_pos: float
    k_all: int
    beta: float
    se: float
    zval: float
    pval: float
    ci_lb: float
    ci_ub: float
    QE: float
    QEp: float
    I2: float
    H2: float
    CO: float
    COp: float
    MH: float
    MHp: float
    BD: float
    BDp: float
    TA: float
    TAp: float
    yi: np.ndarray
    vi: np.ndarray
    ll_ML: float
    ll_REML: float
    dev_ML: float
    AIC_ML: float
    BIC_ML: float
    AICc_ML: float
    add: tuple[float, float]
    to: tuple[str, str]
    drop00: tuple[bool, bool]
    correct: bool
    tau2: float = 0.0
    method: str = "FE"

    @property
    def estimate(self) -> float:
        """The pooled effect (log scale for ratio measures), metafor's ``beta``."""
        return self.beta

    @property
    def vb(self) -> np.ndarray:
        return np.array([[self.se**2]])

    def predict(self, transf: Callable | None = None) -> MHPrediction:
        """metafor's `predict.rma` for these fits: the estimate and CI, optionally through ``transf`` (e.g.
        ``np.exp`` for a ratio); the bounds are re-ordered if ``transf`` is decreasing, as metafor does."""
        if transf is None:
            return MHPrediction(self.beta, self.se, self.ci_lb, self.ci_ub)
        lb, ub = float(transf(self.ci_lb)), float(transf(self.ci_ub))
        if lb > ub:
            lb, ub = ub, lb
        return MHPrediction(float(transf(self.beta)), np.nan, lb, ub)

    def summary(self) -> str:
        from metaexercise.engine.printing_mh import format_rma_mh, format_rma_peto

        return format_rma_peto(self) if self.model == "rma.peto" else format_rma_mh(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<MHResult {self.model} measure={self.measure} k={self.k} estimate={self.beta:.4f}>"


def _fit_stats(yi: np.ndarray, vi: np.ndarray, rss: float) -> tuple[float, ...]:
    """Equal-effects log-likelihoods, deviance and information criteria as `rma.mh`/`rma.peto` compute them."""
    k = yi.size
    ln2pi = np.log(2 * np.pi)
    slv = np.float64(np.sum(np.log(vi)))
    ll = -0.5 * k * ln2pi - 0.5 * slv - 0.5 * rss
    ll_reml = -0.5 * (k - 1) * ln2pi + 0.5 * np.log(k) - 0.5 * slv - 0.5 * np.log(np.sum(1 / vi)) - 0.5 * rss
    dev = -2 * ll if np.any(vi <= 0) else -2 * (ll - np.float64(np.sum(-0.5 * (ln2pi + np.log(vi)))))
    kk = max(k, 3)
    return float(ll), float(ll_reml), float(dev), float(-2 * ll + 2), float(-2 * ll + np.log(k)), \
        float(-2 * ll + 2 * kk / (kk - 2))


def _z_summary(beta: float, se: float, alpha: float) -> tuple[float, float, float, float]:
    zval = beta / se
    crit = -special.ndtri(alpha / 2)
    return zval, float(2 * special.ndtr(-abs(zval))), beta - crit * se, beta + crit * se


def _chisq_p(x: float, df: float) -> float:
    """Upper chi-square tail; with df = 0 (a point mass at 0) R's `pchisq(x, 0, lower.tail=FALSE)`: 1 at 0, else 0."""
    if df == 0:
        return 1.0 if x <= 0 else 0.0
    return float(special.chdtrc(df, x))


def _prepare(caller, measure, cells, data, subset, add, to, drop00, effects):
    """The common front of `rma.mh`/`rma.peto`: columns from ``data``, subset, escalc's yi/vi (first add/to/
    drop00), the second drop00, omission of incomplete tables and of missing yi/vi (with metafor's warnings),
    and the second add/to on the tables."""
    add, to, drop00 = _pair(add, 0.0, "add", caller), _pair(to, "none", "to", caller), _pair(drop00, False, "drop00",
                                                                                            caller)
    add = tuple(ec.default_add("OR", a, caller) for a in add)
    for t in to:
        ec.check_to(t, caller)
    drop00 = tuple(bool(d) for d in drop00)
    cells = {n: _column(data, n, v, caller) for n, v in cells.items()}
    if measure in ("IRR", "IRD"):
        arrays = list(ec.rates(cells["x1i"], cells["x2i"], cells["t1i"], cells["t2i"], caller=caller))
    else:
        arrays = list(ec.tables(*(cells[n] for n in ("ai", "bi", "ci", "di", "n1i", "n2i")), caller=caller))
    k_all = arrays[0].size
    keep = _subset(subset, k_all, caller)
    if keep is not None:
        arrays = [x[keep] for x in arrays]
    with np.errstate(all="ignore"):
        yi, vi = effects(arrays, add[0], to[0], drop00[0])
        if drop00[1]:
            if measure in ("IRR", "IRD"):
                dz = (arrays[0] == 0) & (arrays[1] == 0)
                arrays[:2] = [np.where(dz, np.nan, x) for x in arrays[:2]]
            else:
                a, b, c, d = arrays
                dz = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
                arrays = [np.where(dz, np.nan, x) for x in arrays]
    complete = ~np.isnan(sum(arrays))  # cells and person-times are >= 0: the sum is NaN exactly when one is
    if not complete.all():
        warnings.warn(TABLE_WARNING, UserWarning, stacklevel=3)
        arrays = [x[complete] for x in arrays]
    if arrays[0].size < 1:
        raise ValueError(f"{caller}: processing terminated since k = 0 (no complete table left)")
    has_y = ~np.isnan(yi + vi)
    if not has_y.all():
        warnings.warn(YIVI_WARNING, UserWarning, stacklevel=3)
        yi, vi = yi[has_y], vi[has_y]
    if to[1] != "none":
        n_ev = 2 if measure in ("IRR", "IRD") else 4
        ev = arrays[:n_ev]
        zero = np.any(np.vstack(ev) == 0, axis=0)
        arrays[:n_ev] = ec.add_to(ev, zero, add[1], to[1])
    return arrays, yi, vi, k_all, add, to, drop00


def _heterogeneity(yi, vi, beta):
    k = yi.size
    if k > 1:
        qe = _rmax0(np.float64(np.sum((yi - beta) ** 2 / vi)))
        return qe, _chisq_p(qe, k - 1), _rmax0(100 * (qe - (k - 1)) / qe), qe / (k - 1)
    return 0.0, 1.0, 0.0, 1.0


def _or(a, b, c, d, correct):
    """MH odds ratio with the Robins–Breslow–Greenland variance, CMH and Cochran tests, Breslow–Day and
    Tarone tests (metafor 3.8 `rma.mh`, measure "OR"). Sums of products are dot products (one numpy call)."""
    n1, n2 = a + b, c + d
    n = n1 + n2
    inv = 1 / n
    r, s = a * d * inv, b * c * inv
    p, q = (a + d) * inv, (b + c) * inv
    R, S = r.sum(), s.sum()
    nan = np.nan
    if R == 0 or S == 0:
        psi = beta = se = nan
    else:
        psi = R / S
        beta = np.log(psi)
        se = np.sqrt(0.5 * ((p @ r) / R**2 + (p @ s + q @ r) / (R * S) + (q @ s) / S**2))
    xt, yt = a + c, b + d
    stats = dict(CO=nan, COp=nan, MH=nan, MHp=nan, BD=nan, BDp=nan, TA=nan, TAp=nan, k_pos=0)
    if xt.sum() != 0 and yt.sum() != 0:
        num = (abs(a.sum() - (n1 * inv) @ xt) - (0.5 if correct else 0.0)) ** 2
        f = n1 * n2 * xt * yt * inv * inv  # (n1/N)(n2/N) xt yt
        stats["CO"] = num / (f @ inv)
        stats["MH"] = num / (f @ (1 / (n - 1)))
        stats["COp"], stats["MHp"] = _chisq_p(stats["CO"], 1), _chisq_p(stats["MH"], 1)
    if not np.isnan(beta):
        if psi == 1:
            n11 = n1 * inv * xt
        else:
            big_a = psi * (n1 + xt) + (n2 - xt)
            n11 = (big_a - np.sqrt(big_a**2 - 4 * n1 * xt * psi * (psi - 1))) / (2 * (psi - 1))
        pos = (n11 > 0) & (xt > 0) & (yt > 0)
        k_pos = int(pos.sum())
        if k_pos < pos.size:
            n11, a, n1, xt, n = n11[pos], a[pos], n1[pos], xt[pos], n[pos]
        n12, n21 = n1 - n11, xt - n11
        var = 1 / (1 / n11 + 1 / n12 + 1 / n21 + 1 / (n11 - n1 - xt + n))
        dev = a - n11
        bd = _rmax0((dev * dev) @ (1 / var))
        ta = _rmax0(bd - dev.sum() ** 2 / var.sum())
        stats.update(BD=bd, TA=ta, k_pos=k_pos)
        if k_pos > 1:
            stats.update(BDp=_chisq_p(bd, k_pos - 1), TAp=_chisq_p(ta, k_pos - 1))
    return beta, se, stats


def _ratio(num: np.ndarray, den: np.ndarray, ev1: np.ndarray, ev2: np.ndarray, var_num: np.ndarray):
    """ln(Σnum/Σden) with SE √(Σvar_num/(Σnum Σden)) (Greenland & Robins 1985), NaN when a group has no events."""
    if ev1.sum() == 0 or ev2.sum() == 0:
        return np.nan, np.nan
    R, S = np.float64(num.sum()), np.float64(den.sum())
    return np.float64(np.log(R / S)), np.float64(np.sqrt(var_num.sum() / (R * S)))


def rma_mh(
    ai=None,
    bi=None,
    ci=None,
    di=None,
    n1i=None,
    n2i=None,
    x1i=None,
    x2i=None,
    t1i=None,
    t2i=None,
    measure: str = "OR",
    data=None,
    subset=None,
    add: float | Sequence[float] = 1 / 2,
    to: str | Sequence[str] = "only0",
    drop00: bool | Sequence[bool] = True,
    correct: bool = True,
    level: float = 95,
) -> MHResult:
    """Mantel–Haenszel equal-effects meta-analysis (metafor 3.8 `rma.mh`) for ``measure`` OR, RR, RD (2×2
    tables: ``ai, bi, ci, di`` or ``ai, ci, n1i, n2i``) or IRR, IRD (``x1i, x2i, t1i, t2i``).

    Arguments may be arrays or, with ``data`` (a DataFrame or mapping), column names. ``subset`` is a boolean
    mask or 0-based positions. ``add``/``to``/``drop00``: one or two values (see the module docstring);
    ``correct``: continuity correction of the CMH test. ``level``: 95 or 0.95.
    """
    caller = "rma_mh"
    if measure not in MH_MEASURES:
        raise ValueError(f"{caller}: the Mantel-Haenszel method can only be used with measures {MH_MEASURES}, "
                         f"got {measure!r}")
    alpha = _alpha(level)
    if measure in ("IRR", "IRD"):
        cells = {"x1i": x1i, "x2i": x2i, "t1i": t1i, "t2i": t2i}

        def effects(arrays, add0, to0, drop0):
            return ec.finish(*ec.rate_effects(measure, *arrays, add0, to0, drop0))
    else:
        cells = {"ai": ai, "bi": bi, "ci": ci, "di": di, "n1i": n1i, "n2i": n2i}

        def effects(arrays, add0, to0, drop0):
            return ec.finish(*ec.count_effects(measure, *arrays, add0, to0, drop0, "LS"))

    arrays, yi, vi, k_all, add, to, drop00 = _prepare(caller, measure, cells, data, subset, add, to, drop00, effects)
    nan = np.nan
    stats = dict(CO=nan, COp=nan, MH=nan, MHp=nan, BD=nan, BDp=nan, TA=nan, TAp=nan, k_pos=nan)
    with np.errstate(all="ignore"):
        if measure in ("IRR", "IRD"):
            x1, x2, t1, t2 = arrays
            t = t1 + t2
            if measure == "IRR":
                beta, se = _ratio(x1 * (t2 / t), x2 * (t1 / t), x1, x2, (t1 / t) * (t2 / t) * (x1 + x2))
                xt = x1 + x2
                if xt.sum() != 0:
                    mh = (abs(np.float64(np.sum(x1 - xt * (t1 / t)))) - (0.5 if correct else 0.0)) ** 2 \
                        / np.float64(np.sum(xt * (t1 / t) * (t2 / t)))
                    stats.update(MH=mh, MHp=_chisq_p(mh, 1))
            else:
                w = np.float64(np.sum((t1 / t) * t2))
                beta = np.float64(np.sum((x1 * t2 - x2 * t1) / t)) / w
                se = np.float64(np.sqrt(np.sum(((t1 / t) * t2) ** 2 * (x1 / t1**2 + x2 / t2**2)))) / w
        else:
            a, b, c, d = arrays
            n1, n2 = a + b, c + d
            n = n1 + n2
            if measure == "OR":
                beta, se, stats = _or(a, b, c, d, correct)
            elif measure == "RR":
                beta, se = _ratio(a * (n2 / n), c * (n1 / n), a, c, (n1 / n) * (n2 / n) * (a + c) - (a / n) * c)
            else:
                w = np.float64(np.sum(n1 * (n2 / n)))
                beta = np.float64(np.sum(a * (n2 / n) - c * (n1 / n))) / w
                se = np.float64(np.sqrt((beta * np.float64(np.sum(c * (n1 / n) ** 2 - a * (n2 / n) ** 2
                                                        + (n1 / n) * (n2 / n) * (n2 - n1) / 2))
                                    + np.float64(np.sum(a * (n2 - c) / n + c * (n1 - a) / n)) / 2) / w**2))
        zval, pval, ci_lb, ci_ub = _z_summary(beta, se, alpha)
        qe, qep, i2, h2 = _heterogeneity(yi, vi, beta)
        fit = _fit_stats(yi, vi, qe) if yi.size >= 1 else (nan,) * 6
    k_pos = stats.pop("k_pos")
    return MHResult(
        model="rma.mh", measure=measure, level=float(level), k=int(arrays[0].size), k_yi=int(yi.size),
        k_pos=k_pos, k_all=k_all, beta=beta, se=se, zval=zval, pval=pval, ci_lb=ci_lb, ci_ub=ci_ub, QE=qe,
        QEp=qep, I2=i2, H2=h2, **stats, yi=yi, vi=vi, ll_ML=fit[0], ll_REML=fit[1], dev_ML=fit[2], AIC_ML=fit[3],
        BIC_ML=fit[4], AICc_ML=fit[5], add=add, to=to, drop00=drop00, correct=bool(correct),
    )


def rma_peto(
    ai=None,
    bi=None,
    ci=None,
    di=None,
    n1i=None,
    n2i=None,
    data=None,
    subset=None,
    add: float | Sequence[float] = 1 / 2,
    to: str | Sequence[str] = "only0",
    drop00: bool | Sequence[bool] = True,
    level: float = 95,
) -> MHResult:
    """Peto's one-step equal-effects meta-analysis of 2×2 tables (metafor 3.8 `rma.peto`): the pooled log odds
    ratio Σ(a − E)/ΣV with SE 1/√ΣV (Yusuf et al. 1985). Arguments as `rma_mh`; ``QE`` is Peto's heterogeneity
    statistic; raises ValueError when no table has both outcomes (ΣV = 0), as metafor stops."""
    caller = "rma_peto"
    alpha = _alpha(level)
    cells = {"ai": ai, "bi": bi, "ci": ci, "di": di, "n1i": n1i, "n2i": n2i}

    def effects(arrays, add0, to0, drop0):
        return ec.finish(*ec.count_effects("PETO", *arrays, add0, to0, drop0, "LS"))

    arrays, yi, vi, k_all, add, to, drop00 = _prepare(caller, "PETO", cells, data, subset, add, to, drop00, effects)
    a, b, c, d = arrays
    with np.errstate(all="ignore"):
        n1, n2 = a + b, c + d
        n = n1 + n2
        xt, yt = a + c, b + d
        e = xt * n1 / n
        v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
        sum_v = float(v.sum())
        if sum_v == 0:
            raise ValueError(f"{caller}: one of the two outcomes never occurred in any of the tables; Peto's "
                             "method cannot be used")
        beta = np.float64(np.sum(a - e)) / sum_v
        se = np.float64(np.sqrt(1 / sum_v))
        zval, pval, ci_lb, ci_ub = _z_summary(beta, se, alpha)
        k_pos = int(np.sum(v > 0))
        vpos = np.where(v == 0, np.nan, v)
        qe = _rmax0(np.float64(np.nansum((a - e) ** 2 / vpos)) - np.float64(np.sum(a - e)) ** 2 / np.float64(np.nansum(vpos)))
        k_yi = yi.size
        if k_pos > 1:
            qep, i2, h2 = _chisq_p(qe, k_yi - 1), _rmax0(100 * (qe - (k_yi - 1)) / qe), qe / (k_yi - 1)
        else:
            qep, i2, h2 = 1.0, 0.0, 1.0
        fit = _fit_stats(yi, vi, np.float64(np.sum((yi - beta) ** 2 / vi)))
    nan = np.nan
    return MHResult(
        model="rma.peto", measure="PETO", level=float(level), k=int(a.size), k_yi=int(k_yi), k_pos=k_pos,
        k_all=k_all, beta=beta, se=se, zval=zval, pval=pval, ci_lb=ci_lb, ci_ub=ci_ub, QE=qe, QEp=qep, I2=i2,
        H2=h2, CO=nan, COp=nan, MH=nan, MHp=nan, BD=nan, BDp=nan, TA=nan, TAp=nan, yi=yi, vi=vi, ll_ML=fit[0],
        ll_REML=fit[1], dev_ML=fit[2], AIC_ML=fit[3], BIC_ML=fit[4], AICc_ML=fit[5], add=add, to=to, drop00=drop00,
        correct=False,
    )
