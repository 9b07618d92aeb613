"""Every project YAML file is read strictly (`metaexercise.strict_yaml.load_yaml`): aliases ("billion
laughs"), duplicate keys and oversized files are refused with an error naming the file and the line.
Covers the instrument registry (ExtractionError; a problem row in `validate`), the published registry and
the GRADE judgements (SpecError)."""

from pathlib import Path

import pytest

from metaexercise import strict_yaml
from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.instruments import load_registry, project_registry
from metaexercise.extraction.sheets import validate
from metaexercise.review.grade import load_judgements
from metaexercise.review.published import load_published

LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
) + "\n"
LAUGHS_LIST = "- id: X\n  name: &n x\n  outcome: pain\n  higher_is_worse: true\n  source: *n\n"
DUP_INSTRUMENT = "- id: X\n  name: x\n  outcome: pain\n  higher_is_worse: true\n  name: y\n"
DUP_PUBLISHED = "source: paper\nentries: []\nsource: other\n"
DUP_GRADE = "defaults: {}\nanalyses: {}\ndefaults: {}\n"

ALIAS = r"line \d+: aliases \(\*name\) are not allowed"
DUPLICATE = r"line {line}: duplicate key '{key}' \(first on line {first}\)"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_yaml_refuses_aliases_duplicates_and_size(tmp_path):
    path = _write(tmp_path, "x.yaml", LAUGHS)
    with pytest.raises(SpecError, match=ALIAS) as info:
        strict_yaml.load_yaml(path)
    assert str(path) in str(info.value)
    with pytest.raises(SpecError, match=DUPLICATE.format(line=3, key="defaults", first=1)):
        strict_yaml.load_yaml(_write(tmp_path, "d.yaml", DUP_GRADE))
    big = _write(tmp_path, "big.yaml", "# " + "x" * strict_yaml.MAX_BYTES + "\n")
    with pytest.raises(SpecError, match="the limit is"):
        strict_yaml.load_yaml(big)


@pytest.mark.parametrize(("text", "pattern"), [
    (LAUGHS, ALIAS),
    (LAUGHS_LIST, ALIAS),
    (DUP_INSTRUMENT, DUPLICATE.format(line=5, key="name", first=2)),
    ("- [unclosed\n", r"line \d+: not valid YAML"),
])
def test_instrument_registry_is_read_strictly(tmp_path, text, pattern):
    path = _write(tmp_path, "instruments.yaml", text)
    with pytest.raises(ExtractionError, match=pattern) as info:
        load_registry(path)
    assert str(path) in str(info.value)
    with pytest.raises(ExtractionError, match=pattern):
        project_registry(tmp_path)


def test_validate_reports_a_bad_instrument_registry_as_a_problem_row(tmp_path):
    _write(tmp_path, "instruments.yaml", DUP_INSTRUMENT)
    problems = validate(tmp_path)
    text = " | ".join(problems["problem"].astype(str))
    assert "instruments.yaml, line 5: duplicate key 'name'" in text


def test_an_ordinary_instrument_registry_still_loads(tmp_path):
    text = "- id: X\n  name: x\n  outcome: pain\n  higher_is_worse: true\n"
    path = _write(tmp_path, "instruments.yaml", text)
    assert load_registry(path).get("X").name == "x"


@pytest.mark.parametrize(("text", "pattern"), [
    (LAUGHS, ALIAS),
    (DUP_PUBLISHED, DUPLICATE.format(line=3, key="source", first=1)),
])
def test_published_registry_is_read_strictly(tmp_path, text, pattern):
    path = _write(tmp_path, "published.yaml", text)
    with pytest.raises(SpecError, match=pattern) as info:
        load_published(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "pattern"), [
    (LAUGHS, ALIAS),
    (DUP_GRADE, DUPLICATE.format(line=3, key="defaults", first=1)),
    ("defaults:\n  imprecision: {judgement: serious, rationale: x}\n  imprecision: {judgement: none}\n",
     DUPLICATE.format(line=3, key="imprecision", first=2)),
])
def test_grade_judgements_are_read_strictly(tmp_path, text, pattern):
    path = _write(tmp_path, "grade.yaml", text)
    with pytest.raises(SpecError, match=pattern) as info:
        load_judgements(path)
    assert str(path) in str(info.value)


def test_missing_files_still_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read") as info:
        load_judgements(tmp_path / "grade.yaml")
    assert "grade.yaml" in str(info.value)
    with pytest.raises(SpecError, match="cannot read"):
        load_published(tmp_path / "published.yaml")
    assert load_registry(tmp_path / "instruments.yaml").instruments  # no project file: the library alone
