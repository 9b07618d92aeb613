"""Summary forest: pooled estimates of several analyses on one axis (sensitivity scenarios beside the main
analyses; the review's published estimate beside ours, per contrast), drawn with the `forestplot` package
(PyPI `forestplot`, Lucas Shen; the [review] extra installs it).

Input is a plain table, one row per estimate: `label`, `estimate`, `ci_lb`, `ci_ub`, `group` (the heading the
row sits under, e.g. an outcome or a contrast) and `k`; optionally `synthetic` (True for rows from the
synthetic replica: their group carries the synthetic label and the figure the banner) and `note` (what the
CI column says where a row has no estimate, e.g. "insufficient data (k=1)"). `from_analyses` and
`beside_published` build it from results/analyses.csv rows and a table of published estimates.

The study-level RevMan-style forest is `metaexercise.plots.forest`; this figure never shows studies.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.collections import PathCollection

from metaexercise.plots.style import INK, MUTED, add_synthetic_banner, plain_text, plot_style
from metaexercise.vocabulary import SYNTHETIC_LABEL

#: Columns `summary_forest` needs.
COLUMNS = ("label", "estimate", "ci_lb", "ci_ub", "group", "k")
_LABEL_CHARS = 58
_ROW_INCHES = 0.22
_OK = "ok"


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _short(label: str, width: int = _LABEL_CHARS) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def _k_text(k) -> str:
    try:
        return f"{int(k)}" if pd.notna(k) and str(k) != "" else ""
    except (TypeError, ValueError):
        return str(k)


def _ci_text(row) -> str:
    est, lb, ub = (pd.to_numeric(row[c], errors="coerce") for c in ("estimate", "ci_lb", "ci_ub"))
    if np.isfinite([est, lb, ub]).all():
        return f"{est:.2f} [{lb:.2f}, {ub:.2f}]"
    return _text(row.get("note")) or "not estimable"


def _without_group(label: str, group: str) -> str:
    """"Pain, short term, vs active" under the heading "Pain" reads "Short term, vs active"."""
    head = group.split(" (")[0].strip()
    if head and label.lower().startswith(head.lower() + ", ") and len(label) > len(head) + 2:
        rest = label[len(head) + 2:]
        return rest[:1].upper() + rest[1:]
    return label


def _unique_tail(i: int, width: int) -> str:
    return "".join("\u00a0" if bit == "1" else " " for bit in format(i, "b").zfill(width))


def summary_table(frame: pd.DataFrame, *, synthetic: bool = False) -> pd.DataFrame:
    """The rows as the figure shows them: group headings with the synthetic label where the rows are synthetic,
    labels made literal and shortened, `k` and the "estimate [95% CI]" (or the note) as text."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"summary_forest: the table lacks columns {missing} (needs {', '.join(COLUMNS)})")
    if frame.empty:
        raise ValueError("summary_forest: no rows to draw")
    out = frame.reset_index(drop=True).copy()
    flags = (out["synthetic"].fillna(False).astype(bool) if "synthetic" in out
             else pd.Series(False, index=out.index)) | bool(synthetic)
    out["synthetic"] = flags
    out["group"] = [f"{_text(g)} ({SYNTHETIC_LABEL})" if s else _text(g) for g, s in zip(out["group"], flags)]
    out["label"] = [_short(plain_text(_without_group(_text(x), _text(g)))) for x, g in zip(out["label"], out["group"])]
    for c in ("estimate", "ci_lb", "ci_ub"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    out["k_text"] = [_k_text(k) for k in out["k"]]
    # forestplot places rows on a categorical axis by their text: rows that read alike (two "not estimable"
    # rows of one label) would share a line, so each ends in its own pattern of (no-break) spaces.
    width = max(1, int(np.ceil(np.log2(len(out) + 1))))
    out["ci_text"] = [_ci_text(r) + _unique_tail(i, width) for i, (_, r) in enumerate(out.iterrows())]
    # forestplot takes a row whose label reads like a group name for that group's heading
    groups = {g.strip().lower() for g in out["group"]}
    out["label"] = [f"{x} (overall)" if x.strip().lower() in groups else x for x in out["label"]]
    return out


def summary_forest(frame: pd.DataFrame, *, xlabel: str = "SMD (95% CI)", synthetic: bool = False,
                   source: str | None = None, favours: tuple[str, str] | None = None,
                   estimate_header: str = "SMD [95% CI]"):
    """One row per pooled estimate, grouped under `group` in the table's order; rows without an estimate keep
    their line with the note instead of a CI. `synthetic=True` marks every row synthetic (otherwise the
    table's `synthetic` column says which). `favours` = (left, right) labels under the axis."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import offset_copy

    try:
        import forestplot
    except ImportError as exc:  # pragma: no cover - the [review] extra installs it
        raise ImportError("the summary forest needs the `forestplot` package (pip install forestplot, or "
                          "install metaexercise with the [review] extra)") from exc

    table = summary_table(frame, synthetic=synthetic)
    groups = list(dict.fromkeys(table["group"]))
    rows = len(table) + len(groups) + 1  # + group headings + the table header
    drawn = table[np.isfinite(table[["estimate", "ci_lb", "ci_ub"]].to_numpy(float)).all(axis=1)]
    lo = float(min(drawn["ci_lb"].min(), 0.0)) if not drawn.empty else -1.0
    hi = float(max(drawn["ci_ub"].max(), 0.0)) if not drawn.empty else 1.0
    pad = 0.05 * (hi - lo or 1.0)
    with plot_style():
        # forestplot measures its labels on pyplot's current figure (plt.gcf()): draw on a pyplot figure,
        # then release it from pyplot so nothing accumulates there.
        fig = plt.figure(figsize=(3.0, 0.9 + _ROW_INCHES * rows))
        try:
            height = fig.get_figheight()
            ax = fig.add_axes((0.02, 0.7 / height, 0.96, 1 - 0.85 / height))
            with warnings.catch_warnings():
                # rows may share a label ("Published" under every contrast): each keeps its line (see
                # summary_table); and forestplot labels its own fixed ticks
                warnings.filterwarnings("ignore", message="Duplicates found in variable labels")
                warnings.filterwarnings("ignore", message="set_ticklabels\\(\\) should only be used")
                forestplot.forestplot(
                    table, estimate="estimate", ll="ci_lb", hl="ci_ub", varlabel="label", groupvar="group",
                    annote=["k_text", "ci_text"], annoteheaders=["k", estimate_header],
                    variable_header="Analysis", form_ci_report=False, ci_report=False, flush=True, ax=ax,
                    xlabel=plain_text(xlabel), fontsize=8, grouplab_size=8.5, xtick_size=8, xlabel_size=8.5,
                    xlabel_fontweight="normal", markercolor=INK, markersize=25, markeralpha=1.0,
                    linecolor=INK, lw=1.0, xlinecolor=MUTED, xlinewidth=0.7, nticks=5,
                )
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(-0.5, len(ax.get_yticks()) - 0.5)  # the top row, the table header, holds no data
            _flush_left(fig, ax)
            for label in ax.get_yticklabels():
                if label.get_text().strip() in groups:
                    label.set_gid("summary-forest-group")
            for artist in ax.collections:
                if isinstance(artist, PathCollection):  # the markers (errorbar and vlines draw LineCollections)
                    artist.set_gid("summary-forest-estimates")
            if favours:  # under the axis label: tick labels, the label and their pads take about 30 points
                below = offset_copy(ax.transAxes, fig=fig, y=-31, units="points")
                ax.text(0.0, 0.0, plain_text(favours[0]), transform=below, ha="left", va="top", fontsize=7.5,
                        color=MUTED, gid="summary-forest-favours")
                ax.text(1.0, 0.0, plain_text(favours[1]), transform=below, ha="right", va="top", fontsize=7.5,
                        color=MUTED, gid="summary-forest-favours")
            if source:
                fig.text(0.0, 0.0, plain_text(source), fontsize=7, color=MUTED, ha="left", va="bottom",
                         gid="summary-forest-source")
            if table["synthetic"].any():
                add_synthetic_banner(fig)
        finally:
            plt.close(fig)
    return fig


def _flush_left(fig, ax) -> None:
    """Left-flush the row texts against the plot: forestplot sets the tick pad (points) to the widest label
    measured in pixels, which leaves a gap wherever the figure is not at 72 dpi; and its rows end in padding
    (and the tails that keep them apart), which would reach into the plot: the shown texts end at their last
    character (the rows' places are fixed already)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import FixedFormatter, FixedLocator

    shown = [t.get_text().rstrip() for t in ax.get_yticklabels()]
    ax.yaxis.set_major_locator(FixedLocator(ax.get_yticks()))
    ax.yaxis.set_major_formatter(FixedFormatter(shown))
    renderer = FigureCanvasAgg(fig).get_renderer() if not hasattr(fig.canvas, "get_renderer") \
        else fig.canvas.get_renderer()
    widest = max((label.get_window_extent(renderer).width for label in ax.get_yticklabels()), default=0.0)
    ax.yaxis.set_tick_params(pad=widest * 72.0 / fig.dpi + 2.0)


# ------------------------------------------------------------------------------------- building the table
def from_analyses(analyses: pd.DataFrame, ids: Sequence[str] | None = None, *, prefix: str | None = None,
                  group: str | Mapping[str, str] = "outcome", labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Summary-forest rows from results/analyses.csv: the analyses `ids` (in that order) or those whose id
    starts with `prefix`; `group` names a column (e.g. "outcome") or maps analysis_id -> heading; `labels`
    maps analysis_id -> row label (default: the analysis's label). Rows whose status is not "ok" carry the
    status as their note and no estimate."""
    if ids is not None:
        by_id = analyses.set_index("analysis_id")
        rows = by_id.loc[[i for i in ids if i in by_id.index]].reset_index()
    elif prefix is not None:
        rows = analyses[analyses["analysis_id"].astype(str).str.startswith(prefix)]
    else:
        rows = analyses
    rows = rows[rows.get("kind", pd.Series("meta-analysis", index=rows.index)) != "meta-regression"]
    ok = rows["status"].astype(str) == _OK
    heading = (rows["analysis_id"].map(group) if isinstance(group, Mapping)
               else rows[group].astype(str).str.capitalize())
    return pd.DataFrame({
        "label": rows["analysis_id"].map(labels).fillna(rows["label"]) if labels else rows["label"],
        "estimate": rows["estimate"].where(ok), "ci_lb": rows["ci_lb"].where(ok), "ci_ub": rows["ci_ub"].where(ok),
        "group": heading.to_numpy(), "k": rows["k"].to_numpy(),
        "synthetic": rows["synthetic"].astype(str).str.lower().eq("true").to_numpy() if "synthetic" in rows
        else False,
        "note": rows["status"].where(~ok, "").to_numpy(),
    }).reset_index(drop=True)


def beside_published(ours: pd.DataFrame, published: pd.DataFrame, *, ours_label: str = "Ours (real extraction)",
                     published_label: str = "Published") -> pd.DataFrame:
    """Per contrast of `published` (columns id, label, estimate, ci_lb, ci_ub, k: one row per contrast, as
    printed), the published row and ours from results/analyses.csv (`ours`, real rows only: a synthetic row
    here is refused, since the replica is calibrated to the published numbers)."""
    if "synthetic" in ours and ours["synthetic"].astype(str).str.lower().eq("true").any():
        raise ValueError("beside_published: the synthetic replica is never set beside the published numbers")
    by_id = ours.set_index("analysis_id")
    rows = []
    for _, p in published.iterrows():
        heading = _text(p["label"])
        rows.append({"label": published_label, "estimate": p["estimate"], "ci_lb": p["ci_lb"],
                     "ci_ub": p["ci_ub"], "group": heading, "k": p.get("k"), "synthetic": False, "note": ""})
        if p["id"] in by_id.index:
            o = by_id.loc[p["id"]]
            good = str(o["status"]) == _OK
            rows.append({"label": ours_label, "estimate": o["estimate"] if good else np.nan,
                         "ci_lb": o["ci_lb"] if good else np.nan, "ci_ub": o["ci_ub"] if good else np.nan,
                         "group": heading, "k": o["k"], "synthetic": False, "note": "" if good else str(o["status"])})
        else:
            rows.append({"label": ours_label, "estimate": np.nan, "ci_lb": np.nan, "ci_ub": np.nan,
                         "group": heading, "k": None, "synthetic": False, "note": "not an analysis we run"})
    return pd.DataFrame(rows)
