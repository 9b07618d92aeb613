"""Instrument registry: each scale's range and direction of benefit.

A project's registry is its `extraction/instruments.yaml` on top of a library of well-known instruments
shipped in `metaexercise/extraction/data/instruments.yaml` (same format; an id in the project's file replaces
the library's). `project_registry` is the one registry `validate`, `import`, `template` and `run` use, for a
CSV folder and a workbook alike. An instrument names the outcome it measures: in the project's file, one of
the outcome ids the project declares (when it declares any); in the library, the plain word of the domain
("pain", "disability", ...), which a row's outcome must equal for the row to use it.
An instrument whose range is not printed by its source has `minimum`/`maximum` = None: it still gives
an SMD, but it cannot be put on an outcome's common scale (`Instrument.has_range` is False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.vocabulary import SheetVocabulary
from metaexercise.strict_yaml import line_of, load_yaml

#: The project's registry file, in its extraction folder.
FILE_NAME = "instruments.yaml"

_FIELDS = ("id", "name", "outcome", "minimum", "maximum", "higher_is_worse", "rank", "source")


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument. `higher_is_worse`: a higher score means more burden (pain, disability)."""

    id: str
    name: str
    outcome: str
    minimum: float | None
    maximum: float | None
    higher_is_worse: bool
    rank: int
    source: str

    @property
    def has_range(self) -> bool:
        """True when both ends of the scale are known and finite (needed to put it on a common scale)."""
        return (
            self.minimum is not None
            and self.maximum is not None
            and math.isfinite(self.minimum)
            and math.isfinite(self.maximum)
        )

    @property
    def width(self) -> float:
        """maximum - minimum; NaN when the range is not known."""
        return (self.maximum - self.minimum) if self.has_range else math.nan

    def contains(self, value: float) -> bool:
        """True when `value` lies within the instrument's range (unknown bounds never exclude)."""
        lo_ok = self.minimum is None or value >= self.minimum
        hi_ok = self.maximum is None or value <= self.maximum
        return lo_ok and hi_ok


@dataclass(frozen=True, slots=True)
class Registry:
    """The instruments known to a project, by id."""

    instruments: dict[str, Instrument]

    def __contains__(self, instrument_id: str) -> bool:
        return instrument_id in self.instruments

    def get(self, instrument_id: str) -> Instrument:
        """The instrument `instrument_id`; KeyError names every known id."""
        try:
            return self.instruments[instrument_id]
        except KeyError:
            raise KeyError(
                f"unknown instrument {instrument_id!r}; known: {', '.join(self.known())}. "
                "Add new instruments to extraction/instruments.yaml"
            ) from None

    def known(self) -> list[str]:
        return sorted(self.instruments, key=str.lower)

    def for_outcomes(self, outcome_ids) -> Registry:
        """The instruments measuring one of `outcome_ids` (all of them when `outcome_ids` is empty)."""
        ids = set(outcome_ids)
        return Registry({k: i for k, i in self.instruments.items() if not ids or i.outcome in ids})

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{f: getattr(i, f) for f in _FIELDS} for i in self.instruments.values()])


def _number(value, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExtractionError(f"{where}: expected a number or blank, got {value!r}")
    if not math.isfinite(value):
        raise ExtractionError(f"{where}: expected a finite number or blank, got {value!r}")
    return float(value)


def _parse(entries, path: str, outcomes: tuple[str, ...] = ()) -> dict[str, Instrument]:
    """The instruments of one file; `outcomes`: the declared outcome ids each must name (empty: any).
    Errors name the file, the line (when read by `load_yaml`), the entry and the field."""
    if not isinstance(entries, list):
        found = "a mapping" if isinstance(entries, dict) else f"a {type(entries).__name__}"
        raise ExtractionError(f"{path}: expected a list of instruments (YAML '- id: ...' items), found {found}")
    out: dict[str, Instrument] = {}
    for i, e in enumerate(entries, start=1):

        def where(key: str | None = None, e=e, i=i) -> str:
            line = line_of(e, key)  # the key's line, or the entry's
            return f"{path}{f', line {line}' if line else ''}, instrument #{i}"

        if not isinstance(e, dict):
            raise ExtractionError(f"{where()}: expected a mapping with fields {', '.join(_FIELDS)}, found "
                                  f"{'a list' if isinstance(e, list) else repr(e)}")
        missing = [f for f in ("id", "name", "outcome", "higher_is_worse") if f not in e]
        if missing:
            raise ExtractionError(f"{where()}: missing field(s) {', '.join(missing)}")
        unknown = sorted(map(str, set(e) - set(_FIELDS)))
        if unknown:
            raise ExtractionError(f"{where(unknown[0]) if unknown[0] in e else where()}: unknown field(s) "
                                  f"{', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
        for key in ("id", "name"):
            if not isinstance(e[key], str | int | float) or isinstance(e[key], bool) or not str(e[key]).strip():
                raise ExtractionError(f"{where(key)}: {key} must be a non-empty text, not {e[key]!r}")
        if not isinstance(e["outcome"], str) or not e["outcome"].strip():
            raise ExtractionError(f"{where('outcome')}: outcome must be the text of an outcome id, not "
                                  f"{e['outcome']!r}")
        if outcomes and e["outcome"] not in outcomes:
            raise ExtractionError(f"{where('outcome')}: outcome {e['outcome']!r} is not one of the declared "
                                  f"outcomes {', '.join(outcomes)}")
        if not isinstance(e["higher_is_worse"], bool):
            raise ExtractionError(f"{where('higher_is_worse')}: higher_is_worse must be true or false")
        lo, hi = _number(e.get("minimum"), where("minimum")), _number(e.get("maximum"), where("maximum"))
        if lo is not None and hi is not None and not lo < hi:
            raise ExtractionError(f"{where('minimum')}: minimum {lo:g} is not below maximum {hi:g}")
        rank = e.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
            raise ExtractionError(f"{where('rank')}: rank must be a whole number, not {rank!r}")
        source = e.get("source")
        if source is not None and not isinstance(source, str):
            raise ExtractionError(f"{where('source')}: source must be text, not {source!r}")
        inst = Instrument(
            id=str(e["id"]),
            name=str(e["name"]),
            outcome=e["outcome"],
            minimum=lo,
            maximum=hi,
            higher_is_worse=e["higher_is_worse"],
            rank=int(rank or 99),
            source=str(source or ""),
        )
        if inst.id in out:
            raise ExtractionError(f"{where('id')}: duplicate instrument id {inst.id!r}")
        out[inst.id] = inst
    return out


@lru_cache(maxsize=1)
def _builtin() -> tuple[Instrument, ...]:
    text = resources.files("metaexercise.extraction").joinpath("data/instruments.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(_parse(yaml.load(text, Loader=loader), "metaexercise/extraction/data/instruments.yaml").values())


def builtin_registry() -> Registry:
    """The instruments shipped with metaexercise (`metaexercise/extraction/data/instruments.yaml`)."""
    return Registry({i.id: i for i in _builtin()})


def load_registry(extra: str | Path | None = None, vocabulary: SheetVocabulary | None = None) -> Registry:
    """Built-in instruments plus those in `extra` (a YAML file, e.g. `extraction/instruments.yaml`)
    when it exists; an id in `extra` replaces the built-in one. With a `vocabulary` that declares outcomes,
    every instrument of `extra` must name one of them (ExtractionError names the file and the entry)."""
    reg = dict(builtin_registry().instruments)
    if extra is not None and Path(extra).exists():  # a folder of that name is an error, not an absence
        try:
            data = load_yaml(extra, what="instrument registry")
        except SpecError as exc:  # strict: no aliases, no duplicate keys, size limit; located text kept
            raise ExtractionError(str(exc)) from None
        reg.update(_parse(data or [], str(extra), vocabulary.outcome_ids if vocabulary is not None else ()))
    return Registry(reg)


def project_registry(extraction_folder: str | Path, vocabulary: SheetVocabulary | None = None) -> Registry:
    """The project's registry: the library plus `EXTRACTION_FOLDER/instruments.yaml` (`load_registry`)."""
    return load_registry(Path(extraction_folder) / FILE_NAME, vocabulary)
