"""The extraction form: every sheet, every column, its type, whether it is required, its allowed codes and
what it means. The single source for the XLSX template, for validation and for `extraction/README.md`.

The form follows the Cochrane Handbook's data-collection checklist (Li, Higgins, Deeks 2022, chapter 5,
Table 5.3.a): study, participants, interventions, outcomes, results, provenance. Its general columns are
fixed here; the codes that belong to one review (outcome ids, arm roles, control types, risk-of-bias domains
and judgements) and the study-level moderators (extra columns of the studies sheet) come from the project's
`SheetVocabulary` (`metaexercise.extraction.vocabulary`): `form(vocabulary)` builds the sheets from it.

Sheets (one CSV file each in `extraction/`):

* ``studies``       one row per study (design, inclusion status, the project's moderators, provenance)
* ``arms``          one row per arm (role, control type, matched or not, randomised n, dose)
* ``outcomes``      one row per arm x outcome x instrument x time point x kind of value, or one row per
                    between-group contrast when arm data are not reported
* ``risk_of_bias``  one row per study x domain
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from metaexercise.extraction.vocabulary import (
    DEFAULT_VOCABULARY,
    ROLE_UNCLEAR,
    ModeratorColumn,
    SheetVocabulary,
)

ColumnType = Literal["str", "int", "float", "bool", "code"]

#: Values accepted as booleans (case-insensitive); blank is "no value".
TRUE_WORDS = ("true", "yes", "1", "y")
FALSE_WORDS = ("false", "no", "0", "n")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of one sheet. `required`: the value may not be blank. `codes`: allowed values (for
    `type="code"`). `minimum`/`maximum`: bounds for numbers (`open_minimum` excludes the bound).
    `origin`: where the codes or bounds are declared when the project declares them (for messages)."""

    name: str
    type: ColumnType
    description: str
    required: bool = False
    codes: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    example: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Sheet:
    """One sheet (one CSV file): its columns in order and the columns that make a row unique."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    may_be_empty: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"sheet {self.name!r} has no column {name!r}")


# ---------------------------------------------------------------------------------------------- codes
# The form's own coded columns, defined once: an enum where code elsewhere compares against a value
# (members are strings, so `row["value_kind"] == ValueKind.CHANGE` reads the sheets' own text), a tuple of
# values for the column definitions, the template and messages. The project's codes are in its vocabulary.


class Design(StrEnum):
    """Randomisation unit (`studies.design`)."""

    PARALLEL = "parallel"
    CLUSTER = "cluster"


class InclusionStatus(StrEnum):
    """The review's decision on a study (`studies.inclusion_status`)."""

    INCLUDED = "included"
    EXCLUDED = "excluded"
    INCLUDED_WITHOUT_DATA = "included without usable data"
    CANDIDATE = "candidate (not verified)"


class ValueKind(StrEnum):
    """What an outcome row holds (`outcomes.value_kind`)."""

    BASELINE = "baseline"
    FINAL = "final"
    CHANGE = "change"
    CONTRAST = "contrast"


class ReportedAs(StrEnum):
    """Orientation of a printed value (`outcomes.reported_as`; see the column's description)."""

    SCALE = "scale"
    IMPROVEMENT = "improvement"
    UNCLEAR = "unclear"


class ContrastMeasure(StrEnum):
    """The measure of a contrast row (`outcomes.contrast_measure`)."""

    MD = "MD"
    SMD = "SMD"


class AsPrintedUse(StrEnum):
    """How a row kept as printed is used (`outcomes.as_printed_use`; blank = exclude)."""

    EXCLUDE = "exclude"
    USE = "use"
    NEGATE = "negate"


def _codes(choices) -> tuple[str, ...]:
    return tuple(str(c.value) for c in choices)


DESIGNS = _codes(Design)
INCLUSION_STATUSES = _codes(InclusionStatus)
VALUE_KINDS = _codes(ValueKind)
REPORTED_AS = _codes(ReportedAs)
CONTRAST_MEASURES = _codes(ContrastMeasure)
AS_PRINTED_USES = _codes(AsPrintedUse)

#: The sheets' names, in the order of the workbook and of the CSV files.
SHEET_NAMES = ("studies", "arms", "outcomes", "risk_of_bias")

# ---------------------------------------------------------------------------------------------- sheets
_PROVENANCE = (
    Column("source", "str", "DOI or URL of the page the numbers were copied from", required=True,
           example="https://doi.org/10.1000/182"),
    Column("location", "str", "where in the source: table, figure, page, paragraph", example="Table 3"),
    Column("extractor", "str", "who extracted the row (initials)", example="AB"),
    Column("notes", "str", "anything a second extractor should know"),
)

_STUDIES_HEAD = (
    Column("study_id", "str", "short unique id, first author + year, lower case", required=True,
           example="smith2019"),
    Column("first_author", "str", "first author's family name", required=True, example="Smith"),
    Column("year", "int", "publication year (blank when not known)", minimum=1900, maximum=2100, example="2019"),
    Column("country", "str", "country or countries where the trial ran", example="Netherlands"),
    Column("design", "code", "randomisation unit", codes=DESIGNS, example="parallel"),
    Column("icc", "float", "intra-cluster correlation (cluster trials)", minimum=0, maximum=1),
    Column("mean_cluster_size", "float", "mean cluster size m (cluster trials)", minimum=1),
    Column("inclusion_status", "code", "the review's decision", required=True, codes=INCLUSION_STATUSES,
           example="included"),
    Column("exclusion_reason", "str", "why excluded (required when excluded)"),
)


def _studies_tail(v: SheetVocabulary) -> tuple[Column, ...]:
    return (
        Column("adverse_events_total", "int", "adverse events reported, all arms", minimum=0),
        Column("adverse_events_related", "int", "adverse events at least possibly treatment-related",
               minimum=0),
        _judgement("rob_overall", "overall risk of bias of the study", v, required=False),
        Column("synthetic", "bool", "true for synthetic replica rows (never the trials' data)", required=True,
               example="false"),
        *_PROVENANCE,
    )


def _origin(v: SheetVocabulary, key: str) -> str:
    return f"{v.declared_in}, {key}" if v.declared_in else ""


def _coded(name: str, description: str, codes: tuple[str, ...], v: SheetVocabulary, key: str, *,
           required: bool = False, example: str = "") -> Column:
    """A column coded by the project's vocabulary; free text when the project declares no codes."""
    if not codes:
        return Column(name, "str", description, required=required, example=example)
    return Column(name, "code", description, required=required, codes=codes, example=example or codes[0],
                  origin=_origin(v, key))


def _judgement(name: str, description: str, v: SheetVocabulary, *, required: bool) -> Column:
    return _coded(name, description, v.rob_judgements, v, "risk_of_bias.judgements", required=required,
                  example="" if not required else v.rob_judgements[0])


def _moderator_column(m: ModeratorColumn, v: SheetVocabulary) -> Column:
    what = f"moderator: {m.label or m.name.replace('_', ' ')}"
    if m.categorical:
        return Column(m.name, "code", what, codes=m.levels, origin=_origin(v, "moderators"))
    return Column(m.name, "float", what, minimum=m.minimum, maximum=m.maximum, origin=_origin(v, "moderators"))


def _moderators(v: SheetVocabulary, fixed: tuple[Column, ...]) -> tuple[Column, ...]:
    """The studies sheet's columns for the declared moderators. A moderator named after a fixed column (e.g.
    `year`) is that column, when its kind fits; otherwise the declaration is an error."""
    by_name = {c.name: c for c in fixed}
    out = []
    for m in v.moderators:
        col = by_name.get(m.name)
        if col is None:
            out.append(_moderator_column(m, v))
        elif m.categorical and not (col.type == "code" and set(m.levels) <= set(col.codes)):
            raise ValueError(f"{v.declared_in or 'vocabulary'}: moderator {m.name!r} is the studies sheet's "
                             f"column {m.name!r} ({type_text(col)}), which its levels do not fit")
        elif not m.categorical and col.type not in ("int", "float"):
            raise ValueError(f"{v.declared_in or 'vocabulary'}: numeric moderator {m.name!r} is the studies "
                             f"sheet's column {m.name!r}, which is not numeric ({type_text(col)})")
    return tuple(out)


def _studies(v: SheetVocabulary) -> Sheet:
    tail = _studies_tail(v)
    return Sheet(
        name="studies",
        description="One row per study: design, inclusion status, the review's study-level moderators.",
        key=("study_id",),
        columns=(*_STUDIES_HEAD, *_moderators(v, _STUDIES_HEAD + tail), *tail),
    )


def _arms(v: SheetVocabulary) -> Sheet:
    exp, ctl = v.role_experimental, v.role_control
    return Sheet(
        name="arms",
        description="One row per arm of each study: its role, the type of control, and whether it is matched.",
        key=("study_id", "arm_id"),
        columns=(
            Column("study_id", "str", "study the arm belongs to (must be in studies)", required=True),
            Column("arm_id", "str", "short id of the arm, unique within the study", required=True, example="pt"),
            Column("arm_label", "str", "the arm as the paper names it", required=True),
            Column("arm_role", "code",
                   f"'{exp}' = the experimental arm, '{ctl}' = a control arm, '{ROLE_UNCLEAR}' = not stated",
                   required=True, codes=v.arm_roles, example=exp, origin=_origin(v, "arm_roles")),
            _coded("control_type", "type of control (control arms only)", v.control_types, v, "control_types"),
            Column("control_matched", "bool", "control is the experimental treatment minus what is tested"),
            Column("n_randomised", "int", "participants randomised to the arm", minimum=2),
            Column("sessions_per_week", "float", "sessions per week in this arm", minimum=0, open_minimum=True),
            Column("minutes_per_session", "float", "minutes per session in this arm", minimum=0,
                   open_minimum=True),
            *_PROVENANCE,
        ),
    )


def _outcomes(v: SheetVocabulary) -> Sheet:
    return Sheet(
        name="outcomes",
        description=(
            "One row per study x arm x outcome x instrument x time point x kind of value, holding what the paper "
            "reports (n, mean, SD; or SE, CI, p, t; or median with IQR or range). A between-group contrast "
            "(value_kind = contrast: MD or SMD with SE or CI) names the experimental arm in arm_id and the "
            "control arm in comparator_arm_id."
        ),
        key=("study_id", "arm_id", "comparator_arm_id", "outcome", "instrument", "timepoint_weeks", "value_kind"),
        columns=(
            Column("study_id", "str", "study (must be in studies)", required=True),
            Column("arm_id", "str", "arm (must be in arms); for a contrast, the experimental arm", required=True),
            Column("comparator_arm_id", "str", "contrast rows only: the control arm (must be in arms)"),
            _coded("outcome", "outcome (an id the review declares)", v.outcome_ids, v, "outcomes", required=True),
            Column("instrument", "str", "instrument id from the registry (see Instruments)", required=True,
                   example="ODI"),
            Column("timepoint_weeks", "float", "time since randomisation (0 = baseline), in the review's unit; "
                   "blank for a follow-up value when the review has no time points", minimum=0, example="12"),
            Column("timepoint_label", "str", "the time point as printed", example="6 months"),
            Column("value_kind", "code", "baseline, final (follow-up) value, change from baseline, or contrast",
                   required=True, codes=VALUE_KINDS),
            Column("reported_as", "code",
                   "orientation of the printed value: 'scale' = the instrument's own orientation (change = "
                   "follow-up minus baseline; contrast = experimental minus control); 'improvement' = positive "
                   "means improvement / favours the experimental arm; 'unclear' = not stated",
                   required=True, codes=REPORTED_AS, example="scale"),
            Column("contrast_measure", "code", "contrast rows: MD (instrument units) or SMD",
                   codes=CONTRAST_MEASURES),
            Column("n", "int", "participants analysed in the arm (contrast rows: leave blank)", minimum=2),
            Column("mean", "float", "mean (or the contrast's estimate)"),
            Column("sd", "float", "standard deviation", minimum=0, open_minimum=True),
            Column("se", "float", "standard error", minimum=0, open_minimum=True),
            Column("ci_low", "float", "lower confidence limit"),
            Column("ci_high", "float", "upper confidence limit"),
            Column("ci_level", "float", "confidence level in percent (blank = 95)", minimum=50, maximum=99.99),
            Column("p_value", "float", "two-sided p value (for SD from p)", minimum=0, maximum=1,
                   open_minimum=True),
            Column("t_value", "float", "t statistic (for SD from t)"),
            Column("median", "float", "median"),
            Column("q1", "float", "first quartile"),
            Column("q3", "float", "third quartile"),
            Column("minimum", "float", "smallest value"),
            Column("maximum", "float", "largest value"),
            Column("n_individualized", "int", "contrast rows: n analysed in the experimental arm", minimum=2),
            Column("n_control", "int", "contrast rows: n analysed in the control arm", minimum=2),
            Column("preferred", "bool", "true marks the row to pool when several instruments measure one outcome"),
            Column("as_printed", "str",
                   "reason why a value that breaks a rule is kept as printed (e.g. 'estimate outside its CI; "
                   "minus sign probably lost'); turns that error into a warning"),
            Column("as_printed_use", "code",
                   "how to use an as_printed row: exclude (default), use as printed, or negate the estimate",
                   codes=AS_PRINTED_USES),
            *_PROVENANCE,
        ),
    )


def _risk_of_bias(v: SheetVocabulary) -> Sheet:
    return Sheet(
        name="risk_of_bias",
        description="One row per study x domain of the review's risk-of-bias tool: one judgement each.",
        key=("study_id", "domain"),
        may_be_empty=True,
        columns=(
            Column("study_id", "str", "study (must be in studies)", required=True),
            _coded("domain", "risk-of-bias domain", v.rob_domains, v, "risk_of_bias.domains", required=True),
            _judgement("judgement", "the judgement for the domain", v, required=True),
            Column("support", "str", "quote or reason supporting the judgement"),
            *_PROVENANCE,
        ),
    )


@dataclass(frozen=True, slots=True)
class Form:
    """The four sheets of one project's extraction form, built from its vocabulary (`form`)."""

    vocabulary: SheetVocabulary
    sheets: tuple[Sheet, ...]

    @property
    def studies(self) -> Sheet:
        return self.sheets[0]

    @property
    def arms(self) -> Sheet:
        return self.sheets[1]

    @property
    def outcomes(self) -> Sheet:
        return self.sheets[2]

    @property
    def risk_of_bias(self) -> Sheet:
        return self.sheets[3]

    def sheet(self, name: str) -> Sheet:
        """The sheet called `name`; KeyError lists the known sheets."""
        for sh in self.sheets:
            if sh.name == name:
                return sh
        raise KeyError(f"unknown sheet {name!r}; known: {', '.join(SHEET_NAMES)}")

    def dictionary_markdown(self) -> str:
        """The column dictionary as Markdown: one table per sheet (used in `extraction/README.md`)."""
        lines: list[str] = []
        for sh in self.sheets:
            lines += [f"### `{sh.name}` ({csv_name(sh.name)})", "", sh.description, "",
                      f"Unique key: {', '.join(f'`{k}`' for k in sh.key)}.", "",
                      "| column | required | type / allowed values | meaning | example |",
                      "|---|---|---|---|---|"]
            for c in sh.columns:
                lines.append(f"| `{c.name}` | {'yes' if c.required else ''} | {type_text(c)} | {c.description} "
                             f"| {c.example} |")
            lines.append("")
        return "\n".join(lines)


@lru_cache(maxsize=16)
def form(vocabulary: SheetVocabulary | None = None) -> Form:
    """The extraction form for a project's vocabulary (None: the generic `DEFAULT_VOCABULARY`). Raises
    ValueError when a declared moderator clashes with a fixed column of the studies sheet."""
    v = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    return Form(v, (_studies(v), _arms(v), _outcomes(v), _risk_of_bias(v)))


def csv_name(sheet_name: str) -> str:
    """File name of a sheet in a CSV folder (`studies` -> `studies.csv`)."""
    return f"{sheet_name}.csv"


def type_text(col: Column) -> str:
    """A column's type and bounds, or its allowed codes, in words (template and README)."""
    if col.type == "code":
        return "one of: " + "; ".join(f"`{c}`" for c in col.codes)
    bounds = []
    if col.minimum is not None:
        bounds.append(f"{'>' if col.open_minimum else '≥'} {col.minimum:g}")
    if col.maximum is not None:
        bounds.append(f"≤ {col.maximum:g}")
    return col.type + (f" ({', '.join(bounds)})" if bounds else "")


def dictionary_markdown(vocabulary: SheetVocabulary | None = None) -> str:
    """The column dictionary of `form(vocabulary)` as Markdown."""
    return form(vocabulary).dictionary_markdown()
