"""Sensitivity analysis for dependent effects: every main contrast refitted with a model of the dependence of
multi-arm and multi-time-point trials (results/dependence.csv).

The main analyses give each trial one comparison per window (a multi-arm trial's arms combined, Cochrane Handbook
23.3.4) and pool each window on its own. Here a trial contributes one effect per experimental-control pair and per
follow-up window (`build_comparisons(..., multiarm="split", shared_n="keep")`: a shared arm keeps its whole n), and
the dependence among them is modelled instead of avoided:

* Sampling covariance V (block-diagonal by study; `sampling_vcov`). Two effects of one window that share an arm
  (two individualised arms against one control, or one against two controls of the class): the Gleser–Olkin
  covariance of standardised mean differences sharing a group, Cov(gᵢ, gⱼ) = 1/n_s + gᵢgⱼ/(2N), n_s the shared
  arm's size and N the participants of the arms the two comparisons use (Gleser & Olkin 2009, "Stochastically
  dependent effect sizes", ch. 19 of The Handbook of Research Synthesis and Meta-Analysis, 2nd ed., the
  multiple-treatment SMD formula; `metaexercise.engine.sampling_vcov.gleser_olkin_smd_cov`); for mean differences
  (review.yaml ``measure: MD``) the shared arm's SD²/n, the variance of its mean. Effects at different
  windows: the correlation ``rho_time`` the project declares (review.yaml ``dependence``) times the correlation
  of the two contrasts' groups, as metafor's `vcalc` builds it (``obs`` = window with ``rho``, ``grp1``/``grp2``
  the arms, ``w1``/``w2`` their sizes; `metaexercise.engine.sampling_vcov.vcalc`): ≈ rho_time for one comparison
  followed up twice, rho_time · n-weighted overlap for two comparisons sharing an arm, 0 for disjoint ones.
* Model: the correlated and hierarchical effects (CHE) working model of Pustejovsky & Tipton (2022, Prev Sci
  23:425): ``rma_mv(yi, V, mods="~ window - 1", random="~ 1 | study/es", method="REML")``, one coefficient per
  window, random effects for trials and for effects within trials (σ²_study, σ²_es; metafor's ``rma.mv``).
* Inference: the model's own (z tests) and cluster-robust by trial, CR2 with Satterthwaite degrees of freedom
  (Pustejovsky & Tipton 2018, J Bus Econ Stat 36:672; ``robust(fit, cluster=study, clubSandwich=True)``), which
  stays valid when the working V and random effects are wrong. Satterthwaite df below 4 make the CR2 test
  unreliable (Tipton 2015, Psychol Methods 20:375); the notes say so.

A main contrast's row takes its window's coefficient. A window with fewer than two trials gives "insufficient
data"; when the joint fit fails the window is fitted alone (``~ 1``), with a note; a failure is reported in the
row, never raised. The main analysis's estimate and CI stand beside it (``main_*``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from metaexercise.engine.cluster_robust import robust
from metaexercise.engine.mv import rma_mv
from metaexercise.engine.sampling_vcov import gleser_olkin_smd_cov, vcalc
from metaexercise.extraction.sheets import Extraction
from metaexercise.review.analyses import (
    AnalysisResult,
    _filter_mask,
    _with_effects,
    check_not_mixed,
    stacked_comparisons,
)
from metaexercise.review.declaration import Review
from metaexercise.review.specs import AnalysisSpec
from metaexercise.review.vocabulary import AnalysisStatus

#: Columns of dependence.csv, in order (the run adds ``data`` first).
DEPENDENCE_COLUMNS = (
    "analysis_id", "label", "k_effects", "k_studies", "k_multiarm", "k_multitime", "estimate", "se", "ci_lb",
    "ci_ub", "pval", "sigma2_study", "sigma2_es", "rho_time", "robust_se", "robust_df", "robust_ci_lb",
    "robust_ci_ub", "robust_pval", "main_estimate", "main_ci_lb", "main_ci_ub", "status", "notes",
)
#: The CHE model's random effects: trials, and effects within trials (metafor's syntax).
RANDOM = "~ 1 | study/es"
#: Satterthwaite df below which a CR2 test is unreliable (Tipton 2015, Psychol Methods 20:375).
MIN_ROBUST_DF = 4.0
NOT_ESTIMABLE = "not estimable"


@dataclass(frozen=True, slots=True)
class DependenceResult:
    """One main contrast's dependence model: its row of dependence.csv, the effects and V it was fitted on,
    the `rma_mv` fit and the CR2 result (None when not computed)."""

    spec: AnalysisSpec
    row: dict
    effects: pd.DataFrame
    V: sparse.csr_array | None = None
    fit: object | None = None
    robust: object | None = None


# ------------------------------------------------------------------------------------------------ the effects
def dependence_effects(spec: AnalysisSpec, extraction: Extraction, review: Review,
                       cache: dict | None = None) -> pd.DataFrame:
    """Every comparison of the spec's outcome and comparator class at every declared window (the spec's own
    window, or its time point, when the review declares none), one row per study × experimental-control pair ×
    window, shared arms with their whole n; the spec's filters applied, `yi`/`vi` as the main analysis computes
    them (`metaexercise.review.analyses`). Added columns: ``window`` (id, "" without windows), ``study``,
    ``es`` (the effect's id), ``arm1``/``arm2`` (the experimental and the control arm)."""
    frames = []
    for window in review.window_ids or (None,):
        comp, _ = stacked_comparisons(spec, extraction, review, cache, window=window, multiarm="split",
                                      shared_n="keep")
        if len(comp):
            comp.insert(4, "window", window or "")
            frames.append(comp)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=["study_id", "window", "yi", "vi", "n1i", "n2i", "study", "es", "arm1", "arm2"])
    keep, _ = _filter_mask(spec, frame)
    frame = _with_effects(frame[keep].reset_index(drop=True), review.measure)
    arms = frame["arms"].astype(str).str.split(" vs ", n=1, expand=True)
    frame["study"] = frame["study_id"].astype(str)
    frame["es"] = [f"{i + 1}" for i in range(len(frame))]
    frame["arm1"], frame["arm2"] = arms[0], arms[1]
    return frame


def counts(effects: pd.DataFrame, window: str) -> dict[str, int]:
    """For the effects of `window`: how many (k_effects), from how many studies (k_studies), how many studies give
    more than one (k_multiarm) and how many also have effects at another window (k_multitime)."""
    if effects.empty:
        return {"k_effects": 0, "k_studies": 0, "k_multiarm": 0, "k_multitime": 0}
    here = effects[effects["window"] == window]
    per_study = here.groupby("study").size()
    windows = effects.groupby("study")["window"].nunique()
    return {"k_effects": len(here), "k_studies": int(per_study.size), "k_multiarm": int((per_study > 1).sum()),
            "k_multitime": int((windows.reindex(per_study.index) > 1).sum())}


# ------------------------------------------------------------------------------------------------ V
def sampling_vcov(effects: pd.DataFrame, rho_time: float, measure: str = "SMD") -> sparse.csr_array:
    """The effects' sampling var-cov matrix (block-diagonal by study), as the module docstring describes: metafor's
    `vcalc` for the structure across windows (``obs`` = window, ``rho`` = `rho_time`; ``grp1``/``grp2`` the arms,
    ``w1``/``w2`` = n1i/n2i), then the Gleser–Olkin covariance for SMDs of one window that share an arm. For
    measure "MD" the weights are n/SD² (the inverse variance of an arm's mean), with which `vcalc`'s covariance of
    two mean differences sharing an arm is that arm's SD²/n, exactly. A study whose rows lack a group size (or,
    for MD, an SD) gets equal weights (w = 1) on all its rows, so its correlation across windows is rho_time for
    one comparison and rho_time / 2 for two sharing an arm."""
    if measure not in ("SMD", "MD"):
        raise ValueError(f"sampling_vcov: measure {measure!r} is not 'SMD' or 'MD'")
    k = len(effects)
    vi = effects["vi"].to_numpy(dtype=float)
    if k == 1:
        return sparse.csr_array(np.array([[vi[0]]]))
    study = effects["study"].astype(str).to_numpy()
    n1 = effects["n1i"].to_numpy(dtype=float)
    n2 = effects["n2i"].to_numpy(dtype=float)
    if measure == "MD":  # the arm mean's inverse variance
        with np.errstate(divide="ignore", invalid="ignore"):
            n1, n2 = (n1 / effects["sd1i"].to_numpy(dtype=float) ** 2, n2 / effects["sd2i"].to_numpy(dtype=float) ** 2)
    ok = np.isfinite(n1) & np.isfinite(n2) & (n1 > 0) & (n2 > 0)
    blank = pd.Series(~ok).groupby(study).transform("any").to_numpy(dtype=bool)
    w1, w2 = np.where(blank, 1.0, n1), np.where(blank, 1.0, n2)
    window = effects["window"].astype(str).to_numpy()
    g1 = (effects["study"].astype(str) + "\x1f" + effects["arm1"].astype(str)).to_numpy()
    g2 = (effects["study"].astype(str) + "\x1f" + effects["arm2"].astype(str)).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # positive definiteness is checked on the final V (`not_positive_definite`)
        base = vcalc(vi, cluster=study, obs=window, rho=rho_time, grp1=g1, grp2=g2, w1=w1, w2=w2, checkpd=False,
                     sparse=True).tocoo()
    rows, cols, vals = base.row, base.col, base.data
    if measure == "MD":
        return sparse.csr_array((vals, (rows, cols)), shape=(k, k))
    gi, gj, gv = _gleser_olkin_pairs(effects, blank)
    if gi.size:
        taken = np.isin(rows * k + cols, gi * k + gj)
        rows, cols, vals = (np.concatenate([rows[~taken], gi]), np.concatenate([cols[~taken], gj]),
                            np.concatenate([vals[~taken], gv]))
    return sparse.csr_array((vals, (rows, cols)), shape=(k, k))


def _gleser_olkin_pairs(effects: pd.DataFrame, blank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, Cov) for every ordered pair i ≠ j of effects of one study and window that share an arm, from
    `gleser_olkin_smd_cov` applied to each set of effects sharing one arm (the shared arm as its "control":
    the formula is symmetric in the two groups)."""
    frame = pd.DataFrame({"row": np.arange(len(effects)), "study": effects["study"].astype(str).to_numpy(),
                          "window": effects["window"].astype(str).to_numpy(), "blank": blank,
                          "arm1": effects["arm1"].astype(str).to_numpy(), "arm2": effects["arm2"].astype(str).to_numpy(),
                          "n1": effects["n1i"].to_numpy(dtype=float), "n2": effects["n2i"].to_numpy(dtype=float),
                          "yi": effects["yi"].to_numpy(dtype=float), "vi": effects["vi"].to_numpy(dtype=float)})
    frame = frame[~frame["blank"]]
    stacks = []
    for shared, other in (("arm1", "n2"), ("arm2", "n1")):
        n_shared = "n1" if shared == "arm1" else "n2"
        size = frame.groupby(["study", "window", shared])["row"].transform("size")
        part = frame[size > 1]
        if len(part):
            stacks.append(pd.DataFrame({"row": part["row"], "group": shared + "\x1f" + part["study"] + "\x1f"
                                        + part["window"] + "\x1f" + part[shared], "n_other": part[other],
                                        "n_shared": part[n_shared], "yi": part["yi"], "vi": part["vi"]}))
    if not stacks:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    stack = pd.concat(stacks, ignore_index=True)
    go = gleser_olkin_smd_cov(stack["yi"], stack["n_other"], stack["n_shared"], stack["group"], vi=stack["vi"],
                              sparse=True).tocoo()
    off = go.row != go.col
    where = stack["row"].to_numpy()
    return where[go.row[off]].astype(np.int64), where[go.col[off]].astype(np.int64), go.data[off]


def not_positive_definite(V: sparse.csr_array, effects: pd.DataFrame) -> list[str]:
    """The studies whose block of V is not positive definite (smallest eigenvalue <= 0)."""
    bad = []
    study = effects["study"].astype(str).to_numpy()
    for sid in pd.unique(study):
        idx = np.flatnonzero(study == sid)
        if idx.size > 1 and not np.linalg.eigvalsh(V[idx][:, idx].toarray())[0] > 0:
            bad.append(str(sid))
    return bad


# ------------------------------------------------------------------------------------------------ the model
def fit_che(effects: pd.DataFrame, V, *, method: str = "REML", test: str = "z", level: float = 95.0):
    """The CHE working model on `effects` and `V`: ``rma_mv(yi, V, mods="~ window - 1", random="~ 1 | study/es")``
    (one coefficient per window, named ``window<id>``; ``~ 1`` with one window). Warnings of `rma_mv` are
    returned as notes."""
    data = effects[["yi", "study", "es", "window"]].reset_index(drop=True).copy()
    present = list(dict.fromkeys(data["window"]))
    data["window"] = pd.Categorical(data["window"], categories=present)
    mods = "~ window - 1" if len(present) > 1 else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = rma_mv("yi", V, mods=mods, random=RANDOM, data=data, method=method, test=test, level=level)
    return fit, [str(w.message) for w in caught]


def _coef(fit, window: str, several: bool) -> int:
    return fit.coef_names.index(f"window{window}") if several else 0


def _model_settings(spec: AnalysisSpec) -> tuple[str, str, list[str]]:
    """`rma_mv`'s method and test for the spec's (REML or ML; z or t), with a note when the spec's differ."""
    m, notes = spec.model, []
    method = m.method if m.method in ("REML", "ML") else "REML"
    if method != m.method:
        notes.append(f"{m.method} is not available for multilevel models: REML")
    test = m.test if m.test in ("z", "t") else "z"
    if test != m.test:
        notes.append(f"test {m.test} is not available for multilevel models: z")
    return method, test, notes


def run_dependence(spec: AnalysisSpec, extraction: Extraction, review: Review, main: AnalysisResult | None = None,
                   cache: dict | None = None) -> DependenceResult:
    """The dependence model of one main contrast (see the module docstring); never raises for data that cannot
    support it: the row's status and notes say why."""
    rho_time = review.dependence.rho_time
    window = spec.window or ""
    row = {c: np.nan for c in DEPENDENCE_COLUMNS}
    row.update(analysis_id=spec.id, label=spec.label, rho_time=rho_time, status="", notes="")
    if main is not None and main.fit is not None and main.regression is None:
        row.update(main_estimate=float(main.fit.estimate), main_ci_lb=float(main.fit.ci_lb[0]),
                   main_ci_ub=float(main.fit.ci_ub[0]))
    effects = dependence_effects(spec, extraction, review, cache)
    if len(effects):
        check_not_mixed(effects, spec.id)
    c = counts(effects, window)
    row.update(c)
    notes: list[str] = []
    if c["k_studies"] < 2:
        what = "study in the window" if c["k_studies"] == 1 else "studies in the window"
        row.update(status=str(AnalysisStatus.insufficient(c["k_studies"], what)),
                   notes="a window's coefficient needs at least two studies")
        return DependenceResult(spec, row, effects)
    method, test, more = _model_settings(spec)
    notes += more
    try:
        V = sampling_vcov(effects, rho_time, review.measure)
    except (ValueError, np.linalg.LinAlgError) as exc:
        row.update(status=NOT_ESTIMABLE, notes="; ".join([*notes, f"sampling covariance not computed: {exc}"]))
        return DependenceResult(spec, row, effects)
    bad = not_positive_definite(V, effects)
    if bad:
        notes.append(f"V not positive definite in {', '.join(bad)}")
    used, fit = effects, None
    try:
        fit, warned = fit_che(effects, V, method=method, test=test, level=spec.model.level)
        notes += warned
    except (ValueError, np.linalg.LinAlgError) as exc:
        here = np.flatnonzero(effects["window"].to_numpy() == window)
        if effects["window"].nunique() > 1:
            used = effects.iloc[here].reset_index(drop=True)
            V = V[here][:, here]
            try:
                fit, warned = fit_che(used, V, method=method, test=test, level=spec.model.level)
                notes += [f"joint fit over the windows failed ({exc}); this window fitted alone", *warned]
            except (ValueError, np.linalg.LinAlgError) as exc2:
                notes.append(f"fit failed: {exc2}")
        else:
            notes.append(f"fit failed: {exc}")
    if fit is None:
        row.update(status=NOT_ESTIMABLE, notes="; ".join(notes))
        return DependenceResult(spec, row, used, V)
    several = used["window"].nunique() > 1
    j = _coef(fit, window, several)
    row.update(estimate=float(fit.beta[j]), se=float(fit.se[j]), ci_lb=float(fit.ci_lb[j]), ci_ub=float(fit.ci_ub[j]),
               pval=float(fit.pval[j]), sigma2_study=float(fit.sigma2[0]), sigma2_es=float(fit.sigma2[1]))
    if not (used.groupby("study").size() > 1).any():
        notes.append("one effect per study: sigma2_study and sigma2_es are not separately identified")
    rob = None
    n_studies = used["study"].nunique()
    if n_studies <= fit.p:
        notes.append(f"CR2 not computed: {n_studies} studies for {fit.p} coefficients (cluster-robust inference "
                     "needs more studies than coefficients)")
    else:
        try:
            rob = robust(fit, cluster=used["study"].to_numpy(), clubSandwich=True)
        except (ValueError, np.linalg.LinAlgError) as exc:
            notes.append(f"CR2 not computed: {exc}")
    if rob is not None:
        df = float(np.atleast_1d(rob.df)[j])
        row.update(robust_se=float(np.atleast_1d(rob.se)[j]), robust_df=df,
                   robust_ci_lb=float(np.atleast_1d(rob.ci_lb)[j]), robust_ci_ub=float(np.atleast_1d(rob.ci_ub)[j]),
                   robust_pval=float(np.atleast_1d(rob.pval)[j]))
        if not df >= MIN_ROBUST_DF:
            notes.append(f"CR2 Satterthwaite df {df:.2g} < {MIN_ROBUST_DF:g}: the robust test is unreliable "
                         "(Tipton 2015)")
    notes.append(f"model: {len(used)} effects from {used['study'].nunique()} studies"
                 + (f" at {used['window'].nunique()} windows" if several else ""))
    row.update(status=str(AnalysisStatus.fitted()), notes="; ".join(notes))
    return DependenceResult(spec, row, used, V, fit, rob)


def dependence_table(specs: Sequence[AnalysisSpec], results: Sequence[AnalysisResult], extraction: Extraction,
                     review: Review, main: Sequence[str]) -> pd.DataFrame:
    """dependence.csv: one row per main contrast (`main` ids, in order), columns `DEPENDENCE_COLUMNS`."""
    by_id = {s.id: s for s in specs}
    result_of = {r.spec.id: r for r in results}
    cache: dict = {}
    rows = [run_dependence(by_id[aid], extraction, review, result_of.get(aid), cache).row
            for aid in main if aid in by_id]
    frame = pd.DataFrame(rows, columns=list(DEPENDENCE_COLUMNS))
    for col in ("k_effects", "k_studies", "k_multiarm", "k_multitime"):
        frame[col] = frame[col].astype(int)
    return frame


__all__ = ["DEPENDENCE_COLUMNS", "DependenceResult", "counts", "dependence_effects", "dependence_table",
           "fit_che", "not_positive_definite", "run_dependence", "sampling_vcov"]
