"""Meta-regression as the review ran it: Wilson's SPSS macro semantics on top of `rma(mods=...)`.

The review (Fleckenstein et al. 2022, Methods "Statistics: Meta-analysis and -regression") used D. B.
Wilson's "Meta-Analysis Modified Weighted Multiple Regression" SPSS macro (MetaReg.sps, version
2005.05.23): inverse-variance weights, a random intercept and fixed slopes, that is the mixed-effects
meta-regression y_i = x_i'β + u_i + e_i, u_i ~ N(0, τ²), e_i ~ N(0, v_i), with weights 1/(v_i + τ̂²)
(Raudenbush 2009, in Cooper, Hedges & Valentine, Handbook of Research Synthesis, 2nd ed., ch. 16).
The macro offers method of moments, ML and REML for τ²; its method of moments is metafor's
``method="DL"`` (the generalised DerSimonian–Laird estimator; DESIGN.md). This module is a thin wrapper:
the fit is `metaexercise.rma` with ``mods`` (metafor 3.8 ``rma(yi, vi, mods = X, method = ...)``), and
the result is laid out as the macro and the review report it: coefficients with SE, z, p and CI; the
model Q (QM, df = p − 1) and residual Q (QE, df = k − p) with p-values; τ²; R² (metafor's proportional
reduction in τ², in percent).

Moderators that are constant or collinear with earlier ones are dropped before fitting and listed in
``dropped``, as metafor drops "redundant predictors".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from metaexercise.engine.model import Control, rma

if TYPE_CHECKING:  # pandas is imported when metareg runs, not when the engine loads
    import pandas as pd

MetaRegMethod = Literal["DL", "ML", "REML"]
#: Wilson's macro's three estimators and their metafor names.
METHODS: dict[str, str] = {"DL": "method of moments", "ML": "maximum likelihood", "REML": "restricted ML"}


@dataclass(frozen=True, slots=True)
class MetaRegression:
    """A fitted meta-regression: one row per coefficient (intercept first) plus the model summaries."""

    method: str
    level: float
    k: int
    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    QM: float
    QM_df: int
    QMp: float
    QE: float
    QE_df: int
    QEp: float
    tau2: float
    I2: float
    R2: float | None
    dropped: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The coefficient table: term, estimate, se, zval, pval, ci_lb, ci_ub."""
        import pandas as pd

        return pd.DataFrame({
            "term": list(self.coef_names), "estimate": self.beta, "se": self.se, "zval": self.zval,
            "pval": self.pval, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub,
        })

    def summary(self) -> str:
        lines = [
            f"Mixed-effects meta-regression (k = {self.k}; tau^2 estimator: {self.method}, "
            f"{METHODS[self.method]}); Wilson's macro: random intercept, fixed slopes",
            f"tau^2 = {self.tau2:.4f}; I^2 = {self.I2:.2f}%"
            + ("" if self.R2 is None else f"; R^2 = {self.R2:.2f}%"),
            f"Q-model    QM(df = {self.QM_df}) = {self.QM:.4f}, p = {self.QMp:.4g}",
            f"Q-residual QE(df = {self.QE_df}) = {self.QE:.4f}, p = {self.QEp:.4g}",
            "",
            self.to_frame().to_string(index=False, float_format=lambda x: f"{x:.4f}"),
        ]
        if self.dropped:
            lines.append(f"dropped (constant or collinear): {', '.join(self.dropped)}")
        return "\n".join(lines)

    __str__ = summary


def _full_rank_columns(M: np.ndarray, names: list[str]) -> tuple[list[int], list[str]]:
    """Keep moderators in order while each adds rank to [intercept, kept...]; the rest are dropped."""
    keep: list[int] = []
    dropped: list[str] = []
    basis = np.ones((M.shape[0], 1))
    for j, name in enumerate(names):
        trial = np.column_stack([basis, M[:, j]])
        if np.linalg.matrix_rank(trial) > basis.shape[1]:
            keep.append(j)
            basis = trial
        else:
            dropped.append(name)
    return keep, dropped


def metareg(
    yi,
    vi,
    moderators: pd.DataFrame | Mapping[str, object],
    *,
    method: MetaRegMethod = "REML",
    level: float = 95,
    control: Control | None = None,
) -> MetaRegression:
    """Fit a mixed-effects meta-regression of `yi` (variances `vi`) on named `moderators` with z tests.

    Equals metafor 3.8 ``rma(yi, vi, mods = as.matrix(moderators), method = method)``; `control` is passed
    to `rma` (iteration settings; see `metaexercise.engine.model.Control`).
    """
    import pandas as pd

    if method not in METHODS:
        raise ValueError(f"metareg: method {method!r} is not one of Wilson's macro's: {', '.join(METHODS)} "
                         "(DL = method of moments)")
    mods = pd.DataFrame(moderators)
    if mods.shape[1] == 0:
        raise ValueError("metareg: give at least one moderator")
    names = [str(c) for c in mods.columns]
    M = mods.to_numpy(dtype=float)
    if not np.isfinite(M).all():
        bad = [n for n, ok in zip(names, np.isfinite(M).all(axis=0), strict=True) if not ok]
        raise ValueError(f"metareg: moderator(s) {', '.join(bad)} have missing values; drop those rows first")
    keep, dropped = _full_rank_columns(M, names)
    if not keep:
        raise ValueError(f"metareg: every moderator is constant ({', '.join(dropped)}); nothing to regress on")
    kept = pd.DataFrame(M[:, keep], columns=[names[j] for j in keep])
    fit = rma(yi, vi, mods=kept, method=method, test="z", level=level, control=control)
    return MetaRegression(
        method=method,
        level=float(level),
        k=fit.k,
        coef_names=tuple(fit.coef_names),
        beta=fit.beta,
        se=fit.se,
        zval=fit.zval,
        pval=fit.pval,
        ci_lb=fit.ci_lb,
        ci_ub=fit.ci_ub,
        QM=float(fit.QM),
        QM_df=fit.p - 1,
        QMp=float(fit.QMp),
        QE=float(fit.QE),
        QE_df=fit.k - fit.p,
        QEp=float(fit.QEp),
        tau2=float(fit.tau2),
        I2=float(fit.I2),
        R2=None if fit.R2 is None else float(fit.R2),
        dropped=tuple(dropped) + tuple(fit.dropped),  # rma drops nearly collinear ones too (R's lm tolerance)
    )
