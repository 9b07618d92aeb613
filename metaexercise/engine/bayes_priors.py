"""Prior distributions for the heterogeneity tau of the normal-normal hierarchical model (`bayes.bayesmeta`).

Each prior is a `TauPrior`: its log density of tau (normalised when the prior is proper), and, where closed
forms exist, its CDF and quantile function. The families and their parametrisation follow R's bayesmeta 3.4
(Roever 2020, J Stat Softw 93(6), doi:10.18637/jss.v093.i06; functions dhalfnormal, dhalfcauchy, dhalft and
bayesmeta's `tau.prior` names): half-normal, half-Cauchy, half-Student-t, exponential, uniform, log-normal
and log-Student-t priors on tau, and bayesmeta's data-dependent reference priors (Jeffreys, "overall"
Jeffreys, Berger-Deely, conventional, uniform on I^2, uniform on sqrt(tau), uniform shrinkage, DuMouchel;
Roever 2020, Sec. 2.2 and Table 1), which depend on the studies' standard errors.

The empirical priors are those of
* Turner, Jackson, Wei, Thompson & Higgins (2015), Stat Med 34(6):984-998, doi:10.1002/sim.6381, Table IV:
  log-normal predictive distributions of tau^2 for log odds ratios, by outcome type x comparison type, and
  the general ("marginal") setting LN(-2.56, 1.74^2) (p. 993);
* Rhodes, Turner & Higgins (2015), J Clin Epidemiol 68(1):52-60, doi:10.1016/j.jclinepi.2014.08.012,
  Table 3 (and Tables A.3.1, A.3.2 for respiratory and cancer reviews): log-t(5) predictive distributions of
  tau^2 for standardized mean differences, by outcome type x comparison type, and the general setting
  t5(-3.44, 2.59) (Sec. 3.3).
The numbers are bayesmeta 3.4's (R/bayesmeta.R, `TurnerEtAlParameters` and `RhodesEtAlParameters`), copied
digit for digit; tests/reference/make_bayesmeta_reference.R exports bayesmeta's arrays and the tests compare
every entry. The distributions are stated for tau^2; for tau both location and scale are halved (the square
root halves the logarithm), as bayesmeta's TurnerEtAlPrior()/RhodesEtAlPrior() do.
Note (not corrected here): Rhodes et al.'s "non-pharmacological (any)" x "mental health outcome" location,
-3.85 in bayesmeta, breaks the table's otherwise constant offset of 0.14 from the "pharmacological vs.
placebo / control" column (-2.99; -2.85 would fit); we keep bayesmeta's value, which we cannot check
against the printed paper here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, special

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True, eq=False)
class TauPrior:
    """A prior for the heterogeneity tau >= 0.

    `logpdf(tau)` takes and returns numpy arrays (-inf where tau < 0); it is normalised when `proper` is
    True. `cdf`/`ppf` exist where the family has them in closed form (needed by the batched predictive
    intervals, which integrate over the prior's quantiles). `label` is what bayesmeta prints for the prior,
    `source` the paper its numbers come from (empirical priors)."""

    family: str
    label: str
    logpdf: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    proper: bool
    parameters: Mapping[str, float] = field(default_factory=dict)
    cdf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    ppf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    source: str = ""
    #: the family lives on log(tau) (log-normal, log-t): integrals over it are better done in log(tau)
    log_scale: bool = False

    def pdf(self, tau) -> np.ndarray:
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(self.logpdf(np.asarray(tau, dtype=float)))

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, eq=False)
class DataTauPrior:
    """A prior that depends on the studies' sampling variances (bayesmeta's reference priors): `bind(vi)`
    gives the `TauPrior` for one data set."""

    family: str
    label: str
    bind: Callable[[np.ndarray], TauPrior] = field(repr=False)

    def __str__(self) -> str:
        return self.label


def _positive(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return x


def _finite(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def _on_support(tau: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(tau >= 0, values, -np.inf)


def _g(x: float) -> str:
    """A number as R's paste() prints it (up to 15 significant digits)."""
    return f"{x:.15g}"


# --------------------------------------------------------------------------------------------------
# parametric families (bayesmeta's dhalfnormal, dhalfcauchy, dhalft; R's dexp, dlnorm; log-t as in
# bayesmeta's RhodesEtAlPrior)
# --------------------------------------------------------------------------------------------------


def half_normal(scale: float) -> TauPrior:
    """Half-normal prior on tau: density 2 phi(tau / scale) / scale (bayesmeta's dhalfnormal)."""
    s = _positive("half_normal: scale", scale)

    def logpdf(t):
        with np.errstate(invalid="ignore"):
            return _on_support(t, math.log(2) - math.log(s) - 0.5 * LOG_2PI - 0.5 * (t / s) ** 2)

    return TauPrior("half-normal", f"half-normal(scale={_g(s)})", logpdf, True, {"scale": s},
                    cdf=lambda t: np.where(t > 0, special.erf(np.maximum(t, 0) / (s * math.sqrt(2))), 0.0),
                    ppf=lambda p: s * special.ndtri(0.5 + 0.5 * np.asarray(p, dtype=float)))


def half_cauchy(scale: float) -> TauPrior:
    """Half-Cauchy prior on tau: density 2 / (pi scale (1 + (tau / scale)^2)) (bayesmeta's dhalfcauchy)."""
    s = _positive("half_cauchy: scale", scale)

    def logpdf(t):
        with np.errstate(over="ignore"):
            return _on_support(t, math.log(2 / (math.pi * s)) - np.log1p((t / s) ** 2))

    return TauPrior("half-Cauchy", f"half-Cauchy(scale={_g(s)})", logpdf, True, {"scale": s},
                    cdf=lambda t: np.where(t > 0, 2 / math.pi * np.arctan(np.maximum(t, 0) / s), 0.0),
                    ppf=lambda p: s * np.tan(0.5 * math.pi * np.asarray(p, dtype=float)))


def _t_logpdf(z, df: float):
    """log density of Student's t with `df` degrees of freedom."""
    with np.errstate(over="ignore"):
        return (special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * math.log(df * math.pi)
                - (df + 1) / 2 * np.log1p(z * z / df))


def half_t(df: float, scale: float = 1.0) -> TauPrior:
    """Half-Student-t prior on tau: density 2 t_df(tau / scale) / scale (bayesmeta's dhalft)."""
    nu = _positive("half_t: df", df)
    s = _positive("half_t: scale", scale)

    def logpdf(t):
        return _on_support(t, math.log(2) - math.log(s) + _t_logpdf(t / s, nu))

    return TauPrior("half-Student-t", f"half-Student-t(df={_g(nu)}, scale={_g(s)})", logpdf, True,
                    {"df": nu, "scale": s},
                    cdf=lambda t: np.where(t > 0, 2 * special.stdtr(nu, np.maximum(t, 0) / s) - 1, 0.0),
                    ppf=lambda p: s * special.stdtrit(nu, 0.5 + 0.5 * np.asarray(p, dtype=float)))


def exponential(rate: float) -> TauPrior:
    """Exponential prior on tau: density rate exp(-rate tau) (R's dexp); mean 1 / rate."""
    r = _positive("exponential: rate", rate)

    def logpdf(t):
        return _on_support(t, math.log(r) - r * t)

    return TauPrior("exponential", f"exponential(rate={_g(r)})", logpdf, True, {"rate": r},
                    cdf=lambda t: np.where(t > 0, -np.expm1(-r * np.maximum(t, 0)), 0.0),
                    ppf=lambda p: -np.log1p(-np.asarray(p, dtype=float)) / r)


def uniform(max: float = math.inf) -> TauPrior:  # noqa: A002 - bayesmeta's and R's argument name
    """Uniform prior on tau over [0, max]; improper (constant density 1, bayesmeta's default) when max is
    infinite."""
    if max == math.inf:
        return TauPrior("uniform", "uniform(min=0, max=Inf)", lambda t: _on_support(t, np.zeros_like(t)), False,
                        {"max": math.inf})
    m = _positive("uniform: max", max)

    def logpdf(t):
        return np.where((t >= 0) & (t <= m), -math.log(m), -np.inf)

    return TauPrior("uniform", f"uniform(min=0, max={_g(m)})", logpdf, True, {"max": m},
                    cdf=lambda t: np.clip(t / m, 0, 1), ppf=lambda p: m * np.asarray(p, dtype=float))


def log_normal(meanlog: float, sdlog: float, *, source: str = "", label: str | None = None) -> TauPrior:
    """Log-normal prior on tau (R's dlnorm(tau, meanlog, sdlog)). A log-normal prior LN(m, s^2) on tau^2
    is log_normal(m / 2, s / 2) on tau."""
    m = _finite("log_normal: meanlog", meanlog)
    s = _positive("log_normal: sdlog", sdlog)

    def logpdf(t):
        with np.errstate(divide="ignore", invalid="ignore"):
            lt = np.log(t)
            out = -lt - math.log(s) - 0.5 * LOG_2PI - 0.5 * ((lt - m) / s) ** 2
        return np.where(t > 0, out, -np.inf)

    def cdf(t):
        with np.errstate(divide="ignore"):
            return np.where(t > 0, special.ndtr((np.log(np.maximum(t, 0)) - m) / s), 0.0)

    return TauPrior("log-normal", label or f"log-normal(mu={m:1.3f}, sigma={s:1.3f})", logpdf, True,
                    {"meanlog": m, "sdlog": s}, cdf=cdf,
                    ppf=lambda p: np.exp(m + s * special.ndtri(np.asarray(p, dtype=float))), source=source,
                    log_scale=True)


def log_t(location: float, scale: float, df: float = 5.0, *, source: str = "", label: str | None = None) -> TauPrior:
    """Log-Student-t prior on tau: log(tau) = location + scale T, T ~ t_df (bayesmeta's RhodesEtAlPrior
    density dlt5). A log-t prior on tau^2 is log_t(location / 2, scale / 2, df) on tau."""
    m = _finite("log_t: location", location)
    s = _positive("log_t: scale", scale)
    nu = _positive("log_t: df", df)

    def logpdf(t):
        with np.errstate(divide="ignore", invalid="ignore"):
            lt = np.log(t)
            out = _t_logpdf((lt - m) / s, nu) - math.log(s) - lt
        return np.where(t > 0, out, -np.inf)

    def cdf(t):
        with np.errstate(divide="ignore"):
            return np.where(t > 0, special.stdtr(nu, (np.log(np.maximum(t, 0)) - m) / s), 0.0)

    return TauPrior("log-Student-t",
                    label or f"log-Student-t(location={m:1.3f}, scale={s:1.3f}, d.f.={_g(nu)})",
                    logpdf, True, {"location": m, "scale": s, "df": nu}, cdf=cdf,
                    ppf=lambda p: np.exp(m + s * special.stdtrit(nu, np.asarray(p, dtype=float))), source=source,
                    log_scale=True)


# --------------------------------------------------------------------------------------------------
# bayesmeta's data-dependent reference priors (bayesmeta.default, tau.prior given as a character string;
# Roever 2020, Sec. 2.2). Each is a function of tau and the standard errors sigma_i (v_i = sigma_i^2).
# --------------------------------------------------------------------------------------------------


def _sum_over_studies(t: np.ndarray, v: np.ndarray, fun) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    flat = t.reshape(-1)
    out = np.empty(flat.shape)
    step = max(1, 2_000_000 // max(1, v.size))  # bound the (tau x study) temporary
    for i in range(0, flat.size, step):
        out[i:i + step] = fun(flat[i:i + step, None], v[None, :])
    return out.reshape(t.shape)


def _reference(name: str, label: str, proper: bool, make) -> DataTauPrior:
    """A data-dependent prior; `make(v)` returns the log density for variances v. Proper ones integrate
    to 1 by construction (uniform on I^2, uniform shrinkage, DuMouchel) or are normalised numerically
    (conventional), as bayesmeta does."""

    def bind(v):
        v = np.asarray(v, dtype=float)
        logpdf = make(v)
        const = 0.0
        if proper:
            total, _err = integrate.quad(lambda x: math.exp(float(logpdf(np.array([x]))[0])), 0, math.inf,
                                         epsabs=0, epsrel=1e-12, limit=500)
            const = math.log(total)

        def normalised(t):
            t = np.asarray(t, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = logpdf(t) - const
            return np.where(t >= 0, out, -np.inf)

        return TauPrior(name, label, normalised, proper)

    return DataTauPrior(name, label, bind)


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


def _jeffreys(v):
    return lambda t: _log(t) + 0.5 * np.log(_sum_over_studies(t, v, lambda a, b: np.sum(1 / (b + a * a) ** 2, 1)))


def _overall_jeffreys(v):
    def f(a, b):
        w = 1 / (b + a * a)
        return np.sum(w, 1) * np.sum(w * w, 1)

    return lambda t: _log(t) + 0.5 * np.log(_sum_over_studies(t, v, f))


def _berger_deely(v):
    k = v.size
    return lambda t: _log(t) - _sum_over_studies(t, v, lambda a, b: np.sum(np.log(b + a * a), 1)) / k


def _conventional(v):
    k = v.size
    return lambda t: _log(t) - 1.5 / k * _sum_over_studies(t, v, lambda a, b: np.sum(np.log(b + a * a), 1))


def _typical_variance(v) -> float:
    """Higgins & Thompson (2002, Stat Med 21:1539) eq. 9, as bayesmeta's sigma2hat."""
    w = 1 / v
    k = v.size
    return float((k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum())) if k > 1 else float(v[0])


def _i2(v):
    s2 = _typical_variance(v)
    return lambda t: math.log(2) + math.log(s2) + _log(t) - 2 * np.log(s2 + t * t)


def _sqrt(v):
    return lambda t: -0.5 * _log(t)


def _shrinkage(v):
    s02 = v.size / np.sum(1 / v)  # harmonic mean of the squared standard errors
    return lambda t: math.log(2 * s02) + _log(t) - 2 * np.log(s02 + t * t)


def _dumouchel(v):
    s0 = math.sqrt(v.size / np.sum(1 / v))
    return lambda t: math.log(s0) - 2 * np.log(s0 + t)


#: bayesmeta's `tau.prior` character options (matched case-insensitively, as bayesmeta's tolower + match.arg)
REFERENCE_PRIORS: dict[str, DataTauPrior] = {
    "jeffreys": _reference("Jeffreys", "Jeffreys prior", False, _jeffreys),
    "overalljeffreys": _reference("overallJeffreys", "'overall' Jeffreys prior", False, _overall_jeffreys),
    "bergerdeely": _reference("BergerDeely", "Berger/Deely prior", False, _berger_deely),
    "conventional": _reference("conventional", "conventional prior", True, _conventional),
    "i2": _reference("I2", "uniform prior on I-squared", True, _i2),
    "sqrt": _reference("sqrt", "uniform prior on sqrt(tau)", False, _sqrt),
    "shrinkage": _reference("shrinkage", "uniform shrinkage prior", True, _shrinkage),
    "dumouchel": _reference("DuMouchel", "DuMouchel prior", True, _dumouchel),
}


# --------------------------------------------------------------------------------------------------
# Turner et al. (2015), Table IV: log-normal LN(mu, sigma^2) for tau^2 (log odds ratios)
# --------------------------------------------------------------------------------------------------

TURNER_SOURCE = ("Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT (2015). Predictive distributions for "
                 "between-study heterogeneity and simple methods for their application in Bayesian meta-analysis. "
                 "Stat Med 34(6):984-998, doi:10.1002/sim.6381, Table IV (numbers as in R's bayesmeta 3.4, "
                 "TurnerEtAlParameters)")

TURNER_OUTCOMES: tuple[str, ...] = (
    "all-cause mortality",
    "obstetric outcomes",
    "cause-specific mortality / major morbidity event / composite (mortality or morbidity)",
    "resource use / hospital stay / process",
    "surgical / device related success / failure",
    "withdrawals / drop-outs",
    "internal / structure-related outcomes",
    "general physical health indicators",
    "adverse events",
    "infection / onset of new disease",
    "signs / symptoms reflecting continuation / end of condition",
    "pain",
    "quality of life / functioning (dichotomized)",
    "mental health indicators",
    "biological markers (dichotomized)",
    "subjective outcomes (various)",
)

TURNER_COMPARISONS: tuple[str, ...] = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological vs. placebo / control",
    "non-pharmacological vs. pharmacological",
    "non-pharmacological vs. non-pharmacological",
)

#: mu of log(tau^2) ~ N(mu, sigma^2), one tuple per comparison type, in TURNER_OUTCOMES order
TURNER_MU: dict[str, tuple[float, ...]] = dict(zip(TURNER_COMPARISONS, (
    (-3.95, -3.52, -3.71, -2.34, -2.14, -2.99, -2.71, -2.29, -1.87, -2.49, -2.06, -1.83, -2.54, -2.12, -1.77, -2.70),
    (-4.18, -3.75, -3.95, -2.58, -2.37, -3.23, -2.94, -2.53, -2.10, -2.73, -2.29, -2.06, -2.78, -2.35, -2.00, -2.93),
    (-4.17, -3.74, -3.93, -2.56, -2.36, -3.21, -2.93, -2.51, -2.10, -2.71, -2.28, -2.05, -2.77, -2.34, -1.99, -2.92),
    (-2.92, -2.49, -2.68, -1.31, -1.11, -1.96, -1.67, -1.26, -0.84, -1.46, -1.03, -0.80, -1.51, -1.09, -0.74, -1.67),
    (-3.50, -3.08, -3.27, -1.90, -1.69, -2.55, -2.26, -1.85, -1.43, -2.05, -1.61, -1.38, -2.10, -1.67, -1.33, -2.26),
), strict=True))

#: sigma of log(tau^2) ~ N(mu, sigma^2), as TURNER_MU
TURNER_SIGMA: dict[str, tuple[float, ...]] = dict(zip(TURNER_COMPARISONS, (
    (1.34, 1.74, 1.74, 1.74, 1.74, 1.74, 1.74, 1.53, 1.52, 1.52, 1.51, 1.52, 1.54, 1.53, 1.52, 1.52),
    (1.41, 1.79, 1.79, 1.79, 1.79, 1.79, 1.79, 1.58, 1.58, 1.58, 1.58, 1.58, 1.60, 1.60, 1.58, 1.58),
    (1.55, 1.91, 1.91, 1.91, 1.91, 1.91, 1.92, 1.72, 1.71, 1.71, 1.71, 1.71, 1.73, 1.72, 1.71, 1.71),
    (1.02, 1.50, 1.51, 1.50, 1.50, 1.51, 1.51, 1.25, 1.24, 1.24, 1.24, 1.25, 1.27, 1.27, 1.24, 1.25),
    (1.26, 1.68, 1.68, 1.68, 1.68, 1.68, 1.68, 1.46, 1.45, 1.45, 1.45, 1.45, 1.47, 1.47, 1.45, 1.45),
), strict=True))

#: the general setting, without covariates (Turner et al. 2015, p. 993)
TURNER_GENERAL = (-2.56, 1.74)

# ---- Rhodes et al. (2015), Table 3 (other), A.3.1 (respiratory), A.3.2 (cancer): log(tau^2) ~ t5(loc, scale)

RHODES_SOURCE = ("Rhodes KM, Turner RM, Higgins JPT (2015). Predictive distributions were developed for the extent "
                 "of heterogeneity in meta-analyses of continuous outcome data. J Clin Epidemiol 68(1):52-60, "
                 "doi:10.1016/j.jclinepi.2014.08.012, Table 3 and Tables A.3.1-A.3.2 (numbers as in R's bayesmeta "
                 "3.4, RhodesEtAlParameters)")

RHODES_OUTCOMES: tuple[str, ...] = (
    "obstetric outcome",
    "resource use and hospital stay / process",
    "internal and external structure-related outcome",
    "general physical health and adverse event and pain and quality of life / functioning",
    "signs / symptoms reflecting continuation / end of condition and infection / onset of new acute / chronic disease",
    "mental health outcome",
    "biological marker",
    "various subjectively measured outcomes",
)

RHODES_COMPARISONS: tuple[str, ...] = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological (any)",
)

RHODES_AREAS: tuple[str, ...] = ("other", "respiratory", "cancer")

#: location of log(tau^2) ~ t5, by area and comparison, in RHODES_OUTCOMES order
RHODES_LOCATION: dict[str, dict[str, tuple[float, ...]]] = {
    "other": dict(zip(RHODES_COMPARISONS, (
        (-4.13, -2.55, -2.43, -3.16, -3.00, -2.99, -3.41, -2.76),
        (-4.40, -2.83, -2.70, -3.44, -3.27, -3.27, -3.68, -3.03),
        (-3.99, -2.41, -2.29, -3.02, -2.86, -3.85, -3.27, -2.62),
    ), strict=True)),
    "respiratory": dict(zip(RHODES_COMPARISONS, (
        (-6.03, -4.46, -4.33, -5.07, -4.90, -4.90, -5.31, -4.66),
        (-6.31, -4.73, -4.61, -5.34, -5.18, -5.17, -5.59, -4.94),
        (-5.89, -4.32, -4.19, -4.93, -4.76, -4.76, -5.17, -4.52),
    ), strict=True)),
    "cancer": dict(zip(RHODES_COMPARISONS, (
        (-1.57, 0.01, -0.13, -0.60, -0.44, -0.43, -0.85, -0.20),
        (-1.85, -0.27, -0.14, -0.88, -0.71, -0.71, -1.13, -0.48),
        (-1.43, 0.15, 0.27, -0.46, -0.30, -0.29, -0.71, -0.06),
    ), strict=True)),
}

#: scale of log(tau^2) ~ t5, as RHODES_LOCATION
RHODES_SCALE: dict[str, dict[str, tuple[float, ...]]] = {
    "other": dict(zip(RHODES_COMPARISONS, (
        (2.34, 2.73, 2.50, 2.50, 2.50, 2.16, 2.83, 2.58),
        (2.31, 2.70, 2.46, 2.44, 2.47, 2.14, 2.78, 2.59),
        (2.11, 2.57, 2.32, 2.27, 2.33, 1.93, 2.66, 2.41),
    ), strict=True)),
    "respiratory": dict(zip(RHODES_COMPARISONS, (
        (2.36, 2.74, 2.51, 2.51, 2.50, 2.17, 2.83, 2.59),
        (2.31, 2.70, 2.46, 2.45, 2.47, 2.14, 2.78, 2.59),
        (2.21, 2.57, 2.33, 2.28, 2.33, 1.94, 2.66, 2.41),
    ), strict=True)),
    "cancer": dict(zip(RHODES_COMPARISONS, (
        (2.45, 2.83, 2.61, 2.61, 2.60, 2.28, 2.93, 2.68),
        (2.41, 2.79, 2.56, 2.55, 2.57, 2.25, 2.87, 2.68),
        (2.24, 2.68, 2.45, 2.40, 2.46, 2.08, 2.78, 2.53),
    ), strict=True)),
}

#: the general setting (Rhodes et al. 2015, Sec. 3.3)
RHODES_GENERAL = (-3.44, 2.59)

COMPARATORS: tuple[str, ...] = ("pharmacological", "non-pharmacological", "placebo / control")

#: the comparison type of each pair of comparators (bayesmeta's `cmatrix`, symmetric)
_TURNER_PAIRS = {
    ("pharmacological", "pharmacological"): TURNER_COMPARISONS[1],
    ("pharmacological", "non-pharmacological"): TURNER_COMPARISONS[3],
    ("pharmacological", "placebo / control"): TURNER_COMPARISONS[0],
    ("non-pharmacological", "non-pharmacological"): TURNER_COMPARISONS[4],
    ("non-pharmacological", "placebo / control"): TURNER_COMPARISONS[2],
}
_RHODES_PAIRS = {
    ("pharmacological", "pharmacological"): RHODES_COMPARISONS[1],
    ("pharmacological", "non-pharmacological"): RHODES_COMPARISONS[2],
    ("pharmacological", "placebo / control"): RHODES_COMPARISONS[0],
    ("non-pharmacological", "non-pharmacological"): RHODES_COMPARISONS[2],
    ("non-pharmacological", "placebo / control"): RHODES_COMPARISONS[2],
}

#: short names for this project's outcomes (pain and function are one category in Rhodes et al.)
_RHODES_ALIASES = {"pain": RHODES_OUTCOMES[3], "function": RHODES_OUTCOMES[3], "functioning": RHODES_OUTCOMES[3],
                   "quality of life": RHODES_OUTCOMES[3]}
_TURNER_ALIASES = {"function": TURNER_OUTCOMES[12], "functioning": TURNER_OUTCOMES[12],
                   "quality of life": TURNER_OUTCOMES[12]}


def match_arg(value: str, choices: Sequence[str], argname: str, aliases: Mapping[str, str] | None = None) -> str:
    """R's match.arg: the choice `value` is a unique prefix of (case-insensitive here), or an alias."""
    if not isinstance(value, str):
        raise TypeError(f"{argname} must be a string, got {value!r}")
    low = value.strip().lower()
    if aliases and low in aliases:
        return aliases[low]
    exact = [c for c in choices if c.lower() == low]
    if exact:
        return exact[0]
    hits = [c for c in choices if c.lower().startswith(low)] if low else []
    if len(hits) == 1:
        return hits[0]
    what = "matches several of" if hits else "is none of"
    extra = f" (or one of the aliases {sorted(aliases)})" if aliases else ""
    raise ValueError(f"{argname}={value!r} {what} {list(hits or choices)}{extra}; give a longer prefix")


def _comparison(comparator1: str, comparator2: str, pairs, who: str) -> str:
    c1 = match_arg(comparator1, COMPARATORS, f"{who}: comparator1")
    c2 = match_arg(comparator2, COMPARATORS, f"{who}: comparator2")
    key = (c1, c2) if (c1, c2) in pairs else (c2, c1)
    if key not in pairs:
        raise ValueError(f"{who}: comparator1 and comparator2 cannot both be 'placebo / control'")
    return pairs[key]


def turner_prior(outcome: str | None = None, comparator1: str = "pharmacological",
                 comparator2: str = "pharmacological") -> TauPrior:
    """Turner et al. (2015)'s log-normal prior, as bayesmeta's TurnerEtAlPrior(): log(tau^2) ~ N(mu, sigma^2)
    (Table IV), i.e. tau ~ log-normal(mu / 2, sigma / 2). outcome=None is the general setting LN(-2.56, 1.74^2).
    Arguments are matched by unique prefix, as R's match.arg. Meant for log odds ratios."""
    if outcome is None:
        mu, sigma = TURNER_GENERAL
        outcome_type = comparison = "any"
    else:
        outcome_type = match_arg(outcome, TURNER_OUTCOMES, "turner_prior: outcome", _TURNER_ALIASES)
        comparison = _comparison(comparator1, comparator2, _TURNER_PAIRS, "turner_prior")
        i = TURNER_OUTCOMES.index(outcome_type)
        mu, sigma = TURNER_MU[comparison][i], TURNER_SIGMA[comparison][i]
    prior = log_normal(mu / 2, sigma / 2, source=TURNER_SOURCE)
    params = {"tau2_mu": mu, "tau2_sigma": sigma, "tau_mu": mu / 2, "tau_sigma": sigma / 2}
    return TauPrior("Turner et al. (2015)", prior.label, prior.logpdf, True,
                    {**params, "outcome": outcome_type, "comparison": comparison},  # type: ignore[dict-item]
                    cdf=prior.cdf, ppf=prior.ppf, source=TURNER_SOURCE, log_scale=True)


def rhodes_prior(outcome: str | None = None, comparator1: str = "pharmacological",
                 comparator2: str = "pharmacological", area: str = "other") -> TauPrior:
    """Rhodes et al. (2015)'s log-t(5) prior, as bayesmeta's RhodesEtAlPrior(): log(tau^2) ~ location + scale
    t_5 (Table 3; respiratory and cancer reviews Tables A.3.1 and A.3.2), i.e. tau ~ log-t(location / 2,
    scale / 2, 5). outcome=None is the general setting t5(-3.44, 2.59). Arguments are matched by unique prefix;
    "pain", "function" and "quality of life" name the category "general physical health and adverse event and
    pain and quality of life / functioning". Meant for standardized mean differences."""
    if outcome is None:
        location, scale = RHODES_GENERAL
        outcome_type = comparison = area_type = "any"
    else:
        outcome_type = match_arg(outcome, RHODES_OUTCOMES, "rhodes_prior: outcome", _RHODES_ALIASES)
        comparison = _comparison(comparator1, comparator2, _RHODES_PAIRS, "rhodes_prior")
        area_type = match_arg(area, RHODES_AREAS, "rhodes_prior: area")
        i = RHODES_OUTCOMES.index(outcome_type)
        location = RHODES_LOCATION[area_type][comparison][i]
        scale = RHODES_SCALE[area_type][comparison][i]
    prior = log_t(location / 2, scale / 2, 5.0, source=RHODES_SOURCE,
                  label=f"log-Student-t(location={location / 2:1.3f}, scale={scale / 2:1.3f}, d.f.=5)")
    params = {"tau2_location": location, "tau2_scale": scale, "tau_location": location / 2,
              "tau_scale": scale / 2, "df": 5.0}
    return TauPrior("Rhodes et al. (2015)", prior.label, prior.logpdf, True,
                    {**params, "outcome": outcome_type, "comparison": comparison,  # type: ignore[dict-item]
                     "area": area_type},
                    cdf=prior.cdf, ppf=prior.ppf, source=RHODES_SOURCE, log_scale=True)


def empirical_prior(name: str) -> TauPrior:
    """An empirical prior by name: "Turner2015" / "Rhodes2015" (general settings) or
    "Rhodes2015:<outcome>:<comparator1>:<comparator2>[:<area>]" and "Turner2015:<outcome>:<comparator1>:
    <comparator2>", each part matched by prefix (e.g. "Rhodes2015:pain:non-pharma:placebo")."""
    parts = [p.strip() for p in name.split(":")]
    head = parts[0].lower()
    if head not in ("turner2015", "rhodes2015"):
        raise ValueError(f"empirical_prior: {name!r} does not start with 'Turner2015' or 'Rhodes2015'")
    if len(parts) == 1:
        return turner_prior() if head == "turner2015" else rhodes_prior()
    if head == "turner2015":
        if len(parts) != 4:
            raise ValueError(f"empirical_prior: {name!r}: expected 'Turner2015:<outcome>:<comparator1>:<comparator2>'")
        return turner_prior(parts[1], parts[2], parts[3])
    if len(parts) not in (4, 5):
        raise ValueError(f"empirical_prior: {name!r}: expected "
                         "'Rhodes2015:<outcome>:<comparator1>:<comparator2>[:<area>]'")
    return rhodes_prior(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else "other")


_SCALED = {"halfnormal": half_normal, "half-normal": half_normal, "halfcauchy": half_cauchy,
           "half-cauchy": half_cauchy, "exponential": lambda s: exponential(1 / s)}


def _user_density(fun: Callable, vi: np.ndarray) -> TauPrior:
    """A prior given as a density function of tau (as bayesmeta's `tau.prior=function(t) ...`). Its
    normalising constant is found by numerical integration, as bayesmeta; the prior counts as proper when
    that integral is finite."""

    def density(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        try:
            out = np.asarray(fun(t), dtype=float)
            if out.shape != t.shape:
                raise ValueError
        except (TypeError, ValueError):
            out = np.array([float(fun(float(x))) for x in t.reshape(-1)]).reshape(t.shape)
        return out

    probe = density(np.array([0.0, 0.1, 1.0]) * math.sqrt(float(np.median(vi))) + 1e-3)
    if not np.all(np.isfinite(probe)) or np.any(probe < 0):
        raise ValueError(f"tau_prior: the density function returned {probe.tolist()} at positive tau; it must "
                         "return non-negative finite numbers")
    with np.errstate(all="ignore"):
        total, err, *rest = integrate.quad(lambda x: float(density(np.array([x]))[0]), 0, math.inf, epsabs=0,
                                           epsrel=1e-11, limit=500, full_output=1)
    ok = len(rest) < 2 and math.isfinite(total) and total > 0
    const = math.log(total) if ok and abs(total - 1) > err else 0.0
    name = getattr(fun, "__name__", "function")

    def logpdf(t):
        t = np.asarray(t, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(t >= 0, np.log(density(np.maximum(t, 0))) - const, -np.inf)

    return TauPrior("user", f"user-supplied density {name}()", logpdf, bool(ok))


def resolve_tau_prior(tau_prior, tau_prior_scale, vi: np.ndarray) -> TauPrior:
    """The `TauPrior` that `bayesmeta(tau_prior=..., tau_prior_scale=...)` asks for, for variances vi."""
    if isinstance(tau_prior, TauPrior):
        if tau_prior_scale is not None:
            raise ValueError("bayesmeta: tau_prior_scale applies only to a prior given by name")
        return tau_prior
    if isinstance(tau_prior, DataTauPrior):
        return tau_prior.bind(vi)
    if isinstance(tau_prior, str):
        key = tau_prior.strip().lower().replace("_", "")
        if key.startswith(("turner2015", "rhodes2015")):
            if tau_prior_scale is not None:
                raise ValueError("bayesmeta: tau_prior_scale does not apply to an empirical prior")
            return empirical_prior(tau_prior)
        if key == "uniform":
            return uniform() if tau_prior_scale is None else uniform(tau_prior_scale)
        if key in _SCALED:
            if tau_prior_scale is None:
                raise ValueError(f"bayesmeta: tau_prior={tau_prior!r} needs tau_prior_scale (its scale)")
            return _SCALED[key](tau_prior_scale)
        if key in REFERENCE_PRIORS:
            if tau_prior_scale is not None:
                raise ValueError(f"bayesmeta: tau_prior={tau_prior!r} takes no tau_prior_scale")
            return REFERENCE_PRIORS[key].bind(vi)
        names = ["uniform", "halfnormal", "halfcauchy", "exponential", *sorted(REFERENCE_PRIORS), "Turner2015[:...]",
                 "Rhodes2015[:...]"]
        raise ValueError(f"bayesmeta: tau_prior={tau_prior!r} is not one of {names}; or pass a TauPrior "
                         "(half_t, log_normal, log_t, turner_prior, rhodes_prior, ...) or a density function")
    if callable(tau_prior):
        if tau_prior_scale is not None:
            raise ValueError("bayesmeta: tau_prior_scale applies only to a prior given by name")
        return _user_density(tau_prior, vi)
    raise TypeError(f"bayesmeta: tau_prior must be a name, a TauPrior or a density function, got {tau_prior!r}")


__all__ = [
    "COMPARATORS", "RHODES_AREAS", "RHODES_COMPARISONS", "RHODES_GENERAL", "RHODES_LOCATION", "RHODES_OUTCOMES",
    "RHODES_SCALE", "RHODES_SOURCE", "REFERENCE_PRIORS", "TURNER_COMPARISONS", "TURNER_GENERAL", "TURNER_MU",
    "TURNER_OUTCOMES", "TURNER_SIGMA", "TURNER_SOURCE", "DataTauPrior", "TauPrior", "empirical_prior",
    "exponential", "half_cauchy", "half_normal", "half_t", "log_normal", "log_t", "match_arg", "resolve_tau_prior",
    "rhodes_prior", "turner_prior", "uniform",
]
