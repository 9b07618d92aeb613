"""`selmodel`: selection models for publication bias, as metafor 3.8's `selmodel.rma.uni`.

The observed effect sizes are a selected sample: study i, with true mean yhatᵢ = xᵢ'β and variance
vᵢ + τ², is published with a probability proportional to w(pᵢ), a function of its one- or two-sided
p-value pᵢ (metafor's `.selmodel.pval`: "greater": pᵢ = 1 − Φ(yᵢ/√vᵢ), "less": Φ(yᵢ/√vᵢ), "two.sided":
2(1 − Φ(abs(yᵢ)/√vᵢ))). The log-likelihood (metafor's `.selmodel.ll.cont` and `.selmodel.ll.stepfun`) is

    ll = Σᵢ [ log w(pᵢ) + log φ(yᵢ; yhatᵢ, vᵢ + τ²) − log Aᵢ ],   Aᵢ = ∫ w(p(y)) φ(y; yhatᵢ, vᵢ + τ²) dy,

maximised over β, τ² (unless the model is equal-effects or τ² is fixed) and the free selection parameters δ.
Selection functions (`type`), with metafor's bounds [delta_min, delta_max] for δ and its p-value floor:

* "stepfun" (Hedges 1992, Stat Sci 7:246; Vevea & Hedges 1995, Psychometrika 60:419): w(p) = δⱼ for p in
  the j-th interval of `steps` (δ₁ = 1); Aᵢ in closed form (normal tail probabilities).
* "beta" (Citkowicz & Vevea 2017, Psychol Methods 22:28): w(p) = p^(δ₁−1) (1 − p)^(δ₂−1), p clipped to
  [1e-5, 1 − 1e-5].
* "halfnorm", "negexp", "logistic", "power" (Preston, Ashby & Smyth 2004, Biometrics 60:793): w(p) =
  exp(−δp²), exp(−δp), 2exp(−δp)/(1 + exp(−δp)), (1 − p)^δ, each divided by its value at `steps[0]` (default
  0) and 1 for p <= steps[0]; "power" clips p to [1e-5, 1 − 1e-5]. With `prec`, δ is multiplied by a
  study's precision measure (sei or vi, by default divided by its maximum).

Aᵢ for the continuous functions is integrated on the scale of the study's z-statistic t = y/√vᵢ, where the
selection function's kinks (clipping points, steps[0], t = 0 for two-sided p-values) lie at the same t for
every study: Gauss-Legendre rules on a fixed grid of pieces split at the kinks, vectorised over studies
(accurate to about 1e-15 relative; metafor uses R's `integrate`, rel.tol eps^0.25 by default).

Estimation: maximum likelihood, from metafor's start values (the ML fit's β, τ² and δ = 1); L-BFGS-B on
(β, τ², δ) within the bounds, then Newton steps with the Hessian on the free interior parameters until the
step is at machine precision. Standard errors come from the inverse of the Hessian of −ll on (β, τ², δ), as
metafor (which differentiates numerically with numDeriv, Richardson extrapolation); here central differences
with Richardson extrapolation on the same scale. Tests and intervals are Wald-type (z); δ's are tested
against 1 (stepfun, beta) or 0; intervals truncated at the parameter bounds, as metafor. The LRT for
selection compares ll with the ML (or EE) model without selection, df = the number of free δ; the test of
heterogeneity is the LRT of τ² = 0 within the selection model.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import optimize, special

from metaexercise.engine.model import RMAResult, rma

SelType = Literal["beta", "halfnorm", "negexp", "logistic", "power", "stepfun"]
Alternative = Literal["greater", "less", "two.sided"]
TYPES: tuple[str, ...] = ("beta", "halfnorm", "negexp", "logistic", "power", "stepfun")
ALTERNATIVES: tuple[str, ...] = ("greater", "less", "two.sided")

#: Gauss-Legendre nodes per piece and pieces (before splitting at kinks) of the integral A_i: (pieces, nodes)
#: of the fine rule (A_i to ~1e-15 relative, checked against scipy's adaptive quad in the tests) and of the
#: coarse one the optimiser uses to approach the maximum (~1e-7), before Newton steps with the fine rule.
_FINE = (48, 24)
_COARSE = (24, 12)
#: the integral covers yhat +- _SPAN standard deviations (phi(12) ~ 5e-32).
_SPAN = 12.0
_GL = {n: np.polynomial.legendre.leggauss(n) for n in (_FINE[1], _COARSE[1])}


class SelmodelWarning(UserWarning):
    """A selection parameter at (or next to) its bound, or a Hessian that could not be inverted (metafor warns
    in the same cases)."""


@dataclass(frozen=True, slots=True)
class _Spec:
    """metafor's settings for one type of selection function."""

    n_delta: int | None  # None: one per interval of `steps`
    delta_init: float
    delta_min: float
    delta_max: float
    H0: float
    pval_min: float
    lb_excl: bool


_SPECS: dict[str, _Spec] = {
    "beta": _Spec(2, 1.0, 1e-5, 100.0, 1.0, 1e-5, True),
    "halfnorm": _Spec(1, 1.0, 0.0, 100.0, 0.0, 0.0, False),
    "negexp": _Spec(1, 1.0, 0.0, 100.0, 0.0, 0.0, False),
    "logistic": _Spec(1, 1.0, 0.0, 100.0, 0.0, 0.0, False),
    "power": _Spec(1, 1.0, 0.0, 100.0, 0.0, 1e-5, False),
    "stepfun": _Spec(None, 1.0, 0.0, 100.0, 1.0, 0.0, False),
}


def selmodel_pvalues(yi, vi, alternative: str = "greater") -> np.ndarray:
    """One- or two-sided p-values of z = yi/sqrt(vi) (metafor's `.selmodel.pval`)."""
    return _pval_of_t(np.asarray(yi, dtype=float) / np.sqrt(np.asarray(vi, dtype=float)), alternative)


def weight_function(type: str, p, delta, preci=1.0, steps=None) -> np.ndarray:
    """The selection function w(p) of `type` at p-values `p` (metafor's `wi.fun`), with selection parameters
    `delta`, precision `preci` (1 without `prec`) and `steps` (stepfun: the interval bounds; otherwise the
    value below which w = 1, default 0). p is used as given (no clipping)."""
    p = np.asarray(p, dtype=float)
    delta = np.atleast_1d(np.asarray(delta, dtype=float))
    if type == "stepfun":
        steps = np.asarray(steps, dtype=float)
        group = np.searchsorted(steps, p, side="left")  # first j with p <= steps[j]
        return delta[np.minimum(group, len(steps) - 1)] / preci
    if type == "beta":
        return p ** (delta[0] - 1) * (1 - p) ** (delta[1] - 1)
    s = 0.0 if steps is None else float(np.atleast_1d(steps)[0])
    d = delta[0] * preci
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if type == "halfnorm":
            w = np.exp(-d * (p * p - s * s))
        elif type == "negexp":
            w = np.exp(-d * (p - s))
        elif type == "logistic":
            w = (2 * np.exp(-d * p) / (1 + np.exp(-d * p))) / (2 * np.exp(-d * s) / (1 + np.exp(-d * s)))
        elif type == "power":
            w = (1 - p) ** d / (1 - s) ** d
        else:
            raise ValueError(f"weight_function: unknown type {type!r}")
    return np.where(p <= s, 1.0, w)


# ------------------------------------------------------------------------------------------------------
# The integral A_i (continuous selection functions)
# ------------------------------------------------------------------------------------------------------


def _pval_of_t(t: np.ndarray, alternative: str) -> np.ndarray:
    if alternative == "two.sided":
        return 2 * special.ndtr(-np.abs(t))
    return special.ndtr(-t) if alternative == "greater" else special.ndtr(t)


def _kinks(alternative: str, pval_min: float, s: float) -> np.ndarray:
    """Where (in t = y/sqrt(vi)) the integrand is not smooth: p = pval_min, p = 1 - pval_min, p = s, t = 0
    for two-sided p-values."""
    ps = [q for q in (pval_min, 1 - pval_min, s) if 0 < q < 1]
    if alternative == "two.sided":
        t = [0.0] + [sgn * -special.ndtri(q / 2) for q in ps for sgn in (-1.0, 1.0)]
        # p = 2 Phi(-|t|) has a corner at t = 0 (p = 1): w(p) behaves like |t|^(delta - 1) there (beta, power), an
        # integrable singularity that Gauss-Legendre pieces resolve only if they shrink geometrically towards it
        inner = -special.ndtri((1 - pval_min) / 2) if pval_min > 0 else 2.0**-30
        ladder = inner * 2.0 ** np.arange(0, max(1, int(np.ceil(np.log2(1 / inner)))) + 1)
        t += [sgn * x for x in ladder if x <= 1 for sgn in (-1.0, 1.0)]
    elif alternative == "greater":
        t = [-special.ndtri(q) for q in ps]
    else:
        t = [special.ndtri(q) for q in ps]
    return np.unique(np.asarray(t, dtype=float))


def _nodes(m: np.ndarray, r: np.ndarray, kinks: np.ndarray, rule: tuple[int, int] = _FINE
           ) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights (k x N) for the integral over t of f(t) phi(t; m_i, r_i): pieces of a
    grid over m_i +- _SPAN r_i (widened to take in the kinks), split at the kinks, Gauss-Legendre in each."""
    k = m.shape[0]
    lo = m - _SPAN * r
    hi = m + _SPAN * r
    if kinks.size:
        lo = np.minimum(lo, kinks[0] - r)
        hi = np.maximum(hi, kinks[-1] + r)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, rule[0] + 1)[None, :]
    if kinks.size:
        grid = np.sort(np.concatenate([grid, np.broadcast_to(kinks, (k, kinks.size))], axis=1), axis=1)
        grid = np.clip(grid, lo[:, None], hi[:, None])
    a, b = grid[:, :-1], grid[:, 1:]
    half = (b - a) / 2
    mid = (a + b) / 2
    gx, gw = _GL[rule[1]]
    t = (mid[:, :, None] + half[:, :, None] * gx[None, None, :]).reshape(k, -1)
    w = (half[:, :, None] * gw[None, None, :]).reshape(k, -1)
    return t, w


def _integral_cont(type, yhat, vi, tau2, delta, preci, steps, alternative, pval_min, rule=_FINE) -> np.ndarray:
    """A_i = integral of w(p(y)) phi(y; yhat_i, vi_i + tau2) dy, on the scale t = y/sqrt(vi)."""
    sv = np.sqrt(vi)
    m = yhat / sv
    r = np.sqrt(vi + tau2) / sv
    s = 0.0 if steps is None else float(steps[0])
    t, w = _nodes(m, r, _kinks(alternative, pval_min, s), rule)
    p = np.clip(_pval_of_t(t, alternative), pval_min, 1 - pval_min)
    z = (t - m[:, None]) / r[:, None]
    dens = np.exp(-0.5 * z * z) / (r[:, None] * math.sqrt(2 * math.pi))
    wf = weight_function(type, p, delta, preci[:, None], steps)
    return np.sum(w * wf * dens, axis=1)


def _integral_stepfun(yhat, vi, tau2, delta, preci, steps, alternative) -> np.ndarray:
    """A_i for the step function in closed form, term by term as metafor's `.selmodel.ll.stepfun`: the first
    interval enters with weight 1 (metafor fixes delta_1 = 1), the others with delta_j / preci_i."""
    sv = np.sqrt(vi)[:, None]
    se = np.sqrt(vi + tau2)[:, None]
    mu = yhat[:, None]
    s = np.asarray(steps, dtype=float)[None, :]

    def upper(c):  # P(Y > c), Y ~ N(mu, se^2)
        return special.ndtr((mu - c) / se)

    def lower(c):
        return special.ndtr((c - mu) / se)

    n = s.shape[1]
    none = np.zeros((yhat.shape[0], 0))
    dj = delta[1:][None, :] / preci[:, None]
    if alternative == "greater":
        c = -special.ndtri(s) * sv  # qnorm(steps, 0, sqrt(vi), lower.tail = FALSE), k x n
        first = upper(c[:, :1])
        mids = upper(c[:, 1:-1]) - upper(c[:, :-2]) if n > 2 else none
        last = lower(c[:, -2:-1]) if n > 1 else none
    elif alternative == "less":
        c = special.ndtri(s) * sv
        first = lower(c[:, :1])
        mids = lower(c[:, 1:-1]) - lower(c[:, :-2]) if n > 2 else none
        last = upper(c[:, -2:-1]) if n > 1 else none
    else:
        cu = -special.ndtri(s / 2) * sv
        cl = special.ndtri(s / 2) * sv
        first = upper(cu[:, :1]) + lower(cl[:, :1])
        mids = ((upper(cu[:, 1:-1]) - upper(cu[:, :-2])) + (lower(cl[:, 1:-1]) - lower(cl[:, :-2]))
                if n > 2 else none)
        last = (lower(cu[:, -2:-1]) - lower(cl[:, -2:-1])) if n > 1 else none
    a = first[:, 0]
    if n > 2:
        a = a + np.sum(dj[:, :-1] * mids, axis=1)
    if n > 1:
        a = a + dj[:, -1] * last[:, 0]
    return a


# ------------------------------------------------------------------------------------------------------
# The model: parameters, log-likelihood, fitting
# ------------------------------------------------------------------------------------------------------


@dataclass
class _Problem:
    type: str
    alternative: str
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    preci: np.ndarray
    steps: np.ndarray | None
    pvals: np.ndarray  # clipped to [pval_min, 1 - pval_min]
    pgrp: np.ndarray | None  # stepfun: 0-based interval of each study
    pval_min: float
    delta_val: np.ndarray  # NaN where free
    delta_min: np.ndarray
    delta_max: np.ndarray
    tau2_val: float  # NaN where estimated
    rule: tuple[int, int] = _FINE  # quadrature of A_i (continuous selection functions)

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def n_delta(self) -> int:
        return self.delta_val.shape[0]

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """theta = (beta, tau2, delta) in full; fixed entries are overridden by their values."""
        p = self.p
        beta = theta[:p]
        tau2 = self.tau2_val if not math.isnan(self.tau2_val) else float(theta[p])
        delta = np.where(np.isnan(self.delta_val), theta[p + 1:], self.delta_val)
        return beta, tau2, delta

    def loglik(self, theta: np.ndarray) -> float:
        beta, tau2, delta = self.unpack(np.asarray(theta, dtype=float))
        if tau2 < 10 * np.finfo(float).eps:  # metafor: tau2[tau2 < .Machine$double.eps * 10] <- 0
            tau2 = 0.0
        yhat = self.X @ beta
        s2 = self.vi + tau2
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.type == "stepfun":
                a = _integral_stepfun(yhat, self.vi, tau2, delta, self.preci, self.steps, self.alternative)
                logw = np.log(delta[self.pgrp] / self.preci)
            else:
                a = _integral_cont(self.type, yhat, self.vi, tau2, delta, self.preci, self.steps, self.alternative,
                                   self.pval_min, self.rule)
                logw = np.log(weight_function(self.type, self.pvals, delta, self.preci, self.steps))
            ll = logw - 0.5 * np.log(2 * np.pi * s2) - 0.5 * (self.yi - yhat) ** 2 / s2 - np.log(a)
        total = float(np.sum(ll))
        return total if math.isfinite(total) else -math.inf


def _free_mask(prob: _Problem) -> np.ndarray:
    return np.concatenate([np.ones(prob.p, dtype=bool), [math.isnan(prob.tau2_val)], np.isnan(prob.delta_val)])


def _bounds(prob: _Problem) -> tuple[np.ndarray, np.ndarray]:
    lo = np.concatenate([np.full(prob.p, -np.inf), [0.0], prob.delta_min])
    hi = np.concatenate([np.full(prob.p, np.inf), [np.inf], prob.delta_max])
    return lo, hi


def _steps_for(x: np.ndarray) -> np.ndarray:
    return 1e-4 * np.maximum(np.abs(x), 0.1)


def _gradient(f, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Central differences (one-sided within a step of a bound)."""
    g = np.empty_like(x)
    h = _steps_for(x) * 1e-2
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h[j]
        if x[j] - h[j] < lo[j]:
            g[j] = (f(x + e) - f(x)) / h[j]
        elif x[j] + h[j] > hi[j]:
            g[j] = (f(x) - f(x - e)) / h[j]
        else:
            g[j] = (f(x + e) - f(x - e)) / (2 * h[j])
    return g


def hessian(f, x: np.ndarray, h: np.ndarray | None = None, levels: int = 4) -> np.ndarray:
    """Hessian of f at x by central differences with Richardson extrapolation (steps h, h/2, ...; the error
    terms h^2, h^4, ... eliminated in turn), the approach of numDeriv::hessian, which metafor uses."""
    x = np.asarray(x, dtype=float)
    n = x.size
    h = _steps_for(x) * 10 if h is None else np.asarray(h, dtype=float)
    f0 = f(x)

    def d2(hs):
        H = np.empty((n, n))
        for i in range(n):
            ei = np.zeros(n)
            ei[i] = hs[i]
            H[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / hs[i] ** 2
            for j in range(i):
                ej = np.zeros(n)
                ej[j] = hs[j]
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * hs[i] * hs[j])
        return H

    table = [d2(h / 2**m) for m in range(levels)]
    for order in range(1, levels):
        factor = 4.0**order
        table = [(factor * table[m + 1] - table[m]) / (factor - 1) for m in range(len(table) - 1)]
    H = table[0]
    return (H + H.T) / 2


def _to_natural(prob: _Problem, z: np.ndarray, free: np.ndarray, full: np.ndarray) -> np.ndarray:
    """metafor's optimisation scale -> (beta, tau2, delta): tau2 = exp(z) and each delta through
    `.mapfun`: delta_min + (delta_max - delta_min) / (1 + exp(-z)) (exp(z) clamped when delta_max is infinite)."""
    p = prob.p
    th = full.copy()
    th[free] = z
    if free[p]:
        th[p] = math.exp(min(float(th[p]), 700.0))
    d = th[p + 1:]
    fin = np.isfinite(prob.delta_max)
    with np.errstate(over="ignore"):
        mapped = np.where(fin, prob.delta_min + (prob.delta_max - prob.delta_min) / (1 + np.exp(-d)),
                          np.clip(np.exp(np.minimum(d, 700.0)), prob.delta_min, prob.delta_max))
    th[p + 1:] = np.where(free[p + 1:], mapped, d)
    return th


def _to_scale(prob: _Problem, th: np.ndarray, free: np.ndarray) -> np.ndarray:
    """(beta, tau2, delta) -> metafor's optimisation scale (`.mapinvfun`; log for tau2)."""
    p = prob.p
    z = th.copy()
    if free[p]:
        z[p] = math.log(th[p])
    d = th[p + 1:]
    fin = np.isfinite(prob.delta_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(fin, np.log((d - prob.delta_min) / (prob.delta_max - d)), np.log(d))
    z[p + 1:] = np.where(free[p + 1:], inv, d)
    return z


def _scaled_hessian(f, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Hessian of f at x with steps matched to its curvature: a first, small-step Hessian gives each
    parameter's scale s_j = 1/sqrt(H_jj) (its standard error), then Richardson extrapolation from steps
    h_j = s_j/4 (at most a quarter of the distance to a bound, so that no evaluation leaves the parameter
    space): rounding noise ~eps |f| / h^2 stays ~1e-12 of the curvature, truncation is extrapolated away."""
    H0 = hessian(f, x, levels=2)
    scale = 1 / np.sqrt(np.where(np.diag(H0) > 0, np.diag(H0), np.nan))
    scale = np.where(np.isfinite(scale), scale, _steps_for(x) * 10)
    room = np.minimum(x - lo, hi - x)
    h = np.minimum(scale / 4, np.where(np.isfinite(room) & (room > 0), room / 4, np.inf))
    h = np.maximum(h, 1e-9 * np.maximum(np.abs(x), 1e-3))
    return hessian(f, x, h=h, levels=4)


def _maximise(prob: _Problem, start: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximum of prob.loglik over the free parameters from `start` (full (beta, tau2, delta)).

    As metafor: BFGS on its optimisation scale (log tau2, deltas mapped onto (delta_min, delta_max)), which
    keeps every parameter inside its bounds (here with the coarse quadrature, for speed). Then Newton steps on
    the natural scale with the fine quadrature, for the parameters not at a bound (tau2 > 0, delta inside its
    bounds), central-difference gradients and one Hessian, until the step is at rounding level: BFGS alone
    stops where the change in ll falls below its tolerance, up to ~1e-5 away in the parameters where the
    likelihood is flat."""
    free = _free_mask(prob)
    full = start.copy()
    coarse = replace(prob, rule=_COARSE)

    def negll_z(z):
        v = -coarse.loglik(_to_natural(coarse, z, free, full))
        return v if math.isfinite(v) else 1e300

    z0 = _to_scale(prob, start, free)[free]
    inf = np.full(z0.size, np.inf)
    res = optimize.minimize(negll_z, z0, method="BFGS", jac=lambda z: _gradient(negll_z, z, -inf, inf),
                            options={"gtol": 1e-7, "maxiter": 10_000})
    th = _to_natural(prob, res.x, free, full)
    # tau2 at its bound: metafor's exp(z) only approaches 0. Where BFGS ends with tau2 tiny against the sampling
    # variances and the likelihood falls as tau2 leaves 0 (one-sided derivative <= 0), the maximum is at 0.
    p = prob.p
    vmin = float(prob.vi.min())
    if free[p] and th[p] < 1e-2 * vmin:
        at0 = th.copy()
        at0[p] = 0.0
        step = 1e-6 * vmin
        up = at0.copy()
        up[p] = step
        if prob.loglik(up) <= prob.loglik(at0):
            th = at0
    lo, hi = _bounds(prob)
    idx = np.flatnonzero(free)
    x = th[idx]
    away = (x - lo[idx] > 1e-8 * np.maximum(1.0, np.abs(x))) & (hi[idx] - x > 1e-8 * np.maximum(1.0, np.abs(x)))
    if free[p]:
        away[np.searchsorted(idx, p)] &= th[p] > 0
    inner = idx[away]
    if inner.size == 0:
        return th, prob.loglik(th)

    def negll(xi):
        t = th.copy()
        t[inner] = xi
        v = -prob.loglik(t)
        return v if math.isfinite(v) else 1e300

    xi = th[inner].copy()
    H = hessian(negll, xi, levels=2)
    try:
        chol = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return th, prob.loglik(th)  # not at a maximum of the interior parameters: keep BFGS's point
    f_best = negll(xi)
    for _ in range(40):
        g = _gradient(negll, xi, lo[inner], hi[inner])
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        if not np.all(np.isfinite(step)):
            break
        cand = np.clip(xi + step, lo[inner], hi[inner])
        f_cand = negll(cand)
        if f_cand > f_best + 1e-13 * max(1.0, abs(f_best)):
            break  # no progress beyond rounding: at the maximum
        moved = float(np.max(np.abs(cand - xi) / np.maximum(np.abs(xi), 1e-4)))
        gained = f_best - f_cand
        xi, f_best = cand, min(f_best, f_cand)
        # done when the step is at the level of the gradient's rounding noise (central differences of ll:
        # ~1e-9 relative in the parameters) or no longer raises ll beyond rounding
        if moved < 1e-8 or gained <= 4 * np.finfo(float).eps * max(1.0, abs(f_best)):
            break
    th = th.copy()
    th[inner] = xi
    return th, prob.loglik(th)


# ------------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelmodelResult:
    """A fitted selection model; field names as metafor's `rma.uni.selmodel` object (ci.lb -> ci_lb, ...).

    Coefficient fields (`beta`, `se`, `zval`, `pval`, `ci_lb`, `ci_ub`) are 1-D arrays (one per coefficient,
    intercept first); the selection parameters `delta` and their `se_delta`, `zval_delta`, `pval_delta`,
    `ci_lb_delta`, `ci_ub_delta` too (NaN for fixed ones). `LRT`/`LRTp`: likelihood-ratio test of the
    selection parameters (df `LRTdf`); `LRT_tau2`/`LRTp_tau2`: of tau^2 = 0 within the selection model
    (metafor's "Test for Heterogeneity"); `ll0`: log-likelihood of the model without selection.
    """

    type: str
    alternative: str
    steps: np.ndarray | None
    k: int
    p: int
    method: str
    level: float
    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    tau2: float
    se_tau2: float
    ci_lb_tau2: float
    ci_ub_tau2: float
    tau2_fixed: bool
    delta: np.ndarray
    se_delta: np.ndarray
    zval_delta: np.ndarray
    pval_delta: np.ndarray
    ci_lb_delta: np.ndarray
    ci_ub_delta: np.ndarray
    vd: np.ndarray
    delta_fixed: np.ndarray
    QM: float
    QMp: float
    ll: float
    ll0: float
    LRT: float
    LRTdf: int
    LRTp: float
    LRT_tau2: float
    LRTp_tau2: float
    parms: int
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    pvals: np.ndarray
    ptable: dict[str, int] | None
    hessian: np.ndarray
    notes: tuple[str, ...] = field(default=())

    @property
    def estimate(self) -> float:
        return float(self.beta[0])

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)

    def selection_weights(self, p, preci: float = 1.0) -> np.ndarray:
        """The fitted selection function at p-values `p` (what metafor's `plot.rma.uni.selmodel` draws)."""
        return weight_function(self.type, p, self.delta, preci, self.steps)

    def summary(self) -> str:
        return format_selmodel(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<SelmodelResult type={self.type} k={self.k} estimate={self.estimate:.4f} tau2={self.tau2:.4f} "
                f"LRT={self.LRT:.4f}>")


# ------------------------------------------------------------------------------------------------------
# selmodel()
# ------------------------------------------------------------------------------------------------------


def _check_steps(type: str, steps) -> np.ndarray | None:
    if steps is None:
        if type == "stepfun":
            raise ValueError("selmodel: type='stepfun' needs the 'steps' argument (metafor: \"Must specify "
                             "'steps' argument for this type of selection model.\")")
        return None
    s = np.atleast_1d(np.asarray(steps, dtype=float))
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"selmodel: steps must be a 1-D sequence of p-values, got {steps!r}")
    bad = np.flatnonzero(~np.isfinite(s) | (s < 0) | (s > 1))
    if bad.size:
        raise ValueError(f"selmodel: steps[{int(bad[0])}] = {s[bad[0]]!r}; steps must be between 0 and 1")
    s = np.unique(s)  # metafor: unique(sort(steps)), 1 appended
    if s[-1] != 1:
        s = np.append(s, 1.0)
    if type not in ("stepfun", "beta") and s.size != 2:
        raise ValueError("selmodel: give a single value in 'steps' for this type of selection model (metafor: "
                         "\"Can only specify a single value for the 'steps' argument\")")
    return s


def _delta_arg(name: str, value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.size == 1:
        a = np.full(n, float(a[0]))
    if a.size != n:
        raise ValueError(f"selmodel: {name} should be of length {n} for this type of selection model, got {a.size}")
    return a


def selmodel(
    fit: RMAResult,
    type: SelType,
    alternative: Alternative = "greater",
    *,
    steps=None,
    delta=None,
    prec: str | None = None,
    scaleprec: bool = True,
    delta_min=None,
    delta_max=None,
    delta_init=None,
    tau2_init: float | None = None,
    pval_min: float | None = None,
) -> SelmodelResult:
    """Fit a selection model to the data and model of `fit`, as metafor 3.8's ``selmodel(x, type,
    alternative, steps, delta, prec, ...)``; see the module's docstring for the likelihood.

    `fit`: a model from `rma` (EE, or any tau^2 estimator: the model is refitted by ML, as metafor; with or
    without moderators; tau^2 may be fixed). `type`: "stepfun" (give `steps`, e.g. (0.025, 0.1, 0.5, 1)),
    "beta", "halfnorm", "negexp", "logistic" or "power". `alternative`: the sidedness of the p-values that
    drive selection. `delta`: fixed values for the selection parameters (NaN = estimate), as metafor's
    `delta`; `prec`: "sei" or "vi" (divided by its maximum unless `scaleprec=False`). `delta_min`,
    `delta_max`, `delta_init`, `tau2_init`, `pval_min`: metafor's control settings of the same names.
    """
    if not isinstance(fit, RMAResult):
        raise TypeError(f"selmodel: fit must be a model fitted by rma(), got {type_name(fit)}")
    if type not in TYPES:
        raise ValueError(f"selmodel: type={type!r} is not one of {list(TYPES)}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"selmodel: alternative={alternative!r} is not one of {list(ALTERNATIVES)}")
    spec = _SPECS[type]
    steps_arr = _check_steps(type, steps)
    if type == "beta" and steps is not None:
        warnings.warn("selmodel: argument 'steps' ignored (not applicable to the beta selection model)",
                      SelmodelWarning, stacklevel=2)
        steps_arr = None
    notes: list[str] = []

    # metafor refits models that are neither ML nor EE with method="ML" (same tau2 if fixed, same control)
    ee = fit.method == "EE"
    if not ee and fit.method != "ML":
        mods = None if fit.p == 1 else fit.X[:, 1:]
        fit = rma(fit.yi, fit.vi, method="ML", mods=mods, level=fit.level,
                  tau2=fit.tau2 if fit.tau2_fixed else None, control=fit.control)
    yi, vi, X = fit.yi, fit.vi, fit.X
    k, p = fit.k, fit.p

    if prec is None:
        preci = np.ones(k)
    elif prec in ("sei", "vi"):
        preci = np.sqrt(vi) if prec == "sei" else vi.copy()
        if scaleprec:
            preci = preci / preci.max()
        if type == "beta":
            warnings.warn("selmodel: argument 'prec' ignored (not applicable to the beta selection model)",
                          SelmodelWarning, stacklevel=2)
            preci = np.ones(k)
    else:
        raise ValueError(f"selmodel: prec={prec!r} must be None, 'sei' or 'vi' (metafor's 'ninv' and "
                         "'sqrtninv' need sample sizes, which an rma fit does not hold)")

    n_delta = spec.n_delta if spec.n_delta is not None else len(steps_arr)
    delta_val = _delta_arg("delta", delta, n_delta)
    delta_val = np.full(n_delta, np.nan) if delta_val is None else delta_val
    if type == "stepfun" and math.isnan(delta_val[0]):
        delta_val[0] = 1.0  # metafor: delta[1] <- 1
    lb = np.full(n_delta, spec.delta_min if spec.lb_excl else 0.0)
    for j, d in enumerate(delta_val):
        if not math.isnan(d) and (d <= lb[j] if spec.lb_excl else d < lb[j]):
            raise ValueError(f"selmodel: delta[{j}] = {d!r} must be {'>' if spec.lb_excl else '>='} "
                             f"{0 if spec.lb_excl else lb[j]:g} for this type of selection model")
    dmin = _delta_arg("delta_min", delta_min, n_delta)
    dmin = np.full(n_delta, spec.delta_min) if dmin is None else dmin
    dmax = _delta_arg("delta_max", delta_max, n_delta)
    dmax = np.full(n_delta, spec.delta_max) if dmax is None else dmax
    if np.any(dmax < dmin):
        raise ValueError("selmodel: delta_max must be >= delta_min")
    fixed_d = ~np.isnan(delta_val)
    eps02 = np.finfo(float).eps ** 0.2
    dmin = np.where(fixed_d & (dmin > delta_val), delta_val - eps02, dmin)
    dmax = np.where(fixed_d & (dmax < delta_val), delta_val + eps02, dmax)
    dinit = _delta_arg("delta_init", delta_init, n_delta)
    dinit = np.full(n_delta, spec.delta_init) if dinit is None else dinit
    dinit = np.where(fixed_d, delta_val, dinit)

    pmin = spec.pval_min if pval_min is None else float(pval_min)
    pvals = np.clip(selmodel_pvalues(yi, vi, alternative), pmin, 1 - pmin)

    tau2_fixed = fit.tau2_fixed
    tau2_val = 0.0 if ee else (fit.tau2 if tau2_fixed else np.nan)
    n_free = p + (0 if ee or tau2_fixed else 1) + int(np.sum(~fixed_d))
    if k < n_free:
        raise ValueError(f"selmodel: number of studies (k={k}) is too small to fit the selection model "
                         f"({n_free} parameters)")

    pgrp = None
    ptable = None
    if steps_arr is not None:
        pgrp = np.searchsorted(steps_arr, pvals, side="left")
        counts = np.bincount(pgrp, minlength=len(steps_arr))
        left = np.concatenate([[0.0], steps_arr[:-1]])
        ptable = {f"{lo:g} < p <= {hi:g}": int(c) for lo, hi, c in zip(left, steps_arr, counts)}
        empty = counts == 0
        if type == "stepfun" and np.any(empty & ~fixed_d):
            raise ValueError("selmodel: one or more intervals of 'steps' contain no observed p-values "
                             f"(studies per interval: {ptable}); metafor stops here too")
        if type != "stepfun" and np.any(empty):
            raise ValueError(f"selmodel: one of the intervals contains no observed p-values ({ptable})")

    prob = _Problem(type=type, alternative=alternative, yi=yi, vi=vi, X=X, preci=preci, steps=steps_arr,
                    pvals=pvals, pgrp=pgrp, pval_min=pmin, delta_val=delta_val, delta_min=dmin, delta_max=dmax,
                    tau2_val=tau2_val)
    beta0 = np.atleast_1d(np.asarray(fit.beta, dtype=float))
    t2_0 = (fit.tau2 + 0.001) if tau2_init is None else float(tau2_init)
    start = np.concatenate([beta0, [t2_0], dinit])
    theta, ll = _maximise(prob, start)
    beta, tau2, delta_hat = prob.unpack(theta)
    if not math.isfinite(ll):
        raise ValueError("selmodel: the likelihood is not finite at any point the optimiser reached")
    at_bound = (delta_hat <= dmin + np.finfo(float).eps ** 0.25) | (delta_hat >= dmax - 100 * np.finfo(float).eps ** 0.25)
    if np.any(at_bound & ~fixed_d):
        warnings.warn("selmodel: one or more 'delta' estimates are (almost) equal to their lower or upper bound; "
                      "treat results with caution (or adjust delta_min / delta_max)", SelmodelWarning, stacklevel=2)
        notes.append("delta estimate at a bound")

    # Hessian of -ll on (beta, tau2, delta); fixed parameters excluded from the inversion (metafor's `hest`).
    # tau2 estimated at its bound 0 is excluded too: the likelihood has no curvature to measure there (metafor's
    # numerical Hessian steps into tau2 < 0, where its likelihood function sets tau2 to 0); the other SEs are
    # then those given tau2 = 0, and se_tau2 is NaN.
    free = _free_mask(prob)
    if free[p] and tau2 == 0.0:
        free[p] = False
        notes.append("tau^2 estimated at its lower bound 0: no SE or Wald interval for tau^2; the other SEs "
                      "are conditional on tau^2 = 0")
    full_theta = np.concatenate([beta, [tau2], delta_hat])

    def negll_full(x):
        return -prob.loglik(x)

    H = np.full((free.size, free.size), np.nan)
    Hf = _scaled_hessian(lambda xf: negll_full(_with(full_theta, free, xf)), full_theta[free],
                         _bounds(prob)[0][free], _bounds(prob)[1][free])
    H[np.ix_(free, free)] = Hf
    cov = np.full((free.size, free.size), np.nan)
    try:
        L = np.linalg.cholesky(Hf)
        inv = np.linalg.inv(L)
        cov[np.ix_(free, free)] = inv.T @ inv
    except np.linalg.LinAlgError:
        warnings.warn("selmodel: the Hessian is not positive definite and could not be inverted (metafor: "
                      "\"Error when trying to invert Hessian.\")", SelmodelWarning, stacklevel=2)
        notes.append("Hessian not invertible")
    vb = cov[:p, :p]
    se_tau2 = float(math.sqrt(cov[p, p])) if free[p] and cov[p, p] >= 0 else math.nan
    vd = cov[p + 1:, p + 1:]

    alpha = 1 - fit.level / 100
    crit = float(-special.ndtri(alpha / 2))
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    pval = 2 * special.ndtr(-np.abs(zval))
    btt = np.arange(1, p) if p > 1 else np.array([0])
    try:
        QM = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    except np.linalg.LinAlgError:
        QM = math.nan
    QMp = float(special.chdtrc(len(btt), QM)) if math.isfinite(QM) else math.nan
    with np.errstate(invalid="ignore"):
        se_delta = np.sqrt(np.diag(vd))
        zval_delta = (delta_hat - spec.H0) / se_delta
    pval_delta = 2 * special.ndtr(-np.abs(zval_delta))
    delta_lb = np.full(n_delta, 0.0)
    ci_lb_delta = np.maximum(delta_hat - crit * se_delta, delta_lb)
    ci_ub_delta = delta_hat + crit * se_delta
    ci_lb_tau2 = max(0.0, tau2 - crit * se_tau2) if math.isfinite(se_tau2) else math.nan
    ci_ub_tau2 = tau2 + crit * se_tau2 if math.isfinite(se_tau2) else math.nan

    # LRT for tau^2 = 0 within the selection model (metafor's "Test for Heterogeneity"), from metafor's starts
    LRT_tau2 = LRTp_tau2 = math.nan
    if not ee and not tau2_fixed:
        prob0 = _Problem(**{**prob.__dict__, "tau2_val": 0.0})
        _t0, ll_h0 = _maximise(prob0, start)
        if math.isfinite(ll_h0):
            LRT_tau2 = max(0.0, -2 * (ll_h0 - ll))
            LRTp_tau2 = float(special.chdtrc(1, LRT_tau2))

    ll0 = float(fit.ll)  # the ML (or EE) fit's log-likelihood, logLik(x, REML = FALSE)
    LRT = max(0.0, -2 * (ll0 - ll))
    LRTdf = int(np.sum(~fixed_d))
    LRTp = float(special.chdtrc(LRTdf, LRT)) if LRTdf > 0 else math.nan
    parms = n_free
    nn = max(k, parms + 2)
    return SelmodelResult(
        type=type, alternative=alternative, steps=steps_arr, k=k, p=p, method=fit.method, level=fit.level,
        coef_names=fit.coef_names, beta=beta.copy(), se=se, zval=zval, pval=pval, ci_lb=beta - crit * se,
        ci_ub=beta + crit * se, vb=vb, tau2=float(tau2), se_tau2=se_tau2, ci_lb_tau2=ci_lb_tau2,
        ci_ub_tau2=ci_ub_tau2, tau2_fixed=bool(tau2_fixed or ee), delta=delta_hat, se_delta=se_delta,
        zval_delta=zval_delta, pval_delta=pval_delta, ci_lb_delta=ci_lb_delta, ci_ub_delta=ci_ub_delta, vd=vd,
        delta_fixed=fixed_d, QM=QM, QMp=QMp, ll=ll, ll0=ll0, LRT=LRT, LRTdf=LRTdf, LRTp=LRTp, LRT_tau2=LRT_tau2,
        LRTp_tau2=LRTp_tau2, parms=parms, deviance=-2 * ll, AIC=-2 * ll + 2 * parms, BIC=-2 * ll + parms * math.log(k),
        AICc=-2 * ll + 2 * parms * nn / (nn - parms - 1), pvals=pvals, ptable=ptable, hessian=H, notes=tuple(notes),
    )


def _with(theta: np.ndarray, free: np.ndarray, xf: np.ndarray) -> np.ndarray:
    out = theta.copy()
    out[free] = xf
    return out


def type_name(x) -> str:
    return type(x).__name__


def _steps_label(x: float) -> str:
    """R's as.character for a p-value step (15 significant digits, no trailing zeros)."""
    return f"{x:.15g}"


def format_selmodel(res: SelmodelResult) -> str:  # noqa: C901 - mirrors print.rma.uni section by section
    """Render a `SelmodelResult` as metafor 3.8's `print.rma.uni` prints an `rma.uni.selmodel` object."""
    from metaexercise.engine.printing import (
        SIGNIF_LEGEND,
        _format_btt,
        _frame_table,
        _vector_table,
        fcf,
        fmt_pval,
        signif_stars,
    )

    L: list[str] = [""]
    ee = res.method == "EE"
    int_only = res.p == 1
    if ee:
        L.append(f"{'Equal-Effects Model' if int_only else 'Fixed-Effects with Moderators Model'} (k = {res.k})")
    else:
        how = "user-specified tau^2 value" if res.tau2_fixed else "tau^2 estimator: ML"
        L.append(f"{'Random-Effects Model' if int_only else 'Mixed-Effects Model'} (k = {res.k}; {how})")
    L.append("")
    eps10 = np.finfo(float).eps * 10
    if not ee:
        se_txt = "" if math.isnan(res.se_tau2) else f" (SE = {fcf(res.se_tau2)})"
        t2 = fcf(res.tau2, 0 if abs(res.tau2) <= eps10 else 4)
        tau = fcf(math.sqrt(res.tau2), 0 if res.tau2 <= eps10 else 4)
        if int_only:
            L.append(f"tau^2 (estimated amount of total heterogeneity): {t2}{se_txt}")
            L.append(f"tau (square root of estimated tau^2 value):      {tau}")
        else:
            L.append(f"tau^2 (estimated amount of residual heterogeneity):     {t2}{se_txt}")
            L.append(f"tau (square root of estimated tau^2 value):             {tau}")
        L.append("")
    if not math.isnan(res.LRT_tau2):
        L.append("Test for Heterogeneity:" if int_only else "Test for Residual Heterogeneity:")
        L.append(f"LRT(df = 1) = {fcf(res.LRT_tau2)}, p-val {fmt_pval(res.LRTp_tau2, showeq=True, sep=' ')}")
        L.append("")
    if res.p > 1 and not math.isnan(res.QM):
        btt = list(range(2, res.p + 1))
        L.append(f"Test of Moderators (coefficient{' ' if len(btt) == 1 else 's '}{_format_btt(btt)}):")
        L.append(f"QM(df = {len(btt)}) = {fcf(res.QM)}, p-val {fmt_pval(res.QMp, showeq=True, sep=' ')}")
        L.append("")
    L += ["Model Results:", ""]
    names = ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub", ""]
    rows = [[fcf(res.beta[j]), fcf(res.se[j]), fcf(res.zval[j]), fmt_pval(res.pval[j]), fcf(res.ci_lb[j]),
             fcf(res.ci_ub[j]), signif_stars(res.pval[j])] for j in range(res.p)]
    L += _vector_table(names, rows[0]) if int_only else _frame_table(list(res.coef_names), names, rows)
    if not math.isnan(res.LRT):
        L += ["", "Test for Selection Model Parameters:",
              f"LRT(df = {res.LRTdf}) = {fcf(res.LRT)}, p-val {fmt_pval(res.LRTp, showeq=True, sep=' ')}"]
    drows = []
    for j in range(res.delta.size):
        r = [fcf(res.delta[j]), fcf(res.se_delta[j]), fcf(res.zval_delta[j]), fmt_pval(res.pval_delta[j]),
             fcf(res.ci_lb_delta[j]), fcf(res.ci_ub_delta[j]), signif_stars(res.pval_delta[j])]
        if res.delta_fixed[j]:
            r = [v if v != "NA" else "---" for v in r]
        drows.append(r)
    if res.type == "stepfun":
        left = [_steps_label(x) for x in np.concatenate([[0.0], res.steps[:-1]])]
        width = max(len(x) for x in left)
        rownames = [f"{lo.ljust(width)} < p <= {_steps_label(hi)}" for lo, hi in zip(left, res.steps)]
        counts = list(res.ptable.values())
        drows = [[str(c), *r] for c, r in zip(counts, drows)]
        dnames = ["k", *names]
    else:
        rownames = [f"delta.{j + 1}" for j in range(res.delta.size)]
        dnames = names
    L += ["", "Selection Model Results:", ""]
    L += _vector_table(dnames, drows[0]) if res.delta.size == 1 else _frame_table(rownames, dnames, drows)
    L += ["", "---", SIGNIF_LEGEND, ""]
    return "\n".join(L) + "\n"


__all__ = ["ALTERNATIVES", "TYPES", "SelmodelResult", "SelmodelWarning", "hessian", "selmodel",
           "selmodel_pvalues", "weight_function"]
