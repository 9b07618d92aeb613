"""RevMan-style forest plot of a random-effects fit (the column set of RevMan 5, Cochrane Handbook §10.2.4
and metafor's `forest.rma` (Viechtbauer 2010) for the graph).

Columns, left to right: study; experimental arm Mean/SD/Total; comparator arm Mean/SD/Total (on the scale the
analysis pools); Weight (%, 1 dp); "Std. Mean Difference IV, Random (REML), 95% CI" as text; the graph
(squares with area proportional to weight, CI lines with arrows past the symmetric axis, pooled diamond,
95% prediction interval bar). Below: RevMan's heterogeneity line with the REML tau^2 and its Q-profile CI,
the test for overall effect and the favours labels (the project's review.yaml `labels`; which side favours
the experimental arm follows the outcome's direction of benefit).

Ratio measures (`metaexercise.engine.measures.RATIO_MEASURES`: RR, OR, PETO, IRR, ROM, ...) are pooled as log
ratios; given such a ``measure`` the graph is drawn as metafor's ``forest(res, atransf=exp)`` and RevMan draw it:
a log x axis with back-transformed tick labels (0.25, 0.5, 1, 2, 4, ...), the line of no effect at 1, and the
study and pooled estimates printed as ratios. Other measures (SMD, MD, RD, ...) keep the linear axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import ticker, transforms
from matplotlib.patches import Polygon

from metaexercise.engine.measures import MEASURE_LABELS, RATIO_MEASURES
from metaexercise.plots.inputs import PooledEffect
from metaexercise.plots.style import (
    DIAMOND,
    INK,
    MUTED,
    PREDICTION,
    add_synthetic_banner,
    format_p,
    new_figure,
    plain_text,
    styled,
    wrap_to_width,
)

#: Text columns, as (key, heading, inches left of the graph, alignment).
_ARM_COLUMNS: tuple[tuple[str, str, float, str], ...] = (
    ("m1i", "Mean", 5.4, "right"),
    ("sd1i", "SD", 4.95, "right"),
    ("n1i", "Total", 4.5, "right"),
    ("m2i", "Mean", 3.9, "right"),
    ("sd2i", "SD", 3.45, "right"),
    ("n2i", "Total", 3.0, "right"),
)
_STUDY_X = 7.8
_LABEL_CHARS = 30
_WEIGHT_X = 2.4
_EFFECT_X = 0.15
_GRAPH_WIDTH = 3.0
#: Widest an arm's heading may be (inches; the arms' centres are 1.5 in apart): longer ones wrap.
_ARM_HEADING_WIDTH = 1.35
_HEADING_SIZE = 9.0
#: Rows (data units) one more heading line takes.
_LINE_ROWS = 0.75


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or pd.isna(value):
        return ""
    return format(value, spec)


def _short(label: object) -> str:
    text = plain_text(label)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "\u2026"


def _ci_text(est: float, lb: float, ub: float) -> str:
    return f"{est:.2f} [{lb:.2f}, {ub:.2f}]"


#: Lower-cased names of the ratio measures, so a label such as "Risk Ratio" also selects the log axis.
_RATIO_LABELS = frozenset(MEASURE_LABELS[m].lower() for m in RATIO_MEASURES if m in MEASURE_LABELS)


def is_ratio_measure(measure: object) -> bool:
    """True for a ratio measure given by metafor's code ("RR", "OR", "PETO", "IRR", "ROM", ...: the engine's
    `RATIO_MEASURES`) or by its name ("Risk Ratio", "Odds Ratio", ...; any case)."""
    if not isinstance(measure, str):
        return False
    return measure in RATIO_MEASURES or measure.strip().lower() in _RATIO_LABELS


def measure_label(measure: str) -> str:
    """The heading for ``measure``: metafor's code spelled out ("RR" -> "Risk Ratio"), a name as given."""
    return MEASURE_LABELS.get(measure, measure)


#: Tick sequences for a log-ratio axis with the most ticks each may put in range, tried in order (RevMan's
#: scales: 0.5 1 2, 0.1 0.2 0.5 1 2 5 10, 0.01 0.1 1 10 100; powers of 2 as metafor's examples, 0.25 ... 4).
_TICK_FAMILIES: tuple[tuple[tuple[float, ...], int], ...] = (
    (tuple(2.0**j for j in range(-10, 11)), 5),
    (tuple(m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)), 7),
    (tuple(10.0**e for e in range(-6, 7)), 7),
    ((0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5, 2.0), 7),
)


def ratio_ticks(lo: float, hi: float) -> list[float]:
    """Round back-transformed tick positions between ``lo`` and ``hi`` (ratios > 0), 1 among them when it is in
    range: powers of 2 (0.25, 0.5, 1, 2, 4) while at most 5 fit, else 1-2-5 steps, else powers of 10; narrow
    axes (within 0.5 to 2) get steps of 0.1 near 1."""
    for family, most in _TICK_FAMILIES:
        ticks = [t for t in family if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if 3 <= len(ticks) <= most:
            return ticks
    decades = [t for t in _TICK_FAMILIES[2][0] if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return decades[:: -(-len(decades) // 7)] if decades else [lo, hi]


def tick_label(t: float) -> str:
    """0.25 -> "0.25", 2.0 -> "2", 1000.0 -> "1000" (never scientific notation)."""
    return f"{t:.6f}".rstrip("0").rstrip(".") if t < 1 else f"{t:.0f}"


def set_ratio_axis(ax, lo: float, hi: float) -> None:
    """A log x axis from ``lo`` to ``hi`` (ratios) with `ratio_ticks` labelled as plain numbers, no minor ticks
    (matplotlib would otherwise label some of them on narrow log axes)."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = ratio_ticks(lo, hi)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([tick_label(t) for t in ticks]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def heterogeneity_text(fit, tau2_ci: Sequence[float] | None = None) -> str:
    """RevMan's heterogeneity line, with the fit's tau^2 estimator named and its Q-profile CI if given."""
    if fit.k < 2:
        return "Heterogeneity: Not applicable"
    ci = f" [{tau2_ci[0]:.2f}, {tau2_ci[1]:.2f}]" if tau2_ci is not None else ""
    qp = "; Q-profile 95% CI" if tau2_ci is not None else ""
    return (
        f"Heterogeneity: Tau\u00b2 = {fit.tau2:.2f}{ci} ({fit.method}{qp}); "
        f"Chi\u00b2 = {fit.QE:.2f}, df = {fit.k - fit.p} ({format_p(fit.QEp, revman=True)}); "
        f"I\u00b2 = {fit.I2:.0f}%"
    )


def overall_effect_text(fit) -> str:
    """RevMan's "Test for overall effect" line (Z unsigned, 2 dp); t with df under Knapp-Hartung."""
    stat = float(np.asarray(fit.zval).ravel()[0])
    p = float(np.asarray(fit.pval).ravel()[0])
    if getattr(fit, "test", "z") == "knha":
        return f"Test for overall effect: t = {abs(stat):.2f}, df = {fit.ddf} ({format_p(p, revman=True)})"
    return f"Test for overall effect: Z = {abs(stat):.2f} ({format_p(p, revman=True)})"


def _tau2_ci(fit):
    """The Q-profile CI of tau^2: a `PooledEffect`'s stored one, else `fit.confint()` (HeterogeneityCI.tau2 =
    (estimate, lb, ub)); None when it cannot be computed (e.g. k = 1 or a fixed tau^2)."""
    if isinstance(fit, PooledEffect):
        return fit.tau2_ci
    if fit.k < 2 or getattr(fit, "tau2_fixed", False):
        return None
    try:
        _est, lb, ub = fit.confint().tau2
    except Exception:  # noqa: BLE001 - a missing CI only drops the bracket from the text
        return None
    return float(lb), float(ub)


@styled
def forest_plot(
    fit,
    studies: pd.DataFrame | None = None,
    *,
    comparator: str = "comparator",
    experimental: str = "Experimental",
    favours: tuple[str, str] = ("Favours experimental", "Favours control"),
    measure: str = "Std. Mean Difference",
    title: str | None = None,
    synthetic: bool = False,
    tau2_ci: Sequence[float] | None | str = "auto",
    xlim: float = 2.0,
    ax=None,
):
    """Draw the forest plot of `fit` and return the Figure. `fit` is a `PooledEffect` (the numbers
    `metaexercise run` stores in results/; no fit object needed) or an intercept-only RMAResult.

    `studies` has one row per study in the fit's order: a `study` label and optionally the arms' `m1i`,
    `sd1i`, `n1i` (experimental) and `m2i`, `sd2i`, `n2i` (comparator) on the pooled scale. `tau2_ci` is the
    Q-profile CI of tau^2; "auto" takes the PooledEffect's stored CI, or asks an RMAResult's `confint()`.
    `experimental` and `comparator` head the arms' columns; `favours` = (left, right) labels under the axis
    (left = negative effects); `measure` names the effect ("Std. Mean Difference", "Mean Difference"): all from
    the project's review.yaml `labels`. `measure` may also be metafor's code ("SMD", "RR", "OR", ...): a ratio
    measure (code or name, see `is_ratio_measure`) draws the log axis with back-transformed labels, the null
    line at 1 and the estimates as ratios; the fit's yi, estimate and intervals are then log ratios, and
    `xlim` is the half-width of the axis on the log scale (2.0: ratios from 0.14 to 7.4). `synthetic=True`
    stamps the replica banner.
    """
    yi = np.asarray(fit.yi, dtype=float)
    vi = np.asarray(fit.vi, dtype=float)
    k = yi.size
    weights = np.asarray(fit.weights, dtype=float)
    if studies is None:
        studies = pd.DataFrame({"study": [f"Study {i + 1}" for i in range(k)]})
    if len(studies) != k:
        raise ValueError(f"forest_plot: the fit has k = {k} studies but `studies` has {len(studies)} rows")
    if tau2_ci == "auto":
        tau2_ci = _tau2_ci(fit)
    ratio = is_ratio_measure(measure)
    label = measure_label(measure)
    # x positions on the drawn axis: ratios (exp of the log-scale numbers) on a log axis, else as they are
    tx = np.exp if ratio else (lambda x: x)

    rows = np.arange(k, 0, -1, dtype=float)  # first study on top
    y_total, y_pi = -0.6, -1.6
    # the arms' headings wrap to their columns' width (never run into each other); the header grows with them
    arm_heads = [wrap_to_width(plain_text(h), _ARM_HEADING_WIDTH, _HEADING_SIZE, "bold")
                 for h in (experimental, comparator)]
    extra = _LINE_ROWS * (max(h.count("\n") for h in arm_heads))
    if ax is None:
        height = 2.6 + 0.22 * (k + 6 + extra)
        fig = new_figure(_STUDY_X + _GRAPH_WIDTH + 0.4, height)
        left = (_STUDY_X + 0.1) / fig.get_figwidth()
        bottom = 1.35 / height
        top = 1 - (0.95 if synthetic or title else 0.6) / height
        ax = fig.add_axes((left, bottom, _GRAPH_WIDTH / fig.get_figwidth(), top - bottom))
    fig = ax.figure
    ax_width_in = ax.get_position().width * fig.get_figwidth()

    def col(inches_left: float) -> float:
        return -inches_left / ax_width_in

    text_tf = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    ax.set_ylim(-2.3, k + 2.6 + extra)
    if ratio:
        set_ratio_axis(ax, float(tx(-xlim)), float(tx(xlim)))
    else:
        ax.set_xlim(-xlim, xlim)
        ax.set_xticks(np.linspace(-xlim, xlim, 5))
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    # the line of no effect runs from the axis up to the rule under the headings, not through them
    null = float(tx(0.0))
    ax.plot([null, null], [-2.3, k + 0.55], color=INK, lw=0.8, zorder=1, gid="zero-line")

    def put(x, y, s, ha="left", va="center", **kw):
        ax.text(x, y, s, transform=text_tf, ha=ha, va=va, clip_on=False, **kw)

    # headings: the upper row's last lines share one baseline, so wrapped arm headings grow upwards
    y_h1, y_h2 = k + 1.62, k + 1.0
    put(col(_STUDY_X), y_h2, "Study or Subgroup", fontweight="bold")
    for x, head in zip((4.95, 3.45), arm_heads, strict=True):
        put(col(x), y_h1, head, ha="center", fontweight="bold", va="baseline", multialignment="center",
            gid="arm-heading")
    for _key, head, x, ha in _ARM_COLUMNS:
        put(col(x), y_h2, head, ha=ha, fontweight="bold")
    put(col(_WEIGHT_X), y_h2, "Weight", ha="right", fontweight="bold")
    put(col(_EFFECT_X), y_h1, plain_text(label), ha="right", fontweight="bold", va="baseline")
    put(col(_EFFECT_X), y_h2, "IV, Random (REML), 95% CI", ha="right", fontweight="bold")
    put(0.5, y_h1, plain_text(label), ha="center", fontweight="bold", va="baseline")
    put(0.5, y_h2, "IV, Random (REML), 95% CI", ha="center", fontweight="bold")
    ax.axhline(k + 0.55, xmin=col(_STUDY_X), xmax=1.0, color=INK, lw=0.6, clip_on=False)

    # study rows
    sei = np.sqrt(vi)
    lb, ub = yi - 1.959963984540054 * sei, yi + 1.959963984540054 * sei
    for i in range(k):
        r = studies.iloc[i]
        y = rows[i]
        put(col(_STUDY_X), y, _short(r.get("study", f"Study {i + 1}")))
        for key, _head, x, ha in _ARM_COLUMNS:
            spec = "d" if key.startswith("n") else ".2f"
            val = r.get(key, None)
            if spec == "d" and val is not None and not pd.isna(val):
                val = int(round(float(val)))
            put(col(x), y, _fmt(val, spec), ha=ha)
        put(col(_WEIGHT_X), y, f"{weights[i]:.1f}%", ha="right")
        put(col(_EFFECT_X), y, _ci_text(*tx(np.array([yi[i], lb[i], ub[i]]))), ha="right")
    sizes = 12 + 140 * weights / weights.max()
    ax.scatter(tx(yi.clip(-xlim, xlim)), rows, s=sizes, marker="s", color=INK, zorder=3, gid="study-squares")
    for i in range(k):
        lo, hi = max(lb[i], -xlim), min(ub[i], xlim)
        ax.plot(tx(np.array([lo, hi])), [rows[i], rows[i]], color=INK, lw=0.9, zorder=2, gid=f"study-ci-{i}")
        if lb[i] < -xlim:
            ax.plot([tx(-xlim)], [rows[i]], marker="<", color=INK, ms=5, clip_on=False, gid="ci-arrow")
        if ub[i] > xlim:
            ax.plot([tx(xlim)], [rows[i]], marker=">", color=INK, ms=5, clip_on=False, gid="ci-arrow")

    # pooled rows
    est, clb, cub = float(fit.estimate), float(np.ravel(fit.ci_lb)[0]), float(np.ravel(fit.ci_ub)[0])
    ax.axhline(0.3, xmin=col(_STUDY_X), xmax=1.0, color=INK, lw=0.4, clip_on=False)
    put(col(_STUDY_X), y_total, "Total (95% CI)", fontweight="bold")
    for key, x in (("n1i", 4.5), ("n2i", 3.0)):
        if key in studies.columns and studies[key].notna().all():
            put(col(x), y_total, f"{int(round(studies[key].astype(float).sum()))}", ha="right", fontweight="bold")
    put(col(_WEIGHT_X), y_total, "100.0%", ha="right", fontweight="bold")
    put(col(_EFFECT_X), y_total, _ci_text(*tx(np.array([est, clb, cub]))), ha="right", fontweight="bold")
    diamond = Polygon(
        [(tx(max(clb, -xlim)), y_total), (tx(est), y_total + 0.38), (tx(min(cub, xlim)), y_total),
         (tx(est), y_total - 0.38)],
        closed=True,
        facecolor=DIAMOND,
        edgecolor=DIAMOND,
        zorder=3,
        gid="pooled-diamond",
    )
    ax.add_patch(diamond)
    pi_lb, pi_ub = float(fit.pi_lb), float(fit.pi_ub)
    put(col(_STUDY_X), y_pi, "95% prediction interval", color=PREDICTION)
    put(col(_EFFECT_X), y_pi, "[{:.2f}, {:.2f}]".format(*tx(np.array([pi_lb, pi_ub]))), ha="right",
        color=PREDICTION)
    ax.errorbar(
        [tx(est)],
        [y_pi],
        xerr=[[tx(est) - tx(max(pi_lb, -xlim))], [tx(min(pi_ub, xlim)) - tx(est)]],
        fmt="none",
        ecolor=PREDICTION,
        elinewidth=2.2,
        capsize=4,
        gid="prediction-interval",
    )

    # texts under the axis
    for j, line in enumerate((heterogeneity_text(fit, tau2_ci), overall_effect_text(fit))):
        ax.annotate(
            line,
            xy=(col(_STUDY_X), 0),
            xycoords="axes fraction",
            xytext=(0, -14 - 12 * j),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=8,
            gid=f"summary-line-{j}",
        )
    ax.annotate(_two_lines(favours[0]), xy=(0.47, 0), xycoords="axes fraction",
                xytext=(0, -22), textcoords="offset points", ha="right", va="top", fontsize=8,
                color=MUTED, gid="favours-left")
    ax.annotate(_two_lines(favours[1]), xy=(0.53, 0), xycoords="axes fraction",
                xytext=(0, -22), textcoords="offset points", ha="left", va="top", fontsize=8,
                color=MUTED, gid="favours-right")
    if title:
        fig.text(0.01, 0.985 if not synthetic else 0.94, plain_text(title), ha="left", va="top",
                 fontsize=10, fontweight="bold")
    if synthetic:
        add_synthetic_banner(fig)
    return fig


def _two_lines(label: str) -> str:
    """"Favours control" -> "Favours\ncontrol": the first word on its own line, as RevMan prints it."""
    text = plain_text(label).strip()
    head, _, rest = text.partition(" ")
    return f"{head}\n{rest}" if rest else text
