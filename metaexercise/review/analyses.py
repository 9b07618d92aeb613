"""One analysis spec → its comparisons → Hedges' g → REML fit → diagnostics → tidy rows.

The steps follow the review's Methods (Fleckenstein et al. 2022, medRxiv v2, "Statistics: Meta-analysis
and -regression"): Hedges' g from change scores (`escalc("SMD")`, exact correction, metafor's ``vtype="LS"``)
or the comparison's own g and variance (contrast-only studies); random effects with REML τ², z tests and a
prediction interval (`rma`); outliers by studentized residuals and Cook's distances, Bonferroni-corrected,
two-sided α = .05 (`metaexercise.engine.diagnostics`); Egger's regression test with the standard error as predictor
and the rank correlation test (`metaexercise.engine.bias`); the pooled SMD re-expressed in VAS points
(`metaexercise.review.vas`). Meta-regressions go through `metaexercise.engine.metaregression`.

Comparisons come from `metaexercise.extraction.comparisons.build_comparisons` (follow-up windows, instrument choice,
0–10 scale, multi-arm trials combined so no participant counts twice in one analysis). The comparator
class "active" is the control type "active exercise"; "passive" is every other control type (passive,
usual care or advice, true control, medication), as the review's "passive treatments, true control, and
usual care" (`metaexercise.review.vocabulary.COMPARATOR_TYPES`). A meta-regression over both classes ("any")
stacks the two classes' comparisons, so a
three-arm study's individualized arm appears once per class, as in the review's regression on
"comparator active vs passive".

Real and synthetic (replica) rows are never pooled together: `check_not_mixed` raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.engine.effects import escalc
from metaexercise.engine.metaregression import MetaRegression, metareg
from metaexercise.engine.model import RMAResult, rma
from metaexercise.errors import ExtractionError
from metaexercise.extraction.comparisons import build_comparisons
from metaexercise.extraction.normalise import spread_to_0_10
from metaexercise.extraction.schema import ValueKind
from metaexercise.extraction.sheets import Extraction
from metaexercise.review.specs import AnalysisSpec
from metaexercise.review.vas import OUTCOME_TYPICAL_SD, TYPICAL_SD, VasEffect, Verdict, pooled_sd, to_vas
from metaexercise.review.vocabulary import COMPARATOR_TYPES, AnalysisKind, AnalysisStatus, ComparatorClass
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
                   comparator=str(s.comparator), window=str(s.window), status=str(self.status),
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
            row["meaningful"] = str(Verdict.PROBABLY_MEANINGFUL if (hi < 0 or lo > 0) else Verdict.NOT_SHOWN)
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


def _control_types(spec: AnalysisSpec, klass: ComparatorClass) -> set[str]:
    types = set(COMPARATOR_TYPES[klass])
    for f in spec.filters:
        if f.column == "control_type":
            types &= set(f.values)
    return types


def comparisons_for(spec: AnalysisSpec, extraction: Extraction, cache: dict | None = None) -> pd.DataFrame:
    """The comparisons an analysis pools, with `yi`/`vi` filled (Hedges' g) and the spec's filters applied.

    Columns: those of `build_comparisons`, with its `comparator` (the control types) renamed
    `control_type` and `comparator` holding the class (active / passive). `cache` (a dict the caller
    keeps for one extraction) reuses comparisons built for the same outcome, window and control types.
    """
    frames = []
    for klass in ComparatorClass(spec.comparator).classes:
        types = _control_types(spec, klass)
        if not types:
            continue
        key = (spec.outcome, spec.window, frozenset(types))
        if cache is not None and key in cache:
            comp = cache[key]
        else:
            comp = build_comparisons(extraction, outcome=spec.outcome, window=spec.window, comparators=types)
            comp.attrs = {}  # its table of skipped studies; pd.concat cannot compare DataFrame attrs
            if cache is not None:
                cache[key] = comp
        comp = comp.rename(columns={"comparator": "control_type"})
        comp.insert(3, "comparator", klass.value)
        frames.append(comp)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    for f in spec.filters:
        if f.column == "control_type":
            continue  # applied when choosing the control arms
        col = frame[f.column]
        if f.minimum is not None:
            keep &= pd.to_numeric(col, errors="coerce").ge(f.minimum).fillna(False).to_numpy(dtype=bool)
        else:
            keep &= col.isin(list(f.values)).to_numpy(dtype=bool)
    frame = frame[keep].reset_index(drop=True)
    need = frame["yi"].isna().to_numpy()
    if need.any():
        arm = frame.loc[need]
        es = escalc("SMD", m1i=arm["m1i"], sd1i=arm["sd1i"], n1i=arm["n1i"], m2i=arm["m2i"], sd2i=arm["sd2i"],
                    n2i=arm["n2i"])
        frame.loc[need, "yi"] = es.yi
        frame.loc[need, "vi"] = es.vi
    return frame


class BaselineSD(NamedTuple):
    """The patient-level SD (0–10 scale) that re-expresses an analysis's SMD in VAS points, and its source."""

    sd: float
    source: str


def baseline_sd(extraction: Extraction, comps: pd.DataFrame, outcome: str) -> BaselineSD:
    """Pooled patient-level baseline SD on 0–10 over every arm of the analysis's comparisons
    (`metaexercise.review.vas.pooled_sd`), else the outcome's typical SD on 0–10 (`vas.OUTCOME_TYPICAL_SD`), else NaN."""
    o = extraction.outcomes
    base = o[o["value_kind"].eq(ValueKind.BASELINE)]
    sds, ns = [], []
    for _, c in comps.iterrows():
        arm_ids = {a for side in str(c["arms"]).split(" vs ") for a in side.split("+")}
        rows = base[base["study_id"].eq(c["study_id"]) & base["instrument"].eq(c["instrument"])
                    & base["arm_id"].isin(arm_ids)]
        inst = extraction.registry.get(c["instrument"])
        if not inst.has_range:
            continue
        for _, r in rows.iterrows():
            if pd.notna(r["sd"]) and pd.notna(r["n"]):
                sds.append(float(spread_to_0_10(float(r["sd"]), inst)))
                ns.append(float(r["n"]))
    if sds:
        return BaselineSD(pooled_sd(sds, ns), f"pooled baseline SD of {len(sds)} arms (0-10 scale)")
    if outcome in OUTCOME_TYPICAL_SD:
        sd, source = TYPICAL_SD[OUTCOME_TYPICAL_SD[outcome]]
        return BaselineSD(
            sd, f"typical SD of {OUTCOME_TYPICAL_SD[outcome]} 0-10 ({source}); no baseline SD reported")
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


def run_meta_analysis(spec: AnalysisSpec, extraction: Extraction, cache: dict | None = None) -> AnalysisResult:
    """Pool one meta-analysis spec; with `exclude_outliers`, refit without the comparisons flagged as
    outliers in the full fit."""
    synthetic = check_not_mixed(extraction.studies, spec.id)
    comps = comparisons_for(spec, extraction, cache)
    if len(comps):
        check_not_mixed(comps, spec.id)
    notes: list[str] = []
    if len(comps) < 2:
        return AnalysisResult(spec, AnalysisStatus.insufficient(len(comps)), synthetic,
                              _study_rows(spec, comps, None, None, set()) if len(comps) else
                              pd.DataFrame(columns=list(STUDY_COLUMNS)))
    m = spec.model
    fit = rma(comps["yi"], comps["vi"], method=m.method, test=m.test, level=m.level)
    infl, eg, rk, more = _diagnostics(fit)
    notes += more
    flags = np.zeros(len(comps), dtype=bool) if infl is None else _flagged(infl)
    outliers = tuple(comps.loc[flags, "study_id"].astype(str))
    excluded: set[int] = set()
    if spec.exclude_outliers:
        excluded = set(np.flatnonzero(flags).tolist())
        if not excluded:
            notes.append("no outliers: same as the main analysis")
        kept = comps.drop(index=sorted(excluded)).reset_index(drop=True)
        if len(kept) < 2:
            return AnalysisResult(spec, AnalysisStatus.insufficient(len(kept), "without outliers"), synthetic,
                                  _study_rows(spec, comps, None, None, excluded), outliers=outliers)
        fit = rma(kept["yi"], kept["vi"], method=m.method, test=m.test, level=m.level)
        infl, eg, rk, more = _diagnostics(fit)
        notes += [n for n in more if n not in notes]
    sd, sd_source = baseline_sd(extraction, comps.drop(index=sorted(excluded)), spec.outcome)
    vas = None
    if np.isfinite(sd):
        vas = to_vas(spec.outcome, fit.estimate, float(fit.ci_lb[0]), float(fit.ci_ub[0]), sd, sd_source)
    return AnalysisResult(
        spec=spec, status=AnalysisStatus.fitted(), synthetic=synthetic,
        studies=_study_rows(spec, comps, fit, infl, excluded),
        fit=fit, regtest=eg, ranktest=rk, outliers=outliers, vas=vas, vas_sd=sd,
        vas_sd_source=sd_source, notes=tuple(notes),
    )


def moderator_frame(spec: AnalysisSpec, comps: pd.DataFrame) -> pd.DataFrame:
    """The spec's moderators evaluated on the comparisons: numeric columns as numbers, indicators as 0/1
    (NaN where the column is blank)."""
    cols = {}
    for mod in spec.moderators:
        if mod.column not in comps:
            raise ExtractionError(f"{spec.file}, analysis '{spec.id}': moderator '{mod.name}' needs column "
                                  f"'{mod.column}', which the comparisons do not have")
        col = comps[mod.column]
        if mod.is_indicator:
            ind = col.isin(list(mod.values)).astype(float)
            cols[mod.name] = ind.where(col.notna(), np.nan)
        else:
            cols[mod.name] = pd.to_numeric(col, errors="coerce").astype(float)
    return pd.DataFrame(cols, index=comps.index)


def run_meta_regression(spec: AnalysisSpec, extraction: Extraction, cache: dict | None = None) -> AnalysisResult:
    """Fit one meta-regression spec (comparisons with a blank moderator are left out, and counted)."""
    synthetic = check_not_mixed(extraction.studies, spec.id)
    comps = comparisons_for(spec, extraction, cache)
    if len(comps):
        check_not_mixed(comps, spec.id)
    if comps.empty:
        return AnalysisResult(spec, AnalysisStatus.insufficient(0), synthetic,
                              pd.DataFrame(columns=list(STUDY_COLUMNS)))
    mods = moderator_frame(spec, comps)
    complete = mods.notna().all(axis=1).to_numpy()
    notes = []
    if not complete.all():
        notes.append(f"{int((~complete).sum())} comparison(s) left out for a blank moderator")
    comps, mods = comps[complete].reset_index(drop=True), mods[complete].reset_index(drop=True)
    shared = int(comps["study_id"].duplicated().sum())
    if shared:
        notes.append(f"{shared} study(ies) contribute one comparison per comparator class (their individualized "
                     "arm appears in both)")
    p = 1 + len(spec.moderators)
    if len(comps) <= p:
        status = AnalysisStatus.insufficient(len(comps), f"for {p} coefficients")
        return AnalysisResult(spec, status, synthetic,
                              _study_rows(spec, comps, None, None, set()), notes=tuple(notes))
    reg = metareg(comps["yi"], comps["vi"], mods, method=spec.model.method, level=spec.model.level)
    if reg.dropped:
        notes.append(f"dropped as constant or collinear: {', '.join(reg.dropped)}")
    return AnalysisResult(spec, AnalysisStatus.fitted(), synthetic,
                          _study_rows(spec, comps, None, None, set()), regression=reg,
                          notes=tuple(notes))


def run_analysis(spec: AnalysisSpec, extraction: Extraction, cache: dict | None = None) -> AnalysisResult:
    """Dispatch on the spec's kind (`cache`: see `comparisons_for`)."""
    if spec.kind is AnalysisKind.META_REGRESSION:
        return run_meta_regression(spec, extraction, cache)
    return run_meta_analysis(spec, extraction, cache)


def metareg_rows(result: AnalysisResult) -> list[dict]:
    """A meta-regression result as rows of metareg.csv (one per coefficient; one status row if none)."""
    s = result.spec
    base = {"analysis_id": s.id, "label": s.label, "outcome": str(s.outcome), "window": str(s.window),
            "method": s.model.method, "status": str(result.status), "synthetic": result.synthetic,
            "k": len(result.studies)}
    reg = result.regression
    if reg is None:
        return [{**{c: np.nan for c in METAREG_COLUMNS}, **base}]
    labels = {m.name: m.label or m.name for m in s.moderators}
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
