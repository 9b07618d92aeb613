"""PRISMA 2020 flow diagram for an updated review (Page et al., BMJ 2021;372:n71, template "updated review,
databases and registers"): the first edition's flow in the "Previous studies" column, the update searches in
the "Identification of new studies via databases and registers" column, and the total included.

The first edition's counts are the review's own (Fleckenstein et al. 2022, Results, first paragraph:
"identified 1,172 unique citations. We screened the full-texts of 109 publications, identified 73 as
potentially eligible, and included 58 RCTs ... At least, 53 studies contained sufficient data").
"""

from __future__ import annotations

from collections.abc import Mapping

from metaexercise.plots.style import INK, figure_and_axes, styled

#: Keys of an update's counts (names after `search status --json` and the PRISMA2020 R package).
UPDATE_KEYS = (
    "records_identified",
    "duplicates_removed",
    "records_screened",
    "records_excluded",
    "reports_sought",
    "reports_not_retrieved",
    "reports_assessed",
    "reports_excluded",
    "new_studies",
)


def _n(value) -> str:
    return f"{int(value):,}"


def _box(ax, x, y, text, w=0.3, gid=None, fc="white"):
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, wrap=True, gid=gid,
            bbox={"boxstyle": "square,pad=0.5", "facecolor": fc, "edgecolor": INK, "lw": 0.8})


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "-|>", "color": INK, "lw": 0.8})


def check_update_counts(update: Mapping[str, int]) -> None:
    """Counts must add up (PRISMA 2020 explanation): identified - duplicates = screened, and so on."""
    missing = [k for k in UPDATE_KEYS if k not in update]
    if missing:
        raise ValueError(f"PRISMA update counts lack {missing}")
    excluded = update["reports_excluded"]
    excluded_total = sum(excluded.values()) if isinstance(excluded, Mapping) else int(excluded)
    # Records and reports still awaiting a decision (metaexercise.searches.prisma) keep every box adding up.
    awaiting_records = update.get("records_awaiting_screening", 0)
    awaiting_reports = update.get("reports_awaiting_retrieval", 0) + update.get("reports_awaiting_assessment", 0)
    included_reports = update.get("new_reports", update["new_studies"])
    rules = (
        ("records_identified - duplicates_removed == records_screened",
         update["records_identified"] - update["duplicates_removed"] == update["records_screened"]),
        ("records_screened == records_excluded + reports_sought + awaiting",
         update["records_screened"] == update["records_excluded"] + update["reports_sought"] + awaiting_records),
        ("reports_sought - reports_not_retrieved - awaiting == reports_assessed",
         update["reports_sought"] - update["reports_not_retrieved"] - awaiting_reports == update["reports_assessed"]),
        ("reports_assessed - reports_excluded == new reports",
         update["reports_assessed"] - excluded_total == included_reports),
    )
    broken = [name for name, ok in rules if not ok]
    if broken:
        raise ValueError(f"PRISMA update counts do not add up: {'; '.join(broken)}")


@styled
def prisma_flow(update: Mapping[str, int] | None = None, *, previous: Mapping[str, int | str], ax=None):
    """Draw the PRISMA 2020 updated-review diagram; `update=None` (or an update with no records) shows the
    first edition's flow only. `update` is a mapping with `UPDATE_KEYS`, e.g. `PrismaCounts.to_dict()`."""
    if update is not None and not update.get("records_identified"):
        update = None
    if update is not None:
        check_update_counts(update)
    fig, ax = figure_and_axes(ax, 9.0, 7.0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    xp, xn, xe = 0.27, 0.6, 0.87
    ax.text(xp, 0.97, "Previous studies", ha="center", fontweight="bold", fontsize=9)
    ax.text((xn + xe) / 2, 0.97, "Identification of new studies via databases and registers",
            ha="center", fontweight="bold", fontsize=9)
    for y0, y1, label in ((0.72, 0.95, "Identification"), (0.27, 0.71, "Screening"), (0.03, 0.26, "Included")):
        ax.add_patch(_phase(y0, y1))
        ax.text(0.035, (y0 + y1) / 2, label, rotation=90, ha="center", va="center", fontweight="bold",
                fontsize=8.5)
    p = previous
    _box(ax, xp, 0.86, f"First edition (searches to {p['last_search']}):\nrecords identified\n(n = {_n(p['records_screened'])})",
         gid="prisma-previous-records")
    _box(ax, xp, 0.62, f"Full texts screened\n(n = {_n(p['reports_assessed'])})")
    _box(ax, xp, 0.45, f"Potentially eligible\n(n = {_n(p['reports_potentially_eligible'])})")
    _box(ax, xp, 0.15, f"Studies included in previous\nversion of review (n = {_n(p['studies_included'])});\n"
                       f"with sufficient data (n = {_n(p['studies_with_data'])})", gid="prisma-previous-included")
    _arrow(ax, xp, 0.81, xp, 0.66)
    _arrow(ax, xp, 0.58, xp, 0.49)
    _arrow(ax, xp, 0.41, xp, 0.20)
    total = p["studies_included"]
    if update is None:
        _box(ax, (xn + xe) / 2, 0.62, "No update search imported yet\n(searches/ is empty)",
             gid="prisma-no-update", fc="#f2f2f2")
    else:
        u = update
        _box(ax, xn, 0.86, f"Records identified from\ndatabases and registers\n(n = {_n(u['records_identified'])})",
             gid="prisma-update-records")
        _box(ax, xe, 0.86, f"Records removed before\nscreening: duplicates\n(n = {_n(u['duplicates_removed'])})")
        _box(ax, xn, 0.68, f"Records screened\n(n = {_n(u['records_screened'])})")
        _box(ax, xe, 0.68, f"Records excluded\n(n = {_n(u['records_excluded'])})")
        _box(ax, xn, 0.54, f"Reports sought for retrieval\n(n = {_n(u['reports_sought'])})")
        _box(ax, xe, 0.54, f"Reports not retrieved\n(n = {_n(u['reports_not_retrieved'])})")
        _box(ax, xn, 0.40, f"Reports assessed for eligibility\n(n = {_n(u['reports_assessed'])})")
        exc = u["reports_excluded"]
        if isinstance(exc, Mapping):
            exc_text = "Reports excluded:\n" + "\n".join(f"{r} (n = {_n(n)})" for r, n in exc.items() if n)
        else:
            exc_text = f"Reports excluded\n(n = {_n(exc)})"
        _box(ax, xe + 0.02, 0.40, exc_text)
        _box(ax, xn, 0.15, f"New studies included in review\n(n = {_n(u['new_studies'])})",
             gid="prisma-new-included")
        for x0, y0, x1, y1 in ((xn, 0.82, xn, 0.72), (xn, 0.64, xn, 0.58), (xn, 0.50, xn, 0.44),
                               (xn, 0.36, xn, 0.19), (xn + 0.12, 0.86, xe - 0.1, 0.86),
                               (xn + 0.08, 0.68, xe - 0.08, 0.68), (xn + 0.11, 0.54, xe - 0.1, 0.54),
                               (xn + 0.12, 0.40, xe - 0.12, 0.40)):
            _arrow(ax, x0, y0, x1, y1)
        total += int(u["new_studies"])
    _box(ax, (xp + xn) / 2 + 0.1, 0.05, f"Total studies included in review (n = {_n(total)})",
         gid="prisma-total", fc="#f2f2f2")
    ax.text(0.99, 0.005, "From: Page MJ, et al. BMJ 2021;372:n71", ha="right", fontsize=6.5, color="#555555")
    return fig


def _phase(y0: float, y1: float):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((0.02, y0), 0.03, y1 - y0, boxstyle="round,pad=0.003", facecolor="#b7d3ea",
                          edgecolor=INK, lw=0.6)
