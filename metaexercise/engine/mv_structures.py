"""Variance structures of an ``~ inner | outer`` random term of `rma_mv` (metafor 3.8's `struct`), their parameters on
the optimiser's unconstrained scale, and the chain rule from ∂ℓ/∂G to those parameters.

For inner levels a, b within one level of the outer factor the random effects have covariance G[a, b]
(metafor `.con.E` / `.process.G.afterrmna`; Viechtbauer's rma.mv help, "Specifying Random Effects"):

=======  ==================================================  ==================  ===========
struct   G[a, b]                                              τ² parameters       ρ parameters
=======  ==================================================  ==================  ===========
CS       τ² (a = b), ρ τ² (a ≠ b)                             1                   1
HCS      τ_a² (a = b), ρ τ_a τ_b (a ≠ b)                      one per level       1
UN       τ_a² (a = b), ρ_ab τ_a τ_b (a ≠ b)                   one per level       one per pair
ID       τ² (a = b), 0                                        1                   (fixed at 0)
DIAG     τ_a² (a = b), 0                                      one per level       (fixed at 0)
AR       τ² ρ^|a − b|  (levels in their sorted order)         1                   1
HAR      τ_a τ_b ρ^|a − b|                                    one per level       1
=======  ==================================================  ==================  ===========

Parameters are optimised, as metafor does, on log τ² and atanh ρ; an unstructured G with every element free is
parameterised by its Cholesky factor, G = L'L with L lower triangular (metafor's ``cholesky=TRUE`` default for "UN",
`.con.vcov.UN.chol`), so every G tried is positive semi-definite. ρ pairs are ordered as R's ``lower.tri`` (column by
column).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STRUCTS: tuple[str, ...] = ("CS", "HCS", "UN", "ID", "DIAG", "AR", "HAR")
_PER_LEVEL = frozenset({"HCS", "UN", "DIAG", "HAR"})
_NO_RHO = frozenset({"ID", "DIAG"})


def lower_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the strict lower triangle in R's column-major ``lower.tri`` order."""
    rows = [i for j in range(n) for i in range(j + 1, n)]
    cols = [j for j in range(n) for i in range(j + 1, n)]
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)


def counts(struct: str, n: int) -> tuple[int, int]:
    """Numbers of τ² and ρ values of a structure with ``n`` inner levels (metafor's ``tau2s``, ``rhos``)."""
    n_tau2 = n if struct in _PER_LEVEL else 1
    n_rho = n * (n - 1) // 2 if struct == "UN" and n > 1 else 1
    return n_tau2, n_rho


@dataclass
class Structure:
    """One ``inner | outer`` term's G: which of its τ² and ρ are free (NaN in ``tau2_val`` / ``rho_val``) and the map
    between the free ones and the optimiser's parameters θ."""

    struct: str
    n: int
    tau2_val: np.ndarray
    rho_val: np.ndarray
    cholesky: bool = field(init=False)

    def __post_init__(self) -> None:
        self.tau2_val = np.asarray(self.tau2_val, dtype=float)
        self.rho_val = np.asarray(self.rho_val, dtype=float)
        # metafor uses the Cholesky parameterisation for "UN" by default; with a fixed τ² or ρ (profiling, or
        # rho fixed because two levels never occur together) we use log/atanh, whose free subset can be fixed
        self.cholesky = (self.struct == "UN" and self.n > 1 and bool(np.isnan(self.tau2_val).all())
                         and bool(np.isnan(self.rho_val).all()))
        self._rows, self._cols = lower_pairs(self.n)
        lag = np.abs(np.subtract.outer(np.arange(self.n), np.arange(self.n)))
        self._lag = lag

    # -- sizes ------------------------------------------------------------------------------------------------
    @property
    def free_tau2(self) -> np.ndarray:
        return np.isnan(self.tau2_val)

    @property
    def free_rho(self) -> np.ndarray:
        return np.isnan(self.rho_val)

    @property
    def size(self) -> int:
        """Number of optimiser parameters."""
        if self.cholesky:
            return self.n + len(self._rows)
        return int(self.free_tau2.sum() + self.free_rho.sum())

    # -- natural scale ----------------------------------------------------------------------------------------
    def correlation(self, rho: np.ndarray) -> np.ndarray:
        n, s = self.n, self.struct
        if s in _NO_RHO:
            return np.eye(n)
        if s in ("CS", "HCS"):
            R = np.full((n, n), float(rho[0]))
            np.fill_diagonal(R, 1.0)
            return R
        if s in ("AR", "HAR"):
            return float(rho[0]) ** self._lag.astype(float)
        R = np.eye(n)  # UN
        if len(self._rows):
            R[self._rows, self._cols] = rho
            R[self._cols, self._rows] = rho
        return R

    def G(self, tau2: np.ndarray, rho: np.ndarray) -> np.ndarray:
        t = np.broadcast_to(np.asarray(tau2, dtype=float), (self.n,)) if len(tau2) == 1 else np.asarray(tau2)
        sd = np.sqrt(t)
        out = np.outer(sd, sd) * self.correlation(rho)
        np.fill_diagonal(out, t)
        return out

    # -- optimiser scale --------------------------------------------------------------------------------------
    def theta0(self, tau2_init: np.ndarray, rho_init: np.ndarray) -> np.ndarray:
        """Starting θ from starting τ² and ρ (metafor: τ² total/(number of variance components), ρ 0.5)."""
        tau2_init = np.broadcast_to(np.asarray(tau2_init, dtype=float), self.tau2_val.shape)
        rho_init = np.broadcast_to(np.asarray(rho_init, dtype=float), self.rho_val.shape)
        if self.cholesky:
            # metafor: chol() of the starting G, keeping its diagonal; its lower triangle is 0 (an upper factor)
            U = np.linalg.cholesky(self.G(tau2_init, rho_init)).T
            return np.concatenate([np.diag(U), np.zeros(len(self._rows))])
        return np.concatenate([np.log(tau2_init[self.free_tau2]), np.arctanh(rho_init[self.free_rho])])

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(τ², ρ, G) at θ; fixed values are taken from ``tau2_val`` / ``rho_val``."""
        if self.cholesky:
            L = self._chol_factor(theta)
            G = L.T @ L
            tau2 = np.diag(G).copy()
            sd = np.sqrt(tau2)
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = G[self._rows, self._cols] / (sd[self._rows] * sd[self._cols])
            return tau2, rho, G
        tau2 = self.tau2_val.copy()
        rho = self.rho_val.copy()
        nt = int(self.free_tau2.sum())
        tau2[self.free_tau2] = np.exp(theta[:nt])
        rho[self.free_rho] = np.tanh(theta[nt:])
        return tau2, rho, self.G(tau2, rho)

    def _chol_factor(self, theta: np.ndarray) -> np.ndarray:
        L = np.diag(theta[: self.n])
        if len(self._rows):
            L[self._rows, self._cols] = theta[self.n:]
        return L

    def grad(self, theta: np.ndarray, T: np.ndarray) -> np.ndarray:
        """∂ℓ/∂θ from T = ∂ℓ/∂G (G's entries taken as independent; T symmetric)."""
        if self.cholesky:
            D = 2 * self._chol_factor(theta) @ T
            return np.concatenate([np.diag(D), D[self._rows, self._cols]])
        tau2, rho, G = self.unpack(theta)
        TG = T * G
        if self.struct in _PER_LEVEL:
            g_tau2 = TG.sum(axis=1)  # d/d log τ_c² of Σ T∘G = Σ_b T_cb G_cb
        else:
            g_tau2 = np.array([TG.sum()])
        t = np.broadcast_to(tau2, (self.n,)) if len(tau2) == 1 else tau2
        sd = np.sqrt(t)
        Tss = T * np.outer(sd, sd)
        if self.struct in ("CS", "HCS"):
            g_rho = np.array([Tss.sum() - np.trace(Tss)])
        elif self.struct in ("AR", "HAR"):
            r, lag = float(rho[0]), self._lag
            dR = np.where(lag > 0, lag * np.power(r, np.maximum(lag - 1, 0).astype(float)), 0.0)
            g_rho = np.array([(Tss * dR).sum()])
        elif self.struct == "UN":
            g_rho = 2 * Tss[self._rows, self._cols] if len(self._rows) else np.zeros(1)
        else:
            g_rho = np.zeros(1)
        g_rho = g_rho * (1 - rho**2)  # ρ = tanh θ
        return np.concatenate([g_tau2[self.free_tau2], g_rho[self.free_rho]])


__all__ = ["STRUCTS", "Structure", "counts", "lower_pairs"]
