"""Funnel, influence, risk-of-bias, PRISMA, bubble and published-pooled plots: structure, not pixels."""

import numpy as np
import pandas as pd
import pytest

from metaexercise import rma
from metaexercise.plots.bubble import bubble_plot
from metaexercise.plots.funnel import funnel_plot
from metaexercise.plots.influence import cooks_threshold, influence_plot, outlier_threshold
from metaexercise.plots.inputs import BubbleData
from metaexercise.plots.pooled import pooled_forest
from metaexercise.plots.prisma import check_update_counts, prisma_flow
from metaexercise.plots.rob import OVERALL, rob_summary, rob_traffic_light, rob_wide
from metaexercise.plots.style import SYNTHETIC_BANNER, save_figure
from metaexercise.review.exhibits import regression_line
from metaexercise.searches.prisma import FIRST_EDITION


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _by_gid(fig, gid):
    return [a for a in fig.findobj() if a.get_gid() == gid]


class _Test:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_funnel_draws_every_study_the_four_bands_and_the_tests(bcg_fit, bcg_pooled):
    # Test values as the review prints them for pain vs active, short term (Results, "Publication bias").
    fig = funnel_plot(bcg_pooled, regtest=_Test(zval=-1.407, pval=0.2), ranktest=_Test(tau=-0.202, pval=0.1),
                      synthetic=True)
    (pts,) = _by_gid(fig, "funnel-studies")
    assert len(pts.get_offsets()) == bcg_fit.k
    assert np.asarray(pts.get_offsets()) == pytest.approx(np.column_stack([bcg_fit.yi, np.sqrt(bcg_fit.vi)]), abs=1e-10)
    (line,) = _by_gid(fig, "pooled-estimate-line")
    assert line.get_xdata()[0] == pytest.approx(bcg_fit.estimate, abs=1e-11)
    texts = _texts(fig)
    for band in ("0.10 < p \u2264 1.00", "0.05 < p \u2264 0.10", "0.01 < p \u2264 0.05", "0.00 < p \u2264 0.01"):
        assert band in texts
    (tests,) = _by_gid(fig, "funnel-tests")
    assert "z = -1.407, p = .2000" in tests.get_text() and "Kendall's tau = -0.202" in tests.get_text()
    assert SYNTHETIC_BANNER.upper() in texts
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # standard error axis reversed, 0 on top


def test_influence_thresholds_match_metafor_reporter():
    # reporter.rma.uni prints "±2.7729" for k = 9 (dat.normand1999) and "±2.8905" for k = 13.
    assert outlier_threshold(9) == pytest.approx(2.7729, abs=5e-5)
    assert outlier_threshold(13) == pytest.approx(2.8905, abs=5e-5)
    # median + 6 IQR by hand: values 1..5 -> median 3, IQR 4 - 2 = 2 -> 15.
    assert cooks_threshold([1, 2, 3, 4, 5]) == pytest.approx(15.0)


def test_influence_plot_flags_the_outlier():
    infl = pd.DataFrame({"rstudent": [0.1, -3.5, 0.4, 1.0, -0.2], "cooks_d": [0.01, 0.9, 0.02, 0.03, 0.02]})
    fig = influence_plot(infl, ["a", "b", "c", "d", "e"])
    (pts,) = _by_gid(fig, "influence-rstudent")
    colours = pts.get_facecolors()
    red = [i for i, c in enumerate(colours) if c[0] > 0.3 and c[1] < 0.1]
    assert red == [1]
    assert len(_by_gid(fig, "threshold-rstudent")) == 1 and len(_by_gid(fig, "threshold-cooks")) == 1


def _rob_long():
    rows = []
    for s, judgements in {"s1": ["low"] * 5, "s2": ["high", "low", "some concerns", "low", "low"]}.items():
        for d, j in zip(["sequence generation", "allocation concealment", "blinding", "incomplete outcome data",
                         "selective reporting"], judgements, strict=True):
            rows.append((s, d, j))
    return pd.DataFrame(rows, columns=["study_id", "domain", "judgement"])


def test_rob_traffic_light_has_one_disc_per_study_and_domain_plus_overall():
    wide = rob_wide(_rob_long(), pd.Series({"s1": "low"}), labels={"s1": "Alpha 2001"})
    assert list(wide.loc["s2"]) == ["high", "low", "some concerns", "low", "low", "no information"]
    fig = rob_traffic_light(wide)
    assert len(_by_gid(fig, "rob-disc")) == 2 * 6
    texts = _texts(fig)
    assert "Alpha 2001" in texts and OVERALL in texts
    for label in ("+  Low risk", "\u2212  Some concerns", "\u00d7  High risk", "?  No information"):
        assert label in texts


def test_rob_summary_weighted_shares():
    wide = rob_wide(_rob_long(), pd.Series({"s1": "low", "s2": "high"}))
    fig = rob_summary(wide, weights=[1.0, 3.0])
    # Domain 1: s1 low (weight 1), s2 high (weight 3) -> 25% and 75% of the information.
    widths = sorted(p.get_width() for p in _by_gid(fig, "rob-bar-0"))
    assert widths == pytest.approx([25.0, 75.0])
    with pytest.raises(ValueError, match="judgements must be one of"):
        rob_traffic_light(wide.replace("high", "unclear"))


def test_prisma_first_edition_and_update_totals():
    fig = prisma_flow(previous=FIRST_EDITION)
    texts = " ".join(_texts(fig))
    for n in ("1,172", "109", "73", "58", "53"):  # Fleckenstein et al. 2022, Results, first paragraph
        assert f"(n = {n})" in texts
    update = {"records_identified": 300, "duplicates_removed": 40, "records_screened": 260,
              "records_excluded": 230, "reports_sought": 30, "reports_not_retrieved": 2, "reports_assessed": 28,
              "reports_excluded": {"not individualised": 20, "acute pain": 5}, "new_studies": 3}
    fig = prisma_flow(update, previous=FIRST_EDITION)
    (total,) = _by_gid(fig, "prisma-total")
    assert total.get_text() == f"Total studies included in review (n = {FIRST_EDITION['studies_included'] + 3})"
    with pytest.raises(ValueError, match="records_identified - duplicates_removed"):
        check_update_counts({**update, "duplicates_removed": 41})
    # Awaiting decisions keep the boxes adding up (2 of the 30 reports not yet assessed).
    check_update_counts({**update, "reports_assessed": 26, "reports_awaiting_assessment": 2,
                         "reports_excluded": {"not individualised": 18, "acute pain": 5}})
    assert _by_gid(prisma_flow({**update, "records_identified": 0}, previous=FIRST_EDITION), "prisma-no-update")


def test_bubble_plot_draws_one_bubble_per_study_and_the_fitted_line(bcg_fit):
    latitude = np.array([44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33], dtype=float)  # dat.bcg ablat
    fit = rma(bcg_fit.yi, bcg_fit.vi, mods=latitude)
    # what `metaexercise run` stores (bubble_studies.csv, bubble_lines.csv) and the page reads back
    line_rows = regression_line(fit, 1)
    assert len(line_rows) == 60 and line_rows["x"].iloc[[0, -1]].tolist() == [13.0, 55.0]
    data = BubbleData.from_results(pd.DataFrame({"x": latitude, "yi": fit.yi, "weight": fit.weights}), line_rows,
                                   fit.beta[1], fit.pval[1], fit.k)
    fig = bubble_plot(data, xlabel="Absolute latitude")
    (bubbles,) = _by_gid(fig, "bubbles")
    assert len(bubbles.get_offsets()) == 13
    (line,) = _by_gid(fig, "regression-line")
    x, y = line.get_data()
    assert y[0] == pytest.approx(fit.beta[0] + fit.beta[1] * x[0])
    # metafor 3.8.1 rma(yi, vi, mods = ~ ablat) on dat.bcg: slope -0.0291, p < .0001
    (slope,) = _by_gid(fig, "bubble-slope")
    assert slope.get_text().startswith("slope = -0.029 (p = ") and slope.get_text().endswith("; k = 13")
    with pytest.raises(ValueError, match="meta-regression"):
        regression_line(bcg_fit, 1)
    with pytest.raises(TypeError, match="BubbleData"):
        bubble_plot(fit)


def test_pooled_forest_rows_and_save_figure_writes_svg_and_png(tmp_path):
    # Two rows of the review's published pooled results (Fleckenstein et al. 2022, Fig 3 and appendix H).
    pub = pd.DataFrame({"label": ["Pain, short, vs active", "Pain, long, vs active"], "k": [32, 16],
                        "estimate": [-0.28, -0.10], "ci_lb": [-0.42, -0.21], "ci_ub": [-0.14, 0.01],
                        "I2": [73, 41], "certainty": ["low", "low"]})
    fig = pooled_forest(pub)
    (pts,) = _by_gid(fig, "published-estimates")
    assert len(pts.get_offsets()) == 2
    assert "-0.28 [-0.42, -0.14]" in _texts(fig)
    svg, png = save_figure(fig, tmp_path / "pooled")
    assert svg.read_bytes().lstrip().startswith(b"<?xml") and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = svg.read_bytes()
    save_figure(fig, tmp_path / "pooled")
    assert svg.read_bytes() == first  # deterministic SVG (fixed hash salt, no date)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pooled.png", "pooled.svg"]
