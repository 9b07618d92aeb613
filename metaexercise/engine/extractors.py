"""metafor's extractor functions for a fitted `rma` model: `blup`, `ranef`, `rstandard`, `residuals`, `vcov`,
`hatvalues`, `fitstats` (metafor 3.8's `blup.rma.uni`, `ranef.rma.uni`, `rstandard.rma.uni`, `residuals.rma`,
`vcov.rma`, `hatvalues.rma.uni`, `fitstats.rma`).

Everything is per fitted study (metafor's default ``na.action = "na.omit"``: studies omitted for missing values
have no row). With ``M = diag(vᵢ + τ̂²)``, weights ``W = M⁻¹`` (or the user weights ``A``) and the hat matrix
``H = X(X'WX)⁻¹X'W``:

- `blup`: ``λᵢ yᵢ + (1 − λᵢ) xᵢ'β̂``, λᵢ = τ̂²/(τ̂² + vᵢ), variance ``λᵢ vᵢ + (1 − λᵢ)² xᵢ'Var(β̂)xᵢ``
  (Raudenbush & Bryk 1985, J Educ Stat 10:75; Robinson 1991, Stat Sci 6:15); `ranef`: ``λᵢ (yᵢ − xᵢ'β̂)``,
  variance ``λᵢ vᵢ + λᵢ² xᵢ'Var(β̂)xᵢ``; intervals ``± z`` (t(k − p) under Knapp–Hartung).
- `rstandard`, marginal: ``eᵢ = yᵢ − xᵢ'β̂`` over the square root of the diagonal of ``(I − H) M (I − H)'``;
  conditional: ``yᵢ`` minus the BLUP over ``√(vᵢ²/(vᵢ + τ̂²) (1 − hᵢᵢ))`` (Viechtbauer & Cheung 2010, Res Synth
  Methods 1:112).

The k × k matrices are never formed for the diagonals: ``diag((I − H)M(I − H)')ᵢ = Mᵢ(1 − 2hᵢᵢ) +
xᵢ'B G B'xᵢ`` with ``B = (X'WX)⁻¹`` and ``G = X' diag(wⱼ² Mⱼ) X`` (O(k·p²)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from metaexercise.engine.model import RMAResult, _t_isf, _z_isf, coef_vector
from metaexercise.engine.newmods import apply_transf, sorted_bounds
from metaexercise.engine.wls import gram

if TYPE_CHECKING:
    import pandas as pd

#: metafor's message for BLUPs, random effects and conditional residuals of a model with user weights.
NON_STANDARD_WEIGHTS = "not available for models with non-standard weights (metafor refuses it too)"


@dataclass(frozen=True, slots=True)
class StudyPredictions:
    """Per-study predictions with prediction intervals (metafor's `blup` and `ranef`: pred, se, pi.lb, pi.ub);
    ``se`` is NaN after a ``transf``."""

    pred: np.ndarray
    se: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    transf: bool = False

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = {"pred": self.pred, "se": self.se, "pi_lb": self.pi_lb, "pi_ub": self.pi_ub}
        if self.transf:
            del cols["se"]
        return pd.DataFrame(cols)


@dataclass(frozen=True, slots=True)
class StandardizedResiduals:
    """Residuals, their standard errors and the standardized residuals (metafor's `rstandard`: resid, se, z)."""

    resid: np.ndarray
    se: np.ndarray
    z: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"resid": self.resid, "se": self.se, "z": self.z})


def _check(fit, func: str) -> RMAResult:
    if not isinstance(fit, RMAResult):
        raise TypeError(f"{func}: needs a fitted model from rma(), got {type(fit).__name__}")
    return fit


def _crit(fit: RMAResult, level: float | None) -> float:
    alpha = 1 - (fit.level if level is None else level) / 100
    if fit.test == "knha":
        return _t_isf(alpha / 2, fit.ddf) if fit.ddf and fit.ddf > 0 else np.nan
    return _z_isf(alpha / 2)


def _xvx(fit: RMAResult) -> np.ndarray:
    """xᵢ' Var(β̂) xᵢ for every study."""
    return np.einsum("ij,jk,ik->i", fit.X, fit.vb, fit.X)


def _intervals(pred, vpred, crit, transf) -> StudyPredictions:
    se = np.sqrt(vpred)
    lb, ub = pred - crit * se, pred + crit * se
    if transf is None:
        return StudyPredictions(pred, se, lb, ub)
    pred, lb, ub = (apply_transf(transf, a) for a in (pred, lb, ub))
    lb, ub = sorted_bounds(lb, ub)
    return StudyPredictions(pred, np.full(pred.shape, np.nan), lb, ub, transf=True)


def blup(fit: RMAResult, *, level: float | None = None, transf=None) -> StudyPredictions:
    """Best linear unbiased predictions of the studies' true effects (metafor `blup.rma.uni`; see the module
    docstring). ``transf`` transforms pred and the bounds (se becomes NaN)."""
    _check(fit, "blup")
    if fit.user_weights is not None:
        raise ValueError(f"blup: extraction of random effects {NON_STANDARD_WEIGHTS}")
    lam = fit.tau2 / (fit.tau2 + fit.vi)
    pred = lam * fit.yi + (1 - lam) * fit.fitted
    vpred = lam * fit.vi + (1 - lam) ** 2 * _xvx(fit)
    return _intervals(pred, vpred, _crit(fit, level), transf)


def ranef(fit: RMAResult, *, level: float | None = None, transf=None) -> StudyPredictions:
    """Predicted random effects uᵢ of the studies (metafor `ranef.rma.uni`; 0 for an equal-effects model)."""
    _check(fit, "ranef")
    if fit.user_weights is not None:
        raise ValueError(f"ranef: extraction of random effects {NON_STANDARD_WEIGHTS}")
    if fit.method == "EE":
        pred = vpred = np.zeros(fit.k)
    else:
        lam = fit.tau2 / (fit.tau2 + fit.vi)
        pred = lam * (fit.yi - fit.fitted)
        vpred = lam * fit.vi + lam**2 * _xvx(fit)
    return _intervals(pred, vpred, _crit(fit, level), transf)


def _weights(fit: RMAResult) -> np.ndarray:
    return 1 / (fit.vi + fit.tau2) if fit.user_weights is None else fit.user_weights


def _bread(fit: RMAResult, w: np.ndarray) -> np.ndarray:
    """(X'WX)⁻¹ for the weights of the fit (metafor's `.invcalc`)."""
    return np.linalg.inv(gram(fit.X, w))


def hatvalues(fit: RMAResult, type: str = "diagonal") -> np.ndarray:
    """Hat values hᵢᵢ of H = X(X'WX)⁻¹X'W, W the weights of the fit (metafor `hatvalues.rma.uni`: values above
    1 − 10·eps are set to 1), or the k × k matrix H (``type="matrix"``)."""
    _check(fit, "hatvalues")
    if type not in ("diagonal", "matrix"):
        raise ValueError(f"hatvalues: type must be 'diagonal' or 'matrix', got {type!r}")
    w = _weights(fit)
    B = _bread(fit, w)
    if type == "matrix":
        return (fit.X @ B @ fit.X.T) * w[None, :]
    h = np.einsum("ij,jk,ik->i", fit.X, B, fit.X) * w
    return np.where(h > 1 - 10 * np.finfo(float).eps, 1.0, h)


#: a hat value this close to 1 means the study is fitted exactly (e.g. the only study at a factor level): its
#: residual and the residual's variance are 0, which rounding would turn into noise of either sign.
EXACT_FIT = 1e-8


def rstandard(fit: RMAResult, type: str = "marginal") -> StandardizedResiduals:
    """Standardized residuals (metafor `rstandard.rma.uni`), ``type="marginal"`` (default) or
    ``"conditional"``; see the module docstring. Residuals below 100·eps in size are set to 0, as metafor; a
    study the model fits exactly (hat value 1, `EXACT_FIT`) has residual, SE and z of 0 (metafor: rounding noise
    around 0)."""
    _check(fit, "rstandard")
    if type not in ("marginal", "conditional"):
        raise ValueError(f"rstandard: type must be 'marginal' or 'conditional', got {type!r}")
    if type == "conditional" and fit.user_weights is not None:
        raise ValueError(f"rstandard: conditional residuals {NON_STANDARD_WEIGHTS}")
    w = _weights(fit)
    B = _bread(fit, w)
    h = np.einsum("ij,jk,ik->i", fit.X, B, fit.X) * w
    exact = h > 1 - EXACT_FIT
    M = fit.vi + fit.tau2
    if type == "marginal":
        e = fit.yi - fit.fitted
        e = np.where(np.abs(e) < 100 * np.finfo(float).eps, 0.0, e)
        G = gram(fit.X, w * w * M)
        ve = M * (1 - 2 * h) + np.einsum("ij,jk,ik->i", fit.X, B @ G @ B, fit.X)
    else:
        lam = fit.tau2 / (fit.tau2 + fit.vi)
        e = fit.yi - (lam * fit.yi + (1 - lam) * fit.fitted)
        ve = fit.vi**2 / (fit.vi + fit.tau2) * (1 - h)
    e = np.where(exact, 0.0, e)
    se = np.sqrt(np.where(exact, 0.0, np.where(ve < 0, np.nan, ve)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(exact, 0.0, e / se)
    return StandardizedResiduals(e, se, z)


RESIDUAL_TYPES = ("response", "rstandard", "pearson")


def residuals(fit: RMAResult, type: str = "response") -> np.ndarray:
    """Residuals of the fitted studies (metafor `residuals.rma`): ``"response"`` yᵢ − xᵢ'β̂ (below 100·eps set
    to 0), ``"rstandard"`` the marginal standardized residuals of `rstandard`, ``"pearson"`` the response
    residuals over √(vᵢ + τ̂²)."""
    _check(fit, "residuals")
    if type not in RESIDUAL_TYPES:
        raise ValueError(f"residuals: type must be one of {RESIDUAL_TYPES}, got {type!r} (rstudent: see "
                         "engine.diagnostics.influence)")
    if type == "rstandard":
        return rstandard(fit).z
    e = fit.yi - fit.X @ coef_vector(fit.beta)
    e = np.where(np.abs(e) < 100 * np.finfo(float).eps, 0.0, e)
    if type == "pearson":
        return e / np.sqrt(fit.vi + fit.tau2)
    return e


VCOV_TYPES = ("fixed", "obs", "fitted", "resid")


def vcov(fit: RMAResult, type: str = "fixed") -> np.ndarray:
    """Variance-covariance matrices (metafor `vcov.rma`): ``"fixed"`` Var(β̂) (p × p), ``"obs"`` the marginal
    M = diag(vᵢ + τ̂²), ``"fitted"`` X Var(β̂) X', ``"resid"`` (I − H) M (I − H)' (each k × k)."""
    _check(fit, "vcov")
    if type not in VCOV_TYPES:
        raise ValueError(f"vcov: type must be one of {VCOV_TYPES}, got {type!r}")
    if type == "fixed":
        return fit.vb.copy()
    if type == "obs":
        return np.diag(fit.vi + fit.tau2)
    if type == "fitted":
        return fit.X @ fit.vb @ fit.X.T
    ImH = np.eye(fit.k) - hatvalues(fit, "matrix")
    return (ImH * (fit.vi + fit.tau2)) @ ImH.T


FIT_STATS = ("logLik", "deviance", "AIC", "BIC", "AICc")


def fitstats(fit: RMAResult, REML: bool | None = None) -> dict[str, float]:
    """Log-likelihood, deviance, AIC, BIC and AICc (metafor `fitstats.rma`): the REML ones for a REML fit,
    else the ML ones, unless ``REML`` says which. ML: the deviance is −2 times the log-likelihood minus that
    of the saturated model, BIC uses log(k); REML: the deviance is −2·logLik, BIC uses log(k − p); AICc
    2·parms·n/(n − parms − 1) with n = max(k or k − p, parms + 2) (metafor's fit.stats)."""
    _check(fit, "fitstats")
    which = ("REML" if fit.method == "REML" else "ML") if REML is None else ("REML" if REML else "ML")
    return dict(zip(FIT_STATS, fit.fit_stats[which], strict=True))


def logLik(fit: RMAResult, REML: bool | None = None) -> float:
    """The log-likelihood (metafor `logLik.rma`), restricted for a REML fit unless ``REML`` says otherwise."""
    return fitstats(fit, REML)["logLik"]


__all__ = ["blup", "ranef", "rstandard", "residuals", "vcov", "hatvalues", "fitstats", "logLik",
           "StudyPredictions", "StandardizedResiduals"]
