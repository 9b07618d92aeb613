"""The manuscript's Word document (`metaexercise report FILE.docx`), written with python-docx from what
`metaexercise run` wrote to results/: the review's title (results/review.json), the summary-of-findings tables
(results/sof.csv, one table per comparison, its footnotes below it), the main results table
(results/analyses.csv, the review's main analyses: k, SMD [95% CI], prediction interval, tau², I²) and the
forest plot of every main analysis that could be pooled (drawn from results/ with `metaexercise.plots.forest`,
as the book draws it), each with a numbered caption.

Real data only: the document reads results/, never results/replica/, and drops any row marked synthetic.
When the real extraction supports no main analysis, the document says so instead of showing numbers.
Nothing here fits a model. The file is written whole or not at all (`metaexercise.atomic`).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from metaexercise.atomic import atomic_path
from metaexercise.errors import MetaexerciseError
from metaexercise.review.project import Project
from metaexercise.review.vocabulary import StatusKind
from metaexercise.spreadsheet_safety import read_csv
from metaexercise.vocabulary import SYNTHETIC_LABEL

REVIEW_JSON = "review.json"
#: The results files the report reads (results/ of the real extraction); sof.csv, forest.csv and studies.csv
#: may be missing (then the document says what is not there).
NEEDED = ("review.json", "analyses.csv")
#: Columns of the summary-of-findings table, in order (GRADEpro layout; results/sof.csv).
SOF_COLUMNS = ("Outcome", "№ of participants (studies)", "Effect (SMD, 95% CI)", "Effect in VAS points (95% CI)",
               "Certainty (GRADE)", "Review's certainty")
MAIN_HEADINGS = ("Analysis", "k", "SMD [95% CI]", "95% PI", "τ²", "I²")
NO_REAL_RESULTS = ("This project has no real results yet: the real extraction supports none of the review's main "
                   "analyses, so this document shows no pooled number. The synthetic replica is never reported "
                   "here.")
FIGURE_WIDTH_CM = 16.0


class ReportError(MetaexerciseError):
    """The report cannot be written; the message names the missing file and what to run."""


@dataclass
class ReportSummary:
    path: Path
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    real_results: bool = False

    def summary(self) -> str:
        what = (f"{len(self.tables)} table(s), {len(self.figures)} figure(s)" if self.real_results
                else "no real results yet (the document says so)")
        return f"wrote {self.path}: {what}"


# ------------------------------------------------------------------------------------------ reading results
def _real(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the real extraction: none marked synthetic, none labelled with the synthetic label."""
    keep = pd.Series(True, index=frame.index)
    if "synthetic" in frame:
        keep &= ~frame["synthetic"].astype(str).str.lower().eq("true")
    if "data" in frame:
        keep &= frame["data"].astype(str) != SYNTHETIC_LABEL
    return frame[keep]


def _read(results: Path, name: str, *, text: bool = False) -> pd.DataFrame | None:
    path = results / name
    if not path.is_file():
        return None
    # results/ is written with OWASP formula neutralisation (a leading ' before =, +, -, @ text); undo it here
    if text:
        return _real(read_csv(path, dtype=str, keep_default_na=False))
    return _real(read_csv(path))


def check_results(project: Project) -> Path:
    """results/ of `project`, with the files the report needs; ReportError naming what is missing otherwise."""
    results = project.results
    if not results.is_dir():
        raise ReportError(f"{results}: no results folder; run `metaexercise run` in {project.root} first")
    missing = [n for n in NEEDED if not (results / n).is_file()]
    if missing:
        raise ReportError(f"{results}: {', '.join(missing)} missing; run `metaexercise run` in {project.root} first")
    return results


def _fmt(x, spec: str = ".2f") -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else format(value, spec)


def main_results_table(analyses: pd.DataFrame, main_ids: list[str]) -> pd.DataFrame:
    """One row per main analysis (the review's order): label, k, SMD [95% CI], 95% PI, tau², I² as the
    document prints them; an analysis the real rows cannot support says why in the SMD column."""
    by_id = analyses.drop_duplicates("analysis_id").set_index("analysis_id")
    rows = []
    for aid in main_ids:
        if aid not in by_id.index:
            continue
        r = by_id.loc[aid]
        ok = str(r["status"]) == StatusKind.OK
        rows.append({
            "analysis_id": aid,
            "Analysis": str(r["label"]),
            "k": _fmt(r["k"], ".0f"),
            "SMD [95% CI]": (f"{_fmt(r['estimate'])} [{_fmt(r['ci_lb'])}, {_fmt(r['ci_ub'])}]" if ok
                             else f"not estimable: {r['status']}"),
            "95% PI": f"[{_fmt(r['pi_lb'])}, {_fmt(r['pi_ub'])}]" if ok and _fmt(r["pi_lb"]) else "",
            "τ²": _fmt(r["tau2"], ".3f") if ok else "",
            "I²": f"{_fmt(r['I2'], '.0f')}%" if ok and _fmt(r["I2"]) else "",
            "ok": ok,
        })
    return pd.DataFrame(rows, columns=["analysis_id", *MAIN_HEADINGS, "ok"])


# ----------------------------------------------------------------------------------------------- figures
def forest_png(project: Project, analysis_id: str, analyses: pd.DataFrame, studies: pd.DataFrame,
               forest: pd.DataFrame) -> bytes:
    """The study-level forest plot of one fitted main analysis, as the book draws it, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from metaexercise.plots.forest import forest_plot
    from metaexercise.plots.inputs import PooledEffect
    from metaexercise.plots.style import RC, plot_style
    from metaexercise.publish.declared import load_declaration

    d = load_declaration(project)
    row = analyses.set_index("analysis_id").loc[analysis_id]
    st = studies[studies["analysis_id"] == analysis_id]
    st = st[~st["excluded_as_outlier"].astype(str).str.lower().eq("true")].reset_index(drop=True)
    stored = forest[forest["analysis_id"] == analysis_id]
    if stored.empty:
        raise ReportError(f"{project.results / 'forest.csv'} has no analysis {analysis_id!r}; rebuild results/ "
                          "with `metaexercise run`")
    fit = PooledEffect.from_results(stored.iloc[0], st)
    arms = pd.DataFrame({"study": st["label"].astype(str) if "label" in st else st["study_id"].astype(str)})
    for col in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"):
        if col in st:
            arms[col] = st[col].to_numpy()
    outcome = str(row["outcome"]) if pd.notna(row.get("outcome")) else None
    fig = forest_plot(fit, arms, comparator=d.comparator_label(row.get("comparator")),
                      experimental=d.label("experimental"), favours=d.favours(outcome), measure=d.measure_name)
    buffer = io.BytesIO()
    with plot_style():  # one tight box, measured once (as plots.style.save_figure does)
        bbox = fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer()).padded(float(RC["savefig.pad_inches"]))
        fig.savefig(buffer, format="png", dpi=int(RC["savefig.dpi"]), bbox_inches=bbox)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ writing
def _table(doc, header: list[str], rows: list[list[str]], widths_cm: list[float] | None = None):
    from docx.shared import Cm, Pt

    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = ""
        run = cell.paragraphs[0].add_run(text)
        run.bold = True
    for values in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, values):
            cell.text = str(text)
    for row in table.rows:
        for i, cell in enumerate(row.cells):
            if widths_cm:
                cell.width = Cm(widths_cm[i])
            for paragraph in cell.paragraphs:
                for run in paragraph.runs:
                    run.font.size = Pt(9)
    return table


def _caption(doc, text: str) -> None:
    doc.add_paragraph(text, style="Caption")


def build_report(project: Project, target: str | Path) -> ReportSummary:
    """Write the Word document for the manuscript to `target` (whole or not at all) from `project`'s results/."""
    from docx import Document
    from docx.shared import Cm, Pt

    results = check_results(project)
    review = json.loads((results / REVIEW_JSON).read_text(encoding="utf-8"))
    analyses = _read(results, "analyses.csv")
    sof = _read(results, "sof.csv", text=True)
    main_ids = [str(i) for i in review.get("main_analyses") or []]
    if not main_ids:  # a review.json without the list: every plain meta-analysis
        main_ids = [str(i) for i in analyses.loc[analyses.get("kind", "") == "meta-analysis", "analysis_id"]]
    main = main_results_table(analyses, main_ids)
    fitted = main[main["ok"]]
    summary = ReportSummary(Path(target), real_results=not fitted.empty)

    doc = Document()
    doc.core_properties.title = str(review.get("title") or "Systematic review")
    doc.add_heading(str(review.get("title") or "Systematic review"), level=0)
    intro = ("Results of the real extraction, written by `metaexercise report` from results/ (as `metaexercise "
             "run` wrote them). Effects are standardised mean differences (Hedges' g) pooled with random "
             "effects; negative values favour the experimental intervention where lower scores are better.")
    doc.add_paragraph(intro)
    if review.get("citation"):
        doc.add_paragraph(f"Review: {review['citation']}")
    if fitted.empty:
        doc.add_paragraph().add_run(NO_REAL_RESULTS).bold = True

    table_no = figure_no = 0
    doc.add_heading("Summary of findings", level=1)
    if sof is None or sof.empty or "Comparison" not in sof:
        doc.add_paragraph("No summary of findings: no main analysis of the real extraction could be graded "
                          "(results/sof.csv holds no row).")
    else:
        columns = [c for c in SOF_COLUMNS if c in sof and (sof[c] != "").any()]
        for comparison, rows in sof.groupby("Comparison", sort=False):
            table_no += 1
            title = f"Table {table_no}. Summary of findings: {comparison}"
            _caption(doc, title)
            _table(doc, columns, rows[columns].to_numpy().tolist())
            notes = [n for text in rows.get("Explanations", pd.Series(dtype=str)) for n in str(text).split("\n")
                     if n.strip()]
            for note in notes:
                paragraph = doc.add_paragraph(note)
                for run in paragraph.runs:
                    run.font.size = Pt(8)
            summary.tables.append(title)

    doc.add_heading("Main results", level=1)
    table_no += 1
    title = (f"Table {table_no}. Main analyses (random effects): number of comparisons (k), pooled SMD with "
             "95% confidence interval, 95% prediction interval (PI), between-study variance (τ²) and I²")
    _caption(doc, title)
    if main.empty:
        doc.add_paragraph("results/analyses.csv holds none of the review's main analyses.")
    else:
        _table(doc, list(MAIN_HEADINGS), main[list(MAIN_HEADINGS)].to_numpy().tolist(),
               widths_cm=[6.5, 1.0, 3.6, 2.6, 1.3, 1.2])
        summary.tables.append(title)

    doc.add_heading("Forest plots", level=1)
    if fitted.empty:
        doc.add_paragraph("No forest plot: no main analysis could be pooled from the real extraction.")
    else:
        studies = _read(results, "studies.csv")
        forest = _read(results, "forest.csv")
        if studies is None or forest is None:
            raise ReportError(f"{results}: studies.csv or forest.csv missing; run `metaexercise run` in "
                              f"{project.root} first")
        for _, r in fitted.iterrows():
            png = forest_png(project, r["analysis_id"], analyses, studies, forest)
            doc.add_picture(io.BytesIO(png), width=Cm(FIGURE_WIDTH_CM))
            figure_no += 1
            caption = (f"Figure {figure_no}. Forest plot: {r['Analysis']} (real extraction; k = {r['k']}, "
                       f"SMD {r['SMD [95% CI]']})")
            _caption(doc, caption)
            summary.figures.append(caption)

    with atomic_path(target) as tmp:
        doc.save(str(tmp))
    return summary
