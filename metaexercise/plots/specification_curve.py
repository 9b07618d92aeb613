"""Specification curve (Simonsohn, Simmons & Nelson 2020, Nat Hum Behav 4:1208, Figure 2): every
specification's estimate with its confidence interval, sorted by the estimate, the main specification
highlighted; below, an indicator panel with one row per value of each analytic choice, marked where a
specification uses it, so the eye can see which choices move the estimate.

Input: a plain table with one row per specification (`metaexercise multiverse`'s CSV): ``estimate``,
``ci_lb``, ``ci_ub``, ``is_main`` and one column per choice. Rows without a finite estimate (not fitted) are
left out and counted in the x-axis label. Thousands of specifications draw as thin lines and an image
(rasterized inside an SVG), not as thousands of paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D

from metaexercise.plots.style import (
    INK,
    MUTED,
    PREDICTION,
    RC,
    add_synthetic_banner,
    new_figure,
    plain_text,
    styled,
    wrap_to_width,
)

#: The main specification's colour (line, marker and indicator column).
MAIN = PREDICTION
#: Above this many specifications the CIs become a grey band of thin lines without markers.
DENSE_FROM = 400
#: Height (inches) of one indicator row, and of the estimate panel.
ROW_IN, TOP_IN = 0.17, 3.0


@styled
def specification_curve(table: pd.DataFrame, choices: dict[str, str], *, levels: dict | None = None,
                        title: str = "", ylabel: str = "Estimate", reference: float = 0.0,
                        threshold: tuple[float, str] | None = None, synthetic: bool = False, width: float = 7.5):
    """The specification curve of `table` (columns estimate, ci_lb, ci_ub, is_main and the `choices`' columns).

    `choices`: column -> label of each analytic choice, in the order of the indicator panel; `levels`: column
    -> its values in order (default: as they first appear); `reference`: the horizontal line of no effect;
    `threshold`: (y, label) of a dashed line, e.g. a minimal important difference; `synthetic`: stamp the
    synthetic-data banner. Raises ValueError when no row has a finite estimate."""
    missing = [c for c in ("estimate", "ci_lb", "ci_ub", "is_main", *choices) if c not in table]
    if missing:
        raise ValueError(f"specification_curve: the table lacks column(s) {', '.join(missing)}")
    est_all = pd.to_numeric(table["estimate"], errors="coerce").to_numpy(float)
    shown = table.loc[np.isfinite(est_all)]
    if shown.empty:
        raise ValueError("specification_curve: no specification has a finite estimate (none was fitted)")
    order = np.argsort(shown["estimate"].to_numpy(float), kind="stable")
    shown = shown.iloc[order].reset_index(drop=True)
    n, left_out = len(shown), len(table) - len(shown)
    x = np.arange(n)
    est, lo, hi = (shown[c].to_numpy(float) for c in ("estimate", "ci_lb", "ci_ub"))
    main = np.flatnonzero(shown["is_main"].astype(bool).to_numpy())
    rows = [(col, value) for col in choices
            for value in (levels or {}).get(col, list(dict.fromkeys(table[col].astype(str))))]

    fig = new_figure(width, TOP_IN + ROW_IN * len(rows) + 1.1)
    top_frac = TOP_IN / (TOP_IN + ROW_IN * len(rows))
    grid = fig.add_gridspec(2, 1, height_ratios=[top_frac, 1 - top_frac], hspace=0.06)
    ax = fig.add_subplot(grid[0])
    ind = fig.add_subplot(grid[1], sharex=ax)

    dense = n >= DENSE_FROM
    ax.vlines(x, lo, hi, colors="#9a9a9a", linewidth=0.35 if dense else 0.8, rasterized=dense, zorder=1,
              gid="spec-ci")
    ax.scatter(x, est, s=1.5 if dense else 9, color=INK, linewidths=0, rasterized=dense, zorder=2, gid="spec-est")
    ax.axhline(reference, color=MUTED, linewidth=0.8, zorder=0)
    handles = [Line2D([], [], color=INK, marker="o", linestyle="none", markersize=3, label="estimate"),
               Line2D([], [], color="#9a9a9a", linewidth=1.5, label="95% CI")]
    if threshold is not None and np.isfinite(threshold[0]):
        ax.axhline(threshold[0], color=MUTED, linewidth=0.8, linestyle="--", zorder=0)
        handles.append(Line2D([], [], color=MUTED, linewidth=0.8, linestyle="--", label=plain_text(threshold[1])))
    for i in main:
        for a in (ax, ind):
            a.axvline(i, color=MAIN, linewidth=0.9, alpha=0.6, zorder=3)
        ax.vlines(i, lo[i], hi[i], colors=MAIN, linewidth=2.0, zorder=4)
        ax.scatter([i], [est[i]], s=28, color=MAIN, zorder=5, gid="spec-main")
    if main.size:
        handles.append(Line2D([], [], color=MAIN, marker="o", linewidth=2.0, markersize=5, label="main analysis"))
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, ncol=len(handles),
              borderaxespad=0.2)
    ax.set_ylabel(plain_text(ylabel))
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    ymin, ymax = float(np.nanmin(lo)), float(np.nanmax(hi))
    ys = [ymin, ymax, reference] + ([threshold[0]] if threshold is not None and np.isfinite(threshold[0]) else [])
    pad = 0.05 * (max(ys) - min(ys) or 1.0)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    if title:
        # wrapped to the panel's width (about 3/4 of the figure's, beside the indicator labels)
        ax.set_title(wrap_to_width(plain_text(title), 0.72 * width, float(RC["axes.titlesize"])), loc="left",
                     pad=22)

    # indicator panel: one row per (choice, value); a grey mark where the specification uses it
    mat = np.zeros((len(rows), n))
    for r, (col, value) in enumerate(rows):
        mat[r] = shown[col].astype(str).to_numpy() == str(value)
    ind.imshow(mat, aspect="auto", interpolation="nearest", cmap=ListedColormap(["white", "#3a3a3a"]),
               extent=(-0.5, n - 0.5, len(rows) - 0.5, -0.5), rasterized=True, vmin=0, vmax=1)
    ind.set_yticks(range(len(rows)))
    ind.set_yticklabels([plain_text(f"{choices[col]}: {value}") for col, value in rows])
    ind.tick_params(axis="y", length=0, labelsize=7)
    bounds = np.cumsum([sum(1 for c, _ in rows if c == col) for col in choices])[:-1]
    for b in bounds:
        ind.axhline(b - 0.5, color=MUTED, linewidth=0.6)
    ind.set_xlim(-0.5, n - 0.5)
    ind.set_xlabel(f"{n} specifications, sorted by the estimate"
                   + (f" ({left_out} not fitted, not shown)" if left_out else ""))
    ind.tick_params(axis="x", labelsize=7)
    for side in ("top", "right"):
        ind.spines[side].set_visible(True)
        ind.spines[side].set_linewidth(0.6)
    if synthetic:
        add_synthetic_banner(fig)
    return fig
