"""Contour-enhanced funnel plot (Peters et al. 2008, J Clin Epidemiol 61:991-996), as metafor's
`funnel(res, level=c(90, 95, 99), shade=c("white", "gray55", "gray75"), refline=0, legend=TRUE)`.

The contours are centred on the null (SMD = 0), not on the pooled estimate: a study in a shaded band has a
two-sided p-value in that band. The y-axis is the standard error, reversed (0 on top). Egger's regression test
(metafor `regtest`) and the Begg-Mazumdar rank test (`ranktest`) are printed under the panel when given, below
the legend of the shades: outside the axes, so neither can cover a study.

For a ratio measure (``measure="RR"``, "OR", "Risk Ratio", ...: see `metaexercise.plots.forest.is_ratio_measure`)
the log ratios are drawn back-transformed on a log x axis (metafor's ``funnel(res, atransf=exp)``): the null line
and the contours' apex at 1, tick labels 0.25, 0.5, 1, 2, 4, ...; on that axis the contours stay straight lines.
"""

from __future__ import annotations

import numpy as np
from matplotlib import transforms
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats

from metaexercise.plots.forest import is_ratio_measure, measure_label, set_ratio_axis
from metaexercise.plots.style import INK, add_synthetic_banner, figure_and_axes, format_p, styled

_SMD_XLABEL = "Standardised mean difference (Hedges' g)"

#: metafor's shades for levels (90, 95, 99); outside the outermost contour the panel is light grey.
_SHADES = ("white", "#8c8c8c", "#bfbfbf")
_OUTSIDE = "#e6e6e6"
#: Points below the axes' bottom edge where the legend starts: clear of the tick labels and the x-axis label.
_BELOW_AXIS = 36.0
_LEGEND_SIZE = 7.0
_LEGEND_COLUMNS = 3


def _test_lines(regtest, ranktest) -> list[str]:
    lines = []
    if regtest is not None:
        stat = getattr(regtest, "zval", None)
        name = "z"
        if stat is None:
            stat, name = regtest.tval, "t"
        lines.append(f"Egger's test: {name} = {float(stat):.3f}, {format_p(float(regtest.pval))}")
    if ranktest is not None:
        lines.append(f"Rank test: Kendall's tau = {float(ranktest.tau):.3f}, {format_p(float(ranktest.pval))}")
    return lines


@styled
def funnel_plot(
    fit,
    *,
    regtest=None,
    ranktest=None,
    levels: tuple[float, ...] = (90, 95, 99),
    title: str | None = None,
    xlabel: str | None = None,
    synthetic: bool = False,
    measure: str | None = None,
    ax=None,
):
    """Draw the contour-enhanced funnel of `fit` (yi against sqrt(vi), a line at `fit.estimate`) and return the
    Figure. `fit` is a `metaexercise.plots.inputs.PooledEffect` (results/ rows) or an RMAResult; `regtest` and
    `ranktest` need only `zval` (or `tval`) / `tau` and `pval`. `measure` (metafor's code or the measure's
    name) selects the log ratio axis for ratio measures; `xlabel` defaults to the SMD's name, or for a ratio
    measure to its name "(log scale)"."""
    ratio = is_ratio_measure(measure)
    if xlabel is None:
        xlabel = f"{measure_label(measure)} (log scale)" if ratio else _SMD_XLABEL
    tx = np.exp if ratio else (lambda x: x)
    yi = np.asarray(fit.yi, dtype=float)
    sei = np.sqrt(np.asarray(fit.vi, dtype=float))
    own = ax is None
    lines = _test_lines(regtest, ranktest)
    height = 5.6 + 0.25 * len(lines)  # the panel keeps 3.7 in; legend and tests go under it
    fig, ax = figure_and_axes(ax, 5.6, height)
    if own:
        fig.subplots_adjust(top=1 - (0.5 if synthetic else 0.3) / height,
                            bottom=(1.55 + 0.25 * len(lines)) / height, left=0.13, right=0.97)
    se_max = float(sei.max()) * 1.08
    se_grid = np.array([0.0, se_max])
    levels = tuple(sorted(levels))
    z = [stats.norm.ppf(0.5 + lv / 200.0) for lv in levels]
    x_half = max(z[-1] * se_max, float(np.abs(yi).max()) * 1.05)
    ax.set_facecolor(_OUTSIDE)
    # Outermost band first, then inner ones on top, so each band shows its own shade.
    for zi, shade in reversed(list(zip(z, _SHADES, strict=False))):
        ax.fill_betweenx(se_grid, tx(-zi * se_grid), tx(zi * se_grid), color=shade, lw=0, zorder=1)
    ax.axvline(float(tx(0.0)), color=INK, lw=0.7, ls=":", zorder=2)
    ax.axvline(float(tx(float(fit.estimate))), color=INK, lw=0.9, zorder=2, gid="pooled-estimate-line")
    ax.scatter(tx(yi), sei, s=22, color=INK, zorder=3, gid="funnel-studies")
    ax.set_ylim(se_max, 0)
    if ratio:
        set_ratio_axis(ax, float(tx(-x_half)), float(tx(x_half)))
    else:
        ax.set_xlim(-x_half, x_half)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Standard error")
    bands = [f"{1 - levels[0] / 100:.2f} < p \u2264 1.00"]
    for lo, hi in zip(levels[:-1], levels[1:], strict=False):
        bands.append(f"{1 - hi / 100:.2f} < p \u2264 {1 - lo / 100:.2f}")
    bands.append(f"0.00 < p \u2264 {1 - levels[-1] / 100:.2f}")
    handles = [Patch(facecolor=s, edgecolor="#777777", label=b) for s, b in zip((*_SHADES, _OUTSIDE), bands,
                                                                                  strict=False)]
    handles.append(Line2D([], [], marker="o", ls="none", color=INK, label="Studies"))
    # under the x-axis label, outside the panel: a legend or a note inside it would cover studies
    below = transforms.offset_copy(ax.transAxes, fig=fig, y=-_BELOW_AXIS, units="points")
    rows = -(-len(handles) // _LEGEND_COLUMNS)
    # matplotlib fills a legend column by column; this order reads row by row, shades from light to dark
    order = [r * _LEGEND_COLUMNS + c for c in range(_LEGEND_COLUMNS) for r in range(rows)
             if r * _LEGEND_COLUMNS + c < len(handles)]
    ax.legend(handles=[handles[i] for i in order], loc="upper left", bbox_to_anchor=(0.0, 0.0), bbox_transform=below, frameon=True,
              fontsize=_LEGEND_SIZE, ncol=_LEGEND_COLUMNS, borderaxespad=0.0, columnspacing=1.2)
    if lines:
        legend_height = _LEGEND_SIZE * (rows * 1.0 + (rows - 1) * 0.5 + 2 * 0.4) + 4  # rcParams legend.* spacing
        ax.annotate("\n".join(lines), xy=(0.0, 0.0), xycoords="axes fraction",
                    xytext=(3, -_BELOW_AXIS - legend_height - 8), textcoords="offset points", ha="left", va="top",
                    fontsize=7.5, gid="funnel-tests")
    if title:
        ax.set_title(title, loc="left", fontweight="bold", pad=6)
    if synthetic:
        add_synthetic_banner(fig)
    return fig
