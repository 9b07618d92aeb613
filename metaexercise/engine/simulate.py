"""Simulation studies of tau^2 estimators and interval methods for random-effects meta-analysis of
standardized mean differences, run on Dask.

Data-generating model (per replicate, per study i = 1..k; Hedges & Olkin 1985, ch. 5): true effect
theta_i ~ N(mu, tau^2); two arms of n_i/2 patients with unit SD; the observed mean difference
~ N(theta_i, 1/n1 + 1/n2) and pooled variance ~ chi^2(n1 + n2 - 2) / (n1 + n2 - 2); Hedges' g with the
exact correction J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)), m = n1 + n2 - 2, and the sampling variance
metafor's escalc("SMD") uses by default (vtype "LS"): 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)).
Study sizes are fixed across replicates: the (i - 0.5)/k quantiles of a log-normal with the scenario's
median and log-scale SD.

Each replicate is fitted with every tau^2 estimator (`rma_batch`: DL, REML, ML, PM) and judged on
* tau^2 and mu: bias and RMSE;
* confidence intervals for mu: Wald (z), Knapp & Hartung (2003, Stat Med 22:2693) and its truncated
  variant (variance factor max(1, q); Knapp & Hartung 2003, Roever et al. 2015 BMC Med Res Methodol 15:99):
  coverage and width;
* prediction intervals for a new study's true effect, with z (metafor's predict.rma under test="z") or
  t(k - 2) (Higgins, Thompson & Spiegelhalter 2009, J R Stat Soc A 172:137) quantiles: coverage (the
  probability that theta_new ~ N(mu, tau^2) falls inside the interval, averaged over replicates) and width.
Monte Carlo standard errors as Morris, White & Crowther (2019, Stat Med 38:2074, Table 6).
Replicates whose fit did not converge (Fisher scoring within `rma`'s maxiter) are excluded and counted.

Reproducibility: replicates are cut into chunks of a fixed size; chunk c of scenario s draws from
numpy's SeedSequence(seed).spawn(S)[s].spawn(C)[c], and chunk results are combined in a fixed order,
so the same seed gives identical numbers whatever the scheduler and the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from metaexercise.engine import kernels
from metaexercise.engine.batch import BatchControl, rma_batch, set_threads

ESTIMATORS = kernels.BATCH_METHODS  #: the estimators rma_batch fits: ("DL", "REML", "ML", "PM")
CI_METHODS = ("wald", "knha", "knha_trunc")
PI_METHODS = ("z", "t(k-2)")

#: Control of the simulation fits: rma's defaults (metafor's algorithm, threshold 1e-12, maxiter 1000).
SIM_CONTROL = BatchControl()

# The review (Fleckenstein et al. 2022, J Pain; medRxiv 2021.12.16.21267900): main contrast "pain, short term,
# individualized vs other exercise" k = 32, SMD -0.28 [-0.42, -0.14], I^2 = 73% (Fig. 3); trial sizes
# "IQR 69-238, median 121" (Results, study characteristics).
REVIEW_K = 32
REVIEW_MU = -0.28
REVIEW_I2 = 0.73
REVIEW_N_MEDIAN = 121.0
#: log-normal SD matching the quartiles 69 and 238: (ln 238 - ln 69) / (2 * 0.6745)
REVIEW_N_SIGMA = float((math.log(238) - math.log(69)) / (2 * stats.norm.ppf(0.75)))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One cell of the simulation grid. `n_median`/`n_sigma`: log-normal of total trial sizes."""

    k: int
    tau2: float
    mu: float
    n_median: float
    n_sigma: float = REVIEW_N_SIGMA
    label: str = ""

    def __post_init__(self):
        if self.k < 3:
            raise ValueError(f"Scenario: k = {self.k}; at least 3 studies are needed (t(k-2) intervals)")
        if self.tau2 < 0:
            raise ValueError(f"Scenario: tau2 = {self.tau2} must be >= 0")
        if self.n_median < 4:
            raise ValueError(f"Scenario: n_median = {self.n_median} must be at least 4")

    def study_sizes(self) -> np.ndarray:
        """Total sizes of the k trials: log-normal quantiles at (i - 0.5)/k, rounded, at least 4."""
        q = stats.norm.ppf((np.arange(self.k) + 0.5) / self.k)
        return np.maximum(4, np.rint(self.n_median * np.exp(self.n_sigma * q))).astype(np.int64)

    def typical_variance(self) -> float:
        """s^2 of I^2 (Higgins & Thompson 2002, eq. 9) at the scenario's study sizes and theta = mu."""
        n = self.study_sizes()
        n1 = n // 2
        n2 = n - n1
        v = 1 / n1 + 1 / n2 + self.mu**2 / (2 * n)
        w = 1 / v
        return float((self.k - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum()))

    @property
    def I2(self) -> float:
        """The I^2 (percent) the scenario's tau^2 gives at its typical within-study variance."""
        s2 = self.typical_variance()
        return 100 * self.tau2 / (self.tau2 + s2)

    @classmethod
    def from_i2(cls, k: int, i2: float, mu: float, n_median: float, n_sigma: float = REVIEW_N_SIGMA,
                label: str = "") -> Scenario:
        """The scenario whose tau^2 gives I^2 = i2 (a fraction in [0, 1)) at its typical variance."""
        if not 0 <= i2 < 1:
            raise ValueError(f"Scenario.from_i2: I2 = {i2} must be a fraction in [0, 1)")
        base = cls(k=int(k), tau2=0.0, mu=float(mu), n_median=float(n_median), n_sigma=float(n_sigma))
        tau2 = i2 / (1 - i2) * base.typical_variance()
        return cls(k=int(k), tau2=float(tau2), mu=float(mu), n_median=float(n_median), n_sigma=float(n_sigma),
                   label=label)


def review_preset() -> list[Scenario]:
    """The review's main contrast: k = 32, I^2 = 73 %, mu = -0.28, median trial size 121 (IQR 69-238)."""
    return [Scenario.from_i2(REVIEW_K, REVIEW_I2, REVIEW_MU, REVIEW_N_MEDIAN, label="review (k=32, I2=73%)")]


def grid(ks: Sequence[int], i2s: Sequence[float], mus: Sequence[float], n_medians: Sequence[float]) -> list[Scenario]:
    """Every combination of k, I^2 (fractions), mu and median trial size."""
    return [Scenario.from_i2(k, i2, mu, n, label=f"k={k}, I2={100 * i2:g}%, mu={mu:g}, n={n:g}")
            for k in ks for i2 in i2s for mu in mus for n in n_medians]


# ------------------------------------------------------------------------------------------------
# one chunk of replicates
# ------------------------------------------------------------------------------------------------


def simulate_smd(scenario: Scenario, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`reps` x k arrays of Hedges' g and its sampling variance (see the module docstring)."""
    n = scenario.study_sizes()
    n1 = n // 2
    n2 = n - n1
    m = n - 2
    theta = rng.normal(scenario.mu, math.sqrt(scenario.tau2), (reps, scenario.k))
    md = rng.normal(theta, np.sqrt(1 / n1 + 1 / n2))
    sp = np.sqrt(rng.chisquare(m, (reps, scenario.k)) / m)
    j = np.exp(special.gammaln(m / 2) - 0.5 * np.log(m / 2) - special.gammaln((m - 1) / 2))
    g = j * md / sp
    vi = 1 / n1 + 1 / n2 + g**2 / (2 * n)
    return g, vi


@dataclass(frozen=True, slots=True)
class _Sums:
    """Sums over replicates of one statistic: count, sum x, sum x^2, sum x^3, sum x^4."""

    n: int
    s1: float
    s2: float
    s3: float
    s4: float

    @classmethod
    def of(cls, x: np.ndarray) -> _Sums:
        x = np.asarray(x, dtype=float)
        return cls(int(x.size), float(x.sum()), float((x**2).sum()), float((x**3).sum()), float((x**4).sum()))

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2, self.s3 + other.s3,
                     self.s4 + other.s4)


def _pi_coverage(lb, ub, mu, tau2):
    if tau2 == 0:
        return ((lb <= mu) & (mu <= ub)).astype(float)
    tau = math.sqrt(tau2)
    return special.ndtr((ub - mu) / tau) - special.ndtr((lb - mu) / tau)


def run_chunk(scenario: Scenario, reps: int, seed: np.random.SeedSequence, estimators: Sequence[str] = ESTIMATORS,
              level: float = 95, threads: int | None = None) -> dict[tuple[str, str, str], dict[str, _Sums]]:
    """Simulate and fit `reps` replicates; return the sums of each (estimator, target, interval) statistic."""
    old = set_threads(threads) if threads else None
    try:
        rng = np.random.default_rng(seed)
        yi, vi = simulate_smd(scenario, reps, rng)
        k = scenario.k
        alpha = 1 - level / 100
        z = special.ndtri(1 - alpha / 2)
        t1 = stats.t.ppf(1 - alpha / 2, k - 1)
        t2 = stats.t.ppf(1 - alpha / 2, k - 2)
        out: dict[tuple[str, str, str], dict[str, _Sums]] = {}
        for est in estimators:
            fit = rma_batch(yi, vi, est, control=SIM_CONTROL)
            ok = fit.converged
            mu_hat = fit.estimate[ok]
            tau2_hat = fit.tau2[ok]
            se = fit.se[ok]
            q = fit.kh_factor[ok]
            out[(est, "fit", "")] = {"failed": _Sums.of(~ok)}
            out[(est, "tau2", "")] = {"error": _Sums.of(tau2_hat - scenario.tau2)}
            out[(est, "mu", "")] = {"error": _Sums.of(mu_hat - scenario.mu)}
            half = {"wald": z * se, "knha": t1 * se * np.sqrt(q), "knha_trunc": t1 * se * np.sqrt(np.maximum(q, 1))}
            for name, h in half.items():
                cover = (mu_hat - h <= scenario.mu) & (scenario.mu <= mu_hat + h)
                out[(est, "mu", name)] = {"coverage": _Sums.of(cover), "width": _Sums.of(2 * h)}
            for name, crit in (("z", z), ("t(k-2)", t2)):
                h = crit * np.sqrt(se**2 + tau2_hat)
                cov = _pi_coverage(mu_hat - h, mu_hat + h, scenario.mu, scenario.tau2)
                out[(est, "theta_new", name)] = {"coverage": _Sums.of(cov), "width": _Sums.of(2 * h)}
        return out
    finally:
        if old is not None:
            set_threads(old)


# ------------------------------------------------------------------------------------------------
# the study: tasks, scheduling, summary
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Performance measures, one row per scenario x estimator x target x interval (`table`)."""

    table: pd.DataFrame
    reps: int
    seed: int
    chunk_reps: int
    scenarios: tuple[Scenario, ...] = field(default=())

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        t = self.table
        cols = ["scenario", "estimator", "target", "interval", "failure_rate", "bias", "rmse", "coverage", "width"]
        return (f"Simulation: {len(self.scenarios)} scenario(s), {self.reps} replicates each, seed {self.seed}\n"
                + t[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))


def _measures(sums: dict[str, _Sums]) -> dict[str, float]:
    """Morris et al. (2019) Table 6: bias, RMSE, coverage and width with their Monte Carlo SEs."""
    out: dict[str, float] = {}
    if "error" in sums:
        s = sums["error"]
        n = s.n
        mean = s.s1 / n if n else np.nan
        var = (s.s2 - n * mean**2) / (n - 1) if n > 1 else np.nan
        mse = s.s2 / n if n else np.nan
        var_sq = (s.s4 - n * mse**2) / (n - 1) if n > 1 else np.nan  # variance of squared errors
        rmse = math.sqrt(mse) if n else np.nan
        out.update(bias=mean, bias_mcse=math.sqrt(max(var, 0) / n) if n > 1 else np.nan,
                   rmse=rmse, rmse_mcse=math.sqrt(max(var_sq, 0) / n) / (2 * rmse) if n > 1 and rmse > 0 else np.nan,
                   n_used=n)
    if "coverage" in sums:
        s = sums["coverage"]
        n = s.n
        p = s.s1 / n if n else np.nan
        var = (s.s2 - n * p**2) / (n - 1) if n > 1 else np.nan
        out.update(coverage=p, coverage_mcse=math.sqrt(max(var, 0) / n) if n > 1 else np.nan, n_used=n)
        w = sums["width"]
        wm = w.s1 / n if n else np.nan
        wv = (w.s2 - n * wm**2) / (n - 1) if n > 1 else np.nan
        out.update(width=wm, width_mcse=math.sqrt(max(wv, 0) / n) if n > 1 else np.nan)
    if "failed" in sums:
        s = sums["failed"]
        out.update(failure_rate=s.s1 / s.n, n_used=s.n - int(s.s1))
    return out


def _task_list(scenarios, reps, seed, chunk_reps):
    roots = np.random.SeedSequence(seed).spawn(len(scenarios))
    tasks = []
    n_chunks = math.ceil(reps / chunk_reps)
    for s, (scenario, root) in enumerate(zip(scenarios, roots, strict=True)):
        for c, child in enumerate(root.spawn(n_chunks)):
            tasks.append((s, c, scenario, min(chunk_reps, reps - c * chunk_reps), child))
    return tasks


def _execute(tasks, estimators, level, scheduler, progress):
    """Run the chunks; returns their results in task order, whatever order they finish in."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="simulate", unit="chunk", disable=not progress)
    results: list = [None] * len(tasks)
    try:
        if scheduler in (None, "synchronous"):
            for i, (_s, _c, scen, n, seq) in enumerate(tasks):
                results[i] = run_chunk(scen, n, seq, estimators, level)
                bar.update()
            return results
        from distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = [client.submit(run_chunk, scen, n, seq, estimators, level, 1, pure=False)
                       for (_s, _c, scen, n, seq) in tasks]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                bar.update()
        finally:
            if client is not scheduler:
                client.close()
        return results
    finally:
        bar.close()


def run_simulation(
    scenarios: Sequence[Scenario],
    reps: int,
    seed: int,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    level: float = 95,
    chunk_reps: int = 500,
    scheduler=None,
    progress: bool = True,
) -> SimulationResult:
    """Run the simulation study.

    `scheduler`: None or "synchronous" (in this process), a `distributed.Client`, or the address of a
    Dask scheduler ("tcp://host:8786"). Results do not depend on it (see the module docstring).
    """
    if reps < 2 or int(reps) != reps:
        raise ValueError(f"run_simulation: reps = {reps!r} must be an integer >= 2")
    if chunk_reps < 1:
        raise ValueError(f"run_simulation: chunk_reps = {chunk_reps!r} must be >= 1")
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad:
        raise ValueError(f"run_simulation: unknown estimators {bad}; choose from {list(ESTIMATORS)}")
    scenarios = tuple(scenarios)
    tasks = _task_list(scenarios, int(reps), int(seed), int(chunk_reps))
    results = _execute(tasks, tuple(estimators), level, scheduler, progress)
    combined: dict[tuple[int, tuple], dict[str, _Sums]] = {}
    for (s, _c, _scen, _n, _seq), res in zip(tasks, results, strict=True):  # fixed order: scenario, chunk
        for key, sums in res.items():
            slot = combined.setdefault((s, key), {})
            for name, v in sums.items():
                slot[name] = slot[name] + v if name in slot else v
    rows = []
    for (s, (est, target, interval)), sums in combined.items():
        scen = scenarios[s]
        row = {"scenario": scen.label or f"scenario {s + 1}", "k": scen.k, "tau2": scen.tau2, "I2": scen.I2,
               "mu": scen.mu, "n_median": scen.n_median, "estimator": est, "target": target,
               "interval": interval, "reps": reps}
        row.update(_measures(sums))
        rows.append(row)
    cols = ["scenario", "k", "tau2", "I2", "mu", "n_median", "estimator", "target", "interval", "reps", "n_used",
            "failure_rate", "bias", "bias_mcse", "rmse", "rmse_mcse", "coverage", "coverage_mcse", "width",
            "width_mcse"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    return SimulationResult(table=table, reps=int(reps), seed=int(seed), chunk_reps=int(chunk_reps),
                            scenarios=scenarios)
