"""What a project's extraction sheets accept: the words that belong to one review, not to the form.

The form's general columns (study id, design, inclusion status, arm ids, n, means, SDs, provenance, ...) are
fixed in `metaexercise.extraction.schema`. The codes that differ from review to review come from the project:
its outcome ids, the two arm-role codes, the control types, the risk-of-bias domains and judgements, and the
study-level moderators that become extra columns of the studies sheet. A `SheetVocabulary` holds them as
plain values; the review floor builds one from the project file (`Review.sheet_vocabulary()`), and a caller
that has no project file uses `SheetVocabulary()`, which is generic: any outcome id, arm roles
``experimental`` / ``control``, any control type and domain, no moderators.

An empty tuple of codes means "free text": the column takes any value. Declared codes are checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The risk-of-bias judgements of Cochrane's RoB 2 tool (Handbook chapter 8), the default of a project.
DEFAULT_ROB_JUDGEMENTS = ("low", "some concerns", "high")
#: The arm-role code for an arm whose role the source leaves open; fixed, whatever the project's roles.
ROLE_UNCLEAR = "unclear"


@dataclass(frozen=True, slots=True)
class OutcomeCode:
    """An outcome id the sheets accept, and its common scale (`common_min`..`common_max`) when the review
    normalises every instrument of the outcome onto one; None when it does not."""

    id: str
    common_min: float | None = None
    common_max: float | None = None
    label: str = ""
    higher_is_better: bool = False  #: the direction of benefit on the common scale (default: lower is better)

    @property
    def common_scale(self) -> tuple[float, float] | None:
        if self.common_min is None or self.common_max is None:
            return None
        return (self.common_min, self.common_max)


@dataclass(frozen=True, slots=True)
class ModeratorColumn:
    """A study-level moderator: one extra column of the studies sheet. Numeric (a float within `minimum` and
    `maximum` when given) or categorical (one of `levels`)."""

    name: str
    categorical: bool = False
    levels: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    label: str = ""

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "a").isalnum() or not self.name[0].isalpha():
            raise ValueError(f"moderator name {self.name!r}: letters, digits and '_', starting with a letter")
        if self.categorical and not self.levels:
            raise ValueError(f"categorical moderator {self.name!r} needs its levels")
        if not self.categorical and self.levels:
            raise ValueError(f"numeric moderator {self.name!r} has no levels")
        for bound in (self.minimum, self.maximum):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"moderator {self.name!r}: bounds must be finite numbers")


@dataclass(frozen=True, slots=True)
class SheetVocabulary:
    """The project's codes for its extraction sheets (see the module's docstring). `declared_in` names the
    file the codes come from, for messages ("" when they are the generic default)."""

    outcomes: tuple[OutcomeCode, ...] = ()
    role_experimental: str = "experimental"
    role_control: str = "control"
    control_types: tuple[str, ...] = ()
    rob_domains: tuple[str, ...] = ()
    rob_judgements: tuple[str, ...] = DEFAULT_ROB_JUDGEMENTS
    moderators: tuple[ModeratorColumn, ...] = ()
    declared_in: str = ""

    def __post_init__(self):
        roles = (self.role_experimental, self.role_control, ROLE_UNCLEAR)
        if len(set(roles)) != 3 or not all(roles):
            raise ValueError(f"arm roles must be three different codes, not {', '.join(map(repr, roles))}")
        for what, values in (("outcome", self.outcome_ids), ("control type", self.control_types),
                             ("risk-of-bias domain", self.rob_domains), ("judgement", self.rob_judgements),
                             ("moderator", tuple(m.name for m in self.moderators))):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"{what} {', '.join(dup)} declared more than once")
        if not self.rob_judgements:
            raise ValueError("declare at least one risk-of-bias judgement")

    @classmethod
    def from_values(cls, *, outcomes=(), role_experimental: str = "experimental", role_control: str = "control",
                    control_types=(), rob_domains=(), rob_judgements=DEFAULT_ROB_JUDGEMENTS, moderators=(),
                    declared_in: str = "") -> SheetVocabulary:
        """A vocabulary from plain values: `outcomes` as ids or (id, common_min, common_max) tuples,
        `moderators` as ModeratorColumn or mappings of its fields."""
        outs = tuple(o if isinstance(o, OutcomeCode) else OutcomeCode(o) if isinstance(o, str) else OutcomeCode(*o)
                     for o in outcomes)
        mods = tuple(m if isinstance(m, ModeratorColumn) else ModeratorColumn(**m) for m in moderators)
        return cls(outs, role_experimental, role_control, tuple(control_types), tuple(rob_domains),
                   tuple(rob_judgements), mods, declared_in)

    # ------------------------------------------------------------------------------------- look-ups
    @property
    def outcome_ids(self) -> tuple[str, ...]:
        """The declared outcome ids; empty = any outcome id is accepted."""
        return tuple(o.id for o in self.outcomes)

    @property
    def arm_roles(self) -> tuple[str, ...]:
        """The codes of `arms.arm_role`: experimental, control, and the fixed "unclear"."""
        return (self.role_experimental, self.role_control, ROLE_UNCLEAR)

    def common_scale(self, outcome_id: str) -> tuple[float, float] | None:
        """(min, max) of the common scale an outcome's instruments are normalised onto; None when the
        project declares none (or does not declare the outcome): then no normalisation is applied."""
        for o in self.outcomes:
            if o.id == outcome_id:
                return o.common_scale
        return None

    def moderator(self, name: str) -> ModeratorColumn:
        for m in self.moderators:
            if m.name == name:
                return m
        raise KeyError(f"no moderator {name!r}; declared: {', '.join(m.name for m in self.moderators) or 'none'}")


#: The vocabulary of a project without a project file: generic words only.
DEFAULT_VOCABULARY = SheetVocabulary()
