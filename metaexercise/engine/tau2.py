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
  steps with the observed information finish the climb (same maximum, about half the iterations).
- EB: Morris (1983), J Am Stat Assoc 78:47; Berkey et al. (1995), Stat Med 14:395.
- PM: Paule & Mandel (1982), J Res Natl Bur Stand 87:377 — root of the generalized Q-statistic = k − p.
Standard errors: the formulas in metafor's `rma.uni` (Viechtbauer 2005 for ML/REML; the delta method for the
method-of-moments estimators).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import optimize

from metaexercise.engine.wls import wls
from metaexercise.errors import ConvergenceError


@dataclass(frozen=True, slots=True)
class Control:
    """Algorithm settings, kept apart from the model (metafor's ``control=list(...)``).

    ``threshold`` is the convergence criterion on the change in τ² between Fisher-scoring iterations. metafor's
    default is 1e-5; ours is tight so that defaults agree with metafor run to convergence.
    """

    #: stop when |τ²_new − τ²_old| ≤ threshold (metafor: 1e-5). Fisher scoring converges linearly, slowly when
    #: τ² is small relative to the vᵢ, so a change of 1e-10 can still leave τ² ~1e-6 (relative) from the optimum;
    #: 1e-12 puts every fixture within 1e-8 of metafor run to convergence.
    threshold: float = 1e-12
    maxiter: int = 1000  #: Fisher-scoring iterations before giving up (metafor: 100, at its looser threshold)
    stepadj: float = 1.0  #: step length multiplier (metafor: 1); < 1 helps when scoring oscillates
    tau2_init: float | None = None  #: start value for ML/REML/EB; default max(0, HE estimate), as metafor
    tau2_min: float = 0.0  #: lower bound (truncation) for τ²
    tau2_max: float | None = None  #: upper bound for PM / Q-profile searches; default max(100, 10·mad(yi)²)
    tol: float = 1e-13  #: root-finding tolerance for PM and Q-profile (metafor: .Machine$double.eps^0.25)
    ll0check: bool = True  #: ML/REML: fall back to τ² = 0 if the likelihood there is higher (as metafor)


@dataclass(frozen=True, slots=True)
class Tau2Estimate:
    tau2: float
    se_tau2: float
    iterations: int = 0
    converged: bool = True


def _tau2_max(yi: np.ndarray, control: Control) -> float:
    if control.tau2_max is not None:
        return control.tau2_max
    mad = 1.4826 * np.median(np.abs(yi - np.median(yi)))
    return max(100.0, 10 * mad**2)


def hunter_schmidt(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    f = wls(X, yi, 1 / vi)
    w = f.w
    tau2 = max(control.tau2_min, (f.rss - k) / w.sum())
    t = max(tau2, 0.0)
    se = np.sqrt(1 / w.sum() ** 2 * (2 * (k - p) + 4 * t * f.tr_P() + 2 * t**2 * f.tr_PP()))
    return Tau2Estimate(tau2, float(se))


def _hedges_raw(yi, vi, X) -> tuple[float, object]:
    k, p = X.shape
    f = wls(X, yi, np.ones(k))
    return (f.rss - f.tr_PV(vi)) / (k - p), f


def hedges(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    raw, f = _hedges_raw(yi, vi, X)
    tau2 = max(control.tau2_min, raw)
    t = max(tau2, 0.0)
    se = np.sqrt(1 / (k - p) ** 2 * (2 * f.tr_PVPV(vi) + 4 * t * f.tr_PV(vi) + 2 * t**2 * (k - p)))
    return Tau2Estimate(tau2, float(se))


def dersimonian_laird(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    f = wls(X, yi, 1 / vi)
    trP = f.tr_P()
    tau2 = max(control.tau2_min, (f.rss - (k - p)) / trP)
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


def _log_lik(yi, vi, X, tau2: float, reml: bool) -> float:
    """ML or REML log-likelihood at τ² (without metafor's constant ½·log|X'X|, which cancels here)."""
    k, p = X.shape
    f = wls(X, yi, 1 / (vi + tau2))
    ll = -0.5 * (k - p if reml else k) * np.log(2 * np.pi) - 0.5 * np.sum(np.log(vi + tau2)) - 0.5 * f.rss
    if reml:
        ll -= 0.5 * np.linalg.slogdet(np.linalg.inv(f.A))[1]
    return float(ll)


def _score_step(kind: str, yi, vi, X, tau2: float) -> float:
    """One Fisher-scoring step for τ² (metafor `rma.uni`; Viechtbauer 2005, eqs. 8, 11)."""
    k, p = X.shape
    f = wls(X, yi, 1 / (vi + tau2))
    w = f.w
    if kind == "ML":
        return (f.rss_pp - w.sum()) / np.dot(w, w)
    if kind == "REML":
        return (f.rss_pp - f.tr_P()) / f.tr_PP()
    return (f.rss * k / (k - p) - k) / w.sum()  # EB


def _score_step_intercept(kind: str, yi, vi, X, tau2: float) -> tuple[float, float]:
    """The same step for an intercept-only model, where every trace is a scalar sum:
    tr(P) = Σw − Σw²/Σw, tr(PP) = Σw² − 2Σw³/Σw + (Σw²/Σw)²; also returns the Newton step."""
    return _intercept_step_kernel(_KINDS[kind], yi, vi, tau2)


_KINDS = {"ML": 0, "REML": 1, "EB": 2}


@njit(cache=True)
def _intercept_step_kernel(kind: int, yi, vi, tau2: float):
    """(Fisher step, Newton step) for an intercept-only model; the Newton step is NaN for EB or when the
    observed information is not positive. With r = y − μ̂ and Py = w∘r:
    y'PPy = Σw²r², y'PPPy = Σw³r² − (Σw²r)²/Σw, and the observed information of the REML (ML) score
    ½(y'PPy − tr P) (½(y'PPy − Σw)) is y'PPPy − ½tr(PP) (y'PPPy − ½Σw²)."""
    k = yi.shape[0]
    sw = sw2 = sw3 = swy = 0.0
    for i in range(k):
        w = 1.0 / (vi[i] + tau2)
        sw += w
        sw2 += w * w
        sw3 += w * w * w
        swy += w * yi[i]
    mu = swy / sw
    rpr = rppr = rpppr = sw2r = 0.0  # y'Py, Σw²r², Σw³r², Σw²r
    for i in range(k):
        w = 1.0 / (vi[i] + tau2)
        r = yi[i] - mu
        rpr += w * r * r
        rppr += w * w * r * r
        rpppr += w * w * w * r * r
        sw2r += w * w * r
    if kind == 2:
        return (rpr * k / (k - 1) - k) / sw, np.nan
    if kind == 0:
        num, info = rppr - sw, sw2
    else:
        num, info = rppr - (sw - sw2 / sw), sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
    observed = 2.0 * (rpppr - sw2r * sw2r / sw) - info
    return num / info, (num / observed if observed > 0.0 else np.nan)


#: Fisher scoring converges linearly; once its steps are this small, Newton–Raphson steps take over
#: (quadratic convergence to the same maximum), as long as the observed information is positive.
NEWTON_SWITCH = 1e-4


def _fisher_scoring(kind: str) -> Callable:
    def estimator(yi, vi, X, control: Control) -> Tau2Estimate:
        k, p = X.shape
        if control.tau2_init is None:
            tau2 = max(0.0, _hedges_raw(yi, vi, X)[0], control.tau2_min)
        else:
            tau2 = control.tau2_init
        change = control.threshold + 1
        it = 0
        newton = False
        while change > control.threshold:
            it += 1
            old = tau2
            if p == 1:
                adj, newton_adj = _score_step_intercept(kind, yi, vi, X, tau2)
                if newton and np.isfinite(newton_adj) and tau2 + newton_adj * control.stepadj >= control.tau2_min:
                    adj = newton_adj
            else:
                adj = _score_step(kind, yi, vi, X, tau2)
            adj *= control.stepadj
            if not np.isfinite(adj):
                adj = 0.0
            while tau2 + adj < control.tau2_min:  # step-halving keeps τ² inside its bounds (metafor)
                adj /= 2
            tau2 = tau2 + adj
            change = abs(old - tau2)
            newton = newton or change < NEWTON_SWITCH
            if it > control.maxiter:
                raise ConvergenceError(
                    f"Fisher scoring for the {kind} estimate of tau^2 did not converge in {control.maxiter} "
                    f"iterations (last change {change:.3g} > threshold {control.threshold:g}). Remedies: raise "
                    "Control(maxiter=...), damp the steps with Control(stepadj=0.5), loosen "
                    "Control(threshold=...), or use a non-iterative estimator (method='DL' or 'PM')."
                )
        if kind in ("ML", "REML") and control.ll0check and tau2 > control.threshold:
            reml = kind == "REML"
            if _log_lik(yi, vi, X, 0.0, reml) - _log_lik(yi, vi, X, tau2, reml) > 1.220703e-4:
                tau2 = 0.0  # metafor: "may have gotten stuck at a local maximum. Setting tau^2 = 0."
        tau2 = max(control.tau2_min, tau2)
        f = wls(X, yi, 1 / (vi + tau2))
        if kind == "ML":
            se = np.sqrt(2 / np.dot(f.w, f.w))
        elif kind == "REML":
            se = np.sqrt(2 / f.tr_PP())
        else:
            se = np.sqrt(2 * k**2 / (k - p) / f.w.sum() ** 2)
        return Tau2Estimate(float(tau2), float(se), iterations=it, converged=True)

    estimator.__name__ = f"{kind.lower()}_fisher_scoring"
    estimator.__doc__ = f"{kind} estimate of τ² by Fisher scoring (metafor `rma.uni`, method='{kind}')."
    return estimator


maximum_likelihood = _fisher_scoring("ML")
restricted_maximum_likelihood = _fisher_scoring("REML")
empirical_bayes = _fisher_scoring("EB")


def generalized_q(yi, vi, X, tau2: float) -> float:
    """Generalized Q-statistic Σ wᵢ (yᵢ − xᵢβ̂)² with wᵢ = 1/(vᵢ + τ²) (metafor's `.QE.func`)."""
    return wls(X, yi, 1 / (vi + tau2)).rss


def paule_mandel(yi, vi, X, control: Control) -> Tau2Estimate:
    k, p = X.shape
    target = k - p
    lo, hi = control.tau2_min, _tau2_max(yi, control)
    if generalized_q(yi, vi, X, lo) < target:
        tau2 = lo
    elif generalized_q(yi, vi, X, hi) > target:
        raise ConvergenceError(
            f"Paule-Mandel: Q(tau2_max={hi:g}) is still above k - p = {target}; raise Control(tau2_max=...) "
            "or use another method."
        )
    else:
        tau2 = optimize.brentq(
            lambda t: generalized_q(yi, vi, X, t) - target, lo, hi, xtol=control.tol, rtol=1e-15, maxiter=1000
        )
    w = 1 / (vi + tau2)
    se = np.sqrt(2 * k**2 / (k - p) / w.sum() ** 2)
    return Tau2Estimate(float(tau2), float(se))


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
