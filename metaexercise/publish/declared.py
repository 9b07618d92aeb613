"""What the book knows of the review: its declaration (title, question, labels, outcomes, comparators, windows,
components) and its analyses, as plain values.

Read from `results/review.json` (which `metaexercise run` writes from the project's `review.yaml`) when it is
there, else from `review.yaml` itself (`metaexercise.review.declaration.load_review`); analyses from the
declared spec files `analyses/*.yaml` (read as data, never run). Nothing here names a review: every word
shown on a page about the review comes from these files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metaexercise.review.project import Project

REVIEW_JSON = "review.json"
REVIEW_FILE = "review.yaml"
#: Files of analyses/ that are not analysis specs (the published registry, the reviewers' GRADE judgements).
NOT_SPECS = frozenset({"published.yaml", "grade.yaml"})


@dataclass(frozen=True, slots=True)
class OutcomeInfo:
    id: str
    label: str
    benefit: str = "lower"

    @property
    def lower_is_better(self) -> bool:
        return self.benefit != "higher"


@dataclass(frozen=True, slots=True)
class AnalysisInfo:
    """One declared analysis, as the book groups it."""

    id: str
    label: str
    kind: str
    outcome: str
    file: str
    source: str = ""
    comparator: str | None = None
    window: str | None = None
    group: str | None = None
    scenario: bool = False  #: filters or outliers excluded: shown with the sensitivity analyses
    published_as: tuple[str, ...] = ()  #: registry ids this analysis reproduces under another name

    @property
    def regression(self) -> bool:
        return self.kind == "meta-regression"

    @property
    def own_page(self) -> bool:
        return not self.regression and not self.scenario


@dataclass(frozen=True, slots=True)
class BookDeclaration:
    title: str
    citation: str | None = None
    question: dict[str, str] = field(default_factory=dict)
    measure: str = "SMD"
    basis: str = "change"
    labels: dict[str, str] = field(default_factory=dict)
    outcomes: tuple[OutcomeInfo, ...] = ()
    comparators: dict[str, str] = field(default_factory=dict)  #: id -> label
    windows: dict[str, str] = field(default_factory=dict)  #: id -> label
    timepoint_unit: str = "weeks"
    components: dict[str, Any] = field(default_factory=dict)
    prisma_previous: dict[str, Any] | None = None
    common_scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: moderators the project shows in the table of study characteristics (`table: true`): name -> label
    table_moderators: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------------------ look-ups
    def label(self, key: str) -> str:
        default = {"experimental": "Experimental", "control": "Control",
                   "favours_experimental": "Favours experimental", "favours_control": "Favours control"}
        return str(self.labels.get(key) or default[key])

    def outcome(self, outcome_id: str) -> OutcomeInfo:
        for o in self.outcomes:
            if o.id == outcome_id:
                return o
        return OutcomeInfo(str(outcome_id), str(outcome_id).replace("_", " ").capitalize())

    def favours(self, outcome_id: str | None) -> tuple[str, str]:
        """(left, right) of a forest plot: below zero favours the experimental arm when lower is better."""
        exp, ctl = self.label("favours_experimental"), self.label("favours_control")
        lower = self.outcome(outcome_id).lower_is_better if outcome_id else True
        return (exp, ctl) if lower else (ctl, exp)

    def comparator_label(self, comparator_id) -> str:
        if comparator_id is None or comparator_id == "" or (isinstance(comparator_id, float)):
            return self.label("control")
        if comparator_id == "any":
            return "any comparator"
        return self.comparators.get(str(comparator_id), str(comparator_id))

    def has(self, component: str) -> bool:
        return bool(self.components.get(component))

    @property
    def measure_name(self) -> str:
        return "Std. Mean Difference" if self.measure == "SMD" else "Mean Difference"

    @property
    def measure_axis(self) -> str:
        return "Standardised mean difference (Hedges' g)" if self.measure == "SMD" else "Mean difference"


def _from_mapping(d: dict) -> BookDeclaration:
    roles = d.get("arm_roles") or {}
    del roles  # the book shows labels, not codes
    outcomes = tuple(OutcomeInfo(str(o["id"]), str(o.get("label") or o["id"]), str(o.get("benefit") or "lower"))
                     for o in d.get("outcomes") or ())
    scales = {}
    for o in d.get("outcomes") or ():
        lo = o.get("common_min", (o.get("common_scale") or {}).get("min"))
        hi = o.get("common_max", (o.get("common_scale") or {}).get("max"))
        if lo is not None and hi is not None:
            scales[str(o["id"])] = (float(lo), float(hi))

    def by_id(items) -> dict[str, str]:
        return {str(i["id"]): str(i.get("label") or i["id"]) for i in items or ()}

    effect = d.get("effect") or {}
    return BookDeclaration(
        title=str(d.get("title") or "A review"), citation=d.get("citation"),
        question={k: str(v) for k, v in (d.get("question") or {}).items() if v},
        measure=str(d.get("measure") or effect.get("measure") or "SMD"),
        basis=str(d.get("basis") or effect.get("basis") or "change"),
        labels={k: str(v) for k, v in (d.get("labels") or {}).items() if v},
        outcomes=outcomes, comparators=by_id(d.get("comparators")), windows=by_id(d.get("windows")),
        timepoint_unit=str(d.get("timepoint_unit") or "weeks"),
        components={k: v for k, v in (d.get("components") or {}).items() if v},
        prisma_previous=d.get("prisma_previous") or None, common_scales=scales,
        table_moderators={str(m["name"]): str(m.get("label") or m["name"])
                          for m in d.get("moderators") or () if m.get("table")},
    )


def load_declaration(project: Project) -> BookDeclaration:
    """The review as the book shows it: results/review.json when present, else review.yaml."""
    path = project.results / REVIEW_JSON
    if path.is_file():
        return _from_mapping(json.loads(path.read_text(encoding="utf-8")))
    from metaexercise.review.declaration import load_review

    review = load_review(project.root / REVIEW_FILE)
    return _from_mapping(dataclasses.asdict(review))


def spec_files(project: Project) -> list[Path]:
    folder = project.analyses
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.yaml") if p.name not in NOT_SPECS)


def load_analyses(project: Project) -> list[AnalysisInfo]:
    """Every analysis declared in analyses/*.yaml (files sorted by name, analyses in their order), as data;
    the runner validates them (`metaexercise run`), the book only groups them into pages."""
    out = []
    for path in spec_files(project):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for a in data.get("analyses") or ():
            if not isinstance(a, dict) or "id" not in a:
                continue
            scenario = bool(a.get("filters")) or bool(a.get("exclude_outliers"))
            out.append(AnalysisInfo(
                id=str(a["id"]), label=str(a.get("label") or a["id"]), kind=str(a.get("kind") or "meta-analysis"),
                outcome=str(a.get("outcome") or ""), file=path.name, source=str(a.get("source") or ""),
                comparator=a.get("comparator"), window=a.get("window"), group=a.get("group"), scenario=scenario,
                published_as=tuple(str(x) for x in a.get("published_as") or ())))
    return out
