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
import json
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
from metaexercise.spreadsheet_safety import read_csv
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


#: Headings of the columns `metaexercise run` writes to results/, as the pages show them (the CSV download
#: keeps the files' own names). "label" reads "study" beside a study_id and "analysis" beside an analysis_id.
_HEADINGS: dict[str, str] = {
    "analysis_id": "analysis id", "study_id": "study id", "yi": "SMD", "vi": "variance", "sei": "SE", "se": "SE",
    "n1i": "n (exp.)", "n2i": "n (control)", "m1i": "mean (exp.)", "sd1i": "SD (exp.)", "m2i": "mean (control)",
    "sd2i": "SD (control)", "n_total": "n", "timepoint_weeks": "weeks", "timepoint": "time point",
    "control_type": "control", "weight": "weight (%)", "rstudent": "studentized residual", "cooks_d": "Cook's D",
    "hat": "hat value", "excluded_as_outlier": "left out as outlier", "rob_overall": "overall risk of bias",
    "data_kind": "data", "zval": "z", "pval": "p", "tau2": "τ²", "I2": "I² (%)", "R2": "R² (%)", "QE": "Q",
    "QEp": "p (Q)", "QE_df": "df (Q)", "QM": "QM", "QMp": "p (QM)", "QM_df": "df (QM)", "egger_z": "Egger's z",
    "egger_p": "Egger's p", "rank_tau": "Kendall's τ", "rank_p": "rank test p", "vas_points": "VAS points",
    "vas_sd": "VAS SD", "vas_sd_source": "VAS SD from", "pi_lb": "95% PI lower", "pi_ub": "95% PI upper",
    "within_rounding": "within rounding", "max_abs_diff": "largest absolute difference",
    "max_rel_diff": "largest relative difference", "worst_case": "worst case", "failure_rate": "failure rate",
    "n_used": "replicates used", "reps": "replicates", "bias_mcse": "MCSE (bias)", "rmse": "RMSE",
    "rmse_mcse": "MCSE (RMSE)", "coverage_mcse": "MCSE (coverage)", "width_mcse": "MCSE (width)",
    "suggested_downgrade": "suggested downgrade", "judged_downgrade": "judged downgrade",
    "n_randomised": "n randomised", "outcome_rows": "outcome rows",
}
#: Interval pairs shown as one "[lower, upper]" column.
_INTERVALS = (("ci_lb", "ci_ub", "ci", "95% CI"), ("pi_lb", "pi_ub", "pi", "95% prediction interval"),
              ("vas_ci_lb", "vas_ci_ub", "vas_ci", "VAS points 95% CI"),
              ("tau2_ci_lb", "tau2_ci_ub", "tau2_ci", "τ² 95% CI"))
#: Columns a table shows first, in this order, when it has them (the rows' names, then the result) ...
_FIRST = ("label", "study", "quantity", "entry", "contrast", "guideline", "estimator", "target", "interval", "term",
          "moderator", "k", "participants", "yi", "estimate", "ci", "pi", "weight", "n1i", "n2i", "outlier",
          "influential", "status")
#: ... of which these name the row: a table too wide for the page repeats them beside the folded columns.
_ROW_NAMES = frozenset(_FIRST[:_FIRST.index("k")])
#: ... and last (diagnostics and bookkeeping): the first to fold away when a table is wider than the page.
_LAST = ("rstudent", "cooks_d", "hat", "vi", "se", "zval", "QE_df", "QM_df", "filters", "notes", "id", "study_id",
         "analysis_id", "data", "synthetic")
#: Decimals of columns that are not shown with three.
_DECIMALS = {"weight": 1, "I2": 1, "R2": 1, "vas_points": 2, "vas_ci": 2}
_P_VALUES = frozenset({"pval", "QEp", "QMp", "egger_p", "rank_p", "p"})
#: Counts: whole values show as integers even in a column that also holds fractions (weeks: 12, 2.5).
_COUNTS = frozenset({"k", "n1i", "n2i", "n_total", "participants", "timepoint_weeks", "reps", "n_used", "QE_df",
                     "QM_df", "outcome_rows", "n_randomised", "comparisons", "fits", "failed_fits",
                     "suggested_downgrade", "judged_downgrade"})
#: Widths (CSS px) the tables are fitted to: the book's text column at a 1400 px window is 772 px wide; the
#: cells' text is 0.85rem (10.2 pt) DejaVu Sans, chromium's system-ui font on Linux and wider than most.
#: A table that must fold keeps up to `_NAMES_PX` for the rows' names, so they do not wrap word by word.
_PAGE_PX, _CELL_PAD_PX, _NAMES_PX, _FONT_PT = 760.0, 16.0, 160.0, 10.2
_EMPTY_TEST = re.compile(r"^[\s()\[\],;:%/|]+$")
#: The space inside a printed interval ("[-0.58, -0.22]"): an interval never breaks across lines.
_NUMBER_SPACE = re.compile(r"(?<=\d,) (?=[-+\u2212]?\d[\d.]*\])")
_NEGATIVE_ZERO = re.compile(r"(?<![\w.])[-\u2212](0(?:\.0+)?)(?![\d.])")


def _is_blank(v) -> bool:
    return v is None or (not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and not pd.isna(v)


def _decimals(values: list[float], name: str, float_format: str) -> str:
    """The format of a column's numbers: its own decimals (`_DECIMALS`), else the fewest that show every value
    exactly, up to three ("-0.28" stays "-0.28", 1.5 stays "1.5"), else `float_format`."""
    if name in _DECIMALS:
        return f"{{:.{_DECIMALS[name]}f}}"
    if float_format != "{:.3f}" or not values:
        return float_format
    for d in range(1, 4):
        if all(abs(v - round(v, d)) < 1e-9 for v in values):
            return f"{{:.{d}f}}"
    return float_format


def _number_formatter(values: pd.Series, name: str, float_format: str, *, spec: str | None = None,
                      integers: bool = True):
    """A function formatting one value of a column: whole numbers as integers where the column holds only
    whole numbers or counts (k, n, weeks) or is a mix of text and numbers, p-values below 0.001 as
    "< 0.001", the rest with the column's decimals; booleans as yes/no; no negative zero."""
    numbers = [float(v) for v in values if _is_number(v)]
    per_cell = integers and (name in _COUNTS or not pd.api.types.is_numeric_dtype(values))
    whole = (integers and name not in _P_VALUES and bool(numbers)
             and all(np.isfinite(v) and v.is_integer() for v in numbers))
    if spec is None:
        spec = _decimals([v for v in numbers if not (per_cell and v.is_integer())], name, float_format)

    def fmt(v) -> str:
        if _is_blank(v):
            return ""
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if not _is_number(v):
            return _text_cell(v)
        x = float(v)
        if name in _P_VALUES and 0 <= x < 0.001:
            return "< 0.001"
        if whole or (per_cell and np.isfinite(x) and x.is_integer()):
            return str(int(round(x)))
        return _NEGATIVE_ZERO.sub(r"\1", spec.format(x))

    return fmt


def _text_cell(v) -> str:
    """A text cell as shown: an empty test result such as "()" or "[, ]" says so; no negative zero; a printed
    interval ("[-0.58, -0.22]") kept on one line."""
    text = str(v)
    if _EMPTY_TEST.match(text):
        return "not computed"
    return _NUMBER_SPACE.sub("\u00a0", _NEGATIVE_ZERO.sub(r"\1", text))


def _column_texts(frame: pd.DataFrame, name, float_format: str, **kw) -> list[str]:
    """The cells of one column of `frame` as text."""
    values = frame[name]
    if pd.api.types.is_bool_dtype(values):
        return ["" if _is_blank(v) else "yes" if v else "no" for v in values]
    if pd.api.types.is_numeric_dtype(values) or any(_is_number(v) or isinstance(v, (bool, np.bool_))
                                                    for v in values):
        fmt = _number_formatter(values, str(name), float_format, **kw)
        return [fmt(v) for v in values]
    return ["" if _is_blank(v) else _text_cell(v) for v in values]


def _display_columns(frame: pd.DataFrame, float_format: str) -> list[tuple[str, str, list[str], bool]]:
    """(name, heading, cells, numeric) per shown column of `frame`: the interval pairs joined into one
    "[lower, upper]" column, the key columns first and the diagnostics last."""
    columns: dict[str, tuple[str, list[str], bool]] = {}
    paired = {c for lo, hi, _n, _h in _INTERVALS if lo in frame and hi in frame for c in (lo, hi)}
    for name in frame.columns:
        if name in paired:
            for lo, hi, joined, heading in _INTERVALS:
                if name == lo:  # both bounds with the same decimals
                    bounds = [float(v) for c in (lo, hi) for v in frame[c] if _is_number(v)]
                    spec = _decimals(bounds, joined, float_format)
                    lows, highs = (_column_texts(frame, c, float_format, spec=spec, integers=False) for c in (lo, hi))
                    cells = [f"[{a},\u00a0{b}]" if a or b else "" for a, b in zip(lows, highs, strict=True)]
                    columns[joined] = (heading, cells, True)
            continue
        heading = _HEADINGS.get(str(name), str(name))
        if name == "label":
            heading = "study" if "study_id" in frame else "analysis" if "analysis_id" in frame else "label"
        numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
        columns[str(name)] = (heading, _column_texts(frame, name, float_format), numeric)
    first = [c for c in _FIRST if c in columns]
    last = [c for c in _LAST if c in columns and c not in first]
    middle = [c for c in columns if c not in first and c not in last]
    order = first + middle + last
    if order and order[0] not in _ROW_NAMES:  # the frame's own first column names its rows
        lead = str(frame.columns[0]) if str(frame.columns[0]) in columns else order[0]
        order = [lead] + [c for c in order if c != lead]
    return [(c, *columns[c]) for c in order]


_BREAK_AFTER = re.compile(r"(?<=[_/])(?=\w)|(?<=\.)(?=[A-Za-z])")


#: A row's name this short ("Replica-01 2011", "Ford 2016") stays on one line.
_SHORT_NAME = 24


def _segments(text: str, numeric: bool, name: bool = False) -> list[str]:
    """The pieces a browser cannot break `text` inside (numbers and short row names not at all; other text at
    spaces, after a hyphen between letters and where `_breakable` adds a <wbr>)."""
    if numeric or (name and len(text) <= _SHORT_NAME):
        return [text]
    out = []
    for word in re.split(r"[ \t\r\n]+", text.strip()):  # a no-break space joins
        parts = re.split(r"(?<=[A-Za-z]-)(?=[A-Za-z])", word) if len(word) > 1 else [word]
        for part in parts:
            out.extend(_BREAK_AFTER.split(part) if len(part) > 12 else [part])
    return out


def _breakable(text: str) -> str:
    """`text` escaped, with <wbr> after '_', '/' and a '.' before a letter in long words (identifiers, URLs;
    never inside a number)."""
    words = re.split(r"(\s+)", text)
    return "".join(html.escape(w) if len(w) <= 12 or w.isspace()
                   else "<wbr>".join(html.escape(p) for p in _BREAK_AFTER.split(w)) for w in words)


_PX: dict[tuple[str, bool], float] = {}


def _px(text: str, bold: bool = False) -> float:
    """Width of `text` in CSS px in the tables' font (the figures' font metrics: DejaVu Sans)."""
    from metaexercise.plots.style import text_width

    if (text, bold) not in _PX:
        _PX[text, bold] = text_width(text, _FONT_PT, "bold" if bold else "normal") * 96.0
    return _PX[text, bold]


def _column_px(heading: str, cells: list[str], numeric: bool, comfort: float = 0.0, name: bool = False) -> float:
    """What one column asks of the page: its narrowest possible width (the widest piece that cannot break),
    widened to `comfort` where its text is longer, plus the cells' padding."""
    cells = [_link_text(c) if _safe_url(c) else c for c in cells]  # a link shows its site, not the whole URL
    narrowest = max([_px(s, True) for s in heading.split()]
                    + [_px(s) for c in cells for s in _segments(c, numeric, name)] + [0.0])
    longest = max([_px(heading, True)] + [_px(c) for c in cells if c])
    return max(narrowest, min(longest, comfort)) + _CELL_PAD_PX


def _html_table(columns, rows: range, links: set[str], names: int = 1) -> str:
    """The HTML of `columns` (the first `names` of them name the rows: a short name does not wrap)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _n, h, _c, _num in columns)
    body = []
    for i in rows:
        cells = []
        for j, (name, _h, texts, numeric) in enumerate(columns):
            text = texts[i]
            url = _safe_url(text) if name in links else None
            if url:
                cells.append(f'<td><a href="{html.escape(url)}" title="{html.escape(url)}" rel="noopener">'
                             f"{_breakable(_link_text(url))}</a></td>")
            elif j < names and not numeric and len(text) <= _SHORT_NAME and re.search(r"[\s-]", text):
                cells.append(f'<td><span class="me-nowrap">{html.escape(text)}</span></td>')
            else:
                cells.append(f"<td>{html.escape(text) if numeric else _breakable(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="me-table table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table>")


def _link_text(url: str, most: int = 36) -> str:
    """What a link shows: the site and the start of the path ("pubmed.ncbi.nlm.nih.gov/12381971")."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    text = (parts.netloc.removeprefix("www.") + parts.path).rstrip("/") or url
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def _fit(columns) -> tuple[list, list, list[list]]:
    """(the columns that fit the page, in order; the leading columns that name the rows; the other columns
    in page-wide groups, each to be shown after the row names)."""
    lead = [i for i, (n, *_r) in enumerate(columns) if n in _ROW_NAMES or i == 0]
    lead = [i for j, i in enumerate(lead) if i == j]  # only the leading run
    widths = [_column_px(h, cells, num, name=i in lead) for i, (_n, h, cells, num) in enumerate(columns)]
    if sum(widths) <= _PAGE_PX:  # every column fits at its narrowest: the browser shares out the rest
        return columns, [columns[i] for i in lead], []
    widths = [_column_px(h, cells, num, _NAMES_PX if i in lead else 0.0, name=i in lead)
              for i, (_n, h, cells, num) in enumerate(columns)]
    shown, used = [], 0.0
    for i, w in enumerate(widths):
        if i in lead or (len(shown) == i and used + w <= _PAGE_PX):
            shown.append(i)
            used += w
    lead_px = sum(widths[i] for i in lead)
    groups: list[list[int]] = []
    for i in range(len(shown), len(columns)):
        if groups and lead_px + sum(widths[j] for j in groups[-1]) + widths[i] <= _PAGE_PX:
            groups[-1].append(i)
        else:
            groups.append([i])
    return ([columns[i] for i in shown], [columns[i] for i in lead], [[columns[i] for i in g] for g in groups])


def _render_table(frame: pd.DataFrame, stem: str, caption: str, *, index: bool, float_format: str,
                  max_rows: int | None, links: set[str]) -> _HTML:
    _check_stem(stem)
    write_text(_generated("tables") / f"{stem}.csv", frame.to_csv(index=index, lineterminator="\n"))
    shown = frame.reset_index() if index else frame
    shown = shown if max_rows is None else shown.head(max_rows)
    columns = _display_columns(shown.reset_index(drop=True), float_format)
    notes = []
    if len(shown) >= 3:  # a column with one value in every row is said once, under the table
        empty = [c for c in columns[1:] if not any(c[2])]
        same = [c for c in columns[1:] if c not in empty and len(set(c[2])) == 1]
        if empty:
            notes.append("No value in any row: " + ", ".join(h for _n, h, _c, _num in empty) + ".")
        if same:
            notes.append("The same in every row: " + "; ".join(f"{h}: {c[0]}" for _n, h, c, _num in same) + ".")
        columns = [c for c in columns if c not in empty and c not in same]
    main, lead, folded = _fit(columns)
    rows = range(len(shown))
    body = _html_table(main, rows, links, len(lead))
    if notes:
        body += f'<p class="me-table-note">{html.escape(" ".join(notes))}</p>'
    if folded:
        names = [h for group in folded for _n, h, _c, _num in group]
        body += (f'<details class="me-more-columns"><summary>{len(names)} more column'
                 f'{"" if len(names) == 1 else "s"}: {html.escape(", ".join(names))}</summary>'
                 + "".join(_html_table(lead + group, rows, links, len(lead)) for group in folded) + "</details>")
    more = "" if max_rows is None or len(frame) <= max_rows else f" (first {max_rows} of {len(frame)} rows)"
    return _HTML(
        f'<div class="me-table-wrap" id="tab-{stem}"><p class="me-caption"><strong>{escape(caption)}</strong>'
        f"{escape(more)} "
        f'<a href="_static/tables/{stem}.csv" download>Download CSV</a></p>{body}</div>'
    )


def table(frame: pd.DataFrame, stem: str, caption: str, *, index: bool = False, float_format: str = "{:.3f}",
          max_rows: int | None = None) -> _HTML:
    """Write `frame` to generated/tables/<stem>.csv (as it is) and return it as an escaped HTML table with a
    CSV link, made for reading: headings instead of results/ column names (`_HEADINGS`), lower and upper
    bounds joined into one "95% CI" column, the rows' names and the result first, whole numbers as integers,
    no negative zero, "not computed" for an empty test. A column holding one value in every row is said once
    under the table; columns that would make the table wider than the page fold into a "more columns" block
    that repeats the rows' names."""
    return _render_table(frame, stem, caption, index=index, float_format=float_format, max_rows=max_rows,
                         links=set())



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
def run_command(source: str = REAL) -> str:
    """The command that writes the results of `source`."""
    return "metaexercise run" + (f" --source {DataSource.REPLICA}" if DataSource.parse(source).synthetic else "")


def optional_table(name: str, source: str = REAL) -> pd.DataFrame | None:
    """results/<name> as `read_table` reads it, or None when the run wrote none."""
    return read_table(name, source) if (results_dir(source) / name).is_file() else None


def missing_note(name: str, source: str = REAL) -> _HTML:
    """A warning that results/<name> of `source` is not there yet, and the command that writes it."""
    return note(f"No results/{name} for the {DataSource.parse(source).description} yet: run "
                f"`{run_command(source)}`.", "warning")


def read_table(name: str, source: str = REAL, *, text: bool = False) -> pd.DataFrame:
    """results/<name> (results/replica/<name> for the replica), as `metaexercise run` wrote it. `text=True`
    reads every cell as text ("" where blank), so a value such as "NA" or "-0.67" stays as written."""
    path = results_dir(source) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `{run_command(source)}` first")
    # results/ is written with OWASP formula neutralisation (a leading ' before =, +, -, @ text); undo it here
    if text:
        return read_csv(path, dtype=str, keep_default_na=False)
    return read_csv(path)


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
    return _render_table(frame, stem, caption, index=False, float_format="{:.3f}", max_rows=None,
                         links={link_column})


#: Columns of results/characteristics.csv and their headings on the pages.
_CHARACTERISTICS = {"study": "study", "status": "status", "n_randomised": "n randomised", "controls": "controls",
                    "outcome_rows": "outcome rows", "rob_overall": "overall RoB", "source": "source"}


def _characteristics_headings() -> dict[str, str]:
    """Column -> heading of the characteristics table: the fixed columns, with the moderators the project
    marks `table: true` (review.yaml) after the controls, under their declared labels."""
    fixed = list(_CHARACTERISTICS.items())
    at = [c for c, _ in fixed].index("controls") + 1
    return dict(fixed[:at] + list(declaration().table_moderators.items()) + fixed[at:])


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
    return read_csv(folder / "analyses.csv"), read_csv(folder / "studies.csv")


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
    """`x` formatted with `spec`; "" for a missing value, and never a negative zero ("-0.00" reads "0.00")."""
    if x is None or pd.isna(x):
        return ""
    return _NEGATIVE_ZERO.sub(r"\1", format(float(x), spec))


def contrast_summary(row: pd.Series, published=None, certainty: str | None = None) -> pd.DataFrame:
    """Key numbers of one analysis; with `published` (a mapping such as `published_contrast` gives) the
    review's printed numbers in a column before ours; with `certainty` our GRADE rating (or why none)."""
    fitted = row["status"] == StatusKind.OK
    k = int(row["k"]) if pd.notna(row.get("k")) else 0
    dash = "—"
    items = [
        ("k (comparisons)", f"{k}"),
        ("participants", _fmt(row["participants"], ".0f") if fitted else dash),
        ("SMD [95% CI]", f"{_fmt(row['estimate'])} [{_fmt(row['ci_lb'])}, {_fmt(row['ci_ub'])}]" if fitted
         else f"not pooled ({row['status']})"),
    ]
    if fitted:
        items += [
            ("95% prediction interval", f"[{_fmt(row['pi_lb'])}, {_fmt(row['pi_ub'])}]"),
            ("tau² (REML)", _fmt(row["tau2"], ".4f")),
        ]
    items += [
        ("I²", f"{_fmt(row['I2'], '.1f')}%" if fitted else dash),
        *([("Q (p)", f"{_fmt(row['QE'])} ({_fmt(row['QEp'], '.3g')})")] if fitted else []),
        ("Egger's test z (p)", f"{_fmt(row['egger_z'], '.3f')} ({_fmt(row['egger_p'], '.3g')})"
         if fitted and pd.notna(row.get("egger_z")) else dash if not fitted else "not computed (k < 3)"),
        ("rank test Kendall's tau (p)", f"{_fmt(row['rank_tau'], '.3f')} ({_fmt(row['rank_p'], '.3g')})"
         if fitted and pd.notna(row.get("rank_tau")) else dash if not fitted else "not computed (k < 3)"),
    ]
    if fitted:
        items.append(("potential outliers", str(row["outliers"]) if pd.notna(row["outliers"]) and row["outliers"]
                      else "none"))
    outcome = str(row["outcome"]) if pd.notna(row.get("outcome")) else None
    scale = declaration().common_scales.get(outcome) if outcome else None
    points = f"points on the {scale[0]:g}\u2013{scale[1]:g} scale [95% CI]" if scale is not None else None
    if points is not None:  # SMDs re-expressed in points only where the outcome declares a common scale
        shown = (f"{_fmt(row['vas_points'])} [{_fmt(row['vas_ci_lb'])}, {_fmt(row['vas_ci_ub'])}]"
                 if pd.notna(row.get("vas_points")) else dash if not fitted
                 else "not available (no patient-level SD)")
        items.insert(len(items) - (1 if fitted else 0), (points, shown))
    if certainty is not None:
        items.append(("certainty (GRADE)", certainty))
    frame = pd.DataFrame(items, columns=["quantity", "ours"])
    if published is not None:
        pub = {"k (comparisons)": published.get("k"), "SMD [95% CI]": published.get("printed"),
               "I²": f"{published['I2']:.0f}%" if pd.notna(published.get("I2")) else "",
               "Egger's test z (p)": published.get("egger") or "",
               "rank test Kendall's tau (p)": published.get("rank") or "",
               "certainty (GRADE)": _certainty_cell(published["certainty"]) if published.get("certainty")
               else "not reported"}
        if points is not None:
            pub[points] = published.get("points") or ""
        values = ["" if v is None or (not isinstance(v, str) and pd.isna(v)) else
                  f"{int(v)}" if isinstance(v, float) and float(v).is_integer() else str(v)
                  for v in (pub.get(q, "") for q in frame["quantity"])]
        frame.insert(1, "published", values)
    return frame


def published_contrast(analysis_id: str) -> dict | None:
    """The review's printed numbers for one main analysis (its Results entry: k, SMD [95% CI], I², certainty,
    where; the points and funnel-plot tests it prints), or None when the registry has none for it."""
    pub = published_pooled().set_index("id")
    if analysis_id not in pub.index:
        return None
    out = pub.loc[analysis_id].to_dict()
    reg = registry()
    for e in reg.for_contrast(analysis_id):
        if e.kind == "points" and e.value is not None and "points" not in out:
            out["points"] = e.value.text
        if e.kind == "test" and e.statistic is not None:
            out.setdefault(str(e.test), f"{e.statistic.text} ({e.p.text})" if e.p is not None else e.statistic.text)
    return out


def _certainty_text(analysis_id: str, source: str) -> str:
    """Our GRADE rating of one main analysis ("⨁⨁◯◯ Low"), or why there is none."""
    status = grade_status(source).set_index("analysis_id")
    if analysis_id not in status.index:
        return "not rated (not a main analysis)"
    s = status.loc[analysis_id]
    if s["state"] == "rated":
        return _certainty_cell(s["certainty"])
    return "not rated: nothing pooled" if s["state"] == "not fitted" else f"not rated: {s['why']}"


def rows_report(analysis_id: str, source: str = REAL) -> _HTML | None:
    """What the rows of `source` hold for one analysis (results/studies.csv and results/excluded.csv): the
    studies pooled, the studies left out by reason, and each study's reason in a block the reader unfolds."""
    path = results_dir(source) / "excluded.csv"
    _, studies = read_results(source)
    pooled = studies[studies["analysis_id"] == analysis_id]
    if not path.is_file():
        return None
    ex = read_csv(path, dtype=str, keep_default_na=False)
    ex = ex[ex["analysis_id"] == analysis_id]
    chars = results_dir(source) / "characteristics.csv"
    names = (read_csv(chars, dtype=str, keep_default_na=False).set_index("study_id")["study"].to_dict()
             if chars.is_file() else {})
    combined = ex[ex["category"] == "multi-arm combined"]
    left = ex[(ex["category"] != "multi-arm combined") & ~ex["study_id"].isin(pooled["study_id"])]
    first = left.drop_duplicates("study_id")
    by_cat = first.groupby("category", sort=False)["study_id"].count().sort_values(ascending=False, kind="stable")
    labels = pooled["label"].astype(str) if "label" in pooled else pooled["study_id"].astype(str)
    head = (f"The rows of the {escape(DataSource.parse(source).description)} hold <strong>{len(pooled)}</strong> "
            f"comparison{'' if len(pooled) == 1 else 's'} for this analysis"
            + (f" ({escape(', '.join(labels))})" if len(pooled) else "")
            + f"; <strong>{len(first)}</strong> stud{'y is' if len(first) == 1 else 'ies are'} left out"
            + (": " + escape(", ".join(f"{cat} ({n})" for cat, n in by_cat.items())) if len(by_cat) else "") + ".")
    rows = [[escape(names.get(r["study_id"], r["study_id"])), escape(r["category"]), escape(r["reason"])]
            for _, r in pd.concat([left, combined]).iterrows()]
    detail = ""
    if rows:
        detail = (f'<details style="margin-top:0.3rem"><summary>Why each study is left out or combined '
                  f"({len(rows)} rows of results/excluded.csv)</summary>"
                  + _grid(["Study", "What", "Why"], rows, nowrap=(0,)) + "</details>")
    return _HTML(f'<div class="me-rows-report" style="margin:0.5rem 0 1rem"><p style="margin:0">{head}</p>'
                 f"{detail}</div>")


def contrast_report(analysis_id: str, source: str = REAL) -> list:
    """Everything a main-contrast page shows for one source. For the real extraction of a project with a
    published registry: the review's printed result and ours side by side, always, with what the real rows
    hold (or why they give nothing). Then, where the rows support an analysis, the forest, funnel and
    influence plots and the per-study table."""
    from metaexercise.plots.forest import forest_plot
    from metaexercise.plots.funnel import funnel_plot
    from metaexercise.plots.influence import influence_plot

    synthetic = DataSource.parse(source).synthetic
    row, st = _analysis(source, analysis_id)
    tag = f"{analysis_id}_{source}"
    what = DataSource.parse(source).description
    published = None
    # the replica is never set beside the published numbers (agreement is built in), nor is a review that
    # declares no published registry
    if not synthetic and declaration().has("published"):
        published = published_contrast(analysis_id)
    certainty = _certainty_text(analysis_id, source)
    fitted = row["status"] == StatusKind.OK
    out: list = []
    if published is not None:
        caption = f"The review's result ({published.get('where')}) and ours ({what})"
        out.append(table(contrast_summary(row, published, certainty), f"summary_{tag}", caption))
        pub_k = published.get("k")
        if fitted and pd.notna(pub_k) and int(pub_k) != int(row["k"]):
            out.append(note(f"Not comparable: ours k = {int(row['k'])} from the public rows vs k = {int(pub_k)} "
                            "published. The numbers stand side by side; no difference is computed."))
    elif fitted:
        out.append(table(contrast_summary(row, None, certainty), f"summary_{tag}", f"Pooled result ({what})"))
    if not fitted:
        out.append(note(f"{what.capitalize()}: {row['status']}. "
                        + ("The real rows cannot support this analysis, so no number of ours is shown."
                           if not synthetic else ""), "warning"))
    if not synthetic:
        held = rows_report(analysis_id, source)
        if held is not None:
            out.append(held)
    if not fitted:
        return out
    fit = stored_pooled(analysis_id, st, source)
    d = declaration()
    comparator = d.comparator_label(row.get("comparator"))
    outcome = str(row["outcome"]) if pd.notna(row.get("outcome")) else None
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


#: The verdicts of reproduced_vs_published, in the order the table lists them.
REPRODUCED, DIFFERS, NOT_COMPARABLE = "reproduced", "differs", "cannot be compared"
_FIELD_WORDS = {"k": "k", "estimate": "estimate", "ci_lb": "CI lower bound", "ci_ub": "CI upper bound", "i2": "I²",
                "value": "points", "statistic": "statistic", "p": "p"}


def _published_k(reg, contrast: str) -> int | None:
    """The number of comparisons the review prints for `contrast` (its Results entry first, else any place)."""
    entries = sorted((e for e in reg.for_contrast(contrast, "effect") if e.k is not None),
                     key=lambda e: e.place != "results")
    return int(entries[0].k.value) if entries else None


def _ours_summary(ours: dict[str, float], k: int) -> str:
    """Our numbers in the layout of `_printed_summary`: "k 2, -0.547 [-0.716, -0.377], I² 0%"."""
    parts = [f"k {k}"]
    if "estimate" in ours:
        ci = (f" [{ours['ci_lb']:.3f}, {ours['ci_ub']:.3f}]" if "ci_lb" in ours and "ci_ub" in ours else "")
        parts.append(f"{ours['estimate']:.3f}{ci}")
    if "i2" in ours:
        parts.append(f"I² {ours['i2']:.0f}%")
    for f, v in ours.items():
        if f not in ("k", "estimate", "ci_lb", "ci_ub", "i2"):
            parts.append(f"{_FIELD_WORDS.get(f, f)} {v:.3f}")
    return ", ".join(parts)


def _compare_entry(e, fields: dict[str, str], by_id: pd.DataFrame, analysis: str, reg, *, declared: bool) -> dict:
    """One registry entry against our analysis: verdict, our numbers, why, and how many printed numbers were
    reproduced, differ or cannot be compared. Numbers are compared only when both sides pool the same number
    of comparisons (k): a pooled estimate of 2 studies is not a reproduction attempt of one of 32."""
    printed = {f: getattr(e, f) for f in fields if getattr(e, f) is not None}
    pub_k = int(printed["k"].value) if "k" in printed else _published_k(reg, e.contrast)
    out = {"ours": "—", "numbers": len(printed), "reproduced_n": 0, "differs_n": 0}
    if analysis not in by_id.index:
        if declared:
            return {**out, "verdict": f"{NOT_COMPARABLE}: not run",
                    "why": f"{analysis} is not in results/analyses.csv: run `metaexercise run`"}
        return {**out, "verdict": f"{NOT_COMPARABLE}: not an analysis of this project",
                "why": f"no analysis {analysis!r} in analyses/*.yaml"}
    r = by_id.loc[analysis]
    k = int(r["k"]) if pd.notna(r["k"]) else 0
    if r["status"] != StatusKind.OK:
        status = str(r["status"])
        why = "too few to pool" if status.startswith("insufficient data") else status
        return {**out, "verdict": f"{NOT_COMPARABLE}: too few real rows",
                "why": f"ours k = {k} from the public rows ({why})"
                + (f" vs k = {pub_k} published" if pub_k is not None else "") + ": nothing to compare"}
    ours = {f: float(r[fields[f]]) for f in fields if f != "k" and pd.notna(r[fields[f]])}
    out["ours"] = _ours_summary(ours, k)
    if pub_k is not None and k != pub_k:
        return {**out, "verdict": f"{NOT_COMPARABLE}: k differs",
                "why": f"ours k = {k} from the public rows vs k = {pub_k} published: not comparable"}
    compared = {f: printed[f].lo <= (k if f == "k" else ours[f]) <= printed[f].hi
                for f in printed if f == "k" or f in ours}
    missing = [f for f in printed if f not in compared]
    outside = [f for f, ok in compared.items() if not ok]
    out.update(reproduced_n=sum(compared.values()), differs_n=len(outside))
    notes = [] if pub_k is not None else ["the published k is not printed, so k is not checked"]
    if missing:
        notes.append(f"not computed by us: {', '.join(_FIELD_WORDS.get(f, f) for f in missing)}")
    if not compared:
        return {**out, "verdict": f"{NOT_COMPARABLE}: not computed", "why": "; ".join(notes)}
    if outside:
        why = "; ".join(f"{_FIELD_WORDS.get(f, f)} {(k if f == 'k' else ours[f]):.4f} outside "
                        f"[{printed[f].lo:g}, {printed[f].hi:g}] (printed {printed[f].text})" for f in outside)
        return {**out, "verdict": DIFFERS, "why": "; ".join([why, *notes])}
    return {**out, "verdict": REPRODUCED,
            "why": "; ".join([f"all {len(compared)} numbers within rounding of the printed digits", *notes])}


def _result_labels() -> dict[str, str]:
    """Analysis id -> label on the reproduced page: a main analysis's short label ("Pain, vs active exercise,
    short term"), any other analysis's own label (a sensitivity scenario shares its outcome, comparator and
    window with a main one)."""
    from metaexercise.publish.declared import load_analyses

    main = set(main_ids())
    return {a.id: short_label(a.id) if a.id in main else a.label for a in load_analyses(project())}


def _reproduced_rows() -> list[dict]:
    reg = registry()
    analyses, _ = read_results(REAL)
    by_id = analyses.set_index("analysis_id")
    renamed = _analysis_for_contrast()
    labels = _result_labels()
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
        compared = _compare_entry(e, fields, by_id, analysis, reg, declared=analysis in labels)
        rows.append({"verdict": compared.pop("verdict"), "result": labels.get(analysis, analysis),
                     "where in the paper": e.section, "published": _printed_summary(printed, key),
                     **compared, "entry": e.id, "analysis": analysis})
    return rows


def reproduced_vs_published() -> pd.DataFrame:
    """Every registered pooled result of an analysis we run, one row per place in the paper, beside ours from the
    REAL extraction only; the verdict first: "reproduced" (every printed number within the rounding of its
    printed digits), "differs" (which number, and by how much, in `why`), or "cannot be compared: <reason>"
    (too few real rows, a different number of comparisons k, ...). Numbers of different k are never
    subtracted. Rows are listed reproduced first, then differs, then the rest (the paper's order within)."""
    rows = _reproduced_rows()
    order = {REPRODUCED: 0, DIFFERS: 1}
    rows.sort(key=lambda r: order.get(r["verdict"], 2))
    cols = ["verdict", "result", "where in the paper", "published", "ours", "why", "entry", "analysis"]
    return pd.DataFrame(rows, columns=cols + ["numbers", "reproduced_n", "differs_n"])[cols]


def reproduced_summary() -> str:
    """One line: "n of m printed numbers reproduced within rounding; d differ; c cannot be compared (…)"."""
    rows = _reproduced_rows()
    total = sum(r["numbers"] for r in rows)
    same = sum(r["reproduced_n"] for r in rows)
    differ = sum(r["differs_n"] for r in rows)
    why: dict[str, int] = {}
    for r in rows:
        rest = r["numbers"] - r["reproduced_n"] - r["differs_n"]
        if rest:
            reason = r["verdict"].split(": ", 1)[1] if ": " in r["verdict"] else "not computed"
            why[reason] = why.get(reason, 0) + rest
    words = {"too few real rows": "the real rows are too few to pool", "k differs": "our k differs from the published k",
             "not computed": "we do not compute that number from these rows", "not run": "the analysis has not been run",
             "not an analysis of this project": "the project declares no such analysis"}
    reasons = "; ".join(f"{n} because {words.get(reason, reason)}" for reason, n in sorted(why.items(), key=lambda x: -x[1]))
    return (f"{same} of {total} printed numbers ({len(rows)} results in the paper) reproduced within rounding from "
            f"the real rows; {differ} differ; {total - same - differ} cannot be compared"
            + (f" ({reasons})" if reasons else "") + ".")


def reproduced_report() -> list:
    """The reproduced-vs-published page: the one-line summary, then the table, verdict first. Rows compared
    number by number are shown one per place in the paper; the places of one analysis that cannot be compared
    for the same reason share a row (their printed numbers listed in it). The CSV has one row per place."""
    frame = reproduced_vs_published()
    groups: dict[tuple, dict] = {}
    for _, r in frame.iterrows():
        key = ((r["analysis"], r["verdict"], r["why"]) if r["verdict"].startswith(NOT_COMPARABLE)
               else (r["entry"],))
        g = groups.setdefault(key, {**r.to_dict(), "printed": {}, "ours": []})
        g["printed"].setdefault(r["where in the paper"], []).append(r["published"])
        if r["ours"] not in g["ours"]:
            g["ours"].append(r["ours"])
    rows = []
    for g in groups.values():
        verdict, _, reason = str(g["verdict"]).partition(": ")
        ours = [o for o in g["ours"] if not re.fullmatch(r"k \d+", o)] or g["ours"]  # "k 2" alone adds nothing
        ours = [ours[0], *(re.sub(r"^k \d+, ", "", o) for o in ours[1:])]
        printed = [f"{where}: {'; '.join(values)}" for where, values in g["printed"].items()]
        rows.append([f"<strong>{escape(verdict)}</strong>" + (f": {escape(reason)}" if reason else ""),
                     escape(g["result"]), "<br>".join(escape(p) for p in printed),
                     "<br>".join(escape(o) for o in ours), escape(g["why"])])
    body = _grid(["Verdict", "Result", "Printed in the paper", "Ours (real rows)", "Why"], rows)
    return [note(reproduced_summary()),
            _captioned("reproduced_vs_published", "Published numbers and ours (real rows only)", frame, body)]


def _printed_summary(printed: dict, kind: str = "effect") -> str:
    """The printed numbers as the paper shows them, e.g. "k 32, -0.28 [-0.42, -0.14], I² 73%"."""
    if kind == "points":
        return f"{printed['value'].text} points"
    if kind.startswith("test:"):
        stat = "Egger's z" if kind == "test:egger" else "Kendall's τ"
        return ", ".join(x for x in (f"{stat} {printed['statistic'].text}" if "statistic" in printed else "",
                                     f"p {printed['p'].text}" if "p" in printed else "") if x)
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
    return read_csv(path)


def conventions_table() -> pd.DataFrame:
    """results/explain.csv (the audit's section on conventions) as a reader's table: per published pooled
    number, whether some convention reproduces its printed digits from the extraction and which options
    survive."""
    path = project().results / "explain.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `metaexercise run` (with a published registry) first")
    t = read_csv(path, dtype=str, keep_default_na=False)
    cols = {"entry": "published number", "k_printed": "k printed", "k_data": "k in the extraction",
            "status": "verdict", "conventions": "conventions reproducing it", "tau2_estimator": "tau^2 estimator",
            "effect_basis": "effect basis", "ci": "CI", "i2": "I^2", "closest": "closest convention", "note": "note"}
    return t[[c for c in cols if c in t]].rename(columns=cols)


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
    return read_csv(path)


def _pval(p) -> str:
    """A p-value as metafor prints it: "<.0001", else four decimals."""
    return "" if pd.isna(p) else "<.0001" if p < 1e-4 else f"{p:.4f}"


def _signif(p) -> str:
    """metafor's significance codes: *** < .001, ** < .01, * < .05, . < .1."""
    if pd.isna(p):
        return ""
    return next((code for cut, code in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")) if p < cut), "")


def _metareg_model(m: pd.DataFrame, source: str, *, unfolded: bool) -> str:
    """One meta-regression as metafor's `print.rma` shows it: the coefficient table (estimate, se, zval, pval,
    ci.lb, ci.ub and significance codes), under it the tests and heterogeneity (QM, QE, τ², I², R²)."""
    first = m.iloc[0]
    aid = str(first["analysis_id"])
    stem = _check_stem(f"metareg_{aid}_{source}".lower())
    write_text(_generated("tables") / f"{stem}.csv",
               m.drop(columns=["data"], errors="ignore").to_csv(index=False, lineterminator="\n"))
    rows = []
    for _, r in m.iterrows():
        term = "intercept" if str(r["term"]) == "intrcpt" else str(r["moderator"] if pd.notna(r["moderator"])
                                                                   else r["term"])
        rows.append([f'<span title="{escape(r["term"])}">{escape(term)}</span>',
                     *(escape(f"{r[c]:.4f}") for c in ("estimate", "se", "zval")), escape(_pval(r["pval"])),
                     *(escape(f"{r[c]:.4f}") for c in ("ci_lb", "ci_ub")), escape(_signif(r["pval"]))])
    table_html = _grid(["", "estimate", "se", "zval", "pval", "ci.lb", "ci.ub", ""], rows,
                       numeric=(1, 2, 3, 4, 5, 6), width="auto")
    k, df_m, df_e = int(first["k"]), int(first["QM_df"]), int(first["QE_df"])
    coefs = f"2:{len(m)}" if len(m) > 2 else "2"
    lines = [
        f"Mixed-effects model (k = {k}; τ² estimator: {escape(first['method'])})",
        f"τ² (estimated amount of residual heterogeneity): {first['tau2']:.4f} · I² (residual heterogeneity / "
        f"unaccounted variability): {first['I2']:.2f}% · R² (amount of heterogeneity accounted for): "
        f"{first['R2']:.2f}%",
        f"Test for residual heterogeneity: QE(df = {df_e}) = {first['QE']:.4f}, p-val "
        f"{'< .0001' if first['QEp'] < 1e-4 else '= ' + format(first['QEp'], '.4f')}",
        f"Test of moderators (coefficients {coefs}): QM(df = {df_m}) = {first['QM']:.4f}, p-val "
        f"{'< .0001' if first['QMp'] < 1e-4 else '= ' + format(first['QMp'], '.4f')}",
        "Signif. codes: 0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1",
    ]
    if pd.notna(first.get("dropped")) and str(first["dropped"]).strip():
        lines.append(f"Dropped (no variation or collinear): {escape(first['dropped'])}")
    stats = "".join(f'<p style="margin:0.1rem 0">{line}</p>' for line in lines)
    summary = (f"<strong>{escape(first['label'])}</strong> — k = {k}; QM(df = {df_m}) = {first['QM']:.2f}, "
               f"p = {_pval(first['QMp'])}; R² = {first['R2']:.1f}% "
               f'<a href="_static/tables/{stem}.csv" download>Download CSV</a>')
    return (f'<details class="me-metareg"{" open" if unfolded else ""} style="margin:0.5rem 0 1rem">'
            f"<summary>{summary}</summary>{table_html}"
            f'<div class="me-metareg-stats" style="font-size:0.8rem;margin:0.25rem 0 0.5rem">{stats}</div>'
            "</details>")


def metareg_report(source: str = REAL) -> list:
    """Every meta-regression of results/metareg.csv as metafor prints it: one coefficient table per model with
    its tests and heterogeneity under it (the REML fits unfolded, the other τ² estimators folded), and one
    note naming the models that could not be fitted and why."""
    reg = metareg_table(source)
    what = DataSource.parse(source).description
    if reg.empty:
        return [note(f"No meta-regression in results/metareg.csv ({what}).")]
    methods = reg.groupby("analysis_id", sort=False)["method"].first().astype(str).str.upper()
    any_reml = (methods == "REML").any()
    failed: dict[str, list[str]] = {}
    blocks = []
    for aid, m in reg.groupby("analysis_id", sort=False):
        first = m.iloc[0]
        if first["status"] != StatusKind.OK:
            failed.setdefault(str(first["status"]), []).append(str(first["label"]))
            continue
        blocks.append(_metareg_model(m, source, unfolded=methods[aid] == "REML" or not any_reml))
    out: list = []
    if failed:
        n_failed = sum(len(v) for v in failed.values())
        items = "".join(f"<li>{escape(status)}: {escape('; '.join(labels))}</li>" for status, labels in failed.items())
        head = (f"{n_failed} of {len(methods)} meta-regressions could not be fitted from the {escape(what)}"
                + (":" if n_failed < len(methods) else " (none could):"))
        out.append(_admonition("Not fitted", f'<p>{head}</p><ul style="margin-bottom:0">{items}</ul>', "warning"))
    if blocks:
        out.append(_HTML('<div class="me-metareg-models">' + "".join(blocks) + "</div>"))
    return out


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


# ------------------------------------------------------------- footnoted tables (GRADE, regression, contrasts)
_NUM = "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"


class Footnotes:
    """The lettered footnotes of one table (a, b, c, ... as GRADEpro prints them): a cell gets superscript
    letters, the texts are listed under the table; the same text keeps its letter."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def letter(self, text: str) -> str:
        from metaexercise.review.grade import footnote_letter

        if text not in self.texts:
            self.texts.append(text)
        return footnote_letter(self.texts.index(text))

    def mark(self, *texts: str) -> str:
        """Superscript letters (HTML) for the notes `texts` (none: "")."""
        letters = [self.letter(t) for t in texts if t]
        return f'<sup class="me-fn">{",".join(letters)}</sup>' if letters else ""

    def plain(self, *texts: str) -> str:
        """The same notes for a CSV cell: "a. text; b. text"."""
        return "; ".join(f"{self.letter(t)}. {t}" for t in texts if t)

    def html(self) -> str:
        from metaexercise.review.grade import footnote_letter

        if not self.texts:
            return ""
        items = "".join(f'<p style="margin:0.1rem 0"><sup>{footnote_letter(i)}</sup> {escape(t)}</p>'
                        for i, t in enumerate(self.texts))
        return f'<div class="me-footnotes" style="font-size:0.8rem;margin:0.3rem 0 0.5rem">{items}</div>'


class _FootnotedRow:
    """The cells of one table row: HTML with footnote marks, the plain text for the CSV, the row's notes."""

    def __init__(self, notes: Footnotes) -> None:
        self.footnotes = notes
        self.cells: list[str] = []
        self.plain: list[str] = []
        self.notes: list[str] = []

    def add(self, text: str, *notes: str) -> None:
        self.cells.append(escape(text) + self.footnotes.mark(*notes))
        self.plain.append(text)
        self.notes.extend(n for n in notes if n)


def _grid(head: list[str], rows: list[list[str]], *, numeric: tuple[int, ...] = (), nowrap: tuple[int, ...] = (),
          width: str = "100%") -> str:
    """An HTML table of cells that are already HTML (escape every value first); `numeric` columns are
    right-aligned with tabular digits, `nowrap` columns do not wrap."""

    def style(i: int) -> str:
        if i in numeric:
            return f' style="{_NUM}"'
        return ' style="white-space:nowrap"' if i in nowrap else ""

    th = "".join(f"<th{style(i)}>{h}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td{style(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<table class="me-table table" style="width:{width}"><thead><tr>{th}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _captioned(stem: str, caption: str, csv: pd.DataFrame, body: str, *, after: str = "") -> _HTML:
    """`body` (HTML) under a caption with a link to `csv`, written to generated/tables/<stem>.csv."""
    _check_stem(stem)
    write_text(_generated("tables") / f"{stem}.csv", csv.to_csv(index=False, lineterminator="\n"))
    return _HTML(f'<div class="me-table-wrap" id="tab-{stem}"><p class="me-caption"><strong>{escape(caption)}</strong> '
                 f'<a href="_static/tables/{stem}.csv" download>Download CSV</a></p>{body}{after}</div>')


def _admonition(title: str, body: str, kind: str = "note") -> _HTML:
    """An admonition box with a title; `body` is HTML (escape its values first)."""
    return _HTML(f'<div class="admonition {escape(kind)}"><p class="admonition-title">{escape(title)}</p>{body}</div>')


def _review_doc() -> dict:
    """The review declaration as plain data: results/review.json, else review.yaml ({} when neither)."""
    import json

    path = project().results / "review.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    yaml_path = project().root / "review.yaml"
    if yaml_path.is_file():
        from metaexercise.review.declaration import load_review

        return load_review(yaml_path).to_dict()
    return {}


def _main_infos() -> list:
    """The declared analyses that have a page of their own (`AnalysisInfo`), in the order of analyses/."""
    from metaexercise.publish.declared import load_analyses

    return [a for a in load_analyses(project()) if a.own_page]


def comparison_title(comparator) -> str:
    """A comparison's title as review.yaml words it ("individualized vs active (non-individualized)
    exercise"), else "vs <comparator label>"; "All comparisons" for an analysis without a comparator."""
    if comparator is None or comparator == "" or (isinstance(comparator, float) and np.isnan(comparator)):
        return "All comparisons"
    for c in _review_doc().get("comparators") or ():
        if str(c.get("id")) == str(comparator):
            return str(c.get("comparison") or f"vs {c.get('label') or comparator}")
    return f"vs {declaration().comparator_label(comparator)}"


def outcome_title(info) -> str:
    """"Pain intensity, short term (~12 weeks)": the outcome's and the window's declared labels."""
    d = declaration()
    title = d.outcome(info.outcome).label if info.outcome else info.label
    return f"{title}, {d.windows.get(str(info.window), str(info.window))}" if info.window else title


def _outcome_mid(outcome: str) -> tuple[float | None, str]:
    """(MID in points or None, the common scale "0–10" or "") of an outcome, from the declaration."""
    for o in _review_doc().get("outcomes") or ():
        if str(o.get("id")) == str(outcome):
            mid = (o.get("mid") or {}).get("value")
            lo = o.get("common_min", (o.get("common_scale") or {}).get("min"))
            hi = o.get("common_max", (o.get("common_scale") or {}).get("max"))
            scale = f"{float(lo):g}\u2013{float(hi):g}" if lo is not None and hi is not None else ""
            return (float(mid) if mid is not None else None), scale
    return None, ""


# ------------------------------------------------------------------------------------------- GRADE
def _no_period(text) -> str:
    return str(text).strip().rstrip(".")


def _domain_downgrade(r: pd.Series) -> int:
    judged = r.get("judged_downgrade")
    return int(judged) if pd.notna(judged) else int(r["suggested_downgrade"])


def _domain_explanation(r: pd.Series) -> str:
    """The reviewer's rationale where a judgement overrides the suggestion, else the computed reason
    (as `metaexercise.review.grade.DomainRating.explanation`)."""
    if pd.notna(r.get("judged_downgrade")) and pd.notna(r.get("rationale")) and str(r["rationale"]).strip():
        return f"{_no_period(r['rationale'])} (reviewer judgement)"
    return _no_period(r["reason"])


def _certainty_cell(label) -> str:
    """"⨁⨁◯◯ Low" for a GRADE level ("Low", "low"); the text itself for a range ("low to moderate")."""
    from metaexercise.review.vocabulary import Certainty

    levels = {c.text: c for c in Certainty}
    c = levels.get(str(label).strip().lower())
    return f"{c.symbols} {c.label}" if c is not None else str(label).capitalize()


def grade_status(source: str = REAL) -> pd.DataFrame:
    """One row per main analysis (the analyses with a page of their own) and what GRADE made of it, read from
    results/analyses.csv and results/grade.csv: `state` is "rated", "fitted, not rated" or "not fitted";
    `why` says why an analysis is not rated or not fitted; `certainty` is our rating ("Low", ...)."""
    analyses, _ = read_results(source)
    by_id = analyses.set_index("analysis_id")
    grade_path = results_dir(source) / "grade.csv"
    grade = read_csv(grade_path) if grade_path.is_file() else pd.DataFrame(columns=["analysis_id", "domain"])
    rows = []
    for a in _main_infos():
        g = grade[grade["analysis_id"] == a.id]
        row = {"analysis_id": a.id, "comparator": a.comparator, "outcome": outcome_title(a),
               "state": "", "why": "", "certainty": "", "k": None, "participants": None}
        if a.id not in by_id.index:
            row.update(state="not fitted", why="not in results/analyses.csv (run `metaexercise run`)")
        elif by_id.loc[a.id, "status"] != StatusKind.OK:
            row.update(state="not fitted", why=str(by_id.loc[a.id, "status"]), k=int(by_id.loc[a.id, "k"]))
        else:
            r = by_id.loc[a.id]
            row.update(k=int(r["k"]), participants=int(r["participants"]) if pd.notna(r["participants"]) else None)
            rated = g[g["domain"] != "all"]
            if not rated.empty:
                row.update(state="rated", certainty=str(rated["certainty"].iloc[0]))
            else:
                why = (str(g["reason"].iloc[0]).removeprefix("not graded: ") if not g.empty
                       else "no GRADE rows in results/grade.csv")
                row.update(state="fitted, not rated", why=why)
        rows.append(row)
    return pd.DataFrame(rows, columns=["analysis_id", "comparator", "outcome", "state", "why", "certainty", "k",
                                       "participants"]).astype({"k": "Int64", "participants": "Int64"})


def _status_summary(status: pd.DataFrame, what: str) -> _HTML:
    """"8 main analyses: 3 fitted from the real rows, 0 of them rated; …" with the reasons, per analysis."""
    fitted = status[status["state"] != "not fitted"]
    rated = status[status["state"] == "rated"]
    unrated = status[status["state"] == "fitted, not rated"]
    missing = status[status["state"] == "not fitted"]
    n = len(status)
    head = (f"{n} main analyses: {len(fitted)} fitted from the {escape(what)}, {len(rated)} of them rated"
            + (f", {len(missing)} not fitted" if len(missing) else "") + ".")
    items = []
    for label, part in (("fitted, not rated", unrated), ("not fitted", missing)):
        for why, group in part.groupby("why", sort=False):
            names = "; ".join(escape(short_label(i)) for i in group["analysis_id"])
            items.append(f"<li><strong>{escape(label)}</strong> ({len(group)}): {names} — {escape(why)}</li>")
    body = f"<p>{head}</p>" + (f'<ul style="margin-bottom:0">{"".join(items)}</ul>' if items else "")
    kind = "note" if len(rated) == n else "warning"
    return _admonition("What could be rated", body, kind)


def _sof_block(source: str, comparator, members: pd.DataFrame, grade: pd.DataFrame, by_id: pd.DataFrame,
               reg) -> _HTML:
    """One summary-of-findings table (GRADEpro layout) for the main analyses of one comparison: lettered
    footnotes in the cells, their texts under the table; the review's own rating from `reg` when given."""
    from metaexercise.review.grade import LEVEL_WORDS, review_ratings, smd_phrase
    from metaexercise.review.vocabulary import GradeDomain

    notes = Footnotes()
    d = declaration()
    what = DataSource.parse(source).description
    head = ["Outcome", "№ of participants (studies)", f"Effect ({d.measure}, 95% CI)", "Effect in points (95% CI)",
            "Certainty (ours)"] + (["Certainty (the review's)"] if reg is not None else [])
    rows, csv_rows = [], []
    for _, s in members.iterrows():
        aid = s["analysis_id"]
        row = _FootnotedRow(notes)
        add = row.add
        add(s["outcome"])
        if s["state"] == "not fitted":
            add("—" if pd.isna(s["k"]) else f"— (k = {s['k']})")
            add("not pooled")
            add("—")
            add("not rated", f"Not pooled from the {what}: {s['why']}")
        else:
            r = by_id.loc[aid]
            n = s["participants"]
            add(f"{int(n) if pd.notna(n) else '?'} ({s['k']} RCT{'' if s['k'] == 1 else 's'})")
            est, lb, ub = (float(r[c]) for c in ("estimate", "ci_lb", "ci_ub"))
            add(smd_phrase(est, lb, ub) if d.measure == "SMD" else f"{est:.2f} ({lb:.2f} to {ub:.2f})")
            if pd.notna(r.get("vas_points")):
                mid, scale = _outcome_mid(r["outcome"])
                add(f"{r['vas_points']:.2f} ({r['vas_ci_lb']:.2f} to {r['vas_ci_ub']:.2f})",
                    f"Points on the {scale or 'common'} scale: {d.measure} × SD {r['vas_sd']:.2f} "
                    f"({r['vas_sd_source']})" + (f"; MID {mid:g} point{'' if mid == 1 else 's'}" if mid is not None else ""))
            else:
                add("—", f"Not re-expressed in points: {r['vas_sd_source']}" if pd.notna(r.get("vas_sd_source"))
                    else "")
            if s["state"] == "rated":
                down = []
                for _, dr in grade[(grade["analysis_id"] == aid) & (grade["domain"] != "all")].iterrows():
                    if _domain_downgrade(dr):
                        down.append(f"Downgraded {LEVEL_WORDS[_domain_downgrade(dr)]} for "
                                    f"{GradeDomain(dr['domain']).label.lower()}: {_domain_explanation(dr)}")
                add(_certainty_cell(s["certainty"]), *down)
            else:
                add("not rated", f"Fitted (k = {s['k']}) but not rated: {s['why']}")
        if reg is not None:
            found = [item for cid in (aid, *_published_ids(aid)) for item in review_ratings(reg, cid)]
            if not found:
                add("not reported")
            else:
                add(_certainty_cell(found[0][0]),
                    "The review's rating differs by place in the paper: "
                    + "; ".join(f"{rating} ({', '.join(places)})" for rating, places in found)
                    if len(found) > 1 else "")
        rows.append(row.cells)
        csv_rows.append({**dict(zip(head, row.plain, strict=True)), "analysis_id": aid,
                         "notes": notes.plain(*row.notes)})
    caption = f"Summary of findings: {comparison_title(comparator)} ({what})"
    stem = f"sof_{source}_{re.sub(r'[^a-z0-9]+', '_', str(comparator or 'all').lower()).strip('_')}"
    return _captioned(stem, caption, pd.DataFrame(csv_rows), _grid(head, rows, nowrap=(4, 5)), after=notes.html())


def _published_ids(analysis_id: str) -> list[str]:
    """Registry ids that stand for `analysis_id` (a spec's `published_as`)."""
    return [cid for cid, aid in _analysis_for_contrast().items() if aid == analysis_id]


def _domain_details(grade: pd.DataFrame, aid: str, title: str) -> str:
    """One analysis's five domains in a `<details>` a reader unfolds: domain, rating, and the reason (the
    reviewer's judgement beside the suggestion it overrides) across the full width."""
    from metaexercise.review.grade import RATINGS
    from metaexercise.review.vocabulary import GradeDomain

    g = grade[(grade["analysis_id"] == aid) & (grade["domain"] != "all")]
    rows, down = [], []
    for _, r in g.iterrows():
        name = GradeDomain(r["domain"]).label
        rating = RATINGS[_domain_downgrade(r)]
        if _domain_downgrade(r):
            down.append(f"{name.lower()} {rating}")
        why = escape(_no_period(r["reason"]))
        if pd.notna(r.get("judged_downgrade")):
            why = (f"<strong>Reviewer:</strong> {escape(_no_period(r['rationale']))}. "
                   f"<em>Suggested: {escape(RATINGS[int(r['suggested_downgrade'])])} ({why}).</em>")
        rows.append([escape(name), escape(rating), why])
    cert = _certainty_cell(g["certainty"].iloc[0])
    summary = (f"<strong>{escape(title)}</strong>: {escape(cert)}"
               + (f" — {escape(', '.join(down))}" if down else " — no domain downgraded")
               + f" (k = {int(g['k'].iloc[0])}, n = {int(g['participants'].iloc[0])})")
    return (f'<details class="me-grade-domains" style="margin:0.3rem 0"><summary>{summary}</summary>'
            + _grid(["Domain", "Rating", "Why"], rows, nowrap=(0, 1)) + "</details>")


def grade_report(source: str = REAL) -> list:
    """The GRADE page for one source, GRADEpro-like: what could be rated (and why not), one summary-of-findings
    table per comparison with lettered footnotes and (real extraction only) the review's own ratings from
    the published registry beside ours, then each rated analysis's domains in a block the reader unfolds.
    Read from results/analyses.csv and results/grade.csv (`metaexercise run`, `metaexercise.review.grade`)."""
    synthetic = DataSource.parse(source).synthetic
    what = DataSource.parse(source).description
    path = results_dir(source) / "grade.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `metaexercise run` first")
    grade = read_csv(path)
    analyses, _ = read_results(source)
    by_id = analyses.set_index("analysis_id")
    status = grade_status(source)
    if status.empty:
        return [note("This project declares no main analysis (analyses/*.yaml), so nothing is rated.", "warning")]
    # the review's ratings: real extraction only (the replica is calibrated to the published numbers)
    reg = registry() if not synthetic and declaration().has("published") else None
    out: list = [_status_summary(status, what)]
    for comparator, members in status.groupby(status["comparator"].fillna(""), sort=False):
        out.append(_sof_block(source, comparator or None, members, grade, by_id, reg))
    if synthetic and declaration().has("published"):
        out.append(note("The review's own ratings are not set beside the replica's: the replica is calibrated to "
                        "the published numbers, so agreement would be built in. They are in the real-extraction "
                        "tables above."))
    rated = status[status["state"] == "rated"]
    parts = [_domain_details(grade, aid, f"{t}, {comparison_title(c)}")
             for aid, t, c in zip(rated["analysis_id"], rated["outcome"], rated["comparator"], strict=True)]
    others = [aid for aid in dict.fromkeys(grade["analysis_id"]) if aid not in set(status["analysis_id"])
              and (grade.loc[grade["analysis_id"] == aid, "domain"] != "all").any()]
    if others:
        parts.append(_other_profiles(grade, others))
    csv = grade.drop(columns=["data"], errors="ignore")
    if parts:
        out.append(_captioned(f"grade_{source}", f"GRADE domains per analysis ({what}): unfold an analysis for "
                              "each domain's rating and reason", csv, "".join(parts)))
    return out


def _other_profiles(grade: pd.DataFrame, ids: list[str]) -> str:
    """The GRADE profile of the other rated analyses (sensitivity scenarios): one row each, a column per
    domain ("–" not serious, "serious", "very serious"), folded."""
    from metaexercise.review.grade import RATINGS
    from metaexercise.review.vocabulary import GradeDomain

    head = ["Analysis", *(g.label for g in GradeDomain), "Certainty"]
    labels = _result_labels()
    rows = []
    for aid in ids:
        g = grade[(grade["analysis_id"] == aid) & (grade["domain"] != "all")].set_index("domain")
        cells = [escape(labels.get(aid, aid))]
        for dom in GradeDomain:
            down = _domain_downgrade(g.loc[str(dom)]) if str(dom) in g.index else None
            cells.append("" if down is None else "–" if down == 0 else escape(RATINGS[down]))
        cells.append(escape(_certainty_cell(g["certainty"].iloc[0])))
        rows.append(cells)
    return (f'<details class="me-grade-domains" style="margin:0.3rem 0"><summary><strong>The other rated '
            f"analyses ({len(ids)}: sensitivity scenarios)</strong> — rating per domain (– not serious)</summary>"
            + _grid(head, rows, nowrap=(len(head) - 1,)) + "</details>")


def validation_report() -> list:
    """The metafor-agreement table (results/validation.csv: `metaexercise run` refits the project's reference
    fixtures with `metaexercise.engine.validation`), or a note when this project has none."""
    path = results_dir(REAL) / "validation.csv"
    if not path.is_file():
        return [note(f"No metafor reference fixtures in {project().reference_folder}/ of this project, so "
                     "`metaexercise run` wrote no results/validation.csv and the engine's agreement with metafor "
                     "is not shown.", "warning")]
    agreement = read_csv(path)
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
    sim = read_csv(path)
    cols = ["estimator", "target", "interval", "reps", "failure_rate", "bias", "bias_mcse", "rmse", "coverage",
            "coverage_mcse", "width"]
    return [table(sim[[c for c in cols if c in sim]], "simulation", "Simulation study, review preset "
                  f"(k = {int(sim['k'].iloc[0])}, I² = {sim['I2'].iloc[0]:.0f}%, μ = {sim['mu'].iloc[0]})"),
            figure(plot_simulation(sim), "simulation", "Coverage of confidence and prediction intervals and RMSE "
                   "of τ² by estimator (simulated data)")]


# --------------------------------------------------------------------------- dependence (contrast, sensitivity)
def dependence_rows(source: str = REAL) -> pd.DataFrame | None:
    """results/dependence.csv (`metaexercise.review.dependence`), or None when this run wrote none."""
    return optional_table("dependence.csv", source)


def _dependence_source() -> str:
    """The declared source of the assumed correlation across windows (results/review.json)."""
    return str((_review_doc().get("dependence") or {}).get("source") or "")


def dependence_method_text(rho_time: float | None = None) -> str:
    """The method in one paragraph (plain text; `rho_time` from dependence.csv)."""
    rho = f"ρ = {rho_time:g}" if rho_time is not None and np.isfinite(rho_time) else "the declared ρ"
    shared = ("correlate as Gleser & Olkin (2009) give for standardised mean differences" if
              declaration().measure == "SMD" else "covary by the variance of the shared arm's mean (SD²/n)")
    return ("The main analysis keeps one comparison per trial and window (a multi-arm trial's arms combined) and "
            "pools each window alone. Here every experimental–control pair at every window is an effect, shared "
            f"arms keep their whole n, and the dependence is modelled: effects of one window that share an arm "
            f"{shared}; one trial's effects at two "
            f"windows with the assumed correlation {rho}. Random effects for trials and for effects within trials "
            "and one coefficient per window (the correlated and hierarchical effects model of Pustejovsky & Tipton "
            "2022; metafor's rma.mv) pool them; CR2 cluster-robust inference by trial, with Satterthwaite degrees "
            "of freedom, stays valid when this working model is wrong.")


def _small(text: str) -> _HTML:
    """A small-print paragraph under a table (its own margins: `.me-table-note` sits inside a table's box)."""
    return _HTML(f'<p style="font-size:0.85rem;color:#444;margin:0.2rem 0 1rem">{escape(text)}</p>')


def _interval(row, est: str, lo: str, hi: str) -> str:
    if pd.isna(row.get(lo)):
        return ""
    head = f"{_fmt(row[est])} " if est else ""
    return f"{head}[{_fmt(row[lo])}, {_fmt(row[hi])}]"


def dependence_report(analysis_id: str, source: str = REAL) -> list:
    """A contrast page's dependence section for one source: what the model adds, then the main analysis, the
    multilevel model and its CR2-robust inference side by side (results/dependence.csv), or why there is none."""
    what = DataSource.parse(source).description
    rows = dependence_rows(source)
    if rows is None:
        return [missing_note("dependence.csv", source)]
    mine = rows[rows["analysis_id"] == analysis_id]
    if mine.empty:
        return [note(f"results/dependence.csv ({what}) has no row for {analysis_id}.", "warning")]
    r = mine.iloc[0]
    arms, times = int(r["k_multiarm"]), int(r["k_multitime"])
    counts = (f"In this window: {int(r['k_effects'])} effect{'' if r['k_effects'] == 1 else 's'} from "
              f"{int(r['k_studies'])} trial{'' if r['k_studies'] == 1 else 's'}; {arms} "
              f"give{'s' if arms == 1 else ''} more than one comparison, {times} also "
              f"report{'s' if times == 1 else ''} another window.")
    # the method once per page: with the real extraction's rows (the replica's section follows it)
    synthetic = DataSource.parse(source).synthetic
    method = "" if synthetic else f"<p>{escape(dependence_method_text(r['rho_time']))}</p>"
    out: list = [_HTML(f'<div class="me-dependence">{method}<p>{escape(counts)}</p></div>')]
    if r["status"] != StatusKind.OK:
        out.append(note(f"Multilevel model: {r['status']}" + (f" ({r['notes']})" if pd.notna(r["notes"]) and r["notes"]
                                                            else "") + ".", "warning"))
        return out
    analyses, _ = read_results(source)
    main = analyses[analyses["analysis_id"] == analysis_id]
    main_k = int(main["k"].iloc[0]) if len(main) and pd.notna(main["k"].iloc[0]) else None
    df = f"{r['robust_df']:.1f}" if pd.notna(r["robust_df"]) else ""
    effect = f"{declaration().measure} [95% CI]"
    frame = pd.DataFrame([
        {"model": "main analysis (one comparison per trial and window)", "effects": main_k, "trials": main_k,
         effect: _interval(r, "main_estimate", "main_ci_lb", "main_ci_ub") or "not pooled", "p": np.nan,
         "df": ""},
        {"model": f"multilevel model (ρ = {r['rho_time']:g})", "effects": int(r["k_effects"]),
         "trials": int(r["k_studies"]), effect: _interval(r, "estimate", "ci_lb", "ci_ub"), "p": r["pval"],
         "df": ""},
        {"model": "same, CR2 cluster-robust", "effects": int(r["k_effects"]), "trials": int(r["k_studies"]),
         effect: _interval(r, "estimate", "robust_ci_lb", "robust_ci_ub") or "not computed",
         "p": r["robust_pval"], "df": df},
    ])
    if not df:
        frame = frame.drop(columns="df")
    if frame["p"].isna().all():
        frame = frame.drop(columns="p")
    stem = f"dependence_{analysis_id}_{DataSource.parse(source).book_name}"
    out.append(table(frame, stem, f"Main analysis and multilevel model ({what})"))
    source_text = _dependence_source()
    extra = (f"Variance components: σ² between trials {_fmt(r['sigma2_study'], '.4f')}, within trials "
             f"{_fmt(r['sigma2_es'], '.4f')}." + (f" Notes: {r['notes']}." if pd.notna(r["notes"]) and r["notes"]
                                                   else "")
             + (f" ρ = {r['rho_time']:g} from: {source_text}." if source_text and not synthetic else ""))
    out.append(_small(extra))
    return out


def dependence_overview(source: str = REAL) -> list:
    """The sensitivity page's dependence table: one row per main contrast, the main analysis beside the
    multilevel model and its CR2-robust interval (results/dependence.csv); the replica under its banner."""
    synthetic = DataSource.parse(source).synthetic
    what = DataSource.parse(source).description
    out: list = [synthetic_banner()] if synthetic else []
    rows = dependence_rows(source)
    if rows is None:
        return [*out, missing_note("dependence.csv", source)]
    measure = declaration().measure
    frame = pd.DataFrame({
        "contrast": [short_label(a) for a in rows["analysis_id"]],
        "effects (trials)": [f"{int(e)} ({int(k)})" for e, k in zip(rows["k_effects"], rows["k_studies"], strict=True)],
        "multi-arm / multi-time trials": [f"{int(a)} / {int(t)}" for a, t in
                                          zip(rows["k_multiarm"], rows["k_multitime"], strict=True)],
        f"main {measure} [95% CI]": [_interval(r, "main_estimate", "main_ci_lb", "main_ci_ub") or "not pooled"
                              for _, r in rows.iterrows()],
        f"multilevel {measure} [95% CI]": [_interval(r, "estimate", "ci_lb", "ci_ub") or str(r["status"])
                                    for _, r in rows.iterrows()],
        "CR2 95% CI (df)": [(_interval(r, "", "robust_ci_lb", "robust_ci_ub") + f" ({r['robust_df']:.1f})")
                            if pd.notna(r["robust_ci_lb"]) else "" for _, r in rows.iterrows()],
    })
    rho = rows["rho_time"].dropna()
    out.append(table(frame, f"dependence_{DataSource.parse(source).book_name}",
                     f"Main analyses and multilevel models ({what}; results/dependence.csv)"))
    if not synthetic:
        rho_value = float(rho.iloc[0]) if len(rho) else None
        out.insert(0, _HTML(f"<p>{escape(dependence_method_text(rho_value))}</p>"))
        source_text = _dependence_source()
        if source_text and rho_value is not None:
            out.append(_small(f"ρ = {rho_value:g} from: {source_text}."))
    missing = rows[rows["status"] == StatusKind.OK]["robust_ci_lb"].isna().sum()
    if missing:
        out.append(note(f"{missing} fitted model{'s have' if missing > 1 else ' has'} no CR2 interval: cluster-robust "
                        "inference needs more trials than coefficients (see the notes in results/dependence.csv)."))
    return out


# --------------------------------------------------------------------------- Bayesian random effects (contrast pages)
def bayes_rows(source: str = REAL) -> pd.DataFrame | None:
    """results/bayes.csv (`metaexercise.review.bayes_summary`), or None when this run wrote none."""
    return optional_table("bayes.csv", source)


def _text(value) -> str:
    return "" if _is_blank(value) else str(value)


def _bayes_prior_text(r: pd.Series) -> str:
    """The priors of one row of bayes.csv, in words (the distribution and the declared name; the sources are
    on the methods page)."""
    label, name = _text(r["tau_prior_label"]), _text(r["tau_prior"])
    tau = f"{label} ({name})" if label and label != name else name
    return f"Prior of τ: {tau}. Prior of μ: {_text(r['mu_prior'])}."


def _probability(p) -> str:
    """A posterior probability with three decimals; "> 0.999" and "< 0.001" at the ends."""
    if _is_blank(p):
        return ""
    return "> 0.999" if p > 0.999 else "< 0.001" if p < 0.001 else _fmt(p, ".3f")


def _tau_ci(analysis_id: str, source: str) -> tuple[float, float] | None:
    """The Q-profile 95% CI of tau^2 of one fitted analysis (results/forest.csv), or None."""
    path = results_dir(source) / "forest.csv"
    if not path.is_file():
        return None
    forest = read_table("forest.csv", source)
    row = forest[forest["analysis_id"] == analysis_id]
    if row.empty or row[["tau2_ci_lb", "tau2_ci_ub"]].isna().any(axis=None):
        return None
    return float(row["tau2_ci_lb"].iloc[0]), float(row["tau2_ci_ub"].iloc[0])


def bayes_report(analysis_id: str, source: str = REAL) -> list:
    """A contrast page's Bayesian section for one source: the frequentist fit of analyses.csv and the posterior
    of the normal-normal hierarchical model under the declared priors side by side (results/bayes.csv): μ, τ,
    the prediction interval of a new study's effect, and the probabilities that μ lies beyond 0 and beyond the
    minimal important difference in the direction of benefit; or why there is none."""
    what = DataSource.parse(source).description
    rows = bayes_rows(source)
    if rows is None:
        return [missing_note("bayes.csv", source)]
    mine = rows[rows["analysis_id"] == analysis_id]
    if mine.empty:
        return [note(f"results/bayes.csv ({what}) has no row for {analysis_id}.", "warning")]
    r = mine.iloc[0]
    if r["status"] != StatusKind.OK:
        why = f" ({r['notes']})" if _text(r["notes"]) else ""
        return [note(f"Bayesian random-effects model ({what}): {r['status']}{why}.", "warning" if
                     r["status"] == "not computed" else "note")]
    lower = str(r["benefit"]).startswith("mu <")
    sign = "<" if lower else ">"
    measure = declaration().measure
    mid = r["mid_effect"]
    mid_quantity = (f"P(μ {sign} {_fmt(-mid if lower else mid)}: the MID, {r['mid_points']:g} points)"
                    if pd.notna(mid) else "P(μ beyond the MID)")
    tau = _fmt(np.sqrt(r["freq_tau2"])) if pd.notna(r["freq_tau2"]) else ""
    tau_ci = _tau_ci(analysis_id, source)
    if tau and tau_ci is not None:
        tau += f" [{_fmt(np.sqrt(tau_ci[0]))}, {_fmt(np.sqrt(tau_ci[1]))}]"
    frame = pd.DataFrame([
        {"quantity": f"{measure} μ [95% interval]",
         "frequentist (REML)": _interval(r, "freq_estimate", "freq_ci_lb", "freq_ci_ub"),
         "Bayesian (bayesmeta)": _interval(r, "mu_median", "mu_lb", "mu_ub")},
        {"quantity": "τ [95% interval]", "frequentist (REML)": tau,
         "Bayesian (bayesmeta)": _interval(r, "tau_median", "tau_lb", "tau_ub")},
        {"quantity": "95% prediction interval",
         "frequentist (REML)": f"{_interval(r, '', 'freq_pi_lb', 'freq_pi_ub')} ({r['freq_pi_method']})",
         "Bayesian (bayesmeta)": _interval(r, "", "theta_lb", "theta_ub")},
        {"quantity": f"P(μ {sign} 0)", "frequentist (REML)": "—", "Bayesian (bayesmeta)": _probability(r["p_benefit"])},
        {"quantity": mid_quantity, "frequentist (REML)": "—",
         "Bayesian (bayesmeta)": _probability(r["p_mid"]) if pd.notna(r["p_mid"]) else "not available"},
    ])
    stem = f"bayes_{analysis_id}_{DataSource.parse(source).book_name}"
    out: list = [table(frame, stem, f"Frequentist and Bayesian random-effects model ({what})")]
    mid_note = _text(r["mid_note"])
    words = (_bayes_prior_text(r) + " Bayesian: posterior median and shortest 95% credible interval; the "
             "prediction interval is the posterior predictive interval of a new study's effect; numerical "
             "integration as R's bayesmeta 3.4 (Röver 2020, J Stat Softw 93(6)). Frequentist: the fit of "
             "analyses.csv (μ̂ with its 95% CI; τ̂ = √τ̂² with the Q-profile interval)." + (f" MID: {_no_period(mid_note)}." if mid_note else "")
             + (f" Note: {_no_period(_text(r['notes']))}." if _text(r["notes"]) else ""))
    out.append(_HTML(f'<p style="font-size:0.85rem;color:#444;margin:0.2rem 0 1rem">{escape(words)} The priors '
                     'and their sources: <a href="methods.html#bayesian-random-effects-model">Methods</a>.</p>'))
    return out


def _declared_priors() -> list[tuple[str, dict]]:
    """(outcome label, declared tau prior) per outcome, in the declaration's order (results/review.json)."""
    bayes = _review_doc().get("bayes") or {}
    per = bayes.get("tau_priors") or {}
    default = bayes.get("tau_prior") or {}
    return [(o.label, per.get(o.id) or default) for o in declaration().outcomes]


def bayes_method_text() -> str:
    """The methods page's paragraph on the Bayesian model and its prior of mu (results/review.json)."""
    mu = (_review_doc().get("bayes") or {}).get("mu_prior")
    mu_text = ("flat (the improper uniform prior, bayesmeta's default)" if not mu else
               f"normal with mean {mu['mean']:g} and SD {mu['sd']:g} ({_no_period(mu.get('source') or '')})")
    return ("Beside each main contrast's frequentist fit stands the Bayesian normal-normal hierarchical model "
            "(the same random-effects model, y_i ~ N(θ_i, v_i), θ_i ~ N(μ, τ²)), integrated numerically as R's "
            "bayesmeta does it (Röver 2020, J Stat Softw 93(6)), on the same studies (results/bayes.csv). With "
            "few studies the prior of τ carries information the data lack, and the posterior of μ widens by the "
            "uncertainty in τ that the REML fit ignores. The posterior median and the shortest 95% credible "
            f"intervals are shown, and the probability that μ lies beyond 0 and beyond the minimal important "
            f"difference in the direction of benefit. Prior of μ: {mu_text}. Priors of τ, as review.yaml "
            "declares them:")


def bayes_method() -> _HTML:
    """`bayes_method_text` and a list of the declared priors of tau, one per outcome, with their sources."""
    items = []
    for label, p in _declared_priors():
        name = str(p.get("name") or "")
        shown = f"{name}(scale={p['scale']:g})" if p.get("scale") is not None else name
        dist = str(p.get("label") or shown)
        items.append(f"<li><strong>{escape(label)}</strong>: {escape(dist)}"
                     + (f" ({escape(shown)})" if dist != shown else "")
                     + (f"; {escape(_no_period(p['source']))}." if p.get("source") else "") + "</li>")
    return _HTML(f"<p>{escape(bayes_method_text())}</p><ul>{''.join(items)}</ul>")


# --------------------------------------------------------------------------- prediction intervals
#: How each prediction-interval method is written on the pages (pi_coverage.csv's ``method``).
PI_METHOD_WORDS = {
    "z": "z: μ̂ ± 1.96 √(SE² + τ̂²), the normal quantile (metafor's predict.rma under test=\"z\")",
    "t(k-1)": "t(k−1): μ̂ ± t(0.975; k−1) √(SE² + τ̂²)",
    "t(k-2)": "t(k−2): μ̂ ± t(0.975; k−2) √(SE² + τ̂²) (Higgins, Thompson & Spiegelhalter 2009)",
    "knha": "Knapp–Hartung: μ̂ ± t(0.975; k−1) √(SE²(KH) + τ̂²) (metafor's predict.rma under test=\"knha\")",
    "bayes": "Bayesian: the central 95% posterior predictive interval (bayesmeta)",
}
#: The methods' names in the coverage figure's legend.
_PI_LEGEND = {"z": "z", "t(k-1)": "t(k−1)", "t(k-2)": "t(k−2)", "knha": "Knapp–Hartung", "bayes": "Bayesian"}


def prediction_interval_statement() -> _HTML:
    """Which prediction interval the project reports and why (review.yaml ``prediction_interval``)."""
    pi = _review_doc().get("prediction_interval") or {}
    method = str(pi.get("method") or "z")
    why = str(pi.get("why") or "")
    body = (f"<p><strong>{escape(PI_METHOD_WORDS.get(method, method))}</strong></p>"
            + (f"<p>{escape(why)}</p>" if why else ""))
    return _admonition("The prediction interval this review reports", body, "important")


def pi_coverage_rows() -> pd.DataFrame | None:
    """results/pi_coverage.csv (written by `metaexercise run` for the real extraction), or None."""
    return optional_table("pi_coverage.csv", REAL)


def pi_coverage_figure(cov: pd.DataFrame, column: str = "coverage_expected"):
    """Coverage of each prediction-interval method against k, one panel per true τ², the nominal 95% dashed;
    the method the project reports drawn thick."""
    from matplotlib.lines import Line2D

    from metaexercise.plots.style import INK, MUTED, PREDICTION, new_figure, plot_style

    tau2s = sorted(cov["tau2"].unique())
    methods = list(dict.fromkeys(cov["method"]))
    styles = {"z": ("o", "-"), "t(k-1)": ("s", "--"), "t(k-2)": ("^", "-."), "knha": ("D", ":"),
              "bayes": ("v", (0, (5, 1, 1, 1)))}
    declared = set(cov.loc[cov["declared"].astype(bool), "method"])
    ncol = 2 if len(tau2s) > 2 else len(tau2s)
    nrow = -(-len(tau2s) // ncol)
    with plot_style():
        fig = new_figure(7.6, 2.9 * nrow + 0.6)
        grid = fig.subplots(nrow, ncol, sharey=True, sharex=True, squeeze=False)
        axes = grid.reshape(-1)[: len(tau2s)]
        for ax in grid.reshape(-1)[len(tau2s):]:
            ax.set_visible(False)
        lo = min(float(cov[column].min()), 0.95) - 0.02
        for ax, t2 in zip(axes, tau2s, strict=True):
            sub = cov[cov["tau2"] == t2]
            for m in methods:
                s = sub[sub["method"] == m].sort_values("k")
                marker, ls = styles.get(m, ("o", "-"))
                colour = PREDICTION if m == "bayes" else INK
                ax.plot(s["k"], s[column], marker=marker, ls=ls, color=colour, ms=3.5, mfc="white",
                        lw=2.0 if m in declared else 0.9)
            ax.axhline(0.95, color=MUTED, ls="--", lw=0.8)
            ax.set_xscale("log")
            ks = sorted(cov["k"].unique())
            ax.set_xticks(ks, [str(int(k)) for k in ks])
            ax.minorticks_off()
            ax.set_title(f"true τ² = {t2:g}", fontsize=9)
            ax.set_ylim(lo, 1.005)
        for ax in grid[-1]:
            ax.set_xlabel("number of studies k")
        for ax in grid[:, 0]:
            ax.set_ylabel("coverage")
        handles = [Line2D([], [], marker=styles.get(m, ("o", "-"))[0], ls=styles.get(m, ("o", "-"))[1],
                          color=PREDICTION if m == "bayes" else INK, mfc="white", ms=4,
                          lw=2.0 if m in declared else 0.9,
                          label=_PI_LEGEND.get(m, m) + (" (reported)" if m in declared else "")) for m in methods]
        handles.append(Line2D([], [], color=MUTED, ls="--", lw=0.8, label="nominal 0.95"))
        fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.1 / nrow, 1, 1))
    return fig


def pi_coverage_report() -> list:
    """The prediction-interval page's coverage study (results/pi_coverage.csv): what was simulated, the figure,
    the coverage per k, τ² and method (unfolded on demand), and how far below 95% the reported method falls at
    the k of the review's contrasts."""
    cov = pi_coverage_rows()
    if cov is None:
        return [note("No results/pi_coverage.csv yet: `metaexercise run` writes it when review.yaml declares the "
                     "simulation component.")]
    reps = int(cov["n_rep"].iloc[0])
    seed = int(cov["seed"].iloc[0])
    prior = next((p for p in cov["bayes_prior"] if _text(p)), "")
    ks = sorted(int(k) for k in cov["k"].unique())
    tau2s = ", ".join(f"{t:g}" for t in sorted(cov["tau2"].unique()))
    intro = (f"Simulated meta-analyses (not the trials' data): {reps:,} per scenario (seed {seed}), k = "
             f"{', '.join(map(str, ks))} studies with the review's trial sizes (total n log-normal, median 121), "
             f"true τ² = {tau2s} on the SMD scale, μ = 0; τ² by REML; the Bayesian interval under the prior "
             f"{prior or 'half-normal(0.5)'}. Coverage is the mean over replicates of the probability that the "
             "interval holds a new study's effect, P(θ_new ∈ PI | PI), the estimator of the share of intervals "
             "that hold it with the smaller Monte Carlo error (both are in the CSV, with their Monte Carlo SEs).")
    out: list = [_HTML(f"<p>{escape(intro)}</p>"),
                 figure(pi_coverage_figure(cov), "pi_coverage",
                        "Coverage of 95% prediction intervals by number of studies and true τ² (simulated data)")]
    wide = cov.pivot_table(index=["tau2", "k"], columns="method", values="coverage_expected", sort=False)
    wide = wide.reset_index().rename(columns={"tau2": "τ²"})
    wide.columns.name = None
    shown = table(wide, "pi_coverage", "Coverage of 95% prediction intervals (simulated data; "
                  "results/pi_coverage.csv)", float_format="{:.3f}")
    out.append(_HTML(f'<details class="me-more-columns"><summary>The coverage table ({len(wide)} rows)</summary>'
                     f"{shown.html}</details>"))
    declared = cov[cov["declared"].astype(bool)]
    if len(declared):
        m = str(declared["method"].iloc[0])
        small = declared[declared["k"] == min(ks)]
        worst = small.loc[small["coverage_expected"].idxmin()]
        out.append(_small(f"The reported interval ({m}) covers a new study's effect in as few as "
                          f"{worst['coverage_expected']:.0%} of meta-analyses of k = {min(ks)} studies (τ² = "
                          f"{worst['tau2']:g}), and in "
                          f"{declared.loc[declared['k'] == max(ks), 'coverage_expected'].min():.0%} at worst with "
                          f"k = {max(ks)}, against the nominal 95%."))
    return out


def prediction_overview(source: str = REAL) -> list:
    """The prediction-interval page's table of one source: per main contrast, k, the frequentist prediction
    interval (with its method) and the Bayesian predictive interval (results/bayes.csv); the replica under its
    banner."""
    synthetic = DataSource.parse(source).synthetic
    what = DataSource.parse(source).description
    out: list = [synthetic_banner()] if synthetic else []
    rows = bayes_rows(source)
    if rows is None:
        return [*out, missing_note("bayes.csv", source)]
    ok = rows["status"] == StatusKind.OK
    frame = pd.DataFrame({
        "contrast": [short_label(a) for a in rows["analysis_id"]],
        "k": rows["k"].astype(int),
        "prediction interval (reported)": [
            (f"{_interval(r, '', 'freq_pi_lb', 'freq_pi_ub')} ({r['freq_pi_method']})" if pd.notna(r["freq_pi_lb"])
             else str(r["status"])) for _, r in rows.iterrows()],
        "Bayesian predictive interval": [_interval(r, "", "theta_lb", "theta_ub") if is_ok else str(r["status"])
                                         for (_, r), is_ok in zip(rows.iterrows(), ok, strict=True)],
        "width ratio (Bayesian / reported)": [
            (r["theta_ub"] - r["theta_lb"]) / (r["freq_pi_ub"] - r["freq_pi_lb"])
            if is_ok and pd.notna(r["freq_pi_lb"]) and r["freq_pi_ub"] > r["freq_pi_lb"] else np.nan
            for (_, r), is_ok in zip(rows.iterrows(), ok, strict=True)],
    })
    out.append(table(frame, f"prediction_{DataSource.parse(source).book_name}",
                     f"Prediction intervals of the main contrasts ({what})", float_format="{:.2f}"))
    return out


# --------------------------------------------------------------------------- multiverse
def multiverse_ids(source: str = REAL) -> list[str]:
    """The analyses with a stored multiverse (results/multiverse/*.csv; results/replica/multiverse/ for the
    replica), the main analyses first in their declared order."""
    folder = results_dir(source) / "multiverse"
    stored = {p.stem for p in folder.glob("*.csv")} if folder.is_dir() else set()
    first = [i for i in main_ids() if i in stored] if stored else []
    return first + sorted(stored - set(first))


def _share_text(part: dict) -> str:
    if part["share"] is None:
        return f"not computable ({part.get('not_computable') or 'no specification with such a number'})"
    return f"{100 * part['share']:.1f}% ({part['count']:,} of {part['of']:,})"


def multiverse_report(analysis_id: str, source: str = REAL) -> list:
    """One stored multiverse (`metaexercise multiverse`): the shares from its summary JSON, the main
    specification's row (the analysis as declared, with analyses.csv's numbers), the specification curve drawn
    from the CSV, and per choice the median estimate and the share of CIs excluding 0."""
    from metaexercise.plots.specification_curve import specification_curve
    from metaexercise.review.multiverse_columns import (
        CHOICE_COLUMNS,
        CHOICE_LABELS,
        CHOICE_PLURALS,
        OK,
        curve_options,
    )
    from metaexercise.spreadsheet_safety import read_csv

    src = DataSource.parse(source)
    what = src.description
    folder = results_dir(source) / "multiverse"
    info = json.loads((folder / f"{analysis_id}.json").read_text(encoding="utf-8"))
    t = read_csv(folder / f"{analysis_id}.csv")
    tag = f"{analysis_id}_{src.book_name}"
    sizes = " × ".join(f"{len(v)} {CHOICE_PLURALS[c] if len(v) > 1 else CHOICE_LABELS[c]}" for c, v in
                       sorted(info["choices"].items(), key=lambda kv: CHOICE_COLUMNS.index(kv[0])))
    head = (f"{info['specifications']:,} specifications ({sizes}), {info['fitted']:,} fitted, from the "
            f"{what}.")
    out: list = []
    if not info["fitted"]:
        why = "; ".join(f"{n:,} specifications: {status}" for status, n in info["not_fitted"].items())
        out.append(note(f"{head} No specification could be fitted ({why}).", "warning"))
        return out
    mid = info["reaches_mid"]
    how = ("an MD on the common scale is in points" if info.get("measure") == "MD" else
           "points = SMD × each data set's pooled baseline SD, as the analysis pages' VAS points")
    mid_words = (f"effect reaches the minimal important difference of {mid['mid']:g} points in the direction "
                 f"of benefit ({how}): {_share_text(mid)}" if mid["mid"] is not None else
                 "minimal important difference: none declared for this outcome")
    est = info["estimate"]
    items = [f"95% CI excludes 0: {_share_text(info['ci_excludes_0'])}",
             f"95% prediction interval excludes 0: {_share_text(info['pi_excludes_0'])}",
             mid_words,
             f"estimates from {est['min']:.3f} to {est['max']:.3f} (median {est['median']:.3f})"]
    items += [f"not fitted: {n:,} specifications, {status}" for status, n in info["not_fitted"].items()]
    body = f"<p>{escape(head)}</p><ul style=\"margin-bottom:0\">" + "".join(
        f"<li>{escape(i[0].upper() + i[1:])}</li>" for i in items) + "</ul>"
    out.append(_admonition("How many specifications support the result", body))
    main = t.loc[t["is_main"].astype(bool), [*CHOICE_COLUMNS, "k", "estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub",
                                             "tau2", "vas_points", "status"]]
    out.append(table(main.rename(columns={c: CHOICE_LABELS[c] for c in CHOICE_COLUMNS}), f"multiverse_main_{tag}",
                     f"The main specification: the analysis as declared, the numbers of results/analyses.csv ({what})"))
    fig = specification_curve(t, CHOICE_LABELS, **curve_options(t, info, info.get("measure", "SMD")))
    out.append(figure(fig, f"multiverse_{tag}", f"Specification curve: {info['label']} ({what}); the main "
                      "analysis in red, below it which value of each choice every specification uses"))
    ok = t[t["status"].eq(OK)]
    rows = []
    for c in CHOICE_COLUMNS:
        for value in info["choices"][c]:
            sel = ok[ok[c].astype(str).eq(str(value))]
            excl = ((sel["ci_lb"] > 0) | (sel["ci_ub"] < 0)).mean() if len(sel) else np.nan
            rows.append({"choice": CHOICE_LABELS[c], "value": value, "specifications": len(sel),
                         "median estimate": sel["estimate"].median() if len(sel) else np.nan,
                         "CI excludes 0 (%)": 100 * excl})
    by_choice = table(pd.DataFrame(rows), f"multiverse_choices_{tag}",
                      f"Median estimate and share of 95% CIs excluding 0 among the fitted specifications that "
                      f"use each value ({what})")
    out.append(_HTML("<details><summary>By choice: which values move the estimate</summary>"
                     f"{by_choice.html}</details>"))
    return out
