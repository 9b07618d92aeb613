"""Case diagnostics: `influence`, `leave1out`, `cumul`, as metafor 3.8 (`R/influence.rma.uni.r`,
`R/leave1out.rma.uni.r`, `R/cumul.rma.uni.r`).

Deleted-case quantities come from refitting the model without each study in turn (same method, test,
level, control and fixed τ², as metafor); the diagnostics follow Viechtbauer & Cheung (2010, Res Synth
Methods 1:112, doi:10.1002/jrsm.11). The flags ``outlier`` and ``influential`` use the rules of metafor's
`reporter.rma.uni`, which the review's wording follows.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from metaexercise.engine.model import RedundantPredictorsWarning, RMAResult, coef_vector, refit
from metaexercise.engine.wls import gram
from metaexercise.errors import MetaexerciseError

if TYPE_CHECKING:  # pandas is imported when a table is built, not when the engine loads
    import pandas as pd

_EPS = np.finfo(float).eps

#: Columns of `leave1out` and `cumul`, in metafor's order.
ROW_COLUMNS = ("estimate", "se", "zval", "pval", "ci_lb", "ci_ub", "Q", "Qp", "tau2", "I2", "H2")


def _require_fit(func: str, fit) -> None:
    if not isinstance(fit, RMAResult):
        raise TypeError(f"{func}: needs a fitted model from rma(), got {type(fit).__name__}")
    if fit.k == 1:
        raise ValueError(f"{func}: stopped because k = 1")


def _s2w(fit: RMAResult) -> float:
    """Knapp–Hartung scale s² = Σ wᵢ(yᵢ − xᵢ'β̂)²/(k − p) of a fit (1 under the z-test; 0 when the weighted
    residual sum of squares vanishes, as metafor's `rma.uni`)."""
    if fit.test != "knha":
        return 1.0
    w = 1 / (fit.vi + fit.tau2)
    rss = float(np.dot(w, (fit.yi - fit.fitted) ** 2))
    return 0.0 if rss <= _EPS else rss / (fit.k - fit.p)


def hatvalues(fit: RMAResult) -> np.ndarray:
    """Diagonal of the hat matrix H = X(X'WX)⁻¹X'W, W = diag(1/(vᵢ + τ̂²)) (metafor `hatvalues.rma.uni`)."""
    w = 1 / (fit.vi + fit.tau2)
    A = np.linalg.inv(gram(fit.X, w))
    h = w * np.einsum("ij,jk,ik->i", fit.X, A, fit.X)
    return np.where(h > 1 - 10 * _EPS, 1.0, h)


def _without(fit: RMAResult, i: int) -> RMAResult | None:
    keep = np.ones(fit.k, dtype=bool)
    keep[i] = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RedundantPredictorsWarning)  # metafor: suppressWarnings(...)
            res = refit(fit, keep)
    except (ValueError, np.linalg.LinAlgError, MetaexerciseError):
        # metafor skips a deletion whose refit fails (Fisher scoring does not converge, ...):
        # `try(rma.uni(...))`, and its row stays NA.
        return None
    # ... and one whose refit had to drop a moderator that became constant or collinear (`any(res$coef.na)`)
    return None if res.dropped else res


def influence(fit: RMAResult) -> pd.DataFrame:
    """Influence diagnostics per study (metafor `influence.rma.uni`), one row per study (index: 1-based study
    number, metafor's default labels).

    Columns: ``rstudent`` (externally studentized residual), ``dffits``, ``cooks_d``, ``cov_r`` (covariance
    ratio), ``tau2_del``, ``QE_del``, ``hat``, ``weight`` (percent), ``dfbs_<coef>`` (DFBETAS per coefficient,
    e.g. ``dfbs_intrcpt``), ``inf`` (metafor's "*" rule: ``|DFFITS|`` > 3√(p/(k−p)), P(χ²_p ≤ D) > 0.5,
    hat > 3p/k or any ``|DFBETAS|`` > 1), ``outlier`` (``|rstudent|`` ≥ z_{1−α/(2k)}, a Bonferroni rule) and
    ``influential`` (Cook's distance > median + 6·IQR); the last two as `reporter.rma.uni` states them.
    """
    if getattr(fit, "user_weights", None) is not None:
        raise ValueError("influence: fits with user weights (rma(..., weights=)) are not supported; metafor's "
                         "influence() for them is not ported yet")
    import pandas as pd

    _require_fit("influence", fit)
    k, p = fit.k, fit.p
    X, yi, vi = fit.X, fit.yi, fit.vi
    beta = coef_vector(fit.beta)
    hat = hatvalues(fit)
    pred_full = X @ beta
    svb = np.linalg.inv(fit.vb)
    det_vb = np.linalg.det(fit.vb)
    cols = {c: np.full(k, np.nan) for c in ("tau2_del", "QE_del", "delpred", "vdelpred", "s2w_del", "dffits",
                                            "cooks_d", "cov_r")}
    dfbs = np.full((k, p), np.nan)
    for i in range(k):
        res = _without(fit, i)
        if res is None:
            continue
        s2w = _s2w(res)
        t2 = res.tau2
        xi = X[i]
        cols["tau2_del"][i] = t2
        cols["QE_del"][i] = res.QE
        beta_del = coef_vector(res.beta)
        cols["delpred"][i] = xi @ beta_del
        cols["vdelpred"][i] = xi @ res.vb @ xi
        cols["s2w_del"][i] = s2w
        cols["dffits"][i] = (pred_full[i] - cols["delpred"][i]) / np.sqrt(s2w * hat[i] * (t2 + vi[i]))
        vb_del = np.linalg.inv(gram(X, 1 / (vi + t2)))
        dfb = beta - beta_del
        dfbs[i] = dfb / np.sqrt(s2w * np.diag(vb_del))
        cols["cooks_d"][i] = dfb @ svb @ dfb
        cols["cov_r"][i] = np.linalg.det(res.vb) / det_vb
    resid = yi - cols["delpred"]
    resid[np.abs(resid) < 100 * _EPS] = 0.0
    s2w_del, t2_del = cols["s2w_del"], cols["tau2_del"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rstudent = resid / np.sqrt(vi * s2w_del + cols["vdelpred"] + t2_del * s2w_del)
    cooks = cols["cooks_d"]
    with np.errstate(invalid="ignore"):
        inf = (
            (np.abs(cols["dffits"]) > 3 * np.sqrt(p / (k - p)) if k > p else np.zeros(k, dtype=bool))
            | (special.chdtr(p, cooks) > 0.5)
            | (hat > 3 * p / k)
            | np.any(np.abs(dfbs) > 1, axis=1)
        )
        crit = -special.ndtri((1 - fit.level / 100) / (2 * k))
        outlier = np.abs(rstudent) >= crit
        if np.all(np.isnan(cooks)):
            influential = np.zeros(k, dtype=bool)
        else:
            q1, med, q3 = np.nanpercentile(cooks, [25, 50, 75])  # linear interpolation = R's quantile type 7
            influential = cooks > med + 6 * (q3 - q1)
    frame = {"rstudent": rstudent, "dffits": cols["dffits"], "cooks_d": cooks, "cov_r": cols["cov_r"],
             "tau2_del": t2_del, "QE_del": cols["QE_del"], "hat": hat, "weight": fit.weights}
    for j, name in enumerate(fit.coef_names):
        frame[f"dfbs_{name}"] = dfbs[:, j]
    frame.update(inf=inf, outlier=outlier, influential=influential)
    return pd.DataFrame(frame, index=pd.RangeIndex(1, k + 1, name="study"))


def _row(res: RMAResult | None) -> list[float]:
    if res is None:
        return [np.nan] * len(ROW_COLUMNS)
    return [res.estimate, float(res.se[0]), float(res.zval[0]), float(res.pval[0]), float(res.ci_lb[0]),
            float(res.ci_ub[0]), res.QE, res.QEp, res.tau2, res.I2, res.H2]


def leave1out(fit: RMAResult) -> pd.DataFrame:
    """Leave-one-out analysis (metafor `leave1out.rma.uni`): the model refitted without each study in turn.

    One row per omitted study (index: its 1-based number); columns ``estimate, se, zval, pval, ci_lb, ci_ub,
    Q, Qp, tau2, I2, H2`` (``zval`` holds the t value under Knapp–Hartung).
    """
    import pandas as pd

    _require_fit("leave1out", fit)
    if fit.p != 1:
        raise ValueError("leave1out: only applicable to models without moderators")
    rows = [_row(_without(fit, i)) for i in range(fit.k)]
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS), index=pd.RangeIndex(1, fit.k + 1, name="study"))


def cumul(fit: RMAResult, order=None) -> pd.DataFrame:
    """Cumulative meta-analysis (metafor `cumul.rma.uni`): studies added one at a time, in data order or
    sorted (stably, ascending) by ``order`` — e.g. publication year — as metafor's ``order`` argument.

    Row j is the model fitted to the first j studies in that order; the index gives the number (1-based,
    in the original data) of the study added at that step. Columns as `leave1out`.
    """
    import pandas as pd

    _require_fit("cumul", fit)
    if fit.p != 1:
        raise ValueError("cumul: only applicable to models without moderators")
    if order is None:
        idx = np.arange(fit.k)
    else:
        key = np.asarray(order)
        if key.shape != (fit.k,):
            raise ValueError(f"cumul: 'order' must have one value per study ({fit.k}), got shape {key.shape}")
        idx = np.argsort(key, kind="stable")
    rows = []
    for j in range(1, fit.k + 1):
        keep = idx[:j]
        try:
            rows.append(_row(refit(fit, keep)))
        except (ValueError, np.linalg.LinAlgError, MetaexerciseError):
            rows.append(_row(None))  # as metafor's `try(...)`: the step's row stays NA
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS), index=pd.Index(idx + 1, name="study"))


__all__ = ["influence", "leave1out", "cumul", "hatvalues"]
