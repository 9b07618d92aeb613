"""Meta-regression bubble plot (as metafor's `regplot`, Viechtbauer 2010): observed effects against one
moderator, bubble area proportional to the study's weight, the fitted line with its 95% CI band. Other
moderators are held at their weighted mean.
"""

from __future__ import annotations

import numpy as np

from metaexercise.plots.style import (
    INK,
    PREDICTION,
    add_synthetic_banner,
    figure_and_axes,
    plain_text,
    styled,
)


@styled
def bubble_plot(fit, moderator: int = 1, *, xlabel: str | None = None, title: str | None = None,
                synthetic: bool = False, ax=None):
    """Bubble plot of `fit` (an RMAResult with moderators) against column `moderator` of `fit.X`."""
    X = np.asarray(fit.X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2 or not 1 <= moderator < X.shape[1]:
        raise ValueError(f"bubble_plot needs a meta-regression fit and a moderator column in 1..{X.shape[1] - 1}; "
                         f"got moderator={moderator} for X of shape {X.shape}")
    yi = np.asarray(fit.yi, dtype=float)
    w = np.asarray(fit.weights, dtype=float)
    x = X[:, moderator]
    own = ax is None
    fig, ax = figure_and_axes(ax, 5.6, 4.4)
    if own:
        fig.subplots_adjust(top=0.84 if synthetic else 0.92, bottom=0.12, left=0.14, right=0.97)
    ax.scatter(x, yi, s=15 + 400 * w / w.max(), facecolor="#bfbfbf", edgecolor=INK, lw=0.6, alpha=0.85,
               zorder=3, gid="bubbles")
    grid = np.linspace(x.min(), x.max(), 60)
    others = (w[:, None] * X[:, 1:]).sum(axis=0) / w.sum()
    newmods = np.tile(others, (grid.size, 1))
    newmods[:, moderator - 1] = grid
    pred = fit.predict(newmods=newmods)
    ax.plot(grid, np.asarray(pred.pred), color=INK, lw=1.2, gid="regression-line")
    ax.plot(grid, np.asarray(pred.ci_lb), color=INK, lw=0.8, ls="--")
    ax.plot(grid, np.asarray(pred.ci_ub), color=INK, lw=0.8, ls="--")
    ax.axhline(0, color=PREDICTION, lw=0.6, ls=":")
    ax.set_xlabel(plain_text(xlabel or f"moderator {moderator}"))
    ax.set_ylabel("Standardised mean difference (Hedges' g)")
    b, pv = float(np.ravel(fit.beta)[moderator]), float(np.ravel(fit.pval)[moderator])
    ax.text(0.02, 0.02, f"slope = {b:.3f} (p = {pv:.3g}); k = {fit.k}", transform=ax.transAxes, fontsize=7.5,
            gid="bubble-slope")
    if title:
        ax.set_title(plain_text(title), loc="left", fontweight="bold", pad=6)
    if synthetic:
        add_synthetic_banner(fig)
    return fig
