"""The extraction form: every sheet, every column, its type, whether it is required, its allowed codes and
what it means. The single source for the XLSX template, for validation and for `extraction/README.md`.

The form follows the review's own data collection form (Fleckenstein et al. 2022, Methods "Data
extraction": an Excel form, piloted, two extractors) and the Cochrane Handbook chapter 5 checklist
(Li, Higgins, Deeks 2022, Table 5.3.a): study, participants, interventions, outcomes, results, provenance.

Sheets (one CSV file each in `extraction/`):

* ``studies``       one row per study (design, population, intervention, inclusion status, provenance)
* ``arms``          one row per arm (role, control type, matched or not, randomised n, dose)
* ``outcomes``      one row per arm x outcome x instrument x time point x kind of value, or one row per
                    between-group contrast when arm data are not reported
* ``risk_of_bias``  one row per study x domain (the review's five Cochrane RoB domains)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from metaexercise.vocabulary import RobDomain, RobJudgement, codes

ColumnType = Literal["str", "int", "float", "bool", "code"]

#: Values accepted as booleans (case-insensitive); blank is "no value".
TRUE_WORDS = ("true", "yes", "1", "y")
FALSE_WORDS = ("false", "no", "0", "n")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of one sheet. `required`: the value may not be blank. `codes`: allowed values (for
    `type="code"`). `minimum`/`maximum`: bounds for numbers (`open_minimum` excludes the bound)."""

    name: str
    type: ColumnType
    description: str
    required: bool = False
    codes: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    example: str = ""


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
# Each coded column's allowed values, defined once: an enum where code elsewhere compares against a value
# (members are strings, so `row["arm_role"] == ArmRole.CONTROL` reads the sheets' own text), a tuple of
# values (`codes(...)`) for the column definitions, the template and messages.


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


class ArmRole(StrEnum):
    """Individualized exercise arm or control arm (`arms.arm_role`)."""

    INDIVIDUALIZED = "individualized"
    CONTROL = "control"
    UNCLEAR = "unclear"


class ControlType(StrEnum):
    """The type of a control arm (`arms.control_type`)."""

    ACTIVE_EXERCISE = "active exercise"
    USUAL_CARE_OR_ADVICE = "usual care or advice"
    PASSIVE = "passive"
    TRUE_CONTROL = "true control"
    MEDICATION = "medication"


class Outcome(StrEnum):
    """An outcome domain (`outcomes.outcome`, and the instruments' `outcome`)."""

    PAIN = "pain"
    DISABILITY = "disability"
    QUALITY_OF_LIFE = "quality of life"
    WORK_ABSENCE = "work absence"


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


DESIGNS = codes(Design)
INCLUSION_STATUSES = codes(InclusionStatus)
INTERVENTION_TYPES = (
    "mixed",
    "sensorimotor/motor control",
    "aerobic",
    "Pilates",
    "McKenzie",
    "back school",
    "yoga",
    "other",
)
PSYCH_COMPONENTS = ("none", "CBT", "behavioural", "other")
ARM_ROLES = codes(ArmRole)
CONTROL_TYPES = codes(ControlType)
OUTCOMES = codes(Outcome)
VALUE_KINDS = codes(ValueKind)
REPORTED_AS = codes(ReportedAs)
CONTRAST_MEASURES = codes(ContrastMeasure)
AS_PRINTED_USES = codes(AsPrintedUse)
#: The review's five risk-of-bias domains and the judgements (`metaexercise.vocabulary`: figures draw them).
ROB_DOMAINS = codes(RobDomain)
ROB_JUDGEMENTS = codes(RobJudgement)

# ---------------------------------------------------------------------------------------------- sheets
_PROVENANCE = (
    Column("source", "str", "DOI or URL of the page the numbers were copied from", required=True,
           example="https://doi.org/10.1186/1471-2458-9-200"),
    Column("location", "str", "where in the source: table, figure, page, paragraph", example="Table 3"),
    Column("extractor", "str", "who extracted the row (initials)", example="AB"),
    Column("notes", "str", "anything a second extractor should know"),
)

STUDIES = Sheet(
    name="studies",
    description="One row per study: design, population, individualized intervention, inclusion status.",
    key=("study_id",),
    columns=(
        Column("study_id", "str", "short unique id, first author + year, lower case", required=True,
               example="heinrich2009"),
        Column("first_author", "str", "first author's family name", required=True, example="Heinrich"),
        Column("year", "int", "publication year", required=True, minimum=1900, maximum=2100, example="2009"),
        Column("country", "str", "country or countries where the trial ran", example="Netherlands"),
        Column("design", "code", "randomisation unit", codes=DESIGNS, example="parallel"),
        Column("icc", "float", "intra-cluster correlation (cluster trials)", minimum=0, maximum=1),
        Column("mean_cluster_size", "float", "mean cluster size m (cluster trials)", minimum=1),
        Column("lbp_duration_required_weeks", "float", "minimum LBP duration the inclusion criteria required",
               minimum=0, example="12"),
        Column("lbp_duration_actual_weeks", "float", "mean LBP duration of the participants", minimum=0),
        Column("inclusion_status", "code", "the review's decision", required=True, codes=INCLUSION_STATUSES,
               example="included"),
        Column("exclusion_reason", "str", "why excluded (required when excluded)"),
        Column("intervention_type", "code", "type of the individualized exercise", codes=INTERVENTION_TYPES),
        Column("psych_component", "code", "psychological component of the individualized arm",
               codes=PSYCH_COMPONENTS),
        Column("training_weeks", "float", "length of the individualized programme (weeks)", minimum=0,
               open_minimum=True),
        Column("sessions_per_week", "float", "supervised sessions per week (individualized arm)", minimum=0,
               open_minimum=True),
        Column("minutes_per_session", "float", "minutes per session (individualized arm)", minimum=0,
               open_minimum=True),
        Column("mean_age", "float", "mean age of participants (years)", minimum=0, maximum=120),
        Column("percent_female", "float", "percentage of female participants", minimum=0, maximum=100),
        Column("adverse_events_total", "int", "adverse events reported, all arms", minimum=0),
        Column("adverse_events_related", "int", "adverse events at least possibly treatment-related",
               minimum=0),
        Column("rob_overall", "code", "overall risk of bias (pain and disability rated together)",
               codes=ROB_JUDGEMENTS),
        Column("synthetic", "bool", "true for synthetic replica rows (never the trials' data)", required=True,
               example="false"),
        *_PROVENANCE,
    ),
)

ARMS = Sheet(
    name="arms",
    description="One row per arm of each study: its role, the type of control, and whether it is matched.",
    key=("study_id", "arm_id"),
    columns=(
        Column("study_id", "str", "study the arm belongs to (must be in studies)", required=True),
        Column("arm_id", "str", "short id of the arm, unique within the study", required=True, example="pt"),
        Column("arm_label", "str", "the arm as the paper names it", required=True),
        Column("arm_role", "code", "individualized exercise arm or control arm", required=True,
               codes=ARM_ROLES),
        Column("control_type", "code", "type of control (control arms only)", codes=CONTROL_TYPES),
        Column("control_matched", "bool", "control is the same exercise minus the individualisation"),
        Column("n_randomised", "int", "participants randomised to the arm", minimum=2),
        Column("sessions_per_week", "float", "sessions per week in this arm", minimum=0, open_minimum=True),
        Column("minutes_per_session", "float", "minutes per session in this arm", minimum=0, open_minimum=True),
        *_PROVENANCE,
    ),
)

OUTCOMES_SHEET = Sheet(
    name="outcomes",
    description=(
        "One row per study x arm x outcome x instrument x time point x kind of value, holding what the paper "
        "reports (n, mean, SD; or SE, CI, p, t; or median with IQR or range). A between-group contrast "
        "(value_kind = contrast: MD or SMD with SE or CI) names the individualized arm in arm_id and the "
        "control arm in comparator_arm_id."
    ),
    key=("study_id", "arm_id", "comparator_arm_id", "outcome", "instrument", "timepoint_weeks", "value_kind"),
    columns=(
        Column("study_id", "str", "study (must be in studies)", required=True),
        Column("arm_id", "str", "arm (must be in arms); for a contrast, the individualized arm", required=True),
        Column("comparator_arm_id", "str", "contrast rows only: the control arm (must be in arms)"),
        Column("outcome", "code", "outcome domain", required=True, codes=OUTCOMES),
        Column("instrument", "str", "instrument id from the registry (see Instruments)", required=True,
               example="ODI"),
        Column("timepoint_weeks", "float", "weeks since randomisation (0 = baseline)", required=True,
               minimum=0, example="12"),
        Column("timepoint_label", "str", "the time point as printed", example="6 months"),
        Column("value_kind", "code", "baseline, final (follow-up) value, change from baseline, or contrast",
               required=True, codes=VALUE_KINDS),
        Column("reported_as", "code",
               "orientation of the printed value: 'scale' = the instrument's own orientation (change = "
               "follow-up minus baseline; contrast = individualized minus control); 'improvement' = positive "
               "means improvement / favours the individualized arm; 'unclear' = not stated",
               required=True, codes=REPORTED_AS, example="scale"),
        Column("contrast_measure", "code", "contrast rows: MD (instrument units) or SMD", codes=CONTRAST_MEASURES),
        Column("n", "int", "participants analysed in the arm (contrast rows: leave blank)", minimum=2),
        Column("mean", "float", "mean (or the contrast's estimate)"),
        Column("sd", "float", "standard deviation", minimum=0, open_minimum=True),
        Column("se", "float", "standard error", minimum=0, open_minimum=True),
        Column("ci_low", "float", "lower confidence limit"),
        Column("ci_high", "float", "upper confidence limit"),
        Column("ci_level", "float", "confidence level in percent (blank = 95)", minimum=50, maximum=99.99),
        Column("p_value", "float", "two-sided p value (for SD from p)", minimum=0, maximum=1, open_minimum=True),
        Column("t_value", "float", "t statistic (for SD from t)"),
        Column("median", "float", "median"),
        Column("q1", "float", "first quartile"),
        Column("q3", "float", "third quartile"),
        Column("minimum", "float", "smallest value"),
        Column("maximum", "float", "largest value"),
        Column("n_individualized", "int", "contrast rows: n analysed in the individualized arm", minimum=2),
        Column("n_control", "int", "contrast rows: n analysed in the control arm", minimum=2),
        Column("preferred", "bool", "true marks the row to pool when several instruments measure one outcome"),
        Column("as_printed", "str",
               "reason why a value that breaks a rule is kept as printed (e.g. 'estimate outside its CI; minus "
               "sign probably lost'); turns that error into a warning"),
        Column("as_printed_use", "code",
               "how to use an as_printed row: exclude (default), use as printed, or negate the estimate",
               codes=AS_PRINTED_USES),
        *_PROVENANCE,
    ),
)

RISK_OF_BIAS = Sheet(
    name="risk_of_bias",
    description=(
        "One row per study x domain. The review rated pain and disability together with five domains "
        "(Cochrane RoB): one traffic light per study and domain."
    ),
    key=("study_id", "domain"),
    may_be_empty=True,
    columns=(
        Column("study_id", "str", "study (must be in studies)", required=True),
        Column("domain", "code", "risk-of-bias domain", required=True, codes=ROB_DOMAINS),
        Column("judgement", "code", "low, some concerns or high", required=True, codes=ROB_JUDGEMENTS),
        Column("support", "str", "quote or reason supporting the judgement"),
        *_PROVENANCE,
    ),
)

#: Every sheet in the order of the workbook and of the CSV files.
SHEETS: tuple[Sheet, ...] = (STUDIES, ARMS, OUTCOMES_SHEET, RISK_OF_BIAS)
SHEETS_BY_NAME: dict[str, Sheet] = {s.name: s for s in SHEETS}


def sheet(name: str) -> Sheet:
    """The sheet called `name`; KeyError lists the known sheets."""
    try:
        return SHEETS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown sheet {name!r}; known: {', '.join(SHEETS_BY_NAME)}") from None


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


def dictionary_markdown() -> str:
    """The column dictionary as Markdown: one table per sheet (used in `extraction/README.md`)."""
    lines: list[str] = []
    for sh in SHEETS:
        lines += [f"### `{sh.name}` ({csv_name(sh.name)})", "", sh.description, "",
                  f"Unique key: {', '.join(f'`{k}`' for k in sh.key)}.", "",
                  "| column | required | type / allowed values | meaning | example |",
                  "|---|---|---|---|---|"]
        for c in sh.columns:
            lines.append(f"| `{c.name}` | {'yes' if c.required else ''} | {type_text(c)} | {c.description} "
                         f"| {c.example} |")
        lines.append("")
    return "\n".join(lines)
