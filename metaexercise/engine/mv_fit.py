"""Estimating `rma_mv`'s variance components: maximising the (restricted) log-likelihood of `mv_kernel` over σ², τ²,
ρ (and γ², φ) on metafor's unconstrained scales (log variances, atanh correlations, the Cholesky factor of an
unstructured G), with analytic gradients.

metafor 3.8 hands the negative log-likelihood to `nlminb` (PORT, quasi-Newton with finite-difference gradients). Here a
BFGS search with backtracking line search and the analytic gradient brings the parameters near the maximum, and Newton
steps with the Hessian taken by central differences of that gradient finish the job, until the gradient vanishes to
`MVControl.gtol`: the estimates are the maximiser to near machine precision, not an optimiser's stopping point.
A variance that the search drives towards 0 (its logarithm towards −∞), or a correlation towards ±1, is tried exactly at
that boundary and kept there if the likelihood is no worse (metafor reports such values as ≈ 1e-10 instead of 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from metaexercise.engine.mv_kernel import BlockKernel, Evaluation, NotPositiveDefinite
from metaexercise.engine.mv_structures import Structure


@dataclass(frozen=True, slots=True)
class MVControl:
    """Settings of `rma_mv`'s optimiser (metafor's ``control=list(...)``).

    ``sigma2_init``, ``tau2_init``, ``rho_init``, ``gamma2_init``, ``phi_init``: starting values (metafor's defaults when
    None: each variance total/(number of variance components), with total = max(0.001·(number of components),
    var(y − Xβ̂_FE) − 1/mean(1/vᵢ)); correlations 0.5). ``REMLf``: include ½ log|X'X| in the REML log-likelihood, as
    metafor does by default. ``evtol``: smallest eigenvalue of X'X below which the model matrix is not of full rank.
    ``gtol``: convergence when the largest absolute derivative of the log-likelihood on the optimiser's scale is below
    ``gtol·max(1, |ℓ|)``. ``maxiter``: BFGS iterations (Newton steps: 50 more at most).
    """

    sigma2_init: object = None
    tau2_init: object = None
    rho_init: object = None
    gamma2_init: object = None
    phi_init: object = None
    REMLf: bool = True
    evtol: float = 1e-7
    gtol: float = 1e-9
    maxiter: int = 2000

    @classmethod
    def coerce(cls, control) -> MVControl:
        if control is None:
            return cls()
        if isinstance(control, cls):
            return control
        if isinstance(control, dict):
            unknown = set(control) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(f"rma_mv: unknown control setting(s) {sorted(unknown)}; known: "
                                 f"{sorted(cls.__dataclass_fields__)}")
            return cls(**control)
        raise TypeError(f"rma_mv: control must be an MVControl or a dict, got {type(control).__name__}")


@dataclass
class Components:
    """Values of the variance components; NaN marks a free (to be estimated) one."""

    sigma2: np.ndarray
    tau2: list[np.ndarray]  # per inner|outer term (τ², then γ²)
    rho: list[np.ndarray]  # per inner|outer term (ρ, then φ)

    def copy(self) -> Components:
        return Components(self.sigma2.copy(), [t.copy() for t in self.tau2], [r.copy() for r in self.rho])

    def n_free(self) -> int:
        return int(np.isnan(self.sigma2).sum() + sum(np.isnan(t).sum() for t in self.tau2)
                   + sum(np.isnan(r).sum() for r in self.rho))


@dataclass
class Solution:
    components: Components  # every value filled in
    Gs: list[np.ndarray]
    evaluation: Evaluation
    converged: bool
    iterations: int
    boundary: tuple[str, ...] = field(default=())


class Objective:
    """−ℓ and its gradient as functions of the optimiser's θ, for given fixed values."""

    def __init__(self, kernel: BlockKernel, structs: list[str], n_inner: list[int], fixed: Components, reml: bool):
        self.kernel, self.reml = kernel, reml
        self.fixed = fixed
        self.free_s2 = np.isnan(fixed.sigma2)
        self.structures = [Structure(s, n, t, r) for s, n, t, r in zip(structs, n_inner, fixed.tau2, fixed.rho,
                                                                         strict=True)]
        self.sizes = [int(self.free_s2.sum())] + [st.size for st in self.structures]
        self.n_par = sum(self.sizes)
        self.evaluations = 0

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        return np.split(theta, np.cumsum(self.sizes)[:-1])

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, list, list, list[np.ndarray]]:
        parts = self.split(theta)
        sigma2 = self.fixed.sigma2.copy()
        sigma2[self.free_s2] = np.exp(parts[0])
        tau2, rho, Gs = [], [], []
        for st, th in zip(self.structures, parts[1:], strict=True):
            t, r, G = st.unpack(th)
            tau2.append(t)
            rho.append(r)
            Gs.append(G)
        return sigma2, tau2, rho, Gs

    def __call__(self, theta: np.ndarray, gradient: bool = True) -> tuple[float, np.ndarray | None]:
        self.evaluations += 1
        if not np.all(np.isfinite(theta)):
            return math.inf, None
        sigma2, _, _, Gs = self.unpack(theta)
        if not (np.all(np.isfinite(sigma2)) and all(np.all(np.isfinite(G)) for G in Gs)):
            return math.inf, None
        try:
            ev = self.kernel.evaluate(sigma2, Gs, self.reml, gradient=gradient)
        except NotPositiveDefinite:
            return math.inf, None
        ll = ev.ll_reml if self.reml else ev.ll_ml
        if not math.isfinite(ll):
            return math.inf, None
        if not gradient:
            return -ll, None
        parts = self.split(theta)
        g = [sigma2[self.free_s2] * ev.grad_sigma2[self.free_s2]]
        for st, th, T in zip(self.structures, parts[1:], ev.grad_G, strict=True):
            g.append(st.grad(th, (T + T.T) / 2))
        grad = -np.concatenate(g) if g else np.zeros(0)
        if not np.all(np.isfinite(grad)):
            return math.inf, None
        return -ll, grad

    def theta0(self, s2_init: np.ndarray, tau2_init: list, rho_init: list) -> np.ndarray:
        parts = [np.log(s2_init[self.free_s2])]
        for st, t, r in zip(self.structures, tau2_init, rho_init, strict=True):
            parts.append(st.theta0(t, r))
        return np.concatenate(parts) if parts else np.zeros(0)


def _bfgs(obj: Objective, x: np.ndarray, gtol: float, maxiter: int) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Quasi-Newton (BFGS, inverse-Hessian update) with a backtracking Armijo line search; a point where M is not
    positive definite counts as +∞ and shortens the step."""
    f, g = obj(x)
    if not math.isfinite(f):
        raise NotPositiveDefinite("the marginal var-cov matrix is not positive definite at the starting values")
    n = len(x)
    H = np.eye(n)
    first = True
    it = 0
    for it in range(1, maxiter + 1):
        if np.max(np.abs(g)) <= gtol * max(1.0, abs(f)):
            break
        d = -H @ g
        if not np.dot(g, d) < 0:
            H = np.eye(n)
            d = -g
        big = np.max(np.abs(d))
        if big > 5.0:  # at most 5 units on the log / atanh scale per step
            d *= 5.0 / big
        step, slope = 1.0, float(np.dot(g, d))
        while True:
            x_new = x + step * d
            f_new, g_new = obj(x_new)
            if math.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-20:
                return x, f, g, it
        s, yv = x_new - x, g_new - g
        sy = float(np.dot(s, yv))
        if sy > 1e-12 * np.linalg.norm(s) * np.linalg.norm(yv):
            if first:
                H = np.eye(n) * (sy / float(np.dot(yv, yv)))
                first = False
            rho = 1.0 / sy
            Hy = H @ yv
            H = H + ((sy + yv @ Hy) * rho * rho) * np.outer(s, s) - rho * (np.outer(Hy, s) + np.outer(s, Hy))
        x, f_old, f, g = x_new, f, f_new, g_new
        if abs(f_old - f) <= 1e-15 * max(1.0, abs(f)) and np.max(np.abs(s)) <= 1e-12 * max(1.0, np.max(np.abs(x))):
            break
    return x, f, g, it


def _hessian(obj: Objective, x: np.ndarray, h: float = 1e-5) -> np.ndarray | None:
    n = len(x)
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        fp, gp = obj(x + e)
        fm, gm = obj(x - e)
        if gp is None or gm is None:
            return None
        H[:, j] = (gp - gm) / (2 * h)
    return (H + H.T) / 2


def _newton(obj: Objective, x: np.ndarray, f: float, g: np.ndarray, gtol: float) -> tuple[np.ndarray, float,
                                                                                           np.ndarray, int, bool]:
    """Newton steps with a finite-difference Hessian of the analytic gradient, line-searched."""
    for it in range(50):
        if np.max(np.abs(g)) <= gtol * max(1.0, abs(f)):
            return x, f, g, it, True
        H = _hessian(obj, x)
        if H is None:
            return x, f, g, it, False
        try:
            C = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            return x, f, g, it, False  # not at a strict local minimum in these coordinates (e.g. a boundary)
        d = -np.linalg.solve(C.T, np.linalg.solve(C, g))
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = obj(x_new)
            if math.isfinite(f_new) and f_new <= f + 1e-12 * max(1.0, abs(f)):
                break
            step *= 0.5
            if step < 1e-10:
                return x, f, g, it, np.max(np.abs(g)) <= 1e3 * gtol * max(1.0, abs(f))
        if np.max(np.abs(x_new - x)) <= 1e-14 * max(1.0, np.max(np.abs(x))):
            return x_new, f_new, g_new, it + 1, True
        x, f, g = x_new, f_new, g_new
    return x, f, g, 50, np.max(np.abs(g)) <= 1e3 * gtol * max(1.0, abs(f))


def maximise(kernel: BlockKernel, structs: list[str], n_inner: list[int], fixed: Components, reml: bool,
             start: Components, control: MVControl, boundary_scale: float) -> Solution:
    """Maximise the (restricted) log-likelihood over the free components of ``fixed``, from ``start``.

    Raises NotPositiveDefinite when no positive-definite M can be reached from the start.
    """
    obj = Objective(kernel, structs, n_inner, fixed, reml)
    iterations, converged = 0, True
    if obj.n_par:
        # a start on the boundary (a profile started from an estimate of 0) would be log 0 or atanh 1
        floor = 1e-6 * boundary_scale
        x0 = obj.theta0(np.maximum(start.sigma2, floor), [np.maximum(t, floor) for t in start.tau2],
                        [np.clip(r, -0.99, 0.99) for r in start.rho])
        x, f, g, it = _bfgs(obj, x0, control.gtol, control.maxiter)
        x, f, g, it2, converged = _newton(obj, x, f, g, control.gtol)
        iterations = it + it2
        if not converged:
            converged = bool(np.max(np.abs(g)) <= 1e3 * control.gtol * max(1.0, abs(f)))
    else:
        x = np.zeros(0)
    sigma2, tau2, rho, Gs = obj.unpack(x)
    comps = Components(sigma2, tau2, rho)
    boundary: list[str] = []
    if obj.n_par:
        comps, Gs, moved = _try_boundaries(kernel, structs, n_inner, fixed, comps, reml, control, boundary_scale,
                                           -f)
        boundary.extend(moved)
        if moved:
            converged = True
    ev = kernel.evaluate(comps.sigma2, Gs, reml)
    return Solution(comps, Gs, ev, converged, iterations, tuple(boundary))


def _try_boundaries(kernel, structs, n_inner, fixed: Components, comps: Components, reml: bool, control: MVControl,
                    scale: float, ll: float):
    """Put variances that went to ≈ 0 (and correlations that went to ≈ ±1) exactly on the boundary and re-maximise
    over the rest; keep that solution if its log-likelihood is not lower."""
    cand = fixed.copy()
    moved: list[str] = []
    tiny = 1e-9 * scale
    for j in np.flatnonzero(np.isnan(fixed.sigma2) & (comps.sigma2 < tiny)):
        cand.sigma2[j] = 0.0
        moved.append(f"sigma2[{j}]")
    for t, st in enumerate(structs):
        if st == "UN" and np.isnan(fixed.tau2[t]).all() and np.isnan(fixed.rho[t]).all():
            continue  # Cholesky-parameterised: the boundary is inside the parameter space
        for j in np.flatnonzero(np.isnan(fixed.tau2[t]) & (comps.tau2[t] < tiny)):
            cand.tau2[t][j] = 0.0
            moved.append(f"tau2[{t}][{j}]")
        for j in np.flatnonzero(np.isnan(fixed.rho[t]) & (np.abs(comps.rho[t]) > 1 - 1e-9)):
            cand.rho[t][j] = float(np.sign(comps.rho[t][j]))
            moved.append(f"rho[{t}][{j}]")
    Gs = [Structure(s, n, t, r).G(t, r) for s, n, t, r in zip(structs, n_inner, comps.tau2, comps.rho, strict=True)]
    if not moved:
        return comps, Gs, []
    try:
        sol = maximise(kernel, structs, n_inner, cand, reml, comps, control, scale)
    except NotPositiveDefinite:
        return comps, Gs, []
    ll_b = sol.evaluation.ll_reml if reml else sol.evaluation.ll_ml
    if ll_b >= ll - 1e-12 * max(1.0, abs(ll)):
        return sol.components, sol.Gs, moved
    return comps, Gs, []


__all__ = ["MVControl", "Components", "Solution", "maximise", "Objective"]
