"""One analysis spec → its comparisons → Hedges' g → REML fit → diagnostics → tidy rows.

The steps follow the review's Methods (Fleckenstein et al. 2022, medRxiv v2, "Statistics: Meta-analysis
and -regression"): Hedges' g from change scores (`escalc("SMD")`, exact correction, metafor's ``vtype="LS"``)
or the comparison's own g and variance (contrast-only studies); random effects with REML τ², z tests and a
prediction interval (`rma`); outliers by studentized residuals and Cook's distances, Bonferroni-corrected,
two-sided α = .05 (`metaexercise.engine.diagnostics`); Egger's regression test with the standard error as predictor
and the rank correlation test (`metaexercise.engine.bias`); the pooled SMD re-expressed in VAS points
(`metaexercise.review.vas`). Meta-regressions go through `metaexercise.engine.metaregression`.

Comparisons come from `metaexercise.extraction.comparisons.build_comparisons` (follow-up windows, instrument choice,
common scale, multi-arm trials combined so no participant counts twice in one analysis), with the rules the
project declares in review.yaml (`rules_for`): arm roles, the outcome's direction of benefit and common scale,
the effect basis, the windows. A comparator class is the set of control types review.yaml gives it; an
analysis over every class ("any") stacks the classes' comparisons, so a multi-arm study's experimental arm
appears once per class (a meta-regression can then use the class as a moderator).
Every study or arm left out of an analysis is listed with the reason (`AnalysisResult.excluded`).

A review that declares ``effect: {measure: MD}`` pools mean differences instead (`escalc("MD")`, experimental
minus control, on the outcome's declared common scale or, without one, in the instrument's own units; see
`metaexercise.extraction.comparisons` for contrast rows and the ``either`` basis). An MD needs every study on
one scale: an MD analysis of an outcome without a common scale whose studies use different instruments is
refused (`ExtractionError` naming the analysis, the instruments and their studies, and the fix: declare the
outcome's `common_scale` in review.yaml, or pool SMDs) rather than pooling numbers of different units or
silently dropping the studies of all but one instrument. A pooled MD on the common scale is already in
points: it is judged against the outcome's MID directly, with no SD re-expression.

Real and synthetic (replica) rows are never pooled together: `check_not_mixed` raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.engine.effects import escalc
from metaexercise.engine.metaregression import MetaRegression, metareg
from metaexercise.engine.model import RMAResult, rma
from metaexercise.errors import ExtractionError
from metaexercise.extraction.comparisons import ComparisonRules, FollowUpWindow, build_comparisons
from metaexercise.extraction.schema import InclusionStatus, ValueKind
from metaexercise.extraction.sheets import Extraction
from metaexercise.review.declaration import ANY_COMPARATOR, OutcomeDecl, Review
from metaexercise.review.specs import AnalysisSpec
from metaexercise.review.vas import VasEffect, Verdict, pooled_sd, to_vas
from metaexercise.review.vocabulary import AnalysisKind, AnalysisStatus
from metaexercise.vocabulary import SYNTHETIC_LABEL

#: Columns of analyses.csv, in order.
ANALYSIS_COLUMNS = (
    "analysis_id", "label", "kind", "outcome", "comparator", "window", "k", "participants", "estimate", "se",
    "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "I2", "QE", "QEp", "egger_z", "egger_p", "rank_tau", "rank_p",
    "outliers", "vas_points", "vas_ci_lb", "vas_ci_ub", "vas_sd", "vas_sd_source", "meaningful", "status",
    "synthetic", "method", "filters", "notes",
)
#: Columns of studies.csv, in order.
STUDY_COLUMNS = (
    "analysis_id", "study_id", "label", "comparator", "control_type", "arms", "timepoint_weeks", "instrument",
    "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "n_total", "rob_overall", "yi", "vi", "ci_lb", "ci_ub", "weight", "rstudent", "cooks_d",
    "hat", "outlier", "influential", "excluded_as_outlier", "data_kind", "synthetic",
)
#: Columns of excluded.csv, in order: every study or arm an analysis left out, with the reason (the run adds
#: the ``data`` column first, as to every table).
EXCLUDED_COLUMNS = ("analysis_id", "study_id", "arm_id", "category", "reason")
#: Columns of metareg.csv, in order (one row per coefficient; model summaries repeated on each row).
METAREG_COLUMNS = (
    "analysis_id", "label", "outcome", "window", "method", "term", "moderator", "estimate", "se", "zval",
    "pval", "ci_lb", "ci_ub", "k", "QM", "QM_df", "QMp", "QE", "QE_df", "QEp", "tau2", "I2", "R2", "dropped",
    "status", "synthetic",
)


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """Everything one spec produced. `fit` is None when there were too few comparisons (see `status`)."""

    spec: AnalysisSpec
    status: AnalysisStatus
    synthetic: bool
    studies: pd.DataFrame
    fit: RMAResult | None = None
    regtest: object | None = None  #: `metaexercise.engine.bias.RegtestResult` (Egger), None when k < 3
    ranktest: object | None = None  #: `metaexercise.engine.bias.RanktestResult`, None when k < 3
    outliers: tuple[str, ...] = ()
    vas: VasEffect | None = None
    vas_sd: float = float("nan")
    vas_sd_source: str = ""
    regression: MetaRegression | None = None
    notes: tuple[str, ...] = field(default=())
    #: Every study or arm left out: (study_id, arm_id or "", category, reason) (`excluded_rows`).
    excluded: tuple[tuple[str, str, str, str], ...] = field(default=())
    #: The outcome's declared direction of benefit (review.yaml), for the `meaningful` verdict.
    lower_is_better: bool = True

    @property
    def ok(self) -> bool:
        return self.status.ok

    def summary(self) -> str:
        head = f"{self.spec.id}: {self.spec.label}" + (f" [{SYNTHETIC_LABEL}]" if self.synthetic else "")
        if not self.ok:
            return f"{head}\n{self.status}"
        body = self.regression.summary() if self.regression is not None else self.fit.summary()
        return f"{head}\n{body}"

    def row(self) -> dict:
        """This analysis as one row of analyses.csv."""
        s = self.spec
        row = {c: np.nan for c in ANALYSIS_COLUMNS}
        row.update(analysis_id=s.id, label=s.label, kind=str(s.kind), outcome=str(s.outcome),
                   comparator=s.comparator or "", window=s.window or "", status=str(self.status),
                   synthetic=self.synthetic, method=s.model.method,
                   filters="; ".join(f.describe() for f in s.filters) + ("; without outliers"
                                                                         if s.exclude_outliers else ""),
                   notes="; ".join(self.notes), outliers="; ".join(self.outliers),
                   vas_sd_source=self.vas_sd_source, meaningful="")
        used = (self.studies[~self.studies["excluded_as_outlier"].astype(bool)] if len(self.studies)
                else self.studies)
        row["k"] = len(used)
        row["participants"] = float(used["n1i"].sum() + used["n2i"].sum()) if len(used) else 0.0
        fit = self.fit
        if fit is not None and self.regression is None:
            row.update(estimate=fit.estimate, se=float(fit.se[0]), ci_lb=float(fit.ci_lb[0]),
                       ci_ub=float(fit.ci_ub[0]), pi_lb=fit.pi_lb, pi_ub=fit.pi_ub, tau2=fit.tau2, I2=fit.I2,
                       QE=fit.QE, QEp=fit.QEp)
            if self.regtest is not None:
                row.update(egger_z=float(self.regtest.zval), egger_p=float(self.regtest.pval))
            if self.ranktest is not None:
                row.update(rank_tau=float(self.ranktest.tau), rank_p=float(self.ranktest.pval))
            lo, hi = float(fit.ci_lb[0]), float(fit.ci_ub[0])
            row["meaningful"] = str(Verdict.of(lo, hi, self.lower_is_better))
            if self.vas is not None:
                row.update(vas_points=self.vas.points, vas_ci_lb=self.vas.ci_lb, vas_ci_ub=self.vas.ci_ub,
                           vas_sd=self.vas.sd, meaningful=str(self.vas.verdict))
        if self.regression is not None:
            reg = self.regression
            row.update(tau2=reg.tau2, I2=reg.I2, QE=reg.QE, QEp=reg.QEp)
        return row


    def to_frame(self) -> pd.DataFrame:
        """The analysis row as a one-row DataFrame (columns `ANALYSIS_COLUMNS`)."""
        return pd.DataFrame([self.row()], columns=list(ANALYSIS_COLUMNS))


def check_not_mixed(frame: pd.DataFrame, where: str) -> bool:
    """True if every row is synthetic, False if none is; raise if real and replica rows are mixed."""
    flags = frame["synthetic"].astype("boolean").fillna(False).astype(bool)
    if flags.any() and not flags.all():
        real = sorted(frame.loc[~flags.to_numpy(), "study_id"].astype(str))[:5]
        fake = sorted(frame.loc[flags.to_numpy(), "study_id"].astype(str))[:5]
        raise ExtractionError(
            f"{where}: real studies ({', '.join(real)}, ...) and synthetic replica studies ({', '.join(fake)}, "
            f"...) in one extraction. The {SYNTHETIC_LABEL} is never pooled with real rows: keep it in its "
            "own "            "folder (replica/extraction) and run it with `metaexercise run --source replica`."
        )
    return bool(flags.all()) if len(flags) else False


def rules_for(review: Review, outcome: str) -> ComparisonRules:
    """The comparison rules `review` declares for `outcome`: arm roles, direction of benefit, common scale,
    effect basis, follow-up windows and their unit."""
    o = review.outcome(outcome)
    windows = {w.id: FollowUpWindow(w.target, w.lower, w.upper, w.lower_open, w.ties) for w in review.windows}
    return ComparisonRules(
        role_experimental=review.role_experimental, role_control=review.role_control,
        lower_is_better=o.lower_is_better,
        common_scale=(o.common_min, o.common_max) if o.normalised else None,
        basis=review.basis, windows=windows, timepoint_unit=review.timepoint_unit, measure=review.measure)


def _classes(spec: AnalysisSpec, review: Review) -> list[tuple[str, tuple[str, ...] | None]]:
    """(class id, control types) per comparator class the spec stacks; types None: every control arm."""
    if spec.comparator is None:
        return [("", review.control_types or None)]
    if spec.comparator == ANY_COMPARATOR:
        return [(c.id, c.control_types) for c in review.comparators]
    return [(spec.comparator, review.comparator(spec.comparator).control_types)]


def _control_types(spec: AnalysisSpec, types: tuple[str, ...] | None, extraction: Extraction) -> set:
    if types is None:  # no declared types: every control arm, whatever its type
        types = tuple(extraction.arms["control_type"].dropna().unique()) + (None,)
    out = set(types)
    for f in spec.filters:
        if f.column == "control_type":
            out &= set(f.values)
    return out


_SPEC_WINDOW = object()  # `stacked_comparisons`' default: the spec's own window


def stacked_comparisons(spec: AnalysisSpec, extraction: Extraction, review: Review, cache: dict | None = None,
                        *, window=_SPEC_WINDOW, window_rule: str = "closest",
                        **options) -> tuple[pd.DataFrame, list[tuple[str, str, str, str]]]:
    """The comparisons of every class the spec stacks, before filters, and what each build left out:
    [(study_id, arm_id, category, reason)]. `window` (default: the spec's), `window_rule` (`FollowUpWindow.rule`)
    and `options` (`build_comparisons`' multiarm, shared_n, correlation) let the sensitivity analyses
    (dependence, multiverse) build the same stack under other choices; `cache` keys include all of them."""
    frames, skipped = [], []
    window = spec.window if window is _SPEC_WINDOW else window
    rules = rules_for(review, spec.outcome)
    if window_rule != "closest":
        rules = replace(rules, windows={w: replace(win, rule=window_rule) for w, win in rules.windows.items()})
    for klass, declared in _classes(spec, review):
        types = _control_types(spec, declared, extraction)
        if not types:
            continue
        key = (spec.outcome, window, spec.timepoint, frozenset(types), window_rule, tuple(sorted(options.items())))
        if cache is not None and key in cache:
            comp, skips = cache[key]
        else:
            comp = build_comparisons(extraction, outcome=spec.outcome, window=window, comparators=types,
                                     rules=rules, timepoint=spec.timepoint, **options)
            skips = comp.attrs.get("skipped")
            comp.attrs = {}  # its table of skipped studies; pd.concat cannot compare DataFrame attrs
            skips = [] if skips is None else list(skips.itertuples(index=False, name=None))
            if cache is not None:
                cache[key] = (comp, skips)
        comp = comp.rename(columns={"comparator": "control_type"})
        comp.insert(3, "comparator", klass)
        frames.append(comp)
        prefix = f"{klass}: " if spec.comparator == ANY_COMPARATOR else ""
        skipped += [(sid, arm, _category(why), prefix + why) for sid, arm, why in skips]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, skipped


def _category(reason: str) -> str:
    """A short word for a reason (the run summary counts them)."""
    for words, cat in (("multi-arm", "multi-arm combined"), ("window", "no time point in the window"),
                       ("time point", "no usable time point"), ("no rows", "no rows"),
                       (" arm or no ", "no arm of the comparator"), ("missing SD", "missing SD"),
                       ("not usable", "as printed / orientation unclear"), ("instead", "arm data unusable"),
                       ("SMD contrast in an MD", "SMD contrast in an MD analysis"), ("contrast", "contrast unusable"),
                       ("common scale", "not on the common scale")):
        if words in reason:
            return cat
    return "data unusable"


def _filter_mask(spec: AnalysisSpec, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Which rows the spec's filters keep, and for each row the first filter that drops it ("" if kept)."""
    keep = np.ones(len(frame), dtype=bool)
    why = [""] * len(frame)
    for f in spec.filters:
        if f.column == "control_type":
            continue  # applied when choosing the control arms
        col = frame[f.column]
        if f.minimum is not None:
            ok = pd.to_numeric(col, errors="coerce").ge(f.minimum).fillna(False).to_numpy(dtype=bool)
        elif f.maximum is not None:
            ok = pd.to_numeric(col, errors="coerce").le(f.maximum).fillna(False).to_numpy(dtype=bool)
        else:
            ok = col.isin(list(f.values)).to_numpy(dtype=bool)
        for i in np.flatnonzero(keep & ~ok):
            v = col.iloc[i]
            why[i] = f"filter {f.describe()}: {f.column} is {'blank' if pd.isna(v) else v}"
        keep &= ok
    return keep, why


def _with_effects(frame: pd.DataFrame, measure: str = "SMD") -> pd.DataFrame:
    """`frame` with `yi`/`vi` of its arm-level rows computed (`escalc(measure)`); contrast rows keep theirs."""
    need = frame["yi"].isna().to_numpy()
    if need.any():
        arm = frame.loc[need]
        es = escalc(measure, m1i=arm["m1i"], sd1i=arm["sd1i"], n1i=arm["n1i"], m2i=arm["m2i"], sd2i=arm["sd2i"],
                    n2i=arm["n2i"])
        frame.loc[need, "yi"] = es.yi
        frame.loc[need, "vi"] = es.vi
    return frame


def comparisons_for(spec: AnalysisSpec, extraction: Extraction, review: Review,
                    cache: dict | None = None) -> pd.DataFrame:
    """The comparisons an analysis pools, with `yi`/`vi` filled (Hedges' g, or the MD when the review declares
    measure MD; experimental minus control) and the spec's filters applied.

    Columns: those of `build_comparisons`, with its `comparator` (the control types) renamed `control_type`
    and `comparator` holding the declared class. `cache` (a dict the caller keeps for one extraction) reuses
    comparisons built for the same outcome, window and control types.
    """
    return _comparisons(spec, extraction, review, cache)[0]


def _comparisons(spec, extraction, review, cache) -> tuple[pd.DataFrame, list[tuple[str, str, str, str]]]:
    frame, skipped = stacked_comparisons(spec, extraction, review, cache)
    if frame.empty:
        return frame, _unaccounted(spec, extraction, frame, skipped)
    keep, why = _filter_mask(spec, frame)
    for i in np.flatnonzero(~keep):
        arms = str(frame["arms"].iloc[i])
        skipped.append((str(frame["study_id"].iloc[i]), arms, "filtered out", why[i]))
    frame = _with_effects(frame[keep].reset_index(drop=True), review.measure)
    if review.measure == "MD":
        _check_one_scale(spec, frame, review)
    return frame, _unaccounted(spec, extraction, frame, skipped)


def _check_one_scale(spec: AnalysisSpec, frame: pd.DataFrame, review: Review) -> None:
    """Refuse an MD analysis whose comparisons are not all on one scale: without a declared common scale,
    every study must use the same instrument (with one, `build_comparisons` has put every study on it or left
    it out)."""
    outcome = review.outcome(spec.outcome)
    if outcome.normalised or frame.empty:
        return
    by_inst = frame.groupby("instrument", sort=True)["study_id"].agg(lambda s: sorted(set(map(str, s))))
    if len(by_inst) < 2:
        return
    uses = "; ".join(f"{inst} ({', '.join(ids)})" for inst, ids in by_inst.items())
    raise ExtractionError(
        f"{spec.file}, analysis '{spec.id}': review.yaml declares measure MD, which pools differences in one "
        f"unit, but outcome '{outcome.id}' declares no common_scale and its studies use {len(by_inst)} "
        f"instruments: {uses}. Declare a common_scale for '{outcome.id}' in review.yaml (the instruments' "
        "ranges then put every study on it), or pool SMDs (measure: SMD).")


def _unaccounted(spec, extraction, frame, skipped) -> list[tuple[str, str, str, str]]:
    """`skipped`, less the "no arm of this class" rows of studies that are in the analysis through another
    class, plus every study of the sheet the builds never saw: not included, or no rows for the outcome."""
    pooled = set(frame["study_id"]) if len(frame) else set()
    out = [x for x in skipped if not (x[0] in pooled and x[2] == "no arm of the comparator")]
    seen = pooled | {x[0] for x in out}
    with_rows = set(extraction.outcomes.loc[extraction.outcomes["outcome"].eq(spec.outcome), "study_id"])
    for st in extraction.studies.itertuples(index=False):
        sid = st.study_id
        if sid in seen:
            continue
        if st.inclusion_status != InclusionStatus.INCLUDED:
            out.append((sid, "", "not included", f"inclusion status '{st.inclusion_status}' (only included "
                                                  "studies are pooled)"))
        elif sid not in with_rows:
            out.append((sid, "", "no rows", f"no rows for outcome {spec.outcome}"))
        else:
            out.append((sid, "", "no usable time point", "no usable row for the outcome"))
    return list(dict.fromkeys(out))


class BaselineSD(NamedTuple):
    """The patient-level SD (common scale) that re-expresses an analysis's SMD in points, and its source."""

    sd: float
    source: str


class BaselineSDIndex:
    """The baseline SDs (rescaled to `outcome`'s common scale) and n of a comparison's arms, looked up once per
    (study, instrument, arms) from an index of the extraction's baseline rows in sheet order, so that
    `baseline_sd` over many data sets of one outcome (the multiverse) costs a dict lookup per comparison."""

    def __init__(self, extraction: Extraction, outcome: OutcomeDecl):
        self.extraction = extraction
        self.width = outcome.common_max - outcome.common_min if outcome.normalised else float("nan")
        o = extraction.outcomes
        base = o.loc[o["value_kind"].eq(ValueKind.BASELINE), ["study_id", "instrument", "arm_id", "sd", "n"]]
        self.base: dict[tuple, list[tuple]] = {}
        for sid, instrument, arm, sd, n in base.itertuples(index=False):
            self.base.setdefault((sid, instrument), []).append((arm, sd, n))
        self.rows: dict[tuple, tuple[list[float], list[float]]] = {}

    def arms(self, sid, instrument, arms) -> tuple[list[float], list[float]]:
        """(SDs on the common scale, n) of the arms named in `arms` ("a+b vs c"), in sheet order."""
        key = (sid, instrument, arms)
        if key not in self.rows:
            sds: list[float] = []
            ns: list[float] = []
            inst = self.extraction.registry.get(instrument)
            if inst.has_range:
                arm_ids = {a for side in str(arms).split(" vs ") for a in side.split("+")}
                for arm, sd, n in self.base.get((sid, instrument), ()):
                    if arm in arm_ids and pd.notna(sd) and pd.notna(n):
                        sds.append(float(np.asarray(float(sd), dtype=float) * (self.width / inst.width)))
                        ns.append(float(n))
            self.rows[key] = (sds, ns)
        return self.rows[key]


def baseline_sd(extraction: Extraction, comps: pd.DataFrame, outcome: OutcomeDecl,
                index: BaselineSDIndex | None = None) -> BaselineSD:
    """Pooled patient-level baseline SD on the outcome's common scale over every arm of the analysis's
    comparisons (`metaexercise.review.vas.pooled_sd`), else the typical SD the outcome declares, else NaN.
    Without a common scale an SMD cannot be re-expressed in one unit: NaN. `index`: a `BaselineSDIndex` of the
    same extraction and outcome to reuse across calls."""
    if not outcome.normalised:
        return BaselineSD(float("nan"), f"{outcome.id} has no common scale: no re-expression in points")
    scale = f"{outcome.common_min:g}-{outcome.common_max:g}"
    index = BaselineSDIndex(extraction, outcome) if index is None else index
    sds, ns = [], []
    for sid, instrument, arms in zip(comps["study_id"], comps["instrument"], comps["arms"], strict=True):
        a, b = index.arms(sid, instrument, arms)
        sds += a
        ns += b
    if sds:
        return BaselineSD(pooled_sd(sds, ns), f"pooled baseline SD of {len(sds)} arms ({scale} scale)")
    t = outcome.typical_sd
    if t is not None:
        what = f"{t.instrument} {scale}" if t.instrument else f"{outcome.id} {scale}"
        return BaselineSD(t.value, f"typical SD of {what} ({t.source}); no baseline SD reported")
    return BaselineSD(float("nan"), "no baseline SD reported and no typical SD for this outcome")


def _diagnostics(fit: RMAResult) -> tuple[pd.DataFrame | None, object, object, list[str]]:
    """Influence table and Egger / rank tests (NaN, with a note, where a test needs more studies).

    The diagnostics live in `metaexercise.engine.bias` and `metaexercise.engine.diagnostics`; while either is missing
    from an installation the fit is still reported, without outlier flags or tests, and the note says so.
    """
    notes = []
    try:
        from metaexercise.engine.bias import ranktest, regtest
        from metaexercise.engine.diagnostics import influence
    except ImportError as exc:
        return None, None, None, [
            f"diagnostics unavailable ({exc.name} not found): no outlier flags, Egger or rank tests"]
    infl = influence(fit)
    eg = rk = None
    if fit.k >= 3:
        eg, rk = regtest(fit), ranktest(fit)
    else:
        notes.append("Egger and rank tests need k >= 3")
    return infl, eg, rk, notes


def _flagged(infl: pd.DataFrame) -> np.ndarray:
    """The review's outliers: "Studentized residuals and Cook's distances ... Bonferroni-corrected with
    two-sided alpha = 0.05" (Methods). A comparison counts as an outlier when its studentized deleted
    residual passes the Bonferroni bound (`influence`'s `outlier`) or its Cook's distance is influential
    (`influence`'s `influential`: above median + 6·IQR, the rule metafor's reporter and MAJOR state)."""
    return infl["outlier"].to_numpy(dtype=bool) | infl["influential"].to_numpy(dtype=bool)


def _study_rows(spec: AnalysisSpec, comps: pd.DataFrame, fit: RMAResult | None, infl: pd.DataFrame | None,
                excluded: set[int]) -> pd.DataFrame:
    out = pd.DataFrame({c: comps[c] if c in comps else np.nan for c in STUDY_COLUMNS if c not in (
        "analysis_id", "ci_lb", "ci_ub", "weight", "rstudent", "cooks_d", "hat", "outlier", "influential",
        "excluded_as_outlier")})
    out.insert(0, "analysis_id", spec.id)
    se = np.sqrt(comps["vi"].to_numpy(dtype=float))
    crit = stats.norm.isf((1 - spec.model.level / 100) / 2)
    out["ci_lb"] = comps["yi"].to_numpy(dtype=float) - crit * se
    out["ci_ub"] = comps["yi"].to_numpy(dtype=float) + crit * se
    out["excluded_as_outlier"] = [i in excluded for i in range(len(comps))]
    for col in ("weight", "rstudent", "cooks_d", "hat"):
        out[col] = np.nan
    out["outlier"] = False
    out["influential"] = False
    if infl is not None:
        used = [i for i in range(len(comps)) if i not in excluded]
        for col in ("rstudent", "cooks_d", "hat", "outlier", "influential"):
            out.loc[used, col] = infl[col].to_numpy()
        out.loc[used, "weight"] = fit.weights
    return out.reindex(columns=list(STUDY_COLUMNS))


def run_meta_analysis(spec: AnalysisSpec, extraction: Extraction, review: Review,
                      cache: dict | None = None) -> AnalysisResult:
    """Pool one meta-analysis spec; with `exclude_outliers`, refit without the comparisons flagged as
    outliers in the full fit."""
    synthetic = check_not_mixed(extraction.studies, spec.id)
    comps, excluded = _comparisons(spec, extraction, review, cache)
    if len(comps):
        check_not_mixed(comps, spec.id)
    notes: list[str] = []
    if len(comps) < 2:
        return AnalysisResult(spec, AnalysisStatus.insufficient(len(comps)), synthetic,
                              _study_rows(spec, comps, None, None, set()) if len(comps) else
                              pd.DataFrame(columns=list(STUDY_COLUMNS)), excluded=tuple(excluded))
    m = spec.model
    fit = rma(comps["yi"], comps["vi"], method=m.method, test=m.test, level=m.level)
    infl, eg, rk, more = _diagnostics(fit)
    notes += more
    flags = np.zeros(len(comps), dtype=bool) if infl is None else _flagged(infl)
    outliers = tuple(comps.loc[flags, "study_id"].astype(str))
    excluded_rows: set[int] = set()
    if spec.exclude_outliers:
        excluded_rows = set(np.flatnonzero(flags).tolist())
        excluded += [(str(comps.at[i, "study_id"]), str(comps.at[i, "arms"]), "outlier excluded",
                      "outlier in the full fit (studentized residual or Cook's distance, Bonferroni-corrected)")
                     for i in sorted(excluded_rows)]
        if not excluded_rows:
            notes.append("no outliers: same as the main analysis")
        kept = comps.drop(index=sorted(excluded_rows)).reset_index(drop=True)
        if len(kept) < 2:
            return AnalysisResult(spec, AnalysisStatus.insufficient(len(kept), "without outliers"), synthetic,
                                  _study_rows(spec, comps, None, None, excluded_rows), outliers=outliers,
                                  excluded=tuple(excluded))
        fit = rma(kept["yi"], kept["vi"], method=m.method, test=m.test, level=m.level)
        infl, eg, rk, more = _diagnostics(fit)
        notes += [n for n in more if n not in notes]
    outcome = review.outcome(spec.outcome)
    vas = None
    if review.measure == "MD":
        notes.append(_md_unit(outcome, comps))
        sd, sd_source = float("nan"), "MD without a common scale: no re-expression in points"
        if outcome.normalised:
            # already in points of the common scale: judged against the MID as it stands (SD 1 = identity)
            sd_source = f"MD in points of the {outcome.common_min:g}-{outcome.common_max:g} scale: no re-expression"
            vas = replace(to_vas(outcome, fit.estimate, float(fit.ci_lb[0]), float(fit.ci_ub[0]), 1.0, sd_source),
                          sd=float("nan"))
    else:
        sd, sd_source = baseline_sd(extraction, comps.drop(index=sorted(excluded_rows)), outcome)
        if np.isfinite(sd):
            vas = to_vas(outcome, fit.estimate, float(fit.ci_lb[0]), float(fit.ci_ub[0]), sd, sd_source)
    return AnalysisResult(
        spec=spec, status=AnalysisStatus.fitted(), synthetic=synthetic,
        studies=_study_rows(spec, comps, fit, infl, excluded_rows),
        fit=fit, regtest=eg, ranktest=rk, outliers=outliers, vas=vas, vas_sd=sd,
        vas_sd_source=sd_source, notes=tuple(notes), excluded=tuple(excluded),
        lower_is_better=outcome.lower_is_better,
    )


def _md_unit(outcome: OutcomeDecl, comps: pd.DataFrame) -> str:
    """The unit of a pooled MD, for the analysis's notes."""
    if outcome.normalised:
        return f"mean difference in points of the {outcome.common_min:g}-{outcome.common_max:g} common scale"
    insts = ", ".join(sorted(set(map(str, comps["instrument"])))) if len(comps) else "the instrument"
    return f"mean difference in units of {insts}"


def moderator_frame(spec: AnalysisSpec, comps: pd.DataFrame) -> pd.DataFrame:
    """The spec's moderators evaluated on the comparisons: numeric columns as numbers, indicators as 0/1,
    categorical moderators as treatment contrasts (one 0/1 column ``name[level]`` per level but the first,
    declared one, the reference; R's `contr.treatment`); NaN where the column is blank."""
    cols = {}
    for mod in spec.moderators:
        if mod.column not in comps:
            raise ExtractionError(f"{spec.file}, analysis '{spec.id}': moderator '{mod.name}' needs column "
                                  f"'{mod.column}', which the comparisons do not have")
        col = comps[mod.column]
        if mod.is_factor:
            for level, term in zip(mod.levels[1:], mod.terms, strict=True):
                cols[term] = col.eq(level).astype(float).where(col.notna(), np.nan)
        elif mod.is_indicator:
            ind = col.isin(list(mod.values)).astype(float)
            cols[mod.name] = ind.where(col.notna(), np.nan)
        else:
            cols[mod.name] = pd.to_numeric(col, errors="coerce").astype(float)
    return pd.DataFrame(cols, index=comps.index)


def run_meta_regression(spec: AnalysisSpec, extraction: Extraction, review: Review,
                        cache: dict | None = None) -> AnalysisResult:
    """Fit one meta-regression spec (comparisons with a blank moderator are left out, and listed)."""
    synthetic = check_not_mixed(extraction.studies, spec.id)
    comps, excluded = _comparisons(spec, extraction, review, cache)
    if len(comps):
        check_not_mixed(comps, spec.id)
    if comps.empty:
        return AnalysisResult(spec, AnalysisStatus.insufficient(0), synthetic,
                              pd.DataFrame(columns=list(STUDY_COLUMNS)), excluded=tuple(excluded))
    mods = moderator_frame(spec, comps)
    complete = mods.notna().all(axis=1).to_numpy()
    notes = []
    if not complete.all():
        notes.append(f"{int((~complete).sum())} comparison(s) left out for a blank moderator")
        for i in np.flatnonzero(~complete):
            blank = [c for c in mods.columns if pd.isna(mods.iloc[i][c])]
            excluded.append((str(comps.at[i, "study_id"]), str(comps.at[i, "arms"]), "blank moderator",
                             f"{comps.at[i, 'comparator']}: ".lstrip(": ") + f"blank moderator {', '.join(blank)}"))
    comps, mods = comps[complete].reset_index(drop=True), mods[complete].reset_index(drop=True)
    shared = int(comps["study_id"].duplicated().sum())
    if shared:
        each = "both" if len(review.comparators) == 2 else "each"
        notes.append(f"{shared} study(ies) contribute one comparison per comparator class (their "
                     f"{review.role_experimental} arm appears in {each})")
    p = 1 + mods.shape[1]
    if len(comps) <= p:
        status = AnalysisStatus.insufficient(len(comps), f"for {p} coefficients")
        return AnalysisResult(spec, status, synthetic, _study_rows(spec, comps, None, None, set()),
                              notes=tuple(notes), excluded=tuple(excluded))
    reg = metareg(comps["yi"], comps["vi"], mods, method=spec.model.method, level=spec.model.level)
    if reg.dropped:
        notes.append(f"dropped as constant or collinear: {', '.join(reg.dropped)}")
    return AnalysisResult(spec, AnalysisStatus.fitted(), synthetic,
                          _study_rows(spec, comps, None, None, set()), regression=reg,
                          notes=tuple(notes), excluded=tuple(excluded))


def run_analysis(spec: AnalysisSpec, extraction: Extraction, review: Review,
                 cache: dict | None = None) -> AnalysisResult:
    """Dispatch on the spec's kind (`cache`: see `comparisons_for`)."""
    if spec.kind is AnalysisKind.META_REGRESSION:
        return run_meta_regression(spec, extraction, review, cache)
    return run_meta_analysis(spec, extraction, review, cache)


def metareg_rows(result: AnalysisResult) -> list[dict]:
    """A meta-regression result as rows of metareg.csv (one per coefficient; one status row if none)."""
    s = result.spec
    base = {"analysis_id": s.id, "label": s.label, "outcome": str(s.outcome), "window": s.window or "",
            "method": s.model.method, "status": str(result.status), "synthetic": result.synthetic,
            "k": len(result.studies)}
    reg = result.regression
    if reg is None:
        return [{**{c: np.nan for c in METAREG_COLUMNS}, **base}]
    labels = {t: lab for m in s.moderators for t, lab in m.term_labels().items()}
    rows = []
    for i, term in enumerate(reg.coef_names):
        rows.append({
            **base, "term": term, "moderator": labels.get(term, "intercept"), "estimate": reg.beta[i],
            "se": reg.se[i], "zval": reg.zval[i], "pval": reg.pval[i], "ci_lb": reg.ci_lb[i],
            "ci_ub": reg.ci_ub[i], "k": reg.k, "QM": reg.QM, "QM_df": reg.QM_df, "QMp": reg.QMp, "QE": reg.QE,
            "QE_df": reg.QE_df, "QEp": reg.QEp, "tau2": reg.tau2, "I2": reg.I2, "R2": reg.R2,
            "dropped": "; ".join(reg.dropped),
        })
    return rows


def excluded_rows(result: AnalysisResult) -> list[dict]:
    """What an analysis left out, as rows of excluded.csv (`EXCLUDED_COLUMNS`)."""
    return [{"analysis_id": result.spec.id, "study_id": sid, "arm_id": arm, "category": cat, "reason": why}
            for sid, arm, cat, why in result.excluded]
