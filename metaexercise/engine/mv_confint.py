"""Profile-likelihood confidence intervals for the variance components of an `rma_mv` fit, as metafor 3.8's
`confint.rma.mv`.

For a component θ (one σ², τ², ρ, γ² or φ) the bounds are the values where the likelihood-ratio statistic of the
profile, −2 (ℓ_p(θ) − ℓ̂), equals the χ²₁ quantile of the level (Hardy & Thompson 1996, Stat Med 15:619;
Viechtbauer's confint.rma.mv help): ℓ_p(θ) is the (restricted) log-likelihood maximised over every other free component
with θ fixed. The search is metafor's: a variance between 0 and max(10, 100·θ̂) (10 when θ̂ ≈ 0), a correlation between
−1 (0 for AR/HAR, if ρ̂ ≥ 0) and 1; when the statistic at the end of that interval is below the quantile the end is the
bound (shown with "<" / ">" when it is not the parameter's own limit), otherwise Brent's root finder (uniroot in
metafor) locates it. When the model cannot be fitted at an end (M not positive definite), that end is moved one tenth
of the way towards the estimate, ten times at most (metafor's ``eptries``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from metaexercise.engine.mv_fit import Components
from metaexercise.engine.mv_kernel import NotPositiveDefinite

#: Brent's tolerance on the bound (metafor's default for uniroot is .Machine$double.eps^0.25; ours is tight, see
#: tau2.Control.tol for the same choice in rma's Q-profile CI).
TOL = 1e-12


@dataclass(frozen=True, slots=True)
class ComponentCI:
    """The CI of one component: its rows (estimate and bounds; for a variance also its square root)."""

    component: str  # "sigma2", "tau2", "rho", "gamma2", "phi"
    index: int  # 1-based, as metafor's sigma2=, tau2=, ... arguments
    rows: tuple[tuple[str, float, float, float], ...]  # (name, estimate, ci_lb, ci_ub)
    lb_sign: str
    ub_sign: str

    @property
    def estimate(self) -> float:
        return self.rows[0][1]

    @property
    def ci_lb(self) -> float:
        return self.rows[0][2]

    @property
    def ci_ub(self) -> float:
        return self.rows[0][3]


@dataclass(frozen=True, slots=True)
class MVConfint:
    """Profile-likelihood CIs of an `rma_mv` fit's variance components (one `ComponentCI` each)."""

    level: float
    parts: tuple[ComponentCI, ...]

    def __getitem__(self, i: int) -> ComponentCI:
        return self.parts[i]

    def __len__(self) -> int:
        return len(self.parts)

    def to_frame(self):
        import pandas as pd

        rows = [(name, est, lb, ub) for part in self.parts for name, est, lb, ub in part.rows]
        return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=["estimate", "ci_lb", "ci_ub"])

    def summary(self) -> str:
        from metaexercise.engine.mv_print import format_confint

        return format_confint(self.parts)

    __str__ = summary


_KINDS = ("sigma2", "tau2", "rho", "gamma2", "phi")


def confint(fit, *, sigma2: int | None = None, tau2: int | None = None, rho: int | None = None,
            gamma2: int | None = None, phi: int | None = None, level: float | None = None,
            control: dict | None = None) -> MVConfint:
    """Profile-likelihood CIs (metafor `confint.rma.mv`). With no component named, every estimated one in turn
    (σ² 1, 2, ..., τ², ρ, γ², φ); ``sigma2=2`` (1-based, as metafor) asks for one. ``control``: ``tol`` (Brent's
    tolerance), ``vc_min`` / ``vc_max`` (the search interval), ``eptries``."""
    asked = {k: v for k, v in zip(_KINDS, (sigma2, tau2, rho, gamma2, phi), strict=True) if v is not None}
    if len(asked) > 1:
        raise ValueError("confint: give only one of sigma2, tau2, rho, gamma2, phi")
    level = fit.level if level is None else float(level)
    if not 0 < level < 100:
        raise ValueError(f"confint: level must be a percentage between 0 and 100, got {level!r}")
    control = dict(control or {})
    unknown = set(control) - {"tol", "vc_min", "vc_max", "eptries"}
    if unknown:
        raise ValueError(f"confint: unknown control setting(s) {sorted(unknown)}")
    if fit._spec is None or not fit._spec.estimated:
        raise ValueError("confint: the model has no variance components")
    if asked:
        (kind, pos), = asked.items()
        values = _component(fit, kind)
        if not isinstance(pos, int | np.integer) or isinstance(pos, bool) or not 1 <= pos <= len(values):
            raise ValueError(f"confint: no {kind} component {pos!r} in the model (it has {len(values)})")
        if fit.vc_fix[kind][pos - 1]:
            raise ValueError(f"confint: the {kind} component {pos} was fixed, not estimated")
        todo = [(kind, int(pos))]
    else:
        todo = [(kind, j + 1) for kind in _KINDS for j, fx in enumerate(fit.vc_fix[kind]) if not fx]
        if not todo:
            raise ValueError("confint: no components for which a CI can be obtained (all are fixed)")
    return MVConfint(level, tuple(_profile_ci(fit, kind, pos, level, control) for kind, pos in todo))


def _component(fit, kind: str) -> np.ndarray:
    return np.asarray(getattr(fit, kind), dtype=float)


def _fixed_with(fit, kind: str, pos: int, value: float) -> Components:
    spec = fit._spec
    fx = spec.fixed.copy()
    if kind == "sigma2":
        fx.sigma2[pos - 1] = value
    else:
        t = 0 if kind in ("tau2", "rho") else 1
        (fx.tau2 if kind in ("tau2", "gamma2") else fx.rho)[t][pos - 1] = value
    return fx


def _profile_ll(fit, kind: str, pos: int, value: float) -> float:
    """ℓ maximised over the other components with this one fixed at ``value``; NaN if the model cannot be fitted."""
    from metaexercise.engine.mv import refit_fixed

    try:
        sol = refit_fixed(fit, _fixed_with(fit, kind, pos, value))
    except (NotPositiveDefinite, np.linalg.LinAlgError):
        return math.nan
    ev = sol.evaluation
    return ev.ll_reml if fit._spec.reml else ev.ll_ml


def _profile_ci(fit, kind: str, pos: int, level: float, control: dict) -> ComponentCI:
    est = float(_component(fit, kind)[pos - 1])
    struct = fit.struct[0] if kind in ("tau2", "rho") else fit.struct[1]
    is_var = kind in ("sigma2", "tau2", "gamma2")
    if is_var:
        vc_min = 0.0
        vc_max = max(10.0 if est <= math.sqrt(np.finfo(float).eps) else max(10.0, est * 100), vc_min)
    else:
        vc_min = min(0.0, est) if struct in ("AR", "HAR") else -1.0
        vc_max = 1.0
    vc_min = float(control.get("vc_min", vc_min))
    vc_max = float(control.get("vc_max", vc_max))
    if vc_min > est:
        raise ValueError("confint: the lower end of the search interval must be <= the estimate")
    if vc_max < est:
        raise ValueError("confint: the upper end of the search interval must be >= the estimate")
    tol = float(control.get("tol", TOL))
    eptries = int(control.get("eptries", 10))
    objective = float(special.chdtri(1, 1 - level / 100))  # qchisq(level, df = 1)
    ll_hat = fit.ll

    def f(value: float) -> float:
        ll = _profile_ll(fit, kind, pos, value)
        return -2 * (ll - ll_hat) - objective

    lb, ub = math.nan, math.nan
    lb_sign = ub_sign = ""
    end = vc_min
    step = abs(vc_min - est) / eptries
    for _ in range(eptries):
        val = f(end)
        if not math.isnan(val):
            if val < 0:
                lb = end
                if (is_var and end > 0) or (not is_var and end > -1):
                    lb_sign = "<"
            else:
                lb = _root(f, end, est, tol)
            break
        end += step
    end = vc_max
    step = abs(vc_max - est) / eptries
    for _ in range(eptries):
        val = f(end)
        if not math.isnan(val):
            if val < 0:
                ub = end
                if is_var or end < 1:
                    ub_sign = ">"
            else:
                ub = _root(f, est, end, tol)
            break
        end -= step
    rows: list[tuple[str, float, float, float]] = []
    n = len(_component(fit, kind))
    sym = {"sigma2": ("sigma^2", "sigma"), "tau2": ("tau^2", "tau"), "gamma2": ("gamma^2", "gamma"),
           "rho": ("rho", None), "phi": ("phi", None)}[kind]
    suffix = "" if n == 1 else f".{pos}"
    rows.append((sym[0] + suffix, est, lb, ub))
    if is_var:
        def root(v):
            return math.sqrt(v) if v >= 0 else math.nan

        rows.append((sym[1] + suffix, root(est), root(lb), root(ub)))
    return ComponentCI(kind, pos, tuple(rows), lb_sign, ub_sign)


def _root(f, a: float, b: float, tol: float) -> float:
    """Brent's root of f on [a, b] (uniroot); NaN when f cannot be evaluated or has no sign change there."""
    def g(x):
        v = f(x)
        if math.isnan(v):
            raise ArithmeticError
        return v

    try:
        return float(optimize.brentq(g, a, b, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=1000))
    except (ArithmeticError, RuntimeError, ValueError):  # no fit at some point, or no sign change
        return math.nan


__all__ = ["confint", "MVConfint", "ComponentCI"]
