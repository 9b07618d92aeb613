"""`metaexercise run`: execute every analysis spec and write `results/` (the replica: `results/replica/`).

Files written (all computed first, then the results folder replaced as a whole, `write`):

* ``analyses.csv``  one row per analysis (`metaexercise.review.analyses.ANALYSIS_COLUMNS`)
* ``studies.csv``   the per-study rows behind each analysis (`STUDY_COLUMNS`)
* ``metareg.csv``   meta-regression coefficients and model tests (`METAREG_COLUMNS`)
* ``grade.csv``     GRADE per fitted meta-analysis: each domain's suggestion and reason, the reviewer's
  judgement from analyses/grade.yaml where given, the rating and the certainty (`metaexercise.review.grade`)
* ``sof.csv``       summary of findings (GRADEpro layout) for the main analyses (`vocabulary.main_ids`); for
  the real extraction the review's own certainty beside ours (never for the replica)
* ``excluded.csv``  every study or arm an analysis left out, with the reason (`analyses.EXCLUDED_COLUMNS`)
* ``dependence.csv`` per main analysis, the sensitivity analysis that models multi-arm and multi-time-point
  trials (multilevel model with shared-arm covariance, CR2-robust inference; `metaexercise.review.dependence`)
* ``bayes.csv``     per main analysis, the Bayesian random-effects model (bayesmeta) with the priors review.yaml
  declares, beside the frequentist numbers of the same fit (`metaexercise.review.bayes_summary`)
* ``pi_coverage.csv`` real extraction only, when review.yaml declares the simulation component: the coverage
  study of prediction intervals at small k (`metaexercise.review.exhibits.pi_coverage_table`, seeded)
* ``review.json``   the project's declaration (review.yaml) as plain data, for the book: title, labels,
  outcomes with labels and MIDs, comparators, windows, moderators, which components exist, main analyses
* ``audit.csv``     the consistency audit of the review's published numbers (`metaexercise.review.audit`; real
  extraction only: the replica is never set beside the published numbers)
* ``explain.csv``   the audit's section on conventions: for each published pooled number, which effect basis,
  τ² estimator, CI, I² and PI convention reproduces its printed digits from the extraction
  (`metaexercise.review.explain`; real extraction only, with the published registry)
* what the book's pages show besides (`metaexercise.review.exhibits`): ``characteristics.csv``,
  ``risk_of_bias.csv``, ``forest.csv``, ``bubble_studies.csv``, ``bubble_lines.csv``; for the real extraction
  also ``vas_published.csv``, ``prisma_update.json`` (when searches/ exists) and ``validation.csv`` (when the
  project has metafor reference fixtures, `Project.reference`)
* ``manifest.json`` sha256 of every input file and of every output, the versions of metaexercise, Python,
  numpy, scipy and pandas. No timestamps, so two runs on the same inputs give byte-identical files. The
  inputs are hashed before the analyses read them and again at the end; a file that changed (or appeared or
  went) meanwhile stops the run (`InputChangedError`) and nothing is written, so the hashes are those of the
  bytes the run read.

Every table carries a ``data`` column (`metaexercise.vocabulary.DataSource.data_label`): "extraction" for the
real sheets, or "synthetic replica — not the trials' data" for the replica.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from tqdm import tqdm

from metaexercise import atomic
from metaexercise._version import __version__
from metaexercise.errors import MetaexerciseError, SourceError
from metaexercise.extraction.sheets import load_extraction
from metaexercise.review import bayes_summary, dependence, exhibits, replica
from metaexercise.review.analyses import (
    ANALYSIS_COLUMNS,
    EXCLUDED_COLUMNS,
    METAREG_COLUMNS,
    STUDY_COLUMNS,
    AnalysisResult,
    check_not_mixed,
    excluded_rows,
    metareg_rows,
    run_analysis,
)
from metaexercise.review.declaration import Review
from metaexercise.review.explain import explain_registry
from metaexercise.review.project import Project
from metaexercise.review.specs import load_specs
from metaexercise.review.vocabulary import AnalysisKind, main_ids
from metaexercise.spreadsheet_safety import csv_text, read_csv
from metaexercise.vocabulary import DataSource, codes

Source = DataSource
SOURCES: tuple[str, ...] = codes(DataSource)
#: Floats in the CSV files: 12 significant digits (well past any printed precision; stable across runs).
FLOAT_FORMAT = "%.12g"


@dataclass(frozen=True, slots=True)
class RunOutput:
    """What one run produced: the analysis results and the exact bytes of every file to write."""

    source: DataSource
    folder: Path
    results: tuple[AnalysisResult, ...]
    files: dict[str, bytes]

    def frame(self, name: str) -> pd.DataFrame:
        """One of the written tables, read back (e.g. `frame("analyses")`; formula escapes undone)."""
        return read_csv(io.BytesIO(self.files[f"{name}.csv"]))

    def summary(self) -> str:
        """One line for the run, then one per analysis: status, k and what was left out (excluded.csv)."""
        ok = sum(r.ok for r in self.results)
        label = f" ({self.source.data_label})" if self.source.synthetic else ""
        lines = [f"{len(self.results)} analyses from {self.source}{label}: {ok} fitted, "
                 f"{len(self.results) - ok} with insufficient data; results in {self.folder}"]
        for r in self.results:
            lines.append(f"  {r.spec.id}: {r.status}, k = {r.row()['k']}; {left_out(r)}")
        return "\n".join(lines)


def left_out(result: AnalysisResult) -> str:
    """"left out: 3 studies (2 no time point in the window, 1 not included)", or "nothing left out"."""
    if not result.excluded:
        return "nothing left out"
    counts: dict[str, set] = {}
    for sid, arm, cat, _why in result.excluded:
        counts.setdefault(cat, set()).add((sid, arm))
    studies = len({x[0] for x in result.excluded})
    parts = ", ".join(f"{len(v)} {k}" for k, v in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    return f"left out or combined: {studies} stud{'y' if studies == 1 else 'ies'} ({parts}; see excluded.csv)"


def extraction_folder(project: Project, source: DataSource | str) -> Path:
    """Where the sheets of `source` are: `extraction/`, or `replica/extraction/` for the replica."""
    synthetic = DataSource.parse(source).synthetic
    return project.root / "replica" / "extraction" if synthetic else project.extraction


def results_folder(project: Project, source: DataSource | str) -> Path:
    return project.results / "replica" if DataSource.parse(source).synthetic else project.results


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class InputChangedError(MetaexerciseError):
    """An input file changed while a run read it; the message names the file(s). Nothing was written."""


def _check_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    """Raise `InputChangedError` unless the inputs hashed at the start of a run (`before`) are unchanged."""
    changed = sorted(n for n in before.keys() & after.keys() if before[n] != after[n])
    gone, new = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    if not (changed or gone or new):
        return
    parts = ([f"{n} changed while the run read it" for n in changed]
             + [f"{n} was removed during the run" for n in gone]
             + [f"{n} appeared during the run" for n in new])
    raise InputChangedError("input files changed during the run, so the results may mix old and new inputs "
                            f"and nothing was written: {'; '.join(parts)}. "
                            "Run again once the files are saved.")


def _inputs(project: Project, folder: Path, *more: Path) -> dict[str, str]:
    """sha256 of review.yaml and of every file under analyses/, the extraction folder and `more` folders,
    keyed by path relative to the project."""
    files = [project.declaration] if project.declaration.is_file() else []
    files += sorted(p for base in (project.analyses, folder, *more) if base.is_dir() for p in base.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(project.root).as_posix(): _sha256(p) for p in files}


def _csv(frame: pd.DataFrame) -> bytes:
    """The table as CSV bytes; text a spreadsheet would run as a formula (e.g. "-0.55 (-0.81 to -0.30)"),
    in a cell or a column name, gets a leading `'` (`metaexercise.spreadsheet_safety`); numbers stay
    numbers. `RunOutput.frame` and `spreadsheet_safety.read_csv` read it back unescaped."""
    return csv_text(frame, float_format=FLOAT_FORMAT).encode("utf-8")


def _json(content: dict) -> bytes:
    return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _tables(results: list[AnalysisResult], data_label: str) -> dict[str, pd.DataFrame]:
    tables = _result_tables(results)
    tables["excluded"] = pd.DataFrame([x for r in results for x in excluded_rows(r)], columns=list(EXCLUDED_COLUMNS))
    for frame in tables.values():
        frame.insert(0, "data", data_label)
    return tables


def _result_tables(results: list[AnalysisResult]) -> dict[str, pd.DataFrame]:
    analyses = pd.DataFrame([r.row() for r in results], columns=list(ANALYSIS_COLUMNS))
    studies = [r.studies for r in results if len(r.studies)]
    studies = (pd.concat(studies, ignore_index=True) if studies else pd.DataFrame(columns=list(STUDY_COLUMNS)))
    regs = [row for r in results if r.spec.kind == AnalysisKind.META_REGRESSION for row in metareg_rows(r)]
    metareg = pd.DataFrame(regs, columns=list(METAREG_COLUMNS))
    return {"analyses": analyses, "studies": studies, "metareg": metareg}


GRADE_COLUMNS = ("analysis_id", "domain", "suggested_downgrade", "reason", "judged_downgrade", "rationale",
                 "rating", "certainty", "k", "participants")


def _lower_first(text: str) -> str:
    """"Individualized exercise" -> "individualized exercise" (an acronym such as "CBT" stays)."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _grade(project: Project, results: list[AnalysisResult], synthetic: bool,
           main: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GRADE every fitted meta-analysis (an outcome with a MID needs the patient-level SD of its
    re-expression for its clinical thresholds; an analysis without one is listed as not graded) and the
    summary of findings of the main analyses."""
    from metaexercise.review.grade import (
        GradeThresholds,
        grade_analysis,
        judgements_for,
        load_judgements,
        summary_of_findings,
    )
    from metaexercise.review.published import load_published

    review = project.review
    comp = review.components
    path = project.root / comp.grade_judgements if comp.grade_judgements else None
    table = load_judgements(path) if path is not None and path.exists() else {}
    assessments, rows = [], []
    for r in results:
        if r.fit is None or r.regression is not None:
            continue
        outcome = review.outcome(r.spec.outcome)
        if outcome.mid is not None and not np.isfinite(r.vas_sd):
            rows.append({"analysis_id": r.spec.id, "domain": "all", "reason": "not graded: no patient-level SD "
                         f"to express the clinical threshold in SMD units ({r.vas_sd_source})"})
            continue
        used = r.studies[~r.studies["excluded_as_outlier"].astype(bool)].reset_index(drop=True)
        unrated = sorted(used.loc[used["rob_overall"].isna(), "study_id"].astype(str))
        if unrated:
            rows.append({"analysis_id": r.spec.id, "domain": "all", "reason": "not graded: overall risk of bias "
                         f"not rated for {', '.join(unrated)} (studies.rob_overall)"})
            continue
        th = GradeThresholds.for_outcome(outcome, r.vas_sd, r.vas_sd_source, grade=review.grade,
                                         experimental=_lower_first(review.labels.experimental))
        a = grade_analysis(r.spec.id, r.fit, used, r.regtest, r.ranktest, thresholds=th,
                           judgements=judgements_for(table, r.spec.id))
        assessments.append(a)
        frame = a.to_frame().assign(certainty=a.certainty, k=a.k, participants=a.participants)
        rows += frame.to_dict("records")
    grade = pd.DataFrame(rows, columns=list(GRADE_COLUMNS))
    published_path = project.root / comp.published if comp.published else None
    published = (None if synthetic or published_path is None or not published_path.exists()
                 else load_published(published_path, review))
    chosen = [a for a in assessments if a.analysis_id in main]
    return grade, summary_of_findings(chosen, published, review)


def _audit(project: Project) -> pd.DataFrame | None:
    published = project.review.components.published
    path = project.root / published if published else None
    if path is None or not path.exists():
        return None
    from metaexercise.review.audit import audit_registry, findings_frame
    from metaexercise.review.published import load_published

    return findings_frame(audit_registry(load_published(path, project.review)))


def review_json(review: Review, main: tuple[str, ...]) -> dict:
    """results/review.json: the declaration as plain data (`Review.to_dict`) and the main analyses' ids."""
    return {**review.to_dict(), "main_analyses": list(main)}


def _load_sheets(folder: Path, review: Review):
    """The sheets at `folder`, read with the project's vocabulary (`Review.sheet_vocabulary`)."""
    return load_extraction(folder, vocabulary=review.sheet_vocabulary())


def execute(project: Project, *, source: DataSource | str = DataSource.EXTRACTION,
            progress: bool = True, search_counter: exhibits.SearchCounter | None = None) -> RunOutput:
    """Run every spec in `analyses/` on the sheets of `source` and return the files to write.
    `search_counter` counts the PRISMA flow of searches/ for prisma_update.json (`metaexercise.review.exhibits`;
    the command line passes the searches wing's).

    For the replica, its sheets are (re)generated first, deterministically (`metaexercise.review.replica`), so a
    changed generator never leaves stale sheets behind; `replica/` is generated output, not an input.
    """
    source = DataSource.parse(source)
    folder = extraction_folder(project, source)
    # Hash the inputs before anything here reads them (the replica's sheets once regenerated); they are
    # hashed again at the end, so the manifest's hashes are those of the bytes the run read.
    input_folders = exhibits.input_folders(project, source, search_counter)
    inputs = {} if source.synthetic else _inputs(project, folder, *input_folders)
    review = project.review
    if source.synthetic:
        if not review.components.replica:
            raise SourceError(f"{project.declaration}: this project declares no replica (components.replica); "
                             "run the extraction instead")
        replica.write(replica.generate(review=review), folder)
        inputs = _inputs(project, folder, *input_folders)
    specs = load_specs(project.analyses, review=review)
    main = main_ids(specs)
    extraction = _load_sheets(folder, review)
    synthetic = check_not_mixed(extraction.studies, str(folder))
    if synthetic != source.synthetic:
        raise SourceError(
            f"{folder}: the sheets are {'synthetic' if synthetic else 'real'} but were run as source "
            f"'{source}'; real data live in extraction/, the replica in replica/extraction/"
        )
    data_label = source.data_label
    cache: dict = {}
    results = [run_analysis(spec, extraction, review, cache)
               for spec in tqdm(specs, desc=f"metaexercise run ({source})", unit="analysis", file=sys.stderr,
                                disable=not progress)]
    tables = _tables(results, data_label)
    tables["grade"], tables["sof"] = _grade(project, results, synthetic, main)
    tables["dependence"] = dependence.dependence_table(specs, results, extraction, review, main)
    tables["bayes"] = bayes_summary.bayes_table(results, review, main)
    for name in ("grade", "sof", "dependence", "bayes"):
        tables[name].insert(0, "data", data_label)
    files = {f"{name}.csv": _csv(frame) for name, frame in tables.items()}
    for name, content in exhibits.build(project, results, extraction, source=source, data_label=data_label,
                                        main_ids=main, cache=cache, search_counter=search_counter).items():
        files[name] = _csv(content) if isinstance(content, pd.DataFrame) else _json(content)
    if not source.synthetic:
        if review.components.simulation:  # once per build: the study does not depend on the source's rows
            files["pi_coverage.csv"] = _csv(exhibits.pi_coverage_table(review))
        audit = _audit(project)
        if audit is not None:
            files["audit.csv"] = _csv(audit)
            # the audit's section on conventions: which one reproduces each published pooled number
            files["explain.csv"] = _csv(explain_registry(project, results))
    files["review.json"] = _json(review_json(review, main))
    manifest = {
        "toolkit": {"name": "metaexercise", "version": __version__},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "pandas": pd.__version__},
        "source": source,
        "data": data_label,
        "analyses": len(results),
        "inputs": inputs,
        "outputs": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    if synthetic:
        manifest["replica_not_honoured"] = list(replica.NOT_HONOURED)
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    _check_unchanged(inputs, _inputs(project, folder, *input_folders))
    return RunOutput(source=source, folder=results_folder(project, source), results=tuple(results), files=files)


def write(output: RunOutput) -> list[Path]:
    """Write every file of `output` as one set (`metaexercise.atomic.replace_folder`): the complete new
    results folder is built beside the current one and swapped in atomically, so after a crash at any moment
    the folder holds the previous set or the new set, never a mix, and the next write removes what the crash
    left (staging and previous folders, and the `.run-*` staging folders of earlier versions). A file the
    previous manifest listed but this run no longer writes (e.g. validation.csv once the fixtures are gone)
    is left out, so no page shows a stale exhibit; every other entry of the results folder (e.g. `replica/`,
    another command's file) is carried over unchanged. Writing the replica's results replaces
    `results/replica/` alone."""
    folder = output.folder
    atomic.recover_folder(folder)  # the manifest read below is that of a whole set
    try:
        previous = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("outputs", {})
    except (OSError, ValueError, AttributeError):
        previous = {}
    owned = set(output.files) | {n for n in previous if isinstance(n, str)}

    def build(staging: Path) -> None:
        for name, data in output.files.items():
            (staging / name).write_bytes(data)

    def keep(name: str) -> bool:
        return name not in owned and not (name.startswith(".run-") and (folder / name).is_dir())

    atomic.replace_folder(folder, build, keep=keep)
    return [folder / name for name in sorted(n for n in output.files if n != "manifest.json")] + [
        folder / "manifest.json"]


def run_project(project: Project, *, source: DataSource | str = DataSource.EXTRACTION,
                progress: bool = True, search_counter: exhibits.SearchCounter | None = None) -> RunOutput:
    """Execute and write in one call (what `metaexercise run` and `metaexercise book` do). `source` is
    "extraction" or "replica"; "real" is accepted as the book's name for the extraction."""
    out = execute(project, source=DataSource.parse(source), progress=progress, search_counter=search_counter)
    write(out)
    return out
