"""`anova`: Wald tests of coefficients and linear combinations, and likelihood-ratio tests of nested models, as
metafor 3.8's `anova.rma`.

- ``anova(fit, btt=...)``: the Wald test QM = β̂_b' Var(β̂_b)⁻¹ β̂_b of the coefficients b (QM ~ χ²(m); under
  Knapp–Hartung F = QM/m ~ F(m, k − p)). Default b: every coefficient but the intercept (the test `rma` reports).
- ``anova(fit, X=...)``: the linear combinations Xβ̂ (one row per combination), each with its SE, z (or t) and
  p-value, and the joint Wald test of Xβ = 0 when X has full row rank (Hedges & Olkin 1985, ch. 8;
  metafor's `anova(x, X=)`); ``rhs`` tests Xβ = rhs (or β_b = rhs) instead.
- ``anova(full, reduced)``: the likelihood-ratio test LRT = deviance(reduced) − deviance(full) ~ χ²(parms_f −
  parms_r), with the fit statistics of both and the proportional reduction in τ² (pseudo-R²); ``test="Wald"``
  instead tests the coefficients of the full model that the reduced one lacks.

**btt, the coefficients to test** (metafor's ``btt``; metafor counts from 1, Python from 0):

- an int or a sequence of ints: 0-based positions (metafor's ``btt=2:3`` is ``btt=[1, 2]``);
- a string: a regular expression matched against the coefficient names, as metafor's ``grep(btt, names)``:
  every coefficient whose name contains a match is tested jointly, so ``btt="alloc"`` tests
  ``factor(alloc)random`` and ``factor(alloc)systematic`` together (``fixed=True``: the string literally);
- a list of strings or of position sequences: one test per element (metafor's ``btt=list(...)``, and its
  character vector of length > 1), returned as a list.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from metaexercise.engine.model import RMAResult, _pval_t, _pval_z, coef_vector, refit


class LRTWarning(UserWarning):
    """metafor's warnings on a likelihood-ratio test that may not mean what it says (REML fits with different
    fixed effects; models not fitted by ML or REML)."""


@dataclass(frozen=True, slots=True)
class WaldTest:
    """A Wald test of coefficients (``btt``, metafor's type "Wald.btt") or of linear combinations (``X``,
    "Wald.Xb"). ``QM_df`` is (m, None) for a χ² test, (m, df2) for an F test (Knapp–Hartung). For linear
    combinations ``Xb``, ``se``, ``zval``, ``pval`` and ``ddf`` hold one value per row of ``X`` and ``hyp``
    the hypotheses as metafor writes them; QM is NaN when ``X`` has not full row rank."""

    QM: float
    QM_df: tuple[float, float | None]
    QMp: float
    btt: tuple[int, ...] | None
    test: str
    k: int
    p: int
    m: int
    coef_names: tuple[str, ...]
    Xb: np.ndarray | None = None
    se: np.ndarray | None = None
    zval: np.ndarray | None = None
    pval: np.ndarray | None = None
    ddf: np.ndarray | None = None
    hyp: tuple[str, ...] | None = None

    @property
    def type(self) -> str:
        return "Wald.btt" if self.Xb is None else "Wald.Xb"

    def summary(self) -> str:
        from metaexercise.engine.printing import format_anova_wald

        return format_anova_wald(self)

    __str__ = summary


@dataclass(frozen=True, slots=True)
class LikelihoodRatioTest:
    """A likelihood-ratio test of a full against a reduced model (metafor's type "LRT"). ``fit_stats_f`` and
    ``fit_stats_r``: (logLik, deviance, AIC, BIC, AICc) of each (REML ones when both are REML fits, else ML)."""

    LRT: float
    pval: float
    parms_f: int
    parms_r: int
    fit_stats_f: tuple[float, ...]
    fit_stats_r: tuple[float, ...]
    QE_f: float
    QE_r: float
    tau2_f: float
    tau2_r: float
    R2: float
    method: str

    @property
    def df(self) -> int:
        return self.parms_f - self.parms_r

    def to_frame(self):
        import pandas as pd

        rows = {}
        for label, parms, fs, qe, t2 in (("Full", self.parms_f, self.fit_stats_f, self.QE_f, self.tau2_f),
                                         ("Reduced", self.parms_r, self.fit_stats_r, self.QE_r, self.tau2_r)):
            rows[label] = {"df": parms, "AIC": fs[2], "BIC": fs[3], "AICc": fs[4], "logLik": fs[0],
                           "LRT": self.LRT if label == "Reduced" else np.nan,
                           "pval": self.pval if label == "Reduced" else np.nan, "QE": qe, "tau2": t2}
        return pd.DataFrame(rows).T

    def summary(self) -> str:
        from metaexercise.engine.printing import format_anova_lrt

        return format_anova_lrt(self)

    __str__ = summary


def select_btt(fit: RMAResult, btt, fixed: bool = False) -> tuple[int, ...]:
    """The 0-based coefficients a `btt` selects (see the module docstring); None gives the default test."""
    names = fit.coef_names
    if btt is None:
        return tuple(fit.btt) if fit.btt else tuple(range(1, fit.p) if fit.p > 1 and fit.int_incl else range(fit.p))
    if isinstance(btt, str):
        if fixed:
            sel = [j for j, n in enumerate(names) if btt in n]
        else:
            try:
                rx = re.compile(btt)
            except re.error as exc:
                raise ValueError(f"anova: btt={btt!r} is not a valid regular expression ({exc}); use fixed=True "
                                 "to match it literally") from None
            sel = [j for j, n in enumerate(names) if rx.search(n)]
        if not sel:
            raise ValueError(f"anova: cannot identify coefficient(s) corresponding to btt={btt!r} among "
                             f"{list(names)} (metafor: \"Cannot identify coefficient(s) corresponding to the "
                             "specified 'btt' string.\")")
        return tuple(sel)
    idx = np.atleast_1d(np.asarray(btt))
    if idx.dtype == bool or not (np.issubdtype(idx.dtype, np.integer)
                                 or (np.issubdtype(idx.dtype, np.floating) and np.all(idx == np.round(idx)))):
        raise TypeError(f"anova: btt must be 0-based integer positions or a name pattern, got {btt!r}")
    idx = idx.astype(np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= fit.p:
        raise ValueError(f"anova: btt={idx.tolist()} must be 0-based positions between 0 and p - 1 = {fit.p - 1} "
                         f"(coefficients {list(names)}; metafor's positions are 1-based)")
    return tuple(sorted(set(int(i) for i in idx)))


def _wald(fit: RMAResult, btt, rhs, fixed: bool) -> WaldTest:
    sel = select_btt(fit, btt, fixed)
    m = len(sel)
    b = coef_vector(fit.beta)[list(sel)] - _rhs(rhs, m, "coefficients tested")
    V = fit.vb[np.ix_(sel, sel)]
    QM = _quadratic(b, V)
    QM, QM_df, QMp = _qm_test(fit, QM, m, float(fit.k - fit.p))
    return WaldTest(QM=QM, QM_df=QM_df, QMp=QMp, btt=sel, test=fit.test, k=fit.k, p=fit.p, m=m,
                    coef_names=fit.coef_names)


def _rhs(rhs, m: int, what: str) -> np.ndarray:
    if rhs is None:
        return np.zeros(m)
    r = np.atleast_1d(np.asarray(rhs, dtype=float))
    if r.size == 1:
        return np.full(m, r[0])
    if r.size != m:
        raise ValueError(f"anova: rhs has {r.size} values, but there are {m} {what} (metafor: \"Length of 'rhs' "
                         "does not match ...\")")
    return r


def _quadratic(b: np.ndarray, V: np.ndarray) -> float:
    """b'V⁻¹b through the Cholesky factor (metafor: chol2inv(chol(V))); NaN when V is not positive definite."""
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return np.nan
    z = np.linalg.solve(L, b)
    return float(z @ z)


def _qm_test(fit: RMAResult, QM: float, m: int, df2: float):
    if fit.test == "knha":
        QM = QM / m
        QMp = float(special.fdtrc(m, df2, QM)) if df2 > 0 and np.isfinite(QM) else np.nan
        return QM, (float(m), df2), QMp
    QMp = float(special.chdtrc(m, QM)) if np.isfinite(QM) else np.nan
    return QM, (float(m), None), QMp


def _r_number(x: float) -> str:
    """A number as R's `paste` writes it (15 significant digits, no trailing zeros)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return format(float(x), ".15g")


def _hypotheses(X: np.ndarray, names: tuple[str, ...], rhs: np.ndarray, rhs_given: bool) -> tuple[str, ...]:
    """metafor's hypothesis labels: "c*name + ..." with coefficients rounded to 4 digits, "1*" removed and
    "+ -" written "- "; " = 0" or " = rhs"."""
    out = []
    for row, r in zip(X, rhs, strict=True):
        xr = np.round(row, 4)
        terms = [f"{_r_number(c)}*{n}" for c, n in zip(xr, names, strict=True) if c != 0]
        h = " + ".join(terms).replace("1*", "").replace("+ -", "- ")
        if not rhs_given:
            h += " = 0"
        elif len(set(rhs.tolist())) == 1:
            h += f" = {_r_number(round(float(r), 4))}"
        else:
            h += f" = {float(r):.4f}"
        out.append(h)
    return tuple(out)


def _contrasts(fit: RMAResult, X, rhs) -> WaldTest:
    L = np.asarray(X, dtype=float)
    if L.ndim == 1:
        L = L.reshape(1, -1)
    if L.ndim != 2:
        raise ValueError(f"anova: X must be a vector or a matrix, got shape {L.shape}")
    if fit.int_incl and L.shape[1] == fit.p - 1:
        L = np.column_stack([np.ones(L.shape[0]), L])  # metafor adds the intercept column
    if L.shape[1] != fit.p:
        raise ValueError(f"anova: X has {L.shape[1]} columns, but the model has {fit.p} coefficients "
                         f"{list(fit.coef_names)}")
    m = L.shape[0]
    r = _rhs(rhs, m, "linear combinations")
    Xb = L @ coef_vector(fit.beta) - r
    V = L @ fit.vb @ L.T
    se = np.sqrt(np.diag(V))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = Xb / se
    df2 = float(fit.k - fit.p)
    if fit.test == "knha":
        ddf = np.full(m, df2)
        pval = _pval_t(zval, df2) if df2 > 0 else np.full(m, np.nan)
    else:
        ddf = np.full(m, np.nan)
        pval = _pval_z(zval)
    QM, QM_df, QMp = np.nan, (np.nan, None), np.nan
    if np.linalg.matrix_rank(L) == m:
        QM, QM_df, QMp = _qm_test(fit, _quadratic(Xb, V), m, df2)
    return WaldTest(QM=QM, QM_df=QM_df, QMp=QMp, btt=None, test=fit.test, k=fit.k, p=fit.p, m=m,
                    coef_names=fit.coef_names, Xb=Xb, se=se, zval=np.asarray(zval), pval=np.asarray(pval), ddf=ddf,
                    hyp=_hypotheses(L, fit.coef_names, r, rhs is not None))


def _same_data(a: RMAResult, b: RMAResult) -> bool:
    return a.yi.shape == b.yi.shape and np.array_equal(a.yi, b.yi) and np.array_equal(a.vi, b.vi)


def _lrt(full: RMAResult, reduced: RMAResult, test: str, refit_ml: bool):
    if not isinstance(reduced, RMAResult):
        raise TypeError(f"anova: the second model must be a fitted model from rma(), got {type(reduced).__name__}")
    if full.parms == reduced.parms:
        raise ValueError("anova: the models have the same number of parameters; an LRT is not meaningful "
                         "(metafor stops here too)")
    if full.parms < reduced.parms:
        full, reduced = reduced, full
    if not _same_data(full, reduced):
        raise ValueError("anova: observed outcomes and/or sampling variances are not equal in the full and "
                         "reduced model (metafor stops here too)")
    if test == "Wald" and full.method != reduced.method:
        raise ValueError("anova: the full and reduced model must use the same method for a Wald test")
    if full.method == "EE" and reduced.method != "EE":
        raise ValueError("anova: the full model is an equal-effects model and the reduced one a random/mixed-"
                         "effects model (metafor stops here too)")
    if {full.method, reduced.method} == {"ML", "REML"}:
        raise ValueError(f"anova: mismatch between the use of {full.method} and {reduced.method} estimation in the "
                         "full versus reduced model (metafor stops here too)")
    if test == "Wald":
        extra = [n for n in full.coef_names if n not in reduced.coef_names]
        if not extra:
            raise ValueError("anova: the full and reduced models appear to contain the same moderators")
        if any(n not in full.coef_names for n in reduced.coef_names):
            raise ValueError("anova: there are coefficients in the reduced model that are not in the full model")
        return _wald(full, [full.coef_names.index(n) for n in extra], None, False)
    if full.method not in ("EE", "ML", "REML") or reduced.method not in ("EE", "ML", "REML"):
        warnings.warn("anova: LRTs should be based on ML/REML estimation (as metafor warns)", LRTWarning,
                      stacklevel=3)
    if full.method == "REML" and not (full.X.shape == reduced.X.shape and np.array_equal(full.X, reduced.X)):
        if refit_ml:
            full = refit(full, np.arange(full.k), method="ML")
            reduced = refit(reduced, np.arange(reduced.k), method="ML")
        else:
            warnings.warn("anova: REML comparisons are not meaningful for models with different fixed effects "
                          "(use refit=True to refit both models with ML estimation; as metafor warns)", LRTWarning,
                          stacklevel=3)
    key = "REML" if full.method == "REML" else "ML"
    fs_f, fs_r = full.fit_stats[key], reduced.fit_stats[key]
    LRT = max(0.0, fs_r[1] - fs_f[1])
    df = full.parms - reduced.parms
    pval = float(special.chdtrc(df, LRT))
    if full.method == "EE":
        from metaexercise.engine.wls import wls

        def s2(fit):
            w = 1 / fit.vi if fit.user_weights is None else fit.user_weights
            return wls(fit.X, fit.yi, w).rss / (fit.k - fit.p)  # sigma(lm(yi ~ X, weights))^2
        R2 = 100 * max(0.0, (s2(reduced) - s2(full)) / s2(reduced))
    elif reduced.tau2 == 0:
        R2 = 0.0
    else:
        R2 = 100 * max(0.0, (reduced.tau2 - full.tau2) / reduced.tau2)
    return LikelihoodRatioTest(LRT=float(LRT), pval=pval, parms_f=full.parms, parms_r=reduced.parms,
                               fit_stats_f=tuple(fs_f), fit_stats_r=tuple(fs_r), QE_f=full.QE, QE_r=reduced.QE,
                               tau2_f=full.tau2, tau2_r=reduced.tau2, R2=float(R2), method=full.method)


def anova(fit: RMAResult, fit2: RMAResult | None = None, *, btt=None, X=None, rhs=None, refit: bool = False,
          test: str = "LRT", fixed: bool = False):
    """Wald tests of a model's coefficients, or the likelihood-ratio test of two models (metafor 3.8's
    `anova.rma`; see the module docstring for `btt`).

    - ``anova(fit)``: the test of every coefficient but the intercept (``fit.QM``, ``fit.QMp``);
      ``anova(fit, btt=...)`` of the chosen ones (`WaldTest`); ``rhs``: test β_b = rhs.
    - ``anova(fit, X=...)``: linear combinations, one per row of X (columns: the p coefficients, or p − 1
      without the intercept column, which is then added), each tested, plus their joint Wald test.
    - ``anova(full, reduced)``: `LikelihoodRatioTest`, with metafor's checks: the same yi and vi, different
      numbers of parameters (the models are put in order), not ML against REML, not an equal-effects full
      model against a random-effects reduced one; a warning when REML fits have different fixed effects
      (``refit=True`` refits both with ML, as metafor) or a model is not fitted by ML/REML. ``test="Wald"``
      tests the coefficients the reduced model lacks instead.
    """
    if not isinstance(fit, RMAResult):
        raise TypeError(f"anova: needs a fitted model from rma(), got {type(fit).__name__}")
    if fit2 is not None:
        if test not in ("LRT", "Wald"):
            raise ValueError(f"anova: test must be 'LRT' or 'Wald', got {test!r}")
        if btt is not None or X is not None:
            raise TypeError("anova: btt= and X= test one model; give them without a second model")
        return _lrt(fit, fit2, test, refit)
    if X is not None:
        if btt is not None:
            raise TypeError("anova: give either btt= or X=, not both")
        return _contrasts(fit, X, rhs)
    if isinstance(btt, list | tuple) and btt and all(isinstance(b, str | Sequence | np.ndarray) for b in btt):
        if rhs is not None:
            raise TypeError("anova: rhs cannot be used with a list of btt (metafor: \"Cannot use 'rhs' argument "
                            "when specifying a list for 'btt'.\")")
        return [_wald(fit, b, None, fixed) for b in btt]
    return _wald(fit, btt, rhs, fixed)


__all__ = ["anova", "WaldTest", "LikelihoodRatioTest", "LRTWarning", "select_btt"]
