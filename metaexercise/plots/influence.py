"""Outlier and influence plot: studentized deleted residuals and Cook's distances per study, with the
thresholds metafor's `reporter.rma.uni` (and the review) use: a potential outlier has an absolute rstudent above the
100(1 - 0.05/(2k))th normal percentile (Bonferroni, two-sided alpha = 0.05); an influential study has a Cook's
distance above the median plus six times the interquartile range (Viechtbauer & Cheung 2010,
Res Synth Methods 1:112-125).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.plots.style import INK, PREDICTION, add_synthetic_banner, new_figure, plain_text, styled


def outlier_threshold(k: int, alpha: float = 0.05) -> float:
    """Bonferroni threshold for the absolute rstudent: qnorm(1 - alpha / (2k))."""
    return float(stats.norm.ppf(1 - alpha / (2 * k)))


def cooks_threshold(cooks_d) -> float:
    """Median plus six times the interquartile range of the Cook's distances (metafor's reporter rule)."""
    d = np.asarray(cooks_d, dtype=float)
    d = d[np.isfinite(d)]
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    return float(med + 6 * (q3 - q1))


@styled
def influence_plot(infl: pd.DataFrame, labels=None, *, title: str | None = None, synthetic: bool = False,
                   axes=None):
    """Two panels (rstudent, Cook's distance) from `influence(fit)`'s table; flagged studies drawn in red.

    `axes` may be a pair of matplotlib axes to draw into; otherwise a new Figure is made.
    """
    k = len(infl)
    labels = [plain_text(x) for x in (labels if labels is not None else infl.index)]
    own = axes is None
    if own:
        fig = new_figure(7.2, 1.6 + 0.2 * k)
        axes = fig.subplots(1, 2, sharey=True)
    fig = axes[0].figure
    rows = np.arange(k, 0, -1)
    rst = infl["rstudent"].to_numpy(dtype=float)
    cook = infl["cooks_d"].to_numpy(dtype=float)
    t_out = outlier_threshold(k)
    t_cook = cooks_threshold(cook)
    out = np.abs(rst) > t_out
    inf = cook > t_cook
    for ax, values, flag, name in ((axes[0], rst, out, "rstudent"), (axes[1], cook, inf, "cooks")):
        colours = np.where(flag, PREDICTION, INK)
        ax.hlines(rows, 0, values, color="#999999", lw=0.8)
        ax.scatter(values, rows, c=colours, s=18, zorder=3, gid=f"influence-{name}")
    axes[0].axvline(t_out, color=PREDICTION, ls="--", lw=0.8, gid="threshold-rstudent")
    axes[0].axvline(-t_out, color=PREDICTION, ls="--", lw=0.8)
    axes[0].axvline(0, color=INK, lw=0.6)
    axes[1].axvline(t_cook, color=PREDICTION, ls="--", lw=0.8, gid="threshold-cooks")
    axes[0].set_yticks(rows, labels)
    axes[0].set_xlabel(f"Studentized deleted residual\n(dashed: \u00b1{t_out:.2f}, Bonferroni)")
    axes[1].set_xlabel(f"Cook's distance\n(dashed: {t_cook:.3g} = median + 6 IQR)")
    axes[0].set_ylim(0.3, k + 0.7)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold", y=0.97 if synthetic else 0.99)
    if synthetic:
        add_synthetic_banner(fig)
    if own:
        fig.subplots_adjust(top=1 - (0.75 if synthetic else 0.45) / fig.get_figheight(),
                            bottom=0.9 / fig.get_figheight(), left=0.28, wspace=0.08)
    return fig
