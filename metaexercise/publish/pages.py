"""What the book's pages call: find the project, show a figure (saved as SVG and PNG, with download links),
show a table (HTML-escaped, with a CSV download), and the banners. No analysis happens here: pages read what
`metaexercise run` wrote to `results/` (`results/replica/` for the synthetic replica; see
`metaexercise.review.run` and `metaexercise.review.exhibits`) and the project's declared files
(analyses/main.yaml, analyses/published.yaml, book/data/guidelines.yaml), and pass them to
`metaexercise.plots`. Nothing here fits a model, reads an extraction sheet or a search folder.

Pages run with the book folder as working directory; `metaexercise book` also sets METAEXERCISE_PROJECT.
Files go to `book/generated/{figures,tables}/`, which Sphinx copies to `_static/` (see `_config.yml`).
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metaexercise.atomic import write_text
from metaexercise.plots.style import save_figure
from metaexercise.review.project import Project
from metaexercise.review.vocabulary import StatusKind
from metaexercise.vocabulary import REAL, SYNTHETIC_LABEL, DataSource

PROJECT_ENV = "METAEXERCISE_PROJECT"
_STEM = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class _HTML:
    """Minimal rich-display object (IPython renders `_repr_html_`), so pages need no IPython import."""

    __slots__ = ("html",)

    def __init__(self, text: str):
        self.html = text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # text/plain fallback: never the raw markup
        return re.sub(r"<[^>]+>", "", self.html)


def project() -> Project:
    """The project whose book is being built: $METAEXERCISE_PROJECT, else the book folder's parent."""
    root = os.environ.get(PROJECT_ENV)
    if root:
        return Project(Path(root).resolve())
    here = Path.cwd().resolve()
    return Project(here.parent if here.name == "book" else here)


def _generated(kind: str) -> Path:
    return project().book / "generated" / kind


def _check_stem(stem: str) -> str:
    if not _STEM.match(stem):
        raise ValueError(f"file stem {stem!r} must be lower-case letters, digits, '_', '-' or '.'")
    return stem


def escape(value) -> str:
    """HTML-escape any value read from a sheet (study names may hold markup; it must show as text)."""
    blank = value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value))
    return html.escape("" if blank else str(value))


def figure(fig, stem: str, caption: str, *, alt: str | None = None) -> _HTML:
    """Save `fig` as generated/figures/<stem>.svg/.png and return HTML showing the SVG with download links."""
    _check_stem(stem)
    save_figure(fig, _generated("figures") / stem)
    src = f"_static/figures/{stem}"
    return _HTML(
        f'<figure class="me-figure" id="fig-{stem}">'
        f'<a href="{src}.svg" title="open the figure at full size">'
        f'<img src="{src}.svg" alt="{escape(alt or caption)}" class="me-plot" data-stem="{stem}" '
        f'style="max-width:100%;height:auto"></a>'
        f"<figcaption>{escape(caption)} "
        f'<span class="me-downloads">Download: <a href="{src}.svg" download>SVG</a> · '
        f'<a href="{src}.png" download>PNG</a></span></figcaption></figure>'
    )


def table(frame: pd.DataFrame, stem: str, caption: str, *, index: bool = False, float_format: str = "{:.3f}",
          max_rows: int | None = None) -> _HTML:
    """Write `frame` to generated/tables/<stem>.csv and return it as an escaped HTML table with a CSV link."""
    _check_stem(stem)
    write_text(_generated("tables") / f"{stem}.csv", frame.to_csv(index=index, lineterminator="\n"))
    shown = frame if max_rows is None else frame.head(max_rows)
    body = shown.to_html(index=index, escape=True, border=0, classes="me-table table",
                         float_format=float_format.format, na_rep="")
    more = "" if max_rows is None or len(frame) <= max_rows else f" (first {max_rows} of {len(frame)} rows)"
    return _HTML(
        f'<div class="me-table-wrap" id="tab-{stem}"><p class="me-caption"><strong>{escape(caption)}</strong>'
        f"{escape(more)} "
        f'<a href="_static/tables/{stem}.csv" download>Download CSV</a></p>{body}</div>'
    )


def declaration():
    """The review as the book shows it (`metaexercise.publish.declared`: results/review.json, else review.yaml)."""
    from metaexercise.publish.declared import load_declaration

    return load_declaration(project())


def synthetic_banner() -> _HTML:
    """The replica banner shown at the top of every page that shows synthetic rows."""
    return _HTML(
        '<div class="admonition warning me-synthetic-banner"><p class="admonition-title">'
        f"{escape(SYNTHETIC_LABEL.capitalize())}</p><p>Everything below is computed from the seeded "
        "synthetic replica (studies <code>Replica-01</code>, <code>Replica-02</code>, …). It demonstrates the "
        "pipeline; it is not evidence.</p></div>"
    )


def note(text: str, kind: str = "note") -> _HTML:
    """An admonition box with escaped text."""
    return _HTML(f'<div class="admonition {escape(kind)}"><p>{escape(text)}</p></div>')


def results_dir(source: str = REAL) -> Path:
    """results/ for the real extraction, results/replica/ for the synthetic replica."""
    if source not in (REAL, DataSource.REPLICA):
        raise ValueError(f"source must be 'real' or 'replica', not {source!r}")
    res = project().results
    return res if source == REAL else res / DataSource.REPLICA


# --------------------------------------------------------------------------------- results files
def read_table(name: str, source: str = REAL, *, text: bool = False) -> pd.DataFrame:
    """results/<name> (results/replica/<name> for the replica), as `metaexercise run` wrote it. `text=True`
    reads every cell as text ("" where blank), so a value such as "NA" or "-0.67" stays as written."""
    path = results_dir(source) / name
    if not path.is_file():
        command = "metaexercise run" + (f" --source {DataSource.REPLICA}" if DataSource.parse(source).synthetic else "")
        raise FileNotFoundError(f"{path} missing; run `{command}` first")
    if text:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_csv(path)


def coverage_banner() -> _HTML:
    """Status of the extraction, counted from results/characteristics.csv: against the published review's
    included studies (review.yaml `prisma_previous`: studies_included, studies_with_data) when it declares
    them; a note that there is no data yet when nothing has been run or extracted."""
    path = results_dir(REAL) / "characteristics.csv"
    st = read_table("characteristics.csv", REAL, text=True) if path.is_file() else None
    if st is None or st.empty:
        return _HTML('<div class="admonition important me-status"><p class="admonition-title">Data status</p>'
                     "<p>There is no data yet: <code>extraction/</code> holds no study, so nothing is pooled "
                     "and no page shows a number.</p></div>")
    included = st[st["status"].str.startswith("included")]
    with_data = sorted(set(included.loc[included["outcome_rows"].astype(int) > 0, "study_id"]))
    previous = declaration().prisma_previous or {}
    if "studies_included" not in previous:
        return _HTML(
            '<div class="admonition important me-status"><p class="admonition-title">Data status</p>'
            f"<p>Extraction: <strong>{len(included)}</strong> included studies in <code>extraction/</code>; "
            f"<strong>{len(with_data)}</strong> of them have outcome rows.</p></div>")
    review_included = int(previous["studies_included"])
    review_with_data = int(previous.get("studies_with_data", review_included))
    return _HTML(
        '<div class="admonition important me-status"><p class="admonition-title">Data status</p>'
        f"<p>Real extraction: <strong>{len(included)}</strong> of the review's {review_included} included "
        f"studies are in <code>extraction/</code>; <strong>{len(with_data)}</strong> of them have outcome rows "
        f"(the review had usable data for {review_with_data}). The review's Table 1 and per-study forest "
        "plots are not public, so most studies cannot be extracted from public sources. Pages computed from "
        "real rows say so; pages computed from the synthetic replica carry a red banner.</p></div>"
    )


def _safe_url(url) -> str | None:
    text = "" if url is None else str(url).strip()
    return text if text.startswith(("https://", "http://")) else None


def links_table(frame: pd.DataFrame, stem: str, caption: str, link_column: str = "source") -> _HTML:
    """Like `table`, but `link_column` holds URLs shown as links (http(s) only; everything escaped)."""
    _check_stem(stem)
    write_text(_generated("tables") / f"{stem}.csv", frame.to_csv(index=False, lineterminator="\n"))
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = r[c]
            url = _safe_url(v) if c == link_column else None
            cells.append(f'<td><a href="{escape(url)}" rel="noopener">{escape(url)}</a></td>' if url
                         else f"<td>{escape(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _HTML(
        f'<div class="me-table-wrap" id="tab-{stem}"><p class="me-caption"><strong>{escape(caption)}</strong> '
        f'<a href="_static/tables/{stem}.csv" download>Download CSV</a></p>'
        f'<table class="me-table table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


#: Columns of results/characteristics.csv and their headings on the pages.
_CHARACTERISTICS = {"study": "study", "status": "status", "n_randomised": "n randomised", "controls": "controls",
                    "outcome_rows": "outcome rows", "rob_overall": "overall RoB", "source": "source"}


def _characteristics_headings() -> dict[str, str]:
    """Column -> heading of the characteristics table: the fixed columns, with the moderators the project
    marks `table: true` (review.yaml) after the controls, under their declared labels."""
    review = project().results / "review.json"
    moderators = {}
    if review.is_file():
        import json

        moderators = {m["name"]: m.get("label") or m["name"]
                      for m in json.loads(review.read_text(encoding="utf-8")).get("moderators") or ()
                      if m.get("table")}
    fixed = list(_CHARACTERISTICS.items())
    at = [c for c, _ in fixed].index("controls") + 1
    return dict(fixed[:at] + list(moderators.items()) + fixed[at:])


def characteristics(source: str = REAL) -> pd.DataFrame:
    """Study characteristics (results/characteristics.csv: one row per study of the sheets)."""
    st = read_table("characteristics.csv", source, text=True)
    shown = {c: h for c, h in _characteristics_headings().items() if c in st}  # the columns the project has
    out = st[list(shown)].replace("", np.nan).rename(columns=shown)
    if "n randomised" in out:
        out["n randomised"] = pd.to_numeric(out["n randomised"]).astype("Int64")
    if "outcome rows" in out:
        out["outcome rows"] = out["outcome rows"].astype(int)
    return out


def prisma_update() -> dict | None:
    """PRISMA counts of the search update (results/prisma_update.json, which `metaexercise run` writes when the
    project has a searches/ folder and the command line hands it the searches wing's counter); None when there
    is none or nothing has been imported."""
    import json

    path = results_dir(REAL) / "prisma_update.json"
    if not path.is_file():
        return None
    counts = json.loads(path.read_text(encoding="utf-8"))
    return counts if counts["records_identified"] else None


def rob_weights(wide: pd.DataFrame, analysis_id: str, source: str = REAL) -> tuple[pd.DataFrame, np.ndarray]:
    """The studies of `wide` that are in one analysis, with their REML weights there (robvis' weighted
    summary: the share of information at each judgement)."""
    _, st = _analysis(source, analysis_id)
    weights = st.groupby("label")["weight"].sum()
    used = wide.loc[wide.index.isin(weights.index)]
    return used, weights.reindex(used.index).to_numpy(float)


def rob_judgements(source: str = REAL) -> pd.DataFrame | None:
    """Risk-of-bias judgements (results/risk_of_bias.csv), one row per study ("Author Year"), five domains +
    Overall, as `metaexercise.plots.rob` draws them; None if no study is rated."""
    from metaexercise.plots.rob import OVERALL

    wide = read_table("risk_of_bias.csv", source, text=True)
    if wide.empty:
        return None
    wide = wide.drop(columns=["data", "study_id"]).set_index("study").rename(columns={"overall": OVERALL})
    wide.index.name = None
    wide.columns.name = "domain"
    return wide


# ------------------------------------------------------------------------------- published numbers
def registry():
    """The published registry (analyses/published.yaml)."""
    from metaexercise.review.published import load_published

    path = declaration().components.get("published")
    if not path:
        raise FileNotFoundError("this project declares no published registry (review.yaml, components.published)")
    return load_published(project().root / path)


def main_contrasts() -> list[tuple[str, str]]:
    """(id, label) of the analyses that have a page of their own (not a scenario, not a meta-regression),
    from the declared specs in analyses/*.yaml."""
    from metaexercise.publish.declared import load_analyses

    return [(a.id, a.label) for a in load_analyses(project()) if a.own_page]


def short_label(analysis_id: str) -> str:
    """"Pain, vs passive / usual care, short term" for an analysis with a comparator class and a window (its
    outcome, the comparator's label from review.yaml, the window); otherwise the analysis's label."""
    from metaexercise.publish.declared import load_analyses

    d = declaration()
    for a in load_analyses(project()):
        if a.id == analysis_id:
            if a.comparator and a.window:
                return f"{a.outcome.capitalize()}, vs {d.comparator_label(a.comparator)}, {a.window} term"
            return a.label
    return analysis_id


def published_pooled() -> pd.DataFrame:
    """The review's pooled results as printed in its Results section, one row per main contrast."""
    reg = registry()
    rows = []
    for cid in main_ids():
        e = reg.effect(cid, "results")
        if e is None:
            continue
        rows.append({
            "id": cid, "label": short_label(cid), "k": e.k.value if e.k else None,
            "estimate": e.estimate.value, "ci_lb": e.ci_lb.value, "ci_ub": e.ci_ub.value,
            "I2": e.i2.value if e.i2 else None, "certainty": reg.certainty(cid, "results"),
            "printed": f"{e.estimate.text} [{e.ci_lb.text}, {e.ci_ub.text}]", "where": e.section,
        })
    return pd.DataFrame(rows)


def _guidelines() -> dict:
    import yaml

    path = declaration().components.get("guidelines") or "book/data/guidelines.yaml"
    return yaml.safe_load((project().root / path).read_text(encoding="utf-8"))


def guideline_table() -> pd.DataFrame:
    """Guideline recommendations (book/data/guidelines.yaml) with the review's matching published results."""
    pub = published_pooled().set_index("id")
    rows = []
    for g in _guidelines()["guidelines"]:
        matched = [f"{pub.loc[c, 'label']}: SMD {pub.loc[c, 'printed']} ({pub.loc[c, 'certainty'] or 'n/a'})"
                   for c in g["review"] if c in pub.index]
        rows.append({"guideline": f"{g['guideline']} {g['section']}", "recommendation": g["recommendation"],
                     "strength": g["strength"], "certainty": g["certainty"],
                     "review result (published)": "; ".join(matched) or "—"})
    return pd.DataFrame(rows)


def threshold_table() -> pd.DataFrame:
    """The thresholds of clinical relevance the guidelines file lists, with the columns it gives."""
    return pd.DataFrame(list(_guidelines()["thresholds"]))


def vas_table() -> pd.DataFrame:
    """Each main contrast: the published SMD, the review's printed VAS difference (appendix G), and the SMD
    re-expressed with the NRS common SD, against the review's thresholds (results/vas_published.csv, written
    by `metaexercise run` with `metaexercise.review.vas`)."""
    vas = read_table("vas_published.csv", REAL, text=True).set_index("contrast")
    rows = []
    for _, r in published_pooled().iterrows():
        if r["id"] not in vas.index:
            continue
        v = vas.loc[r["id"]]
        if v["points"]:
            points, lo, hi = (float(v[c]) for c in ("points", "points_ci_lb", "points_ci_ub"))
            shown = f"{points:.2f} [{lo:.2f}, {hi:.2f}]"
        else:  # the outcome declares no typical SD: no SD is borrowed from another outcome
            shown = f"not re-expressed ({v['sd_source']})"
        rows.append({"contrast": r["label"], "SMD [95% CI] (published)": r["printed"],
                     "certainty (published)": r["certainty"],
                     "VAS difference printed by the review": v["vas_printed"],
                     "typical SD (points)": f"{float(v['sd']):g}" if v["sd"] else "",
                     "SMD x typical SD (points)": shown,
                     "threshold (points)": float(v["threshold"]) if v["threshold"] else "",
                     "verdict": v["verdict"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class _TestShown:
    """A bias test as stored in results/analyses.csv, in the shape the funnel plot reads."""

    zval: float
    pval: float
    tau: float = float("nan")


def read_results(source: str = REAL) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results/analyses.csv and results/studies.csv (results/replica/ for the replica)."""
    folder = results_dir(source)
    missing = [p.name for p in (folder / "analyses.csv", folder / "studies.csv") if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: {', '.join(missing)} missing; run `metaexercise run` first")
    return pd.read_csv(folder / "analyses.csv"), pd.read_csv(folder / "studies.csv")


def _analysis(source: str, analysis_id: str):
    analyses, studies = read_results(source)
    rows = analyses[analyses["analysis_id"] == analysis_id]
    if rows.empty:
        raise KeyError(f"{results_dir(source) / 'analyses.csv'} has no analysis {analysis_id!r}")
    row = rows.iloc[0]
    st = studies[studies["analysis_id"] == analysis_id]
    st = st[~st["excluded_as_outlier"].astype(bool)].reset_index(drop=True)
    return row, st


def stored_pooled(analysis_id: str, studies: pd.DataFrame, source: str = REAL):
    """What the forest and funnel plots draw of one fitted analysis: its row of results/forest.csv with the
    studies that entered the fit (`metaexercise.plots.inputs.PooledEffect`)."""
    from metaexercise.plots.inputs import PooledEffect

    forest = read_table("forest.csv", source)
    rows = forest[forest["analysis_id"] == analysis_id]
    if rows.empty:
        raise KeyError(f"{results_dir(source) / 'forest.csv'} has no analysis {analysis_id!r}; rebuild results/ "
                       "with `metaexercise run`")
    return PooledEffect.from_results(rows.iloc[0], studies)


def _fmt(x, spec=".2f") -> str:
    return "" if x is None or pd.isna(x) else format(float(x), spec)


def contrast_summary(row: pd.Series, published=None) -> pd.DataFrame:
    """Key numbers of one analysis (and the published ones beside them, when given)."""
    items = [
        ("k (comparisons)", f"{int(row['k'])}"),
        ("participants", _fmt(row["participants"], ".0f")),
        ("SMD [95% CI]", f"{_fmt(row['estimate'])} [{_fmt(row['ci_lb'])}, {_fmt(row['ci_ub'])}]"),
        ("95% prediction interval", f"[{_fmt(row['pi_lb'])}, {_fmt(row['pi_ub'])}]"),
        ("tau² (REML)", _fmt(row["tau2"], ".4f")),
        ("I²", f"{_fmt(row['I2'], '.1f')}%"),
        ("Q (p)", f"{_fmt(row['QE'])} ({_fmt(row['QEp'], '.3g')})"),
        ("Egger's test z (p)", f"{_fmt(row['egger_z'], '.3f')} ({_fmt(row['egger_p'], '.3g')})"),
        ("rank test Kendall's tau (p)", f"{_fmt(row['rank_tau'], '.3f')} ({_fmt(row['rank_p'], '.3g')})"),
        ("potential outliers", str(row["outliers"]) if pd.notna(row["outliers"]) and row["outliers"] else "none"),
    ]
    outcome = str(row["outcome"]) if pd.notna(row.get("outcome")) else None
    scale = declaration().common_scales.get(outcome) if outcome else None
    if scale is not None:  # SMDs re-expressed in points only where the outcome declares a common scale
        items.insert(-1, (f"points on the {scale[0]:g}\u2013{scale[1]:g} scale [95% CI]",
                          f"{_fmt(row['vas_points'])} [{_fmt(row['vas_ci_lb'])}, {_fmt(row['vas_ci_ub'])}]"
                          if pd.notna(row.get("vas_points")) else "not available (no patient-level SD)"))
    frame = pd.DataFrame(items, columns=["quantity", "ours"])
    if published is not None:
        pub = {"k (comparisons)": published.get("k"), "SMD [95% CI]": published.get("printed"),
               "I²": f"{published['I2']:.0f}%" if pd.notna(published.get("I2")) else ""}
        frame["published"] = [pub.get(q, "") for q in frame["quantity"]]
    return frame


def contrast_report(analysis_id: str, source: str = REAL) -> list:
    """Everything a main-contrast page shows for one source: the numbers, forest, funnel and influence plots
    and the per-study table; or a note saying why the rows cannot support an analysis."""
    from metaexercise.plots.forest import forest_plot
    from metaexercise.plots.funnel import funnel_plot
    from metaexercise.plots.influence import influence_plot

    synthetic = DataSource.parse(source).synthetic
    row, st = _analysis(source, analysis_id)
    tag = f"{analysis_id}_{source}"
    what = DataSource.parse(source).description
    if row["status"] != StatusKind.OK:
        return [note(f"{what.capitalize()}: {row['status']}. The real rows cannot support this analysis, so no "
                     "number is shown." if not synthetic else f"{what}: {row['status']}", "warning")]
    fit = stored_pooled(analysis_id, st, source)
    d = declaration()
    comparator = d.comparator_label(row.get("comparator"))
    outcome = str(row["outcome"]) if pd.notna(row.get("outcome")) else None
    published = None
    # the replica is never set beside the published numbers (agreement is built in), nor is a review that
    # declares no published registry
    if not synthetic and declaration().has("published"):
        pub = published_pooled().set_index("id")
        published = pub.loc[analysis_id] if analysis_id in pub.index else None
    out = [table(contrast_summary(row, published), f"summary_{tag}", f"Pooled result ({what})")]
    labels = st["label"].astype(str) if "label" in st else st["study_id"].astype(str)
    arms = pd.DataFrame({"study": labels})
    for col in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"):
        if col in st:
            arms[col] = st[col].to_numpy()
    out.append(figure(forest_plot(fit, arms, comparator=comparator, experimental=d.label("experimental"),
                                  favours=d.favours(outcome), measure=d.measure_name, synthetic=synthetic),
                      f"forest_{tag}", f"Forest plot: {row['label']} ({what})"))
    if fit.k >= 3:
        out.append(figure(
            funnel_plot(fit, regtest=_TestShown(row["egger_z"], row["egger_p"]),
                        ranktest=_TestShown(row["rank_tau"], row["rank_p"], row["rank_tau"]),
                        xlabel=d.measure_axis, synthetic=synthetic),
            f"funnel_{tag}", f"Contour-enhanced funnel plot with Egger's and the rank test ({what})"))
    if st["rstudent"].notna().all() and fit.k >= 3:
        out.append(figure(influence_plot(st[["rstudent", "cooks_d"]], labels, synthetic=synthetic),
                          f"influence_{tag}", f"Outliers and influence ({what})"))
    cols = [c for c in ("label", "study_id", "control_type", "instrument", "timepoint_weeks", "timepoint", "n1i", "n2i", "yi",
                        "vi", "ci_lb", "ci_ub", "weight", "rstudent", "cooks_d", "outlier", "influential")
            if c in st]
    out.append(table(st[cols], f"studies_{tag}", f"Per-study effects ({what})"))
    return out


# --------------------------------------------------------------------------- reproduced vs published
#: Registry field -> column of results/analyses.csv, by entry kind.
_OURS: dict[str, dict[str, str]] = {
    "effect": {"k": "k", "estimate": "estimate", "ci_lb": "ci_lb", "ci_ub": "ci_ub", "i2": "I2"},
    "points": {"value": "vas_points"},
    "test:egger": {"statistic": "egger_z", "p": "egger_p"},
    "test:rank": {"statistic": "rank_tau", "p": "rank_p"},
}


def _analysis_for_contrast() -> dict[str, str]:
    """Registry ids that name an analysis by another id (a spec's `published_as`)."""
    from metaexercise.publish.declared import load_analyses

    return {cid: a.id for a in load_analyses(project()) for cid in a.published_as}


def reproduced_vs_published() -> pd.DataFrame:
    """Every registered pooled result of an analysis we run, one row per place in the paper, beside ours from the
    REAL extraction only. Where the real rows cannot support the analysis, `ours` says why and shows no number.
    `within rounding` says whether our value lies in the interval the printed digits allow."""
    reg = registry()
    analyses, _ = read_results(REAL)
    by_id = analyses.set_index("analysis_id")
    renamed = _analysis_for_contrast()
    rows = []
    for e in reg.entries:
        key = e.kind if e.kind != "test" else f"test:{e.test}"
        fields = _OURS.get(key)
        if not fields or e.contrast is None:
            continue
        printed = {f: getattr(e, f) for f in fields if getattr(e, f) is not None}
        if not printed:
            continue
        analysis = renamed.get(e.contrast, e.contrast)
        row = {"entry": e.id, "where in the paper": e.section, "analysis": analysis,
               "published": _printed_summary(printed)}
        if analysis not in by_id.index:
            row.update(ours="not an analysis in analyses/*.yaml", difference="", within_rounding="")
        elif by_id.loc[analysis, "status"] != StatusKind.OK:
            row.update(ours=f"cannot be computed from the real rows: {by_id.loc[analysis, 'status']}",
                       difference="", within_rounding="")
        else:
            ours = {f: float(by_id.loc[analysis, fields[f]]) for f in printed
                    if pd.notna(by_id.loc[analysis, fields[f]])}
            row["ours"] = ", ".join(f"{f} {_fmt(v, '.0f' if f in ('k', 'i2') else '.3f')}"
                                    for f, v in ours.items())
            row["difference"] = ", ".join(f"{f} {ours[f] - printed[f].value:+.3g}" for f in printed if f in ours)
            row["within_rounding"] = ", ".join(
                f"{f} {'yes' if printed[f].lo <= ours[f] <= printed[f].hi else 'no'}" for f in printed if f in ours)
        rows.append(row)
    return pd.DataFrame(rows)


def _printed_summary(printed: dict) -> str:
    """The printed numbers as the paper shows them, e.g. "k 32, -0.28 [-0.42, -0.14], I² 73%"."""
    parts = []
    if "k" in printed:
        parts.append(f"k {printed['k'].text}")
    if "estimate" in printed:
        ci = f" [{printed['ci_lb'].text}, {printed['ci_ub'].text}]" if "ci_lb" in printed and "ci_ub" in printed else ""
        parts.append(f"{printed['estimate'].text}{ci}")
    if "i2" in printed:
        parts.append(f"I² {printed['i2'].text}%")
    for f, v in printed.items():
        if f not in ("k", "estimate", "ci_lb", "ci_ub", "i2"):
            parts.append(f"{f} {v.text}")
    return ", ".join(parts)


def audit_findings() -> pd.DataFrame:
    """results/audit.csv (written by `metaexercise audit` / the book build)."""
    path = project().results / "audit.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `metaexercise audit` first")
    return pd.read_csv(path)


# --------------------------------------------------------------------------- sensitivity, regression
def main_ids() -> list[str]:
    return [cid for cid, _ in main_contrasts()]


def scenario_table(source: str = REAL, prefix: str = "sens_", ids: list[str] | None = None) -> pd.DataFrame:
    """The sensitivity scenarios (ids starting with `prefix`, or the given `ids`) from results/analyses.csv."""
    analyses, _ = read_results(source)
    pick = analyses["analysis_id"].isin(ids) if ids is not None else analyses["analysis_id"].astype(str).str.startswith(prefix)
    sens = analyses[pick]
    cols = ["analysis_id", "label", "k", "participants", "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "I2",
            "vas_points", "status", "filters"]
    return sens[[c for c in cols if c in sens]].reset_index(drop=True)


def scenario_forest(source: str = REAL, prefix: str = "sens_", ids: list[str] | None = None):
    """Forest of the scenario estimates that could be computed (None when none could)."""
    from metaexercise.plots.pooled import pooled_forest

    tab = scenario_table(source, prefix, ids)
    ok = tab[tab["status"] == StatusKind.OK]
    if ok.empty:
        return None
    return pooled_forest(ok[["label", "k", "estimate", "ci_lb", "ci_ub", "I2"]], synthetic=DataSource.parse(source).synthetic)


def metareg_table(source: str = REAL) -> pd.DataFrame:
    """results/metareg.csv: one row per coefficient of each meta-regression."""
    path = results_dir(source) / "metareg.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `metaexercise run` first")
    return pd.read_csv(path)


def metareg_bubbles(analysis_id: str, source: str = REAL) -> list:
    """Bubble plots of a meta-regression against each numeric moderator, from results/bubble_studies.csv and
    bubble_lines.csv (`metaexercise run` evaluates the fitted line there) and the slopes in metareg.csv."""
    from metaexercise.plots.bubble import bubble_plot
    from metaexercise.plots.inputs import BubbleData

    stored = metareg_table(source)
    stored = stored[stored["analysis_id"] == analysis_id]
    if stored.empty or (stored["status"] != StatusKind.OK).all():
        why = "no coefficients stored" if stored.empty else str(stored["status"].iloc[0])
        return [note(f"{analysis_id}: {why}", "warning")]
    points = read_table("bubble_studies.csv", source)
    lines = read_table("bubble_lines.csv", source)
    points = points[points["analysis_id"] == analysis_id]
    lines = lines[lines["analysis_id"] == analysis_id]
    coef = stored.set_index("term")
    label = str(stored["label"].iloc[0])
    out = []
    for name in points["term"].drop_duplicates():
        pts = points[points["term"] == name]
        moderator = str(pts["moderator"].iloc[0])
        data = BubbleData.from_results(pts, lines[lines["term"] == name], coef.loc[name, "estimate"],
                                       coef.loc[name, "pval"], coef.loc[name, "k"], moderator)
        out.append(figure(bubble_plot(data, xlabel=moderator, synthetic=DataSource.parse(source).synthetic),
                          f"bubble_{analysis_id}_{name}_{source}".lower(),
                          f"{label}: effect against {moderator}"
                          + (f" ({SYNTHETIC_LABEL})" if DataSource.parse(source).synthetic else "")))
    return out


# ------------------------------------------------------------------------------------------- GRADE
def grade_report(source: str = REAL) -> list:
    """The summary-of-findings table (results/sof.csv) and the domain-by-domain ratings (results/grade.csv)
    that `metaexercise run` wrote with `metaexercise.review.grade`."""
    what = DataSource.parse(source).description
    folder = results_dir(source)
    out = []
    for name, caption in (("sof", "Summary of findings"), ("grade", "GRADE domains: suggestion, judgement, rating")):
        path = folder / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing; run `metaexercise run` first")
        frame = pd.read_csv(path).drop(columns=["data"], errors="ignore")
        if frame.empty:
            out.append(note(f"{caption} ({what}): no main contrast could be fitted, so none is rated.", "warning"))
        else:
            out.append(table(frame, f"{name}_{source}", f"{caption} ({what})"))
    return out


def validation_report() -> list:
    """The metafor-agreement table (results/validation.csv: `metaexercise run` refits the project's reference
    fixtures with `metaexercise.engine.validation`), or a note when this project has none."""
    path = results_dir(REAL) / "validation.csv"
    if not path.is_file():
        return [note(f"No metafor reference fixtures in {project().reference_folder}/ of this project, so "
                     "`metaexercise run` wrote no results/validation.csv and the engine's agreement with metafor "
                     "is not shown.", "warning")]
    agreement = pd.read_csv(path)
    first = agreement.iloc[0]
    summary = (f"{int(first['fits'])} metafor results compared ({first['files']}); largest relative difference "
               f"{agreement['max_rel_diff'].max():.2e}; {int(first['failed_fits'])} fits could not be refitted. "
               f"Read from results/validation.csv, which `metaexercise run` wrote from the fixtures in "
               f"{first['reference']}/.")
    shown = agreement[["quantity", "comparisons", "max_abs_diff", "max_rel_diff", "worst_case"]]
    return [note(summary),
            table(shown, "metafor_agreement", "Largest differences from metafor 3.8-1, per quantity",
                  float_format="{:.2e}")]


# --------------------------------------------------------------------------- simulation (methods page)
def simulation_report() -> list:
    """The simulation study written by `metaexercise book` (results/simulation.csv): a table of bias, RMSE,
    coverage and width with Monte Carlo SEs, and its figure. Synthetic by nature: simulated meta-analyses."""
    from metaexercise.plots.simulation import plot_simulation

    path = project().results / "simulation.csv"
    if not path.is_file():
        return [note("No simulation results yet: `metaexercise book` writes results/simulation.csv.")]
    sim = pd.read_csv(path)
    cols = ["estimator", "target", "interval", "reps", "failure_rate", "bias", "bias_mcse", "rmse", "coverage",
            "coverage_mcse", "width"]
    return [table(sim[[c for c in cols if c in sim]], "simulation", "Simulation study, review preset "
                  f"(k = {int(sim['k'].iloc[0])}, I² = {sim['I2'].iloc[0]:.0f}%, μ = {sim['mu'].iloc[0]})"),
            figure(plot_simulation(sim), "simulation", "Coverage of confidence and prediction intervals and RMSE "
                   "of τ² by estimator (simulated data)")]
