"""The "forest of pooled results": a review's own published pooled SMDs with 95% CIs, one row per pooled
result (as recorded in the project's published registry, analyses/published.yaml).
Drawn from the published numbers themselves, so it is real and citable; nothing here is recomputed.

Layout in inches, left to right: the label (wrapped to two lines, never cut short unless longer still), k, the
graph, "SMD [95% CI]", I² and, when the table has one, the GRADE certainty. The figure is as wide as its
columns, so it stays legible at the width of a book page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import transforms

from metaexercise.plots.style import (
    INK,
    add_synthetic_banner,
    new_figure,
    plain_text,
    styled,
    text_width,
    wrap_to_width,
)

_REQUIRED = ("label", "estimate", "ci_lb", "ci_ub")
_SIZE = 9.0
#: Column widths (inches): label, k, graph, gap, CI text, I², GRADE.
_LABEL, _K, _GRAPH, _GAP, _CI, _I2, _GRADE = 3.1, 0.45, 2.4, 0.25, 1.45, 0.5, 0.85
_MARGIN = 0.1


@styled
def pooled_forest(published: pd.DataFrame, *, source: str | None = None, xlim: float = 1.0,
                  xlabel: str = "SMD", synthetic: bool = False, ax=None):
    """One row per published pooled result: `label`, `estimate`, `ci_lb`, `ci_ub`, and optionally `k`,
    `I2` (percent) and `certainty` (GRADE word), drawn in the frame's order, top to bottom."""
    missing = [c for c in _REQUIRED if c not in published.columns]
    if missing:
        raise ValueError(f"pooled_forest: the published table lacks columns {missing}")
    n = len(published)
    grade = "certainty" in published.columns and published["certainty"].notna().any()
    labels = [_wrapped(r) for r in published["label"]]
    two_line = any("\n" in s for s in labels)
    row_in = 0.42 if two_line else 0.3
    graph_left = _MARGIN + _LABEL + _K + 0.2
    width = graph_left + _GRAPH + _GAP + _CI + _I2 + (0.15 + _GRADE if grade else 0.0) + _MARGIN
    rows = np.arange(n, 0, -1, dtype=float)
    if ax is None:
        top_in = 0.75 if synthetic else 0.45  # the banner, then the column headings
        bottom_in = 0.75 + (0.3 if source else 0.0)
        height = top_in + bottom_in + row_in * (n + 0.6)
        fig = new_figure(width, height)
        ax = fig.add_axes((graph_left / width, bottom_in / height, _GRAPH / width,
                           row_in * (n + 0.6) / height))
    fig = ax.figure
    graph_width = ax.get_position().width * fig.get_figwidth()

    def at(inches_right_of_graph_left: float) -> float:
        return inches_right_of_graph_left / graph_width

    est = published["estimate"].to_numpy(dtype=float)
    lb = published["ci_lb"].to_numpy(dtype=float)
    ub = published["ci_ub"].to_numpy(dtype=float)
    ax.hlines(rows, lb.clip(-xlim, xlim), ub.clip(-xlim, xlim), color=INK, lw=1.0)
    ax.scatter(est, rows, marker="D", s=30, color=INK, zorder=3, gid="published-estimates")
    ax.set_xlim(-xlim, xlim)
    ax.set_ylim(0.4, n + 0.6)
    # the line of no effect spans the rows, not the headings above them
    ax.plot([0, 0], [0.4, n + 0.5], color=INK, lw=0.7, gid="zero-line")
    ax.set_yticks([])
    ax.set_xticks(np.linspace(-xlim, xlim, 5))
    ax.spines["left"].set_visible(False)
    ax.set_xlabel(plain_text(xlabel))

    tf = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    x_label = at(_MARGIN - graph_left)
    x_k = at(-0.2)
    x_ci = at(_GRAPH + _GAP)
    x_i2 = at(_GRAPH + _GAP + _CI + _I2)
    x_grade = at(_GRAPH + _GAP + _CI + _I2 + 0.15)
    head_y = n + 0.6

    def put(x, y, s, ha="left", va="center", **kw):
        ax.text(x, y, s, transform=tf, ha=ha, va=va, clip_on=False, **kw)

    heads = [(x_label, "Contrast", "left"), (x_k, "k", "right"), (x_ci, "SMD [95% CI]", "left"),
             (x_i2, "I\u00b2", "right")] + ([(x_grade, "GRADE", "left")] if grade else [])
    for x, head, ha in heads:
        put(x, head_y, head, ha=ha, va="bottom", fontweight="bold")
    for y, label, (_, r) in zip(rows, labels, published.iterrows(), strict=True):
        put(x_label, y, label, linespacing=1.1)
        if "k" in r and pd.notna(r["k"]):
            put(x_k, y, f"{int(r['k'])}", ha="right")
        put(x_ci, y, f"{r['estimate']:.2f} [{r['ci_lb']:.2f}, {r['ci_ub']:.2f}]")
        if "I2" in r and pd.notna(r["I2"]):
            put(x_i2, y, f"{r['I2']:.0f}%", ha="right")
        if grade and pd.notna(r.get("certainty")):
            put(x_grade, y, plain_text(r["certainty"]))
    if source:
        fig.text(_MARGIN / fig.get_figwidth(), 0.08 / fig.get_figheight(),
                 wrap_to_width(plain_text(source), fig.get_figwidth() - 2 * _MARGIN, 7), fontsize=7,
                 color="#555555", ha="left", va="bottom")
    if synthetic:
        add_synthetic_banner(fig)
    return fig


def _wrapped(label) -> str:
    """The label on at most two lines of the label column; a longer one is cut with an ellipsis."""
    lines = wrap_to_width(plain_text(label), _LABEL, _SIZE).split("\n")
    if len(lines) <= 2:
        return "\n".join(lines)
    second = " ".join(lines[1:])
    while second and text_width(second + "\u2026", _SIZE) > _LABEL:
        second = second[:-1]
    return f"{lines[0]}\n{second.rstrip()}\u2026"
