"""The multiverse of one meta-analysis: every combination of defensible analytic choices, fitted at once.

A specification (`Choices`) is one value for each of nine choices. Six of them shape the data, i.e. which
(yi, vi) are pooled (`DATA_CHOICES`):

* ``correlation``: the baseline-final correlation that imputes a missing change-score SD (Cochrane Handbook
  6.3, §6.5.2.8): "estimated" from the arms that report all three SDs (today's rule; the Handbook default 0.5
  where none does: `metaexercise.extraction.comparisons.estimate_change_correlation`), or 0.2, 0.5, 0.8;
* ``window_rule``: which time point of a follow-up window serves: the one "closest" to the window's target
  (today's rule), or the "latest" or "earliest" inside it (`FollowUpWindow.rule`);
* ``multiarm``: a multi-arm trial's arms "combine"d into one group per side (today; Handbook Table 6.5.a) or
  "split" into pairwise comparisons with a shared arm's n divided (Handbook §23.3.4);
* ``rob_filter``: "all" studies, or "without high" overall risk of bias (a study with no rating is kept);
* ``outliers``: "all" comparisons, or "without flagged": without those the review's rule flags in the full fit
  of that data set (`metaexercise.review.analyses._flagged`; the flagging fit uses the analysis's own model,
  as `metaexercise run` does, so the outliers do not change with the τ² estimator of a specification);
* ``effect_basis``: Hedges' g with the "exact" correction (today; metafor's ``escalc("SMD")``), RevMan 5's
  approximate g ("revman5") or uncorrected Cohen's d ("cohen") (`metaexercise.engine.smd_conventions`). The
  basis applies to arm-level rows; a contrast-only study keeps the g (or SMD) its printed contrast gives.
  An MD review has one basis, "MD".

Three choices are the model's: the τ² ``estimator`` (REML, DL, ML, PM: `rma_batch`), the ``ci_method`` ("z";
"knha": Knapp & Hartung 2003, Stat Med 22:2693, SE × sqrt(s²_w) and t(k−1); "t": t(k−1) on the ordinary
SE, metafor's ``test="t"``) and the ``pi_method``: μ̂ ± c·sqrt(SE² + τ̂²) with c from N(0, 1) ("z"), t(k−1)
or t(k−2) (Higgins, Thompson & Spiegelhalter 2009, J R Stat Soc A 172:137), where SE is that of the CI
method, as metafor's `predict.rma` takes it (so "z"/"z", "knha"/"t(k-1)" and "t"/"t(k-1)" are metafor's
``test="z"``, ``"knha"`` and ``"t"`` intervals).

Computation: the data-shaping choices give the data sets; each task builds the data sets of one
(correlation, window rule, multi-arm) triple (one `build_comparisons` per comparator class), optionally on
Dask. Identical data sets are fitted once: per estimator, one `rma_batch` call over every distinct data set
(rows = data sets); every CI and PI is then derived from (estimate, SE, τ², k, s²_w) arithmetically. The
data sets are built by the same functions whatever the scheduler, and the fits run in this process, so the
table is the same for 1 or N workers.

The specification equal to the analysis as declared (`today`) is marked ``is_main``; its numbers are those
`metaexercise run` writes to analyses.csv, computed the same way (`run_analysis`), after checking that its
data set is the one the run pools.

Effects in points (``vas_points``) are the SMD × the pooled baseline SD of that data set's studies
(`metaexercise.review.analyses.baseline_sd`, as analyses.csv's vas_points), and an effect "reaches the
MID" when its points, in the direction of benefit (the outcome's `benefit`), are at least the MID.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from metaexercise import atomic
from metaexercise.engine.batch import rma_batch
from metaexercise.engine.diagnostics import influence
from metaexercise.engine.kernels import BATCH_METHODS
from metaexercise.engine.model import rma
from metaexercise.engine.smd_conventions import SMD_BASES, smd
from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.comparisons import WINDOW_RULES, estimate_change_correlation
from metaexercise.extraction.sheets import Extraction, load_extraction
from metaexercise.review import replica
from metaexercise.review.analyses import (
    BaselineSDIndex,
    _filter_mask,
    _flagged,
    _with_effects,
    baseline_sd,
    check_not_mixed,
    run_analysis,
    stacked_comparisons,
)
from metaexercise.review.declaration import Review
from metaexercise.review.multiverse_columns import CHOICE_COLUMNS, COLUMNS, DATA_CHOICES, OK
from metaexercise.review.project import Project
from metaexercise.review.run import FLOAT_FORMAT
from metaexercise.review.specs import ROB_OVERALL, AnalysisSpec, load_specs
from metaexercise.review.vocabulary import AnalysisKind, AnalysisStatus
from metaexercise.spreadsheet_safety import csv_text
from metaexercise.vocabulary import DataSource, RobJudgement

#: The values each choice may take.
ESTIMATORS = ("REML", "DL", "ML", "PM")
CI_METHODS = ("z", "knha", "t")
PI_METHODS = ("z", "t(k-1)", "t(k-2)")
CORRELATIONS = ("estimated", "0.2", "0.5", "0.8")
OUTLIER_RULES = ("all", "without flagged")
ROB_FILTERS = ("all", "without high")
MULTIARM = ("combine", "split")
#: The basis of an MD review (the SMD conventions do not apply to it).
MD_BASIS = "MD"


@dataclass(frozen=True, slots=True)
class Choices:
    """One specification: a value for each choice (defaults: the review's rules as `metaexercise run` applies
    them to an analysis with REML, z-tests and no outlier exclusion)."""

    estimator: str = "REML"
    ci_method: str = "z"
    pi_method: str = "z"
    correlation: str = "estimated"
    window_rule: str = "closest"
    outliers: str = "all"
    rob_filter: str = "all"
    multiarm: str = "combine"
    effect_basis: str = "exact"

    @property
    def data_key(self) -> tuple[str, ...]:
        """The data-shaping choices (`DATA_CHOICES`), which name the data set this specification pools."""
        return tuple(getattr(self, name) for name in DATA_CHOICES)


_ALLOWED = {"estimator": ESTIMATORS, "ci_method": CI_METHODS, "pi_method": PI_METHODS,
            "correlation": CORRELATIONS, "window_rule": WINDOW_RULES, "outliers": OUTLIER_RULES,
            "rob_filter": ROB_FILTERS, "multiarm": MULTIARM, "effect_basis": (*SMD_BASES, MD_BASIS)}


@dataclass(frozen=True, slots=True)
class Grid:
    """The values tried for each choice; the multiverse is their Cartesian product (`specifications`)."""

    estimator: tuple[str, ...] = ESTIMATORS
    ci_method: tuple[str, ...] = CI_METHODS
    pi_method: tuple[str, ...] = PI_METHODS
    correlation: tuple[str, ...] = CORRELATIONS
    window_rule: tuple[str, ...] = WINDOW_RULES
    outliers: tuple[str, ...] = OUTLIER_RULES
    rob_filter: tuple[str, ...] = ROB_FILTERS
    multiarm: tuple[str, ...] = MULTIARM
    effect_basis: tuple[str, ...] = SMD_BASES

    def __post_init__(self) -> None:
        for f in fields(self):
            values = getattr(self, f.name)
            if isinstance(values, str) or not isinstance(values, tuple) or not values:
                raise TypeError(f"Grid.{f.name} must be a non-empty tuple of strings, got {values!r}")
            if len(set(values)) != len(values):
                raise ValueError(f"Grid.{f.name} lists a value twice: {values!r}")
            for v in values:
                if v not in _ALLOWED[f.name] and not (f.name == "estimator" and v in _RMA_ONLY):
                    raise ValueError(f"Grid.{f.name}: {v!r} is not one of {', '.join(_ALLOWED[f.name])}")

    @property
    def size(self) -> int:
        """The number of specifications: the product of the numbers of values."""
        return math.prod(len(getattr(self, f.name)) for f in fields(self))

    def levels(self) -> dict[str, tuple[str, ...]]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def specifications(self) -> Iterator[Choices]:
        """Every combination, in the order of the table's rows (the last choice varying fastest)."""
        names = CHOICE_COLUMNS
        for combo in itertools.product(*(getattr(self, n) for n in names)):
            yield Choices(**dict(zip(names, combo, strict=True)))

    def data_keys(self) -> list[tuple[str, ...]]:
        return list(itertools.product(*(getattr(self, n) for n in DATA_CHOICES)))


#: τ² estimators `rma` fits but `rma_batch` does not: an analysis declaring one keeps it as its own choice
#: (fitted with `rma`, one data set at a time).
_RMA_ONLY = ("EE", "HE", "HS", "SJ", "EB")


def today(spec: AnalysisSpec, review: Review) -> Choices:
    """The specification that is the analysis as declared: its model, outliers as it says, and the review's
    rules for everything else."""
    m = spec.model
    return Choices(estimator=m.method, ci_method=m.test, pi_method="z" if m.test == "z" else "t(k-1)",
                   outliers=OUTLIER_RULES[1] if spec.exclude_outliers else OUTLIER_RULES[0],
                   effect_basis=MD_BASIS if review.measure == "MD" else "exact")


def grid_for(spec: AnalysisSpec, review: Review, base: Grid | None = None) -> Grid:
    """`base` (default: every value of every choice) fitted to the analysis: choices that cannot vary are
    held at today's value (no follow-up window: the window rule; an MD review: the SMD basis; final values:
    the change-score correlation), and today's value of every choice is in the grid."""
    base = Grid() if base is None else base
    now = today(spec, review)
    levels = base.levels()
    if spec.window is None:
        levels["window_rule"] = (now.window_rule,)
    if review.measure == "MD":
        levels["effect_basis"] = (MD_BASIS,)
    if review.basis == "final":
        levels["correlation"] = (now.correlation,)
    for name, values in levels.items():
        mine = getattr(now, name)
        if mine not in values:
            levels[name] = (mine, *values)
    return Grid(**levels)


def check_spec(spec: AnalysisSpec) -> None:
    """A multiverse varies the choices of one pooled meta-analysis: a meta-regression is refused."""
    if spec.kind is not AnalysisKind.META_ANALYSIS:
        raise SpecError(f"analyses/{spec.file}, analysis '{spec.id}': a {spec.kind}; the multiverse varies the "
                        "choices of a pooled meta-analysis (kind: meta-analysis)")


# ---------------------------------------------------------------------------------------------- data sets
@dataclass(frozen=True, slots=True)
class DataSet:
    """The comparisons one combination of data-shaping choices pools: `key` as `Choices.data_key`."""

    key: tuple[str, ...]
    study_ids: tuple[str, ...]
    yi: np.ndarray
    vi: np.ndarray
    r_value: float
    vas_sd: float
    #: "" when it can be fitted (k >= 2), else why not (the ``status`` of its specifications)
    status: str = ""

    @property
    def k(self) -> int:
        return int(self.yi.shape[0])


def _stacked(spec: AnalysisSpec, extraction: Extraction, review: Review, window_rule: str, multiarm: str,
             correlation: float | None) -> pd.DataFrame:
    """The comparisons of every class the spec stacks (`metaexercise.review.analyses.stacked_comparisons`)
    under the given window rule, multi-arm handling and correlation."""
    return stacked_comparisons(spec, extraction, review, window_rule=window_rule, multiarm=multiarm,
                               correlation=correlation)[0]


def _effects(frame: pd.DataFrame, basis: str, measure: str) -> pd.DataFrame:
    """`frame` (a copy) with yi/vi of its arm-level rows under `basis`; contrast rows keep theirs."""
    frame = frame.copy()
    if basis in ("exact", MD_BASIS):
        return _with_effects(frame, measure)  # exactly what `metaexercise run` pools
    need = frame["yi"].isna().to_numpy()
    if need.any():
        arm = frame.loc[need]
        yi, vi = smd(basis, arm["m1i"], arm["sd1i"], arm["n1i"], arm["m2i"], arm["sd2i"], arm["n2i"])
        frame.loc[need, "yi"] = yi
        frame.loc[need, "vi"] = vi
    return frame


def _flags(frame: pd.DataFrame, spec: AnalysisSpec, cache: dict) -> tuple[np.ndarray, str]:
    """The review's outlier flags in the full fit of `frame` with the analysis's own model (as `metaexercise
    run`), and "" or why the fit failed; cached by the data (identical data sets are flagged once)."""
    if len(frame) < 2:
        return np.zeros(len(frame), dtype=bool), ""
    yi, vi = frame["yi"].to_numpy(float), frame["vi"].to_numpy(float)
    key = (yi.tobytes(), vi.tobytes())
    if key not in cache:
        m = spec.model
        try:
            fit = rma(yi, vi, method=m.method, test=m.test, level=m.level)
        except ValueError as exc:
            cache[key] = (np.zeros(len(frame), dtype=bool), f"fit failed: {exc}")
        else:
            cache[key] = (_flagged(influence(fit)), "")
    return cache[key]


class _BaselineSD:
    """`metaexercise.review.analyses.baseline_sd` for many data sets of one outcome, on one `BaselineSDIndex`;
    an MD on a common scale needs no SD (1)."""

    def __init__(self, extraction: Extraction, review: Review, outcome: str):
        self.extraction = extraction
        self.outcome = review.outcome(outcome)
        self.md = review.measure == "MD"
        self.index = BaselineSDIndex(extraction, self.outcome)

    def sd(self, frame: pd.DataFrame) -> float:
        """The SD re-expressing this data set's SMD in points (NaN: none); an MD on a common scale: 1."""
        if self.md:
            return 1.0 if self.outcome.normalised else math.nan
        return baseline_sd(self.extraction, frame, self.outcome, self.index).sd


def build_data_sets(spec: AnalysisSpec, extraction: Extraction, review: Review, grid: Grid, window_rule: str,
                    multiarm: str) -> list[DataSet]:
    """The data sets of one (window rule, multi-arm) pair: one per combination of the grid's correlations,
    risk-of-bias filters, outlier rules and effect bases. Deterministic (one Dask task)."""
    flag_cache: dict = {}
    baseline = _BaselineSD(extraction, review, spec.outcome)
    out = []
    for correlation in grid.correlation:
        r = None if correlation == "estimated" else float(correlation)
        r_value = estimate_change_correlation(extraction, outcome=spec.outcome).r if r is None else r
        frame = _stacked(spec, extraction, review, window_rule, multiarm, r)
        if len(frame):
            check_not_mixed(frame, spec.id)
            keep, _why = _filter_mask(spec, frame)
            frame = frame[keep].reset_index(drop=True)
        for rob in grid.rob_filter:
            sub = frame
            if rob == "without high" and len(frame):
                sub = frame[~frame[ROB_OVERALL].eq(RobJudgement.HIGH).to_numpy(bool)].reset_index(drop=True)
            for basis in grid.effect_basis:
                eff = _effects(sub, basis, review.measure) if len(sub) else sub
                flags, failed = (_flags(eff, spec, flag_cache) if OUTLIER_RULES[1] in grid.outliers
                                 else (np.zeros(len(eff), dtype=bool), ""))
                for rule in grid.outliers:
                    kept = eff[~flags].reset_index(drop=True) if rule == OUTLIER_RULES[1] and len(eff) else eff
                    k = len(kept)
                    status = failed
                    if k < 2:
                        reason = "without outliers" if rule == OUTLIER_RULES[1] and len(eff) >= 2 else ""
                        status = str(AnalysisStatus.insufficient(k, reason))
                    out.append(DataSet(
                        key=(correlation, window_rule, multiarm, rob, rule, basis),
                        study_ids=tuple(kept["study_id"].astype(str)) if k else (),
                        yi=kept["yi"].to_numpy(float) if k else np.empty(0),
                        vi=kept["vi"].to_numpy(float) if k else np.empty(0),
                        r_value=float(r_value), vas_sd=baseline.sd(kept) if k and not status else math.nan,
                        status=status))
    return out


def _tasks(grid: Grid) -> list[tuple[str, str]]:
    return list(itertools.product(grid.window_rule, grid.multiarm))


def data_sets(spec: AnalysisSpec, extraction: Extraction, review: Review, grid: Grid, *,
              scheduler=None) -> dict[tuple[str, ...], DataSet]:
    """Every data set of the grid, by key. `scheduler`: None or "synchronous" (this process), "threads" (Dask's
    threaded scheduler), a `distributed.Client`, or the address of a Dask scheduler. The result does not
    depend on it: each task (one per window rule and multi-arm handling) is a pure function of its inputs,
    and results are gathered in task order."""
    tasks = _tasks(grid)
    if scheduler in (None, "synchronous"):
        parts = [build_data_sets(spec, extraction, review, grid, *t) for t in tasks]
    elif scheduler == "threads":
        import dask

        delayed = [dask.delayed(build_data_sets, pure=True)(spec, extraction, review, grid, *t) for t in tasks]
        parts = list(dask.compute(*delayed, scheduler="threads"))
    else:
        from distributed import Client

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            shared = client.scatter([extraction, review], broadcast=True)
            futures = [client.submit(build_data_sets, spec, shared[0], shared[1], grid, *t, pure=False)
                       for t in tasks]
            parts = client.gather(futures)
        finally:
            if client is not scheduler:
                client.close()
    return {ds.key: ds for part in parts for ds in part}


# ---------------------------------------------------------------------------------------------- fitting
@dataclass(frozen=True, slots=True)
class Fits:
    """Per distinct data set (rows) and estimator (columns): the z-test fit's estimate, SE, τ², s²_w and a
    status ("" when fitted)."""

    estimate: np.ndarray
    se: np.ndarray
    tau2: np.ndarray
    kh_factor: np.ndarray
    status: np.ndarray


def _padded(sets: list[DataSet]) -> tuple[np.ndarray, np.ndarray]:
    width = max(ds.k for ds in sets)
    y = np.full((len(sets), width), np.nan)
    v = np.full((len(sets), width), np.nan)
    for i, ds in enumerate(sets):
        y[i, :ds.k] = ds.yi
        v[i, :ds.k] = ds.vi
    return y, v


def _fit_one_rma(ds: DataSet, method: str, level: float) -> tuple[float, float, float, float, str]:
    try:
        z = rma(ds.yi, ds.vi, method=method, level=level)
        kh = rma(ds.yi, ds.vi, method=method, test="knha", level=level)
    except ValueError as exc:
        return math.nan, math.nan, math.nan, math.nan, f"fit failed: {exc}"
    return z.estimate, float(z.se[0]), z.tau2, (float(kh.se[0]) / float(z.se[0])) ** 2, ""


def fit_data_sets(sets: list[DataSet], estimators: tuple[str, ...], level: float = 95.0) -> Fits:
    """Fit every data set with every estimator: one `rma_batch` call per batched estimator over all data sets
    (rows); `rma`, one data set at a time, for an estimator the batch does not fit. A call that refuses a row
    (e.g. one study outweighing the others) is redone row by row so that only that row fails."""
    n, m = len(sets), len(estimators)
    est, se, tau2, kh = (np.full((n, m), np.nan) for _ in range(4))
    status = np.full((n, m), "", dtype=object)
    if n == 0:
        return Fits(est, se, tau2, kh, status)
    y, v = _padded(sets)
    for j, method in enumerate(estimators):
        if method not in BATCH_METHODS:
            for i, ds in enumerate(sets):
                est[i, j], se[i, j], tau2[i, j], kh[i, j], status[i, j] = _fit_one_rma(ds, method, level)
            continue
        try:
            rows = [(slice(None), rma_batch(y, v, method, level=level))]
        except ValueError:
            rows = []
            for i in range(n):
                try:
                    rows.append((slice(i, i + 1), rma_batch(y[i:i + 1], v[i:i + 1], method, level=level)))
                except ValueError as exc:
                    status[i, j] = f"fit failed: {exc}"
        for where, res in rows:
            est[where, j], se[where, j], tau2[where, j], kh[where, j] = res.estimate, res.se, res.tau2, res.kh_factor
            bad = np.flatnonzero(~res.converged)
            status[np.arange(n)[where][bad], j] = "did not converge"
    return Fits(est, se, tau2, kh, status)


def intervals(estimate, se, tau2, k, kh_factor, ci_method, pi_method, level: float = 95.0) -> dict[str, np.ndarray]:
    """CI and PI of each row from a z-test fit (estimate, SE, τ², k and the Knapp-Hartung factor s²_w, as
    `rma_batch` returns them) under the row's `ci_method` ("z", "knha", "t") and `pi_method` ("z", "t(k-1)",
    "t(k-2)"). CI: μ̂ ± c·SE_ci with SE_ci = SE·sqrt(s²_w) and c = t(k−1) for "knha" (Knapp & Hartung 2003),
    SE_ci = SE and c = t(k−1) for "t", c = z otherwise (metafor 3.8 `rma(test=)`); PI: μ̂ ± c·sqrt(SE_ci² + τ̂²)
    (`predict.rma`), c from N(0, 1), t(k−1) or t(k−2) (Higgins et al. 2009); NaN where the t has no degrees of
    freedom. Returns se (SE_ci), ci_lb, ci_ub, pi_lb, pi_ub."""
    estimate, se, tau2, kh = (np.asarray(a, dtype=float) for a in (estimate, se, tau2, kh_factor))
    k = np.asarray(k, dtype=float)
    ci_method, pi_method = np.asarray(ci_method, dtype=object), np.asarray(pi_method, dtype=object)
    bad = set(np.unique(ci_method)) - set(CI_METHODS) | set(np.unique(pi_method)) - set(PI_METHODS)
    if bad:
        raise ValueError(f"intervals: unknown CI or PI method(s) {sorted(bad)}")
    p = 1.0 - (1.0 - level / 100.0) / 2.0
    z = special.ndtri(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        t1 = np.where(k > 1, special.stdtrit(np.maximum(k - 1, 1), p), np.nan)
        t2 = np.where(k > 2, special.stdtrit(np.maximum(k - 2, 1), p), np.nan)
        knha = ci_method == "knha"
        se_ci = np.where(knha, se * np.sqrt(kh), se)
        c_ci = np.where(ci_method == "z", z, t1)
        c_pi = np.select([pi_method == "z", pi_method == "t(k-1)"], [z, t1], t2)
        half_ci = c_ci * se_ci
        half_pi = c_pi * np.sqrt(se_ci * se_ci + tau2)
    return {"se": se_ci, "ci_lb": estimate - half_ci, "ci_ub": estimate + half_ci,
            "pi_lb": estimate - half_pi, "pi_ub": estimate + half_pi}


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True, slots=True)
class Multiverse:
    """The table (`COLUMNS`, one row per specification), the grid, today's choices and the analysis."""

    spec: AnalysisSpec
    grid: Grid
    today: Choices
    table: pd.DataFrame
    lower_is_better: bool
    mid: float
    synthetic: bool
    measure: str = "SMD"

    @property
    def main(self) -> pd.Series:
        return self.table.loc[self.table["is_main"]].iloc[0]


def _main_row(spec: AnalysisSpec, extraction: Extraction, review: Review, main: DataSet) -> dict:
    """The main specification's numbers as `metaexercise run` computes them (`run_analysis`), after checking
    that it pools the same data as the main specification's data set."""
    result = run_analysis(spec, extraction, review)
    row = result.row()
    st = result.studies
    if len(st):
        used = st[~st["excluded_as_outlier"].astype(bool)]
        same = (np.array_equal(used["yi"].to_numpy(float), main.yi)
                and np.array_equal(used["vi"].to_numpy(float), main.vi))
    else:
        same = main.k == 0
    if not same:
        raise RuntimeError(f"multiverse of '{spec.id}': the main specification's data set differs from the "
                           "comparisons `metaexercise run` pools; the multiverse would not contain the main analysis")
    return {name: row[name] for name in ("k", "estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2",
                                         "vas_points", "vas_sd")}


def compute(spec: AnalysisSpec, extraction: Extraction, review: Review, grid: Grid | None = None, *,
            scheduler=None) -> Multiverse:
    """The multiverse of `spec` on `extraction` (`grid`: default every value of every choice, `grid_for`)."""
    check_spec(spec)
    synthetic = check_not_mixed(extraction.studies, spec.id)
    grid = grid_for(spec, review, grid)
    now = today(spec, review)
    sets = data_sets(spec, extraction, review, grid, scheduler=scheduler)
    # distinct fittable data sets, in the grid's order
    index: dict[tuple[bytes, bytes], int] = {}
    distinct: list[DataSet] = []
    row_of: dict[tuple[str, ...], int] = {}
    for key in grid.data_keys():
        ds = sets[key]
        if ds.status:
            continue
        sig = (ds.yi.tobytes(), ds.vi.tobytes())
        if sig not in index:
            index[sig] = len(distinct)
            distinct.append(ds)
        row_of[key] = index[sig]
    level = spec.model.level
    fits = fit_data_sets(distinct, grid.estimator, level)
    est_col = {m: j for j, m in enumerate(grid.estimator)}
    specs = list(grid.specifications())
    n = len(specs)
    cols = {c: [getattr(s, c) for s in specs] for c in CHOICE_COLUMNS}
    ds_rows = np.array([row_of.get(s.data_key, -1) for s in specs])
    j = np.array([est_col[s.estimator] for s in specs])
    fitted = ds_rows >= 0
    r_i = np.where(fitted, ds_rows, 0)
    take = (lambda a: np.where(fitted, a[r_i, j], np.nan)) if len(distinct) else (lambda a: np.full(n, np.nan))
    est, se, tau2, kh = take(fits.estimate), take(fits.se), take(fits.tau2), take(fits.kh_factor)
    fit_status = (np.where(fitted, fits.status[r_i, j], "") if len(distinct) else np.full(n, "", dtype=object))
    per_set = [sets[s.data_key] for s in specs]
    k = np.array([ds.k for ds in per_set], dtype=float)
    iv = intervals(est, se, tau2, k, kh, cols["ci_method"], cols["pi_method"], level)
    vas_sd = np.array([ds.vas_sd for ds in per_set])
    status = [ds.status or fs or OK for ds, fs in zip(per_set, fit_status, strict=True)]
    notes = np.where((np.array(cols["pi_method"]) == "t(k-2)") & (k == 2) & np.isfinite(est),
                     "t(k-2) prediction interval needs k >= 3", "")
    table = pd.DataFrame({"analysis_id": spec.id, **cols, "r_value": [ds.r_value for ds in per_set],
                          "k": k.astype(int), "estimate": est, "se": iv["se"], "ci_lb": iv["ci_lb"],
                          "ci_ub": iv["ci_ub"], "pi_lb": iv["pi_lb"], "pi_ub": iv["pi_ub"], "tau2": tau2,
                          "vas_points": est * vas_sd, "vas_sd": np.where(np.isfinite(est), vas_sd, np.nan),
                          "status": status, "note": notes, "is_main": [s == now for s in specs]},
                         columns=list(COLUMNS))
    main_at = int(np.flatnonzero(table["is_main"].to_numpy())[0])
    for name, value in _main_row(spec, extraction, review, sets[now.data_key]).items():
        table.at[main_at, name] = value
    outcome = review.outcome(spec.outcome)
    mid = outcome.mid.value if outcome.mid is not None else math.nan
    return Multiverse(spec, grid, now, table, outcome.lower_is_better, float(mid), synthetic, review.measure)


# ---------------------------------------------------------------------------------------------- summary
def _share(flags: np.ndarray, usable: np.ndarray) -> dict:
    count, of = int(np.count_nonzero(flags & usable)), int(np.count_nonzero(usable))
    return {"count": count, "of": of, "share": count / of if of else None}


def _excludes_zero(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo > 0) | (hi < 0)


def summary(mv: Multiverse) -> dict:
    """The multiverse in numbers: how many specifications, and among those with a finite interval (or
    effect in points) the share whose CI excludes 0, whose PI excludes 0, and whose effect reaches the MID
    in the direction of benefit (points = SMD × the data set's baseline SD, as analyses.csv's vas_points)."""
    t = mv.table
    lo, hi, plo, phi = (t[c].to_numpy(float) for c in ("ci_lb", "ci_ub", "pi_lb", "pi_ub"))
    points = t["vas_points"].to_numpy(float)
    ok = t["status"].eq(OK).to_numpy()
    benefit = -points if mv.lower_is_better else points
    with np.errstate(invalid="ignore"):
        reaches = benefit >= mv.mid if np.isfinite(mv.mid) else np.zeros(len(t), dtype=bool)
    mid_usable = ok & np.isfinite(points) & bool(np.isfinite(mv.mid))
    est = t.loc[ok, "estimate"].to_numpy(float)
    main = mv.main
    unit = "points of the outcome's common scale" if np.isfinite(mv.mid) else "no MID declared"
    if not np.isfinite(mv.mid):
        why = "the outcome declares no minimal important difference"
    elif ok.any() and not mid_usable.any():
        why = "no effect in points: no baseline SD reported and no typical SD declared for this outcome"
    else:
        why = ""
    return {
        "analysis_id": mv.spec.id,
        "label": mv.spec.label,
        "synthetic": mv.synthetic,
        "measure": mv.measure,
        "specifications": len(t),
        "fitted": int(ok.sum()),
        "not_fitted": {s: int(c) for s, c in t.loc[~ok, "status"].value_counts().sort_index().items()},
        "choices": {name: list(v) for name, v in mv.grid.levels().items()},
        "main_choices": {name: getattr(mv.today, name) for name in CHOICE_COLUMNS},
        "ci_excludes_0": _share(_excludes_zero(lo, hi), ok & np.isfinite(lo) & np.isfinite(hi)),
        "pi_excludes_0": _share(_excludes_zero(plo, phi), ok & np.isfinite(plo) & np.isfinite(phi)),
        "reaches_mid": {**_share(reaches, mid_usable), "mid": mv.mid if np.isfinite(mv.mid) else None,
                        "unit": unit, "lower_is_better": mv.lower_is_better, "not_computable": why,
                        "rule": "effect in points (SMD x the data set's pooled baseline SD) at least the MID "
                                "in the direction of benefit"},
        "estimate": ({"min": float(est.min()), "median": float(np.median(est)), "max": float(est.max())}
                     if est.size else None),
        "main": {c: _plain(main[c]) for c in ("k", "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2",
                                              "vas_points", "status")},
    }


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return v


def describe(mv: Multiverse, info: dict | None = None) -> str:
    """A few lines for the terminal."""
    s = summary(mv) if info is None else info

    def pct(part: dict) -> str:
        if part["share"] is not None:
            return f"{100 * part['share']:.1f}% of {part['of']}"
        return f"not computable ({part.get('not_computable') or 'no specification with this interval'})"

    lines = [f"{s['analysis_id']}: {s['specifications']} specifications, {s['fitted']} fitted"]
    for status, count in s["not_fitted"].items():
        lines.append(f"  {count} not fitted: {status}")
    if s["fitted"]:
        lines.append(f"  CI excludes 0: {pct(s['ci_excludes_0'])}; PI excludes 0: {pct(s['pi_excludes_0'])}; "
                     f"reaches the MID: {pct(s['reaches_mid'])}")
    m = s["main"]
    lines.append("  main specification: " + (
        f"k = {m['k']}, estimate {m['estimate']:.4f} [{m['ci_lb']:.4f}, {m['ci_ub']:.4f}]"
        if m["estimate"] is not None else f"k = {m['k']}, {m['status']}"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- files
def find_spec(project: Project, analysis_id: str) -> AnalysisSpec:
    """The meta-analysis `analysis_id` of the project's analyses/*.yaml; `SpecError` naming the folder and the
    known ids when there is none, or the file when it is a meta-regression."""
    specs = load_specs(project.analyses, review=project.review)
    by_id = {s.id: s for s in specs}
    if analysis_id not in by_id:
        known = [s.id for s in specs if s.kind is AnalysisKind.META_ANALYSIS]
        shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
        raise SpecError(f"{project.analyses}/*.yaml: no analysis '{analysis_id}'; the meta-analyses are: "
                        f"{shown or 'none'}")
    spec = by_id[analysis_id]
    check_spec(spec)
    return spec


def load_source(project: Project, source: DataSource | str) -> Extraction:
    """The sheets of `source`: extraction/, or the replica generated afresh (deterministically, as
    `metaexercise run --source replica` does) into a temporary folder, leaving replica/ untouched."""
    source = DataSource.parse(source)
    review = project.review
    if not source.synthetic:
        extraction = load_extraction(project.extraction, vocabulary=review.sheet_vocabulary())
    else:
        if not review.components.replica:
            raise SpecError(f"{project.declaration}: this project declares no replica (components.replica); "
                            "use --source extraction")
        with tempfile.TemporaryDirectory(prefix="metaexercise-replica-") as tmp:
            replica.write(replica.generate(review=review), tmp)
            extraction = load_extraction(tmp, vocabulary=review.sheet_vocabulary())
    if len(extraction.studies) and check_not_mixed(extraction.studies, str(extraction.source)) != source.synthetic:
        raise ExtractionError(f"{extraction.source}: the sheets are not those of source '{source}'; real data "
                              "live in extraction/, the replica in replica/extraction/")
    return extraction


def output_folder(project: Project, source: DataSource | str) -> Path:
    """results/multiverse/, or results/replica/multiverse/ for the replica."""
    base = project.results / "replica" if DataSource.parse(source).synthetic else project.results
    return base / "multiverse"


def table_csv(mv: Multiverse, data_label: str) -> bytes:
    """The table as CSV bytes, the ``data`` column first, floats as results/analyses.csv writes them."""
    frame = mv.table.copy()
    frame.insert(0, "data", data_label)
    return csv_text(frame, float_format=FLOAT_FORMAT).encode("utf-8")


def write(project: Project, source: DataSource | str, analysis_id: str, files: dict[str, bytes]) -> Path:
    """Write one analysis's files into the multiverse folder as one set (`atomic.replace_folder`): the
    folder is rebuilt beside itself with these files and every other analysis's files carried over, then
    swapped in; an earlier file of this analysis that is not in `files` (e.g. a figure) goes."""
    folder = output_folder(project, source)
    mine = {f"{analysis_id}.{ext}" for ext in ("csv", "json", "png")} | set(files)

    def build(staging: Path) -> None:
        for name, data in files.items():
            (staging / name).write_bytes(data)

    atomic.replace_folder(folder, build, keep=lambda name: name not in mine)
    return folder
