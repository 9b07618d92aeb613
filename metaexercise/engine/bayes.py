"""Bayesian random-effects meta-analysis by numerical integration: `bayesmeta`, the normal-normal
hierarchical model as computed by R's bayesmeta 3.4 (Roever 2020, J Stat Softw 93(6),
doi:10.18637/jss.v093.i06).

Model (Roever 2020, Sec. 2.1): y_i | theta_i ~ N(theta_i, sigma_i^2), theta_i | mu, tau ~ N(mu, tau^2),
with a prior p(tau) (`bayes_priors`) and for mu either the improper uniform prior or N(mu_p, sigma_p^2).

* Conditionally on tau, mu is normal (Sec. 2.4, eqs. 10-11): with w_i = 1 / (sigma_i^2 + tau^2) (and the
  prior counted as one more "study" y_0 = mu_p, w_0 = 1 / sigma_p^2 when mu's prior is normal),
  mu | tau, y ~ N(sum w y / sum w, 1 / sum w); a new study's theta_{k+1} | tau, y ~ N(same mean,
  1 / sum w + tau^2) (Sec. 2.7).
* The marginal likelihood of tau, mu integrated out, is in closed form (Sec. 2.3; bayesmeta's
  `likelihood(tau=...)`): log p(y | tau) = -1/2 [(n - 1) log 2 pi + sum log(1 / w) + sum w (y - mu_hat)^2
  + log sum w], n the number of terms (k, or k + 1 with the normal prior);
  p(tau | y) is proportional to p(tau) p(y | tau).
* The marginal posterior of mu (and the predictive distribution of theta_{k+1}) is the mixture of these
  conditional normals over p(tau | y) (Sec. 2.4). bayesmeta approximates the mixture by a grid with bounded
  Kullback-Leibler divergence between neighbours (Roever & Friede 2017, J Comput Graph Stat 26:217); here the
  mixing integral is done by globally adaptive quadrature instead (`_adaptive_panels`: 20-point
  Gauss-Legendre panels on the compact variable x = tau / (c + tau), bisected until the normalising
  constant, the first two moments and the CDF and density of mu and theta on grids spanning their
  distributions are all accurate to 1e-10 relative), and every later integral uses the same panels.
  Integrals over tau itself (CDF, quantiles) are evaluated on those panels too, to the same accuracy.
* Summaries as bayesmeta's `$summary`: mode, median, mean, sd and the 95% interval of tau, mu and theta;
  intervals are the shortest ones by default (bayesmeta's `interval.type="shortest"`, Sec. 2.9) or central.
* Maximum-likelihood and maximum-a-posteriori estimates, marginal likelihood and Bayes factors as
  bayesmeta's `$ML`, `$MAP`, `$marginal.likelihood` and `$bayesfactor` (Sec. 2.6, 2.8).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from metaexercise.engine.bayes_priors import TauPrior, resolve_tau_prior

LOG_2PI = math.log(2 * math.pi)
LOG_SQRT_2PI = 0.5 * LOG_2PI

#: relative accuracy of the adaptive quadrature over tau
REL_TOL = 1e-10
_GL_T, _GL_W = np.polynomial.legendre.leggauss(20)
_SUMMARY_ROWS = ["mode", "median", "mean", "sd", "95% lower", "95% upper"]
_SUMMARY_COLS = ["tau", "mu", "theta"]


# --------------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------------


def _vector(name: str, x) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"bayesmeta: {name} must be numbers, got {x!r}") from None
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"bayesmeta: {name} must be one-dimensional, got shape {a.shape}")
    return a


def _inputs(yi, vi, sei) -> tuple[np.ndarray, np.ndarray]:
    y = _vector("yi", yi)
    if (vi is None) == (sei is None):
        raise ValueError("bayesmeta: give exactly one of vi (sampling variances) and sei (standard errors)")
    name = "vi" if sei is None else "sei"
    given = _vector(name, vi if sei is None else sei)
    v = given if sei is None else given**2
    if y.size == 0:
        raise ValueError("bayesmeta: yi is empty; at least one study is needed")
    if v.shape != y.shape:
        raise ValueError(f"bayesmeta: yi has {y.size} studies but {name} has {v.size}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(f"bayesmeta: yi[{bad[0]}] = {float(y[bad[0]])!r} is not finite")
    bad = np.flatnonzero(~(np.isfinite(given) & (given > 0) & (v > 0)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"bayesmeta: {name}[{j}] = {float(given[j])!r}; it must be positive and finite")
    if np.sqrt(v.max() / v.min()) > 1e6:
        raise ValueError("bayesmeta: the largest standard error is more than 1e6 times the smallest; rescale or "
                         "remove the dominating study (bayesmeta warns from a ratio of 1000 on)")
    return y, v


def _mu_prior(mu_prior) -> tuple[float, float] | None:
    if mu_prior is None:
        return None
    try:
        mean, sd = (float(x) for x in mu_prior)
    except (TypeError, ValueError):
        raise TypeError(f"bayesmeta: mu_prior must be None (uniform) or (mean, sd), got {mu_prior!r}") from None
    if not math.isfinite(mean):
        raise ValueError(f"bayesmeta: mu_prior mean = {mean!r} must be finite")
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"bayesmeta: mu_prior sd = {sd!r} must be positive and finite")
    return mean, sd


# --------------------------------------------------------------------------------------------------
# the model as functions of tau (vectorised over tau; bayesmeta's conditionalmoment and likelihood)
# --------------------------------------------------------------------------------------------------


class _Model:
    """The normal-normal hierarchical model for one data set."""

    def __init__(self, y: np.ndarray, v: np.ndarray, mu_prior: tuple[float, float] | None):
        self.y = y
        self.v = v
        self.k = y.size
        self.mu_prior = mu_prior
        self.n_terms = self.k + (mu_prior is not None)
        #: scale of the data: sqrt of Higgins & Thompson's typical within-study variance
        w = 1 / v
        s2 = (self.k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum()) if self.k > 1 else float(v[0])
        self.s2hat = float(s2)
        self.scale = math.sqrt(self.s2hat)
        self._chunk = max(1, 2_000_000 // self.k)

    def conditional(self, tau) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance) of mu | tau, y and log p(y | tau), for an array of tau >= 0."""
        tau = np.asarray(tau, dtype=float)
        flat = tau.reshape(-1)
        mean = np.empty(flat.shape)
        var = np.empty(flat.shape)
        ll = np.empty(flat.shape)
        for i in range(0, flat.size, self._chunk):
            t2 = flat[i:i + self._chunk, None] ** 2
            tot = self.v[None, :] + t2
            w = 1 / tot
            sw = w.sum(1)
            swy = w @ self.y
            logdet = np.log(tot).sum(1)
            if self.mu_prior is not None:
                m0, s0 = self.mu_prior
                sw = sw + 1 / s0**2
                swy = swy + m0 / s0**2
                logdet = logdet + 2 * math.log(s0)
            m = swy / sw
            q = np.einsum("ij,ij->i", w, (self.y[None, :] - m[:, None]) ** 2)
            if self.mu_prior is not None:
                q = q + (m0 - m) ** 2 / s0**2
            mean[i:i + self._chunk] = m
            var[i:i + self._chunk] = 1 / sw
            ll[i:i + self._chunk] = -0.5 * ((self.n_terms - 1) * LOG_2PI + logdet + q + np.log(sw))
        shape = tau.shape
        ll = np.where(flat.reshape(shape) >= 0, ll.reshape(shape), -np.inf)
        return mean.reshape(shape), var.reshape(shape), ll

    def loglik_joint(self, tau, mu) -> np.ndarray:
        """log p(y | tau, mu) (bayesmeta's likelihood(tau=, mu=))."""
        tau, mu = np.broadcast_arrays(np.asarray(tau, dtype=float), np.asarray(mu, dtype=float))
        tot = self.v + tau[..., None] ** 2
        out = -0.5 * (self.k * LOG_2PI + np.log(tot).sum(-1) + ((self.y - mu[..., None]) ** 2 / tot).sum(-1))
        return np.where(tau >= 0, out, -np.inf)

    def profile_ml(self, tau) -> np.ndarray:
        """log p(y | tau, mu_hat(tau)) with mu_hat the weighted mean without prior: the profile likelihood."""
        tau = np.asarray(tau, dtype=float)
        tot = self.v + tau[..., None] ** 2
        w = 1 / tot
        m = (w * self.y).sum(-1) / w.sum(-1)
        return self.loglik_joint(tau, m)

    def mu_prior_logpdf(self, mu) -> np.ndarray:
        mu = np.asarray(mu, dtype=float)
        if self.mu_prior is None:
            return np.zeros_like(mu)
        m0, s0 = self.mu_prior
        return -LOG_SQRT_2PI - math.log(s0) - 0.5 * ((mu - m0) / s0) ** 2


# --------------------------------------------------------------------------------------------------
# one-dimensional maximisation over tau >= 0 (modes, ML and MAP estimates)
# --------------------------------------------------------------------------------------------------


def _tau_grid(scale: float) -> np.ndarray:
    return np.concatenate(([0.0], scale * np.logspace(-10, 6, 321)))


def _maximize_tau(fun: Callable[[np.ndarray], np.ndarray], scale: float) -> tuple[float, float]:
    """argmax and max of fun (vectorised) over tau >= 0: a log grid spanning 16 decades around the data's
    scale, then Brent's method between the neighbours of the best grid point; tau = 0 wins ties (as
    bayesmeta's checks of the margin)."""
    grid = _tau_grid(scale)
    with np.errstate(all="ignore"):
        vals = np.asarray(fun(grid), dtype=float)
    vals = np.where(np.isnan(vals), -np.inf, vals)
    if np.isposinf(vals[0]):
        return 0.0, math.inf
    j = int(np.argmax(vals))
    lo = grid[max(j - 1, 0)]
    hi = grid[min(j + 1, grid.size - 1)]

    def neg(t):
        with np.errstate(all="ignore"):
            r = float(np.asarray(fun(np.array([t])), dtype=float)[0])
        return -r if math.isfinite(r) else math.inf

    res = optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-13 * max(hi, 1e-300), "maxiter": 500})
    best_t, best_v = (float(res.x), -float(res.fun)) if -res.fun >= vals[j] else (float(grid[j]), float(vals[j]))
    if vals[0] >= best_v:
        return 0.0, float(vals[0])
    return best_t, best_v


# --------------------------------------------------------------------------------------------------
# the posterior of tau and the quadrature rule for mixtures over it
# --------------------------------------------------------------------------------------------------


_GL10_T, _GL10_W = np.polynomial.legendre.leggauss(10)


def _adaptive_panels(vector: Callable[[np.ndarray], np.ndarray], points: np.ndarray, rel_tol: float,
                     max_panels: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    """Panels of [0, 1] on which 20-point Gauss-Legendre integrates every component of `vector` (a function
    of an array of x returning one row per x) to `rel_tol` relative to the largest component's integral.
    Each panel's error is estimated by comparing its 20-point with its 10-point Gauss-Legendre value (the
    error of the 10-point rule, so the 20-point result is far better than the estimate); panels are bisected
    until the estimated errors add up to at most the tolerance (as QUADPACK's and scipy's quad_vec's
    globally adaptive bisection, evaluated panel-parallel)."""
    edges = np.unique(np.concatenate(([0.0, 1.0], points)))
    lo, hi = edges[:-1], edges[1:]
    done_lo, done_hi, done_val, done_err = [], [], [], []
    total_done = 0.0
    for _ in range(80):
        half = (hi - lo)[:, None] / 2
        mid = (hi + lo)[:, None] / 2
        x20 = (mid + half * _GL_T[None, :]).reshape(-1)
        x10 = (mid + half * _GL10_T[None, :]).reshape(-1)
        f = vector(np.concatenate((x20, x10)))
        n = lo.size
        f20 = f[: n * _GL_T.size].reshape(n, _GL_T.size, -1)
        f10 = f[n * _GL_T.size:].reshape(n, _GL10_T.size, -1)
        i20 = np.einsum("pj,pjc->pc", half * _GL_W[None, :], f20)
        i10 = np.einsum("pj,pjc->pc", half * _GL10_W[None, :], f10)
        err = np.max(np.abs(i20 - i10), axis=1)
        total = total_done + i20.sum(0) if done_val else i20.sum(0)
        scale = max(float(np.max(np.abs(total))), 1e-300)
        budget = rel_tol * scale
        spent = sum(done_err)
        if spent + err.sum() <= budget or lo.size + len(done_lo) > max_panels:
            if spent + err.sum() > budget:
                warnings.warn(f"bayesmeta: the integral over tau stopped at {max_panels} panels with estimated "
                              f"relative error {(spent + err.sum()) / scale:.1e}", RuntimeWarning, stacklevel=4)
            done_lo.extend(lo)
            done_hi.extend(hi)
            break
        # keep panels whose error is already small next to their share of the budget; bisect the others
        fine = err <= 0.1 * budget / max(lo.size, 1)
        done_lo.extend(lo[fine])
        done_hi.extend(hi[fine])
        done_val.append(i20[fine].sum(0))
        total_done = np.sum(done_val, axis=0)
        done_err.append(float(err[fine].sum()))
        lo, hi = lo[~fine], hi[~fine]
        m = (lo + hi) / 2
        lo, hi = np.concatenate((lo, m)), np.concatenate((m, hi))
    order = np.argsort(done_lo)
    return np.asarray(done_lo)[order], np.asarray(done_hi)[order]


class _TauPosterior:
    """p(tau | y) on panels of x = tau / (c + tau) chosen by adaptive quadrature, with a 20-point
    Gauss-Legendre rule on each panel: `tau`, `weight` (normalised posterior weights), the conditional
    moments at the nodes, and the CDF and quantiles of tau."""

    def __init__(self, model: _Model, prior: TauPrior, rel_tol: float = REL_TOL):
        self.model = model
        self.prior = prior
        s = model.scale
        # preliminary look on a log grid (with the prior's quantiles, if it has them): mode, scale, range
        grid = _tau_grid(s)[1:]
        if prior.ppf is not None:
            with np.errstate(all="ignore"):
                q = np.asarray(prior.ppf(np.array([1e-9, 1e-6, 1e-3, 0.1, 0.5, 0.9, 1 - 1e-3, 1 - 1e-6])), float)
            grid = np.unique(np.concatenate((grid, q[np.isfinite(q) & (q > 0)])))
        lp = self.logpost(grid)
        if not np.any(np.isfinite(lp)):
            raise ValueError(f"bayesmeta: the posterior density of tau is zero or undefined everywhere (prior "
                             f"{prior.label})")
        mode, lpmode = _maximize_tau(self.logpost, s)
        self.lpmax = float(lpmode) if math.isfinite(lpmode) else float(np.max(lp))
        with np.errstate(under="ignore"):
            mass = np.exp(lp - np.max(lp)) * grid  # posterior mass per unit log tau
        cum = np.cumsum(mass)
        self.c = max(float(grid[int(np.searchsorted(cum, 0.5 * cum[-1]))]), s * 1e-8)
        self._check_proper()
        # breakpoints: the grid where the posterior matters, and a ladder around its mode
        keep = grid[lp > np.max(lp) - 80]
        if keep.size > 80:
            keep = keep[np.linspace(0, keep.size - 1, 80).astype(int)]
        ladder = np.array([])
        if mode > 0:
            h = 1e-4
            with np.errstate(all="ignore"):
                l3 = self.logpost(mode * np.exp(np.array([-h, 0.0, h])))
            curv = -(l3[0] - 2 * l3[1] + l3[2]) / h**2
            width = min(1 / math.sqrt(curv), 2.0) if curv > 0 and math.isfinite(curv) else 0.5
            ladder = mode * np.exp(width * np.arange(-8, 9) / 2)
        points = self.to_x(np.concatenate((keep, ladder)))
        points = np.unique(points[(points > 0) & (points < 1)])
        # moments and grids of mu and theta used to steer the adaptive quadrature (from the bulk of the
        # preliminary grid: a heavy tail of tau would otherwise blow up theta's spread)
        w0 = np.where(cum <= 0.999 * cum[-1], mass, 0.0)
        w0 = w0 / w0.sum() if w0.sum() > 0 else mass / mass.sum()
        m, var, _ = model.conditional(grid)
        mu_mean = float(np.sum(w0 * m))
        mu_sd = math.sqrt(float(np.sum(w0 * (var + (m - mu_mean) ** 2))))
        th_sd = math.sqrt(float(np.sum(w0 * (var + grid**2 + (m - mu_mean) ** 2))))
        z_mu = mu_mean + mu_sd * np.linspace(-8, 8, 25)
        z_th = mu_mean + th_sd * np.linspace(-8, 8, 25)
        moments = np.array([j for j in (1, 2) if self.moment_finite[j]], dtype=float)
        # Var(mu | tau) = 1 / sum w grows like tau^2 / k under the uniform mu prior: mu's variance is finite only
        # with E tau^2 (a normal prior bounds it by its own variance)
        var_mu_finite = model.mu_prior is not None or self.moment_finite[2]
        self.variance_finite = {"mu": var_mu_finite, "theta": self.moment_finite[2]}

        def vector(x):
            """the integrand's components at the nodes x (rows): 1, moments of mu, theta and tau, and the CDF
            and density of mu and theta on the grids z_mu and z_th, each scaled to be of order 1."""
            t = self.to_tau(x)
            mm, vv, ll = model.conditional(np.where(np.isfinite(t), t, 0.0))
            hx = self._h(x, t, ll)
            sd = np.sqrt(vv)[:, None]
            sp = np.sqrt(vv + np.where(np.isfinite(t), t, 0.0) ** 2)[:, None]
            zm = (z_mu[None, :] - mm[:, None]) / sd
            zt = (z_th[None, :] - mm[:, None]) / sp
            d = ((mm - mu_mean) / mu_sd)[:, None]
            with np.errstate(over="ignore", invalid="ignore"):
                tc = np.where(np.isfinite(t), t / self.c, 0.0)[:, None] ** moments[None, :]
            second = [sd**2 / mu_sd**2] if var_mu_finite else []  # E[Var(mu | tau)] may be infinite
            if self.moment_finite[2]:
                second.append(sp**2 / th_sd**2)
            parts = np.hstack([np.ones_like(d), d, d * d, *second, tc,
                               special.ndtr(zm), np.exp(-0.5 * zm * zm) * mu_sd / sd,
                               special.ndtr(zt), np.exp(-0.5 * zt * zt) * th_sd / sp])
            return np.where(hx[:, None] > 0, hx[:, None] * parts, 0.0)

        self.lo, self.hi = _adaptive_panels(vector, points, rel_tol)
        half = (self.hi - self.lo)[:, None] / 2
        x = ((self.lo + self.hi)[:, None] / 2 + half * _GL_T[None, :])
        wx = half * _GL_W[None, :]
        t = self.to_tau(x.reshape(-1))
        with np.errstate(all="ignore"):  # nodes at x = 1 to rounding: tau = inf, weight 0, dropped below
            mean, var, ll = model.conditional(np.where(np.isfinite(t), t, 0.0))
        hx = self._h(x.reshape(-1), t, ll)
        raw = hx * wx.reshape(-1)
        z = raw.sum()
        if not (z > 0 and math.isfinite(z)):
            raise ValueError("bayesmeta: the posterior of tau could not be normalised")
        self.Z = float(z)
        self.log_norm = self.lpmax + math.log(z)  # log of int p(tau) p(y | tau) dtau
        self.tau = np.where(np.isfinite(t), t, 0.0)  # (weight 0 there)
        self.weight = raw / z
        self.mean = mean
        self.var = var
        panel = self.weight.reshape(-1, _GL_T.size).sum(1)
        self.cum_before = np.concatenate(([0.0], np.cumsum(panel)[:-1]))
        self.cum_after = np.concatenate((np.cumsum(panel[::-1])[::-1][1:], [0.0]))

    # ---- the density and the map between tau and x

    def logpost(self, tau) -> np.ndarray:
        """log p(tau) + log p(y | tau), unnormalised."""
        tau = np.asarray(tau, dtype=float)
        _m, _v, ll = self.model.conditional(np.where(np.isfinite(tau), np.maximum(tau, 0), 0.0))
        with np.errstate(invalid="ignore"):
            out = self.prior.logpdf(tau) + ll
        return np.where(np.isfinite(tau) & (tau >= 0), np.where(np.isnan(out), -np.inf, out), -np.inf)

    def to_x(self, tau):
        tau = np.asarray(tau, dtype=float)
        return np.where(np.isinf(tau), 1.0, tau / (self.c + tau))

    def to_tau(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x < 1, self.c * x / (1 - x), np.inf)

    def _h(self, x, t, ll) -> np.ndarray:
        """integrand in x: p(tau | y) dtau/dx, scaled by exp(-lpmax)."""
        with np.errstate(all="ignore"):
            lp = self.prior.logpdf(t) + ll
            out = np.exp(lp - self.lpmax) * self.c / (1 - x) ** 2
        return np.where((x > 0) & (x < 1) & np.isfinite(out), out, 0.0)

    def _check_proper(self):
        """The posterior must integrate at 0 and at infinity; the moments E tau^j exist when its tail falls
        faster than tau^-(j+1). Judged from the local power of the density far out (prior x likelihood
        behave as powers of tau there, up to logarithmic factors)."""
        c = self.c
        with np.errstate(all="ignore"):
            hi = self.logpost(np.array([c * 1e7, c * 1e9]))
            lo = self.logpost(np.array([c * 1e-13, c * 1e-11]))
        up = (hi[1] - hi[0]) / math.log(100) if np.all(np.isfinite(hi)) else -math.inf
        down = (lo[1] - lo[0]) / math.log(100) if np.all(np.isfinite(lo)) else math.inf
        if np.isnan(up):
            up = -math.inf
        if up >= -1.0005:
            raise ValueError(f"bayesmeta: the posterior of tau is improper: its density falls off like tau^{up:.2f} "
                             f"(k = {self.model.k} studies, tau prior {self.prior.label}, mu prior "
                             f"{'uniform' if self.model.mu_prior is None else 'normal'}); use a proper tau prior "
                             "or more studies")
        if not down > -0.9995:
            raise ValueError(f"bayesmeta: the posterior of tau is improper at tau = 0 (its density grows like "
                             f"tau^{down:.2f}); the tau prior {self.prior.label} cannot be normalised there")
        self.tail_power = up
        self.moment_finite = {1: up < -2.0005, 2: up < -3.0005}

    # ---- tau: density, CDF, quantiles

    def density(self, tau) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.exp(self.logpost(tau) - self.log_norm)

    def _partial(self, x: np.ndarray, upper: bool, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """mass of tau between the start of x's panel and x (upper=False), or between x and the panel's end;
        the panel is the one containing x unless `idx` names it."""
        if idx is None:
            idx = np.clip(np.searchsorted(self.lo, x, side="right") - 1, 0, self.lo.size - 1)
        a = np.where(upper, x, self.lo[idx])
        b = np.where(upper, self.hi[idx], x)
        half = (b - a)[:, None] / 2
        xs = (a + b)[:, None] / 2 + half * _GL_T[None, :]
        t = self.to_tau(xs.reshape(-1))
        _m, _v, ll = self.model.conditional(np.where(np.isfinite(t), t, 0.0))
        hx = self._h(xs.reshape(-1), t, ll).reshape(xs.shape)
        part = (hx * (half * _GL_W[None, :])).sum(1) / self.Z
        return idx, part

    def cdf(self, tau, upper: bool = False) -> np.ndarray:
        """P(tau' <= tau | y), or P(tau' > tau | y) with upper=True (no cancellation in either tail)."""
        tau = np.asarray(tau, dtype=float)
        flat = tau.reshape(-1)
        out = np.empty(flat.shape)
        neg = ~(flat > 0)
        big = np.isposinf(flat)
        mid = ~neg & ~big
        out[neg] = 1.0 if upper else 0.0
        out[big] = 0.0 if upper else 1.0
        if np.any(mid):
            x = self.to_x(flat[mid])
            idx, part = self._partial(x, upper)
            out[mid] = (self.cum_after[idx] if upper else self.cum_before[idx]) + part
        return np.clip(out, 0.0, 1.0).reshape(tau.shape)

    def quantile(self, p: float) -> float:
        if not 0 <= p <= 1:
            raise ValueError(f"qposterior: tau_p = {p!r} must be a probability")
        if p == 0:
            return 0.0
        if p == 1:
            return math.inf
        upper = p > 0.5
        target = 1 - p if upper else p
        if upper:  # the first panel with no more than `target` beyond it
            j = int(np.argmax(self.cum_after <= target))
            rest = target - self.cum_after[j]
        else:  # the last panel with no more than `target` before it
            j = min(max(int(np.searchsorted(self.cum_before, target, side="right")) - 1, 0), self.lo.size - 1)
            rest = target - self.cum_before[j]

        panel = np.array([j])

        def f(x):
            return float(self._partial(np.array([x]), upper, panel)[1][0]) - rest

        a, b = self.lo[j], self.hi[j]
        fa, fb = f(a), f(b)
        if fa * fb >= 0:  # the quantile is a panel edge (to rounding)
            return float(self.to_tau(a if abs(fa) <= abs(fb) else b))
        x = optimize.brentq(f, a, b, xtol=1e-16, rtol=4 * np.finfo(float).eps, maxiter=200)
        return float(self.to_tau(x))

    # ---- mixtures over tau: mu and theta

    def mixture(self, predict: bool) -> tuple[np.ndarray, np.ndarray]:
        sd = np.sqrt(self.var + self.tau**2) if predict else np.sqrt(self.var)
        return self.mean, sd


# --------------------------------------------------------------------------------------------------
# distributions of one variable: shared quantile and interval logic
# --------------------------------------------------------------------------------------------------


class _Mixture:
    """A finite normal mixture sum_j w_j N(m_j, s_j^2) (the marginal posterior of mu, or the predictive
    distribution of theta): density, CDF, quantiles, mode."""

    def __init__(self, weight, mean, sd, variance_finite: bool = True):
        keep = (weight > 0) & np.isfinite(mean) & np.isfinite(sd)
        self.w = weight[keep]
        self.m = mean[keep]
        self.s = sd[keep]
        self.mu = float(np.sum(self.w * self.m))
        #: the spread used to bracket quantiles, and the reported sd (infinite when the variance is)
        self.scale = math.sqrt(float(np.sum(self.w * (self.s**2 + (self.m - self.mu) ** 2))))
        self.sd = self.scale if variance_finite else math.inf

    def pdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        z = (x.reshape(-1, 1) - self.m) / self.s
        return (np.exp(-0.5 * z * z - LOG_SQRT_2PI) / self.s @ self.w).reshape(x.shape)

    def dpdf(self, x: float) -> float:
        z = (x - self.m) / self.s
        return float(np.sum(self.w * np.exp(-0.5 * z * z - LOG_SQRT_2PI) * (-z) / self.s**2))

    def cdf(self, x, upper: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        z = (x.reshape(-1, 1) - self.m) / self.s
        return np.clip(special.ndtr(-z if upper else z) @ self.w, 0.0, 1.0).reshape(x.shape)

    def quantile(self, p: float) -> float:
        if not 0 <= p <= 1:
            raise ValueError(f"qposterior: mu_p = {p!r} must be a probability")
        if p == 0:
            return -math.inf
        if p == 1:
            return math.inf
        upper = p > 0.5
        target = 1 - p if upper else p

        def f(x):
            return float(self.cdf(x, upper)[()]) - target if not upper else target - float(self.cdf(x, True)[()])

        lo, hi = self.mu - 10 * self.scale, self.mu + 10 * self.scale
        for i in range(200):  # heavy tails (tau's posterior falling like a power): widen geometrically
            if f(lo) < 0:
                break
            lo -= 10 * self.scale * 2.0**i
        for i in range(200):
            if f(hi) > 0:
                break
            hi += 10 * self.scale * 2.0**i
        return float(optimize.brentq(f, lo, hi, xtol=1e-15 * max(1.0, self.scale), rtol=4 * np.finfo(float).eps,
                                     maxiter=300))

    def mode(self) -> float:
        a, b = self.quantile(0.1), self.quantile(0.9)
        if self.dpdf(a) > 0 > self.dpdf(b):
            return float(optimize.brentq(self.dpdf, a, b, xtol=1e-15 * max(1.0, self.scale), rtol=1e-15,
                                         maxiter=300))
        res = optimize.minimize_scalar(lambda x: -float(self.pdf(x)), bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-12 * self.scale})
        return float(res.x)


def _shortest(logpdf: Callable[[float], float], cdf: Callable[[float], float],
              quantile: Callable[[float], float], level: float, lower_edge: float | None) -> tuple[float, float]:
    """The shortest interval with probability `level` of a unimodal density: the a with f(a) = f(b(a)),
    b(a) = Q(F(a) + level) (Roever 2020, Sec. 2.9); [edge, Q(level)] when the density is highest at the
    edge of its support (tau = 0)."""
    if lower_edge is not None:
        b0 = quantile(level)
        if logpdf(lower_edge) >= logpdf(b0):
            return lower_edge, b0

    def g(a):
        b = quantile(min(cdf(a) + level, 1.0))
        return logpdf(a) - logpdf(b)

    a_lo = quantile((1 - level) * 1e-6)
    a_hi = quantile((1 - level) * (1 - 1e-6))
    ga, gb = g(a_lo), g(a_hi)
    if not (ga < 0 < gb):  # not unimodal as assumed: minimise the width directly (bayesmeta's optimize)
        res = optimize.minimize_scalar(lambda a: quantile(min(cdf(a) + level, 1.0)) - a, bounds=(a_lo, a_hi),
                                       method="bounded", options={"xatol": 1e-12 * max(1.0, abs(a_hi - a_lo))})
        a = float(res.x)
    else:
        a = float(optimize.brentq(g, a_lo, a_hi, xtol=1e-15 * max(1.0, abs(a_hi - a_lo)), rtol=1e-15,
                                  maxiter=300))
    b = quantile(min(cdf(a) + level, 1.0))
    if lower_edge is not None and quantile(level) - lower_edge <= b - a:  # as bayesmeta: the edge may win
        return lower_edge, quantile(level)
    return a, b


# --------------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------------


def _level(name: str, level) -> float:
    x = float(level)
    if not 0 < x < 1:
        raise ValueError(f"post_interval: {name} = {level!r} must be a probability between 0 and 1 (e.g. 0.95)")
    return x


def _r_format(values: Sequence[float], digits: int = 7) -> list[str]:
    """Numbers of one column as R's print formats a numeric matrix column: one number of decimals, enough
    for `digits` significant digits in every entry (trailing zeros dropped)."""
    decimals = 0
    for x in values:
        if not math.isfinite(x) or x == 0:
            continue
        e = math.floor(math.log10(abs(x)))
        d = max(0, digits - 1 - e)
        s = f"{abs(x):.{d}f}".rstrip("0")
        need = len(s.split(".")[1]) if "." in s else 0
        decimals = max(decimals, need)
    out = []
    for x in values:
        if math.isnan(x):
            out.append("NA")
        elif math.isinf(x):
            out.append("Inf" if x > 0 else "-Inf")
        else:
            out.append(f"{x:.{decimals}f}")
    return out


def _r_matrix(frame: pd.DataFrame) -> str:
    cols = {c: _r_format([float(v) for v in frame[c]]) for c in frame.columns}
    rowname_w = max(len(str(r)) for r in frame.index)
    widths = {c: max(len(c), *(len(s) for s in cols[c])) for c in frame.columns}
    lines = [" " * rowname_w + "".join(" " + c.rjust(widths[c]) for c in frame.columns)]
    for i, r in enumerate(frame.index):
        lines.append(str(r).ljust(rowname_w) + "".join(" " + cols[c][i].rjust(widths[c]) for c in frame.columns))
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class BayesMetaResult:
    """The posterior of the normal-normal hierarchical model (bayesmeta's 'bayesmeta' object).

    `summary`: DataFrame with rows mode, median, mean, sd, "95% lower", "95% upper" and columns tau, mu,
    theta (a new study's effect, the posterior predictive distribution). `ML` and `MAP`: rows joint and
    marginal, columns tau and mu. `marginal_likelihood` (NaN unless both priors are proper, as bayesmeta) and
    `bayesfactor` (rows actual, minimum; columns "tau=0", "mu=0"). Functions: dposterior, pposterior,
    qposterior, post_interval, cond_moment, prob_exceeds, dprior, likelihood, I2."""

    y: np.ndarray
    sigma: np.ndarray
    labels: tuple[str, ...]
    tau_prior: TauPrior
    mu_prior: tuple[float, float] | None
    interval_type: str
    summary: pd.DataFrame
    ML: pd.DataFrame
    MAP: pd.DataFrame
    marginal_likelihood: float
    bayesfactor: pd.DataFrame
    _model: _Model
    _post: _TauPosterior
    _mu: _Mixture
    _theta: _Mixture

    @property
    def k(self) -> int:
        return int(self.y.size)

    # ---- densities and probabilities (bayesmeta's dposterior, pposterior, qposterior)

    def dposterior(self, tau=None, mu=None, *, theta=None, predict: bool = False, log: bool = False):
        """Posterior density: of tau (tau given), of mu (mu given; of a new study's theta with predict=True
        or theta=...), or the joint density of (tau, mu) when both are given."""
        mu, predict = self._theta_alias(mu, theta, predict)
        if tau is None and mu is None:
            raise ValueError("dposterior: give tau, mu (or theta), or both")
        if tau is not None and mu is not None:
            if predict:
                raise ValueError("dposterior: predict applies to the marginal density of mu only")
            t, m = np.broadcast_arrays(np.asarray(tau, dtype=float), np.asarray(mu, dtype=float))
            with np.errstate(all="ignore"):
                lp = (self.tau_prior.logpdf(t) + self._model.mu_prior_logpdf(m) + self._model.loglik_joint(t, m)
                      - self._post.log_norm)
            out = np.where(t >= 0, lp, -np.inf)
        elif tau is not None:
            t = np.asarray(tau, dtype=float)
            with np.errstate(all="ignore"):
                out = self._post.logpost(t) - self._post.log_norm
        else:
            mix = self._theta if predict else self._mu
            with np.errstate(divide="ignore"):
                out = np.log(mix.pdf(np.asarray(mu, dtype=float)))
        if log:
            return out
        with np.errstate(under="ignore"):
            return np.exp(out)

    def pposterior(self, tau=None, mu=None, *, theta=None, predict: bool = False, upper: bool = False):
        """Posterior CDF of tau or mu (or theta); upper=True gives the upper tail P(X > x) without the
        cancellation of 1 - CDF."""
        mu, predict = self._theta_alias(mu, theta, predict)
        if (tau is None) == (mu is None):
            raise ValueError("pposterior: give either tau or mu (or theta), not both")
        if tau is not None:
            return self._post.cdf(np.asarray(tau, dtype=float), upper)
        mix = self._theta if predict else self._mu
        return mix.cdf(np.asarray(mu, dtype=float), upper)

    def qposterior(self, tau_p=None, mu_p=None, *, theta_p=None, predict: bool = False):
        """Posterior quantiles of tau or mu (or theta)."""
        if theta_p is not None:
            if mu_p is not None:
                raise ValueError("qposterior: give mu_p or theta_p, not both")
            mu_p, predict = theta_p, True
        if (tau_p is None) == (mu_p is None):
            raise ValueError("qposterior: give either tau_p or mu_p (or theta_p), not both")
        p = np.asarray(tau_p if tau_p is not None else mu_p, dtype=float)
        if tau_p is not None:
            fun = self._post.quantile
        else:
            fun = (self._theta if predict else self._mu).quantile
        return np.array([fun(float(x)) for x in p.reshape(-1)]).reshape(p.shape)

    def post_interval(self, tau_level=None, mu_level=None, *, theta_level=None, method: str | None = None,
                      predict: bool = False) -> tuple[float, float]:
        """A credible interval for tau or mu, or a prediction interval for theta (predict=True or
        theta_level); method "shortest" or "central" (default: the result's interval_type)."""
        if theta_level is not None:
            if mu_level is not None:
                raise ValueError("post_interval: give mu_level or theta_level, not both")
            mu_level, predict = theta_level, True
        if (tau_level is None) == (mu_level is None):
            raise ValueError("post_interval: give either tau_level or mu_level (or theta_level), not both")
        method = self.interval_type if method is None else method
        if method not in ("shortest", "central"):
            raise ValueError(f"post_interval: method={method!r} is not 'shortest' or 'central'")
        if tau_level is not None:
            level = _level("tau_level", tau_level)
            post = self._post
            if method == "central":
                return post.quantile((1 - level) / 2), post.quantile(1 - (1 - level) / 2)
            return _shortest(lambda t: float(post.logpost(np.array([t]))[0]), lambda t: float(post.cdf(t)),
                             post.quantile, level, 0.0)
        level = _level("mu_level", mu_level)
        mix = self._theta if predict else self._mu
        if method == "central":
            return mix.quantile((1 - level) / 2), mix.quantile(1 - (1 - level) / 2)
        with np.errstate(divide="ignore"):
            return _shortest(lambda x: float(np.log(mix.pdf(x))), lambda x: float(mix.cdf(x)), mix.quantile, level,
                             None)

    def prob_exceeds(self, threshold: float, parameter: str = "mu", direction: str | None = None) -> float:
        """Posterior probability that the effect is beyond a threshold such as the minimal important
        difference: P(mu > threshold) for direction "greater", P(mu < threshold) for "less", P(abs(mu) >
        abs(threshold)) for "two-sided". By default the direction is the threshold's sign (a MID of -0.5 on a
        scale where lower is better asks for P(mu < -0.5)). parameter: "mu", "theta" (a new study's effect)
        or "tau"."""
        t = float(threshold)
        if not math.isfinite(t):
            raise ValueError(f"prob_exceeds: threshold = {threshold!r} must be finite")
        if parameter not in ("mu", "theta", "tau"):
            raise ValueError(f"prob_exceeds: parameter={parameter!r} is not 'mu', 'theta' or 'tau'")
        if direction is None:
            if t == 0 or parameter == "tau":
                direction = "greater" if parameter == "tau" else None
            else:
                direction = "greater" if t > 0 else "less"
            if direction is None:
                raise ValueError("prob_exceeds: threshold 0 has no sign; say direction='greater' or 'less'")
        if direction not in ("greater", "less", "two-sided"):
            raise ValueError(f"prob_exceeds: direction={direction!r} is not 'greater', 'less' or 'two-sided'")
        if parameter == "tau":
            p_up = float(self._post.cdf(max(t, 0.0), upper=True))
            return {"greater": p_up, "less": 1 - p_up, "two-sided": float(self._post.cdf(abs(t), upper=True))}[
                direction]
        mix = self._theta if parameter == "theta" else self._mu
        if direction == "greater":
            return float(mix.cdf(t, upper=True))
        if direction == "less":
            return float(mix.cdf(t))
        return float(mix.cdf(abs(t), upper=True) + mix.cdf(-abs(t)))

    def cond_moment(self, tau, predict: bool = False) -> pd.DataFrame:
        """Mean and sd of mu | tau, y (of theta | tau, y with predict=True) (bayesmeta's cond.moment)."""
        t = np.asarray(tau, dtype=float).reshape(-1)
        if np.any(~(t >= 0)):
            raise ValueError("cond_moment: tau must be >= 0")
        m, v, _ = self._model.conditional(t)
        sd = np.sqrt(v + t**2) if predict else np.sqrt(v)
        return pd.DataFrame({"mean": m, "sd": sd})

    def dprior(self, tau=None, mu=None, log: bool = False):
        """Prior density of tau, mu, or both (joint)."""
        if tau is None and mu is None:
            raise ValueError("dprior: give tau, mu or both")
        out = 0.0
        if tau is not None:
            out = out + self.tau_prior.logpdf(np.asarray(tau, dtype=float))
        if mu is not None:
            out = out + self._model.mu_prior_logpdf(np.asarray(mu, dtype=float))
        return out if log else np.exp(out)

    def likelihood(self, tau=None, mu=None, log: bool = False):
        """bayesmeta's likelihood(): the joint likelihood p(y | tau, mu), the marginal likelihood of tau
        (mu integrated out against its prior) or of mu (tau integrated out against its prior)."""
        if tau is None and mu is None:
            raise ValueError("likelihood: give tau, mu or both")
        if tau is not None and mu is not None:
            out = self._model.loglik_joint(tau, mu)
        elif tau is not None:
            out = self._model.conditional(np.asarray(tau, dtype=float))[2]
        else:
            m = np.asarray(mu, dtype=float)
            with np.errstate(divide="ignore"):
                out = self._post.log_norm + np.log(self._mu.pdf(m)) - self._model.mu_prior_logpdf(m)
        return out if log else np.exp(out)

    def I2(self, tau) -> np.ndarray:
        """tau^2 / (tau^2 + s^2), s^2 the typical within-study variance (Higgins & Thompson 2002, eq. 9)."""
        t = np.asarray(tau, dtype=float)
        return np.where(t >= 0, t**2 / (t**2 + self._model.s2hat), np.nan)

    @staticmethod
    def _theta_alias(mu, theta, predict):
        if theta is not None:
            if mu is not None:
                raise ValueError("give mu or theta, not both")
            return theta, True
        return mu, predict

    # ---- printing (bayesmeta's print and summary methods)

    def _header(self) -> list[str]:
        labels = list(self.labels)
        shown = ", ".join(labels[:10] + (["..."] if len(labels) > 10 else []))
        mu_proper = self.mu_prior is not None
        mu_text = (f"normal(mean={self.mu_prior[0]:.15g}, sd={self.mu_prior[1]:.15g})" if mu_proper
                   else "uniform(min=-Inf, max=Inf)")
        lines = [" 'bayesmeta' object.", "", f"{self.k} estimates:", shown, "",
                 f"tau prior ({'proper' if self.tau_prior.proper else 'improper'}):", self.tau_prior.label]
        if self.tau_prior.source:
            lines.append(f"  source: {self.tau_prior.source}")
        lines += ["", f"mu prior ({'proper' if mu_proper else 'improper'}):", mu_text, "", "ML and MAP estimates:"]
        est = pd.DataFrame(np.vstack([self.ML.to_numpy(), self.MAP.to_numpy()]),
                           index=["ML joint", "ML marginal", "MAP joint", "MAP marginal"], columns=["tau", "mu"])
        lines.append(_r_matrix(est))
        return lines

    def _interval_note(self) -> str:
        return ("(quoted intervals are shortest credible intervals.)" if self.interval_type == "shortest"
                else "(quoted intervals are central, equal-tailed credible intervals.)")

    def __str__(self) -> str:
        lines = self._header()
        lines += ["", "marginal posterior summary:", _r_matrix(self.summary[["tau", "mu"]]), "",
                  self._interval_note()]
        return "\n".join(lines)

    def summary_text(self) -> str:
        """bayesmeta's summary(): the printout with the predictive column, Bayes factors and I^2."""
        lines = self._header()
        lines += ["", "marginal posterior summary:", _r_matrix(self.summary), "", self._interval_note()]
        if np.any(np.isfinite(self.bayesfactor.to_numpy())):
            lines += ["", "Bayes factors:", _r_matrix(self.bayesfactor)]
        i2 = float(self.I2(self.summary.loc["median", "tau"]))
        lines += ["", f"relative heterogeneity I^2 (posterior median): {i2:.7g}"]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------------------------------


def bayesmeta(yi, vi=None, *, sei=None, tau_prior="uniform", tau_prior_scale=None, mu_prior=None, labels=None,
              interval_type: str = "shortest") -> BayesMetaResult:
    """Bayesian random-effects meta-analysis (normal-normal hierarchical model) by numerical integration, as
    R's bayesmeta(y, sigma, tau.prior, mu.prior.mean, mu.prior.sd) (Roever 2020).

    `yi` and `vi` (sampling variances) or `sei` (standard errors). `tau_prior`: a name ("uniform", the
    default as in bayesmeta; "halfnormal", "halfcauchy" or "exponential" with `tau_prior_scale`, the scale
    or, for the exponential, the mean; bayesmeta's reference priors "Jeffreys", "overallJeffreys",
    "BergerDeely", "conventional", "I2", "sqrt", "shrinkage", "DuMouchel"; the empirical priors
    "Turner2015[:outcome:comparator1:comparator2]" and "Rhodes2015[:outcome:comparator1:comparator2[:area]]"),
    a `TauPrior` (bayes_priors.half_normal, half_cauchy, half_t, exponential, uniform, log_normal, log_t,
    turner_prior, rhodes_prior) or a density function of tau. `mu_prior`: None for the improper uniform prior
    or (mean, sd) of a normal prior. `interval_type`: "shortest" (bayesmeta's default) or "central".
    """
    y, v = _inputs(yi, vi, sei)
    if interval_type not in ("shortest", "central"):
        raise ValueError(f"bayesmeta: interval_type={interval_type!r} is not 'shortest' or 'central'")
    mp = _mu_prior(mu_prior)
    if labels is None:
        labs = tuple(f"{i + 1:02d}" for i in range(y.size))
    else:
        labs = tuple(str(x) for x in labels)
        if len(labs) != y.size:
            raise ValueError(f"bayesmeta: {len(labs)} labels for {y.size} studies")
    prior = resolve_tau_prior(tau_prior, tau_prior_scale, v)
    model = _Model(y, v, mp)
    post = _TauPosterior(model, prior)
    mu_mix = _Mixture(post.weight, *post.mixture(False), post.variance_finite["mu"])
    th_mix = _Mixture(post.weight, *post.mixture(True), post.variance_finite["theta"])

    # summary (bayesmeta: sumstats)
    tab = pd.DataFrame(np.nan, index=_SUMMARY_ROWS, columns=_SUMMARY_COLS)
    e1 = float(np.sum(post.weight * post.tau)) if post.moment_finite[1] else math.inf
    e2 = float(np.sum(post.weight * post.tau**2)) if post.moment_finite[2] else math.inf
    tab.loc["mean", "tau"] = e1
    tab.loc["sd", "tau"] = math.sqrt(max(e2 - e1 * e1, 0.0)) if math.isfinite(e2) else math.inf
    tab.loc["median", "tau"] = post.quantile(0.5)
    mode, _ = _maximize_tau(post.logpost, model.scale)
    tab.loc["mode", "tau"] = mode
    result = BayesMetaResult(y=y, sigma=np.sqrt(v), labels=labs, tau_prior=prior, mu_prior=mp,
                             interval_type=interval_type, summary=tab, ML=pd.DataFrame(), MAP=pd.DataFrame(),
                             marginal_likelihood=math.nan, bayesfactor=pd.DataFrame(), _model=model, _post=post,
                             _mu=mu_mix, _theta=th_mix)
    tab.loc[["95% lower", "95% upper"], "tau"] = result.post_interval(tau_level=0.95)
    for col, mix, pred in (("mu", mu_mix, False), ("theta", th_mix, True)):
        tab.loc["mean", col] = mu_mix.mu
        tab.loc["sd", col] = mix.sd
        tab.loc["median", col] = mix.quantile(0.5)
        tab.loc["mode", col] = mix.mode()
        tab.loc[["95% lower", "95% upper"], col] = result.post_interval(mu_level=0.95, predict=pred)

    # ML and MAP estimates (bayesmeta: ml.estimate, map.estimate)
    t_mlj, _ = _maximize_tau(model.profile_ml, model.scale)
    w = 1 / (v + t_mlj**2)
    mu_mlj = float(np.sum(w * y) / np.sum(w))
    t_mlm, ll_max = _maximize_tau(lambda t: model.conditional(t)[2], model.scale)
    mu_mlm = _argmax_mu(lambda m: np.log(mu_mix.pdf(m)) - model.mu_prior_logpdf(m), mu_mix)

    def map_profile(t):
        m, _v, _ll = model.conditional(t)
        return prior.logpdf(t) + model.loglik_joint(t, m) + model.mu_prior_logpdf(m)

    t_map, _ = _maximize_tau(map_profile, model.scale)
    mu_map = float(model.conditional(np.array([t_map]))[0][0])
    ml = pd.DataFrame([[t_mlj, mu_mlj], [t_mlm, mu_mlm]], index=["joint", "marginal"], columns=["tau", "mu"])
    mapest = pd.DataFrame([[t_map, mu_map], [tab.loc["mode", "tau"], tab.loc["mode", "mu"]]],
                          index=["joint", "marginal"], columns=["tau", "mu"])

    # marginal likelihood and Bayes factors (bayesmeta: marglik, bayesfactor)
    bf = pd.DataFrame(np.nan, index=["actual", "minimum"], columns=["tau=0", "mu=0"])
    loglik_mu0 = float(result.likelihood(mu=0.0, log=True))
    marglik = math.nan
    if prior.proper:
        bf.loc["minimum", "mu=0"] = math.exp(loglik_mu0 - float(result.likelihood(mu=mu_mlm, log=True)))
    if mp is not None:
        ll0 = float(model.conditional(np.array([0.0]))[2][0])
        bf.loc["minimum", "tau=0"] = math.exp(ll0 - ll_max)
        if prior.proper:
            marglik = math.exp(post.log_norm)
            bf.loc["actual", "tau=0"] = math.exp(ll0 - post.log_norm)
            bf.loc["actual", "mu=0"] = math.exp(loglik_mu0 - post.log_norm)
    return BayesMetaResult(y=y, sigma=np.sqrt(v), labels=labs, tau_prior=prior, mu_prior=mp,
                           interval_type=interval_type, summary=tab, ML=ml, MAP=mapest, marginal_likelihood=marglik,
                           bayesfactor=bf, _model=model, _post=post, _mu=mu_mix, _theta=th_mix)


def _argmax_mu(fun: Callable[[np.ndarray], np.ndarray], mix: _Mixture) -> float:
    """argmax over mu of fun, searched around the posterior of mu."""
    grid = mix.mu + mix.scale * np.linspace(-12, 12, 481)
    with np.errstate(all="ignore"):
        vals = np.asarray(fun(grid), dtype=float)
    j = int(np.nanargmax(vals))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda m: -float(fun(np.array([m]))[0]), bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-13 * max(1.0, abs(mix.mu), mix.scale)})
    return float(res.x)



# --------------------------------------------------------------------------------------------------
# many meta-analyses at once: posterior predictive intervals on a common quadrature grid
# --------------------------------------------------------------------------------------------------

#: default quadrature for `predictive_intervals`: panels x Gauss-Legendre points, on x = tau / (c + tau) for
#: priors on tau's own scale, on w (log tau = m + s w / (1 - w^2)) for priors on log(tau)
BATCH_PANELS = {False: 16, True: 24}
BATCH_POINTS = 8


def _mixture_quantiles(w: np.ndarray, m: np.ndarray, s: np.ndarray, p: float, tol: float = 1e-13) -> np.ndarray:
    """Per row r, the p-quantile of sum_j w[r, j] N(m[r, j], s[r, j]^2): Newton steps on the CDF, kept inside a
    shrinking bracket (a step that leaves it bisects instead), for all rows still moving."""
    mean = np.sum(w * m, 1)
    sd = np.sqrt(np.sum(w * (s * s + (m - mean[:, None]) ** 2), 1))
    lo = np.min(m - 40 * s, 1)
    hi = np.max(m + 40 * s, 1)
    q = mean + sd * special.ndtri(p)
    active = np.arange(q.size)
    for _ in range(200):
        wa, ma, sa = w[active], m[active], s[active]
        qa = q[active]
        z = (qa[:, None] - ma) / sa
        f = np.sum(wa * special.ndtr(z), 1) - p
        d = np.sum(wa * np.exp(-0.5 * z * z - LOG_SQRT_2PI) / sa, 1)
        la = np.where(f < 0, qa, lo[active])
        ha = np.where(f > 0, qa, hi[active])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            new = qa - f / d
        bad = ~((new >= la) & (new <= ha)) | ~np.isfinite(new)
        new = np.where(bad, (la + ha) / 2, new)
        lo[active], hi[active], q[active] = la, ha, new
        moving = (np.abs(new - qa) > tol * sd[active]) & (ha - la > tol * sd[active])
        active = active[moving]
        if active.size == 0:
            break
    return q


def _batch_nodes(tau_prior: TauPrior, panels: int, points: int, fallback_scale: float):
    """tau nodes and log(prior density x quadrature weight x Jacobian) of `predictive_intervals`' fixed rule.

    Priors on tau's scale: x = tau / (c + tau) on [0, 1], c the prior's median, so that a prior with a
    positive density at 0 and a light or power-law tail gives a smooth integrand. Priors on log(tau)
    (log-normal, log-t, the empirical priors), whose mass reaches far towards tau = 0 on a log scale:
    log(tau) = m + s w / (1 - w^2) on (-1, 1), m and s the median and half the 16-84% range of log(tau),
    whose algebraic tails make t and normal tails smooth in w."""
    t, wg = np.polynomial.legendre.leggauss(int(points))
    lo = -1.0 if tau_prior.log_scale else 0.0
    edges = np.linspace(lo, 1.0, int(panels) + 1)
    x = ((edges[:-1] + edges[1:])[:, None] / 2 + (np.diff(edges) / 2)[:, None] * t[None, :]).reshape(-1)
    wx = ((np.diff(edges) / 2)[:, None] * wg[None, :]).reshape(-1)
    with np.errstate(divide="ignore", over="ignore"):
        if tau_prior.log_scale:
            q = np.log(np.asarray(tau_prior.ppf(np.array([0.5, 0.8413447460685429, 0.15865525393145707])), float))
            m, s = q[0], (q[1] - q[2]) / 2
            z = m + s * x / (1 - x * x)
            tau = np.exp(z)
            log_node = tau_prior.logpdf(tau) + z + np.log(wx * s * (1 + x * x) / (1 - x * x) ** 2)
        else:
            c = float(tau_prior.ppf(np.array([0.5]))[0]) if tau_prior.ppf is not None else fallback_scale
            tau = c * x / (1 - x)
            log_node = tau_prior.logpdf(tau) + np.log(wx * c / (1 - x) ** 2)
    ok = (tau < 1e150) & np.isfinite(log_node)  # nodes far out in a heavy tail: tau^2 would overflow, weight ~ 0
    return tau[ok], log_node[ok]


def predictive_intervals(yi, vi, tau_prior: TauPrior, *, mu_prior=None, level: float = 0.95,
                         panels: int | None = None, points: int = BATCH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Central posterior predictive intervals for a new study's theta, one per row of the 2-D arrays yi, vi
    (NaN-padded rows allowed), under `bayesmeta`'s model: many meta-analyses at once, for simulation studies.

    The integral over tau uses one fixed rule for every row (`_batch_nodes`: `panels` equal panels of
    `points`-point Gauss-Legendre rules on a compact variable; default 16 panels, 24 for priors on log tau).
    The conditional predictive normals N(mu_hat(tau), 1 / sum w + tau^2) are mixed with weights
    p(tau) p(y | tau) and the quantiles solved row-wise. The rule is not adaptive: its accuracy is measured
    against `bayesmeta`'s adaptive integration in tests/engine/test_bayes_batch.py (about 1e-11 on the effect
    scale for SMD-sized data under a half-normal(0.5) prior, 1e-8 under log-normal and log-t priors).
    Returns (lower, upper) arrays."""
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.ndim != 2 or yi.shape != vi.shape:
        raise ValueError(f"predictive_intervals: yi and vi must be 2-D arrays of one shape, got {yi.shape} and "
                         f"{vi.shape}")
    if not isinstance(tau_prior, TauPrior):
        raise TypeError("predictive_intervals: tau_prior must be a TauPrior (e.g. bayes_priors.half_normal(0.5))")
    if tau_prior.log_scale and tau_prior.ppf is None:
        raise ValueError("predictive_intervals: a prior on log(tau) needs its quantile function")
    lvl = _level("level", level)
    mp = _mu_prior(mu_prior)
    present = ~np.isnan(yi)
    bad = present & ~(np.isfinite(vi) & (vi > 0))
    if np.any(bad):
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"predictive_intervals: vi[{r}, {c}] = {float(vi[r, c])!r} must be positive and finite")
    bad = present & ~np.isfinite(yi)
    if np.any(bad):
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"predictive_intervals: yi[{r}, {c}] = {float(yi[r, c])!r} is not finite")
    k = present.sum(1)
    if np.any(k == 0):
        raise ValueError(f"predictive_intervals: row {int(np.flatnonzero(k == 0)[0])} has no study")
    if not tau_prior.proper and mp is None and np.any(k < 3):
        raise ValueError("predictive_intervals: with an improper tau prior and the uniform mu prior the posterior "
                         f"is improper for k < 3 (row {int(np.flatnonzero(k < 3)[0])})")
    y = np.where(present, yi, 0.0)
    v = np.where(present, vi, 1.0)
    n_panels = BATCH_PANELS[tau_prior.log_scale] if panels is None else int(panels)
    tau, log_node = _batch_nodes(tau_prior, n_panels, points, float(np.sqrt(np.median(vi[present]))))
    n_rows, n_nodes = yi.shape[0], tau.size
    ll = np.empty((n_rows, n_nodes))
    mean = np.empty((n_rows, n_nodes))
    var = np.empty((n_rows, n_nodes))
    # rows centred at their unweighted means, so that Q = sum w y^2 - (sum w y)^2 / sum w loses no digits
    centre = np.sum(y, 1) / k
    yc = np.where(present, y - centre[:, None], 0.0)
    yc2 = yc * yc
    m0 = None if mp is None else mp[0] - centre
    for j, tj in enumerate(tau):
        tot = v + tj * tj
        w = np.where(present, 1 / tot, 0.0)
        sw = np.einsum("rk->r", w)
        swy = np.einsum("rk,rk->r", w, yc)
        swyy = np.einsum("rk,rk->r", w, yc2)
        logdet = np.einsum("rk->r", np.where(present, np.log(tot), 0.0))
        if mp is not None:
            w0 = 1 / mp[1] ** 2
            sw = sw + w0
            swy = swy + w0 * m0
            swyy = swyy + w0 * m0 * m0
        mj = swy / sw
        q = np.maximum(swyy - mj * swy, 0.0)
        ll[:, j] = log_node[j] - 0.5 * (logdet + q + np.log(sw))  # constants cancel in the weights
        mean[:, j] = mj + centre
        var[:, j] = 1 / sw + tj * tj
    with np.errstate(under="ignore"):
        weight = np.exp(ll - ll.max(1, keepdims=True))
    weight /= weight.sum(1, keepdims=True)
    keep = np.max(weight, 0) > 1e-18  # nodes that no row gives weight drop out of the quantile search
    weight, mean, var = weight[:, keep], mean[:, keep], var[:, keep]
    sd = np.sqrt(var)
    a = (1 - lvl) / 2
    return _mixture_quantiles(weight, mean, sd, a), _mixture_quantiles(weight, mean, sd, 1 - a)


__all__ = ["BayesMetaResult", "bayesmeta", "predictive_intervals"]
