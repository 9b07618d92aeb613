"""The "forest of pooled results": a review's own published pooled SMDs with 95% CIs, one row per pooled
result (as recorded in the project's published registry, analyses/published.yaml).
Drawn from the published numbers themselves, so it is real and citable; nothing here is recomputed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metaexercise.plots.style import INK, add_synthetic_banner, new_figure, plain_text, styled

_REQUIRED = ("label", "estimate", "ci_lb", "ci_ub")


@styled
def pooled_forest(published: pd.DataFrame, *, source: str | None = None, xlim: float = 1.0,
                  xlabel: str = "SMD", synthetic: bool = False, ax=None):
    """One row per published pooled result: `label`, `estimate`, `ci_lb`, `ci_ub`, and optionally `k`,
    `I2` (percent) and `certainty` (GRADE word), drawn in the frame's order, top to bottom."""
    missing = [c for c in _REQUIRED if c not in published.columns]
    if missing:
        raise ValueError(f"pooled_forest: the published table lacks columns {missing}")
    n = len(published)
    rows = np.arange(n, 0, -1, dtype=float)
    if ax is None:
        fig = new_figure(12.0, 1.5 + 0.3 * n)
        ax = fig.add_axes((0.45, 0.9 / fig.get_figheight(), 0.25, 1 - 1.5 / fig.get_figheight()))
    fig = ax.figure
    est = published["estimate"].to_numpy(dtype=float)
    lb = published["ci_lb"].to_numpy(dtype=float)
    ub = published["ci_ub"].to_numpy(dtype=float)
    ax.hlines(rows, lb.clip(-xlim, xlim), ub.clip(-xlim, xlim), color=INK, lw=1.0)
    ax.scatter(est, rows, marker="D", s=30, color=INK, zorder=3, gid="published-estimates")
    ax.axvline(0, color=INK, lw=0.7)
    ax.set_xlim(-xlim, xlim)
    ax.set_ylim(0.4, n + 1.2)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlabel(plain_text(xlabel))
    from matplotlib import transforms

    tf = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    head_y = n + 0.8
    cols = ((-1.75, "Contrast", "left"), (-0.08, "k", "right"), (1.04, "SMD [95% CI]", "left"),
            (1.78, "I\u00b2", "right"), (1.85, "GRADE", "left"))
    for x, head, ha in cols:
        ax.text(x, head_y, head, transform=tf, ha=ha, va="center", fontweight="bold", clip_on=False)
    for y, (_, r) in zip(rows, published.iterrows(), strict=False):
        ax.text(-1.75, y, _short(r["label"]), transform=tf, ha="left", va="center", clip_on=False)
        if "k" in r and pd.notna(r["k"]):
            ax.text(-0.08, y, f"{int(r['k'])}", transform=tf, ha="right", va="center", clip_on=False)
        ax.text(1.04, y, f"{r['estimate']:.2f} [{r['ci_lb']:.2f}, {r['ci_ub']:.2f}]", transform=tf,
                ha="left", va="center", clip_on=False)
        if "I2" in r and pd.notna(r["I2"]):
            ax.text(1.78, y, f"{r['I2']:.0f}%", transform=tf, ha="right", va="center", clip_on=False)
        if "certainty" in r and pd.notna(r["certainty"]):
            ax.text(1.85, y, plain_text(r["certainty"]), transform=tf, ha="left", va="center", clip_on=False)
    if source:
        fig.text(0.01, 0.01, plain_text(source), fontsize=7, color="#555555", ha="left", va="bottom")
    if synthetic:
        add_synthetic_banner(fig)
    return fig


def _short(label, width: int = 62) -> str:
    text = plain_text(label)
    return text if len(text) <= width else text[: width - 1] + "\u2026"
