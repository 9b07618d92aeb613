"""Weighted least squares and the traces of its residual-maker matrix, in O(k·p²) instead of O(k²).

metafor builds the k × k matrix P = W − W X (X'WX)⁻¹ X'W explicitly (`rma.uni`). Every quantity it needs from P
is a trace or a quadratic form, and each reduces to p × p matrices G(a) = X' diag(a) X with A = (X'WX)⁻¹:

    y'Py     = Σ w r²,                     r = y − Xβ̂, β̂ = A X'W y
    y'PPy    = Σ w² r²
    tr(P)    = Σ w − tr(A G(w²))
    tr(PP)   = Σ w² − 2 tr(A G(w³)) + tr((A G(w²))²)
    tr(PV)   = Σ w v − tr(A G(w² v))
    tr(PPV)  = Σ w² v − 2 tr(A G(w³ v)) + tr(A G(w² v) A G(w²))
    tr(PVPV) = Σ (w v)² − 2 tr(A G(w³ v²)) + tr((A G(w² v))²)

(expand P and use the cyclic property of the trace; V = diag(v)). With w ≡ 1 these give the unweighted
P₀ = I − X(X'X)⁻¹X' of the Hedges (HE) estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def gram(X: np.ndarray, a: np.ndarray) -> np.ndarray:
    """G(a) = X' diag(a) X."""
    return (X * a[:, None]).T @ X


@dataclass(frozen=True, slots=True)
class WLSFit:
    """Weighted least-squares fit of y on X with weights w, plus what the P-traces need."""

    X: np.ndarray
    w: np.ndarray
    beta: np.ndarray
    A: np.ndarray  # (X'WX)^-1
    resid: np.ndarray

    @property
    def rss(self) -> float:
        """y'Py = Σ w r²."""
        return float(np.dot(self.w, self.resid**2))

    @property
    def rss_pp(self) -> float:
        """y'PPy = Σ w² r²."""
        wr = self.w * self.resid
        return float(np.dot(wr, wr))

    def tr_P(self) -> float:
        return float(self.w.sum() - np.trace(self.A @ gram(self.X, self.w**2)))

    def tr_PP(self) -> float:
        w = self.w
        AG2 = self.A @ gram(self.X, w**2)
        return float(np.dot(w, w) - 2 * np.trace(self.A @ gram(self.X, w**3)) + np.sum(AG2 * AG2.T))

    def tr_PV(self, v: np.ndarray) -> float:
        w = self.w
        return float(np.dot(w, v) - np.trace(self.A @ gram(self.X, w**2 * v)))

    def tr_PPV(self, v: np.ndarray) -> float:
        w = self.w
        AG2 = self.A @ gram(self.X, w**2)
        AG2v = self.A @ gram(self.X, w**2 * v)
        return float(
            np.dot(w**2, v) - 2 * np.trace(self.A @ gram(self.X, w**3 * v)) + np.sum(AG2v * AG2.T)
        )

    def tr_PVPV(self, v: np.ndarray) -> float:
        w = self.w
        AG2v = self.A @ gram(self.X, w**2 * v)
        wv = w * v
        return float(np.dot(wv, wv) - 2 * np.trace(self.A @ gram(self.X, w**3 * v**2)) + np.sum(AG2v * AG2v.T))


def wls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> WLSFit:
    """Weighted least squares β̂ = (X'WX)⁻¹ X'W y (metafor's `.invcalc` + crossprod). A singular X'WX (or
    one that is not finite) raises a ValueError that says so, not numpy's LinAlgError."""
    G = gram(X, w)
    try:
        if not np.isfinite(G).all():
            raise np.linalg.LinAlgError("not finite")
        A = np.linalg.inv(G)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"the weighted cross-product X'WX of the {X.shape[1]} coefficient(s) is singular or not finite "
            f"({exc}): moderators collinear under these weights, or weights 1/(vi + tau^2) spanning too many "
            "orders of magnitude for double precision"
        ) from None
    beta = A @ (X.T @ (w * y))
    return WLSFit(X=X, w=w, beta=beta, A=A, resid=y - X @ beta)


def redundant_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Which columns of X R's `lm` finds redundant (its coefficients NA): the rank-revealing Householder QR
    with limited column pivoting of R's LINPACK routine dqrdc2, as `lm(y ~ X - 1)` runs it (tol = 1e-7).

    Columns are reduced left to right; a column whose norm, once the columns kept before it are projected
    out, has fallen below `tol` times its original norm is moved to the end and counts as redundant.
    metafor 3.8's `rma.uni` drops exactly these columns ("Redundant predictors dropped from the model.").
    Returns a boolean mask over the columns of X."""
    x = np.array(X, dtype=float, order="F", copy=True)
    n, p = x.shape
    qraux = np.sqrt(np.einsum("ij,ij->j", x, x))  # dnrm2 of each column
    work0 = qraux.copy()  # the norms, refreshed when recomputed
    work1 = np.where(qraux == 0.0, 1.0, qraux)  # the original norms (1 for a zero column)
    jpvt = np.arange(p)
    k = p + 1  # 1-based, as in the Fortran: columns k..p have been moved to the end
    for lo in range(min(n, p)):  # lo = l - 1
        # move columns whose remaining norm is negligible to the end, while l < k
        while lo + 1 < k and qraux[lo] < work1[lo] * tol:
            order = list(range(lo + 1, p)) + [lo]
            x[:, lo:] = x[:, order]
            jpvt[lo:] = jpvt[order]
            qraux[lo:] = qraux[order]
            work0[lo:] = work0[order]
            work1[lo:] = work1[order]
            k -= 1
        if lo + 1 == n:
            break
        col = x[lo:, lo]
        nrmxl = float(np.sqrt(col @ col))
        if nrmxl == 0.0:
            continue
        if col[0] != 0.0:
            nrmxl = math.copysign(nrmxl, col[0])
        col /= nrmxl
        col[0] += 1.0
        for j in range(lo + 1, p):
            t = -float(col @ x[lo:, j]) / col[0]
            x[lo:, j] += t * col
            if qraux[j] == 0.0:
                continue
            tt = max(1.0 - (abs(x[lo, j]) / qraux[j]) ** 2, 0.0)
            if abs(tt) < 1e-6:
                qraux[j] = float(np.sqrt(x[lo + 1:, j] @ x[lo + 1:, j]))
                work0[j] = qraux[j]
            else:
                qraux[j] = qraux[j] * math.sqrt(tt)
        qraux[lo] = col[0]
        x[lo, lo] = -nrmxl
    rank = min(k - 1, n)
    redundant = np.zeros(p, dtype=bool)
    redundant[jpvt[rank:]] = True
    return redundant
