"""PRISMA 2020 flow diagram for an updated systematic review which included searches of databases and
registers only (Page MJ, McKenzie JE, Bossuyt PM, et al. The PRISMA 2020 statement: an updated guideline for
reporting systematic reviews. BMJ 2021;372:n71, doi:10.1136/bmj.n71; the template of that name).

The template's boxes, laid out as there: a left column "Previous studies" (studies and reports included in
the previous version, joined by an arrow to the total at the foot), the column "Identification of new studies
via databases and registers" (records identified, screened, reports sought, assessed, new studies included,
total included) and to its right, beside each stage, what left the flow there (records removed before
screening, records excluded, reports not retrieved, reports excluded with reasons). `TEMPLATE` lists them.

`prisma_boxes` computes every box's text from the counts (no drawing, so tests check the arithmetic);
`prisma_flow` lays them out: text is measured with the renderer and every box is sized to hold its text,
so nothing overlaps at any count. The previous version's counts are the project's (review.yaml
`prisma_previous`, carried in results/review.json); the update's are `metaexercise.searches.prisma.PrismaCounts`
(results/prisma_update.json). Without an update the diagram shows the previous version and says so.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from metaexercise.plots.style import INK, MUTED, new_figure, plain_text, styled

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

#: The template's boxes (gid of the box's first text, column, the template's wording that text starts with).
TEMPLATE: tuple[tuple[str, str, str], ...] = (
    ("prisma-header-previous", "previous", "Previous studies"),
    ("prisma-header-new", "new", "Identification of new studies via databases and registers"),
    ("prisma-previous-studies", "previous", "Studies included in previous version of review"),
    ("prisma-identified", "new", "Records identified from:"),
    ("prisma-removed", "excluded", "Records removed before screening:"),
    ("prisma-screened", "new", "Records screened"),
    ("prisma-records-excluded", "excluded", "Records excluded"),
    ("prisma-sought", "new", "Reports sought for retrieval"),
    ("prisma-not-retrieved", "excluded", "Reports not retrieved"),
    ("prisma-assessed", "new", "Reports assessed for eligibility"),
    ("prisma-reports-excluded", "excluded", "Reports excluded"),
    ("prisma-new-included", "new", "New studies included in review"),
    ("prisma-total", "new", "Total studies included in review"),
)
PHASES = ("Identification", "Screening", "Included")
CITATION = ("From: Page MJ, McKenzie JE, Bossuyt PM, et al. The PRISMA 2020 statement: an updated guideline for "
            "reporting systematic reviews. BMJ 2021;372:n71. doi: 10.1136/bmj.n71")

#: Trial registers (PRISMA's "registers", as opposed to bibliographic databases), by normalised name. CENTRAL
#: ("Cochrane Central Register of Controlled Trials") is a database.
REGISTERS = frozenset({
    "clinicaltrialsgov", "clinicaltrials", "ctgov", "ictrp", "whoictrp", "isrctn", "euctr", "eudract", "ctis",
    "anzctr", "drks", "chictr", "ctri", "jrct", "umin", "uminctr", "irct", "pactr", "rebec", "ntr",
})

_FONT = 8.0  # points; the book shows the figure (7.8 in) at about its size
_PAD = 0.07  # inches between a box's edge and its text
_GAP_ROW = 0.3  # inches between rows (room for the arrows)
_COLUMNS = {"bar": (0.05, 0.26), "previous": (0.42, 1.75), "new": (2.4, 2.6), "excluded": (5.3, 2.45)}
_WIDTH = 7.8
_FILL = {"previous": "#eeeeee", "new": "white", "excluded": "white", "note": "#f2f2f2"}
_HEADER_FILL = {"previous": "#d9d9d9", "new": "#ffd966"}
_BAR_FILL = "#9dc3e6"


@dataclass(frozen=True, slots=True)
class Box:
    """One box of the diagram: its id (`gid`; the box's texts are `gid`, `gid`-2, ...), column, row and the
    paragraphs it holds, in order."""

    gid: str
    column: str  # previous | new | excluded | wide (new and excluded together)
    row: str  # identification | screened | sought | assessed | included | total
    texts: tuple[str, ...]


def _n(value) -> str:
    return f"{int(value):,}"


def _count(value) -> str:
    return "not reported" if value is None else _n(value)


def is_register(name: str) -> bool:
    """Whether a source named `name` is a trial register (ClinicalTrials.gov, WHO ICTRP, ...)."""
    return re.sub(r"[^a-z]", "", str(name).lower()) in REGISTERS


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
    rules = [
        ("records_identified - duplicates_removed == records_screened",
         update["records_identified"] - update["duplicates_removed"] == update["records_screened"]),
        ("records_screened == records_excluded + reports_sought + awaiting",
         update["records_screened"] == update["records_excluded"] + update["reports_sought"] + awaiting_records),
        ("reports_sought - reports_not_retrieved - awaiting == reports_assessed",
         update["reports_sought"] - update["reports_not_retrieved"] - awaiting_reports == update["reports_assessed"]),
        ("reports_assessed - reports_excluded == new reports",
         update["reports_assessed"] - excluded_total == included_reports),
        ("new_studies <= new reports", update["new_studies"] <= included_reports),
    ]
    if update.get("records_by_database"):
        rules.append(("records_identified == sum of records_by_database",
                      update["records_identified"] == sum(update["records_by_database"].values())))
    if "duplicates_within_update" in update or "previously_screened" in update:
        rules.append(("duplicates_removed == duplicates_within_update + previously_screened",
                      update["duplicates_removed"] == update.get("duplicates_within_update", 0)
                      + update.get("previously_screened", 0)))
    if "reports_excluded_total" in update:
        rules.append(("reports_excluded_total == sum of reports_excluded",
                      update["reports_excluded_total"] == excluded_total))
    broken = [name for name, ok in rules if not ok]
    if broken:
        raise ValueError(f"PRISMA update counts do not add up: {'; '.join(broken)}")


def _reason(code: str) -> str:
    return "Other reasons" if code == "other" else str(code).replace("_", " ").capitalize()


def prisma_boxes(update: Mapping | None, previous: Mapping | None) -> list[Box]:
    """Every box of the updated-review template with its text, from the update's counts (`None`, or no record
    identified: the update has not been run) and the previous version's (`prisma_previous`: studies_included,
    optionally reports_included; None: the project declares none)."""
    if update is not None and not update.get("records_identified"):
        update = None
    if update is not None:
        check_update_counts(update)
    prev_studies = None if not previous else previous.get("studies_included")
    prev_reports = None if not previous else previous.get("reports_included")
    boxes = [
        Box("prisma-header-previous", "previous", "header", ("Previous studies",)),
        Box("prisma-header-new", "wide", "header", ("Identification of new studies via databases and registers",)),
        Box("prisma-previous-studies", "previous", "identification", (
            f"Studies included in previous version of review (n = {_count(prev_studies)})",
            f"Reports of studies included in previous version of review (n = {_count(prev_reports)})")),
    ]
    new_studies = new_reports = 0
    if update is None:
        boxes.append(Box("prisma-no-update", "wide", "identification", (
            "The update has not been run yet: no search records have been imported (metaexercise search "
            "import), so this column has no counts and no new study is included.",
            "Shown: the previous version of the review.")))
    else:
        u = update
        sources = {str(k): int(v) for k, v in (u.get("records_by_database") or {}).items()}
        registers = {str(k): int(v) for k, v in (u.get("records_by_register") or {}).items()}
        if not registers:
            registers = {k: v for k, v in sources.items() if is_register(k)}
        databases = {k: v for k, v in sources.items() if k not in registers}
        n_databases = sum(databases.values()) if sources else int(u["records_identified"])
        lines = ["Records identified from:", f"Databases (n = {_n(n_databases)})"]
        lines += [f"    {k} (n = {_n(v)})" for k, v in databases.items()]
        lines += [f"Registers (n = {_n(sum(registers.values()))})"]
        lines += [f"    {k} (n = {_n(v)})" for k, v in registers.items()]
        boxes.append(Box("prisma-identified", "new", "identification", ("\n".join(lines),)))
        previously = int(u.get("previously_screened", 0))
        automation = int(u.get("records_removed_automation", 0))
        duplicates = int(u.get("duplicates_within_update", int(u["duplicates_removed"]) - previously))
        other = f"Records removed for other reasons (n = {_n(previously)})"
        if previously:
            other += ": screened for the previous version"
        boxes.append(Box("prisma-removed", "excluded", "identification", ("\n".join([
            "Records removed before screening:", f"Duplicate records removed (n = {_n(duplicates)})",
            f"Records marked as ineligible by automation tools (n = {_n(automation)})", other]),)))
        boxes.append(Box("prisma-screened", "new", "screened", (f"Records screened (n = {_n(u['records_screened'])})",)))
        texts = [f"Records excluded (n = {_n(u['records_excluded'])})"]
        if u.get("records_awaiting_screening"):
            texts.append(f"Records awaiting screening (n = {_n(u['records_awaiting_screening'])})")
        boxes.append(Box("prisma-records-excluded", "excluded", "screened", tuple(texts)))
        boxes.append(Box("prisma-sought", "new", "sought", (f"Reports sought for retrieval (n = {_n(u['reports_sought'])})",)))
        texts = [f"Reports not retrieved (n = {_n(u['reports_not_retrieved'])})"]
        waiting = [(key, what) for key, what in (("reports_awaiting_retrieval", "Reports awaiting retrieval"),
                                                 ("reports_awaiting_assessment", "Reports retrieved, awaiting assessment"))
                   if u.get(key)]
        if waiting:
            texts.append("\n".join(f"{what} (n = {_n(u[key])})" for key, what in waiting))
        boxes.append(Box("prisma-not-retrieved", "excluded", "sought", tuple(texts)))
        boxes.append(Box("prisma-assessed", "new", "assessed",
                         (f"Reports assessed for eligibility (n = {_n(u['reports_assessed'])})",)))
        exc = u["reports_excluded"]
        if isinstance(exc, Mapping) and any(exc.values()):
            text = "Reports excluded:\n" + "\n".join(f"{_reason(r)} (n = {_n(n)})" for r, n in exc.items() if n)
        else:
            text = f"Reports excluded (n = {_n(sum(exc.values()) if isinstance(exc, Mapping) else exc)})"
        boxes.append(Box("prisma-reports-excluded", "excluded", "assessed", (text,)))
        new_studies = int(u["new_studies"])
        new_reports = int(u.get("new_reports", new_studies))
        boxes.append(Box("prisma-new-included", "new", "included", (
            f"New studies included in review (n = {_n(new_studies)})",
            f"Reports of new included studies (n = {_n(new_reports)})")))
    total = None if prev_studies is None else int(prev_studies) + new_studies
    if prev_reports is not None:
        total_reports = _n(int(prev_reports) + new_reports)
    elif update is None:
        total_reports = "not reported"
    else:
        total_reports = f"previous version's not reported + {_n(new_reports)} new"
    boxes.append(Box("prisma-total", "new", "total", (
        f"Total studies included in review (n = {_count(total)})",
        f"Reports of total included studies (n = {total_reports})")))
    return boxes


def _previous_note(previous: Mapping | None) -> str:
    """The previous version's own flow (beyond the template's two boxes), with its source."""
    if not previous:
        return "The project declares no previous version (review.yaml prisma_previous)."
    words = (("records_identified", "records identified"), ("records_screened", "records screened"),
             ("reports_assessed", "reports assessed for eligibility"),
             ("reports_potentially_eligible", "potentially eligible"),
             ("studies_with_data", "studies with data for meta-analysis"))
    parts = [f"{what} (n = {_n(previous[key])})" for key, what in words if previous.get(key) is not None]
    when = f", searches to {previous['last_search']}" if previous.get("last_search") else ""
    source = f" Source: {previous['source']}." if previous.get("source") else ""
    return f"Previous version{when}: " + ", ".join(parts) + "." + source if parts else source.strip()


# --------------------------------------------------------------------------------------------- drawing
def _wrap(text: str, width_in: float, measure, fontsize: float = _FONT) -> str:
    """`text` wrapped (each line on its own, keeping its indent) so that every line fits `width_in` inches;
    a count "(n = 1,172)" is never broken."""
    text = re.sub(r"\(n = [^)]{1,14}\)", lambda m: m.group(0).replace(" ", "\u00a0"), text)
    chars = max(12, int(width_in / (0.5 * fontsize / 72)))
    while True:
        lines = []
        for line in text.split("\n"):
            indent = line[: len(line) - len(line.lstrip())]
            lines += textwrap.wrap(line, chars, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""]
        wrapped = "\n".join(lines).replace("\u00a0", " ")
        if chars <= 12 or measure(wrapped)[0] <= width_in:
            return wrapped
        chars -= 2


@styled
def prisma_flow(update: Mapping | None = None, *, previous: Mapping | None = None):
    """Draw the PRISMA 2020 updated-review diagram (databases and registers only); `update=None` (or an update
    with no records) shows the previous version only. `update` is a mapping with `UPDATE_KEYS`, e.g.
    `PrismaCounts.to_dict()` or results/prisma_update.json; `previous` the review's `prisma_previous`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.patches import FancyBboxPatch, Rectangle

    boxes = prisma_boxes(update, previous)
    has_update = not any(b.gid == "prisma-no-update" for b in boxes)
    fig = new_figure(_WIDTH, 8.0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    renderer = FigureCanvasAgg(fig).get_renderer()
    probe = ax.text(0, 0, "", fontsize=_FONT)

    def measure(text: str, **kw) -> tuple[float, float]:
        probe.set_text(text)
        probe.update({"fontsize": _FONT, "fontweight": "normal", **kw})
        bb = probe.get_window_extent(renderer)
        return bb.width / fig.dpi, bb.height / fig.dpi

    def span(column: str) -> tuple[float, float]:
        if column == "wide":
            x0 = _COLUMNS["new"][0]
            return x0, _COLUMNS["excluded"][0] + _COLUMNS["excluded"][1] - x0
        return _COLUMNS[column]

    # 1. wrap and measure every text of every box
    laid: dict[str, dict] = {}
    for b in boxes:
        x, w = span(b.column)
        header = b.row == "header"
        kw = {"fontweight": "bold"} if header else {"fontweight": "normal"}
        texts = [plain_text(_wrap(t, w - 2 * _PAD, lambda s, kw=kw: measure(s, **kw))) for t in b.texts]
        sizes = [measure(t, **kw) for t in texts]
        height = sum(h for _, h in sizes) + 0.08 * (len(texts) - 1) + 2 * _PAD
        laid[b.gid] = {"box": b, "x": x, "w": w, "texts": texts, "sizes": sizes, "h": height, "kw": kw}

    # 2. rows top-down: a row is as tall as its tallest box; each phase bar at least as tall as its label
    order = ["header", "identification", "screened", "sought", "assessed", "included", "total"]
    rows = [r for r in order if any(v["box"].row == r for v in laid.values())]
    height = {r: max(v["h"] for v in laid.values() if v["box"].row == r) for r in rows}
    phase_rows = {"Identification": ["identification"], "Screening": ["screened", "sought", "assessed"],
                  "Included": ["included", "total"]}
    for label, members in phase_rows.items():
        members = [r for r in members if r in rows]
        if not members:
            continue
        need = measure(label, fontweight="bold")[0] + 2 * _PAD
        have = sum(height[r] for r in members) + _GAP_ROW * (len(members) - 1)
        if have < need:
            height[members[-1]] += need - have
    top = {}
    y = 0.08
    for r in rows:
        top[r] = y
        y += height[r] + (0.15 if r == "header" else _GAP_ROW)
    note_w = _WIDTH - 2 * 0.05
    note = plain_text(_wrap(_previous_note(previous) + "\n" + CITATION, note_w,
                            lambda s: measure(s, fontsize=6.5), fontsize=6.5))
    note_h = measure(note, fontsize=6.5)[1]
    probe.remove()
    total_h = y - _GAP_ROW + 0.15 + note_h + 0.08
    fig.set_size_inches(_WIDTH, total_h)
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(total_h, 0)  # inches from the top

    # 3. draw: boxes (sized to their row), texts inside, phase bars, arrows
    geometry: dict[str, tuple[float, float, float, float]] = {}
    for gid, v in laid.items():
        b = v["box"]
        x0, y0, w, h = v["x"], top[b.row], v["w"], height[b.row]
        if b.row == "header":
            patch = FancyBboxPatch((x0 + 0.04, y0 + 0.04), w - 0.08, h - 0.08, boxstyle="round,pad=0.04",
                                   facecolor=_HEADER_FILL["previous" if b.column == "previous" else "new"],
                                   edgecolor=INK, lw=0.7)
        else:
            fill = _FILL["note"] if gid == "prisma-no-update" else _FILL.get(b.column, "white")
            patch = Rectangle((x0, y0), w, h, facecolor=fill, edgecolor=INK, lw=0.8)
        patch.set_gid(f"{gid}-box")
        ax.add_patch(patch)
        geometry[gid] = (x0, y0, w, h)
        content = sum(s[1] for s in v["sizes"]) + 0.08 * (len(v["texts"]) - 1)
        ty = y0 + (h - content) / 2
        for i, (text, (_, th)) in enumerate(zip(v["texts"], v["sizes"])):
            centred = b.row == "header"
            ax.text(x0 + (w / 2 if centred else _PAD), ty, text, ha="center" if centred else "left", va="top",
                    fontsize=_FONT, multialignment="center" if centred else "left", color=INK,
                    gid=gid if i == 0 else f"{gid}-{i + 1}", **v["kw"])
            ty += th + 0.08
    for label, members in phase_rows.items():
        members = [r for r in members if r in rows]
        if not members:
            continue
        y0 = top[members[0]]
        y1 = top[members[-1]] + height[members[-1]]
        bx, bw = _COLUMNS["bar"]
        ax.add_patch(FancyBboxPatch((bx + 0.03, y0 + 0.03), bw - 0.06, y1 - y0 - 0.06, boxstyle="round,pad=0.03",
                                    facecolor=_BAR_FILL, edgecolor=INK, lw=0.6, gid=f"prisma-phase-{label.lower()}-box"))
        ax.text(bx + bw / 2, (y0 + y1) / 2, label, rotation=90, ha="center", va="center", fontsize=_FONT,
                fontweight="bold", gid=f"prisma-phase-{label.lower()}")

    def down(a: str, b: str) -> None:
        xa, ya, wa, ha = geometry[a]
        _arrow(ax, xa + wa / 2, ya + ha, xa + wa / 2, geometry[b][1])

    def right(a: str, b: str) -> None:
        xa, ya, wa, ha = geometry[a]
        _arrow(ax, xa + wa, ya + ha / 2, geometry[b][0], ya + ha / 2)

    if has_update:
        for a, b in (("prisma-identified", "prisma-screened"), ("prisma-screened", "prisma-sought"),
                     ("prisma-sought", "prisma-assessed"), ("prisma-assessed", "prisma-new-included"),
                     ("prisma-new-included", "prisma-total")):
            down(a, b)
        for a, b in (("prisma-identified", "prisma-removed"), ("prisma-screened", "prisma-records-excluded"),
                     ("prisma-sought", "prisma-not-retrieved"), ("prisma-assessed", "prisma-reports-excluded")):
            right(a, b)
    # previous studies: down the left column, then right into the total
    px, py, pw, ph = geometry["prisma-previous-studies"]
    tx, ty, tw, th = geometry["prisma-total"]
    ax.plot([px + pw / 2, px + pw / 2], [py + ph, ty + th / 2], color=INK, lw=0.8, solid_capstyle="butt")
    _arrow(ax, px + pw / 2, ty + th / 2, tx, ty + th / 2)
    ax.text(0.05, total_h - 0.06, note, ha="left", va="bottom", fontsize=6.5, color=MUTED, gid="prisma-note")
    return fig


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "-|>", "color": INK, "lw": 0.8, "shrinkA": 0, "shrinkB": 0,
                            "mutation_scale": 8})
