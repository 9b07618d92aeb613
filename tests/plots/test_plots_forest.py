"""Forest plot: structure (rows, squares, diamond, prediction bar, texts), not pixels. The book draws it from
the numbers `metaexercise run` stores (a `PooledEffect` from forest.csv and studies.csv, `bcg_pooled`); an
RMAResult still draws the same figure."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from metaexercise import rma
from metaexercise.plots.forest import forest_plot, heterogeneity_text, overall_effect_text
from metaexercise.plots.inputs import PooledEffect
from metaexercise.plots.style import SYNTHETIC_BANNER, format_p
from metaexercise.review.exhibits import pooled_row


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _by_gid(fig, gid):
    return [a for a in fig.findobj() if a.get_gid() == gid]


def test_revman_p_formats_match_the_revman_user_guide():
    # Examples printed in RevMan output (reader-expectations §1.1): 2 decimals, one significant digit below
    # 0.01, and the floor "P < 0.00001".
    assert format_p(0.08, revman=True) == "P = 0.08"
    assert format_p(0.003, revman=True) == "P = 0.003"
    assert format_p(0.0006, revman=True) == "P = 0.0006"
    assert format_p(3e-9, revman=True) == "P < 0.00001"
    assert format_p(3e-9) == "p < .0001"


def _pooled(fit) -> PooledEffect:
    return PooledEffect.from_results(pooled_row("x", fit), pd.DataFrame({"yi": fit.yi, "vi": fit.vi,
                                                                         "weight": fit.weights}))


def test_heterogeneity_and_overall_lines_match_metafor_bcg(bcg_fit, bcg_pooled):
    # metafor 3.8.1, rma(yi, vi) on dat.bcg (log RR): tau^2 = 0.3132, Q(df = 12) = 152.2330, I^2 = 92.22%,
    # zval = -3.9744 (reader-expectations §6); RevMan rounding: 2 dp, whole-percent I^2, unsigned Z.
    line = heterogeneity_text(bcg_fit, (0.1197, 1.1115))
    assert line.startswith("Heterogeneity: Tau\u00b2 = 0.31 [0.12, 1.11] (REML; Q-profile 95% CI); ")
    assert "Chi\u00b2 = 152.23, df = 12 (P < 0.00001)" in line
    assert line.endswith("I\u00b2 = 92%")
    assert overall_effect_text(bcg_fit) == "Test for overall effect: Z = 3.97 (P = 0.00007)"
    # the stored numbers print the same lines; metafor's confint: tau^2 CI [0.1197, 1.1115]
    assert heterogeneity_text(bcg_pooled, bcg_pooled.tau2_ci) == line
    assert bcg_pooled.tau2_ci == pytest.approx((0.1197, 1.1115), abs=5e-5)
    assert overall_effect_text(bcg_pooled) == overall_effect_text(bcg_fit)


def test_forest_has_one_square_and_one_ci_per_study_and_a_pooled_diamond(bcg_fit, bcg_pooled, bcg_studies):
    fig = forest_plot(bcg_pooled, bcg_studies, comparator="no vaccine", experimental="BCG vaccine",
                      favours=("Favours vaccine", "Favours no vaccine"), xlim=2.0)
    squares = _by_gid(fig, "study-squares")
    assert len(squares) == 1 and len(squares[0].get_offsets()) == 13
    assert len([a for a in fig.findobj() if str(a.get_gid()).startswith("study-ci-")]) == 13
    (diamond,) = _by_gid(fig, "pooled-diamond")
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(bcg_fit.ci_lb[0]) and xs.max() == pytest.approx(bcg_fit.ci_ub[0])
    (bar,) = [a for a in _by_gid(fig, "prediction-interval") if isinstance(a, LineCollection)]
    (segment,) = bar.get_segments()
    assert segment[:, 0] == pytest.approx([bcg_fit.pi_lb, bcg_fit.pi_ub])
    texts = _texts(fig)
    assert "Favours\nvaccine" in texts and "Favours\nno vaccine" in texts and "BCG vaccine" in texts
    assert "Total (95% CI)" in texts and "95% prediction interval" in texts
    # Weight column: 13 one-decimal percentages that add up to 100 (to rounding), plus the total row.
    weights = [float(t[:-1]) for t in texts if t.endswith("%") and t[:-1].replace(".", "").isdigit()]
    assert len(weights) == 14 and sum(weights[:-1]) == pytest.approx(100, abs=0.1) and weights[-1] == 100.0
    # Totals: summed n per arm (hand sum of dat.bcg arm sizes).
    assert f"{int(bcg_studies.n1i.sum())}" in texts and f"{int(bcg_studies.n2i.sum())}" in texts
    assert SYNTHETIC_BANNER.upper() not in texts


def test_stored_numbers_and_the_fit_draw_the_same_forest(bcg_fit, bcg_pooled, bcg_studies):
    from_fit = forest_plot(bcg_fit, bcg_studies, comparator="no vaccine")
    stored = forest_plot(bcg_pooled, bcg_studies, comparator="no vaccine")
    assert _texts(stored) == _texts(from_fit)
    (a,), (b,) = _by_gid(stored, "study-squares"), _by_gid(from_fit, "study-squares")
    assert np.asarray(a.get_offsets()) == pytest.approx(np.asarray(b.get_offsets()), abs=1e-10)
    assert a.get_sizes() == pytest.approx(b.get_sizes(), rel=1e-10)


def test_forest_marks_cis_past_the_axis_with_arrows_and_synthetic_rows_with_the_banner():
    yi = np.array([-2.5, -0.2, 0.1, -0.4])
    vi = np.array([0.1, 0.04, 0.05, 0.06])
    fit = _pooled(rma(yi, vi))
    fig = forest_plot(fit, pd.DataFrame({"study": ["a $x$", "b", "c", "d"]}), synthetic=True, xlim=2.0)
    assert len(_by_gid(fig, "ci-arrow")) == 1  # only study 1 (CI -3.12 to -1.88) runs past -2
    assert SYNTHETIC_BANNER.upper() in _texts(fig)
    assert r"a \$x\$" in _texts(fig)  # drawn literally, not as mathtext


def test_forest_rejects_a_label_table_of_the_wrong_length(bcg_fit, bcg_pooled):
    with pytest.raises(ValueError, match="k = 13"):
        forest_plot(bcg_pooled, pd.DataFrame({"study": ["only one"]}))
    with pytest.raises(ValueError, match="k = 13 but 2 study rows"):
        PooledEffect.from_results(pooled_row("bcg", bcg_fit), pd.DataFrame({"yi": [0, 1], "vi": [1, 1],
                                                                               "weight": [50, 50]}))


def test_forest_labels_come_from_the_caller_and_name_no_review(bcg_pooled, bcg_studies):
    """Defaults are neutral; a project passes its own labels (review.yaml `labels`) and measure."""
    texts = _texts(forest_plot(bcg_pooled, bcg_studies))
    assert "Favours\nexperimental" in texts and "Favours\ncontrol" in texts and "Experimental" in texts
    assert not [t for t in texts if "ndividuali" in t or "exercise" in t]
    texts = _texts(forest_plot(bcg_pooled, bcg_studies, favours=("Favours control", "Favours experimental"),
                               measure="Mean Difference"))
    left = [t for t in texts if t.startswith("Favours")]
    assert left == ["Favours\ncontrol", "Favours\nexperimental"] and "Mean Difference" in texts
