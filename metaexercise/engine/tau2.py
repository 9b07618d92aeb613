"""Estimators of the between-study variance τ², one function each, as metafor 3.8's `rma.uni` computes them.

All share one signature ``(yi, vi, X, control) -> Tau2Estimate`` and return τ² truncated at ``tau2_min`` (0),
its standard error as metafor defines it for that estimator, and the iteration record.

References (as cited in metafor's `rma.uni` help):
- HS: Hunter & Schmidt (2004), *Methods of Meta-Analysis*, 2nd ed.
- HE: Hedges (1983), Psychol Bull 93:388; Hedges & Olkin (1985).
- DL: DerSimonian & Laird (1986), Control Clin Trials 7:177; Raudenbush (2009) for the meta-regression form.
- SJ: Sidik & Jonkman (2005), J Biopharm Stat 15:823 (start value: the sample variance around the mean).
- ML, REML: Viechtbauer (2005), J Educ Behav Stat 30:261 — Fisher scoring with step-halving, truncated at 0,
  from metafor's start value; for intercept-only models, once the Fisher steps fall below 1e-4, Newton–Raphson
  steps with the observed information finish the climb (same maximum, about half the iterations). Where
  Fisher scoring oscillates (metafor: "did not converge"), safeguarded Newton/bisection steps on a bracket
  of the maximum take over (kernels.safeguard; by default for intercept-only models, Control.safeguard).
  Afterwards metafor's ll0check.
- EB: Morris (1983), J Am Stat Assoc 78:47; Berkey et al. (1995), Stat Med 14:395.
- PM: Paule & Mandel (1982), J Res Natl Bur Stand 87:377 — root of the generalized Q-statistic = k − p,
  by safeguarded Newton steps.
Standard errors: the formulas in metafor's `rma.uni` (Viechtbauer 2005 for ML/REML; the delta method for the
method-of-moments estimators).

The steps themselves (start value, Fisher/Newton step, step-halving, ll0check, Paule–Mandel root step, DL)
and their tolerances live in `engine.kernels`, shared with `rma_batch` and the batched meta-regression, which
compile them with numba; here the sums over studies are vectorised numpy, and this module never imports
numba (it loads with the first batched call only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from metaexercise.engine import kernels
from metaexercise.engine.wls import wls
from metaexercise.errors import ConvergenceError


@dataclass(frozen=True, slots=True)
class Control:
    """Algorithm settings, kept apart from the model (metafor's ``control=list(...)``).

    ``threshold`` is the convergence criterion on the change in τ² between Fisher-scoring iterations. metafor's
    default is 1e-5; ours is tight so that defaults agree with metafor run to convergence.
    """

    #: stop when |τ²_new − τ²_old| ≤ threshold (metafor: 1e-5); why 1e-12: see kernels.THRESHOLD.
    threshold: float = kernels.THRESHOLD
    maxiter: int = kernels.MAXITER  #: Fisher-scoring iterations before giving up (metafor: 100)
    stepadj: float = kernels.STEPADJ  #: step length multiplier (metafor: 1); < 1 helps if scoring oscillates
    tau2_init: float | None = None  #: start value for ML/REML/EB; default max(0, HE estimate), as metafor
    tau2_min: float = 0.0  #: lower bound (truncation) for τ²
    tau2_max: float | None = None  #: upper bound for PM / Q-profile searches; default max(100, 10·mad(yi)²)
    #: root-finding tolerance of the Q-profile CI (metafor: .Machine$double.eps^0.25). PM needs none: its
    #: safeguarded Newton search runs to machine precision (kernels.PM_RTOL).
    tol: float = kernels.ROOT_TOL
    ll0check: bool = True  #: ML/REML: fall back to τ² = 0 if the likelihood there is higher (as metafor)
    #: ML/REML/EB: safeguarded steps once Fisher scoring oscillates (kernels.safeguard). None: on for the
    #: intercept-only model, off for meta-regression (metafor's pure Fisher scoring; kernels.SAFEGUARD_P);
    #: True or False: on or off for every model.
    safeguard: bool | None = None


@dataclass(frozen=True, slots=True)
class Tau2Estimate:
    tau2: float
    se_tau2: float
    iterations: int = 0
    converged: bool = True


def hunter_schmidt(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    f = wls(X, yi, 1 / vi)
    w = f.w
    tau2 = max(control.tau2_min, (f.rss - k) / w.sum())
    t = max(tau2, 0.0)
    se = np.sqrt(1 / w.sum() ** 2 * (2 * (k - p) + 4 * t * f.tr_P() + 2 * t**2 * f.tr_PP()))
    return Tau2Estimate(tau2, float(se))


def hedges(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    f = wls(X, yi, np.ones(k))
    tau2 = kernels.hedges_start(f.rss, f.tr_PV(vi), k, p, control.tau2_min)
    t = max(tau2, 0.0)
    se = np.sqrt(1 / (k - p) ** 2 * (2 * f.tr_PVPV(vi) + 4 * t * f.tr_PV(vi) + 2 * t**2 * (k - p)))
    return Tau2Estimate(tau2, float(se))


def dersimonian_laird(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    f = wls(X, yi, 1 / vi)
    trP = f.tr_P()
    tau2 = kernels.dl_tau2(f.rss, k, p, trP, control.tau2_min)
    t = max(tau2, 0.0)
    se = np.sqrt(1 / trP**2 * (2 * (k - p) + 4 * t * trP + 2 * t**2 * f.tr_PP()))
    return Tau2Estimate(tau2, float(se))


def sidik_jonkman(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    tau2_0 = float(np.mean((yi - yi.mean()) ** 2)) if control.tau2_init is None else control.tau2_init
    f = wls(X, yi, 1 / (vi + tau2_0))
    tau2 = max(control.tau2_min, tau2_0 * f.rss / (k - p))
    t = max(tau2, 0.0)
    se = np.sqrt(
        tau2_0**2 / (k - p) ** 2 * (2 * f.tr_PVPV(vi) + 4 * t * f.tr_PPV(vi) + 2 * t**2 * f.tr_PP())
    )
    return Tau2Estimate(tau2, float(se))


#: below this many studies one 3 x k x 3 matrix product gives the nine sums fastest, above it three
#: matrix-vector products (OpenBLAS's small-matrix gemm is slow for long k; measured crossover ~600).
_GEMM_MAX_K = 512


class _InterceptOnly:
    """The sums of the intercept-only model at any τ²: with W = [w; w²; w³] (w = 1/(v + τ²)) and c = y − ȳ,
    the nine sums Σwᵃ, Σwᵃc, Σwᵃc² (a = 1, 2, 3) from one or three BLAS products, from which
    `kernels.shifted_square_sum` gives Q, y'PPy and Σw³r² about the weighted mean (r = y − μ̂). Vectorised:
    no Python loop over studies (rma for k = 5,000 stays well under a millisecond)."""

    __slots__ = ("vi", "k", "c", "c2", "C", "W")

    def __init__(self, yi: np.ndarray, vi: np.ndarray):
        self.vi = vi
        self.k = yi.shape[0]
        self.c = yi - yi.mean()
        self.c2 = self.c * self.c
        self.C = np.vstack((np.ones(self.k), self.c, self.c2)).T if self.k < _GEMM_MAX_K else None
        self.W = np.empty((3, self.k))

    def hedges(self) -> tuple[float, float]:
        """RSS and tr(P₀V) of the unweighted fit: Σ(y − ȳ)² and Σv − Σv/k."""
        sv = float(self.vi.sum())
        return float(self.c2.sum()), sv - sv / self.k

    def _sums(self, tau2: float) -> list[list[float]]:
        """[Σwᵃ], [Σwᵃc], [Σwᵃc²] for a = 1, 2, 3."""
        W = self.W
        np.add(self.vi, tau2, out=W[0])
        np.divide(1.0, W[0], out=W[0])
        np.multiply(W[0], W[0], out=W[1])
        np.multiply(W[1], W[0], out=W[2])
        if self.C is not None:
            return (W @ self.C).T.tolist()
        return [(W.sum(axis=1)).tolist(), (W @ self.c).tolist(), (W @ self.c2).tolist()]

    def scoring_terms(self, tau2: float, newton: bool, method: int) -> tuple[float, ...]:
        """(Σw, Σw², tr P, tr PP, Q, y'PPy, y'PPPy); y'PPPy only when `newton`, else NaN."""
        s0, s1, s2 = self._sums(tau2)
        sw = s0[0]
        m = s1[0] / sw
        q = kernels.shifted_square_sum(sw, s1[0], s2[0], m)
        ypp = kernels.shifted_square_sum(s0[1], s1[1], s2[1], m)
        if newton:
            sw3r2 = kernels.shifted_square_sum(s0[2], s1[2], s2[2], m)
            sw2r = s1[1] - m * s0[1]
        else:
            sw3r2 = sw2r = math.nan
        trp, trpp, yppp = kernels.intercept_terms(sw, s0[1], s0[2], sw3r2, sw2r)
        return sw, s0[1], trp, trpp, q, ypp, yppp

    def q_and_slope(self, tau2: float) -> tuple[float, float]:
        """Q(τ²) and Q'(τ²) = −y'PPy."""
        s0, s1, s2 = self._sums(tau2)
        m = s1[0] / s0[0]
        return (kernels.shifted_square_sum(s0[0], s1[0], s2[0], m),
                -kernels.shifted_square_sum(s0[1], s1[1], s2[1], m))

    def ll0_difference(self, method: int, tau2: float) -> float:
        """ll(0) − ll(τ²) for metafor's ll0check."""
        s0, s1, s2 = self._sums(0.0)
        sw0, q0 = s0[0], kernels.shifted_square_sum(s0[0], s1[0], s2[0], s1[0] / s0[0])
        s0, s1, s2 = self._sums(tau2)
        q = kernels.shifted_square_sum(s0[0], s1[0], s2[0], s1[0] / s0[0])
        sum_log1p = float(np.log1p(tau2 / self.vi).sum())
        return kernels.ll0_difference(method, sum_log1p, q0, q, math.log(s0[0] / sw0))


class _Regression:
    """The same quantities for a general design matrix X, from the weighted least-squares fit (engine.wls)."""

    __slots__ = ("yi", "vi", "X")

    def __init__(self, yi: np.ndarray, vi: np.ndarray, X: np.ndarray):
        self.yi, self.vi, self.X = yi, vi, X

    def hedges(self) -> tuple[float, float]:
        f = wls(self.X, self.yi, np.ones(self.yi.shape[0]))
        return f.rss, f.tr_PV(self.vi)

    def scoring_terms(self, tau2: float, newton: bool, method: int) -> tuple[float, ...]:
        """As _InterceptOnly.scoring_terms; the traces only for REML. y'PPPy = Σw³r² − u'(X'WX)⁻¹u with
        u = X'W²r only when `newton` (meta-regression has no Newton finish, kernels.NEWTON_P, but the
        safeguarded phase of kernels.safeguard uses the Newton step)."""
        f = wls(self.X, self.yi, 1 / (self.vi + tau2))
        w = f.w
        trp, trpp = (f.tr_P(), f.tr_PP()) if method == kernels.REML else (math.nan, math.nan)
        yppp = math.nan
        if newton:
            wr = w * f.resid
            u = self.X.T @ (w * wr)
            yppp = float(np.dot(w, wr * wr) - u @ f.A @ u)
        return float(w.sum()), float(np.dot(w, w)), trp, trpp, f.rss, f.rss_pp, yppp

    def q_and_slope(self, tau2: float) -> tuple[float, float]:
        f = wls(self.X, self.yi, 1 / (self.vi + tau2))
        return f.rss, -f.rss_pp

    def ll0_difference(self, method: int, tau2: float) -> float:
        f0 = wls(self.X, self.yi, 1 / self.vi)
        f = wls(self.X, self.yi, 1 / (self.vi + tau2))
        # A = (X'WX)^-1, so log|X'W_tau X| - log|X'W_0 X| = log|A_0| - log|A_tau|
        logdet_ratio = np.linalg.slogdet(f0.A)[1] - np.linalg.slogdet(f.A)[1]
        sum_log1p = float(np.log1p(tau2 / self.vi).sum())
        return kernels.ll0_difference(method, sum_log1p, f0.rss, f.rss, float(logdet_ratio))


def _model(yi, vi, X) -> _InterceptOnly | _Regression:
    if X.shape[1] == 1 and np.all(X == 1.0):
        return _InterceptOnly(yi, vi)
    return _Regression(yi, vi, X)


def _terms_text(terms: tuple[float, ...]) -> str:
    names = ("sum w", "sum w^2", "tr P", "tr PP", "Q", "y'PPy", "y'PPPy")
    return ", ".join(f"{n} = {t:.3g}" for n, t in zip(names, terms, strict=True) if not math.isnan(t)
                     or n != "y'PPPy")


def _sqrt(x: float) -> float:
    """math.sqrt, NaN (not an exception) for a negative or NaN argument."""
    return math.sqrt(x) if x >= 0.0 else math.nan


def _fisher_scoring(name: str) -> Callable:
    method = kernels.METHOD_CODES[name]

    def estimator(yi, vi, X, control: Control) -> Tau2Estimate:
        # data on a tiny scale are fitted as yi/2^j, vi/4^j (exactly) and tau^2 scaled back (kernels.SCALE_MIN)
        k = yi.shape[0]
        d = yi - yi.sum() / k
        j = kernels.rescale_exponent(float(vi.sum()) / k, float(d @ d) / (k - 1) if k > 1 else 0.0)
        if j == 0:
            return fit(yi, vi, X, control)
        c2 = math.ldexp(1.0, 2 * j)
        scaled = replace(control, tau2_min=control.tau2_min / c2,
                         tau2_init=None if control.tau2_init is None else control.tau2_init / c2)
        est = fit(np.ldexp(yi, -j), np.ldexp(vi, -2 * j), X, scaled)
        return Tau2Estimate(est.tau2 * c2, est.se_tau2 * c2, iterations=est.iterations, converged=est.converged)

    def fit(yi, vi, X, control: Control) -> Tau2Estimate:
        k, p = X.shape
        model = _model(yi, vi, X)
        if control.tau2_init is None:
            tau2 = kernels.hedges_start(*model.hedges(), k, p, max(0.0, control.tau2_min))
        else:
            tau2 = control.tau2_init
        with_newton = p == kernels.NEWTON_P and isinstance(model, _InterceptOnly)
        guarded = p <= kernels.SAFEGUARD_P if control.safeguard is None else bool(control.safeguard)
        change = math.inf
        it = 0
        newton = False
        # the bracket of kernels.safeguard, and whether its safeguarded phase has begun
        lo, hi, safe = -math.inf, math.inf, False
        while not kernels.converged(change, tau2, control.threshold):
            it += 1
            terms = model.scoring_terms(tau2, (with_newton and newton) or (safe and method != kernels.EB),
                                        method)
            sw, sw2, trp, trpp, q, ypp, yppp = terms
            fisher, newton_step = kernels.scoring_steps(method, k, p, sw, sw2, trp, trpp, q, ypp, yppp)
            proposal, _change, newton = kernels.next_tau2(tau2, fisher, newton_step, newton, control.stepadj,
                                                          control.tau2_min)
            tau2, change, lo, hi, safe = kernels.safeguard(tau2, proposal, fisher, newton_step, lo, hi, safe,
                                                           change, it, control.tau2_min, guarded)
            if not math.isfinite(change):
                raise ConvergenceError(
                    f"Fisher scoring for the {name} estimate of tau^2 stopped at iteration {it}: the score or "
                    f"information at tau^2 = {tau2:.6g} is not a finite number ({_terms_text(terms)}); the "
                    "sampling variances span too many orders of magnitude for double precision. Remedies: "
                    "a non-iterative estimator (method='DL'), or studies with less extreme variances."
                )
            if it > control.maxiter:
                remedy = "" if guarded else "safeguarded steps with Control(safeguard=True), "
                raise ConvergenceError(
                    f"Fisher scoring for the {name} estimate of tau^2 did not converge in {control.maxiter} "
                    f"iterations (last change {change:.3g} > threshold {control.threshold:g}). Remedies: "
                    f"{remedy}raise Control(maxiter=...), damp the steps with Control(stepadj=0.5), loosen "
                    "Control(threshold=...), or use a non-iterative estimator (method='DL' or 'PM')."
                )
        if control.ll0check and kernels.ll0_due(method, tau2, control.threshold):
            if kernels.ll0_resets(model.ll0_difference(method, tau2)):
                tau2 = 0.0  # metafor: "may have gotten stuck at a local maximum. Setting tau^2 = 0."
        tau2 = max(control.tau2_min, tau2)
        sw, sw2, trp, trpp = model.scoring_terms(tau2, False, method)[:4]
        if method == kernels.ML:
            se = _sqrt(2 / sw2)
        elif method == kernels.REML:
            se = _sqrt(2 / trpp) if trpp != 0.0 else math.nan
        else:
            se = _sqrt(2 * k**2 / (k - p) / sw**2)
        return Tau2Estimate(float(tau2), float(se), iterations=it, converged=True)

    estimator.__name__ = f"{name.lower()}_fisher_scoring"
    estimator.__doc__ = (f"{name} estimate of τ² by Fisher scoring (metafor `rma.uni`, method='{name}'; "
                         "Viechtbauer 2005), the steps of `kernels`.")
    return estimator


maximum_likelihood = _fisher_scoring("ML")
restricted_maximum_likelihood = _fisher_scoring("REML")
empirical_bayes = _fisher_scoring("EB")


def generalized_q(yi, vi, X, tau2: float) -> float:
    """Generalized Q-statistic Σ wᵢ (yᵢ − xᵢβ̂)² with wᵢ = 1/(vᵢ + τ²) (metafor's `.QE.func`)."""
    return wls(X, yi, 1 / (vi + tau2)).rss


def _mad(yi: np.ndarray) -> float:
    """R's mad(yi)."""
    return kernels.MAD_CONSTANT * float(np.median(np.abs(yi - np.median(yi))))


def paule_mandel(yi, vi, X, control: Control) -> Tau2Estimate:
    """Paule & Mandel (1982): the root of Q(τ²) = k − p on [τ²_min, τ²_max] by the safeguarded Newton steps
    of `kernels.pm_root_step` (as `rma_batch`), to machine precision (metafor: `uniroot`)."""
    k, p = X.shape
    target = k - p
    model = _model(yi, vi, X)
    lo = control.tau2_min
    q, dq = model.q_and_slope(lo)
    it = 0
    if q < target:
        tau2 = lo
    else:
        hi = kernels.PM_UPPER if control.tau2_max is None else control.tau2_max
        q_hi = model.q_and_slope(hi)[0]
        if control.tau2_max is None and q_hi > target:
            # metafor's default is max(100, 10 mad(yi)^2); the median is needed only when 100 is too low
            hi = kernels.pm_upper(_mad(yi))
            q_hi = model.q_and_slope(hi)[0]
        if q_hi > target:
            raise ConvergenceError(
                f"Paule-Mandel: Q(tau2_max={hi:g}) is still above k - p = {target}; raise "
                "Control(tau2_max=...) or use another method."
            )
        x = lo
        while True:
            it += 1
            f = q - target
            if f == 0.0:
                tau2 = x
                break
            xn, lo, hi, done = kernels.pm_root_step(x, f, dq, lo, hi)
            if done:
                tau2 = xn
                if math.isnan(tau2):
                    raise ConvergenceError(
                        f"Paule-Mandel: Q(tau^2) or its slope is not a finite number at tau^2 = {x:.6g} "
                        f"(Q = {q:.3g}, Q' = {dq:.3g}); the data are beyond double precision's reach there."
                    )
                break
            if it >= kernels.PM_ITER_FACTOR * control.maxiter:
                raise ConvergenceError(f"Paule-Mandel: the root search did not converge in {it} steps")
            x = xn
            q, dq = model.q_and_slope(x)
    w = 1 / (vi + tau2)
    se = np.sqrt(2 * k**2 / (k - p) / w.sum() ** 2)
    return Tau2Estimate(float(tau2), float(se), iterations=it)


ESTIMATORS: dict[str, Callable[..., Tau2Estimate]] = {
    "HS": hunter_schmidt,
    "HE": hedges,
    "DL": dersimonian_laird,
    "SJ": sidik_jonkman,
    "ML": maximum_likelihood,
    "REML": restricted_maximum_likelihood,
    "EB": empirical_bayes,
    "PM": paule_mandel,
}
if set(ESTIMATORS) != set(kernels.TAU2_ESTIMATORS):  # one vocabulary: kernels.TAU2_ESTIMATORS
    raise ImportError(f"tau2.ESTIMATORS {sorted(ESTIMATORS)} != kernels.TAU2_ESTIMATORS")
