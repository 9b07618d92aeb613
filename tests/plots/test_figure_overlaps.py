"""Every figure the book saves, drawn with representative inputs: no text box overlaps another text box or a
data artist (points, bars, data lines, reference lines), measured with matplotlib's own renderer.

What counts (after `fig.canvas.draw()`, in display pixels):

* text boxes: every visible, non-empty `Text` (tick labels only where the tick is drawn), widened to its
  bbox patch when it has one; a legend counts as one box (its frame), its entries are not checked one by one;
* data artists: the lines, markers, bars, patches and line collections of every axes. Area shading
  (`PolyCollection`, e.g. the funnel's contour bands) and patches drawn below zorder 1 (backgrounds) are not
  data; a text centred on a patch is that patch's label (a glyph in a risk-of-bias disc), not an overlap.

Boxes are shrunk by `TOLERANCE` pixels on every side first, so touching is not overlapping.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from scipy import stats

from metaexercise.plots.bubble import bubble_plot
from metaexercise.plots.forest import forest_plot
from metaexercise.plots.funnel import funnel_plot
from metaexercise.plots.influence import influence_plot
from metaexercise.plots.inputs import BubbleData, PooledEffect
from metaexercise.plots.pooled import pooled_forest
from metaexercise.plots.prisma import prisma_flow
from metaexercise.plots.rob import REVIEW_DOMAINS, rob_summary, rob_traffic_light
from metaexercise.searches.prisma import FIRST_EDITION

#: Pixels (at the figure's 100 dpi) each box is shrunk by before testing: touching is not overlapping.
TOLERANCE = 1.0


# ----------------------------------------------------------------------------------------------- geometry
class _Stat:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _drawn_tick_labels(fig) -> tuple[set, set]:
    """(every tick label, the ones drawn): ticks outside the view interval are not drawn."""
    every, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                labels = (tick.label1, tick.label2)
                every.update(labels)
                loc = tick.get_loc()
                if loc is not None and lo - 1e-9 * max(1.0, abs(hi - lo)) <= loc <= hi + 1e-9 * max(1.0, abs(hi - lo)):
                    drawn.update(label for label in labels if label.get_visible())
    return every, drawn


def _shrunk(bb: Bbox, by: float = TOLERANCE) -> Bbox | None:
    if bb.width <= 2 * by or bb.height <= 2 * by:
        return None
    return Bbox.from_extents(bb.x0 + by, bb.y0 + by, bb.x1 - by, bb.y1 - by)


def _describe(artist) -> str:
    if isinstance(artist, Text):
        return f"text {artist.get_text()!r}"
    if isinstance(artist, Legend):
        return "legend"
    gid = artist.get_gid()
    return f"{type(artist).__name__}" + (f" (gid {gid!r})" if gid else "") + (
        f" {artist.get_label()!r}" if not str(artist.get_label()).startswith("_") else "")


def text_boxes(fig, renderer) -> list[tuple[object, Bbox]]:
    """(artist, display bbox) of every text box drawn: texts, and each legend as one box."""
    every_tick, drawn_tick = _drawn_tick_labels(fig)
    legends = fig.findobj(Legend)
    in_legend = {id(t) for lg in legends for t in [*lg.get_texts(), lg.get_title()]}
    boxes = []
    for t in fig.findobj(Text):
        if id(t) in in_legend or not t.get_visible() or not t.get_text().strip():
            continue
        if t in every_tick and t not in drawn_tick:
            continue
        if t.get_alpha() == 0:
            continue
        bb = t.get_window_extent(renderer)
        patch = t.get_bbox_patch()
        if patch is not None:
            bb = Bbox.union([bb, patch.get_window_extent(renderer)])
        boxes.append((t, bb))
    for lg in legends:
        if not lg.get_visible():
            continue
        if lg.get_frame_on():
            boxes.append((lg, lg.get_window_extent(renderer)))
        else:  # no frame: what is drawn is the entries (handle, then text), not the padding around them
            text = Bbox.union([t.get_window_extent(renderer) for t in lg.get_texts()])
            handle = (lg.handlelength + lg.handletextpad) * lg.prop.get_size_in_points() * fig.dpi / 72.0
            boxes.append((lg, Bbox.from_extents(text.x0 - handle, text.y0, text.x1, text.y1)))
    return boxes


def data_shapes(fig) -> list[tuple[object, str, object]]:
    """(artist, kind, geometry) of the data drawn in every axes: kind "path" (a display-space Path and
    whether it is filled) or "points" (an (n, 2) array of centres and radii in pixels)."""
    px_per_pt = fig.dpi / 72.0
    shapes = []
    for ax in fig.axes:
        for line in ax.lines:
            if not line.get_visible():
                continue
            path = line.get_transform().transform_path(line.get_path())
            if line.get_linestyle() not in ("None", "none", "", " ") and len(path.vertices) > 1:
                shapes.append((line, "path", (path, False)))
            if line.get_marker() not in (None, "None", "none", "", " "):
                r = line.get_markersize() * px_per_pt / 2
                xy = path.vertices
                shapes.append((line, "points", (xy, np.full(len(xy), r))))
        for coll in ax.collections:
            if not coll.get_visible() or isinstance(coll, PolyCollection):
                continue
            if isinstance(coll, PathCollection):
                xy = coll.get_offset_transform().transform(coll.get_offsets())
                sizes = coll.get_sizes()
                sizes = np.resize(sizes if len(sizes) else [36.0], len(xy))
                shapes.append((coll, "points", (xy, np.sqrt(sizes) * px_per_pt / 2)))
            elif isinstance(coll, LineCollection):
                tf = coll.get_transform()
                for p in coll.get_paths():
                    shapes.append((coll, "path", (tf.transform_path(p), False)))
        for patch in ax.patches:
            if not patch.get_visible() or patch.get_zorder() < 1:
                continue
            path = patch.get_transform().transform_path(patch.get_path())
            shapes.append((patch, "path", (path, patch.get_fill())))
    return shapes


def _hits(box: Bbox, artist, kind: str, geometry) -> bool:
    clip = artist.get_clip_box() if artist.get_clip_on() else None
    if clip is not None:  # only the part of the artist inside its clip box is drawn
        box = Bbox.intersection(box, clip)
        if box is None:
            return False
    if kind == "points":
        xy, r = geometry
        if len(xy) == 0:
            return False
        # distance from each centre to the box, against the marker's radius
        dx = np.maximum(np.maximum(box.x0 - xy[:, 0], 0), xy[:, 0] - box.x1)
        dy = np.maximum(np.maximum(box.y0 - xy[:, 1], 0), xy[:, 1] - box.y1)
        return bool(np.any(np.hypot(dx, dy) < r))
    path, filled = geometry
    return bool(path.intersects_bbox(box, filled=filled))


def _labels(text, kind, geometry) -> bool:
    """A text centred inside a filled patch is its label (a judgement glyph in a disc)."""
    if kind != "path" or not isinstance(text, Text):
        return False
    path, filled = geometry
    box = text.get_window_extent()
    return filled and path.contains_point(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2))


def overlaps(fig) -> list[str]:
    """Every text box that overlaps another text box or a data artist, described."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(a, bb, _shrunk(bb)) for a, bb in text_boxes(fig, renderer)]
    found = []
    for (a, _, sa), (b, _, sb) in itertools.combinations(boxes, 2):
        if sa is not None and sb is not None and sa.overlaps(sb):
            found.append(f"{_describe(a)} overlaps {_describe(b)}")
    shapes = data_shapes(fig)
    for a, _bb, sa in boxes:
        if sa is None:
            continue
        for artist, kind, geometry in shapes:
            if _hits(sa, artist, kind, geometry) and not _labels(a, kind, geometry):
                found.append(f"{_describe(a)} overlaps {_describe(artist)}")
    return found


# ------------------------------------------------------------------------------------------- inputs
EXPERIMENTAL = "Individualized exercise"
COMPARATORS = ("active exercise", "passive / usual care")
FAVOURS = ("Favours individualized exercise", "Favours control")
AXIS = "Standardised mean difference (Hedges' g)"


def _replica(k: int, seed: int, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k trials like the replica's (SMDs around -0.3, 16-150 patients per arm): yi, vi, per-arm n."""
    rng = np.random.default_rng(seed)
    n = rng.integers(16, 150, size=k)
    vi = 2 / n + 0.3**2 / (4 * n)
    yi = rng.normal(-0.3, spread, size=k) + rng.normal(0, np.sqrt(vi))
    return yi, vi, n


def _pooled(yi, vi) -> PooledEffect:
    """A DerSimonian-Laird random-effects summary, in numpy (the figures draw numbers, not a fit)."""
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    k, w = len(yi), 1 / vi
    fixed = np.sum(w * yi) / w.sum()
    q = float(np.sum(w * (yi - fixed) ** 2))
    tau2 = max(0.0, (q - (k - 1)) / (w.sum() - np.sum(w**2) / w.sum()))
    ws = 1 / (vi + tau2)
    est, se = float(np.sum(ws * yi) / ws.sum()), float(np.sqrt(1 / ws.sum()))
    pi = 1.96 * np.sqrt(se**2 + tau2)
    return PooledEffect(yi=yi, vi=vi, weights=100 * ws / ws.sum(), estimate=est, ci_lb=est - 1.96 * se,
                        ci_ub=est + 1.96 * se, pi_lb=est - pi, pi_ub=est + pi, zval=est / se,
                        pval=float(2 * stats.norm.sf(abs(est / se))), tau2=tau2,
                        I2=max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0, QE=q,
                        QEp=float(stats.chi2.sf(q, k - 1)), method="DL", tau2_ci=(0.0, 3 * tau2 + 0.1))


def _arms(k: int, n, seed: int, names=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sd = rng.uniform(1.2, 2.6, size=k)
    return pd.DataFrame({
        "study": names if names is not None else [f"Replica-{i + 1:02d} {1990 + (7 * i) % 33}" for i in range(k)],
        "m1i": rng.normal(-2.0, 0.6, size=k), "sd1i": sd, "n1i": n,
        "m2i": rng.normal(-1.5, 0.6, size=k), "sd2i": sd, "n2i": n + rng.integers(-5, 6, size=k),
    })


def _judgements(k: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    levels = ["low", "some concerns", "high"]
    wide = pd.DataFrame(rng.choice(levels, size=(k, 5)), columns=list(REVIEW_DOMAINS),
                        index=[f"Replica-{i + 1:02d} {1990 + (7 * i) % 33}" for i in range(k)])
    wide["Overall"] = rng.choice(levels, size=k)
    wide.iloc[0, 0] = "no information"
    return wide


def _bubble(k: int, seed: int, moderator: str) -> BubbleData:
    """A weighted least-squares line with a 95% band, as bubble_lines.csv stores one."""
    rng = np.random.default_rng(seed)
    x = rng.integers(4, 26, size=k).astype(float)
    x[:3] = [4.0, 5.0, 25.0]
    yi, vi, _ = _replica(k, seed + 1, spread=0.45)
    yi = yi + 0.01 * (x - 10)
    w = 1 / (vi + 0.1)
    design = np.column_stack([np.ones(k), x])
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * yi)
    grid = np.linspace(x.min(), x.max(), 60)
    g = np.column_stack([np.ones(60), grid])
    pred, se = g @ beta, np.sqrt(np.einsum("ij,jk,ik->i", g, cov, g))
    slope_se = float(np.sqrt(cov[1, 1]))
    return BubbleData(x=x, yi=yi, weights=100 * w / w.sum(), grid=grid, pred=pred, ci_lb=pred - 1.96 * se,
                      ci_ub=pred + 1.96 * se, slope=float(beta[1]),
                      pval=float(2 * stats.norm.sf(abs(beta[1] / slope_se))), k=k, moderator=moderator)


def _published() -> pd.DataFrame:
    """The review's eight pooled results as printed (Fleckenstein et al. 2022, Results and appendix H)."""
    rows = [("Pain, vs active exercise, short term", 32, -0.28, -0.42, -0.14, 73, "low"),
            ("Pain, vs active exercise, long term", 16, -0.10, -0.21, 0.01, 41, "low"),
            ("Pain, vs passive / usual care, short term", 32, -0.40, -0.58, -0.22, 89, "very low"),
            ("Pain, vs passive / usual care, long term", 17, -0.14, -0.22, -0.07, 29, "moderate"),
            ("Disability, vs active exercise, short term", 32, -0.17, -0.31, -0.02, 69, "very low"),
            ("Disability, vs active exercise, long term", 15, -0.10, -0.24, 0.04, 37, "low"),
            ("Disability, vs passive / usual care, short term", 22, -0.18, -0.22, 0.01, 76, "low"),
            ("Disability, vs passive / usual care, long term", 15, -0.09, -0.18, 0.00, 24, "moderate")]
    return pd.DataFrame(rows, columns=["label", "k", "estimate", "ci_lb", "ci_ub", "I2", "certainty"])


def _scenarios() -> pd.DataFrame:
    labels = ["Pain, short term, vs active: mixed individualized exercise only",
              "Disability, short term, vs active: with a psychological intervention",
              "Pain, short term, vs active: risk of bias at most 'some concerns'",
              "Pain, individualized vs passive / usual care / true control, short term, without outliers"]
    return pd.DataFrame({"label": labels, "k": [14, 17, 9, 30], "estimate": [-0.25, -0.21, -0.31, -0.38],
                         "ci_lb": [-0.44, -0.35, -0.52, -0.52], "ci_ub": [-0.06, -0.06, -0.10, -0.24],
                         "I2": [69.2, 60.7, 55.0, 81.0]})


def _forest_many():
    yi, vi, n = _replica(32, 1)
    pooled = _pooled(yi, vi)
    names = _arms(32, n, 2)["study"].tolist()
    names[3] = "A study with a very long author list and name 2019"  # cut at 30 characters
    return forest_plot(pooled, _arms(32, n, 2, names), comparator=COMPARATORS[1], experimental=EXPERIMENTAL,
                       favours=FAVOURS, synthetic=True)


def _forest_two():
    """The real extraction's pain vs passive contrast: two studies, one without arm means."""
    pooled = _pooled(np.array([-0.587, -0.499]), np.array([0.0139, 0.0162]))
    arms = pd.DataFrame({"study": ["Ford 2016", "Heinrich 2009"], "m1i": [np.nan, -1.71], "sd1i": [np.nan, 1.93],
                         "n1i": [156, 129], "m2i": [np.nan, -0.76], "sd2i": [np.nan, 1.84], "n2i": [144, 125]})
    return forest_plot(pooled, arms, comparator=COMPARATORS[1], experimental=EXPERIMENTAL, favours=FAVOURS)


def _funnel(k: int, seed: int, spread: float, *, synthetic: bool = True):
    yi, vi, _ = _replica(k, seed, spread)
    pooled = _pooled(yi, vi)
    return funnel_plot(pooled, regtest=_Stat(zval=2.390, pval=0.0168), ranktest=_Stat(tau=0.250, pval=0.0454),
                       xlabel=AXIS, synthetic=synthetic)


def _influence(k: int, seed: int):
    rng = np.random.default_rng(seed)
    infl = pd.DataFrame({"rstudent": rng.normal(0, 1, size=k), "cooks_d": rng.gamma(1.0, 0.03, size=k)})
    infl.loc[2, ["rstudent", "cooks_d"]] = [3.6, 0.9]  # one outlier, influential
    labels = [f"Replica-{i + 1:02d} {1990 + (7 * i) % 33}" for i in range(k)]
    return influence_plot(infl, labels, synthetic=True)


_UPDATE = {"records_identified": 1300, "duplicates_removed": 140, "records_screened": 1160,
           "records_excluded": 1030, "reports_sought": 130, "reports_not_retrieved": 2, "reports_assessed": 128,
           "reports_excluded": {"not individualised": 90, "acute pain": 25, "no usable outcome": 6},
           "new_studies": 7}

def _simulation():
    """The methods page's simulation figure, from a small run of the review preset's shape."""
    from metaexercise import run_simulation
    from metaexercise.engine.simulate import Scenario
    from metaexercise.plots.simulation import plot_simulation

    scenario = Scenario(k=12, tau2=0.06, mu=-0.28, n_median=121, label="review (k=12, I2=70%)")
    return plot_simulation(run_simulation([scenario], reps=40, seed=1, progress=False))


def _summary_forest():
    """The summary forest of main analyses and scenarios, one row without an estimate."""
    from metaexercise.plots.summary_forest import summary_forest

    rows = pd.DataFrame({
        "label": ["Main analysis", "Without outliers", "Matched controls only", "Main analysis", "Without outliers",
                  "True controls only"],
        "estimate": [-0.28, -0.25, np.nan, -0.17, -0.17, 0.05], "ci_lb": [-0.42, -0.40, np.nan, -0.31, -0.31, -0.29],
        "ci_ub": [-0.14, -0.10, np.nan, -0.02, -0.02, 0.39],
        "group": ["Pain", "Pain", "Pain", "Disability", "Disability", "Disability"], "k": [32, 30, 1, 32, 32, 3],
        "note": ["", "", "insufficient data (k=1)", "", "", ""]})
    return summary_forest(rows, synthetic=True, favours=FAVOURS)


#: name -> a function that draws the figure
FIGURES = {
    "forest, 32 studies (replica)": lambda: _forest_many(),
    "forest, 2 studies (real rows)": lambda: _forest_two(),
    "funnel, 32 studies": lambda: _funnel(32, 3, 0.30),
    "funnel, 32 studies, wide spread": lambda: _funnel(32, 5, 0.45),
    "funnel, 15 studies": lambda: _funnel(15, 7, 0.25),
    "funnel, 3 studies": lambda: _funnel(3, 8, 0.2, synthetic=False),
    "influence, 32 studies": lambda: _influence(32, 9),
    "influence, 5 studies": lambda: _influence(5, 10),
    "bubble, 64 studies": lambda: bubble_plot(_bubble(64, 11, "intervention duration (weeks)"),
                                                 synthetic=True),
    "bubble, 12 studies": lambda: bubble_plot(_bubble(12, 13, "mean age (years)")),
    "risk of bias, traffic light, 58 studies": lambda: rob_traffic_light(_judgements(58, 14), synthetic=True),
    "risk of bias, traffic light, 2 studies": lambda: rob_traffic_light(_judgements(2, 15)),
    "risk of bias, summary": lambda: rob_summary(_judgements(58, 16), synthetic=True),
    "risk of bias, summary, weighted": lambda: rob_summary(_judgements(32, 17), np.linspace(1, 5, 32),
                                                              synthetic=True),
    "published pooled results": lambda: pooled_forest(
        _published(), xlabel="SMD (negative favours individualised exercise)",
        source="Fleckenstein et al. 2022 (medRxiv 2021.12.16.21267900 v2), Results, Figures 3-6 and appendix H; "
               "certainty as printed in the Results"),
    "scenario estimates": lambda: pooled_forest(_scenarios(), synthetic=True),
    "PRISMA, first edition": lambda: prisma_flow(previous=FIRST_EDITION),
    "PRISMA, with an update": lambda: prisma_flow(_UPDATE, previous=FIRST_EDITION),
    "simulation study": _simulation,
    "summary forest": _summary_forest,
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_no_text_box_overlaps_text_or_data(name):
    found = overlaps(FIGURES[name]())
    assert not found, f"{name}:\n" + "\n".join(found)


# ------------------------------------------------------------------------------ the checker itself
def test_the_check_finds_a_text_box_on_points_and_on_text():
    from metaexercise.plots.style import new_figure

    fig = new_figure(4, 3)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter([0.1, 0.9], [0.1, 0.9], s=30)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    assert overlaps(fig) == []
    ax.text(0.1, 0.1, "on a point", ha="center", va="center")
    ax.text(0.5, 0.5, "one", ha="center", va="center")
    ax.text(0.52, 0.5, "two", ha="center", va="center")
    found = overlaps(fig)
    assert any("'on a point' overlaps PathCollection" in f for f in found)
    assert "text 'one' overlaps text 'two'" in found
