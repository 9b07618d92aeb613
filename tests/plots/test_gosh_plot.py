"""GOSH plot: every successful subset drawn at (estimate, heterogeneity), metafor's marginal histograms and
densities, `out` colouring, hexbin for many subsets, no text on data; the density is R's `density`."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from test_figure_overlaps import overlaps

from metaexercise import Control, rma
from metaexercise.plots.gosh import OUT_COLOURS, density, gosh_plot
from metaexercise.plots.style import SYNTHETIC_BANNER, save_figure

pytest.importorskip("numba")
from metaexercise.engine.gosh_subsets import gosh  # noqa: E402


def _by_gid(fig, gid):
    return [a for a in fig.findobj() if a.get_gid() == gid]


@pytest.fixture(scope="module")
def bcg_gosh(bcg_fit):
    return gosh(bcg_fit)


def test_every_subset_is_a_point_at_estimate_and_i2(bcg_gosh):
    fig = gosh_plot(bcg_gosh, xlabel="Log risk ratio")
    (pts,) = _by_gid(fig, "gosh-points")
    xy = np.asarray(pts.get_offsets())
    assert xy.shape == (8191, 2)
    np.testing.assert_allclose(xy, bcg_gosh.res[["estimate", "I2"]].to_numpy(), rtol=0, atol=1e-12)
    assert pts.get_alpha() == pytest.approx(8191 ** -0.2)  # metafor's default transparency
    # density-scaled histograms (Sturges' breaks) above and beside, each with a density curve
    xbars, ybars = _by_gid(fig, "gosh-xhist"), _by_gid(fig, "gosh-yhist")
    edges = np.histogram_bin_edges(bcg_gosh.res["estimate"], bins="sturges")
    assert len(xbars) == len(edges) - 1
    area = sum(b.get_width() * b.get_height() for b in xbars)
    assert area == pytest.approx(1.0)
    assert sum(b.get_width() * b.get_height() for b in ybars) == pytest.approx(1.0)
    assert len(_by_gid(fig, "gosh-density")) == 2
    assert overlaps(fig) == []


def test_out_colours_subsets_with_and_without_the_study(bcg_gosh, tmp_path):
    fig = gosh_plot(bcg_gosh, out=5, het="tau2")
    with_, without = _by_gid(fig, "gosh-points")
    n_with = int(bcg_gosh.incl[:, 5].sum())
    assert len(with_.get_offsets()) == n_with == 4096 and len(without.get_offsets()) == 8191 - n_with
    np.testing.assert_allclose(with_.get_facecolor()[0][:3], (1, 0, 0))
    np.testing.assert_allclose(without.get_facecolor()[0][:3], (0, 0, 1))
    np.testing.assert_allclose(np.asarray(with_.get_offsets())[:, 1], bcg_gosh.res["tau2"][bcg_gosh.incl[:, 5]])
    assert len(_by_gid(fig, "gosh-density")) == 4
    assert overlaps(fig) == []
    svg, png = save_figure(fig, tmp_path / "gosh")
    assert svg.stat().st_size > 0 and png.stat().st_size > 0
    assert OUT_COLOURS == ("#ff0000", "#0000ff")


def test_many_subsets_become_a_hexbin():
    """synthetic: k = 18 seeded studies, 262,143 subsets (above HEXBIN_FROM)."""
    rng = np.random.default_rng(7)
    vi = rng.uniform(0.01, 0.2, 18)
    yi = rng.normal(-0.3, np.sqrt(vi + 0.05))
    g = gosh(rma(yi, vi, method="DL"))
    fig = gosh_plot(g, synthetic=True)
    (hb,) = _by_gid(fig, "gosh-points")
    assert isinstance(hb, PolyCollection)
    assert hb.get_array().sum() == int(g.fit.sum()) == 2**18 - 1  # counts per hexagon: every subset once
    assert SYNTHETIC_BANNER.upper() in [t.get_text() for t in fig.texts]
    fig = gosh_plot(g, out=0, kind="hexbin")
    (hb,) = _by_gid(fig, "gosh-points")
    share = hb.get_array()
    assert share.min() >= 0 and share.max() <= 1 and 0 < share.mean() < 1


def test_failed_fits_are_left_out(bcg_fit):
    g = gosh(rma(bcg_fit.yi, bcg_fit.vi, method="PM", control=Control(tau2_max=0.35)))
    assert 0 < (~g.fit).sum() < len(g)
    fig = gosh_plot(g)
    (pts,) = _by_gid(fig, "gosh-points")
    assert len(pts.get_offsets()) == int(g.fit.sum())


def test_density_is_rs_kernel_estimate():
    """R's `density(x)`: Gaussian kernel, bandwidth bw.nrd0 (0.9 min(sd, IQR/1.34) n^(-1/5)), 512 points over
    range(x) +- 3 bw. Both R and this function bin the data onto a grid; compared here with the exact kernel
    estimate at the grid points."""
    from scipy import stats

    n = 200
    x = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    gx, gy = density(x)
    bw = 0.9 * min(np.std(x, ddof=1), np.subtract(*np.quantile(x, [0.75, 0.25])) / 1.34) * n ** -0.2
    assert gx.size == 512
    assert gx[0] == pytest.approx(x.min() - 3 * bw) and gx[-1] == pytest.approx(x.max() + 3 * bw)
    exact = stats.norm.pdf((gx[:, None] - x[None, :]) / bw).mean(axis=1) / bw
    peak = exact > 1e-3
    np.testing.assert_allclose(gy[peak], exact[peak], rtol=5e-3)
    gx2, gy2 = density(x, adjust=2)
    assert gx2[0] == pytest.approx(x.min() - 6 * bw)


def test_bad_arguments(bcg_gosh, bcg_fit):
    with pytest.raises(ValueError, match="het="):
        gosh_plot(bcg_gosh, het="I^2")
    with pytest.raises(ValueError, match="out="):
        gosh_plot(bcg_gosh, out=13)
    with pytest.raises(ValueError, match="kind="):
        gosh_plot(bcg_gosh, kind="contour")
    with pytest.raises(ValueError, match="equal-effects"):
        gosh_plot(gosh(rma(bcg_fit.yi, bcg_fit.vi, method="EE")), het="tau2")
