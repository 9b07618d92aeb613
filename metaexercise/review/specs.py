"""Analysis specs: `analyses/*.yaml` declare every analysis the review reports, as data.

A spec file holds one top-level key, `analyses`, a list of mappings. Files are read strictly
(`metaexercise.strict_yaml`: no aliases, no duplicate keys); an unknown key, a wrong type or a value outside
its allowed set raises `SpecError` naming the file, the line, the analysis and the key. `published.yaml` and
`grade.yaml` live in the same folder but are not analysis specs (they hold the review's printed numbers and the
reviewers' GRADE judgements) and are skipped here, as is any file the project's `components` names.

The allowed values are the project's (`review.yaml`, `metaexercise.review.declaration`): an analysis names a
declared outcome, a declared comparator class (or "any", every class together), and a declared follow-up
window (required exactly when the project declares windows; a project without windows may name the
`timepoint` to use when its studies report several). Filters may select on declared categorical moderators,
the declared control types, the declared risk-of-bias judgements (`rob_overall`), `control_matched`, and
declared numeric moderators (`<name>_min`, `<name>_max`). Meta-regression moderators are either a declared
moderator (`{moderator: name}`; a categorical one is coded as treatment contrasts, its first declared level
the reference, columns named like ``psych_component[CBT]``) or an explicit column (`{name, column}`, with
`equals`/`in` for a 0/1 indicator). Model settings are the engine's (`rma`'s methods and tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaexercise.engine.model import METHODS, TESTS
from metaexercise.errors import SpecError
from metaexercise.review.vocabulary import AnalysisKind
from metaexercise.strict_yaml import line_of, load_yaml
from metaexercise.vocabulary import codes

if TYPE_CHECKING:
    from metaexercise.review.declaration import Review

#: Files in analyses/ that belong to other parts of the toolkit, not to the analysis runner.
NOT_SPECS = frozenset({"published.yaml", "grade.yaml"})

KINDS = codes(AnalysisKind)
#: Filters on columns every project's sheets have (besides the declared moderators).
BOOLEAN_FILTERS = ("control_matched",)
#: The comparison column holding the control arm's type, and the one holding the overall risk of bias.
CONTROL_TYPE, ROB_OVERALL, COMPARATOR = "control_type", "rob_overall", "comparator"

_ANALYSIS_KEYS = {
    "id", "label", "kind", "outcome", "comparator", "window", "timepoint", "group", "filters",
    "exclude_outliers", "model", "moderators", "source", "note", "published_as",
}
_MODEL_KEYS = {"method", "test", "level"}
_MODERATOR_KEYS = {"name", "column", "equals", "in", "label"}
_DECLARED_MODERATOR_KEYS = {"moderator", "label"}


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Model settings as `rma`'s arguments (metafor defaults: REML, z-test, 95%)."""

    method: str = "REML"
    test: str = "z"
    level: float = 95.0


@dataclass(frozen=True, slots=True)
class Moderator:
    """One meta-regression predictor: a numeric column as is, an indicator (column == value / in values),
    or a categorical column coded as treatment contrasts against `levels[0]` (one column per other level,
    named ``name[level]``, as R's `factor` with `contr.treatment`)."""

    name: str
    column: str
    values: tuple[Any, ...] | None = None
    label: str = ""
    levels: tuple[str, ...] = ()

    @property
    def is_indicator(self) -> bool:
        return self.values is not None

    @property
    def is_factor(self) -> bool:
        return bool(self.levels)

    @property
    def terms(self) -> tuple[str, ...]:
        """The model's columns for this moderator."""
        if self.is_factor:
            return tuple(f"{self.name}[{lev}]" for lev in self.levels[1:])
        return (self.name,)

    def term_labels(self) -> dict[str, str]:
        label = self.label or self.name
        if self.is_factor:
            return {f"{self.name}[{lev}]": f"{label}: {lev} (vs {self.levels[0]})" for lev in self.levels[1:]}
        return {self.name: label}


@dataclass(frozen=True, slots=True)
class Filter:
    """Keep comparisons whose `column` is in `values` (categorical/boolean), >= `minimum` or <= `maximum`
    (numeric)."""

    column: str
    values: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        if self.minimum is not None:
            return f"{self.column} >= {self.minimum:g}"
        if self.maximum is not None:
            return f"{self.column} <= {self.maximum:g}"
        return f"{self.column} in {{{', '.join(str(v) for v in self.values)}}}"


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """One declared analysis. Main contrasts are named `{outcome}_{comparator}_{window}`."""

    id: str
    label: str
    kind: AnalysisKind
    outcome: str
    comparator: str | None = None
    window: str | None = None
    timepoint: float | None = None
    group: str | None = None
    filters: tuple[Filter, ...] = ()
    exclude_outliers: bool = False
    model: ModelSettings = field(default_factory=ModelSettings)
    moderators: tuple[Moderator, ...] = ()
    source: str = ""
    note: str = ""
    file: str = ""
    #: ids of the published registry's pooled results this analysis reproduces under another name
    published_as: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        """The meta-regression's moderator columns, in order (factors expanded)."""
        return tuple(t for m in self.moderators for t in m.terms)


def _where(file: str, raw, ident: str | None, position: int, key: str | None = None) -> str:
    line = line_of(raw, key) if raw is not None else None
    at = f"{file}" + (f", line {line}" if line else "")
    return f"{at}, analysis '{ident}'" if ident else f"{at}, analysis {position}"


def _fail(where: str, message: str) -> SpecError:
    return SpecError(f"{where}: {message}")


def _choice(where: str, key: str, value: Any, allowed: tuple[str, ...], what: str = "") -> str:
    if not isinstance(value, str) or value not in allowed:
        extra = f" ({what})" if what else ""
        raise _fail(where, f"key '{key}' is {value!r}; allowed{extra}: {', '.join(allowed) or 'none declared'}")
    return value


def categorical_columns(review: Review) -> dict[str, tuple[str, ...]]:
    """Comparison columns with a declared set of values: the categorical moderators, the control types and
    the overall risk-of-bias judgement."""
    out = {m.name: m.levels for m in review.moderators if m.categorical}
    out[CONTROL_TYPE] = review.control_types
    out[ROB_OVERALL] = review.risk_of_bias.judgements
    return out


def _parse_filters(where: str, raw: Any, review: Review) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail(where, f"key 'filters' must be a mapping, got {type(raw).__name__}")
    categorical = categorical_columns(review)
    numeric = [m.name for m in review.moderators if not m.categorical]
    out: list[Filter] = []
    for key in sorted(raw):
        value = raw[key]
        if key in categorical:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in categorical[key]]
            if bad or not values:
                raise _fail(where, f"filter '{key}' has value(s) {bad or values!r}; allowed: "
                                   f"{', '.join(categorical[key])}")
            out.append(Filter(key, values=tuple(values)))
        elif key in BOOLEAN_FILTERS:
            if not isinstance(value, bool):
                raise _fail(where, f"filter '{key}' must be true or false, got {value!r}")
            out.append(Filter(key, values=(value,)))
        elif key.endswith(("_min", "_max")) and key[:-4] in numeric:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(where, f"filter '{key}' must be a number, got {value!r}")
            bound = {"minimum": float(value)} if key.endswith("_min") else {"maximum": float(value)}
            out.append(Filter(key[:-4], **bound))
        else:
            allowed = sorted([*categorical, *BOOLEAN_FILTERS, *(f"{n}_min" for n in numeric),
                              *(f"{n}_max" for n in numeric)])
            raise _fail(where, f"unknown filter '{key}'; allowed (from review.yaml): {', '.join(allowed)}")
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


def _declared_moderator(at: str, name: Any, label: str, review: Review) -> Moderator:
    comparators = tuple(c.id for c in review.comparators)
    if name == COMPARATOR and len(comparators) > 1:
        return Moderator(COMPARATOR, COMPARATOR, None, label or "comparator class", comparators)
    names = [m.name for m in review.moderators]
    if not isinstance(name, str) or name not in names:
        more = [COMPARATOR] if len(comparators) > 1 else []
        raise _fail(at, f"key 'moderator' is {name!r}; allowed (declared in review.yaml): "
                        f"{', '.join([*names, *more]) or 'none declared'}")
    decl = review.moderator(name)
    return Moderator(decl.name, decl.name, None, label or decl.label, decl.levels if decl.categorical else ())


def _parse_moderators(where: str, raw: Any, review: Review) -> tuple[Moderator, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "key 'moderators' must be a non-empty list")
    categorical = {**categorical_columns(review), COMPARATOR: tuple(c.id for c in review.comparators)}
    out = []
    for i, item in enumerate(raw, start=1):
        at = f"{where}, moderator {i}"
        if isinstance(item, str):
            out.append(_declared_moderator(at, item, "", review))
            continue
        if not isinstance(item, dict):
            raise _fail(at, "must be a declared moderator's name, {moderator: name}, or a mapping with 'name' "
                            "and 'column'")
        if "moderator" in item:
            unknown = set(item) - _DECLARED_MODERATOR_KEYS
            if unknown:
                raise _fail(at, f"unknown key(s) {', '.join(sorted(unknown))} beside 'moderator'; allowed: "
                                f"{', '.join(sorted(_DECLARED_MODERATOR_KEYS))}")
            out.append(_declared_moderator(at, item["moderator"], str(item.get("label", "")), review))
            continue
        unknown = set(item) - _MODERATOR_KEYS
        if unknown:
            raise _fail(at, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                        f"{', '.join(sorted(_MODERATOR_KEYS | {'moderator'}))}")
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
        allowed = categorical.get(item["column"])
        if values is not None and allowed is not None and any(v not in allowed for v in values):
            bad = [v for v in values if v not in allowed]
            raise _fail(at, f"value(s) {bad!r} not allowed for column '{item['column']}'; allowed: "
                        f"{', '.join(allowed)}")
        out.append(Moderator(item["name"], item["column"], values, str(item.get("label", ""))))
    names = [t for m in out for t in m.terms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(where, f"duplicate moderator name(s): {', '.join(dupes)}")
    return tuple(out)


def parse_spec(raw: Any, file: str, position: int, *, review: Review) -> AnalysisSpec:
    """Validate one mapping from a spec file against the project's `review`; `position` (1-based) is used in
    messages until `id` is known."""
    if not isinstance(raw, dict):
        raise _fail(_where(file, None, None, position), f"each analysis must be a mapping, got {type(raw).__name__}")
    ident = raw["id"] if isinstance(raw.get("id"), str) else None

    def where(key: str | None = None) -> str:
        return _where(file, raw, ident, position, key)

    unknown = set(raw) - _ANALYSIS_KEYS
    if unknown:
        first = sorted(map(str, unknown))[0]
        raise _fail(where(first), f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: "
                    f"{', '.join(sorted(_ANALYSIS_KEYS))}")
    required = ["id", "label", "kind", "outcome"]
    if review.comparators:
        required.append("comparator")
    if review.windows:
        required.append("window")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _fail(where(), f"missing key(s) {', '.join(missing)}")
    for key in ("id", "label"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise _fail(where(key), f"key '{key}' must be a non-empty string")
    kind = AnalysisKind(_choice(where("kind"), "kind", raw["kind"], KINDS))
    outcome = _choice(where("outcome"), "outcome", raw["outcome"], review.outcome_ids, "declared in review.yaml")
    comparator = None
    if "comparator" in raw:
        comparator = _choice(where("comparator"), "comparator", raw["comparator"], review.comparator_ids,
                             "declared in review.yaml")
    window = None
    if "window" in raw:
        if not review.windows:
            raise _fail(where("window"), f"key 'window' is {raw['window']!r}, but review.yaml declares no "
                                         "follow-up windows (name a `timepoint` instead, or declare windows)")
        window = _choice(where("window"), "window", raw["window"], review.window_ids, "declared in review.yaml")
    timepoint = raw.get("timepoint")
    if timepoint is not None:
        if review.windows:
            raise _fail(where("timepoint"), "key 'timepoint' is for projects without follow-up windows; this one "
                                            "declares windows: name one with 'window'")
        if isinstance(timepoint, bool) or not isinstance(timepoint, int | float) or timepoint < 0:
            raise _fail(where("timepoint"), f"key 'timepoint' must be a number >= 0 (in {review.timepoint_unit}), "
                                            f"got {timepoint!r}")
        timepoint = float(timepoint)
    group = raw.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise _fail(where("group"), f"key 'group' must be a non-empty string, got {group!r}")
    exclude_outliers = raw.get("exclude_outliers", False)
    if not isinstance(exclude_outliers, bool):
        raise _fail(where("exclude_outliers"), f"key 'exclude_outliers' must be true or false, got {exclude_outliers!r}")
    moderators = _parse_moderators(where("moderators"), raw.get("moderators"), review)
    if kind is AnalysisKind.META_REGRESSION and not moderators:
        raise _fail(where(), "a meta-regression needs 'moderators'")
    if kind is AnalysisKind.META_ANALYSIS and moderators:
        raise _fail(where("moderators"), "'moderators' is only allowed with kind: meta-regression")
    for key in ("source", "note"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(where(key), f"key '{key}' must be a string")
    published_as = raw.get("published_as") or []
    if not isinstance(published_as, list) or not all(isinstance(x, str) and x for x in published_as):
        raise _fail(where("published_as"), "key 'published_as' must be a list of registry ids")
    return AnalysisSpec(
        id=raw["id"], label=raw["label"], kind=kind, outcome=outcome, comparator=comparator, window=window,
        timepoint=timepoint, group=group, filters=_parse_filters(where("filters"), raw.get("filters"), review),
        exclude_outliers=exclude_outliers, model=_parse_model(where("model"), raw.get("model")),
        moderators=moderators, source=raw.get("source", ""), note=raw.get("note", ""), file=file,
        published_as=tuple(published_as),
    )


def load_spec_file(path: str | Path, *, review: Review) -> tuple[AnalysisSpec, ...]:
    """Read one spec file strictly and validate every analysis in it against `review`."""
    path = Path(path)
    data = load_yaml(path, what="analysis spec file")
    if data is None:
        raise SpecError(f"{path}: the file is empty; it must hold one top-level key 'analyses' (a list)")
    if not isinstance(data, dict) or set(data) != {"analyses"}:
        if isinstance(data, dict):
            found = ", ".join(sorted(map(str, data))) or "nothing"
            extra = sorted((k for k in data if k != "analyses"), key=str)
        else:
            found, extra = f"a {type(data).__name__}, not a mapping", []
        line = line_of(data, extra[0]) if extra else line_of(data)
        raise SpecError(f"{path}{f', line {line}' if line else ''}: the file must hold exactly one top-level key "
                        f"'analyses', found {found}")
    if not isinstance(data["analyses"], list):
        raise SpecError(f"{path}, line {line_of(data, 'analyses')}: 'analyses' must be a list")
    return tuple(parse_spec(item, path.name, i, review=review) for i, item in enumerate(data["analyses"], start=1))


def _component_files(folder: Path, review: Review) -> set[str]:
    """Files of `folder` that the project's components name (the published registry, GRADE judgements)."""
    root = folder.parent
    out = set()
    for rel in (review.components.published, review.components.grade_judgements):
        if rel and (root / rel).parent.resolve() == folder.resolve():
            out.add(Path(rel).name)
    return out


def load_specs(folder: str | Path, *, review: Review) -> tuple[AnalysisSpec, ...]:
    """All analysis specs in `folder/*.yaml` (files sorted by name), ids unique across files, validated
    against the project's `review`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"{folder}: analyses folder not found")
    skip = NOT_SPECS | _component_files(folder, review)
    specs: list[AnalysisSpec] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name in skip:
            continue
        for spec in load_spec_file(path, review=review):
            if spec.id in seen:
                raise SpecError(f"{path.name}: analysis id '{spec.id}' is also declared in {seen[spec.id]}")
            seen[spec.id] = path.name
            specs.append(spec)
    if not specs:
        raise SpecError(f"{folder}: no analysis specs (*.yaml) found")
    return tuple(specs)
