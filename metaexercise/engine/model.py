"""`rma`: equal-effects, random-effects and mixed-effects (meta-regression) models, as metafor 3.8's `rma.uni`.

Model (Viechtbauer 2010, J Stat Softw 36(3), doi:10.18637/jss.v036.i03, eqs. 1–5)::

    yᵢ = xᵢ'β + uᵢ + εᵢ,   uᵢ ~ N(0, τ²),   εᵢ ~ N(0, vᵢ)

with β̂ = (X'WX)⁻¹X'Wy, W = diag(1/(vᵢ + τ̂²)), Var(β̂) = (X'WX)⁻¹; under ``test="knha"`` Var(β̂) is multiplied
by s² = Σ wᵢ (yᵢ − xᵢ'β̂)² / (k − p) and tests use t(k − p) (Knapp & Hartung 2003, Stat Med 22:2693).
With user weights A = diag(aᵢ) (metafor's ``weights``): β̂ = (X'AX)⁻¹X'Ay, Var(β̂) = (X'AX)⁻¹X'A M A X(X'AX)⁻¹,
M = diag(vᵢ + τ̂²).
Heterogeneity: Q_E = Σ (yᵢ − xᵢ'β̂_EE)²/vᵢ (Cochran 1954); I² = 100·τ̂²/(τ̂² + ṽ) and H² = τ̂²/ṽ + 1 with the
"typical" within-study variance ṽ = (k − p)/tr(P) (Higgins & Thompson 2002, Stat Med 21:1539, eq. 9;
metafor's default ``i2def="1"``). Pseudo-R² = (τ̂²_RE − τ̂²_ME)/τ̂²_RE in percent (Raudenbush 2009).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from metaexercise._version import __version__
from metaexercise.engine import kernels
from metaexercise.engine.fixed_tau2 import se_fixed_tau2
from metaexercise.engine.kernels import METHODS, TESTS, Method, Test
from metaexercise.engine.model_inputs import NAOmittedWarning, model_inputs
from metaexercise.engine.newmods import apply_transf, new_design, sorted_bounds
from metaexercise.engine.tau2 import ESTIMATORS, Control, generalized_q
from metaexercise.engine.wls import redundant_columns, wls
from metaexercise.errors import ConvergenceError

if TYPE_CHECKING:  # pandas is imported where a table is built, not when the engine loads
    import pandas as pd

PI_DISTS: tuple[str, ...] = ("default", "riley")


class RedundantPredictorsWarning(UserWarning):
    """Moderators collinear with the intercept or with moderators before them were dropped from the model
    (metafor 3.8: "Redundant predictors dropped from the model.")."""


class NonPositiveVariancesWarning(UserWarning):
    """Some (not all) sampling variances are 0 (metafor 3.8: "There are outcomes with non-positive sampling
    variances." and "Cannot compute Q-test, I^2, or H^2 when there are non-positive sampling variances in the
    data.")."""


def _pval_z(z):
    """Two-sided normal p-value 2·Φ(−|z|) (scipy.special: fast, and accurate far into the tail)."""
    return 2 * special.ndtr(-np.abs(z))


def _pval_t(t, df):
    return 2 * special.stdtr(df, -np.abs(t))


def _z_crit(alpha: float) -> float:
    return float(-special.ndtri(alpha / 2))


def _t_crit(alpha: float, df: float) -> float:
    return float(special.stdtrit(df, 1 - alpha / 2))


def _t_isf(alpha: float, df: float) -> float:
    """Upper-tail t quantile (scipy.stats' `t.isf`, computed as it does)."""
    return float(-special.stdtrit(df, alpha))


def _z_isf(alpha: float) -> float:
    """Upper-tail normal quantile (scipy.stats' `norm.isf`, computed as it does)."""
    return float(-special.ndtri(alpha))


class Coef(float):
    """The one coefficient of an intercept-only model: a plain ``float`` that also reads as the length-1
    coefficient vector.

    ``fit.beta``, ``fit.se``, ``fit.zval``, ``fit.pval``, ``fit.ci_lb`` and ``fit.ci_ub`` of an intercept-only
    fit are ``Coef``: everything a float does works (``np.exp([fit.estimate, fit.ci_lb, fit.ci_ub])``,
    ``f"{fit.pval:.3f}"``, ``round(fit.zval, 2)``, ``json.dumps``, pandas cells and columns), and code
    written for the per-coefficient vectors of models with moderators keeps working too: ``fit.se[0]``,
    ``len(fit.se) == 1``, ``for s in fit.se``, ``zip(fit.coef_names, fit.beta)``. Like NumPy's own scalars
    (``np.float64``) it has ``ndim == 0`` and ``shape == ()``, so NumPy and pandas treat it as a scalar
    (``np.asarray(fit.se).shape == ()``; ``np.atleast_1d(fit.se)`` gives the shape-(1,) vector).
    Arithmetic returns plain floats. Models with moderators hold these fields as 1-D float arrays.
    """

    __slots__ = ()
    ndim = 0
    shape: tuple[int, ...] = ()
    size = 1

    def __getitem__(self, key):
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            if key in (0, -1):
                return float(self)
            raise IndexError(f"coefficient index {key} is out of range: an intercept-only model has one")
        return np.array([float(self)])[key]

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield float(self)

    def __repr__(self) -> str:
        return float.__repr__(self)


def _coefs(values: np.ndarray) -> np.ndarray | Coef:
    """Per-coefficient values as the result holds them: a `Coef` for one coefficient, else a 1-D array."""
    a = np.asarray(values, dtype=float).reshape(-1)
    return Coef(a[0]) if a.size == 1 else a


def coef_vector(values) -> np.ndarray:
    """A per-coefficient field (array or `Coef`) as a 1-D float array, for matrix algebra (``X @ β``)."""
    return np.atleast_1d(np.asarray(values, dtype=float))


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted (average) true effects with CI and prediction interval, as metafor's `predict.rma`. With a
    ``transf`` the values are transformed and ``se`` is NaN (metafor: NA); ``X`` holds the design rows when
    asked for (``addx=True``)."""

    pred: np.ndarray
    se: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    pi_df: float | None
    X: np.ndarray | None = None
    transf: bool = False

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = {"pred": self.pred, "se": self.se, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub,
                "pi_lb": self.pi_lb, "pi_ub": self.pi_ub}
        if self.transf:
            del cols["se"]  # metafor's print.list.rma leaves out the NA standard errors of transformed values
        return pd.DataFrame(cols)


@dataclass(frozen=True, slots=True)
class HeterogeneityCI:
    """Q-profile confidence intervals for τ², τ, I² (%) and H² (Viechtbauer 2007, Stat Med 26:37;
    metafor's `confint.rma.uni`, ``type="QP"``)."""

    level: float
    tau2: tuple[float, float, float]
    tau: tuple[float, float, float]
    I2: tuple[float, float, float]
    H2: tuple[float, float, float]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = {"tau^2": self.tau2, "tau": self.tau, "I^2(%)": self.I2, "H^2": self.H2}
        return pd.DataFrame(rows, index=["estimate", "ci_lb", "ci_ub"]).T

    def summary(self) -> str:
        """Laid out as metafor's `print.confint.rma`."""
        df = self.to_frame()
        names = list(df.index)
        vals = [[f"{v:.4f}" for v in row] for row in df.to_numpy()]
        rw = max(len(n) for n in names)
        widths = [max(len(h), *(len(r[j]) for r in vals)) for j, h in enumerate(["estimate", "ci.lb", "ci.ub"])]
        head = " " * rw + "".join(" " + h.rjust(w) for h, w in zip(["estimate", "ci.lb", "ci.ub"], widths))
        body = [n.ljust(rw) + "".join(" " + v.rjust(w) for v, w in zip(r, widths)) for n, r in zip(names, vals)]
        return "\n".join(["", head + " ", *(b + " " for b in body), ""]) + "\n"

    __str__ = summary


@dataclass(frozen=True, slots=True)
class RMAResult:
    """A fitted model. Coefficient-level fields (``beta``, ``se``, ``zval``, ``pval``, ``ci_lb``, ``ci_ub``) are
    1-D arrays, one entry per coefficient, intercept first; for an intercept-only model each is a `Coef`, a
    float that also answers ``[0]``, ``len`` and iteration. ``vb`` is the p × p covariance matrix in both cases.
    Heterogeneity summaries are floats. Immutable: every quantity is computed once, when the model is fitted."""

    k: int
    p: int
    method: str
    test: str
    level: float
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    coef_names: tuple[str, ...]
    beta: np.ndarray | Coef
    se: np.ndarray | Coef
    zval: np.ndarray | Coef
    pval: np.ndarray | Coef
    ci_lb: np.ndarray | Coef
    ci_ub: np.ndarray | Coef
    vb: np.ndarray
    ddf: float | None
    tau2: float
    se_tau2: float
    tau2_fixed: bool
    I2: float
    H2: float
    vt: float
    QE: float
    QEp: float
    QM: float
    QMp: float
    QM_df: tuple[float, float | None]
    R2: float | None
    pi_lb: float
    pi_ub: float
    ll: float
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    converged: bool
    iterations: int
    control: Control
    version: str = __version__
    checksum: str = ""
    notes: tuple[str, ...] = field(default=())
    #: names of the moderators dropped as redundant (metafor's `coef.na`), in their original order
    dropped: tuple[str, ...] = field(default=())
    #: whether the model has an intercept (metafor's `int.incl`; ``intercept=False`` or a formula with ``- 1``)
    int_incl: bool = True
    #: 0-based positions of the coefficients tested by QM (metafor's `btt`, 1-based there)
    btt: tuple[int, ...] = field(default=())
    #: all sampling variances positive (metafor's `allvipos`); else QE, QEp, I2, H2 are NaN
    allvipos: bool = True
    #: metafor's user `weights` (None: inverse-variance weights 1/(vi + tau^2))
    user_weights: np.ndarray | None = field(default=None, repr=False)
    #: metafor's fit.stats: {"ML": (logLik, deviance, AIC, BIC, AICc), "REML": (...)}
    fit_stats: dict = field(default_factory=dict, repr=False)
    #: the number of studies given (metafor's `k.all`, before `subset` and the omission of missing values)
    k_all: int | None = None
    #: boolean mask over the k_all studies selected by `subset` (None: all)
    subset: np.ndarray | None = field(default=None, repr=False)
    #: boolean mask over the studies selected by `subset`: True where fitted (metafor's `not.na`)
    not_na: np.ndarray | None = field(default=None, repr=False)
    #: 0-based positions, among the k_all studies given, of the k studies fitted
    positions: np.ndarray | None = field(default=None, repr=False)
    #: the formula design (engine.formula.FormulaDesign) when mods was a formula, for predict(newmods=DataFrame)
    formula: object | None = field(default=None, repr=False, compare=False)

    # -- convenience -------------------------------------------------------------------------------------------
    @property
    def estimate(self) -> float:
        """The (first) coefficient: the pooled effect for an intercept-only model."""
        return float(self.beta[0])

    @property
    def tau(self) -> float:
        return float(np.sqrt(self.tau2))

    @property
    def int_only(self) -> bool:
        """Intercept-only model (metafor's `int.only`)."""
        return self.p == 1 and self.int_incl

    @property
    def parms(self) -> int:
        """Number of parameters estimated: p, plus τ² unless equal-effects or fixed (metafor's `parms`)."""
        return self.p + (0 if self.method == "EE" or self.tau2_fixed else 1)

    @property
    def k_f(self) -> int:
        """Studies selected by `subset`, before omitting missing values (metafor's `k.f`)."""
        return self.k if self.not_na is None else int(self.not_na.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """Percentage weights 100·wᵢ/Σw with wᵢ = 1/(vᵢ + τ̂²), or the user weights (metafor's
        `weights.rma.uni`)."""
        w = 1 / (self.vi + self.tau2) if self.user_weights is None else self.user_weights
        return 100 * w / w.sum()

    @property
    def fitted(self) -> np.ndarray:
        return self.X @ coef_vector(self.beta)

    # -- derived results ---------------------------------------------------------------------------------------
    def predict(self, newmods=None, *, intercept: bool | None = None, level: float | None = None, transf=None,
                addx: bool = False, pi_dist: str = "default") -> Prediction:
        """Predicted values with CI and prediction interval (metafor's `predict.rma`).

        ``newmods``: None gives the fitted values of the k studies (one value for an intercept-only model);
        otherwise the moderator values of new studies, either as a design matrix without the intercept column
        (a vector for one moderator, one row per prediction; a DataFrame may name its columns by coefficient
        name, in any order), or, for a model fitted with a formula, as a DataFrame (or mapping) of the original
        variables, e.g. ``{"ablat": [10, 30], "alloc": ["random", "systematic"]}``, through which the formula is
        evaluated with the factor levels of the fit. ``intercept=False`` sets the intercept column to 0
        (metafor's ``intercept``). ``transf`` (e.g. ``np.exp``) transforms pred and the interval bounds (then
        ``se`` is NaN, as metafor's NA; bounds are re-sorted if the function is decreasing). ``addx=True``
        keeps the design rows in ``X``.

        ``pi_dist="default"``: the PI uses z under ``test="z"`` and t(k − p) under Knapp–Hartung, as
        `predict.rma`; ``"riley"``: t(k − p − 1), i.e. the Higgins–Thompson–Spiegelhalter / Riley et al.
        (2011, BMJ 342:d549) t(k − 2) interval for an intercept-only model (`pi.type="riley"`).
        """
        if pi_dist not in PI_DISTS:
            raise ValueError(f"predict: pi_dist must be one of {PI_DISTS}, got {pi_dist!r}")
        level = self.level if level is None else level
        alpha = 1 - level / 100
        if newmods is None:
            Xn = self.X[:1] if self.int_only else self.X
        else:
            Xn = new_design(self, newmods, True if intercept is None else bool(intercept))
        pred = Xn @ coef_vector(self.beta)
        vpred = np.einsum("ij,jk,ik->i", Xn, self.vb, Xn)
        se = np.sqrt(np.where(vpred < 0, np.nan, vpred))
        ddf = self.k - self.p
        if self.test == "knha":
            crit = _t_isf(alpha / 2, ddf) if ddf > 0 else np.nan
        else:
            crit = _z_isf(alpha / 2)
        ci_lb, ci_ub = pred - crit * se, pred + crit * se
        pi_df = float(ddf) if self.test == "knha" else None
        if pi_dist == "riley":
            pi_df = float(max(1, ddf - self.parms + self.p))
            crit = _t_isf(alpha / 2, pi_df)
        half = crit * np.sqrt(vpred + self.tau2)
        pi_lb, pi_ub = pred - half, pred + half
        if transf is not None:
            pred, ci_lb, ci_ub, pi_lb, pi_ub = (apply_transf(transf, a) for a in (pred, ci_lb, ci_ub, pi_lb, pi_ub))
            se = np.full(pred.shape, np.nan)
            ci_lb, ci_ub = sorted_bounds(ci_lb, ci_ub)
            pi_lb, pi_ub = sorted_bounds(pi_lb, pi_ub)
        return Prediction(pred, se, ci_lb, ci_ub, pi_lb, pi_ub, pi_df, X=Xn.copy() if addx else None,
                          transf=transf is not None)

    # -- metafor's extractor functions and anova (engine.extractors, engine.hypothesis), as methods ------------
    def blup(self, level: float | None = None, transf=None):
        """Best linear unbiased predictions of the true effects (metafor's `blup`; engine.extractors.blup)."""
        from metaexercise.engine.extractors import blup

        return blup(self, level=level, transf=transf)

    def ranef(self, level: float | None = None, transf=None):
        """Predicted random effects (metafor's `ranef`; engine.extractors.ranef)."""
        from metaexercise.engine.extractors import ranef

        return ranef(self, level=level, transf=transf)

    def rstandard(self, type: str = "marginal"):
        """Standardized residuals (metafor's `rstandard`; engine.extractors.rstandard)."""
        from metaexercise.engine.extractors import rstandard

        return rstandard(self, type=type)

    def residuals(self, type: str = "response") -> np.ndarray:
        """Residuals (metafor's `residuals`; engine.extractors.residuals)."""
        from metaexercise.engine.extractors import residuals

        return residuals(self, type=type)

    def vcov(self, type: str = "fixed") -> np.ndarray:
        """Variance-covariance matrices (metafor's `vcov`; engine.extractors.vcov)."""
        from metaexercise.engine.extractors import vcov

        return vcov(self, type=type)

    def hatvalues(self, type: str = "diagonal") -> np.ndarray:
        """Hat values (metafor's `hatvalues`; engine.extractors.hatvalues)."""
        from metaexercise.engine.extractors import hatvalues

        return hatvalues(self, type=type)

    def fitstats(self, REML: bool | None = None) -> dict[str, float]:
        """logLik, deviance, AIC, BIC, AICc (metafor's `fitstats`; engine.extractors.fitstats)."""
        from metaexercise.engine.extractors import fitstats

        return fitstats(self, REML=REML)

    def anova(self, other=None, **kwargs):
        """Wald tests or a likelihood-ratio test (metafor's `anova`; engine.hypothesis.anova)."""
        from metaexercise.engine.hypothesis import anova

        return anova(self, other, **kwargs)

    def confint(self, level: float | None = None) -> HeterogeneityCI:
        """Q-profile CIs for τ², τ, I², H² (Viechtbauer 2007; metafor `confint.rma.uni`, default type "QP")."""
        if not self.allvipos:
            raise ValueError("confint: cannot compute a CI for tau^2 when there are non-positive sampling variances "
                             "in the data (as metafor)")
        if self.method == "EE":
            raise ValueError("confint: an equal-effects model has no random-effects component")
        if self.tau2_fixed:
            raise ValueError("confint: tau^2 was fixed by the user, not estimated")
        if self.k == 1:
            raise ValueError("confint: not available for k = 1")
        level = self.level if level is None else level
        alpha = 1 - level / 100
        df = self.k - self.p
        tmin = min(0.0, self.tau2)
        tmax = max(100.0, self.tau2 * 10, tmin * 10)
        from scipy import optimize

        # scipy.stats' chi2.isf and chi2.ppf, computed as they do
        crit_u, crit_l = special.chdtri(df, alpha / 2), 2 * special.gammaincinv(df / 2, alpha / 2)
        q = lambda t: generalized_q(self.yi, self.vi, self.X, t)  # noqa: E731
        q_min, q_max = q(tmin), q(tmax)

        def root(target):
            return optimize.brentq(lambda t: q(t) - target, tmin, tmax, xtol=self.control.tol, rtol=1e-15)

        lb = ub = np.nan
        if q_min < crit_l:
            lb = ub = tmin
        else:
            ub = tmax if q_max > crit_l else root(crit_l)
        if q_max > crit_u:
            lb = ub = tmax
        elif not q_min < crit_l:
            lb = tmin if q_min < crit_u else root(crit_u)
        vt = self.vt
        tau2 = (self.tau2, lb, ub)
        return HeterogeneityCI(
            level=level,
            tau2=tau2,
            tau=tuple(float(np.sqrt(t)) if t >= 0 else np.nan for t in tau2),
            I2=(self.I2, 100 * lb / (vt + lb), 100 * ub / (vt + ub)),
            H2=(self.H2, lb / vt + 1, ub / vt + 1),
        )

    def conf_int(self, level: float = 95) -> pd.DataFrame:
        """Wald (or t) confidence intervals for the coefficients at another level, from the stored fit."""
        import pandas as pd

        alpha = 1 - level / 100
        crit = _t_isf(alpha / 2, self.ddf) if self.test == "knha" else _z_isf(alpha / 2)
        beta, se = coef_vector(self.beta), coef_vector(self.se)
        return pd.DataFrame(
            {"estimate": beta, "ci_lb": beta - crit * se, "ci_ub": beta + crit * se},
            index=list(self.coef_names),
        )

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        stat = "tval" if self.test == "knha" else "zval"
        cols = {"estimate": self.beta, "se": self.se, stat: self.zval, "pval": self.pval,
                "ci_lb": self.ci_lb, "ci_ub": self.ci_ub}
        return pd.DataFrame({c: coef_vector(v) for c, v in cols.items()},
                            index=pd.Index(list(self.coef_names), name="coef"))

    def summary(self) -> str:
        from metaexercise.engine.printing import format_rma

        return format_rma(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RMAResult k={self.k} method={self.method} test={self.test} estimate={self.estimate:.4f}>"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(self.summary())}</pre>"


def _check_range(y: np.ndarray, v: np.ndarray, tau2, positions: np.ndarray) -> None:
    """The engine's input range (kernels.YI_MAX, VI_MIN, VI_MAX): outside it squares and cubes of the data
    overflow or underflow double precision, so such input is refused here, by name and position (positions
    among the studies given). Sampling variances of exactly 0 are allowed, as in metafor (see `rma`)."""
    pos = v > 0
    vp = v[pos] if not pos.all() else v
    if vp.size and not (float(np.abs(y).max()) <= kernels.YI_MAX and float(vp.min()) >= kernels.VI_MIN
                        and float(vp.max()) <= kernels.VI_MAX):
        _range_error(y, v, positions)
    if not vp.size and not float(np.abs(y).max()) <= kernels.YI_MAX:
        _range_error(y, v, positions)
    if pos.all() and kernels.dominated(float(v.min()), float(np.sum(1 / v)), len(v)):
        j = int(np.argmin(v))
        others = float(np.sum(1 / np.delete(v, j)))
        raise ValueError(
            f"rma: study {int(positions[j])} (0-based; vi = {float(v[j])!r}) has a weight 1/vi "
            f"{1 / float(v[j]) / others:.3g} times the sum of all other weights (more than "
            f"{kernels.WEIGHT_DOMINANCE_MAX:g}): in double precision the heterogeneity statistics (Q, the traces of "
            "P, tau^2) would be rounding noise (metafor warns \"Ratio of largest to smallest sampling variance "
            "extremely large\" and returns such numbers). Analyse that study apart from the others, or check its "
            "variance."
        )
    if tau2 is not None:
        t = float(tau2)
        if not (np.isfinite(t) and abs(t) <= kernels.VI_MAX and np.all(v + t > 0)):
            raise ValueError(f"rma: a fixed tau2 must be a finite number with |tau2| <= {kernels.VI_MAX:g} and "
                             f"vi + tau2 > 0 for every study; got tau2 = {tau2!r}")


def _range_error(y: np.ndarray, v: np.ndarray, positions: np.ndarray) -> None:
    big = np.flatnonzero(np.abs(y) > kernels.YI_MAX)
    if big.size:
        raise ValueError(
            f"rma: yi = {y[big[:5]].tolist()} at positions {positions[big].tolist()} (0-based) is outside the range "
            f"the engine computes with, |yi| <= {kernels.YI_MAX:g} (squares of such effect sizes come close to "
            "overflowing double precision); rescale the effect sizes (e.g. other units)"
        )
    out = np.flatnonzero(((v < kernels.VI_MIN) & (v != 0)) | (v > kernels.VI_MAX))
    if out.size:
        raise ValueError(
            f"rma: vi = {v[out[:5]].tolist()} at positions {positions[out].tolist()} (0-based) is outside the range "
            f"the engine computes with, {kernels.VI_MIN:g} <= vi <= {kernels.VI_MAX:g} (the cubes of the weights "
            "1/vi would overflow or underflow double precision); rescale the effect sizes and their variances"
        )


def _check_values(y: np.ndarray, v: np.ndarray, w: np.ndarray | None, M: np.ndarray | None,
                  names: tuple[str, ...], positions: np.ndarray) -> None:
    """Values metafor cannot fit either, named by position among the studies given (missing values, NaN, have
    been omitted before: engine.model_inputs)."""
    if np.isfinite(y).all() and np.isfinite(v).all() and v.min() >= 0 and w is None and M is None:
        return  # the common case, at the cost of three reductions
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(f"rma: yi is infinite at positions {positions[bad].tolist()} (0-based); missing values "
                         "(NaN) are omitted as metafor's na.omit, infinite ones cannot be fitted")
    bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
    if bad.size:
        raise ValueError(
            f"rma: sampling variances must be finite and non-negative; vi = {v[bad].tolist()} at positions "
            f"{positions[bad].tolist()} (0-based) (metafor sets negative ones to 0 with a warning; give 0 "
            "explicitly if that is meant)"
        )
    if w is not None:
        bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
        if bad.size:
            raise ValueError(f"rma: weights must be finite and non-negative (metafor: \"Negative weights not "
                             f"allowed.\", \"Infinite weights not allowed.\"); weights = {w[bad].tolist()} at "
                             f"positions {positions[bad].tolist()} (0-based)")
    if M is not None:
        bad = np.flatnonzero(~np.isfinite(M).all(axis=1))
        if bad.size:
            raise ValueError(f"rma: mods has non-finite values in rows {positions[bad].tolist()} (0-based); missing "
                             "values (NaN) are omitted as metafor's na.omit, infinite ones cannot be fitted")
        big = np.argwhere(np.abs(M) > kernels.MODS_MAX)
        if big.size:
            i, j = (int(a) for a in big[0])
            raise ValueError(f"rma: mods[{int(positions[i])}, {j}] = {float(M[i, j])!r} is outside the range the "
                             f"engine computes with, |mods| <= {kernels.MODS_MAX:g}; rescale the moderator "
                             f"{names[j]!r}")


def _drop_redundant(X: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """metafor 3.8 `rma.uni`: moderators that R's `lm(yi ~ X - 1)` finds redundant (NA coefficients: its
    pivoted QR with tolerance 1e-7, engine.wls.redundant_columns) are dropped with a warning."""
    if X.shape[1] == 1:
        return X, names, ()
    redundant = redundant_columns(X, kernels.QR_TOL)
    if not redundant.any():
        return X, names, ()
    dropped = tuple(n for n, r in zip(names, redundant, strict=True) if r)
    warnings.warn(
        f"rma: redundant predictors dropped from the model: {', '.join(dropped)} (constant, or collinear with "
        "the intercept and the moderators before them, to R's lm tolerance 1e-7; as metafor)",
        RedundantPredictorsWarning, stacklevel=4,
    )
    keep = ~redundant
    return X[:, keep], tuple(n for n, r in zip(names, redundant, strict=True) if not r), dropped


def _intercept_first(X: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...], bool]:
    """metafor 3.8 `rma.uni`: a column of ones (|x − 1| < 1e-8 throughout, `.is.intercept`) is the intercept:
    it is moved to the front and named "intrcpt" (``int.incl``); names made unique as metafor's `.make.unique`."""
    if names[0] == "intrcpt" and X.shape[1] == 1 and np.all(X == 1.0):
        return X, names, True  # the intercept-only model
    ones = np.all(np.abs(X - 1.0) < 1e-8, axis=0)
    int_incl = bool(ones.any())
    if int_incl and not (ones[0] and names[0] == "intrcpt" and ones.sum() == 1):
        rest = np.flatnonzero(~ones)
        X = np.column_stack([np.ones(X.shape[0]), X[:, rest]])
        names = ("intrcpt", *(names[i] for i in rest))
    if len(set(names)) < len(names):
        counts: dict[str, int] = {}
        total = {n: names.count(n) for n in names}
        out = []
        for n in names:
            if total[n] > 1:
                counts[n] = counts.get(n, 0) + 1
                out.append(f"{n}.{counts[n]}")
            else:
                out.append(n)
        names = tuple(out)
    return X, names, int_incl


def _check_full_rank(X: np.ndarray) -> None:
    """metafor 3.8 `rma.uni`, after dropping redundant predictors: stop if an eigenvalue of X'X is at most
    its `evtol` (1e-7) ("Model matrix not of full rank. Cannot fit model.")."""
    if X.shape[1] == 1:
        return
    ev = float(np.linalg.eigvalsh(X.T @ X).min())
    if not ev > kernels.EVTOL:
        raise ValueError(
            f"rma: the model matrix is not of full rank: the smallest eigenvalue of X'X is {ev:.3g} <= "
            f"{kernels.EVTOL:g} (metafor's evtol; metafor stops here too: \"Model matrix not of full rank. "
            "Cannot fit model.\"). Moderators are nearly collinear (or on a very small scale): drop or combine "
            "them, or rescale them."
        )


#: metafor 3.8's message (`rma.uni`) when a model has more parameters than studies.
TOO_MANY_PARAMETERS = "Number of parameters to be estimated is larger than the number of observations."


def _check_parameter_count(k: int, p: int, method: str, tau2, int_only: bool) -> None:
    """metafor 3.8 `rma.uni`'s check, before any fitting: an equal-effects model (or one with τ² fixed by the
    user) estimates p coefficients, a random-effects one p + 1 parameters (τ² too); more parameters than
    studies stop the fit. An intercept-only model with k = 1 is exempt: τ² is set to 0 and the fit is the
    study itself."""
    if int_only and k == 1:
        return
    with_tau2 = method != "EE" and tau2 is None
    n_par = p + with_tau2
    if n_par > k:
        what = f"{p} coefficient{'s' if p > 1 else ''}" + (" and tau^2" if with_tau2 else "")
        hint = ("fit method='EE', fix tau2=..., or use fewer moderators" if with_tau2
                else "use fewer moderators")
        raise ValueError(f"rma: {TOO_MANY_PARAMETERS} The model has {what} to estimate from k = {k} "
                         f"studies (metafor stops here too); {hint}.")


def _checksum(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()[:16]


#: metafor's message when 1/(vi + tau^2) is infinite (a study with vi = 0 and tau^2 = 0).
DIVISION_BY_ZERO = "Division by zero when computing the inverse variance weights."
#: estimators metafor refuses when a sampling variance is 0 (they weight by 1/vi).
NEEDS_POSITIVE_VI = ("DL", "HS", "PM")


def rma(
    yi,
    vi=None,
    *,
    sei=None,
    weights=None,
    mods=None,
    intercept: bool = True,
    data=None,
    subset=None,
    method: Method = "REML",
    test: Test = "z",
    level: float = 95,
    tau2: float | None = None,
    control: Control | None = None,
) -> RMAResult:
    """Fit an equal-effects (``method="EE"``), random-effects or mixed-effects meta-analytic model.

    Mirrors metafor 3.8 ``rma(yi, vi, sei, weights, mods, intercept, data, subset, method, test, level, tau2,
    control)``: REML by default, z-tests, 95% intervals.

    - ``yi``, ``vi``, ``sei``, ``weights``: arrays, or column names of ``data``; ``yi`` may also be an
      :class:`~metaexercise.engine.effects.EffectSizes`, or a two-sided formula ``"yi ~ x"`` (with ``data``).
    - ``mods``: a formula string with ``data`` (``"~ ablat + factor(alloc)"``: treatment-coded factors,
      interactions ``a:b``/``a*b``, ``- 1``/``0 +`` without intercept; coefficients named as metafor names
      them, e.g. ``factor(alloc)random``; engine.formula; ``intercept`` is then ignored, as in metafor: write
      ``- 1``), or a 1-D/2-D array or DataFrame of moderators, to which an intercept is added unless
      ``intercept=False``. A column of ones is always taken as the intercept (named "intrcpt", put first).
    - ``weights``: metafor's user weights: β̂ = (X'AX)⁻¹X'Ay with A = diag(weights), Var(β̂) =
      (X'AX)⁻¹X'A M A X(X'AX)⁻¹, M = diag(vᵢ + τ̂²); τ² is estimated as without weights.
    - ``subset``: a boolean mask or 0-based positions (metafor's are 1-based).
    - Missing values (NaN) in yi, vi, moderators or weights: those studies are omitted with an
      `NAOmittedWarning` (metafor's default ``na.action="na.omit"``); ``k_all`` keeps the count given.
    - ``vi = 0`` is allowed as in metafor: the Q-test, I² and H² are then not computed (NaN); the DL, HS and PM
      estimators, an equal-effects model, or a τ² estimate of 0 stop the fit (1/vᵢ is infinite), as metafor.
    """
    if hasattr(yi, "yi") and hasattr(yi, "vi") and vi is None and sei is None:
        yi, vi = yi.yi, yi.vi
    if method not in METHODS:
        raise ValueError(f"rma: unknown method {method!r}; choose one of {METHODS}")
    if test not in TESTS:
        raise ValueError(f"rma: unknown test {test!r}; choose one of {TESTS}")
    if not 0 < level < 100:
        raise ValueError(f"rma: level must be a percentage between 0 and 100, got {level!r}")
    inp = model_inputs(yi, vi, sei, weights, mods, data, subset)
    y, v, M = inp.y, inp.v, inp.mods
    k = y.shape[0]
    _check_values(y, v, inp.weights, M, inp.mod_names, inp.positions)
    if inp.from_formula:
        X, names = M, inp.mod_names  # the formula carries (or drops) its intercept, as metafor's model.matrix
    elif M is None:
        if not intercept:
            warnings.warn("rma: a model needs an intercept or moderators: intercept coerced into the model (as "
                          "metafor)", UserWarning, stacklevel=2)
        X, names = np.ones((k, 1)), ("intrcpt",)
    elif intercept:
        X, names = np.column_stack([np.ones(k), M]), ("intrcpt", *inp.mod_names)
    else:
        X, names = M, inp.mod_names
    return _fit(y, v, X, names, weights=inp.weights, method=method, test=test, level=level, tau2=tau2,
                control=control or Control(), positions=inp.positions, k_all=inp.k_all, subset=inp.subset,
                not_na=inp.not_na, formula=inp.design)


def _fit(y, v, X, names, *, weights, method, test, level, tau2, control, positions=None, k_all=None, subset=None,
         not_na=None, formula=None) -> RMAResult:
    """The fit itself, on finite, complete data (metafor `rma.uni` from its check of the parameter count on)."""
    k = y.shape[0]
    positions = np.arange(k) if positions is None else positions
    _check_range(y, v, None if method == "EE" else tau2, positions)
    X, names, dropped = _drop_redundant(X, tuple(names))
    X, names, int_incl = _intercept_first(X, names)
    p = X.shape[1]
    int_only = p == 1 and int_incl
    _check_parameter_count(k, p, method, tau2, int_only)
    _check_full_rank(X)
    allvipos = bool(v.min() > 0)
    vi0 = not allvipos and bool(v.max() == 0)

    notes: list[str] = []
    if dropped:
        notes.append(f"redundant predictors dropped from the model: {', '.join(dropped)}")
    if allvipos and v.max() / v.min() >= kernels.VI_RATIO_NOTE:
        notes.append(f"the largest sampling variance is {v.max() / v.min():.3g} times the smallest: results "
                     "may not be stable (metafor warns from 1e7 on)")
    if not allvipos:
        zero = positions[v == 0].tolist()
        if not vi0:
            warnings.warn(f"rma: there are outcomes with non-positive sampling variances (vi = 0 at positions "
                          f"{zero}, 0-based), as metafor warns", NonPositiveVariancesWarning, stacklevel=3)
        notes.append(f"vi = 0 at positions {zero} (0-based): the Q-test, I^2 and H^2 are not computed")
        if method in NEEDS_POSITIVE_VI:
            raise ValueError(f"rma: the {method} estimator cannot be used when there are non-positive sampling "
                             f"variances in the data (vi = 0 at positions {zero}, 0-based; metafor stops here too); "
                             "use REML, ML, EB, HE or SJ, or fix tau2=")
    if k == 1 and test != "z":
        test = "z"  # metafor: 'Setting argument test="z" since k=1.'
        notes.append('k = 1: test set to "z" (Knapp-Hartung needs k > 1)')
    tau2_fixed = tau2 is not None and method != "EE"
    iterations, converged = 0, True
    # metafor 3.8 estimates tau^2 and computes QE from the centred outcomes (`Ymc`): the same numbers when the
    # model has an intercept, other ones without (e.g. mods = ~ x - 1), which is what metafor reports
    if method == "EE":
        t2, se_t2 = 0.0, np.nan
    elif tau2_fixed:
        t2 = float(tau2)
        with np.errstate(divide="ignore", invalid="ignore"):
            se_t2 = se_fixed_tau2(method, y, v, X, t2, control) if k > 1 else np.nan
    elif k == 1:
        t2, se_t2 = 0.0, np.nan
        notes.append("k = 1: tau^2 set to 0 (not estimable from one study)")
    else:
        ctrl = control if allvipos else replace(control, ll0check=False)  # metafor: ll0check needs all vi > 0
        if allvipos:
            est = ESTIMATORS[method](y if int_incl else y - y.mean(), v, X, ctrl)
        else:
            try:
                with np.errstate(divide="ignore", invalid="ignore"):
                    est = ESTIMATORS[method](y if int_incl else y - y.mean(), v, X, ctrl)
            except ConvergenceError as exc:
                if "not a finite number" not in str(exc):
                    raise
                raise ValueError(f"rma: {DIVISION_BY_ZERO} A study with vi = 0 at positions "
                                 f"{positions[v == 0].tolist()} (0-based) needs tau^2 > 0, and the {method} "
                                 "iterations reached tau^2 = 0; metafor stops here too.") from exc
        t2, se_t2, iterations, converged = est.tau2, est.se_tau2, est.iterations, est.converged
        if t2 <= control.tau2_min:
            notes.append("tau^2 estimated at its lower bound (0): no between-study variance detected")
    if not allvipos and not np.all(v + t2 > 0):
        raise ValueError(f"rma: {DIVISION_BY_ZERO} A study with vi = 0 at positions "
                         f"{positions[v + t2 <= 0].tolist()} (0-based) needs tau^2 > 0"
                         + (" (an equal-effects model cannot include it)" if method == "EE" else
                            f" (the {method} estimate is {t2:.6g})") + "; metafor stops here too.")

    w = 1 / (v + t2)
    f = wls(X, y, w)
    if weights is None:
        beta, vb, rss_f = f.beta, f.A, f.rss
    else:
        fa = wls(X, y, weights)
        beta = fa.beta
        B = fa.A @ (X.T * weights)  # (X'AX)^-1 X'A
        vb = (B * (v + t2)) @ B.T
        r = y - X @ beta
        rss_f = float(np.dot(w, r * r))
    if not (np.isfinite(t2) and np.isfinite(beta).all() and np.isfinite(vb).all()):
        raise ValueError(
            f"rma: the fit is not a finite number (tau^2 = {t2!r}, beta = {beta.tolist()}): the data are beyond "
            "double precision's reach (sampling variances or moderators spanning too many orders of magnitude)"
        )
    ddf: float | None = None
    if test == "knha":
        rss = f.rss  # metafor's RSS.knha: from the inverse-variance weighted fit, also with user weights
        s2w = kernels.knha_factor(rss, k - p) if k > p or rss <= kernels.KNHA_RSS_EPS else np.nan
        vb = s2w * vb
        ddf = float(k - p)
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    alpha = 1 - level / 100
    btt = np.arange(1, p) if (p > 1 and int_incl) else np.arange(p)
    m = len(btt)
    try:
        QM = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    except np.linalg.LinAlgError:
        QM = np.nan
    if test == "knha":
        QM /= m
        QM_df = (float(m), float(k - p))
        QMp = float(special.fdtrc(m, k - p, QM)) if k > p else np.nan
        pval = _pval_t(zval, ddf) if ddf > 0 else np.full(p, np.nan)
        crit = _t_crit(alpha, ddf) if ddf > 0 else np.nan
    else:
        QM_df = (float(m), None)
        QMp = float(special.chdtrc(m, QM))
        pval = _pval_z(zval)
        crit = _z_crit(alpha)
    ci_lb, ci_ub = beta - crit * se, beta + crit * se

    # Heterogeneity test and I2/H2 from the equal-effects (FE) fit; not computable with a vi = 0 (metafor).
    if not allvipos:
        QE = QEp = I2 = H2 = vt = np.nan
        if not vi0:
            warnings.warn(f"rma: cannot compute {'Q' if int_only else 'QE'}-test, I^2, or H^2 when there are "
                          "non-positive sampling variances in the data (as metafor)", NonPositiveVariancesWarning,
                          stacklevel=3)
    elif k > p:
        fe = wls(X, y if int_incl else y - y.mean(), 1 / v)
        QE = max(0.0, fe.rss)
        QEp = float(special.chdtrc(k - p, QE))
        vt = (k - p) / fe.tr_P()
        if method == "EE":
            I2 = max(0.0, 100 * (QE - (k - p)) / QE) if QE > 0 else 0.0
            H2 = QE / (k - p)
        else:
            I2 = 100 * t2 / (vt + t2)
            H2 = t2 / vt + 1
    else:
        QE, QEp, I2, H2, vt = 0.0, 1.0, 0.0, 1.0, 0.0

    # Log-likelihoods and fit statistics (metafor `rma.uni`'s fit.stats, both ML and REML columns).
    parms = p + (0 if method == "EE" or tau2_fixed else 1)
    sum_log_v = float(np.sum(np.log(v + t2)))
    ll_ml = -0.5 * k * np.log(2 * np.pi) - 0.5 * sum_log_v - 0.5 * rss_f
    ll_reml = (-0.5 * (k - p) * np.log(2 * np.pi) + 0.5 * _logdet(X.T @ X) - 0.5 * sum_log_v
               + 0.5 * _logdet(f.A) - 0.5 * rss_f)  # log|X'WX| = -log|A|
    if k > p:
        dev_ml = -2 * (ll_ml + 0.5 * np.sum(np.log(2 * np.pi * v))) if allvipos else -2 * ll_ml
    else:
        dev_ml = 0.0
    fit_stats = {"ML": _fit_stats(float(ll_ml), float(dev_ml), parms, k),
                 "REML": _fit_stats(float(ll_reml), float(-2 * ll_reml), parms, k - p)}
    ll, dev, AIC, BIC, AICc = fit_stats["REML" if method == "REML" else "ML"]

    # Pseudo-R2 for mixed-effects models (metafor r2def "1"); adjusted weighted R2 for EE models.
    R2: float | None = None
    if not int_only and int_incl:
        if method == "EE":
            # R's max(0, NaN) is NaN: a saturated fit (k = p) has no adjusted R² (metafor prints "NA%")
            adj = 0.0 if np.var(y) == 0 else _adj_r2_weighted(y, X, w if weights is None else weights)
            R2 = adj if np.isnan(adj) else max(0.0, 100 * adj)
        else:
            try:  # tau^2 of the intercept-only model: the estimator alone (a whole nested fit cost ~2.5x more)
                ctrl = control if allvipos else replace(control, ll0check=False)
                with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                    warnings.simplefilter("ignore")
                    t2_re = ESTIMATORS[method](y, v, np.ones((k, 1)), ctrl).tau2
                if not (np.isfinite(t2_re) and np.all(v + t2_re > 0)):
                    raise ValueError("the intercept-only model cannot be fitted")
                R2 = 0.0 if t2_re == 0 else max(0.0, 100 * (t2_re - t2) / t2_re)
            except Exception:  # noqa: BLE001 - metafor sets R2 to NA when the reduced model fails
                R2 = np.nan

    # Prediction interval for intercept-only models (predict.rma).
    pi_lb = pi_ub = np.nan
    if int_only:
        pcrit = _t_crit(alpha, ddf) if test == "knha" and ddf and ddf > 0 else crit
        half = pcrit * np.sqrt(vb[0, 0] + t2)
        pi_lb, pi_ub = float(beta[0] - half), float(beta[0] + half)

    return RMAResult(
        k=k, p=p, method=method, test=test, level=float(level), yi=y, vi=v, X=X, coef_names=names,
        beta=_coefs(beta), se=_coefs(se), zval=_coefs(zval), pval=_coefs(pval),
        ci_lb=_coefs(ci_lb), ci_ub=_coefs(ci_ub), vb=vb, ddf=ddf,
        tau2=float(t2), se_tau2=float(se_t2), tau2_fixed=tau2_fixed, I2=float(I2), H2=float(H2), vt=float(vt),
        QE=float(QE), QEp=float(QEp), QM=float(QM), QMp=float(QMp), QM_df=QM_df, R2=R2,
        pi_lb=pi_lb, pi_ub=pi_ub, ll=ll, deviance=dev, AIC=AIC, BIC=BIC,
        AICc=AICc, converged=converged, iterations=iterations, control=control,
        checksum=_checksum(y, v, X, weights), notes=tuple(notes), dropped=dropped,
        int_incl=int_incl, btt=tuple(int(b) for b in btt), allvipos=allvipos, user_weights=weights,
        fit_stats=fit_stats, k_all=k if k_all is None else int(k_all), subset=subset, not_na=not_na,
        positions=positions, formula=formula,
    )


def _logdet(A: np.ndarray) -> float:
    """log|A| of a positive definite matrix (directly for 1 × 1, the intercept-only model)."""
    if A.shape == (1, 1):
        return float(np.log(A[0, 0]))
    return float(np.linalg.slogdet(A)[1])


def _fit_stats(ll: float, dev: float, parms: int, n: int) -> tuple[float, float, float, float, float]:
    """(logLik, deviance, AIC, BIC, AICc) as metafor's fit.stats: n = k for ML, k − p for REML; BIC uses
    log(n) (log(0) = −Inf for a saturated REML fit, as R), AICc max(n, parms + 2)."""
    AIC = -2 * ll + 2 * parms
    BIC = -2 * ll + parms * np.log(n) if n > 0 else -np.inf
    nn = max(n, parms + 2)
    AICc = -2 * ll + 2 * parms * nn / (nn - parms - 1)
    return float(ll), float(dev), float(AIC), float(BIC), float(AICc)


def _adj_r2_weighted(y: np.ndarray, X: np.ndarray, w: np.ndarray) -> float:
    """Adjusted R² of a weighted linear regression (R's `summary(lm(y ~ X, weights = w))$adj.r.squared`);
    NaN for a saturated fit (k = p: no residual degrees of freedom, R's 0·Inf)."""
    k, p = X.shape
    if k <= p:
        return np.nan
    f = wls(X, y, w)
    ybar = np.average(y, weights=w)
    fitted = X @ f.beta
    mss = float(np.dot(w, (fitted - ybar) ** 2))
    r2 = mss / (mss + f.rss)
    return 1 - (1 - r2) * (k - 1) / (k - p)


def refit(fit: RMAResult, keep: np.ndarray, *, method: str | None = None) -> RMAResult:
    """Refit the same model (design, user weights, test, level, control; the method unless given) on a subset of
    its studies (boolean mask or indices)."""
    keep = np.asarray(keep)
    w = None if fit.user_weights is None else fit.user_weights[keep]
    positions = (np.arange(fit.k) if fit.positions is None else fit.positions)[keep]
    return _fit(fit.yi[keep], fit.vi[keep], fit.X[keep], fit.coef_names, weights=w,
                method=fit.method if method is None else method, test=fit.test, level=fit.level,
                tau2=fit.tau2 if fit.tau2_fixed else None, control=fit.control, positions=positions)


__all__ = ["rma", "refit", "RMAResult", "Prediction", "HeterogeneityCI", "Control", "Coef", "coef_vector",
           "RedundantPredictorsWarning", "NAOmittedWarning", "NonPositiveVariancesWarning"]
