"""GOSH plot (Olkin, Dahabreh & Trikalinos 2012, Res Synth Methods 3:214), as metafor 3.8's `plot.gosh.rma`:
the pooled estimate of every subset (x) against its heterogeneity (y; I² by default), with the marginal
distributions as density-scaled histograms (Sturges' breaks) and kernel density curves (R's `density`:
Gaussian kernel, bandwidth `bw.nrd0` times `adjust`) above and to the right.

metafor draws the points with transparency n^(-0.2) (many subsets, each faint); with `out` (a study), the
subsets that include it in red and the others in blue, each with its own histograms. Beyond `HEXBIN_FROM`
subsets the points become a hexagonal-bin density (grey shades, the count per hexagon), unless `kind` says
otherwise; a scatter of many points is stored as an image inside the SVG (`rasterized`), not a million paths.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D
from scipy import signal

from metaexercise.plots.style import INK, add_synthetic_banner, new_figure, plain_text, styled

#: metafor's default colours for `out`: subsets with the study, subsets without it.
OUT_COLOURS = ("#ff0000", "#0000ff")
#: above this many subsets the default `kind` is "hexbin".
HEXBIN_FROM = 100_000
#: scatters with more points than this are rasterized in vector output.
RASTERIZE_FROM = 5_000
HET_LABELS = {"QE": "Q", "I2": "I\u00b2 (%)", "H2": "H\u00b2", "tau2": "\u03c4\u00b2"}


def _bw_nrd0(x: np.ndarray) -> float:
    """R's `bw.nrd0`: 0.9 min(sd, IQR/1.34) n^(-1/5) (Silverman 1986, eq. 3.31), with R's fallbacks."""
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    q75, q25 = np.quantile(x, [0.75, 0.25])
    lo = min(sd, (q75 - q25) / 1.34)
    if not lo > 0:
        lo = sd if sd > 0 else (abs(float(x[0])) if x[0] != 0 else 1.0)
    return 0.9 * lo * x.size ** -0.2


def density(x: np.ndarray, adjust: float = 1.0, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian kernel density on n points over range(x) +- 3 bandwidths, as R's `density(x, adjust=)` (which
    also bins the data linearly onto a grid and convolves: O(n) in the number of subsets)."""
    bw = _bw_nrd0(x) * adjust
    lo, hi = float(x.min()) - 3 * bw, float(x.max()) + 3 * bw
    # linear binning onto a grid twice as fine, then a discrete Gaussian convolution
    fine = np.linspace(lo, hi, 2 * n - 1)
    dfine = fine[1] - fine[0]
    pos = (x - lo) / dfine
    left = np.clip(np.floor(pos).astype(np.int64), 0, fine.size - 2)
    frac = pos - left
    counts = np.bincount(left, weights=1 - frac, minlength=fine.size) + np.bincount(
        left + 1, weights=frac, minlength=fine.size)
    half = int(np.ceil(4 * bw / dfine))
    kx = np.arange(-half, half + 1) * dfine
    kernel = np.exp(-0.5 * (kx / bw) ** 2) / (bw * np.sqrt(2 * np.pi))
    dens = signal.fftconvolve(counts, kernel, mode="same") / x.size
    return fine[::2], np.maximum(dens[::2], 0.0)


def _sturges(x: np.ndarray) -> np.ndarray:
    return np.histogram_bin_edges(x, bins="sturges")


def _hist(ax, x, edges, colour, alpha, horizontal: bool, gid: str):
    dens, _ = np.histogram(x, bins=edges, density=True)
    if horizontal:
        bars = ax.barh(edges[:-1], dens, height=np.diff(edges), align="edge", color=colour, alpha=alpha,
                       edgecolor="white", linewidth=0.5)
    else:
        bars = ax.bar(edges[:-1], dens, width=np.diff(edges), align="edge", color=colour, alpha=alpha,
                      edgecolor="white", linewidth=0.5)
    for bar in bars:
        bar.set_gid(gid)
    return dens


@styled
def gosh_plot(
    gosh_result,
    *,
    het: str = "I2",
    out: int | None = None,
    kind: str | None = None,
    alpha: float | None = None,
    xhist: bool = True,
    yhist: bool = True,
    hh: float = 0.3,
    adjust: float = 1.0,
    lwd: float = 2.0,
    xlabel: str = "Estimate",
    title: str | None = None,
    synthetic: bool = False,
):
    """Draw the GOSH plot of `gosh_result` (an `engine.gosh_subsets.GoshResult`) and return the Figure.

    `het`: "I2" (default), "QE", "H2" or "tau2" on the y-axis, as metafor's `het`. `out`: a study (0-based
    column of `gosh_result.incl`): subsets with it in red, without it in blue. `kind`: "scatter" (metafor's
    points, transparency `alpha`, default n^(-0.2)) or "hexbin"; None chooses hexbin from `HEXBIN_FROM`
    subsets on. `hh`: the share of the figure the marginal histograms take; `adjust`: bandwidth multiplier of
    the density curves; `lwd`: their width (0: none). Failed fits (NaN rows) are left out.
    """
    res = gosh_result.res
    if het not in HET_LABELS:
        raise ValueError(f"gosh_plot: het={het!r} is not one of {list(HET_LABELS)}")
    if het == "tau2" and gosh_result.method == "EE":
        raise ValueError("gosh_plot: cannot plot 'tau2' for an equal-effects model (metafor stops here too)")
    if not 0 < hh < 1:
        raise ValueError(f"gosh_plot: hh={hh!r} must be between 0 and 1")
    if kind not in (None, "scatter", "hexbin"):
        raise ValueError(f"gosh_plot: kind={kind!r} is not one of None, 'scatter', 'hexbin'")
    k = gosh_result.incl.shape[1]
    if out is not None and (isinstance(out, bool) or not isinstance(out, int | np.integer) or not 0 <= out < k):
        raise ValueError(f"gosh_plot: out={out!r} must be a study's 0-based index, 0 to {k - 1}")
    keep = gosh_result.fit & np.isfinite(res["estimate"].to_numpy()) & np.isfinite(res[het].to_numpy())
    x = res["estimate"].to_numpy(dtype=float)[keep]
    y = res[het].to_numpy(dtype=float)[keep]
    n = x.size
    if n == 0:
        raise ValueError("gosh_plot: no subset was fitted successfully: nothing to draw")
    kind = kind or ("hexbin" if n >= HEXBIN_FROM else "scatter")
    alpha = n ** -0.2 if alpha is None else float(alpha)
    if out is None:
        groups = [(np.ones(n, dtype=bool), INK, "subsets")]
    else:
        isout = gosh_result.incl[keep, out]
        groups = [(isout, OUT_COLOURS[0], f"with study {out}"), (~isout, OUT_COLOURS[1], f"without study {out}")]

    fig = new_figure(6.4, 6.0)
    widths = [1 - hh, hh] if yhist else [1.0]
    heights = [hh, 1 - hh] if xhist else [1.0]
    gs = fig.add_gridspec(len(heights), len(widths), width_ratios=widths, height_ratios=heights,
                          left=0.12, right=0.97, bottom=0.09, top=0.9 if synthetic or title else 0.97,
                          wspace=0.03, hspace=0.03)
    ax = fig.add_subplot(gs[-1, 0])
    xedges, yedges = _sturges(x), _sturges(y)
    if kind == "hexbin":
        cmap = "Greys" if out is None else "coolwarm"
        if out is None:
            hb = ax.hexbin(x, y, gridsize=60, cmap=cmap, mincnt=1, bins="log", linewidths=0.2)
        else:  # the share of subsets with the study per hexagon: red = all with it, blue = all without it
            hb = ax.hexbin(x, y, C=groups[0][0].astype(float), reduce_C_function=np.mean, gridsize=60,
                           cmap="bwr", mincnt=1, linewidths=0.2, vmin=0, vmax=1)
        hb.set_gid("gosh-points")
    else:
        for mask, colour, _label in groups:
            pts = ax.scatter(x[mask], y[mask], s=4, color=colour, alpha=alpha, linewidths=0,
                             rasterized=n > RASTERIZE_FROM)
            pts.set_gid("gosh-points")
    ax.set_xlim(xedges[0], xedges[-1])
    ax.set_ylim(yedges[0], yedges[-1])
    ax.set_xlabel(plain_text(xlabel))
    ax.set_ylabel(HET_LABELS[het])
    if out is not None:
        # outside the data: in the empty corner beside the two histograms, else under the x-axis label
        only = "only subsets " if kind == "hexbin" else "subsets "
        handles = [Line2D([], [], marker="o", ls="none", color=c, label=only + lab) for _m, c, lab in groups]
        if xhist and yhist:
            corner = fig.add_subplot(gs[0, -1])
            corner.set_axis_off()
            corner.legend(handles=handles, loc="center", fontsize=7.5, frameon=False)
        else:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.12), fontsize=7.5, ncol=2,
                      frameon=False)
    for along, edges, data, horizontal in ((xhist, xedges, x, False), (yhist, yedges, y, True)):
        if not along:
            continue
        hax = fig.add_subplot(gs[0, 0] if not horizontal else gs[-1, -1])
        top = 0.0
        for mask, colour, _label in groups:
            if not mask.any():
                continue
            dens = _hist(hax, data[mask], edges, colour, 0.5, horizontal,
                         "gosh-yhist" if horizontal else "gosh-xhist")
            top = max(top, float(dens.max()))
            if lwd > 0 and mask.sum() > 1 and np.ptp(data[mask]) > 0:
                gx, gy = density(data[mask], adjust)
                top = max(top, float(gy.max()))
                line = hax.plot(gy, gx, color=colour, lw=lwd, alpha=0.9) if horizontal else \
                    hax.plot(gx, gy, color=colour, lw=lwd, alpha=0.9)
                line[0].set_gid("gosh-density")
        if horizontal:
            hax.set_ylim(ax.get_ylim())
            hax.set_xlim(0, top * 1.04 or 1)
        else:
            hax.set_xlim(ax.get_xlim())
            hax.set_ylim(0, top * 1.04 or 1)
        hax.set_axis_off()
    if title:
        fig.suptitle(plain_text(title), x=0.12, ha="left", fontweight="bold", y=0.99 if not synthetic else 0.95)
    if synthetic:
        add_synthetic_banner(fig)
    return fig


__all__ = ["density", "gosh_plot"]
