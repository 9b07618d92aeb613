"""One shared style for every metaexercise figure, legible in print, and `save_figure` (SVG + PNG).

The style follows the Cochrane Handbook's advice for forest plots (§10.2.4 / RevMan): black on white,
sans-serif text no smaller than 8 pt at print size, thin lines, no chart junk. Judgement colours follow
robvis' Cochrane palette (McGuinness & Higgins 2021, Res Synth Methods 12:55-61).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from metaexercise.atomic import atomic_path  # noqa: E402
from metaexercise.vocabulary import SYNTHETIC_LABEL  # noqa: E402

#: The label every figure drawn from synthetic rows carries (defined once, in metaexercise.vocabulary).
SYNTHETIC_BANNER = SYNTHETIC_LABEL

#: RevMan draws continuous-outcome squares in green; we keep black squares (prints in greyscale) and use
#: colour only where it carries meaning (risk-of-bias judgements).
INK = "#000000"
MUTED = "#555555"
DIAMOND = "#000000"
PREDICTION = "#7a0019"
BANNER_COLOUR = "#b00020"

#: robvis "cochrane" palette (R/helpers.R) with one glyph per judgement, used by every RoB figure.
JUDGEMENT_STYLE: dict[str, tuple[str, str, str]] = {
    # key: (label, colour, glyph)
    "low": ("Low risk", "#02C100", "+"),
    "some concerns": ("Some concerns", "#E2DF07", "\u2212"),
    "high": ("High risk", "#BF0000", "\u00d7"),
    "no information": ("No information", "#4EA1F7", "?"),
}

RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.1,
    "svg.fonttype": "path",  # the SVG needs no font on the reader's machine
    "svg.hashsalt": "metaexercise",  # deterministic element ids
    "path.simplify": True,
}


@contextmanager
def plot_style():
    """Context in which figures are made with the shared style."""
    with plt.rc_context(RC):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure in the shared style, detached from pyplot's global state (nothing to close)."""
    with plot_style():
        return Figure(figsize=(width, height), layout=None)


def figure_and_axes(ax, width: float, height: float):
    """Return (figure, axes): the given `ax` and its figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, height)
    with plot_style():
        return fig, fig.add_subplot(1, 1, 1)


def add_synthetic_banner(fig: Figure) -> None:
    """Stamp the synthetic-data banner across the top of `fig` (gid 'synthetic-banner' for tests)."""
    fig.text(
        0.5,
        0.995,
        SYNTHETIC_BANNER.upper(),
        ha="center",
        va="top",
        fontsize=10,
        fontweight="bold",
        color="white",
        gid="synthetic-banner",
        bbox={"boxstyle": "square,pad=0.3", "facecolor": BANNER_COLOUR, "edgecolor": "none"},
    )


def save_figure(fig: Figure, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write `stem`.svg and `stem`.png, each whole or not at all; return both paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    stem = Path(stem)
    paths = []
    with plot_style():
        # One tight bounding box for both files: savefig(bbox_inches="tight") would draw the figure an
        # extra time per file just to measure it.
        renderer = FigureCanvasAgg(fig).get_renderer()
        bbox = fig.get_tightbbox(renderer).padded(float(RC["savefig.pad_inches"]))
        for fmt in ("svg", "png"):
            target = stem.with_name(stem.name + "." + fmt)
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, bbox_inches=bbox,
                            metadata={"Date": None} if fmt == "svg" else None)
            paths.append(target)
    return paths[0], paths[1]


def format_p(p: float, *, revman: bool = False) -> str:
    """A p-value as RevMan prints it ("P = 0.08", "P = 0.003", "P < 0.00001") or metafor ("p < .0001")."""
    if p != p:  # NaN
        return "P = NA" if revman else "p = NA"
    if revman:
        if p < 1e-5:
            return "P < 0.00001"
        if p < 0.01:  # one significant digit, written as a decimal: 0.003, 0.0006
            digits = -int(np.floor(np.log10(p)))
            text = f"{p:.{digits}f}"
            if float(text) >= 10.0 ** (-digits + 1):  # 0.0096 rounds up to 0.01
                digits -= 1
                text = f"{p:.{digits}f}"
            return f"P = {text}"
        return f"P = {p:.2f}"
    if p < 1e-4:
        return "p < .0001"
    return f"p = {p:.4f}".replace("0.", ".", 1)


def styled(func):
    """Decorator: run a plotting function inside `plot_style()` so every artist gets the shared style."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with plot_style():
            return func(*args, **kwargs)

    return wrapper


def plain_text(label: object) -> str:
    """A label drawn literally: matplotlib would read `$...$` as mathtext."""
    return str(label).replace("$", r"\$")


def text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width in inches of one line of `text` in the shared font at `size` points (no renderer needed)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font = FontProperties(family=RC["font.family"], size=size, weight=weight)
    width, _height, _descent = TextToPath().get_text_width_height_descent(text, font, ismath=False)
    return width / 72.0


def wrap_to_width(text: str, width: float, size: float, weight: str = "normal") -> str:
    """`text` broken at spaces into lines no wider than `width` inches (a single word may be wider)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size, weight) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) == 2:  # balance two lines: "passive /" over "usual care", not "passive / usual" over "care"
        words = text.split()
        cuts = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
        fitting = [c for c in cuts if max(text_width(part, size, weight) for part in c) <= width]
        if fitting:
            lines = list(min(fitting, key=lambda c: max(text_width(part, size, weight) for part in c)))
    return "\n".join(lines)
