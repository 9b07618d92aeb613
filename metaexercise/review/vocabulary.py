"""The review floor's words, each set of choices defined once: the contrasts the review reports (outcome ×
comparator class × follow-up window) and their ids, the kinds of analysis and the status of a run analysis,
and GRADE's domains and certainty levels.

Outcomes and control types are the extraction form's (`metaexercise.extraction.schema`), follow-up windows
the comparison builder's (`metaexercise.extraction.comparisons`); the data sources and the synthetic label are
the toolkit's (`metaexercise.vocabulary`).

Comparator classes follow the review's Methods ("Statistics: Meta-analysis and -regression", Fleckenstein et
al. 2022, medRxiv 2021.12.16.21267900 v2): individualized exercise vs active (non-individualized) exercise,
or vs passive treatment, usual care or advice, true control or medication.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import NamedTuple

from metaexercise.extraction.comparisons import Window
from metaexercise.extraction.schema import ControlType, Outcome
from metaexercise.vocabulary import codes

# --------------------------------------------------------------------------------------------- contrasts
#: The outcomes the review pools (the extraction form records more).
REVIEW_OUTCOMES: tuple[Outcome, ...] = (Outcome.PAIN, Outcome.DISABILITY)


class ComparatorClass(StrEnum):
    """What the individualized arm is compared with. "any" pools both classes (the review's
    meta-regressions, which use the class as a moderator)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ANY = "any"

    @property
    def classes(self) -> tuple[ComparatorClass, ...]:
        """The classes whose comparisons an analysis against this class stacks."""
        return POOLED_CLASSES if self is ComparatorClass.ANY else (self,)


#: The classes a comparison belongs to (every class but "any").
POOLED_CLASSES: tuple[ComparatorClass, ...] = (ComparatorClass.ACTIVE, ComparatorClass.PASSIVE)

#: Control types in each comparator class: "active" is active exercise; "passive" is every other control
#: type, as the review's "passive treatments, true control, and usual care".
COMPARATOR_TYPES: dict[ComparatorClass, tuple[str, ...]] = {
    ComparatorClass.ACTIVE: codes([ControlType.ACTIVE_EXERCISE]),
    ComparatorClass.PASSIVE: codes([ControlType.USUAL_CARE_OR_ADVICE, ControlType.PASSIVE,
                                     ControlType.TRUE_CONTROL, ControlType.MEDICATION]),
}


class ContrastId(NamedTuple):
    """A contrast id shared by analyses/*.yaml and analyses/published.yaml, parsed:
    ``{outcome}_{comparator}_{window}[_{suffix}]`` (e.g. ``pain_active_short_psych``)."""

    outcome: Outcome
    comparator: ComparatorClass
    window: Window
    suffix: str | None = None

    @property
    def id(self) -> str:
        return "_".join(str(p) for p in self if p)

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, text: str | None) -> ContrastId | None:
        """The parts of `text`, or None when it does not follow the pattern."""
        m = CONTRAST_PATTERN.match(text or "")
        if not m:
            return None
        return cls(Outcome(m[1]), ComparatorClass(m[2]), Window(m[3]), m[4])


#: Pooled-effect ids: {outcome}_{comparator}_{window}[_{suffix}], comparator "active" or "passive".
CONTRAST_PATTERN = re.compile(
    rf"^({'|'.join(REVIEW_OUTCOMES)})_({'|'.join(POOLED_CLASSES)})_({'|'.join(Window)})(?:_([a-z0-9]+))?$"
)

#: The review's eight main contrasts (pain, disability × active, passive × short, long) and their ids.
MAIN_CONTRASTS: tuple[ContrastId, ...] = tuple(
    ContrastId(o, c, w) for o in REVIEW_OUTCOMES for c in POOLED_CLASSES for w in Window
)
MAIN_IDS: tuple[str, ...] = tuple(c.id for c in MAIN_CONTRASTS)


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
    "CERTAINTY_LEVELS", "COMPARATOR_TYPES", "CONTRAST_PATTERN", "MAIN_CONTRASTS", "MAIN_IDS", "POOLED_CLASSES",
    "REVIEW_OUTCOMES", "AnalysisKind", "AnalysisStatus", "Certainty", "ComparatorClass", "ContrastId",
    "GradeDomain", "StatusKind",
]  # fmt: skip
