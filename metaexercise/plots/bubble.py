"""Meta-regression bubble plot (as metafor's `regplot`, Viechtbauer 2010): observed effects against one
moderator, bubble area proportional to the study's weight, the fitted line with its 95% CI band. Other
moderators are held at their weighted mean. The slope, its p-value and k are printed under the x-axis label,
outside the panel, where no bubble can be. Drawn from a `metaexercise.plots.inputs.BubbleData` (what
`metaexercise run` stores in results/bubble_studies.csv and bubble_lines.csv; the line is computed there with
the engine's `predict`, by `metaexercise.review.exhibits.regression_line`).
"""

from __future__ import annotations

from metaexercise.plots.inputs import BubbleData
from metaexercise.plots.style import (
    INK,
    PREDICTION,
    add_synthetic_banner,
    figure_and_axes,
    plain_text,
    styled,
)


@styled
def bubble_plot(data: BubbleData, *, xlabel: str | None = None, title: str | None = None,
                synthetic: bool = False, ax=None):
    """Bubble plot of one meta-regression against one moderator (`data`: a BubbleData)."""
    if not isinstance(data, BubbleData):
        raise TypeError(f"bubble_plot draws a BubbleData (results/bubble_*.csv), not {type(data).__name__}; "
                        "for a meta-regression fit, build one with metaexercise.review.exhibits.regression_line")
    x, yi, w = data.x, data.yi, data.weights
    own = ax is None
    height = 4.6
    fig, ax = figure_and_axes(ax, 5.6, height)
    if own:
        fig.subplots_adjust(top=1 - (0.5 if synthetic else 0.3) / height, bottom=0.85 / height, left=0.14,
                            right=0.97)
    ax.scatter(x, yi, s=15 + 400 * w / w.max(), facecolor="#bfbfbf", edgecolor=INK, lw=0.6, alpha=0.85,
               zorder=3, gid="bubbles")
    ax.plot(data.grid, data.pred, color=INK, lw=1.2, gid="regression-line")
    ax.plot(data.grid, data.ci_lb, color=INK, lw=0.8, ls="--")
    ax.plot(data.grid, data.ci_ub, color=INK, lw=0.8, ls="--")
    ax.axhline(0, color=PREDICTION, lw=0.6, ls=":")
    ax.set_xlabel(plain_text(xlabel or data.moderator))
    ax.set_ylabel("Standardised mean difference (Hedges' g)")
    ax.annotate(f"slope = {data.slope:.3f} (p = {data.pval:.3g}); k = {data.k}", xy=(0.0, 0.0),
                xycoords="axes fraction", xytext=(0, -36), textcoords="offset points", ha="left", va="top",
                fontsize=7.5, gid="bubble-slope")
    if title:
        ax.set_title(plain_text(title), loc="left", fontweight="bold", pad=6)
    if synthetic:
        add_synthetic_banner(fig)
    return fig
