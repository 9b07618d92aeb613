"""Any review is a project: the sheets accept what the project's review.yaml declares (outcome ids, arm-role
codes, control types, risk-of-bias words, moderators as extra studies columns), and nothing of another review.
A project without review.yaml reads its sheets with the generic vocabulary."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from sheets_vocabularies import BACK_PAIN

from metaexercise.commands.cli import main
from metaexercise.errors import ExtractionError
from metaexercise.extraction import sheets
from metaexercise.extraction.schema import form
from metaexercise.extraction.vocabulary import DEFAULT_VOCABULARY, ModeratorColumn, SheetVocabulary
from metaexercise.review.declaration import load_review

ROOT = Path(__file__).resolve().parents[2]

REVIEW = """\
title: "Early mobilisation after hip fracture"
outcomes:
  - {id: length_of_stay, label: "Length of stay (days)"}
  - {id: mobility, label: "Mobility", benefit: higher, common_scale: {min: 0, max: 100}}
comparators:
  - {id: usual, label: usual care, control_types: [usual care]}
moderators:
  - {name: setting, label: "care setting", type: categorical, levels: [ward, rehabilitation unit]}
risk_of_bias: {tool: RoB 2, judgements: [low, some concerns, high]}
"""

INSTRUMENTS = """\
- {id: LOS-days, name: Length of stay in days, outcome: length_of_stay, minimum: 0, higher_is_worse: true}
- {id: EMS, name: Elderly Mobility Scale 0-20, outcome: mobility, minimum: 0, maximum: 20, higher_is_worse: false}
"""

SRC = "test fixture (made-up numbers, not a trial's data)"


def _write(folder: Path, name: str, rows: list[dict], vocabulary: SheetVocabulary) -> None:
    columns = form(vocabulary).sheet(name).column_names
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({"source": SRC, **r})


def _sheets(folder: Path, vocabulary: SheetVocabulary, *, setting="ward", outcome="length_of_stay",
            roles=("experimental", "control")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    study = {"study_id": "gamma2021", "first_author": "Gamma", "year": "2021", "inclusion_status": "included",
             "synthetic": "true"}
    if any(m.name == "setting" for m in vocabulary.moderators):
        study["setting"] = setting
    _write(folder, "studies", [study], vocabulary)
    _write(folder, "arms", [
        {"study_id": "gamma2021", "arm_id": "early", "arm_label": "early mobilisation", "arm_role": roles[0],
         "n_randomised": "50"},
        {"study_id": "gamma2021", "arm_id": "uc", "arm_label": "usual care", "arm_role": roles[1],
         "control_type": "usual care", "n_randomised": "50"},
    ], vocabulary)
    base = {"study_id": "gamma2021", "outcome": outcome, "instrument": "LOS-days", "timepoint_weeks": "4",
            "value_kind": "final", "reported_as": "scale"}
    _write(folder, "outcomes", [
        {**base, "arm_id": "early", "n": "48", "mean": "11.2", "sd": "4.1"},
        {**base, "arm_id": "uc", "n": "47", "mean": "13.0", "sd": "4.8"},
    ], vocabulary)
    _write(folder, "risk_of_bias", [{"study_id": "gamma2021", "domain": "randomisation process",
                                     "judgement": "low"}], vocabulary)  # no domains declared: any domain
    (folder / "instruments.yaml").write_text(INSTRUMENTS, encoding="utf-8")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, SheetVocabulary]:
    (tmp_path / "review.yaml").write_text(REVIEW, encoding="utf-8")
    vocabulary = load_review(tmp_path / "review.yaml").sheet_vocabulary()
    return tmp_path, vocabulary


def test_generic_project_vocabulary(project):
    root, v = project
    assert v.outcome_ids == ("length_of_stay", "mobility")
    assert (v.role_experimental, v.role_control) == ("experimental", "control")
    assert v.control_types == ("usual care",)
    assert v.moderators == (ModeratorColumn("setting", True, ("ward", "rehabilitation unit"), label="care setting"),)
    assert v.common_scale("mobility") == (0, 100) and v.common_scale("length_of_stay") is None
    studies = form(v).studies.column_names
    assert "setting" in studies
    assert not {"intervention_type", "psych_component", "lbp_duration_required_weeks", "mean_age"} & set(studies)


def test_generic_project_validates_a_csv_folder(project, capsys):
    root, v = project
    folder = _sheets(root / "extraction", v)
    assert sheets.validate(folder, vocabulary=v).empty
    ex = sheets.load_extraction(folder, vocabulary=v, registry=folder / "instruments.yaml")
    assert ex.studies.loc[0, "setting"] == "ward" and ex.vocabulary == v
    assert main(["--project", str(root), "validate"]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().err


def test_value_outside_a_moderators_levels_is_a_located_error(project, capsys):
    root, v = project
    folder = _sheets(root / "extraction", v, setting="home")
    problems = sheets.validate(folder, vocabulary=v)
    assert len(problems) == 1
    p = problems.iloc[0]
    assert (Path(p["file"]).name, p["sheet"], p["row"], p["column"], p["value"], p["severity"]) == (
        "studies.csv", "studies", 2, "setting", "home", "error")
    assert "'home' is not an allowed value (ward; rehabilitation unit; declared in review.yaml, moderators)" \
        in p["problem"]
    assert main(["--project", str(root), "validate"]) == 2
    assert "studies.csv" in capsys.readouterr().out


def test_undeclared_outcome_is_a_located_error(project):
    root, v = project
    folder = _sheets(root / "extraction", v, outcome="pain")
    problems = sheets.validate(folder, vocabulary=v)
    outcome = problems[problems["column"] == "outcome"]
    assert list(outcome["row"]) == [2, 3] and set(outcome["sheet"]) == {"outcomes"}
    assert outcome["file"].str.endswith("outcomes.csv").all()
    assert outcome["problem"].str.contains("'pain' is not an allowed value (length_of_stay; mobility; "
                                           "declared in review.yaml, outcomes)", regex=False).all()
    with pytest.raises(ExtractionError, match="outcomes.csv"):
        sheets.load_extraction(folder, vocabulary=v)


def test_project_instruments_must_name_declared_outcomes(project, capsys):
    root, v = project
    folder = _sheets(root / "extraction", v)
    (folder / "instruments.yaml").write_text(INSTRUMENTS.replace("outcome: mobility", "outcome: pain"),
                                             encoding="utf-8")
    assert main(["--project", str(root), "validate"]) == 2
    out = capsys.readouterr().out
    assert "instruments.yaml" in out and "instrument #2: outcome 'pain' is not one of the declared outcomes" in out


def test_the_back_pain_arm_roles_are_not_the_generic_projects(project):
    root, v = project
    folder = _sheets(root / "extraction", v, roles=("individualized", "control"))
    problems = sheets.validate(folder, vocabulary=v)
    assert list(zip(problems["sheet"], problems["row"], problems["column"], strict=True)) == [
        ("arms", 2, "arm_role")]


def test_project_without_review_yaml_uses_the_generic_vocabulary(tmp_path: Path, capsys):
    _sheets(tmp_path / "extraction", DEFAULT_VOCABULARY, outcome="length_of_stay")  # any outcome id
    assert DEFAULT_VOCABULARY.outcome_ids == () and DEFAULT_VOCABULARY.moderators == ()
    assert main(["--project", str(tmp_path), "validate"]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().err
    form_path = tmp_path / "form.xlsx"
    assert main(["--project", str(tmp_path), "template", str(form_path)]) == 0
    header = [c.value for c in openpyxl.load_workbook(form_path)["studies"][1]]
    assert header == list(form(DEFAULT_VOCABULARY).studies.column_names)


def test_generic_template_and_import_round_trip(project, tmp_path: Path):
    root, v = project
    folder = _sheets(root / "extraction", v)
    form_path = tmp_path / "form.xlsx"
    assert main(["--project", str(root), "template", str(form_path), "--fill", str(folder)]) == 0
    wb = openpyxl.load_workbook(form_path)
    assert "setting" in [c.value for c in wb["studies"][1]]
    assert sorted(r[0] for r in wb["Instruments"].iter_rows(min_row=2, values_only=True)) == ["EMS", "LOS-days"]
    out = tmp_path / "imported"
    assert main(["--project", str(root), "import", str(form_path), "--to", str(out)]) == 0
    assert sheets.validate(out, vocabulary=v, registry=folder / "instruments.yaml").empty


def test_bad_review_yaml_stops_the_commands(tmp_path: Path, capsys):
    (tmp_path / "review.yaml").write_text("title: x\noutcomes: []\n", encoding="utf-8")
    assert main(["--project", str(tmp_path), "validate"]) == 2
    assert "review.yaml" in capsys.readouterr().err


def test_moderator_named_after_a_fixed_column():
    numeric_year = SheetVocabulary(moderators=(ModeratorColumn("year"),))
    assert form(numeric_year).studies.column_names.count("year") == 1
    with pytest.raises(ValueError, match="moderator 'country'"):
        form(SheetVocabulary(moderators=(ModeratorColumn("country"),)))


def test_back_pain_vocabulary_accepts_todays_extraction(capsys):
    problems = sheets.validate(ROOT / "extraction", vocabulary=BACK_PAIN)
    assert (problems["severity"] == "error").sum() == 0 and len(problems) == 9
    assert BACK_PAIN.role_experimental == "individualized" and "intervention_type" in form(BACK_PAIN).studies.column_names
    assert main(["--project", str(ROOT), "validate", str(ROOT / "extraction")]) == 0
    assert "0 error(s), 9 warning(s)" in capsys.readouterr().err
