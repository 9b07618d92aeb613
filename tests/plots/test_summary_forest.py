"""Summary forest of pooled estimates (metaexercise.plots.summary_forest, drawn with the `forestplot` package):
each row's marker on its own label's line, rows without an estimate kept with their note, groups in order,
the synthetic label on synthetic rows, and the builders from results/analyses.csv and the published table."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from metaexercise.plots import summary_forest as sf
from metaexercise.plots.style import save_figure
from metaexercise.vocabulary import SYNTHETIC_LABEL


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "label": ["Main analysis", "Without outliers", "Matched controls only", "Main analysis",
                  "Without outliers", "True controls only"],
        "estimate": [-0.28, -0.25, np.nan, -0.17, -0.17, 0.05],
        "ci_lb": [-0.42, -0.40, np.nan, -0.31, -0.31, -0.29],
        "ci_ub": [-0.14, -0.10, np.nan, -0.02, -0.02, 0.39],
        "group": ["Pain", "Pain", "Pain", "Disability", "Disability", "Disability"],
        "k": [32, 30, 1, 32, 32, 3],
        "note": ["", "", "insufficient data (k=1)", "", "", ""],
    })


def _lines(fig) -> dict[float, str]:
    """y of each row of the figure -> its text (rows are y tick labels)."""
    ax = fig.axes[0]
    return {float(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}


def _markers(fig) -> dict[float, float]:
    """y -> x of every drawn estimate."""
    (points,) = [c for c in fig.axes[0].collections if c.get_gid() == "summary-forest-estimates"]
    return {float(y): float(x) for x, y in np.asarray(points.get_offsets(), float) if np.isfinite(x)}


def test_each_estimate_sits_on_its_own_row():
    rows = _rows()
    fig = sf.summary_forest(rows)
    lines, markers = _lines(fig), _markers(fig)
    assert len(markers) == rows["estimate"].notna().sum()
    # identical rows ("-0.17 [-0.31, -0.02]" twice, in one group) keep lines of their own
    drawn = {}
    for y, x in markers.items():
        text = lines[y]
        (row,) = [r for _, r in rows.iterrows() if pd.notna(r["estimate"]) and r["label"] in text
                  and f"{r['estimate']:.2f} [{r['ci_lb']:.2f}, {r['ci_ub']:.2f}]" in text
                  and (r["label"], r["group"]) not in drawn.values()][:1] or [None]
        assert row is not None, f"marker at {x} on the line {text!r}"
        assert x == pytest.approx(row["estimate"])
        drawn[y] = (row["label"], row["group"])
    assert len(drawn) == 5
    # the row without an estimate keeps its line, with its note and no marker
    (y_none,) = [y for y, t in lines.items() if "Matched controls only" in t]
    assert "insufficient data (k=1)" in lines[y_none] and y_none not in markers
    # top to bottom: header, Pain, its three rows, Disability, its three rows
    top_down = [lines[y].strip() for y in sorted(lines, reverse=True)]
    assert top_down[0].startswith("Analysis") and "k" in top_down[0] and "SMD [95% CI]" in top_down[0]
    assert top_down[1] == "Pain" and top_down[5] == "Disability"
    assert [t.split()[0] for t in top_down[2:5]] == ["Main", "Without", "Matched"]
    assert all(str(k) in lines[y] for y, k in zip(sorted(lines, reverse=True)[2:5], (32, 30, 1)))
    # every line inside the plotted range, the header too
    lo, hi = fig.axes[0].get_ylim()
    assert all(lo < y < hi for y in lines)
    # rows that read exactly alike (the same note under two contrasts) keep a line each: forestplot places
    # rows by their text, so without care they would share one and every marker below would shift
    alike = pd.DataFrame({"label": ["Published", "Ours", "Published", "Ours", "Published", "Ours"],
                          "estimate": [-0.28, np.nan, -0.10, np.nan, -0.40, -0.55],
                          "ci_lb": [-0.42, np.nan, -0.21, np.nan, -0.58, -0.72],
                          "ci_ub": [-0.14, np.nan, 0.01, np.nan, -0.22, -0.38],
                          "group": ["A", "A", "B", "B", "C", "C"], "k": [32, 0, 16, 0, 32, 2],
                          "note": ["", "insufficient data (k=0)", "", "insufficient data (k=0)", "", ""]})
    fig = sf.summary_forest(alike)
    lines, markers = _lines(fig), _markers(fig)
    assert len(lines) == len(alike) + 3 + 1
    assert {lines[y].split()[0]: x for y, x in markers.items() if "-0.55" in lines[y]} == {"Ours": -0.55}
    assert all(f"{x:.2f} [" in lines[y] for y, x in markers.items())


def test_drawn_with_the_forestplot_package_and_no_figure_left_in_pyplot(monkeypatch):
    import forestplot

    calls = []
    real = forestplot.forestplot

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(forestplot, "forestplot", spy)
    before = plt.get_fignums()
    fig = sf.summary_forest(_rows())
    assert len(calls) == 1 and calls[0]["ax"] is fig.axes[0]
    assert plt.get_fignums() == before


def test_no_text_overlaps_and_the_figure_saves(tmp_path):
    fig = sf.summary_forest(_rows(), favours=("Favours individualized exercise", "Favours control"),
                            source="Results of the real extraction")
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = [(t, t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    ax = fig.axes[0]
    ticks = {t for t in ax.get_xticklabels() + ax.get_yticklabels()}
    lo, hi = ax.get_xlim()
    shown = [(t, bb) for t, bb in texts
             if t not in ax.get_xticklabels() or lo <= t.get_position()[0] <= hi]
    for (a, ba), (b, bb) in itertools.combinations(shown, 2):
        shrunk = [x.padded(-1.0) for x in (ba, bb)]
        assert not shrunk[0].overlaps(shrunk[1]), f"{a.get_text()!r} overlaps {b.get_text()!r}"
    # row texts end left of the plot, with no gap wider than a few characters
    axes_x0 = ax.get_window_extent(renderer).x0
    rights = [label.get_window_extent(renderer).x1 for label in ax.get_yticklabels()]
    assert axes_x0 - 12 <= max(rights) <= axes_x0 + 0.5  # within two characters of the plot, never in it
    assert ticks
    svg, png = save_figure(fig, tmp_path / "summary")
    assert svg.stat().st_size > 0 and png.stat().st_size > 0


def test_synthetic_rows_carry_the_synthetic_label():
    real = sf.summary_forest(_rows())
    assert not [a for a in real.findobj() if a.get_gid() == "synthetic-banner"]
    assert SYNTHETIC_LABEL not in " ".join(t.get_text() for t in real.findobj(Text))
    mixed = _rows().assign(synthetic=[False, False, False, True, True, True])
    fig = sf.summary_forest(mixed)
    assert [a for a in fig.findobj() if a.get_gid() == "synthetic-banner"]
    headings = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_gid() == "summary-forest-group"]
    assert headings == ["Disability (" + SYNTHETIC_LABEL + ")", "Pain"]  # bottom up
    every = sf.summary_table(_rows(), synthetic=True)
    assert every["synthetic"].all() and every["group"].str.endswith(f"({SYNTHETIC_LABEL})").all()


def test_labels_are_shown_literally_and_shortened_under_their_group():
    rows = _rows().assign(label=["Pain, short term, vs active: $x$ costs", "Pain", "Pain, long", "A" * 90, "b", "c"])
    table = sf.summary_table(rows)
    assert table.loc[0, "label"] == r"Short term, vs active: \$x\$ costs"  # group prefix off, no mathtext
    assert table.loc[1, "label"] == "Pain (overall)"  # never read as the group's heading
    assert table.loc[2, "label"] == "Long"
    assert len(table.loc[3, "label"]) == sf._LABEL_CHARS and table.loc[3, "label"].endswith("\u2026")
    with pytest.raises(ValueError, match="lacks columns"):
        sf.summary_forest(_rows().drop(columns=["group"]))
    with pytest.raises(ValueError, match="no rows"):
        sf.summary_forest(_rows().iloc[:0])


def _analyses() -> pd.DataFrame:
    """Rows as results/analyses.csv holds them."""
    return pd.DataFrame({
        "analysis_id": ["pain_active_short", "pain_passive_short", "metareg_pain", "sens_mixed_pain",
                        "sens_rob_pain"],
        "label": ["Pain, vs active, short", "Pain, vs passive, short", "Meta-regression", "Pain: mixed only",
                  "Pain: rob not high"],
        "kind": ["meta-analysis", "meta-analysis", "meta-regression", "meta-analysis", "meta-analysis"],
        "outcome": ["pain"] * 5, "k": [0, 2, 0, 5, 1],
        "estimate": [np.nan, -0.55, np.nan, -0.3, np.nan], "ci_lb": [np.nan, -0.72, np.nan, -0.5, np.nan],
        "ci_ub": [np.nan, -0.38, np.nan, -0.1, np.nan],
        "status": ["insufficient data (k=0)", "ok", "insufficient data", "ok", "insufficient data (k=1)"],
        "synthetic": [False] * 5,
    })


def test_rows_from_results_analyses():
    a = _analyses()
    rows = sf.from_analyses(a, ["pain_passive_short", "sens_rob_pain", "pain_active_short", "metareg_pain"],
                            labels={"pain_passive_short": "Main analysis, vs passive"})
    assert rows["label"].tolist() == ["Main analysis, vs passive", "Pain: rob not high", "Pain, vs active, short"]
    assert rows["group"].unique().tolist() == ["Pain"]
    assert rows["estimate"].isna().tolist() == [False, True, True]
    assert rows["note"].tolist() == ["", "insufficient data (k=1)", "insufficient data (k=0)"]
    assert sf.from_analyses(a, prefix="sens_")["label"].tolist() == ["Pain: mixed only", "Pain: rob not high"]
    fig = sf.summary_forest(rows)
    assert len(_markers(fig)) == 1


def test_published_beside_ours_and_never_the_replica():
    published = pd.DataFrame({"id": ["pain_active_short", "pain_passive_short", "disability_active_long"],
                              "label": ["Pain, vs active, short term", "Pain, vs passive, short term",
                                        "Disability, vs active, long term"],
                              "k": [32, 32, 15], "estimate": [-0.28, -0.40, -0.12], "ci_lb": [-0.42, -0.58, -0.27],
                              "ci_ub": [-0.14, -0.22, 0.03]})
    rows = sf.beside_published(_analyses(), published)
    assert rows["group"].tolist() == [g for g in published["label"] for _ in range(2)]
    assert rows["label"].tolist() == ["Published", "Ours (real extraction)"] * 3
    assert rows["estimate"].tolist()[:4] == pytest.approx([-0.28, np.nan, -0.40, -0.55], nan_ok=True)
    assert rows["note"].tolist()[1] == "insufficient data (k=0)" and rows["note"].tolist()[5] == "not an analysis we run"
    fig = sf.summary_forest(rows)
    assert sorted(_markers(fig).values()) == pytest.approx(sorted([-0.28, -0.40, -0.55, -0.12]))
    with pytest.raises(ValueError, match="never set beside the published"):
        sf.beside_published(_analyses().assign(synthetic=True), published)
