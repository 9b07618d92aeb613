"""Analysis specs: the committed analyses/*.yaml load, and malformed specs fail naming file, analysis and key."""

from pathlib import Path

import pytest

from metaexercise.errors import SpecError
from metaexercise.review.declaration import load_review
from metaexercise.review.specs import load_spec_file, load_specs

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")

ROOT = Path(__file__).resolve().parents[2]

MAIN_IDS = {
    f"{o}_{c}_{w}" for o in ("pain", "disability") for c in ("active", "passive") for w in ("short", "long")
}
SCENARIOS = ("mixed", "psych", "smt", "matched", "lbp12", "behavioural", "truecontrol", "rob")

VALID = """analyses:
  - id: pain_active_short
    label: "Pain vs active, short"
    kind: meta-analysis
    outcome: pain
    comparator: active
    window: short
"""


def write(tmp_path, text, name="a.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_specs_declare_every_analysis_the_issue_lists():
    specs = {s.id: s for s in load_specs(ROOT / "analyses", review=REVIEW)}
    assert MAIN_IDS <= set(specs)
    for scenario in SCENARIOS:
        for outcome in ("pain", "disability"):
            spec = specs[f"sens_{scenario}_{outcome}"]
            assert (spec.window, spec.outcome) == ("short", outcome)
            assert spec.filters, spec.id
    for main in MAIN_IDS:
        assert specs[f"sens_{main}_no_outliers"].exclude_outliers
    for outcome in ("pain", "disability"):
        reg = specs[f"metareg_{outcome}"]
        assert reg.kind == "meta-regression" and reg.model.method == "REML"
        assert [m.name for m in reg.moderators] == [
            "duration_weeks", "comparator_passive", "known_effective", "matched_control", "behavioural",
            "total_n", "rob_high", "mean_age",
        ]
        assert specs[f"metareg_{outcome}_mm"].model.method == "DL"
        assert specs[f"metareg_{outcome}_ml"].model.method == "ML"


def test_main_contrast_fields_follow_the_id():
    for spec in load_specs(ROOT / "analyses", review=REVIEW):
        if spec.id in MAIN_IDS:
            assert spec.id == f"{spec.outcome}_{spec.comparator}_{spec.window}"
            assert spec.filters == () and not spec.exclude_outliers


def test_valid_minimal_spec_gets_metafor_defaults(tmp_path):
    (spec,) = load_spec_file(write(tmp_path, VALID), review=REVIEW)
    assert (spec.model.method, spec.model.test, spec.model.level) == ("REML", "z", 95.0)
    assert spec.file == "a.yaml"


@pytest.mark.parametrize(
    "extra, words",
    [
        ("    colour: blue\n", ["a.yaml", "pain_active_short", "colour"]),
        ("    filters: {shoe_size: 3}\n", ["a.yaml", "pain_active_short", "shoe_size"]),
        ("    filters: {intervention_type: [swimming]}\n", ["intervention_type", "swimming"]),
        ("    filters: {control_matched: maybe}\n", ["control_matched", "true or false"]),
        ("    model: {method: REMLL}\n", ["model.method", "REMLL"]),
        ("    model: {tol: 1}\n", ["model", "tol"]),
        ("    model: {level: 120}\n", ["model.level"]),
        ("    exclude_outliers: 1\n", ["exclude_outliers"]),
        ("    moderators: [{name: a, column: b}]\n", ["moderators", "meta-regression"]),
    ],
)
def test_bad_keys_and_values_name_file_analysis_and_key(tmp_path, extra, words):
    with pytest.raises(SpecError) as err:
        load_spec_file(write(tmp_path, VALID + extra), review=REVIEW)
    for word in words:
        assert word in str(err.value)


def test_wrong_choice_and_missing_key(tmp_path):
    with pytest.raises(SpecError, match="key 'window' is 'medium'"):
        load_spec_file(write(tmp_path, VALID.replace("window: short", "window: medium")), review=REVIEW)
    with pytest.raises(SpecError, match="missing key"):
        load_spec_file(write(tmp_path, VALID.replace("    outcome: pain\n", "")), review=REVIEW)


def test_top_level_must_be_analyses_only(tmp_path):
    with pytest.raises(SpecError, match="top-level key 'analyses'"):
        load_spec_file(write(tmp_path, "specs: []\n"), review=REVIEW)


def test_yaml_is_loaded_safely(tmp_path):
    with pytest.raises(SpecError, match="line 8: could not determine a constructor"):
        load_spec_file(write(tmp_path, VALID + "    note: !!python/object/apply:os.system ['true']\n"), review=REVIEW)


def test_meta_regression_needs_moderators_with_known_codes(tmp_path):
    reg = VALID.replace("meta-analysis", "meta-regression").replace("comparator: active", "comparator: any")
    with pytest.raises(SpecError, match="needs 'moderators'"):
        load_spec_file(write(tmp_path, reg), review=REVIEW)
    bad = reg + "    moderators: [{name: t, column: intervention_type, equals: swimming}]\n"
    with pytest.raises(SpecError, match="swimming"):
        load_spec_file(write(tmp_path, bad), review=REVIEW)
    ok = reg + "    moderators: [{name: t, column: training_weeks}, {name: c, column: comparator, equals: passive}]\n"
    (spec,) = load_spec_file(write(tmp_path, ok), review=REVIEW)
    assert not spec.moderators[0].is_indicator and spec.moderators[1].values == ("passive",)


def test_duplicate_ids_across_files_and_skipped_registry_files(tmp_path):
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, "anything: [not, a, spec]\n", "published.yaml")
    write(tmp_path, "anything: {}\n", "grade.yaml")
    assert [s.id for s in load_specs(tmp_path, review=REVIEW)] == ["pain_active_short"]
    write(tmp_path, VALID, "b.yaml")
    with pytest.raises(SpecError, match="also declared in a.yaml"):
        load_specs(tmp_path, review=REVIEW)
