"""Everything the book's pages show beyond the analysis tables, computed by `metaexercise run` from what it
already has in hand (the `AnalysisResult` objects, the loaded extraction, the project), so that the publish
floor only reads `results/` and never refits, reads a sheet or a search folder.

Files (written by `metaexercise.review.run` beside analyses.csv; tables carry the run's ``data`` column first
where they come from the extraction):

* ``characteristics.csv``  one row per study of the sheets (`characteristics_columns`: the fixed ones and
  every moderator review.yaml declares); the coverage banner counts its rows
* ``risk_of_bias.csv``     the risk-of-bias judgements, one row per study, one column per domain review.yaml
  declares and ``overall`` (header only when no study is rated)
* ``forest.csv``           per fitted meta-analysis, the numbers the forest and funnel plots print beside the
  per-study rows of studies.csv (`FOREST_COLUMNS`; the Q-profile CI of tau^2 included)
* ``bubble_studies.csv``   per meta-regression and numeric moderator, the studies' points (`BUBBLE_STUDY_COLUMNS`)
* ``bubble_lines.csv``     ... and the fitted line with its 95% CI over a grid of the moderator, other
  moderators at their weighted mean (`BUBBLE_LINE_COLUMNS`; metafor's `regplot`)
* ``vas_published.csv``    real run only, with analyses/published.yaml: the review's published pooled SMDs
  of the main contrasts in points, with the typical SD each outcome declares (none: no points)
* ``prisma_update.json``   real run only, when `searches/` exists and the caller passed a `SearchCounter`: the
  PRISMA 2020 counts of the search update. The review floor does not import the searches wing; the command
  line, which may, passes its counter (`metaexercise.searches.workflow.run_status`) to `run_project`
* ``validation.csv``       real run only, when the project has metafor reference fixtures
  (`Project.reference`): `metaexercise.engine.validation.metafor_agreement`, per quantity
* ``pi_coverage.csv``      real run only, when review.yaml declares the simulation component: the coverage of
  prediction intervals at small k (`pi_coverage_table`; seeded, the same bytes on every run)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from metaexercise.extraction.sheets import Extraction
from metaexercise.review.analyses import AnalysisResult, comparisons_for, moderator_frame
from metaexercise.review.declaration import Review
from metaexercise.review.project import Project
from metaexercise.vocabulary import DataSource

FOREST_COLUMNS = (
    "analysis_id", "method", "test", "level", "k", "p", "estimate", "se", "zval", "pval", "ci_lb", "ci_ub",
    "pi_lb", "pi_ub", "ddf", "tau2", "tau2_ci_lb", "tau2_ci_ub", "I2", "QE", "QE_df", "QEp",
)
BUBBLE_STUDY_COLUMNS = ("analysis_id", "term", "moderator", "study_id", "label", "x", "yi", "vi", "weight")
BUBBLE_LINE_COLUMNS = ("analysis_id", "term", "moderator", "x", "pred", "ci_lb", "ci_ub")
VAS_COLUMNS = (
    "contrast", "smd", "smd_ci_lb", "smd_ci_ub", "vas_printed", "sd", "sd_source", "points", "points_ci_lb",
    "points_ci_ub", "threshold", "verdict",
)
VALIDATION_COLUMNS = (
    "quantity", "comparisons", "max_abs_diff", "max_rel_diff", "worst_case", "fits", "failed_fits", "reference",
    "files",
)
#: Points of the grid a bubble plot's fitted line is evaluated on (as metafor's `regplot`'s default length).
BUBBLE_GRID = 60

#: Counts the PRISMA 2020 flow of a search folder (given its path): e.g. the command line's
#: ``lambda folder: run_status(SearchFolder(folder)).to_dict()`` (`metaexercise.searches.workflow`).
SearchCounter = Callable[[Path], Mapping]


def study_labels(studies: pd.DataFrame) -> pd.Series:
    """"Author Year" per row of the studies sheet."""
    return studies["first_author"].astype(str) + " " + studies["year"].astype("string").fillna("")


# ------------------------------------------------------------------------------------ sheets → tables
def characteristics_columns(review: Review) -> tuple[str, ...]:
    """Columns of characteristics.csv: the fixed ones, the declared categorical moderators before the
    controls, the declared numeric moderators after them."""
    cat = [m.name for m in review.moderators if m.categorical]
    num = [m.name for m in review.moderators if not m.categorical]
    return ("study_id", "study", "status", "n_randomised", *cat, "controls", *num, "outcome_rows", "rob_overall",
            "source")


def rob_columns(review: Review) -> tuple[str, ...]:
    """Columns of risk_of_bias.csv: one per declared domain (as the sheets name them: its label)."""
    return ("study_id", "study", *(label for _, label in review.risk_of_bias.domains), "overall")


def characteristics(extraction: Extraction, review: Review) -> pd.DataFrame:
    """Study characteristics from the studies and arms sheets, one row per study in the sheet's order."""
    st = extraction.studies
    arms = extraction.arms
    n_by_study = arms.groupby("study_id")["n_randomised"].sum(min_count=1)
    ctrl = (arms[arms["arm_role"] == review.role_control].groupby("study_id")["control_type"]
            .agg(lambda s: "; ".join(sorted({str(x) for x in s if pd.notna(x)}))))
    outcomes = extraction.outcomes.groupby("study_id").size()
    columns = characteristics_columns(review)
    frame = {
        "study_id": st["study_id"],
        "study": study_labels(st),
        "status": st["inclusion_status"],
        "n_randomised": st["study_id"].map(n_by_study),
        "controls": st["study_id"].map(ctrl),
        "outcome_rows": st["study_id"].map(outcomes).fillna(0).astype(int),
        "rob_overall": st["rob_overall"] if "rob_overall" in st else np.nan,
        "source": st["source"],
    }
    for m in review.moderators:
        frame[m.name] = st[m.name] if m.name in st else np.nan
    return pd.DataFrame(frame, columns=list(columns)).reset_index(drop=True)


def risk_of_bias(extraction: Extraction, review: Review) -> pd.DataFrame:
    """The risk_of_bias sheet wide: one row per rated study (sorted by study_id), one column per domain
    ("no information" where a domain is not rated) and the studies sheet's overall rating."""
    long = extraction.risk_of_bias
    columns = rob_columns(review)
    if long.empty:
        return pd.DataFrame(columns=list(columns))
    domains = list(columns[2:-1])
    wide = long.pivot(index="study_id", columns="domain", values="judgement")
    wide = wide.reindex(columns=domains).fillna("no information")
    st = extraction.studies.set_index("study_id")
    wide["overall"] = st["rob_overall"].reindex(wide.index).fillna("no information").to_numpy()
    labels = study_labels(st.reset_index()).set_axis(st.index)
    wide.insert(0, "study", [labels.get(s, s) for s in wide.index])
    return wide.rename_axis("study_id").reset_index().reindex(columns=list(columns))


# --------------------------------------------------------------------------------- fits → plot numbers
def _tau2_ci(fit) -> tuple[float, float]:
    """The Q-profile CI of tau^2 (`fit.confint()`), or NaNs when it cannot be computed (k < 2, tau^2 fixed)."""
    if fit.k < 2 or fit.tau2_fixed:
        return float("nan"), float("nan")
    try:
        _est, lb, ub = fit.confint().tau2
    except Exception:  # noqa: BLE001 - the forest then prints tau^2 without its bracket, as before
        return float("nan"), float("nan")
    return float(lb), float(ub)


def pooled_row(analysis_id: str, fit) -> dict:
    """One row of forest.csv: an intercept-only fit's pooled numbers, tests and Q-profile CI of tau^2."""
    lb, ub = _tau2_ci(fit)
    return {
        "analysis_id": analysis_id, "method": fit.method, "test": fit.test, "level": fit.level, "k": fit.k,
        "p": fit.p, "estimate": fit.estimate, "se": float(fit.se[0]), "zval": float(fit.zval[0]),
        "pval": float(fit.pval[0]), "ci_lb": float(fit.ci_lb[0]), "ci_ub": float(fit.ci_ub[0]),
        "pi_lb": fit.pi_lb, "pi_ub": fit.pi_ub, "ddf": fit.ddf, "tau2": fit.tau2, "tau2_ci_lb": lb,
        "tau2_ci_ub": ub, "I2": fit.I2, "QE": fit.QE, "QE_df": fit.k - fit.p, "QEp": fit.QEp,
    }


def forest(results: Sequence[AnalysisResult]) -> pd.DataFrame:
    """One row per fitted meta-analysis (intercept-only): what the forest plot prints under its study rows
    and the funnel plot centres on (`pooled_row`). The study rows themselves are in studies.csv."""
    rows = [pooled_row(r.spec.id, r.fit) for r in results if r.fit is not None and r.regression is None]
    return pd.DataFrame(rows, columns=list(FOREST_COLUMNS))


def regression_line(fit, column: int, n: int = BUBBLE_GRID) -> pd.DataFrame:
    """metafor's `regplot` line of a meta-regression `fit` against moderator column `column` (1-based in
    `fit.X`): the prediction and its CI over `n` points from the moderator's minimum to its maximum, the other
    moderators held at their weighted mean (`fit.predict`)."""
    X = np.asarray(fit.X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2 or not 1 <= column < X.shape[1]:
        raise ValueError(f"a regression line needs a meta-regression fit and a moderator column in "
                         f"1..{X.shape[1] - 1}; got column={column} for X of shape {X.shape}")
    w = np.asarray(fit.weights, dtype=float)
    x = X[:, column]
    grid = np.linspace(x.min(), x.max(), n)
    others = (w[:, None] * X[:, 1:]).sum(axis=0) / w.sum()
    newmods = np.tile(others, (grid.size, 1))
    newmods[:, column - 1] = grid
    pred = fit.predict(newmods=newmods)
    return pd.DataFrame({"x": grid, "pred": np.asarray(pred.pred, dtype=float),
                         "ci_lb": np.asarray(pred.ci_lb, dtype=float), "ci_ub": np.asarray(pred.ci_ub, dtype=float)})


def bubbles(results: Sequence[AnalysisResult], extraction: Extraction, review: Review,
            cache: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bubble-plot data of every fitted meta-regression against each numeric moderator (indicators are left
    to the coefficient table): the studies' points with their weights, and the fitted line (`regression_line`).
    The fit is `metareg`'s own (same comparisons, moderators and method); its coefficients are checked
    against the stored ones, so a figure can never disagree with metareg.csv."""
    from metaexercise.engine.model import rma

    points, lines = [], []
    for r in results:
        reg = r.regression
        if reg is None or not r.ok:
            continue
        spec = r.spec
        comps = comparisons_for(spec, extraction, review, cache)
        mods = moderator_frame(spec, comps)
        keep = mods.notna().all(axis=1).to_numpy()
        comps, mods = comps[keep].reset_index(drop=True), mods[keep].reset_index(drop=True)
        mods = mods[[t for t in reg.coef_names if t in mods]]
        fit = rma(comps["yi"].to_numpy(float), comps["vi"].to_numpy(float), mods=mods.to_numpy(float),
                  method=reg.method, test="z", level=reg.level)
        if not np.allclose(fit.beta, reg.beta, rtol=1e-6, atol=1e-9):
            raise ValueError(f"{spec.id}: the bubble plots' fit differs from the meta-regression's coefficients")
        labels = {t: lab for m in spec.moderators for t, lab in m.term_labels().items()}
        for j, name in enumerate(mods.columns, start=1):
            if set(np.unique(mods[name])) <= {0.0, 1.0}:
                continue
            head = {"analysis_id": spec.id, "term": name, "moderator": labels.get(name, name)}
            points.append(pd.DataFrame({**head, "study_id": comps["study_id"].to_numpy(),
                                        "label": comps["label"].to_numpy() if "label" in comps else np.nan,
                                        "x": mods[name].to_numpy(float), "yi": fit.yi, "vi": fit.vi,
                                        "weight": fit.weights}))
            lines.append(regression_line(fit, j).assign(**head))
    pts = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    lns = pd.concat(lines, ignore_index=True) if lines else pd.DataFrame()
    return (pts.reindex(columns=list(BUBBLE_STUDY_COLUMNS)), lns.reindex(columns=list(BUBBLE_LINE_COLUMNS)))


# ------------------------------------------------------------------------ declared files → tables
def vas_published(project: Project, main_ids: Sequence[str]) -> pd.DataFrame | None:
    """The review's published pooled SMD of each main contrast (the published registry, Results section)
    re-expressed in points with the typical SD its outcome declares (review.yaml; an outcome without one gets
    no points), beside the points the review printed, against the outcome's MID. None without the registry."""
    review = project.review
    if not review.components.published:
        return None
    path = project.root / review.components.published
    if not path.exists():
        return None
    from metaexercise.review.published import load_published
    from metaexercise.review.vas import to_vas
    from metaexercise.review.vocabulary import ContrastId

    reg = load_published(path, review)
    rows = []
    for cid in main_ids:
        e = reg.effect(cid, "results")
        parts = ContrastId.parse(cid, review)
        if e is None or parts is None:
            continue
        outcome = review.outcome(parts.outcome)
        printed = reg.for_contrast(cid, "points")
        row = {"contrast": cid, "smd": e.estimate.value, "smd_ci_lb": e.ci_lb.value, "smd_ci_ub": e.ci_ub.value,
               "vas_printed": printed[0].value.text if printed and printed[0].value else "",
               "threshold": outcome.mid.value if outcome.mid is not None else np.nan}
        t = outcome.typical_sd
        if t is None:
            row.update(sd=np.nan, sd_source=f"{outcome.id} declares no typical SD (review.yaml): not re-expressed",
                       points=np.nan, points_ci_lb=np.nan, points_ci_ub=np.nan, verdict="")
        else:
            sd_source = t.source
            vas = to_vas(outcome, e.estimate.value, e.ci_lb.value, e.ci_ub.value, t.value, sd_source)
            row.update(sd=t.value, sd_source=sd_source, points=vas.points, points_ci_lb=vas.ci_lb,
                       points_ci_ub=vas.ci_ub, verdict=vas.verdict)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(VAS_COLUMNS))


def prisma_update(project: Project, counter: SearchCounter | None) -> dict | None:
    """PRISMA 2020 counts of the search update in searches/, by `counter`; None when the project has no
    searches/ folder or no counter was given."""
    if counter is None or not project.searches.is_dir():
        return None
    return dict(counter(project.searches))


def validation(project: Project) -> pd.DataFrame | None:
    """The engine's agreement with metafor on the project's reference fixtures (`Project.reference`), one
    row per quantity, the summary (fits compared, fits that failed, folder and files) on every row; None when
    the project has no fixtures."""
    reference = project.reference
    if not (reference / "rma.json").is_file():
        return None
    from metaexercise.engine.validation import metafor_agreement

    agreement = metafor_agreement(reference)
    frame = agreement.to_frame().assign(fits=agreement.fits, failed_fits=len(agreement.failed),
                                        reference=_relative(reference, project.root), files=agreement.source)
    return frame.reindex(columns=list(VALIDATION_COLUMNS))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ------------------------------------------------------------------------------------------ the set
def input_folders(project: Project, source: str, search_counter: SearchCounter | None = None) -> list[Path]:
    """Folders besides analyses/ and the sheets whose files the exhibits of `source` read (for the manifest)."""
    if DataSource.parse(source).synthetic:
        return []
    out = []
    if search_counter is not None and project.searches.is_dir():
        out.append(project.searches)
    if (project.reference / "rma.json").is_file():
        out.append(project.reference)
    return out


def build(project: Project, results: Sequence[AnalysisResult], extraction: Extraction, *, source: str,
          data_label: str, main_ids: Sequence[str], cache: dict | None = None,
          search_counter: SearchCounter | None = None) -> dict[str, pd.DataFrame | dict]:
    """Every exhibit of one run, keyed by file name (tables as DataFrames, the PRISMA counts as a dict).
    Tables from the sheets or the fits carry `data_label` in a first ``data`` column, as the analysis tables."""
    review = project.review
    tables: dict[str, pd.DataFrame | dict] = {
        "characteristics.csv": characteristics(extraction, review),
        "risk_of_bias.csv": risk_of_bias(extraction, review),
        "forest.csv": forest(results),
    }
    tables["bubble_studies.csv"], tables["bubble_lines.csv"] = bubbles(results, extraction, review, cache)
    for frame in tables.values():
        frame.insert(0, "data", data_label)
    if not DataSource.parse(source).synthetic:
        vas = vas_published(project, main_ids)
        if vas is not None:
            tables["vas_published.csv"] = vas
        counts = prisma_update(project, search_counter)
        if counts is not None:
            tables["prisma_update.json"] = counts
        agreement = validation(project)
        if agreement is not None:
            tables["validation.csv"] = agreement
    return tables


#: The prediction-interval coverage study of the methods page (results/pi_coverage.csv): numbers of studies,
#: true tau^2 on the SMD scale (the fitted main contrasts' REML tau^2 lie between 0 and about 0.25), replicates
#: per scenario and the seed, fixed so that every run writes the same bytes.
PI_COVERAGE_K = (3, 5, 7, 10, 15, 20, 30)
PI_COVERAGE_TAU2 = (0.0, 0.03, 0.1, 0.25)
PI_COVERAGE_REPS = 1000
PI_COVERAGE_SEED = 20150115
#: pi_coverage's method codes by the names review.yaml's prediction_interval uses, and "bayes".
PI_COVERAGE_METHODS = {"z": "z", "t(k-1)": "t_k-1", "t(k-2)": "t_k-2", "knha": "knha", "bayes": "bayes"}
PI_COVERAGE_COLUMNS = (
    "k", "tau2", "method", "method_code", "declared", "bayes_prior", "n_rep", "n_used", "failure_rate", "coverage",
    "coverage_mcse", "coverage_expected", "coverage_expected_mcse", "width", "width_mcse", "seed",
)


def coverage_prior(review: Review):
    """The tau prior of the coverage study's Bayesian intervals: the one every outcome of the review declares
    (review.yaml ``bayes``) when they all resolve to one proper prior with a quantile function (what
    `predictive_intervals` integrates over), else the engine's default, half-normal(0.5)."""
    from metaexercise.engine.bayes_priors import resolve_tau_prior
    from metaexercise.engine.prediction_coverage import BAYES_PRIOR

    priors = {}
    for o in review.outcomes:
        decl = review.bayes.tau_prior_for(o.id)
        try:
            prior = resolve_tau_prior(decl.name, decl.scale, np.array([0.05, 0.1, 0.2]))
        except ValueError:
            return BAYES_PRIOR
        priors[(prior.label, tuple(sorted((k, str(v)) for k, v in prior.parameters.items())))] = prior
    if len(priors) != 1:
        return BAYES_PRIOR
    (prior,) = priors.values()
    return prior if prior.proper and prior.ppf is not None and prior.cdf is not None else BAYES_PRIOR


def pi_coverage_table(review: Review, reps: int = PI_COVERAGE_REPS, seed: int = PI_COVERAGE_SEED) -> pd.DataFrame:
    """Coverage of 95% prediction intervals (z, t(k-1), t(k-2), Knapp-Hartung and the Bayesian predictive
    interval under `coverage_prior`) over `PI_COVERAGE_K` x `PI_COVERAGE_TAU2`, simulated by
    `metaexercise.engine.prediction_coverage.pi_coverage` in this process with a fixed seed (trial sizes of the
    review: `review_vi_sampler`); ``declared`` marks the method review.yaml says the project reports."""
    from metaexercise.engine.prediction_coverage import pi_coverage

    codes = {v: k for k, v in PI_COVERAGE_METHODS.items()}
    prior = coverage_prior(review)
    result = pi_coverage(k_values=PI_COVERAGE_K, tau2_grid=PI_COVERAGE_TAU2, n_rep=reps, seed=seed,
                         methods=tuple(PI_COVERAGE_METHODS.values()), bayes_prior=prior)
    table = result.table.rename(columns={"method": "method_code"})
    table["method"] = table["method_code"].map(codes)
    table["declared"] = table["method"] == review.prediction_interval.method
    table["bayes_prior"] = np.where(table["method_code"] == "bayes", prior.label, "")
    table["seed"] = seed
    return table.reindex(columns=list(PI_COVERAGE_COLUMNS))


def write_simulation(project: Project, reps: int, seed: int) -> Path:
    """results/simulation.csv: the review preset of `metaexercise.engine.simulate` (the methods page's
    simulation study), in this process with a fixed seed, so every build shows the same table."""
    from metaexercise.atomic import write_text
    from metaexercise.engine.simulate import review_preset, run_simulation
    from metaexercise.spreadsheet_safety import csv_text

    result = run_simulation(review_preset(), reps, seed, scheduler="synchronous")
    target = project.results / "simulation.csv"
    write_text(target, csv_text(result.table))
    return target
