"""The review's published numbers (`analyses/published.yaml`), each with its place in the paper.

Every number is kept as printed (a string such as "-0.10"), so that its printed precision, and with it the
interval of true values that rounding allows, is known: "-0.10" stands for any value in [-0.105, -0.095].
`metaexercise.review.audit` checks the registry's internal consistency on those intervals.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from metaexercise.errors import SpecError
from metaexercise.review.declaration import FILE_NAME, Review, load_review
from metaexercise.review.vocabulary import CERTAINTY_LEVELS, ContrastId
from metaexercise.strict_yaml import load_yaml
from metaexercise.vocabulary import codes


class Place(StrEnum):
    """Where in the paper a number is printed; `reported` marks a row of a reported-results table
    (`metaexercise.review.audit.read_reported`)."""

    ABSTRACT = "abstract"
    METHODS = "methods"
    RESULTS = "results"
    DISCUSSION = "discussion"
    CONCLUSIONS = "conclusions"
    REPORTED = "reported"


class EntryKind(StrEnum):
    """What one registry entry holds (`KINDS` gives each kind's fields)."""

    EFFECT = "effect"
    CERTAINTY = "certainty"
    POINTS = "points"
    RANGE = "range"
    TEST = "test"
    MEAN_SD = "mean_sd"
    PERCENT = "percent"
    COUNT = "count"
    MEDIAN = "median"


class RelationKind(StrEnum):
    """An arithmetic relation between entries (see `Relation`)."""

    SUM = "sum"
    AT_MOST = "at_most"
    EQUAL = "equal"
    NOT_MORE = "not_more"


class Claim(StrEnum):
    """What the text says about an effect."""

    EFFECT = "effect"
    NO_EFFECT = "no effect"


class Scale(StrEnum):
    """The scale of an effect: a difference (SMD, MD), or a ratio (its CI is symmetric on the log scale)."""

    DIFFERENCE = "difference"
    RATIO = "ratio"


class BiasTest(StrEnum):
    """The funnel-plot tests a `test` entry reports: Egger's regression test, the rank correlation test."""

    EGGER = "egger"
    RANK = "rank"


PLACES = codes(Place)
CLAIMS = codes(Claim)
SCALES = codes(Scale)
BIAS_TESTS = codes(BiasTest)

_NUMBER = re.compile(r"^(?P<rel>[<>=]?)\s*(?P<num>[+-]?\s*(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Printed:
    """A number as printed: its text, value, decimals and relation ("=", "<" or ">", as in "p > .05")."""

    text: str
    value: float
    decimals: int
    relation: str = "="
    exact: bool = False

    @classmethod
    def parse(cls, text: str, *, exact: bool = False) -> Printed:
        """Parse "-0.10", ".1", "1,172", "> .05", "73%" (a trailing % is dropped)."""
        raw = str(text).strip().replace("\u2212", "-").replace("\u2013", "-").removesuffix("%").strip()
        m = _NUMBER.match(raw)
        if not m or not any(ch.isdigit() for ch in m["num"]):
            raise ValueError(f"{text!r} is not a number as printed (expected e.g. -0.10, .1, 1,172 or > .05)")
        num = re.sub(r"[,\s]", "", m["num"])
        decimals = len(num.split(".")[1]) if "." in num else 0
        return cls(str(text).strip(), float(num), decimals, m["rel"] or "=", exact)

    @property
    def half_unit(self) -> float:
        """Half a unit in the last printed digit (0 for exact counts)."""
        return 0.0 if self.exact else 0.5 * 10.0 ** (-self.decimals)

    @property
    def lo(self) -> float:
        """Smallest true value consistent with the printed text."""
        if self.relation == "<":
            return -math.inf
        return self.value - (0.0 if self.relation == ">" else self.half_unit)

    @property
    def hi(self) -> float:
        """Largest true value consistent with the printed text."""
        if self.relation == ">":
            return math.inf
        return self.value + (0.0 if self.relation == "<" else self.half_unit)

    def __str__(self) -> str:
        return self.text


#: Fields that hold printed numbers; counts (k, n) are exact.
NUMBER_FIELDS = (
    "k", "estimate", "ci_lb", "ci_ub", "i2", "q", "p", "statistic", "value", "lo", "hi",
    "mean", "sd", "n", "percent", "median", "pi_lb", "pi_ub",
)  # fmt: skip
EXACT_FIELDS = ("k", "n")
TEXT_FIELDS = (
    "contrast", "certainty", "claim", "scale", "test", "outcome", "group", "timepoint", "spread", "unit",
    "of", "reduction_from", "reduction_to", "percent_qualifier", "note",
)  # fmt: skip
COMMON_REQUIRED = ("id", "kind", "place", "section", "quote")

#: kind -> (required fields, optional fields), besides COMMON_REQUIRED and `note`.
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    EntryKind.EFFECT: (
        ("contrast", "estimate", "ci_lb", "ci_ub"),
        ("k", "i2", "q", "p", "pi_lb", "pi_ub", "certainty", "claim", "scale"),
    ),
    EntryKind.CERTAINTY: (("contrast", "certainty"), ()),
    EntryKind.POINTS: (("value",), ("contrast",)),
    EntryKind.RANGE: (("lo", "hi"), ()),
    EntryKind.TEST: (("test", "statistic", "p"), ("contrast",)),
    EntryKind.MEAN_SD: (("outcome", "group", "timepoint", "mean", "sd"), ()),
    EntryKind.PERCENT: (("value",), ("contrast", "reduction_from", "reduction_to")),
    EntryKind.COUNT: (("n",), ("percent", "of", "percent_qualifier")),
    EntryKind.MEDIAN: (("median", "lo", "hi", "spread"), ("unit",)),
}
RELATION_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    RelationKind.SUM: (("id", "kind", "parts", "total", "why"), ()),
    RelationKind.AT_MOST: (("id", "kind", "contrast", "parts", "why"), ()),
    RelationKind.EQUAL: (("id", "kind", "parts", "why"), ()),
    RelationKind.NOT_MORE: (("id", "kind", "parts", "total", "why"), ()),
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One published result: where it stands (place, section, verbatim quote) and its numbers as printed."""

    id: str
    kind: str
    place: str
    section: str
    quote: str
    k: Printed | None = None
    estimate: Printed | None = None
    ci_lb: Printed | None = None
    ci_ub: Printed | None = None
    i2: Printed | None = None
    q: Printed | None = None
    p: Printed | None = None
    statistic: Printed | None = None
    value: Printed | None = None
    lo: Printed | None = None
    hi: Printed | None = None
    mean: Printed | None = None
    sd: Printed | None = None
    n: Printed | None = None
    percent: Printed | None = None
    median: Printed | None = None
    pi_lb: Printed | None = None
    pi_ub: Printed | None = None
    contrast: str | None = None
    certainty: str | None = None
    claim: str | None = None
    scale: str | None = None
    test: str | None = None
    outcome: str | None = None
    group: str | None = None
    timepoint: str | None = None
    spread: str | None = None
    unit: str | None = None
    of: str | None = None
    reduction_from: str | None = None
    reduction_to: str | None = None
    percent_qualifier: str | None = None
    note: str | None = None
    #: The contrast's parts, parsed against the project's declared ids when the registry was loaded.
    parts: ContrastId | None = None

    @property
    def certainty_levels(self) -> frozenset[str]:
        """The certainty as a set of GRADE levels ("low to moderate" -> {low, moderate})."""
        return parse_certainty(self.certainty) if self.certainty else frozenset()

    @property
    def contrast_parts(self) -> ContrastId | None:
        """(outcome, comparator, window, suffix) when the contrast follows the project's id pattern (set by
        `load_published` from review.yaml; None without a project file)."""
        return self.parts


@dataclass(frozen=True, slots=True)
class Relation:
    """An arithmetic relation the paper's wording implies: `sum` (parts add up to the total), `not_more`
    (parts add up to at most the total: a subset), `at_most` (a contrast's k is at most the parts' sum: one
    control group per comparison), `equal` (two counts of the same thing)."""

    id: str
    kind: str
    parts: tuple[str, ...]
    why: str
    total: str | None = None
    contrast: str | None = None


@dataclass(frozen=True, slots=True)
class Registry:
    """The published registry: source, entries and relations."""

    entries: tuple[Entry, ...]
    relations: tuple[Relation, ...] = ()
    source: tuple[tuple[str, str], ...] = ()
    path: str = ""

    def get(self, entry_id: str) -> Entry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def for_contrast(self, contrast: str, kind: str | None = None) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.contrast == contrast and (kind is None or e.kind == kind))

    def effect(self, contrast: str, place: str = Place.RESULTS) -> Entry | None:
        """The pooled-effect entry of `contrast` printed at `place` (None if there is none)."""
        hits = [e for e in self.for_contrast(contrast, EntryKind.EFFECT) if e.place == place]
        return hits[0] if hits else None

    def certainty(self, contrast: str, place: str = Place.RESULTS) -> str | None:
        """The review's certainty rating for `contrast` as printed at `place`."""
        for e in self.for_contrast(contrast):
            if e.place == place and e.certainty:
                return e.certainty
        return None

    def to_frame(self) -> pd.DataFrame:
        """One row per entry; numbers as printed (text) and as floats (`<field>_value`)."""
        rows = []
        for e in self.entries:
            row: dict[str, object] = {"id": e.id, "kind": e.kind, "place": e.place, "section": e.section}
            for f in TEXT_FIELDS:
                row[f] = getattr(e, f)
            for f in NUMBER_FIELDS:
                v = getattr(e, f)
                row[f] = None if v is None else v.text
                row[f"{f}_value"] = math.nan if v is None else v.value
            row["quote"] = e.quote
            rows.append(row)
        return pd.DataFrame(rows)


def parse_certainty(text: str) -> frozenset[str]:
    """'low', 'very low' or a range 'low to moderate' -> the set of GRADE levels it names."""
    parts = [p.strip().lower() for p in str(text).split(" to ")]
    bad = [p for p in parts if p not in CERTAINTY_LEVELS]
    if bad or len(parts) > 2:
        raise ValueError(f"certainty {text!r} is not one of {CERTAINTY_LEVELS} or a range 'A to B'")
    idx = sorted(CERTAINTY_LEVELS.index(p) for p in parts)
    return frozenset(CERTAINTY_LEVELS[idx[0] : idx[-1] + 1])


def _where(path: str, section: str, index: int, entry_id: object) -> str:
    return f"{path}: {section}[{index}] (id {entry_id!r})"


def entry_from_mapping(raw: dict, *, where: str) -> Entry:
    """Validate one registry entry (unknown or missing keys, bad numbers or words are errors)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind {kind!r} is not one of {sorted(map(str, KINDS))}")
    required, optional = KINDS[kind]
    allowed = set(COMMON_REQUIRED) | set(required) | set(optional) | {"note"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown} for kind {kind!r}; allowed: {sorted(allowed)}")
    missing = [k for k in (*COMMON_REQUIRED, *required) if raw.get(k) in (None, "")]
    if missing:
        raise SpecError(f"{where}: missing key(s) {missing} for kind {kind!r}")
    if raw["place"] not in PLACES:
        raise SpecError(f"{where}: place {raw['place']!r} is not one of {PLACES}")
    values: dict[str, object] = {}
    for key, val in raw.items():
        if val is None:
            continue
        if key in NUMBER_FIELDS:
            if not isinstance(val, str | int):
                raise SpecError(
                    f'{where}: {key} must be the number as printed, quoted (e.g. "-0.10"); got {val!r}'
                )
            try:
                values[key] = Printed.parse(str(val), exact=key in EXACT_FIELDS)
            except ValueError as exc:
                raise SpecError(f"{where}: {key}: {exc}") from None
        else:
            values[key] = str(val)
    if "certainty" in values:
        try:
            parse_certainty(values["certainty"])
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None
    if values.get("claim") not in (None, *CLAIMS):
        raise SpecError(f"{where}: claim {values['claim']!r} is not one of {CLAIMS}")
    if values.get("scale") not in (None, *SCALES):
        raise SpecError(f"{where}: scale {values['scale']!r} is not one of {SCALES}")
    if values.get("test") not in (None, *BIAS_TESTS):
        raise SpecError(f"{where}: test {values['test']!r} is not one of {BIAS_TESTS}")
    return Entry(**values)


def _relation(raw: dict, *, where: str) -> Relation:
    if not isinstance(raw, dict) or raw.get("kind") not in RELATION_KINDS:
        raise SpecError(f"{where}: relation kind must be one of {sorted(map(str, RELATION_KINDS))}")
    required, optional = RELATION_KINDS[raw["kind"]]
    unknown = sorted(set(raw) - set(required) - set(optional))
    missing = [k for k in required if raw.get(k) in (None, "", [])]
    if unknown or missing:
        raise SpecError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}")
    if not isinstance(raw["parts"], list) or not all(isinstance(p, str) for p in raw["parts"]):
        raise SpecError(f"{where}: parts must be a list of entry ids")
    return Relation(
        id=str(raw["id"]),
        kind=raw["kind"],
        parts=tuple(raw["parts"]),
        why=str(raw["why"]),
        total=raw.get("total"),
        contrast=raw.get("contrast"),
    )


def _project_review(path: Path) -> Review | None:
    """The review declared by the project whose folder holds `path` (review.yaml in a parent folder)."""
    for folder in list(path.resolve().parents)[:3]:
        if (folder / FILE_NAME).is_file():
            return load_review(folder / FILE_NAME)
    return None


def load_published(path: str | Path, review: Review | None = None) -> Registry:
    """Load and validate a published registry (e.g. `analyses/published.yaml`; safe YAML; unknown, missing or
    duplicate keys are errors). Contrast ids are parsed against `review` (default: the review.yaml of the
    project whose folder holds `path`, when there is one)."""
    path = Path(path)
    if review is None:
        review = _project_review(path)
    if not path.is_file():
        raise SpecError(f"{path}: cannot read the published registry (no such file)")
    doc = load_yaml(path, what="published registry")  # strict: no aliases, no duplicate keys, size limit
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping with keys source, entries, relations")
    unknown = sorted(set(doc) - {"source", "entries", "relations"})
    if unknown:
        raise SpecError(f"{path}: unknown top-level key(s) {unknown}; allowed: source, entries, relations")
    if not isinstance(doc.get("entries"), list) or not doc["entries"]:
        raise SpecError(f"{path}: 'entries' must be a non-empty list")
    entries = tuple(
        entry_from_mapping(raw, where=_where(str(path), "entries", i, (raw or {}).get("id")))
        for i, raw in enumerate(doc["entries"])
    )
    relations = tuple(
        _relation(raw, where=_where(str(path), "relations", i, (raw or {}).get("id")))
        for i, raw in enumerate(doc.get("relations") or [])
    )
    if review is not None:
        from dataclasses import replace

        entries = tuple(replace(e, parts=ContrastId.parse(e.contrast, review)) if e.contrast else e
                        for e in entries)
    _check_ids(path, entries, relations)
    source = tuple((str(k), str(v)) for k, v in (doc.get("source") or {}).items())
    return Registry(entries=entries, relations=relations, source=source, path=str(path))


def _check_ids(path: Path, entries: tuple[Entry, ...], relations: tuple[Relation, ...]) -> None:
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpecError(f"{path}: duplicate entry id(s) {dupes}")
    known = set(ids)
    refs: list[tuple[str, str]] = []
    for e in entries:
        refs += [(e.id, r) for r in (e.of, e.reduction_from, e.reduction_to) if r]
    for r in relations:
        refs += [(r.id, p) for p in (*r.parts, *([r.total] if r.total else []))]
    bad = [f"{owner} -> {ref}" for owner, ref in refs if ref not in known]
    if bad:
        raise SpecError(f"{path}: reference(s) to unknown entry id(s): {bad}")
    for r in relations:
        if r.kind == RelationKind.AT_MOST and not any(e.contrast == r.contrast and e.k for e in entries):
            raise SpecError(
                f"{path}: relation {r.id!r} names contrast {r.contrast!r}, which has no entry with k"
            )
