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
    """Weighted least squares β̂ = (X'WX)⁻¹ X'W y (metafor's `.invcalc` + crossprod)."""
    A = np.linalg.inv(gram(X, w))
    beta = A @ (X.T @ (w * y))
    return WLSFit(X=X, w=w, beta=beta, A=A, resid=y - X @ beta)
