"""How often do prediction intervals contain a new study's true effect? A coverage study of random-effects
prediction intervals at small k, on the batched engine and, optionally, Dask.

Data-generating model, per replicate of a scenario (k, tau^2): sampling variances vi (k of them) from
`vi_sampler`; true effects theta_i ~ N(mu, tau^2); estimates yi ~ N(theta_i, vi), the vi taken as known; a new
study's true effect theta_new ~ N(mu, tau^2). Each replicate is fitted by `rma_batch` (REML by default) and
the 95% prediction intervals are

* "z":      mu_hat +/- z_{0.975} sqrt(tau2_hat + se^2) (metafor's predict.rma under test="z");
* "t_k-1":  mu_hat +/- t_{k-1} sqrt(tau2_hat + se^2);
* "t_k-2":  mu_hat +/- t_{k-2} sqrt(tau2_hat + se^2) (Higgins, Thompson & Spiegelhalter 2009, J R Stat Soc A
  172:137, eq. 4; Riley, Higgins & Deeks 2011, BMJ 342:d549);
* "knha":   mu_hat +/- t_{k-1} sqrt(tau2_hat + se_KH^2), se_KH^2 = q se^2 with q the Knapp-Hartung factor
  (Knapp & Hartung 2003, Stat Med 22:2693; metafor's predict.rma under test="knha", untruncated);
* "bayes":  the central 95% posterior predictive interval of the normal-normal hierarchical model with the
  uniform prior on mu and `bayes_prior` on tau (default half-normal with scale 0.5: tau = 0.5 is large
  heterogeneity for standardized mean differences, and 95% of the prior mass lies below tau = 0.98;
  Roever 2020, J Stat Softw 93(6), Sec. 3.3; Roever et al. 2021, Res Synth Methods 12:448), computed for all
  replicates at once by `bayes.predictive_intervals`.

Coverage is reported two ways: `coverage`, the share of replicates whose interval contains the drawn
theta_new, and `coverage_expected`, the mean over replicates of P(theta_new in interval | interval) =
Phi((ub - mu) / tau) - Phi((lb - mu) / tau) (the indicator mu in interval when tau = 0), an estimator of the
same quantity with smaller Monte Carlo error. Monte Carlo standard errors: sd / sqrt(n) of the per-replicate
values (Morris, White & Crowther 2019, Stat Med 38:2074, Table 6). Replicates whose REML fit did not
converge are dropped from the frequentist methods and counted.

Reproducibility (as engine.simulate): replicates are cut into chunks of `chunk_reps`; chunk c of scenario s
draws from numpy's SeedSequence(seed).spawn(S)[s].spawn(C)[c], and chunk sums are added in a fixed order, so
the same seed gives the same table in one process or on any number of Dask workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from metaexercise.engine.batch import BatchControl, rma_batch, set_threads
from metaexercise.engine.bayes import predictive_intervals
from metaexercise.engine.bayes_priors import TauPrior, half_normal
from metaexercise.engine.simulate import REVIEW_N_MEDIAN, REVIEW_N_SIGMA

METHODS = ("z", "t_k-1", "t_k-2", "knha", "bayes")
TAU2_GRID = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5)
#: the default prior on tau of the Bayesian predictive intervals
BAYES_PRIOR = half_normal(0.5)

VISampler = Callable[[np.random.Generator, int, int], np.ndarray]


def review_vi_sampler(rng: np.random.Generator, n_rep: int, k: int) -> np.ndarray:
    """Sampling variances of standardized mean differences of two-arm trials of the review's sizes: total
    size n ~ log-normal with median 121 and the log-SD of the interquartile range 69-238 (engine.simulate's
    REVIEW_N_MEDIAN, REVIEW_N_SIGMA), rounded, at least 4; arms n1 = n // 2, n2 = n - n1; vi = 1/n1 + 1/n2
    (the SMD's large-sample variance at delta = 0; Hedges & Olkin 1985, ch. 5)."""
    n = np.maximum(4, np.rint(REVIEW_N_MEDIAN * np.exp(REVIEW_N_SIGMA * rng.standard_normal((n_rep, k)))))
    n1 = np.floor(n / 2)
    return 1 / n1 + 1 / (n - n1)


class ConstantVI:
    """A vi_sampler giving every study the same sampling variance (picklable, for Dask)."""

    def __init__(self, vi: float):
        if not (math.isfinite(vi) and vi > 0):
            raise ValueError(f"ConstantVI: vi = {vi!r} must be positive and finite")
        self.vi = float(vi)

    def __call__(self, rng: np.random.Generator, n_rep: int, k: int) -> np.ndarray:
        return np.full((n_rep, k), self.vi)

    def __repr__(self) -> str:
        return f"ConstantVI({self.vi!r})"


@dataclass(frozen=True, slots=True)
class _Sums:
    """count, sum and sum of squares of a per-replicate statistic (chunk results add up exactly in order)."""

    n: int
    s1: float
    s2: float

    @classmethod
    def of(cls, x: np.ndarray) -> _Sums:
        x = np.asarray(x, dtype=float)
        return cls(int(x.size), float(x.sum()), float((x * x).sum()))

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2)

    def mean_mcse(self) -> tuple[float, float]:
        if self.n == 0:
            return math.nan, math.nan
        m = self.s1 / self.n
        if self.n < 2:
            return m, math.nan
        var = max((self.s2 - self.n * m * m) / (self.n - 1), 0.0)
        return m, math.sqrt(var / self.n)


def _intervals(fit, methods: Sequence[str], k: int, level: float, yi, vi, bayes_prior: TauPrior,
               bayes_panels: int | None, bayes_points: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(lower, upper, used) per method; `used` marks the replicates the method's interval exists for."""
    alpha = 1 - level / 100
    crit = {"z": special.ndtri(1 - alpha / 2), "t_k-1": special.stdtrit(k - 1, 1 - alpha / 2),
            "t_k-2": special.stdtrit(k - 2, 1 - alpha / 2), "knha": special.stdtrit(k - 1, 1 - alpha / 2)}
    ok = np.asarray(fit.converged, dtype=bool)
    est, se, tau2, q = fit.estimate, fit.se, fit.tau2, fit.kh_factor
    out = {}
    for m in methods:
        if m == "bayes":
            lb, ub = predictive_intervals(yi, vi, bayes_prior, level=level / 100, panels=bayes_panels,
                                          points=bayes_points)
            out[m] = (lb, ub, np.ones(lb.shape, dtype=bool))
            continue
        se2 = se * se * q if m == "knha" else se * se
        with np.errstate(invalid="ignore"):
            half = crit[m] * np.sqrt(se2 + tau2)
        out[m] = (est - half, est + half, ok)
    return out


def run_chunk(k: int, tau2: float, n_rep: int, seed: np.random.SeedSequence, *, methods: Sequence[str] = METHODS,
              vi_sampler: VISampler = review_vi_sampler, mu: float = 0.0, level: float = 95,
              tau2_method: str = "REML", bayes_prior: TauPrior = BAYES_PRIOR, bayes_panels: int | None = None,
              bayes_points: int = 8, threads: int | None = None) -> dict[str, dict[str, _Sums]]:
    """Simulate `n_rep` meta-analyses of scenario (k, tau2) and return, per method, the sums of the coverage
    indicator, the conditional coverage, the interval width and the failure indicator."""
    old = set_threads(threads) if threads else None
    try:
        rng = np.random.default_rng(seed)
        vi = np.asarray(vi_sampler(rng, n_rep, k), dtype=float)
        if vi.shape != (n_rep, k):
            raise ValueError(f"pi_coverage: vi_sampler returned shape {vi.shape}, expected {(n_rep, k)}")
        tau = math.sqrt(tau2)
        theta = mu + tau * rng.standard_normal((n_rep, k))
        yi = theta + np.sqrt(vi) * rng.standard_normal((n_rep, k))
        theta_new = mu + tau * rng.standard_normal(n_rep)
        fit = rma_batch(yi, vi, tau2_method, control=BatchControl())
        res = {}
        for m, (lb, ub, used) in _intervals(fit, methods, k, level, yi, vi, bayes_prior, bayes_panels,
                                            bayes_points).items():
            lb, ub = lb[used], ub[used]
            hit = (lb <= theta_new[used]) & (theta_new[used] <= ub)
            if tau == 0:
                expected = ((lb <= mu) & (mu <= ub)).astype(float)
            else:
                expected = special.ndtr((ub - mu) / tau) - special.ndtr((lb - mu) / tau)
            res[m] = {"coverage": _Sums.of(hit), "coverage_expected": _Sums.of(expected),
                      "width": _Sums.of(ub - lb), "failed": _Sums.of(~used)}
        return res
    finally:
        if old is not None:
            set_threads(old)


@dataclass(frozen=True)
class PICoverageResult:
    """Coverage of each prediction-interval method, one row per (k, tau2, method) in `table`."""

    table: pd.DataFrame
    n_rep: int
    seed: int
    chunk_reps: int
    level: float
    tau2_method: str
    bayes_prior: str
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def coverage_table(self, column: str = "coverage") -> pd.DataFrame:
        """`column` with one row per (tau2, k) and one column per method."""
        return self.table.pivot_table(index=["tau2", "k"], columns="method", values=column, sort=False)

    def summary(self) -> str:
        head = (f"Prediction-interval coverage: {self.n_rep} replicates per scenario, seed {self.seed}, nominal "
                f"{self.level:g}%, tau^2 by {self.tau2_method}, Bayesian prior on tau {self.bayes_prior}")
        return head + "\n" + self.coverage_table().to_string(float_format=lambda x: f"{x:.3f}")

    def __str__(self) -> str:
        return self.summary()


def _tasks(scenarios, n_rep: int, seed: int, chunk_reps: int):
    roots = np.random.SeedSequence(seed).spawn(len(scenarios))
    n_chunks = math.ceil(n_rep / chunk_reps)
    return [(s, k, tau2, min(chunk_reps, n_rep - c * chunk_reps), child)
            for s, ((k, tau2), root) in enumerate(zip(scenarios, roots, strict=True))
            for c, child in enumerate(root.spawn(n_chunks))]


def _execute(tasks, options: dict, dask, progress: bool) -> list:
    """Chunk results in task order, whatever order they finish in (engine.simulate's pattern)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="pi_coverage", unit="chunk", disable=not progress)
    results: list = [None] * len(tasks)
    try:
        if dask is False or dask is None:
            for i, (_s, k, tau2, n, seq) in enumerate(tasks):
                results[i] = run_chunk(k, tau2, n, seq, **options)
                bar.update()
            return results
        from distributed import Client, as_completed, get_client

        if dask is True:
            client = get_client()
        elif isinstance(dask, Client):
            client = dask
        elif isinstance(dask, str):
            client = Client(dask)
        else:
            raise TypeError(f"pi_coverage: dask must be False, True (the current client), a distributed.Client or "
                            f"a scheduler address, got {dask!r}")
        try:
            futures = [client.submit(run_chunk, k, tau2, n, seq, **options, threads=1, pure=False)
                       for (_s, k, tau2, n, seq) in tasks]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                bar.update()
        finally:
            if isinstance(dask, str):
                client.close()
        return results
    finally:
        bar.close()


def pi_coverage(k_values: Sequence[int] = range(3, 31), tau2_grid: Sequence[float] = TAU2_GRID, n_rep: int = 2000,
                methods: Sequence[str] = METHODS, vi_sampler: VISampler = review_vi_sampler, seed: int = 1,
                dask=False, *, mu: float = 0.0, level: float = 95, tau2_method: str = "REML",
                bayes_prior: TauPrior = BAYES_PRIOR, bayes_panels: int | None = None, bayes_points: int = 8,
                chunk_reps: int = 1000, progress: bool = False) -> PICoverageResult:
    """Coverage of prediction intervals for k in `k_values` and tau^2 in `tau2_grid` (see the module
    docstring). `dask`: False (in this process), True (the current distributed client), a
    `distributed.Client` or a scheduler address; the table does not depend on it."""
    ks = [int(k) for k in k_values]
    if not ks or any(k < 3 or k != kk for k, kk in zip(ks, k_values, strict=True)):
        raise ValueError(f"pi_coverage: k_values must be integers >= 3 (t(k-2) needs k >= 3), got {list(k_values)}")
    t2s = [float(t) for t in tau2_grid]
    if not t2s or any(not (math.isfinite(t) and t >= 0) for t in t2s):
        raise ValueError(f"pi_coverage: tau2_grid must be finite values >= 0, got {list(tau2_grid)}")
    if int(n_rep) != n_rep or n_rep < 2:
        raise ValueError(f"pi_coverage: n_rep = {n_rep!r} must be an integer >= 2")
    if int(chunk_reps) != chunk_reps or chunk_reps < 1:
        raise ValueError(f"pi_coverage: chunk_reps = {chunk_reps!r} must be a positive integer")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"pi_coverage: unknown methods {bad}; choose from {list(METHODS)}")
    if not 0 < level < 100:
        raise ValueError(f"pi_coverage: level = {level!r} must be a percentage between 0 and 100")
    if not math.isfinite(mu):
        raise ValueError(f"pi_coverage: mu = {mu!r} must be finite")
    scenarios = [(k, t2) for t2 in t2s for k in ks]
    tasks = _tasks(scenarios, int(n_rep), int(seed), int(chunk_reps))
    options = {"methods": tuple(methods), "vi_sampler": vi_sampler, "mu": float(mu), "level": float(level),
               "tau2_method": tau2_method, "bayes_prior": bayes_prior,
               "bayes_panels": None if bayes_panels is None else int(bayes_panels),
               "bayes_points": int(bayes_points)}
    results = _execute(tasks, options, dask, progress)
    combined: dict[tuple[int, str], dict[str, _Sums]] = {}
    for (s, *_rest), res in zip(tasks, results, strict=True):  # fixed order: scenario, then chunk
        for m, sums in res.items():
            slot = combined.setdefault((s, m), {})
            for name, v in sums.items():
                slot[name] = slot[name] + v if name in slot else v
    rows = []
    for (s, m), sums in sorted(combined.items(), key=lambda kv: (kv[0][0], list(methods).index(kv[0][1]))):
        k, t2 = scenarios[s]
        cov, cov_se = sums["coverage"].mean_mcse()
        exp_, exp_se = sums["coverage_expected"].mean_mcse()
        width, width_se = sums["width"].mean_mcse()
        rows.append({"k": k, "tau2": t2, "method": m, "n_rep": int(n_rep), "n_used": sums["coverage"].n,
                     "failure_rate": sums["failed"].s1 / sums["failed"].n, "coverage": cov, "coverage_mcse": cov_se,
                     "coverage_expected": exp_, "coverage_expected_mcse": exp_se, "width": width,
                     "width_mcse": width_se})
    return PICoverageResult(table=pd.DataFrame(rows), n_rep=int(n_rep), seed=int(seed), chunk_reps=int(chunk_reps),
                            level=float(level), tau2_method=tau2_method, bayes_prior=bayes_prior.label,
                            settings={"vi_sampler": getattr(vi_sampler, "__name__", repr(vi_sampler)), "mu": mu,
                                      "bayes_panels": bayes_panels, "bayes_points": bayes_points})


__all__ = ["BAYES_PRIOR", "METHODS", "TAU2_GRID", "ConstantVI", "PICoverageResult", "pi_coverage", "review_vi_sampler",
           "run_chunk"]
