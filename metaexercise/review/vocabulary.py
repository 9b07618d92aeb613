"""The review floor's words, each set of choices defined once: the contrast ids a review reports (outcome ×
comparator class × follow-up window, read from the project's `review.yaml`), the main analyses, the kinds of
analysis and the status of a run analysis, and GRADE's domains and certainty levels.

Nothing here names a review's outcomes, comparators or windows: `ContrastId.parse` and `contrast_pattern`
take them from the `Review` (`metaexercise.review.declaration`); the data sources and the synthetic label
are the toolkit's (`metaexercise.vocabulary`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, NamedTuple

from metaexercise.review.declaration import ANY_COMPARATOR

if TYPE_CHECKING:
    from metaexercise.review.declaration import Review
    from metaexercise.review.specs import AnalysisSpec

# --------------------------------------------------------------------------------------------- contrasts
#: The spec file whose analyses are the review's main ones when no spec names a `group`.
MAIN_FILE = "main.yaml"
#: The `group` that marks a main analysis.
MAIN_GROUP = "main"


def _alternatives(ids: Sequence[str]) -> str:
    return "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))


def contrast_pattern(review: Review) -> re.Pattern:
    """Pooled-effect ids of `review`: ``{outcome}_{comparator}_{window}[_{suffix}]``, each part one of the
    declared ids (the comparator part only when the review declares comparator classes, the window part
    only when it declares windows; "any" is not a contrast's comparator)."""
    comparators = [c.id for c in review.comparators]
    parts = f"^({_alternatives(review.outcome_ids)})"
    parts += f"_({_alternatives(comparators)})" if comparators else "()"
    parts += f"_({_alternatives(review.window_ids)})" if review.windows else "()"
    return re.compile(parts + r"(?:_([a-z0-9]+))?$")


class ContrastId(NamedTuple):
    """A contrast id shared by analyses/*.yaml and analyses/published.yaml, parsed against the review's
    declared ids: ``{outcome}_{comparator}_{window}[_{suffix}]`` (e.g. ``pain_active_short_psych``)."""

    outcome: str
    comparator: str | None = None
    window: str | None = None
    suffix: str | None = None

    @property
    def id(self) -> str:
        return "_".join(str(p) for p in self if p)

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, text: str | None, review: Review) -> ContrastId | None:
        """The parts of `text`, or None when it does not follow `review`'s pattern."""
        m = contrast_pattern(review).match(text or "")
        if not m:
            return None
        return cls(m[1], m[2] or None, m[3] or None, m[4])


def main_ids(specs: Sequence[AnalysisSpec]) -> tuple[str, ...]:
    """The review's main analyses (its summary of findings): the meta-analyses whose spec says
    ``group: main`` when any spec names a group, else those of analyses/main.yaml, else every meta-analysis;
    in the specs' order."""
    meta = [s for s in specs if s.kind == AnalysisKind.META_ANALYSIS]
    if any(s.group for s in specs):
        return tuple(s.id for s in meta if s.group == MAIN_GROUP)
    in_file = [s.id for s in meta if s.file == MAIN_FILE]
    return tuple(in_file) if in_file else tuple(s.id for s in meta)


# --------------------------------------------------------------------------------------------- analyses
class AnalysisKind(StrEnum):
    """What an analysis spec fits: a pooled effect, or a meta-regression on moderators."""

    META_ANALYSIS = "meta-analysis"
    META_REGRESSION = "meta-regression"


class StatusKind(StrEnum):
    OK = "ok"
    INSUFFICIENT_DATA = "insufficient data"


_INSUFFICIENT = re.compile(r"^insufficient data \(k=(\d+)(?: (.+))?\)$")


@dataclass(frozen=True, slots=True)
class AnalysisStatus:
    """Whether an analysis was fitted; if not, with how many comparisons (`k`) and why that was too few
    (`reason`, e.g. "without outliers"). `str()` is the text of the ``status`` column of analyses.csv
    and metareg.csv: "ok", "insufficient data (k=1)", "insufficient data (k=1 without outliers)", ..."""

    kind: StatusKind
    k: int | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if (self.kind is StatusKind.OK) != (self.k is None):
            raise ValueError(f"an analysis status gives k exactly when it is not ok; got {self.kind}, "
                             f"k={self.k}")

    @classmethod
    def fitted(cls) -> AnalysisStatus:
        return cls(StatusKind.OK)

    @classmethod
    def insufficient(cls, k: int, reason: str = "") -> AnalysisStatus:
        return cls(StatusKind.INSUFFICIENT_DATA, int(k), reason)

    @classmethod
    def parse(cls, text: str) -> AnalysisStatus:
        """The status a ``status`` cell holds (the inverse of `str()`)."""
        if text == StatusKind.OK:
            return cls.fitted()
        m = _INSUFFICIENT.match(str(text))
        if not m:
            raise ValueError(f"{text!r} is not an analysis status ('ok' or 'insufficient data (k=...)')")
        return cls.insufficient(int(m[1]), m[2] or "")

    @property
    def ok(self) -> bool:
        return self.kind is StatusKind.OK

    def __str__(self) -> str:
        if self.ok:
            return self.kind.value
        return f"{self.kind.value} (k={self.k}{' ' + self.reason if self.reason else ''})"


# --------------------------------------------------------------------------------------------- GRADE
class GradeDomain(StrEnum):
    """The five GRADE domains, in GRADEpro's order (values: the ``domain`` column of grade.csv)."""

    RISK_OF_BIAS = "risk_of_bias"
    INCONSISTENCY = "inconsistency"
    INDIRECTNESS = "indirectness"
    IMPRECISION = "imprecision"
    PUBLICATION_BIAS = "publication_bias"

    @property
    def label(self) -> str:
        """"Risk of bias", "Publication bias", ..."""
        return self.value.replace("_", " ").capitalize()


class Certainty(IntEnum):
    """A GRADE certainty level; the number is the level (high = 4: randomized trials start there)."""

    VERY_LOW = 1
    LOW = 2
    MODERATE = 3
    HIGH = 4

    @property
    def text(self) -> str:
        """As papers print it: "very low", "low", "moderate", "high"."""
        return self.name.lower().replace("_", " ")

    @property
    def label(self) -> str:
        """As GRADEpro prints it: "Very low", ..., "High"."""
        return self.text.capitalize()

    @property
    def symbols(self) -> str:
        """GRADEpro's circles: "⨁⨁⨁◯" for moderate."""
        return "\u2a01" * self.value + "\u25ef" * (Certainty.HIGH - self.value)


#: The certainty levels as papers print them, lowest first.
CERTAINTY_LEVELS: tuple[str, ...] = tuple(c.text for c in Certainty)


__all__ = [
    "ANY_COMPARATOR", "CERTAINTY_LEVELS", "MAIN_FILE", "MAIN_GROUP", "AnalysisKind", "AnalysisStatus", "Certainty",
    "ContrastId", "GradeDomain", "StatusKind", "contrast_pattern", "main_ids",
]  # fmt: skip
