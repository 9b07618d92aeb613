"""Words shared across the floors and the wings, each set of choices defined once.

This base module imports nothing from metaexercise. It holds only what the plots, searches or publish wings
need besides the floors: the synthetic label, the data sources and the risk-of-bias words (the figures
draw them). A set used within one floor is defined in that floor and imported from there: outcomes and
control types in `metaexercise.extraction.schema`, follow-up windows in `metaexercise.extraction.comparisons`,
problem severities in `metaexercise.extraction.sheets`, and the review's contrasts, analysis kinds and
statuses and GRADE words in `metaexercise.review.vocabulary`.
"""

from __future__ import annotations

from enum import StrEnum

#: The label every table, figure and page made from the synthetic replica carries.
SYNTHETIC_LABEL = "synthetic replica \u2014 not the trials' data"

#: The book's name for the real extraction; accepted wherever a data source is named.
REAL = "real"


class DataSource(StrEnum):
    """Where the rows of a run come from: the real extraction sheets or the seeded synthetic replica.

    The value is the name `metaexercise run --source` takes; the book calls the extraction "real"
    (`book_name`), and `parse` accepts either name."""

    EXTRACTION = "extraction"
    REPLICA = "replica"

    @classmethod
    def parse(cls, name: str) -> DataSource:
        """The source called `name` ("extraction", "replica", or the book's "real" for the extraction)."""
        if name == REAL:
            return cls.EXTRACTION
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"source {name!r} is not one of {', '.join(cls)} (or '{REAL}')") from None

    @property
    def synthetic(self) -> bool:
        return self is DataSource.REPLICA

    @property
    def book_name(self) -> str:
        """The name the book's pages use: "real" or "replica"."""
        return REAL if self is DataSource.EXTRACTION else self.value

    @property
    def data_label(self) -> str:
        """The ``data`` column of every results table: "extraction", or the synthetic label."""
        return SYNTHETIC_LABEL if self.synthetic else self.value

    @property
    def description(self) -> str:
        """How captions name the rows: "real extraction", or the synthetic label."""
        return SYNTHETIC_LABEL if self.synthetic else f"{REAL} {self.value}"


class RobJudgement(StrEnum):
    """A risk-of-bias judgement (Cochrane RoB, as the review rated its studies)."""

    LOW = "low"
    SOME_CONCERNS = "some concerns"
    HIGH = "high"


#: What the risk-of-bias figures show where a study has no judgement for a domain.
ROB_NO_INFORMATION = "no information"


class RobDomain(StrEnum):
    """The review's five risk-of-bias domains, in its order (Fleckenstein et al. 2022, Methods)."""

    SEQUENCE_GENERATION = "sequence generation"
    ALLOCATION_CONCEALMENT = "allocation concealment"
    BLINDING = "blinding"
    INCOMPLETE_OUTCOME_DATA = "incomplete outcome data"
    SELECTIVE_REPORTING = "selective reporting"


def codes(choices) -> tuple[str, ...]:
    """The plain-text values of an enum's members, in order (for code lists, messages and CSV columns)."""
    return tuple(str(c.value) for c in choices)


__all__ = [
    "REAL", "ROB_NO_INFORMATION", "SYNTHETIC_LABEL", "DataSource", "RobDomain", "RobJudgement", "codes",
]  # fmt: skip
