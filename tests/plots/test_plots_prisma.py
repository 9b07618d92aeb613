"""PRISMA 2020 flow diagram for an updated review (databases and registers only; Page et al., BMJ
2021;372:n71): the template's boxes, the arithmetic between them, and the layout measured with the renderer
(every text inside its box, no box on another, nothing outside the figure)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from metaexercise.plots.prisma import (
    TEMPLATE,
    check_update_counts,
    is_register,
    prisma_boxes,
    prisma_flow,
)
from metaexercise.searches.prisma import count_flow
from metaexercise.searches.screening import EXCLUSION_REASONS

ROOT = Path(__file__).resolve().parents[2]

#: The previous version as review.yaml declares it (`prisma_previous`, carried in results/review.json).
PREVIOUS = {"records_screened": 1172, "reports_assessed": 109, "reports_potentially_eligible": 73,
            "studies_included": 58, "studies_with_data": 53,
            "source": "Fleckenstein et al. 2022, medRxiv 2021.12.16.21267900 v2, Results, first paragraph"}


def _update() -> dict:
    """Counts as the searches wing makes them (`count_flow` -> PrismaCounts.to_dict()): 4 sources (one a trial
    register), duplicates within the update and records screened for the previous version, records and
    reports still awaiting a decision, excluded reports with reasons, one study with two reports."""
    ledger = pd.DataFrame({"database": ["PubMed", "Embase", "CENTRAL", "ClinicalTrials.gov"],
                           "records": [120, 90, 60, 30]})
    ids = [f"r{i:03d}" for i in range(300)]
    status = ["unique"] * 250 + ["duplicate"] * 38 + ["previously screened"] * 12
    deduplicated = pd.DataFrame({"record_id": ids, "status": status})
    log = pd.DataFrame({"record_id": ids[:250], "ta_decision": ["exclude"] * 215 + ["include"] * 30 + [""] * 5,
                        "ft_retrieved": [""] * 215 + ["no"] * 2 + ["yes"] * 28 + [""] * 5,
                        "ft_decision": [""] * 217 + ["exclude"] * 23 + ["include"] * 4 + [""] * 6,
                        "exclusion_reason": [""] * 217 + ["population"] * 10 + ["intervention"] * 8
                        + ["design"] * 5 + [""] * 10,
                        "study_id": [""] * 240 + ["roe2024", "roe2024", "lee2025", "kim2025"] + [""] * 6})
    counts = count_flow(ledger, deduplicated, log, previous_studies=58)
    assert counts.check() == []
    return counts.to_dict()


def _n(text: str, label: str) -> int:
    """The count after `label` in "... label (n = 1,234) ..."."""
    m = re.search(re.escape(label) + r"[^(]*\(n = ([\d,]+)\)", text.replace("\n", " "))
    assert m, f"{label!r} not in {text!r}"
    return int(m.group(1).replace(",", ""))


def _texts(boxes) -> dict[str, str]:
    return {b.gid: "\n".join(b.texts) for b in boxes}


def _flat(text: str) -> str:
    """A drawn text with its wrapping undone."""
    return re.sub(r"\s*\n\s*", " ", text)


# ------------------------------------------------------------------------------------------------- boxes
def test_every_box_of_the_template_with_its_wording():
    boxes = prisma_boxes(_update(), PREVIOUS)
    by_gid = {b.gid: b for b in boxes}
    assert [gid for gid, _, _ in TEMPLATE] == [b.gid for b in boxes]
    for gid, column, wording in TEMPLATE:
        box = by_gid[gid]
        assert box.texts[0].startswith(wording), (gid, box.texts[0])
        assert box.column == column or (column == "new" and box.column == "wide")
    texts = _texts(boxes)
    assert texts["prisma-previous-studies"].split("\n")[1].startswith(
        "Reports of studies included in previous version of review")
    assert "Reports of new included studies" in texts["prisma-new-included"]
    assert "Reports of total included studies" in texts["prisma-total"]
    for line in ("Databases (n = ", "Registers (n = "):
        assert line in texts["prisma-identified"]
    for line in ("Duplicate records removed", "Records marked as ineligible by automation tools",
                 "Records removed for other reasons"):
        assert line in texts["prisma-removed"]
    # exclusion boxes sit to the right of their stage, in the same row
    rows = {b.gid: b.row for b in boxes}
    for stage, excluded in (("prisma-identified", "prisma-removed"), ("prisma-screened", "prisma-records-excluded"),
                            ("prisma-sought", "prisma-not-retrieved"), ("prisma-assessed", "prisma-reports-excluded")):
        assert rows[stage] == rows[excluded] and by_gid[excluded].column == "excluded"


def test_the_boxes_add_up():
    u = _update()
    t = _texts(prisma_boxes(u, PREVIOUS))
    identified = _n(t["prisma-identified"], "Databases") + _n(t["prisma-identified"], "Registers")
    assert identified == u["records_identified"] == 300
    assert _n(t["prisma-identified"], "Registers") == 30  # ClinicalTrials.gov is a register, CENTRAL is not
    per_source = [int(n.replace(",", "")) for n in re.findall(r"^\s+\S.*\(n = ([\d,]+)\)", t["prisma-identified"], re.M)]
    assert sum(per_source) == identified and len(per_source) == 4
    removed = sum(_n(t["prisma-removed"], k) for k in ("Duplicate records removed", "automation tools",
                                                         "Records removed for other reasons"))
    assert removed == u["duplicates_removed"] == 50
    assert _n(t["prisma-removed"], "Records removed for other reasons") == 12  # screened for the previous version
    screened = _n(t["prisma-screened"], "Records screened")
    assert identified - removed == screened == 250
    excluded = _n(t["prisma-records-excluded"], "Records excluded")
    awaiting = _n(t["prisma-records-excluded"], "Records awaiting screening")
    sought = _n(t["prisma-sought"], "Reports sought for retrieval")
    assert screened == excluded + awaiting + sought and (excluded, awaiting, sought) == (215, 5, 30)
    not_retrieved = _n(t["prisma-not-retrieved"], "Reports not retrieved")
    waiting = _n(t["prisma-not-retrieved"], "awaiting assessment")
    assessed = _n(t["prisma-assessed"], "Reports assessed for eligibility")
    assert sought - not_retrieved - waiting == assessed == 27
    reasons = re.findall(r"^(\w[\w ]*) \(n = ([\d,]+)\)$", t["prisma-reports-excluded"], re.M)
    assert dict(reasons) == {"Population": "10", "Intervention": "8", "Design": "5"}
    new_reports = _n(t["prisma-new-included"], "Reports of new included studies")
    assert assessed - sum(int(n) for _, n in reasons) == new_reports == 4
    new_studies = _n(t["prisma-new-included"], "New studies included in review")
    assert new_studies == 3  # roe2024 has two reports
    assert _n(t["prisma-previous-studies"], "Studies included in previous version") == 58
    assert _n(t["prisma-total"], "Total studies included in review") == 58 + new_studies == u["total_studies"]


def test_previous_reports_add_to_the_total_when_declared():
    t = _texts(prisma_boxes(_update(), {**PREVIOUS, "reports_included": 70}))
    assert _n(t["prisma-previous-studies"], "Reports of studies included in previous version") == 70
    assert _n(t["prisma-total"], "Reports of total included studies") == 74
    # the review reports no count of reports: said, not guessed
    t = _texts(prisma_boxes(_update(), PREVIOUS))
    assert "Reports of studies included in previous version of review (n = not reported)" in t["prisma-previous-studies"]
    assert "not reported + 4 new" in t["prisma-total"]


def test_without_an_update_the_diagram_shows_the_previous_version_and_says_so():
    updates = [None, {**_update(), "records_identified": 0}]
    stored = ROOT / "results" / "prisma_update.json"  # what `metaexercise run` wrote, when it has run here
    if stored.is_file() and not json.loads(stored.read_text(encoding="utf-8"))["records_identified"]:
        updates.append(json.loads(stored.read_text(encoding="utf-8")))
    for update in updates:
        boxes = prisma_boxes(update, PREVIOUS)
        gids = [b.gid for b in boxes]
        assert "prisma-no-update" in gids and "prisma-screened" not in gids and "prisma-new-included" not in gids
        t = _texts(boxes)
        assert "has not been run" in t["prisma-no-update"]
        assert _n(t["prisma-total"], "Total studies included in review") == 58
    fig = prisma_flow(None, previous=PREVIOUS)
    drawn = " ".join(t.get_text() for t in fig.findobj(Text))
    for n in ("1,172", "109", "73", "58", "53"):  # the previous version's own flow, in the note below
        assert f"(n = {n})" in drawn


def test_the_counts_must_add_up():
    u = _update()
    check_update_counts(u)
    broken = {
        "records_identified - duplicates_removed": {"duplicates_removed": u["duplicates_removed"] + 1},
        "records_screened == records_excluded": {"records_excluded": u["records_excluded"] + 1},
        "reports_sought - reports_not_retrieved": {"reports_not_retrieved": u["reports_not_retrieved"] + 1},
        "reports_assessed - reports_excluded": {"new_reports": u["new_reports"] + 1},
        "sum of records_by_database": {"records_by_database": {**u["records_by_database"], "PubMed": 121}},
        "duplicates_within_update + previously_screened": {"previously_screened": u["previously_screened"] + 1,
                                                           "duplicates_within_update": u["duplicates_within_update"]},
        "new_studies <= new reports": {"new_studies": u["new_reports"] + 1},
    }
    for rule, change in broken.items():
        with pytest.raises(ValueError, match=re.escape(rule)):
            check_update_counts({**u, **change})
        with pytest.raises(ValueError, match="do not add up"):
            prisma_flow({**u, **change}, previous=PREVIOUS)
    with pytest.raises(ValueError, match="lack"):
        check_update_counts({k: v for k, v in u.items() if k != "reports_sought"})


def test_registers_and_databases():
    for name in ("ClinicalTrials.gov", "WHO ICTRP", "ICTRP", "ISRCTN", "EU CTR", "DRKS"):
        assert is_register(name), name
    for name in ("PubMed", "CENTRAL", "Cochrane Central Register of Controlled Trials", "Embase", "Web of Science"):
        assert not is_register(name), name


# ------------------------------------------------------------------------------------------------ layout
def _geometry(fig):
    """(renderer, {gid: box bbox}, [(text artist, its bbox)]) in display pixels."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.canvas.draw()
    boxes = {p.get_gid()[: -len("-box")]: p.get_window_extent(renderer)
             for p in fig.axes[0].patches if (p.get_gid() or "").endswith("-box")}
    texts = [(t, t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_text().strip() and (t.get_gid() or "").startswith("prisma-")]
    return renderer, boxes, texts


def _owner(gid: str, boxes) -> str:
    """The box a text belongs to: `prisma-total-2` is the second text of `prisma-total`."""
    if gid in boxes:
        return gid
    base = re.sub(r"-\d+$", "", gid)
    return base if base in boxes else ""


LARGE = {
    "records_identified": 123_456, "records_by_database": {
        "MEDLINE (Ovid)": 40_000, "Embase (Elsevier)": 50_000, "CENTRAL": 20_000, "Web of Science Core Collection": 10_000,
        "CINAHL": 3_000, "ClinicalTrials.gov": 300, "WHO ICTRP": 156},
    "duplicates_removed": 23_456, "duplicates_within_update": 20_000, "previously_screened": 3_456,
    "records_screened": 100_000, "records_excluded": 99_000, "reports_sought": 1_000, "reports_not_retrieved": 25,
    "reports_assessed": 975, "reports_excluded": {code: 100 for code in EXCLUSION_REASONS}, "new_studies": 60,
    "new_reports": 75,
}


@pytest.mark.parametrize("case", ["update", "large", "no update", "no previous"])
def test_every_text_sits_inside_its_box_and_nothing_overlaps(case):
    update = {"update": _update(), "large": LARGE, "no update": None, "no previous": _update()}[case]
    previous = None if case == "no previous" else PREVIOUS
    if case == "large":
        check_update_counts(LARGE)
    fig = prisma_flow(update, previous=previous)
    _, boxes, texts = _geometry(fig)
    figure_box = fig.bbox
    assert boxes, "no box drawn"
    for t, bb in texts:
        assert figure_box.x0 <= bb.x0 and bb.x1 <= figure_box.x1 + 0.5, f"{t.get_gid()} leaves the figure"
        assert figure_box.y0 - 0.5 <= bb.y0 and bb.y1 <= figure_box.y1 + 0.5, f"{t.get_gid()} leaves the figure"
        owner = _owner(t.get_gid(), boxes)
        if owner:  # inside its box, with room to spare
            box = boxes[owner]
            assert box.x0 + 2 <= bb.x0 and bb.x1 <= box.x1 - 2 and box.y0 + 2 <= bb.y0 and bb.y1 <= box.y1 - 2, \
                f"{t.get_gid()!r} {_flat(t.get_text())!r} spills out of its box"
    for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2):
        assert not ba.overlaps(bb), f"boxes {a} and {b} overlap"
    for (ta, ba), (tb, bb) in itertools.combinations(texts, 2):
        assert not ba.overlaps(bb), f"texts {ta.get_gid()} and {tb.get_gid()} overlap"
    # readable at the book's width: the figure fits a page column and no text is smaller than 6.5 pt
    assert fig.get_figwidth() <= 8.0
    assert min(t.get_fontsize() for t, _ in texts) >= 6.5
    assert min(t.get_fontsize() for t, _ in texts if _owner(t.get_gid(), boxes)) >= 8.0


def test_boxes_follow_the_template_layout():
    fig = prisma_flow(_update(), previous=PREVIOUS)
    _, boxes, _ = _geometry(fig)
    # the new studies' column top to bottom, every exclusion box to the right of its stage at its height
    column = ["prisma-identified", "prisma-screened", "prisma-sought", "prisma-assessed", "prisma-new-included",
              "prisma-total"]
    for upper, lower in itertools.pairwise(column):
        assert boxes[upper].y0 > boxes[lower].y1  # display y grows upwards
        assert boxes[upper].x0 == pytest.approx(boxes[lower].x0)
    for stage, excluded in (("prisma-identified", "prisma-removed"), ("prisma-screened", "prisma-records-excluded"),
                            ("prisma-sought", "prisma-not-retrieved"), ("prisma-assessed", "prisma-reports-excluded")):
        assert boxes[excluded].x0 > boxes[stage].x1
        assert boxes[excluded].y0 < (boxes[stage].y0 + boxes[stage].y1) / 2 < boxes[excluded].y1
    # previous studies on the left, level with identification; the totals below everything else
    assert boxes["prisma-previous-studies"].x1 < boxes["prisma-identified"].x0
    assert boxes["prisma-previous-studies"].y1 == pytest.approx(boxes["prisma-identified"].y1)
    assert boxes["prisma-header-previous"].y0 > boxes["prisma-previous-studies"].y1
    # one arrow per link of the flow (5 down, 4 across) and the previous studies' arrow into the total
    arrows = [a for a in fig.axes[0].texts if a.__class__.__name__ == "Annotation"]
    assert len(arrows) == 10
    phases = [t.get_text() for t in fig.findobj(Text) if (t.get_gid() or "").startswith("prisma-phase-")]
    assert phases == ["Identification", "Screening", "Included"]


def test_the_book_page_draws_the_previous_version_from_the_declaration():
    page = (ROOT / "book" / "studies.md").read_text(encoding="utf-8")
    assert "prisma_flow(bp.prisma_update(), previous=bp.declaration().prisma_previous)" in page.replace("\n", "")
    assert "FIRST_EDITION" not in page
