"""Plots understand the measure: ratio measures (log RR, log OR, ...) on a log x axis with back-transformed tick
labels and the null line at 1, as metafor's `forest(res, atransf=exp)` / `funnel(res, atransf=exp)`; SMD keeps
the linear axis the review's figures use. Data: dat.bcg log risk ratios (conftest's `bcg_fit`)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from test_figure_overlaps import overlaps

from metaexercise.plots.forest import forest_plot, is_ratio_measure, measure_label, ratio_ticks, tick_label
from metaexercise.plots.funnel import funnel_plot


def _draw(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def _xlabels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _by_gid(fig, gid):
    return [a for a in fig.findobj() if a.get_gid() == gid]


def test_ratio_measures_are_known_by_code_and_name():
    assert all(is_ratio_measure(m) for m in ("RR", "OR", "PETO", "IRR", "ROM", "Risk Ratio", "odds ratio"))
    assert not any(is_ratio_measure(m) for m in ("SMD", "MD", "RD", "IRD", "Std. Mean Difference", None, 3))
    assert measure_label("RR") == "Risk Ratio" and measure_label("Std. Mean Difference") == "Std. Mean Difference"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (np.exp(-2), np.exp(2), [0.25, 0.5, 1, 2, 4]),  # the forest's default half-width 2 on the log scale
        (0.5, 2.0, [0.5, 1, 2]),
        (0.1, 10.0, [0.1, 0.2, 0.5, 1, 2, 5, 10]),  # powers of two would need 7+ ticks and miss the ends
        (0.01, 100.0, [0.01, 0.1, 1, 10, 100]),
    ],
)
def test_ratio_ticks_are_round_and_few(lo, hi, expected):
    assert ratio_ticks(lo, hi) == pytest.approx(expected)
    assert [tick_label(t) for t in (0.125, 0.25, 1.0, 4.0, 1000.0)] == ["0.125", "0.25", "1", "4", "1000"]


def test_forest_of_risk_ratios_has_a_log_axis_with_ratio_labels(bcg_fit, bcg_studies):
    fig = _draw(forest_plot(bcg_fit, bcg_studies, measure="RR", comparator="no vaccine",
                            experimental="BCG vaccine", favours=("Favours vaccine", "Favours no vaccine")))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlim() == pytest.approx((np.exp(-2), np.exp(2)))
    assert _xlabels(ax) == ["0.25", "0.5", "1", "2", "4"]
    assert ax.xaxis.get_minor_ticks() == [] or not any(t.label1.get_text() for t in ax.xaxis.get_minor_ticks())
    (null,) = _by_gid(fig, "zero-line")
    assert set(null.get_xdata()) == {1.0}
    (squares,) = _by_gid(fig, "study-squares")
    np.testing.assert_allclose(squares.get_offsets()[:, 0], np.exp(np.clip(bcg_fit.yi, -2, 2)))
    texts = _texts(fig)
    assert "Risk Ratio" in texts
    # trial 1: RR = (4/123)/(11/139) = 0.41, 95% CI 0.13 to 1.26 (metafor: escalc("RR") then exp)
    se = np.sqrt(bcg_fit.vi[0])
    assert f"{np.exp(bcg_fit.yi[0]):.2f} [{np.exp(bcg_fit.yi[0] - 1.96 * se):.2f}, " \
           f"{np.exp(bcg_fit.yi[0] + 1.96 * se):.2f}]" == "0.41 [0.13, 1.26]"
    assert "0.41 [0.13, 1.26]" in texts
    # pooled: metafor rma(yi, vi) on dat.bcg gives exp(-0.7145) = 0.49 [0.34, 0.70]
    assert "0.49 [0.34, 0.70]" in texts
    (diamond,) = _by_gid(fig, "pooled-diamond")
    assert diamond.get_xy()[:, 0].min() == pytest.approx(np.exp(float(bcg_fit.ci_lb)))
    assert overlaps(fig) == []


def test_forest_ratio_axis_by_name_and_wider_limits(bcg_fit, bcg_studies):
    fig = _draw(forest_plot(bcg_fit, bcg_studies, measure="Risk Ratio", xlim=np.log(10)))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and _xlabels(ax) == ["0.1", "0.2", "0.5", "1", "2", "5", "10"]
    assert overlaps(fig) == []


def test_smd_forest_stays_linear(bcg_fit, bcg_studies):
    fig = _draw(forest_plot(bcg_fit, bcg_studies))
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    np.testing.assert_allclose(ax.get_xticks(), np.linspace(-2, 2, 5))
    (null,) = _by_gid(fig, "zero-line")
    assert set(null.get_xdata()) == {0.0}
    same = _draw(forest_plot(bcg_fit, bcg_studies, measure="SMD"))
    assert same.axes[0].get_xscale() == "linear" and "Std. Mean Difference" in _texts(same)


def test_funnel_of_odds_ratios_has_a_log_axis(bcg_fit):
    fig = _draw(funnel_plot(bcg_fit, measure="OR"))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Odds Ratio (log scale)"
    labels = _xlabels(ax)
    assert "1" in labels and len(labels) <= 7
    (pts,) = _by_gid(fig, "funnel-studies")
    np.testing.assert_allclose(pts.get_offsets()[:, 0], np.exp(bcg_fit.yi))
    (line,) = _by_gid(fig, "pooled-estimate-line")
    assert line.get_xdata()[0] == pytest.approx(np.exp(bcg_fit.estimate))
    assert any(set(ln.get_xdata()) == {1.0} for ln in ax.lines if ln.get_linestyle() == ":")
    lo, hi = ax.get_xlim()
    assert lo * hi == pytest.approx(1.0)  # symmetric about 1 on the log scale
    assert overlaps(fig) == []


def test_smd_funnel_stays_linear(bcg_fit):
    fig = _draw(funnel_plot(bcg_fit))
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "Standardised mean difference (Hedges' g)"


def test_ratio_figures_saved_for_a_look(bcg_fit, bcg_studies, tmp_path):
    """Writes the PNGs (tmp_path) so a person can look at them; they must be non-empty images."""
    for name, fig in (("forest_rr", forest_plot(bcg_fit, bcg_studies, measure="RR")),
                      ("funnel_or", funnel_plot(bcg_fit, measure="OR", title="dat.bcg"))):
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.stat().st_size > 10_000
