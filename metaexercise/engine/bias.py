"""Small-study effects and publication bias: `regtest`, `ranktest`, `trimfill`, `fsn`, as metafor 3.8.

Each mirrors the metafor function of the same name (`R/regtest.r`, `R/ranktest.r`, `R/trimfill.rma.uni.r`,
`R/fsn.r`), including its defaults and edge-case rules, so results agree with metafor to rounding error.
Every test result carries the same fields, named as metafor names them: ``zval`` (the test statistic, a t
value when ``df`` is set), ``pval`` and ``df``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special

from metaexercise.engine.model import RedundantPredictorsWarning, RMAResult, rma
from metaexercise.engine.printing import fcf, fmt_pval
from metaexercise.engine.wls import wls

if TYPE_CHECKING:  # pandas is imported when a table is built, not when the engine loads
    import pandas as pd

RegModel = Literal["rma", "lm"]
Predictor = Literal["sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"]
Estimator = Literal["L0", "R0", "Q0"]
FsnType = Literal["Rosenthal", "Orwin", "Rosenberg"]

REG_MODELS = ("rma", "lm")
PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
ESTIMATORS = ("L0", "R0", "Q0")
FSN_TYPES = ("Rosenthal", "Orwin", "Rosenberg")

_PREDICTOR_LABEL = {
    "sei": "standard error",
    "vi": "sampling variance",
    "ni": "sample size",
    "ninv": "inverse of the sample size",
    "sqrtni": "square root sample size",
    "sqrtninv": "inverse of the square root sample size",
}
_LIMIT_LABEL = {
    "sei": "Limit Estimate (as sei -> 0):   ",
    "vi": "Limit Estimate (as vi -> 0):    ",
    "ninv": "Limit Estimate (as ni -> inf):  ",
    "sqrtninv": "Limit Estimate (as ni -> inf):  ",
}


def _check_choice(func: str, name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{func}: unknown {name} {value!r}; choose one of {allowed}")


def _as_yivi(func: str, yi, vi, sei) -> tuple[np.ndarray, np.ndarray]:
    """Raw-data input: yi with vi (or sei); checked at the boundary."""
    y = np.atleast_1d(np.asarray(yi, dtype=float))
    if vi is None:
        if sei is None:
            raise TypeError(f"{func}: give the sampling variances 'vi' (or standard errors 'sei') with raw yi")
        v = np.atleast_1d(np.asarray(sei, dtype=float)) ** 2
    else:
        v = np.atleast_1d(np.asarray(vi, dtype=float))
    if y.ndim != 1 or v.shape != y.shape:
        raise ValueError(f"{func}: yi and vi must be 1-D and of equal length (got {y.shape} and {v.shape})")
    bad = np.flatnonzero(~np.isfinite(y) | ~np.isfinite(v) | (v <= 0))
    if bad.size:
        raise ValueError(
            f"{func}: yi must be finite and vi positive and finite; offending positions {bad.tolist()} (0-based)"
        )
    return y, v


# ---------------------------------------------------------------------------------------------------------------
# regtest
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RegtestResult:
    """Regression test for funnel-plot asymmetry. ``zval`` is a t value with ``df`` degrees of freedom under
    ``model="lm"`` or a Knapp–Hartung fit (``df`` is None under z). ``est``/``ci_lb``/``ci_ub`` are the limit
    estimate (intercept as the predictor goes to 0) where metafor reports one, else None."""

    model: str
    predictor: str
    method: str
    zval: float
    pval: float
    df: float | None
    est: float | None
    ci_lb: float | None
    ci_ub: float | None
    k: int
    fit: RMAResult | None

    @property
    def tval(self) -> float | None:
        return self.zval if self.df is not None else None

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"model": self.model, "predictor": self.predictor, "zval": self.zval,
                              "df": self.df, "pval": self.pval, "est": self.est, "ci_lb": self.ci_lb,
                              "ci_ub": self.ci_ub}])

    def summary(self) -> str:
        """Laid out as metafor's `print.regtest`."""
        if self.model == "lm":
            model = "Model:     weighted regression with multiplicative dispersion"
        else:
            kind = "fixed-effects" if self.method == "EE" else "mixed-effects"
            model = f"Model:     {kind} meta-regression model"
        if self.df is None:
            stat = f"z = {fcf(self.zval)}, p {fmt_pval(self.pval, showeq=True, sep=' ')}"
        else:
            stat = f"t = {fcf(self.zval)}, df = {_rdf(self.df)}, p {fmt_pval(self.pval, showeq=True, sep=' ')}"
        lines = ["", "Regression Test for Funnel Plot Asymmetry", "", model,
                 f"Predictor: {_PREDICTOR_LABEL[self.predictor]}", "", f"Test for Funnel Plot Asymmetry: {stat}"]
        if self.est is not None:
            lines.append(f"{_LIMIT_LABEL[self.predictor]}b = {fcf(self.est)} (CI: {fcf(self.ci_lb)}, "
                         f"{fcf(self.ci_ub)})")
        return "\n".join([*lines, ""]) + "\n"

    __str__ = summary

    def _repr_html_(self) -> str:
        return f"<pre>{escape(self.summary())}</pre>"


def _rdf(df: float) -> str:
    r = round(df, 2)
    return str(int(r)) if float(r).is_integer() else str(r)


def regtest(
    x,
    vi=None,
    *,
    sei=None,
    ni=None,
    model: RegModel = "rma",
    predictor: Predictor = "sei",
) -> RegtestResult:
    """Egger-type regression test for funnel-plot asymmetry (metafor 3.8 `regtest`).

    ``x`` is a fitted :class:`RMAResult` (its method, test, level, moderators and control are reused, as
    metafor does) or raw ``yi`` with ``vi``/``sei`` (then REML, z-test, 95%). The predictor (``"sei"`` by
    default; ``"vi"``; or ``"ni"``, ``"ninv"``, ``"sqrtni"``, ``"sqrtninv"`` with ``ni``) is added to the
    model's moderators and its coefficient tested. ``model="rma"`` fits the mixed-effects meta-regression
    (Sterne & Egger 2005, in Rothstein et al., *Publication Bias in Meta-Analysis*, ch. 6); ``model="lm"``
    the classical weighted regression with multiplicative dispersion (Egger et al. 1997, BMJ 315:629).
    The limit estimate is the intercept for predictors that vanish as precision grows (sei, vi, ninv,
    sqrtninv) in models without other moderators (Stanley & Doucouliagos 2014, Res Synth Methods 5:60).
    """
    _check_choice("regtest", "model", model, REG_MODELS)
    _check_choice("regtest", "predictor", predictor, PREDICTORS)
    if isinstance(x, RMAResult):
        if vi is not None or sei is not None:
            raise TypeError("regtest: 'vi'/'sei' are taken from the fitted model; do not pass them with a fit")
        if not getattr(x, "int_incl", True) or getattr(x, "user_weights", None) is not None:
            raise ValueError("regtest: models without an intercept or with user weights are not supported")
        yi, v, X = x.yi, x.vi, x.X
        method, test, level, control = x.method, x.test, x.level, x.control
        tau2 = x.tau2 if x.tau2_fixed else None
    else:
        yi, v = _as_yivi("regtest", x, vi, sei)
        X = np.ones((len(yi), 1))
        method, test, level, control, tau2 = "REML", "z", 95.0, None, None
    k, p = X.shape
    if predictor in ("sei", "vi"):
        col = np.sqrt(v) if predictor == "sei" else v
    else:
        if ni is None:
            raise ValueError(f"regtest: predictor {predictor!r} needs the sample sizes 'ni'")
        n = np.asarray(ni, dtype=float)
        if n.shape != (k,) or not np.all(np.isfinite(n) & (n > 0)):
            raise ValueError(f"regtest: 'ni' must hold {k} positive sample sizes, got {n!r}")
        col = {"ni": n, "ninv": 1 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1 / np.sqrt(n)}[predictor]
    Xr = np.column_stack([X, col])
    if k <= p + 1 or np.linalg.matrix_rank(Xr) < p + 1:
        raise ValueError(
            f"regtest: the model with predictor {predictor!r} cannot be fitted (k = {k}, {p + 1} coefficients, "
            "or the predictor is constant/collinear with the moderators)"
        )
    alpha = 1 - level / 100
    limit = predictor in ("sei", "vi", "ninv", "sqrtninv") and p == 1
    if model == "rma":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RedundantPredictorsWarning)  # a dropped predictor is an error here
            fit = rma(yi, v, mods=Xr[:, 1:], method=method, test=test, level=level, tau2=tau2, control=control)
        if fit.dropped:
            raise ValueError(f"regtest: the predictor {predictor!r} is collinear with the moderators (to R's lm "
                             "tolerance: rma drops it, as metafor), so its slope cannot be tested")
        zval, pval, df = float(fit.zval[p]), float(fit.pval[p]), fit.ddf
        est, lb, ub = ((float(fit.beta[0]), float(fit.ci_lb[0]), float(fit.ci_ub[0])) if limit
                       else (None, None, None))
        return RegtestResult(model, predictor, method, zval, pval, df, est, lb, ub, k, fit)
    # R's lm(yi ~ X, weights = 1/vi): weighted least squares with the residual variance s² = Σw r²/(k − p − 1)
    # as the dispersion, t tests on k − p − 1 df (Egger et al. 1997)
    ols = wls(Xr, yi, 1 / v)
    df = float(k - (p + 1))
    bse = np.sqrt(ols.rss / df * np.diag(ols.A))
    zval = float(ols.beta[p] / bse[p])
    pval = float(2 * special.stdtr(df, -abs(zval)))
    est = lb = ub = None
    if limit:
        crit = float(-special.stdtrit(df, alpha / 2))  # scipy.stats' t.isf(alpha / 2, df)
        est = float(ols.beta[0])
        lb, ub = est - crit * float(bse[0]), est + crit * float(bse[0])
    return RegtestResult(model, predictor, method, zval, pval, df, est, lb, ub, k, None)


# ---------------------------------------------------------------------------------------------------------------
# ranktest
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RanktestResult:
    """Rank correlation test: Kendall's tau (tau-b) between standardized effects and variances. ``exact``
    says whether the p-value comes from the exact permutation distribution (no ties) or, with ties, from
    the normal approximation with tie-corrected variance, whose statistic is ``zval``."""

    tau: float
    pval: float
    zval: float | None
    exact: bool
    k: int
    df: None = None

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"tau": self.tau, "zval": self.zval, "pval": self.pval, "exact": self.exact}])

    def summary(self) -> str:
        """Laid out as metafor's `print.ranktest`."""
        return "\n".join(["", "Rank Correlation Test for Funnel Plot Asymmetry", "",
                          f"Kendall's tau = {fcf(self.tau)}, p {fmt_pval(self.pval, showeq=True, sep=' ')}",
                          ""]) + "\n"

    __str__ = summary

    def _repr_html_(self) -> str:
        return f"<pre>{escape(self.summary())}</pre>"


def _kendall_exact_cdf(n: int) -> np.ndarray:
    """P(T ≤ q), q = 0 … n(n−1)/2, for the number of concordant pairs T of a random permutation of n items:
    the Mahonian distribution, built one item at a time (the recursion of R's `ckendall`, Kendall 1970,
    *Rank Correlation Methods*, ch. 5), kept as probabilities to avoid overflow."""
    dist = np.ones(1)
    for m in range(2, n + 1):
        c = np.concatenate([[0.0], np.cumsum(dist)])
        size = len(dist) + m - 1
        hi = np.minimum(np.arange(size) + 1, len(dist))
        lo = np.maximum(np.arange(size) - m + 1, 0)
        dist = (c[hi] - c[lo]) / m
    return np.cumsum(dist)


def _kendall_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None, bool]:
    """R's `cor.test(x, y, method="kendall", exact=TRUE)`: exact p without ties, else the normal
    approximation with the tie-corrected variance of S (no continuity correction)."""
    from scipy import stats

    n = len(x)
    tau = float(stats.kendalltau(x, y).statistic)
    ties = min(len(np.unique(x)), len(np.unique(y))) < n
    if not math.isfinite(tau):
        return tau, math.nan, None, not ties
    if not ties:
        q = round((tau + 1) * n * (n - 1) / 4)
        cdf = _kendall_exact_cdf(n)
        # P(T <= q) or P(T >= q) = P(T <= N - q) by symmetry (accurate far into the tail, unlike 1 - cdf).
        tail = cdf[q] if q <= n * (n - 1) / 4 else cdf[n * (n - 1) // 2 - q]
        return tau, float(min(2 * tail, 1.0)), None, True
    _, xc = np.unique(x, return_counts=True)
    _, yc = np.unique(y, return_counts=True)
    xt, yt = xc[xc > 1].astype(float), yc[yc > 1].astype(float)
    t0 = n * (n - 1) / 2
    t1, t2 = np.sum(xt * (xt - 1)) / 2, np.sum(yt * (yt - 1)) / 2
    s = tau * math.sqrt((t0 - t1) * (t0 - t2))
    v0 = n * (n - 1) * (2 * n + 5)
    vt, vu = np.sum(xt * (xt - 1) * (2 * xt + 5)), np.sum(yt * (yt - 1) * (2 * yt + 5))
    v1 = np.sum(xt * (xt - 1)) * np.sum(yt * (yt - 1))
    v2 = np.sum(xt * (xt - 1) * (xt - 2)) * np.sum(yt * (yt - 1) * (yt - 2))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + (v2 / (9 * n * (n - 1) * (n - 2)) if n > 2 else 0.0)
    z = s / math.sqrt(var_s)
    return tau, float(2 * special.ndtr(-abs(z))), float(z), False


def ranktest(x, vi=None, *, sei=None) -> RanktestResult:
    """Begg & Mazumdar (1994, Biometrics 50:1088) rank correlation test (metafor 3.8 `ranktest`).

    Effects are standardized around the equal-effects estimate θ̂ as (yᵢ − θ̂)/√(vᵢ − 1/Σw) and correlated
    with vᵢ by Kendall's tau-b. As metafor (which calls ``cor.test(..., exact=TRUE)``), the p-value is exact
    whenever there are no ties, whatever k; with ties the normal approximation is used. ``x`` is a fit
    (its yi and vi are used, whatever its moderators) or raw yi with vi/sei.
    """
    if isinstance(x, RMAResult):
        if vi is not None or sei is not None:
            raise TypeError("ranktest: 'vi'/'sei' are taken from the fitted model; do not pass them with a fit")
        yi, v = x.yi, x.vi
    else:
        yi, v = _as_yivi("ranktest", x, vi, sei)
    if len(yi) < 2:
        raise ValueError(f"ranktest: needs at least 2 studies, got k = {len(yi)}")
    w = 1 / v
    theta = np.sum(w * yi) / np.sum(w)
    vstar = v - 1 / np.sum(w)
    ystar = (yi - theta) / np.sqrt(vstar)
    tau, pval, z, exact = _kendall_test(ystar, v)
    return RanktestResult(tau=tau, pval=pval, zval=z, exact=exact, k=len(yi))


# ---------------------------------------------------------------------------------------------------------------
# trimfill
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrimfillResult:
    """Trim-and-fill: the estimated number of missing studies ``k0`` (with ``se_k0``) on ``side``, the data
    with the filled (mirrored) studies appended (``fill`` marks them) and the model refitted to them."""

    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float | None
    yi: np.ndarray
    vi: np.ndarray
    fill: np.ndarray
    fit: RMAResult

    @property
    def estimate(self) -> float:
        return self.fit.estimate

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"yi": self.yi, "vi": self.vi, "filled": self.fill})

    def summary(self) -> str:
        """Laid out as metafor's `print.rma.uni` for a trim-and-fill object."""
        head = f"Estimated number of missing studies on the {self.side} side: {self.k0} (SE = {fcf(self.se_k0)})"
        if self.estimator == "R0":
            pad = " " * len(str(self.k0))
            head += (f"\nTest of H0: no missing studies on the {self.side} side:     {pad}"
                     f"p-val {fmt_pval(self.p_k0, showeq=True, sep=' ')}")
        return "\n" + head + "\n" + self.fit.summary()

    __str__ = summary

    def _repr_html_(self) -> str:
        return f"<pre>{escape(self.summary())}</pre>"


def _k0_step(yi_sorted: np.ndarray, beta: float, estimator: str) -> tuple[float, float]:
    """One trim-and-fill estimate of k0 and its SE (Duval & Tweedie 2000, Biometrics 56:455, eqs. for
    L0, R0 and Q0; SEs as metafor computes them)."""
    k = len(yi_sorted)
    yc = yi_sorted - beta
    # R's rank(..., ties.method = "first"): ranks 1..k, ties in order of appearance (scipy's "ordinal")
    ranks = np.empty(k)
    ranks[np.argsort(np.abs(yc), kind="stable")] = np.arange(1, k + 1)
    signed = np.sign(yc) * ranks
    if estimator == "R0":
        neg = signed[signed < 0]
        if neg.size == 0:
            raise ValueError("trimfill: the R0 estimator is undefined (no study lies on the trimmed side)")
        k0 = (k - np.max(-neg)) - 1
        return float(k0), math.sqrt(2 * max(0.0, k0) + 2)
    sr = float(np.sum(signed[signed > 0]))
    if estimator == "L0":
        k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
    else:
        disc = 2 * k**2 - 4 * sr + 1 / 4
        if disc < 0:
            raise ValueError("trimfill: the Q0 estimator is undefined for these data (negative square root); "
                             "use estimator='L0' or 'R0'")
        k0 = k - 1 / 2 - math.sqrt(disc)
    var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0 - 18 * k * k0**2 - 18 * k * k0
              + 6 * k**2 * k0) / 24
    if estimator == "L0":
        se = 4 * math.sqrt(var_sr) / (2 * k - 1) if var_sr >= 0 else math.nan
    else:
        den = (k - 1 / 2) ** 2 - k0 * (2 * k - k0 - 1)
        se = 2 * math.sqrt(var_sr) / math.sqrt(den) if var_sr >= 0 and den > 0 else math.nan
    return float(k0), se


def trimfill(fit: RMAResult, side: Literal["left", "right"] | None = None, estimator: Estimator = "L0",
             maxiter: int = 100) -> TrimfillResult:
    """Duval & Tweedie (2000, Biometrics 56:455; JASA 95:89) trim-and-fill (metafor 3.8 `trimfill`).

    ``side=None`` chooses the side as metafor: the side opposite the sign of the slope in a regression of
    yi on √vi (same method). The studies are trimmed, the model refitted with the fit's method until k0
    stops changing, and the k0 most extreme studies mirrored about the trimmed estimate. As in metafor, the
    final model is refitted with the default z-test and level (not the fit's ``test``) when k0 > 0; when
    k0 = 0 the original fit is returned.
    """
    _check_choice("trimfill", "estimator", estimator, ESTIMATORS)
    if not isinstance(fit, RMAResult):
        raise TypeError("trimfill: needs a fitted model from rma()")
    if fit.p != 1:
        raise ValueError("trimfill: only applicable to models without moderators")
    if fit.k == 1:
        raise ValueError("trimfill: stopped because k = 1")
    ctrl = fit.control
    yi, vi = fit.yi, fit.vi
    if side is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RedundantPredictorsWarning)
            side_fit = rma(yi, vi, mods=np.sqrt(vi), method=fit.method, control=ctrl)
        if side_fit.dropped:  # metafor stops too ("missing value where TRUE/FALSE needed")
            raise ValueError("trimfill: the side cannot be estimated: sqrt(vi) is constant (all sampling variances "
                             "equal), so the regression on it has no slope; give side='left' or 'right'")
        slope = side_fit.beta[1]
        side = "right" if slope < 0 else "left"
    elif side not in ("left", "right"):
        raise ValueError(f"trimfill: side must be 'left', 'right' or None, got {side!r}")
    y = -yi if side == "right" else yi
    order = np.argsort(y, kind="stable")
    y, v = y[order], vi[order]
    k = len(y)
    k0, k0_prev, it = 0, -1, 0
    se_k0 = math.nan
    beta = math.nan
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise ValueError(f"trimfill: k0 did not settle within maxiter = {maxiter} iterations")
        beta = rma(y[: k - k0], v[: k - k0], method=fit.method, control=ctrl).estimate
        k0_raw, se_k0 = _k0_step(y, beta, estimator)
        k0 = int(max(0, round(k0_raw)))
        se_k0 = se_k0 if not se_k0 < 0 else 0.0
        if k0 >= k:
            raise ValueError(f"trimfill: estimated k0 = {k0} is not smaller than k = {k}")
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else None
    if k0 == 0:
        return TrimfillResult(0, se_k0, side, estimator, p_k0, yi.copy(), vi.copy(), np.zeros(k, dtype=bool), fit)
    filled = 2 * beta - y[k - k0:]
    if side == "right":
        filled = -filled
    yi_f = np.concatenate([yi, filled])
    vi_f = np.concatenate([vi, v[k - k0:]])
    refit = rma(yi_f, vi_f, method=fit.method, control=ctrl)
    fill = np.concatenate([np.zeros(k, dtype=bool), np.ones(k0, dtype=bool)])
    return TrimfillResult(k0, se_k0, side, estimator, p_k0, yi_f, vi_f, fill, refit)


# ---------------------------------------------------------------------------------------------------------------
# fsn
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FsnResult:
    """Fail-safe N: the number of unpublished null studies that would bring the result to the target."""

    type: str
    fsnum: float
    alpha: float
    pval: float | None
    meanes: float | None
    target: float | None

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"type": self.type, "fsnum": self.fsnum, "alpha": self.alpha, "pval": self.pval,
                              "meanes": self.meanes, "target": self.target}])

    def summary(self) -> str:
        """Laid out as metafor's `print.fsn`."""
        lines = ["", f"Fail-safe N Calculation Using the {self.type} Approach", ""]
        if self.type == "Rosenthal":
            lines += [f"Observed Significance Level: {fmt_pval(self.pval)}",
                      f"Target Significance Level:   {self.alpha:g}"]
        elif self.type == "Orwin":
            lines += [f"Average Effect Size: {fcf(self.meanes)}", f"Target Effect Size:  {fcf(self.target)}"]
        else:
            lines += [f"Average Effect Size:         {fcf(self.meanes)}",
                      f"Observed Significance Level: {fmt_pval(self.pval)}",
                      f"Target Significance Level:   {self.alpha:g}"]
        n = "Inf" if math.isinf(self.fsnum) else f"{int(self.fsnum)}"
        return "\n".join([*lines, "", f"Fail-safe N: {n}", ""]) + "\n"

    __str__ = summary

    def _repr_html_(self) -> str:
        return f"<pre>{escape(self.summary())}</pre>"


def fsn(yi, vi=None, *, sei=None, type: FsnType = "Rosenthal", alpha: float = 0.05, target: float | None = None,
        weighted: bool = False) -> FsnResult:
    """Fail-safe N (metafor 3.8 `fsn`).

    ``"Rosenthal"`` (1979, Psychol Bull 86:638; Stouffer's method, one-sided ``alpha``); ``"Orwin"`` (1983,
    J Educ Stat 8:157; unweighted mean unless ``weighted``, ``target`` = half the mean by default);
    ``"Rosenberg"`` (2005, Evolution 59:464; equal-effects weighted mean, two-sided ``alpha``). A fractional
    N is rounded up, as metafor does. ``yi`` may also be a fit (its yi and vi are used).
    """
    _check_choice("fsn", "type", type, FSN_TYPES)
    if isinstance(yi, RMAResult):
        y, v = yi.yi, yi.vi
    elif type == "Orwin" and not weighted and vi is None and sei is None:
        y = np.atleast_1d(np.asarray(yi, dtype=float))
        v = np.zeros_like(y)
    else:
        y, v = _as_yivi("fsn", yi, vi, sei)
    k = len(y)
    pval = meanes = None
    if type == "Rosenthal":
        z_avg = abs(np.sum(y / np.sqrt(v)) / math.sqrt(k))
        pval = float(special.ndtr(-z_avg))
        fsnum = max(0.0, k * (z_avg / -special.ndtri(alpha)) ** 2 - k)
        target = None
    elif type == "Orwin":
        meanes = float(np.sum(y / v) / np.sum(1 / v)) if weighted else float(np.mean(y))
        if target is None:
            target = meanes / 2
        if target == 0:
            fsnum = math.inf
        else:
            if np.sign(target) != np.sign(meanes):
                target = -target
            fsnum = max(0.0, k * (meanes - target) / target)
    else:
        w = 1 / v
        meanes = float(np.sum(w * y) / np.sum(w))
        zval = meanes / math.sqrt(1 / np.sum(w))
        wp = (np.sum(w * y) / -special.ndtri(alpha / 2)) ** 2 - np.sum(w)
        pval = float(2 * special.ndtr(-abs(zval)))
        fsnum = max(0.0, k * wp / np.sum(w))
        target = None
    if not math.isinf(fsnum) and abs(fsnum - round(fsnum)) >= math.sqrt(np.finfo(float).eps):
        fsnum = float(math.ceil(fsnum))
    elif not math.isinf(fsnum):
        fsnum = float(round(fsnum))
    return FsnResult(type=type, fsnum=fsnum, alpha=alpha, pval=pval, meanes=meanes,
                     target=None if target is None else float(target))


__all__ = ["regtest", "ranktest", "trimfill", "fsn", "RegtestResult", "RanktestResult", "TrimfillResult",
           "FsnResult"]
