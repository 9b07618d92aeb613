"""Analysis specs: `analyses/*.yaml` declare every analysis the review reports, as data.

A spec file holds one top-level key, `analyses`, a list of mappings. Files are read with `yaml.safe_load`;
an unknown key, a wrong type or a value outside its allowed set raises `SpecError` naming the file, the
analysis and the key. `published.yaml` and `grade.yaml` live in the same folder but are not analysis specs
(they hold the review's printed numbers and the reviewers' GRADE judgements) and are skipped here.

Outcome, comparator and window follow the review's Methods ("Statistics: Meta-analysis and -regression",
Fleckenstein et al. 2022, medRxiv 2021.12.16.21267900 v2): pain or disability; individualized exercise vs
active (non-individualized exercise) or vs passive (passive treatment, usual care or advice, true control,
medication); short term (closest to 12 weeks) or long term (closest to 12 months). The allowed values are
the review's vocabulary (`metaexercise.review.vocabulary`); model settings are the engine's (`rma`'s
methods and tests, `metaexercise.engine.model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metaexercise.engine.model import METHODS, TESTS
from metaexercise.errors import SpecError
from metaexercise.extraction import schema
from metaexercise.extraction.comparisons import Window
from metaexercise.extraction.schema import Outcome
from metaexercise.review.vocabulary import POOLED_CLASSES, REVIEW_OUTCOMES, AnalysisKind, ComparatorClass
from metaexercise.vocabulary import codes

#: Files in analyses/ that belong to other parts of the toolkit, not to the analysis runner.
NOT_SPECS = frozenset({"published.yaml", "grade.yaml"})

#: Allowed values of the spec keys (METHODS and TESTS, for `model`, are `rma`'s).
OUTCOMES = codes(REVIEW_OUTCOMES)
#: "any" pools both comparator classes (the review's meta-regressions, which use the class as a moderator).
COMPARATORS = codes(ComparatorClass)
WINDOWS = codes(Window)
KINDS = codes(AnalysisKind)

#: Study / arm characteristics a filter may select on, with the values each may take: the extraction
#: form's own columns and codes (`metaexercise.extraction.schema`), so a spec reads like the sheets it selects from.
CATEGORICAL_FILTERS: dict[str, tuple[str, ...]] = {
    "intervention_type": schema.INTERVENTION_TYPES,
    "psych_component": schema.PSYCH_COMPONENTS,
    "control_type": schema.CONTROL_TYPES,
    "rob_overall": schema.ROB_JUDGEMENTS,
}
BOOLEAN_FILTERS = ("control_matched",)
#: numeric filters: `<column>_min` keeps rows with column >= value.
NUMERIC_FILTERS = ("lbp_duration_required_weeks_min",)

_ANALYSIS_KEYS = {
    "id", "label", "kind", "outcome", "comparator", "window", "filters", "exclude_outliers", "model",
    "moderators", "source", "note",
}
_REQUIRED_KEYS = ("id", "label", "kind", "outcome", "comparator", "window")
_MODEL_KEYS = {"method", "test", "level"}
_MODERATOR_KEYS = {"name", "column", "equals", "in", "label"}


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Model settings as `rma`'s arguments (metafor defaults: REML, z-test, 95%)."""

    method: str = "REML"
    test: str = "z"
    level: float = 95.0


@dataclass(frozen=True, slots=True)
class Moderator:
    """One meta-regression predictor: a numeric column as is, or an indicator (column == value / in values)."""

    name: str
    column: str
    values: tuple[Any, ...] | None = None
    label: str = ""

    @property
    def is_indicator(self) -> bool:
        return self.values is not None


@dataclass(frozen=True, slots=True)
class Filter:
    """Keep comparisons whose `column` is in `values` (categorical/boolean) or >= `minimum` (numeric)."""

    column: str
    values: tuple[Any, ...] | None = None
    minimum: float | None = None

    def describe(self) -> str:
        if self.minimum is not None:
            return f"{self.column} >= {self.minimum:g}"
        return f"{self.column} in {{{', '.join(str(v) for v in self.values)}}}"


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """One declared analysis. `id` is `{outcome}_{comparator}_{window}` for the 8 main contrasts."""

    id: str
    label: str
    kind: AnalysisKind
    outcome: Outcome
    comparator: ComparatorClass
    window: Window
    filters: tuple[Filter, ...] = ()
    exclude_outliers: bool = False
    model: ModelSettings = field(default_factory=ModelSettings)
    moderators: tuple[Moderator, ...] = ()
    source: str = ""
    note: str = ""
    file: str = ""


def _fail(where: str, message: str) -> SpecError:
    return SpecError(f"{where}: {message}")


def _choice(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(where, f"key '{key}' is {value!r}; allowed: {', '.join(allowed)}")
    return value


def _parse_filters(where: str, raw: Any) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail(where, f"key 'filters' must be a mapping, got {type(raw).__name__}")
    out: list[Filter] = []
    for key in sorted(raw):
        value = raw[key]
        if key in CATEGORICAL_FILTERS:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in CATEGORICAL_FILTERS[key]]
            if bad or not values:
                raise _fail(
                    where,
                    f"filter '{key}' has value(s) {bad or values!r}; allowed: {', '.join(CATEGORICAL_FILTERS[key])}",
                )
            out.append(Filter(key, values=tuple(values)))
        elif key in BOOLEAN_FILTERS:
            if not isinstance(value, bool):
                raise _fail(where, f"filter '{key}' must be true or false, got {value!r}")
            out.append(Filter(key, values=(value,)))
        elif key in NUMERIC_FILTERS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(where, f"filter '{key}' must be a number, got {value!r}")
            out.append(Filter(key.removesuffix("_min"), minimum=float(value)))
        else:
            allowed = sorted([*CATEGORICAL_FILTERS, *BOOLEAN_FILTERS, *NUMERIC_FILTERS])
            raise _fail(where, f"unknown filter '{key}'; allowed: {', '.join(allowed)}")
    return tuple(out)


def _parse_model(where: str, raw: Any) -> ModelSettings:
    if raw is None:
        return ModelSettings()
    if not isinstance(raw, dict):
        raise _fail(where, "key 'model' must be a mapping")
    unknown = set(raw) - _MODEL_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) in 'model': {', '.join(sorted(unknown))}; allowed: "
                    f"{', '.join(sorted(_MODEL_KEYS))}")
    method = _choice(where, "model.method", raw.get("method", "REML"), METHODS)
    test = _choice(where, "model.test", raw.get("test", "z"), TESTS)
    level = raw.get("level", 95)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 100:
        raise _fail(where, f"key 'model.level' must be a percentage between 0 and 100, got {level!r}")
    return ModelSettings(method=method, test=test, level=float(level))


def _parse_moderators(where: str, raw: Any) -> tuple[Moderator, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "key 'moderators' must be a non-empty list")
    out = []
    for i, item in enumerate(raw, start=1):
        at = f"{where}, moderator {i}"
        if not isinstance(item, dict):
            raise _fail(at, "must be a mapping with 'name' and 'column'")
        unknown = set(item) - _MODERATOR_KEYS
        if unknown:
            raise _fail(at, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                        f"{', '.join(sorted(_MODERATOR_KEYS))}")
        for key in ("name", "column"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise _fail(at, f"key '{key}' must be a non-empty string")
        if "equals" in item and "in" in item:
            raise _fail(at, "give either 'equals' or 'in', not both")
        values = None
        if "equals" in item:
            values = (item["equals"],)
        elif "in" in item:
            if not isinstance(item["in"], list) or not item["in"]:
                raise _fail(at, "key 'in' must be a non-empty list")
            values = tuple(item["in"])
        allowed = {**CATEGORICAL_FILTERS, "comparator": codes(POOLED_CLASSES)}.get(item["column"])
        if values is not None and allowed is not None and any(v not in allowed for v in values):
            bad = [v for v in values if v not in allowed]
            raise _fail(at, f"value(s) {bad!r} not allowed for column '{item['column']}'; allowed: "
                        f"{', '.join(allowed)}")
        out.append(Moderator(item["name"], item["column"], values, str(item.get("label", ""))))
    names = [m.name for m in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(where, f"duplicate moderator name(s): {', '.join(dupes)}")
    return tuple(out)


def parse_spec(raw: Any, file: str, position: int) -> AnalysisSpec:
    """Validate one mapping from a spec file; `position` (1-based) is used in messages until `id` is known."""
    where = f"{file}, analysis {position}"
    if not isinstance(raw, dict):
        raise _fail(where, f"each analysis must be a mapping, got {type(raw).__name__}")
    if isinstance(raw.get("id"), str):
        where = f"{file}, analysis '{raw['id']}'"
    unknown = set(raw) - _ANALYSIS_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: "
                    f"{', '.join(sorted(_ANALYSIS_KEYS))}")
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(missing)}")
    for key in ("id", "label"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise _fail(where, f"key '{key}' must be a non-empty string")
    kind = AnalysisKind(_choice(where, "kind", raw["kind"], KINDS))
    outcome = Outcome(_choice(where, "outcome", raw["outcome"], OUTCOMES))
    comparator = ComparatorClass(_choice(where, "comparator", raw["comparator"], COMPARATORS))
    window = Window(_choice(where, "window", raw["window"], WINDOWS))
    exclude_outliers = raw.get("exclude_outliers", False)
    if not isinstance(exclude_outliers, bool):
        raise _fail(where, f"key 'exclude_outliers' must be true or false, got {exclude_outliers!r}")
    moderators = _parse_moderators(where, raw.get("moderators"))
    if kind is AnalysisKind.META_REGRESSION and not moderators:
        raise _fail(where, "a meta-regression needs 'moderators'")
    if kind is AnalysisKind.META_ANALYSIS and moderators:
        raise _fail(where, "'moderators' is only allowed with kind: meta-regression")
    for key in ("source", "note"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(where, f"key '{key}' must be a string")
    return AnalysisSpec(
        id=raw["id"],
        label=raw["label"],
        kind=kind,
        outcome=outcome,
        comparator=comparator,
        window=window,
        filters=_parse_filters(where, raw.get("filters")),
        exclude_outliers=exclude_outliers,
        model=_parse_model(where, raw.get("model")),
        moderators=moderators,
        source=raw.get("source", ""),
        note=raw.get("note", ""),
        file=file,
    )


def load_spec_file(path: str | Path) -> tuple[AnalysisSpec, ...]:
    """Read one spec file with `yaml.safe_load` and validate every analysis in it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"analyses"}:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise SpecError(f"{path.name}: the file must hold exactly one top-level key 'analyses', found {found}")
    if not isinstance(data["analyses"], list):
        raise SpecError(f"{path.name}: 'analyses' must be a list")
    return tuple(parse_spec(item, path.name, i) for i, item in enumerate(data["analyses"], start=1))


def load_specs(folder: str | Path) -> tuple[AnalysisSpec, ...]:
    """All analysis specs in `folder/*.yaml` (files sorted by name), ids unique across files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"{folder}: analyses folder not found")
    specs: list[AnalysisSpec] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name in NOT_SPECS:
            continue
        for spec in load_spec_file(path):
            if spec.id in seen:
                raise SpecError(f"{path.name}: analysis id '{spec.id}' is also declared in {seen[spec.id]}")
            seen[spec.id] = path.name
            specs.append(spec)
    if not specs:
        raise SpecError(f"{folder}: no analysis specs (*.yaml) found")
    return tuple(specs)
