"""`metaexercise init`: a new project from the long table of arms most reviewers keep.

The table has one row per study x arm x outcome (x time point) and the columns ``study, arm, role, outcome,
timepoint, n, mean, sd``: `role` is ``experimental`` or ``control``; `timepoint` is blank or any label
(``day 2``, ``12 weeks``); `n`, `mean`, `sd` are the arm's analysed n and its mean and SD at that time point
(final values, not change scores). From it, `init_project` writes

* ``review.yaml``                   the declaration (`metaexercise.review.declaration`): title, the outcomes found
  in the data with labels, the arm roles, effect SMD on final values, no comparator classes, no windows;
* ``extraction/{studies,arms,outcomes,risk_of_bias}.csv`` in the schema's column order
  (`metaexercise.extraction.schema`), every row pointing back to the table's file and row;
* ``extraction/instruments.yaml``   one generic instrument per outcome ("as reported"; no range, so SMDs only);
* ``analyses/analyses.yaml``        one random-effects meta-analysis per outcome x time point label, Hedges' g of
  experimental minus control (metafor's ``escalc("SMD")``), REML.

Without a table the project is empty (sheets with headers only, no analyses) and its book says so.

A bad table (a missing column, a non-numeric n, sd <= 0, an unknown role, a study without a control or
experimental arm, a repeated row) raises `InitError`, which lists every problem with file, row (the
spreadsheet's own: header = row 1) and column; nothing is written then. Files are written into a temporary
folder beside the target and moved into place at the end, so the project is whole or absent.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from metaexercise.errors import MetaexerciseError
from metaexercise.extraction import schema
from metaexercise.extraction.vocabulary import SheetVocabulary
from metaexercise.spreadsheet_safety import csv_cell

#: Columns of the arms table, in the order a reviewer writes them.
COLUMNS = ("study", "arm", "role", "outcome", "timepoint", "n", "mean", "sd")
ROLES = ("experimental", "control")
#: The code written to arms.control_type of every control arm and declared as the project's one control type
#: (no comparator classes: every control arm is "the control").
CONTROL_TYPE = "control"
#: The analysis-spec key that selects the outcome rows of one time point (a number in review.yaml's
#: `timepoint_unit`, `metaexercise.review.specs`); a project without time points has no such key.
SPEC_TIMEPOINT_KEY = "timepoint"
SPEC_FILE = "analyses.yaml"

#: Time units a label may name, with their length in weeks (a month is 52/12 weeks, as extraction/README.md).
_UNITS = {
    "hour": 1 / 168, "hours": 1 / 168, "h": 1 / 168,
    "day": 1 / 7, "days": 1 / 7, "d": 1 / 7,
    "week": 1.0, "weeks": 1.0, "wk": 1.0, "wks": 1.0, "w": 1.0,
    "month": 52 / 12, "months": 52 / 12, "mo": 52 / 12,
    "year": 52.0, "years": 52.0, "yr": 52.0, "yrs": 52.0, "y": 52.0,
}
_CANONICAL = {1 / 168: "hours", 1 / 7: "days", 1.0: "weeks", 52 / 12: "months", 52.0: "years"}
_NUMBER = r"(\d+(?:\.\d+)?)"
_UNIT = r"([a-z]+)"
_AUTHOR_YEAR = re.compile(r"^(?P<author>[^\W\d][^\d()]*?)\s*(?:et al\.?)?\s*,?\s*\(?(?P<year>(?:19|20)\d\d)[a-z]?\)?$")


class InitError(MetaexerciseError):
    """The arms table cannot start a project; `problems` lists every located problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class ArmRow:
    """One validated row of the table; `line` is its spreadsheet row (header = 1)."""

    line: int
    study: str
    arm: str
    role: str
    outcome: str
    timepoint: str
    n: int
    mean: float
    sd: float


@dataclass(frozen=True, slots=True)
class Timepoint:
    label: str
    value: float | None  #: in the project's `timepoint_unit`; None when the label holds no number with a unit


@dataclass(frozen=True, slots=True)
class InitResult:
    """What `init_project` wrote."""

    root: Path
    files: tuple[str, ...]
    studies: int = 0
    analyses: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        if not self.studies:
            return f"empty project in {self.root}: add data (extraction/ or `metaexercise init --data`)"
        return (f"project in {self.root}: {self.studies} studies, {len(self.analyses)} analyses "
                f"({', '.join(self.analyses)})")


# ------------------------------------------------------------------------------------------- the table
def slug(text: str) -> str:
    """Lower-case letters, digits and '_' ("Runny nose" -> "runny_nose", "day 1" -> "day_1")."""
    s = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    return s


def _cell(raw: dict, key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def read_arms_table(path: str | Path) -> list[ArmRow]:
    """The table's rows, validated; `InitError` lists every problem as "FILE, row R, column C: ..."."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InitError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise InitError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InitError([f"{name}, row 1: the file is empty; expected the columns {', '.join(COLUMNS)}"])
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InitError([f"{name}, row 1, column {c}: missing (the table needs {', '.join(COLUMNS)})"
                         for c in missing])
    problems: list[str] = []
    rows: list[ArmRow] = []
    for line, raw in enumerate(reader, start=2):
        if all(not _cell(raw, c) for c in COLUMNS):
            continue  # a blank line
        if None in raw:  # more cells than header columns
            problems.append(f"{name}, row {line}: {len(raw[None])} cell(s) more than the header has columns")
        where = f"{name}, row {line}, column"
        bad = False
        for c in ("study", "arm", "role", "outcome"):
            if not _cell(raw, c):
                problems.append(f"{where} {c}: blank")
                bad = True
        role = _cell(raw, "role").lower()
        if role and role not in ROLES:
            problems.append(f"{where} role: {_cell(raw, 'role')!r} is not one of {', '.join(ROLES)}")
            bad = True
        outcome = _cell(raw, "outcome")
        if outcome and not slug(outcome)[:1].isalpha():
            problems.append(f"{where} outcome: {outcome!r} must start with a letter")
            bad = True
        n_text = _cell(raw, "n")
        try:
            n_value = float(n_text)
            if not n_value.is_integer() or n_value < 2:
                raise ValueError
            n = int(n_value)
        except ValueError:
            problems.append(f"{where} n: {n_text!r} is not a whole number of participants >= 2"
                            if n_text else f"{where} n: blank")
            bad = True
        numbers = {}
        for c in ("mean", "sd"):
            t = _cell(raw, c)
            try:
                numbers[c] = float(t)
                if not math.isfinite(numbers[c]):
                    raise ValueError
            except ValueError:
                problems.append(f"{where} {c}: {t!r} is not a number" if t else f"{where} {c}: blank")
                bad = True
        if "sd" in numbers and not numbers["sd"] > 0:
            problems.append(f"{where} sd: {_cell(raw, 'sd')} must be > 0")
            bad = True
        if not bad:
            rows.append(ArmRow(line, _cell(raw, "study"), _cell(raw, "arm"), role, outcome,
                               " ".join(_cell(raw, "timepoint").split()), n, numbers["mean"], numbers["sd"]))
    problems += _consistency(rows, name)
    if problems:
        raise InitError(problems)
    if not rows:
        raise InitError([f"{name}: no data rows below the header"])
    return rows


def _consistency(rows: list[ArmRow], name: str) -> list[str]:
    """Repeated rows, an arm with two roles, a study without a control or an experimental arm, two labels
    that give the same id."""
    problems = []
    seen: dict[tuple, int] = {}
    for r in rows:
        key = (r.study, r.arm, slug(r.outcome), r.timepoint.lower())
        if key in seen:
            problems.append(f"{name}, row {r.line}, columns study/arm/outcome/timepoint: repeats row {seen[key]} "
                            f"({r.study} / {r.arm} / {r.outcome}" + (f" / {r.timepoint})" if r.timepoint else ")"))
        else:
            seen[key] = r.line
    role_of: dict[tuple[str, str], ArmRow] = {}
    for r in rows:
        first = role_of.setdefault((r.study, r.arm), r)
        if first.role != r.role:
            problems.append(f"{name}, row {r.line}, column role: arm {r.arm!r} of {r.study!r} is {r.role} here "
                            f"but {first.role} in row {first.line}")
    studies: dict[str, list[ArmRow]] = {}
    for r in rows:
        studies.setdefault(r.study, []).append(r)
    for study, rs in studies.items():
        for role in ROLES:
            if not any(r.role == role for r in rs):
                problems.append(f"{name}, row {rs[0].line}, column role: study {study!r} has no {role} arm "
                                f"(rows {', '.join(str(r.line) for r in rs)})")
    for what, values in (("outcome", {r.outcome: r for r in rows}), ("timepoint", {r.timepoint: r for r in rows})):
        by_slug: dict[str, ArmRow] = {}
        for value, r in values.items():
            other = by_slug.setdefault(slug(value), r)
            if getattr(other, what) != value:
                problems.append(f"{name}, row {r.line}, column {what}: {value!r} and {getattr(other, what)!r} "
                                f"(row {other.line}) give the same id {slug(value)!r}; spell them alike")
    return problems


# ------------------------------------------------------------------------------------------ time points
def _parse_label(label: str) -> tuple[float, float] | None:
    """(number, weeks per unit) of a label such as "day 2", "12 weeks", "6 mo"; None without a unit."""
    text = label.lower()
    for pattern, order in ((rf"^{_NUMBER}\s*{_UNIT}$", "nu"), (rf"^{_UNIT}\s*{_NUMBER}$", "un")):
        m = re.match(pattern, text.replace("-", " ").strip())
        if m:
            number, unit = (m.group(1), m.group(2)) if order == "nu" else (m.group(2), m.group(1))
            if unit in _UNITS:
                return float(number), _UNITS[unit]
    return None


def timepoints(labels: list[str]) -> tuple[str, dict[str, Timepoint]]:
    """The project's time unit and each label's number in it. All labels in one unit keep their numbers
    ("day 1", "day 2" -> days 1, 2); mixed units are converted to weeks; a label without a number and a unit
    keeps only its label."""
    parsed = {lab: _parse_label(lab) for lab in labels if lab}
    units = {p[1] for p in parsed.values() if p is not None}
    unit = _CANONICAL[units.pop()] if len(units) == 1 else "weeks"
    out = {}
    for lab, p in parsed.items():
        if p is None:
            out[lab] = Timepoint(lab, None)
        else:
            value = p[0] if unit != "weeks" or p[1] == 1.0 else round(p[0] * p[1], 6)
            out[lab] = Timepoint(lab, value)
    return unit, out


# ---------------------------------------------------------------------------------------------- writing
def _study_names(label: str) -> tuple[str, str]:
    """(first_author, year) of a label such as "Smith 1995" or "Smith et al. (1995)"; a label that is not
    "author year" is kept whole as first_author, with no year, so tables still show the study as named."""
    m = _AUTHOR_YEAR.match(label.strip())
    if m:
        return m.group("author").strip(" ,"), m.group("year")
    return label.strip(), ""


def _unique(base: str, taken: set[str], fallback: str) -> str:
    base = base or fallback
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _label(outcome: str) -> str:
    words = outcome.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _sheets(outcome_ids: list[str]) -> tuple[schema.Sheet, ...]:
    """The extraction form for the new project's vocabulary (its outcomes, one control type, no moderators):
    `schema.form(vocabulary)`."""
    return schema.form(SheetVocabulary.from_values(outcomes=tuple(outcome_ids), control_types=(CONTROL_TYPE,),
                                                   declared_in="review.yaml")).sheets


def _timepoint_column(sheets: tuple[schema.Sheet, ...]) -> str:
    """The outcomes sheet's numeric time-point column (its name in the schema)."""
    outcomes = next(sh for sh in sheets if sh.name == "outcomes")
    return next(c for c in outcomes.column_names if c.startswith("timepoint") and c != "timepoint_label")


def _csv_text(sheet: schema.Sheet, rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(sheet.column_names), lineterminator="\n", extrasaction="raise")
    w.writeheader()
    for r in rows:
        w.writerow({c: csv_cell(_text(r.get(c))) for c in sheet.column_names})  # OWASP: no live formulas
    return buf.getvalue()


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _yaml(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)


def project_files(title: str, rows: list[ArmRow] | None, data_name: str | None) -> tuple[dict[str, str], InitResult]:
    """Every file of the new project (path relative to its root -> text), and a summary."""
    rows = rows or []
    outcomes: dict[str, str] = {}  # id -> the data's spelling
    for r in rows:
        outcomes.setdefault(slug(r.outcome), r.outcome)
    unit, tps = timepoints(list(dict.fromkeys(r.timepoint for r in rows)))

    # review.yaml
    outcome_decl = [{"id": oid, "label": _label(text), "benefit": "lower"} for oid, text in outcomes.items()]
    review = {
        "title": title,
        "question": {"population": "", "intervention": "", "comparison": "", "outcomes": ", ".join(
            d["label"] for d in outcome_decl), "study_design": ""},
        "effect": {"measure": "SMD", "basis": "final"},
        "labels": {"experimental": "Experimental", "control": "Control",
                   "favours_experimental": "Favours experimental", "favours_control": "Favours control"},
        "arm_roles": {"experimental": "experimental", "control": "control"},
        "outcomes": outcome_decl or [{"id": "outcome", "label": "Outcome", "benefit": "lower"}],
        "control_types": [CONTROL_TYPE],
        "timepoint_unit": unit,
        # given in full: the loader's defaults for `tool` and `judgements` are not usable values
        "risk_of_bias": {"tool": "not assessed yet", "judgements": ["low", "some concerns", "high"]},
    }
    source_note = f" from {data_name}" if data_name else ""
    review_text = (
        f"# The project file (schema: metaexercise/review/declaration.py), written by `metaexercise init`{source_note}.\n"
        "# Check and complete it: the question, the labels, and each outcome's `benefit` (lower: lower values\n"
        "# are better; higher: higher values are better), which `init` cannot know from the table.\n"
        + ("# No data yet: the outcome below is a placeholder; rename it when the first rows arrive.\n"
           if not rows else "")
        + _yaml(review)
    )

    # sheets
    sheets = _sheets(list(outcomes) or ["outcome"])
    tp_col = _timepoint_column(sheets)
    studies, arms, outcome_rows = [], [], []
    study_ids: dict[str, str] = {}
    arm_ids: dict[tuple[str, str], str] = {}
    taken_studies: set[str] = set()
    taken_arms: dict[str, set[str]] = {}
    lines: dict[str, list[int]] = {}
    for r in rows:
        lines.setdefault(r.study, []).append(r.line)
    for r in rows:
        if r.study not in study_ids:
            author, year = _study_names(r.study)
            base = slug(author).replace("_", "") + year if year else slug(r.study)
            sid = _unique(base, taken_studies, "study")
            study_ids[r.study] = sid
            rows_of = lines[r.study]
            studies.append({"study_id": sid, "first_author": author, "year": year or None,
                            "inclusion_status": schema.InclusionStatus.INCLUDED.value, "synthetic": False,
                            "source": data_name, "location": _rows_text(rows_of),
                            "extractor": "metaexercise init", "notes": f"study as labelled in the table: {r.study}"})
        sid = study_ids[r.study]
        if (r.study, r.arm) not in arm_ids:
            aid = _unique(slug(r.arm), taken_arms.setdefault(sid, set()), "arm")
            arm_ids[(r.study, r.arm)] = aid
            arms.append({"study_id": sid, "arm_id": aid, "arm_label": r.arm, "arm_role": r.role,
                         "control_type": CONTROL_TYPE if r.role == "control" else None,
                         "source": data_name, "location": f"row {r.line}", "extractor": "metaexercise init"})
        tp = tps.get(r.timepoint)
        outcome_rows.append({
            "study_id": sid, "arm_id": arm_ids[(r.study, r.arm)], "outcome": slug(r.outcome),
            "instrument": instrument_id(slug(r.outcome)), tp_col: None if tp is None else tp.value,
            "timepoint_label": r.timepoint or None, "value_kind": schema.ValueKind.FINAL.value,
            "reported_as": schema.ReportedAs.SCALE.value, "n": r.n, "mean": r.mean, "sd": r.sd,
            "source": data_name, "location": f"row {r.line}", "extractor": "metaexercise init",
        })

    # instruments and analyses
    instruments = [{"id": instrument_id(oid), "name": f"{_label(text)} as reported in the table (range not stated)",
                    "outcome": oid, "minimum": None, "maximum": None, "higher_is_worse": True, "rank": 1,
                    "source": f"metaexercise init{source_note}"} for oid, text in outcomes.items()]
    analyses = []
    for oid, text in outcomes.items():
        labels = list(dict.fromkeys(r.timepoint for r in rows if slug(r.outcome) == oid))
        labels.sort(key=lambda lab: (tps[lab].value is None, tps[lab].value or 0.0, lab) if lab else (False, -1, ""))
        for lab in labels:
            spec = {"id": f"{oid}_{slug(lab)}" if lab else oid,
                    "label": f"{_label(text)}, {lab}" if lab else _label(text),
                    "kind": "meta-analysis", "outcome": oid}
            if lab and tps[lab].value is not None:
                spec[SPEC_TIMEPOINT_KEY] = tps[lab].value
            spec["source"] = f"metaexercise init{source_note}"
            analyses.append(spec)
    analyses_text = (
        "# One random-effects meta-analysis (REML) per outcome x time point: Hedges' g of experimental minus\n"
        "# control on final values (metafor's escalc(\"SMD\")). Written by `metaexercise init`; keys: analyses/README.md\n"
        "# of the metaexercise repository (metaexercise/review/specs.py).\n"
        + _yaml({"analyses": analyses})
    )
    files = {
        "review.yaml": review_text,
        "analyses/" + SPEC_FILE: analyses_text,
        "extraction/instruments.yaml": (
            "# Instruments of this project (format: metaexercise/extraction/data/instruments.yaml): one per outcome,\n"
            "# range not stated, so effects are SMDs on the scale as reported.\n" + (_yaml(instruments) if instruments
                                                                                      else "[]\n")),
    }
    by_sheet = {"studies": studies, "arms": arms, "outcomes": outcome_rows, "risk_of_bias": []}
    for sheet in sheets:
        files[f"extraction/{schema.csv_name(sheet.name)}"] = _csv_text(sheet, by_sheet.get(sheet.name, []))
    files[".gitignore"] = "results/\nbook/_build/\nbook/generated/\n"
    notes = () if rows else ("no data: the sheets hold headers only and analyses/analyses.yaml lists no analysis",)
    return files, InitResult(Path("."), tuple(sorted(files)), len(studies), tuple(a["id"] for a in analyses), notes)


def instrument_id(outcome_id: str) -> str:
    """The generic instrument `init` registers for an outcome."""
    return f"{outcome_id}-as-reported"


def _rows_text(lines: list[int]) -> str:
    lines = sorted(lines)
    if lines == list(range(lines[0], lines[-1] + 1)) and len(lines) > 1:
        return f"rows {lines[0]}-{lines[-1]}"
    return ("row " if len(lines) == 1 else "rows ") + ", ".join(str(x) for x in lines)


def init_project(root: str | Path, *, data: str | Path | None = None, title: str | None = None,
                 force: bool = False) -> InitResult:
    """Write a new project into `root` (see the module's docstring). `root` must be absent or empty unless
    `force`, which replaces the files `init` writes and leaves every other file alone. Raises `InitError`
    (nothing written) for a bad table or a non-empty `root`."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InitError([f"{root}: exists and is not a folder"])
    if root.is_dir() and any(root.iterdir()) and not force:
        raise InitError([f"{root}: the folder is not empty; choose a new folder, or pass --force to write the "
                         "project's files over the ones there"])
    rows = read_arms_table(data) if data is not None else None
    title = (title or "").strip() or root.resolve().name.replace("_", " ").replace("-", " ").strip() or "A review"
    files, result = project_files(title, rows, Path(data).name if data is not None else None)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.init-", dir=root.parent))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
        if not root.exists() or not any(root.iterdir()):
            if root.exists():
                root.rmdir()
            os.replace(staging, root)
        else:  # --force into a folder with files: move each written file into place
            for rel in files:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, root / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return InitResult(root.resolve(), result.files, result.studies, result.analyses, result.notes)
