"""Risk-of-bias figures in robvis' style (McGuinness & Higgins 2021, Res Synth Methods 12:55-61):
a traffic-light plot (one row per study, one disc per domain plus "Overall") and a summary bar plot (one
100%-stacked bar per domain, optionally weighted). One legend for the symbols throughout: Low "+",
Some concerns "−", High "×", No information "?" (robvis' Cochrane palette; RevMan uses "?" for unclear).

The review rated pain and disability together with five Cochrane RoB domains (Fleckenstein et al. 2022,
Methods "Study risk of bias assessment"), so there is one traffic light per study.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Circle, Patch, Rectangle

from metaexercise.plots.style import (
    JUDGEMENT_STYLE,
    add_synthetic_banner,
    new_figure,
    plain_text,
    styled,
    text_width,
)

#: The review's five domains, in its order, with the labels drawn on the figures.
REVIEW_DOMAINS: dict[str, str] = {
    "sequence generation": "Random sequence generation (selection bias)",
    "allocation concealment": "Allocation concealment (selection bias)",
    "blinding": "Blinding of participants, providers and outcome assessment",
    "incomplete outcome data": "Incomplete outcome data (attrition bias)",
    "selective reporting": "Selective reporting (reporting bias)",
}
OVERALL = "Overall"
#: Size (points) of the domain labels over the traffic light's columns.
_HEAD_SIZE = 8.0


def rob_wide(long: pd.DataFrame, overall: pd.Series | None = None, *, labels: pd.Series | None = None,
             domains=tuple(REVIEW_DOMAINS)) -> pd.DataFrame:
    """Turn the `risk_of_bias` sheet (study_id, domain, judgement) into one row per study, one column per
    domain plus "Overall" (from `overall`, indexed by study_id; missing = "no information")."""
    wide = long.pivot(index="study_id", columns="domain", values="judgement")
    wide = wide.reindex(columns=list(domains)).fillna("no information")
    if overall is not None:
        wide[OVERALL] = overall.reindex(wide.index).fillna("no information").to_numpy()
    if labels is not None:
        wide.index = [labels.get(s, s) for s in wide.index]
    return wide


def _check(wide: pd.DataFrame) -> None:
    bad = sorted({str(v) for v in wide.to_numpy().ravel()} - set(JUDGEMENT_STYLE))
    if bad:
        raise ValueError(f"risk-of-bias judgements must be one of {sorted(JUDGEMENT_STYLE)}; got {bad}")


def _legend_handles():
    return [Patch(facecolor=c, edgecolor="black", label=f"{g}  {lab}") for lab, c, g in JUDGEMENT_STYLE.values()]


@styled
def rob_traffic_light(wide: pd.DataFrame, *, synthetic: bool = False, ax=None):
    """Traffic-light plot: rows = studies (index), columns = domains then "Overall" (grey background)."""
    _check(wide)
    k, m = wide.shape
    cols = list(wide.columns)
    short = [f"D{j}" if c != OVERALL else OVERALL for j, c in enumerate(cols, start=1)]
    # Columns are `pitch` rows apart: wide enough that neighbouring labels ("D5", "Overall") never touch
    # (a row is 0.26 in; the discs stay round, the axes keep equal aspect).
    widest = max(text_width(a, _HEAD_SIZE) / 2 + text_width(b, _HEAD_SIZE) / 2
                 for a, b in zip(short, short[1:], strict=False)) if m > 1 else 0.0
    pitch = max(1.0, (widest + 0.1) / 0.26)
    xs = 1 + pitch * np.arange(m)
    if ax is None:
        fig = new_figure(max(7.0, 2.6 + 0.26 * pitch * m), 1.9 + 0.26 * k)
        ax = fig.add_axes((0.34, 1.35 / fig.get_figheight(), 0.62,
                           1 - (2.0 if synthetic else 1.7) / fig.get_figheight()))
    fig = ax.figure
    ax.set_xlim(1 - pitch / 2, xs[-1] + pitch / 2)
    ax.set_ylim(k + 0.5, 0.5)
    ax.set_aspect("equal", adjustable="box")
    if OVERALL in cols:
        x = xs[cols.index(OVERALL)]
        ax.add_patch(Rectangle((x - pitch / 2, 0.5), pitch, k, facecolor="#dddddd", edgecolor="none", zorder=0))
    for i, (_study, row) in enumerate(wide.iterrows(), start=1):
        for x, judgement in zip(xs, row.to_numpy(), strict=True):
            _label, colour, glyph = JUDGEMENT_STYLE[judgement]
            ax.add_patch(Circle((x, i), 0.38, facecolor=colour, edgecolor="black", lw=0.5, zorder=2,
                                gid="rob-disc"))
            ax.text(x, i, glyph, ha="center", va="center", fontsize=9, fontweight="bold", zorder=3)
    ax.set_xticks(xs, short, fontsize=_HEAD_SIZE)
    ax.xaxis.tick_top()
    ax.set_xlabel("Risk of bias domains")
    ax.xaxis.set_label_position("top")
    ax.set_yticks(range(1, k + 1), [plain_text(s) for s in wide.index])
    ax.set_ylabel("Study")
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    domains = [f"D{j}: {plain_text(REVIEW_DOMAINS.get(c, c))}" for j, c in enumerate(cols, start=1) if c != OVERALL]
    fig.legend(handles=_legend_handles(), loc="lower center", ncol=4, title="Judgement", frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.text(0.5, 0.6 / fig.get_figheight(), _pack(domains, fig.get_figwidth() - 0.4, 7), ha="center",
             va="bottom", fontsize=7)
    if synthetic:
        add_synthetic_banner(fig)
    return fig


def _pack(items: list[str], width: float, size: float) -> str:
    """`items` on as few lines as fit `width` inches, three spaces apart, none broken across lines."""
    lines: list[str] = []
    for item in items:
        if lines and text_width(f"{lines[-1]}   {item}", size) <= width:
            lines[-1] = f"{lines[-1]}   {item}"
        else:
            lines.append(item)
    return "\n".join(lines)


@styled
def rob_summary(wide: pd.DataFrame, weights=None, *, synthetic: bool = False, ax=None):
    """Summary bar plot: one 100%-stacked bar per domain ("Overall risk of bias" last, bold). With
    `weights` (one per study, e.g. REML weights) bars show the proportion of information, else of studies."""
    _check(wide)
    w = np.ones(len(wide)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(wide),):
        raise ValueError(f"rob_summary: {len(wide)} studies but {w.size} weights")
    cols = list(wide.columns)
    if ax is None:
        fig = new_figure(7.5, 1.4 + 0.42 * len(cols))
        ax = fig.add_axes((0.42, 1.0 / fig.get_figheight(), 0.55,
                           1 - (1.45 if synthetic else 1.15) / fig.get_figheight()))
    fig = ax.figure
    names = [REVIEW_DOMAINS.get(c, "Overall risk of bias" if c == OVERALL else c) for c in cols]
    for pos, col in enumerate(cols):
        left = 0.0
        for key, (_label, colour, _g) in JUDGEMENT_STYLE.items():
            share = 100 * w[(wide[col] == key).to_numpy()].sum() / w.sum()
            if share > 0:
                ax.barh(pos, share, left=left, color=colour, edgecolor="black", lw=0.6, height=0.7,
                        gid=f"rob-bar-{pos}")
            left += share
    ax.set_yticks(range(len(cols)), names)
    for lab, col in zip(ax.get_yticklabels(), cols, strict=False):
        if col == OVERALL:
            lab.set_fontweight("bold")
    ax.set_ylim(len(cols) - 0.4, -0.6)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("Share of information (weighted)" if weights is not None else "Share of studies")
    fig.legend(handles=_legend_handles(), loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
    if synthetic:
        add_synthetic_banner(fig)
    return fig
