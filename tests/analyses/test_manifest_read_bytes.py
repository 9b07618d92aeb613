"""The run manifest hashes the bytes the run read: inputs are hashed before the analyses read them and checked
at the end; a file changed (added, removed) during the run stops it with an error naming the file, and
nothing is written."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from analyses_sheets_helpers import build, two_arm

from metaexercise.errors import MetaexerciseError
from metaexercise.review import run as runner
from metaexercise.review.project import Project

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path) -> Project:
    root = tmp_path / "p"
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    shutil.copy(ROOT / "review.yaml", root / "review.yaml")
    project = Project(root)
    build(project.extraction, two_arm("aa2020", -2.0, -1.0, 2.0, 20, base_sd=2.0),
          two_arm("bb2020", -1.5, -1.2, 1.5, 40, base_sd=1.0))
    return project


def _sheet(project: Project) -> Path:
    return sorted(p for p in project.extraction.rglob("*") if p.is_file())[0]


def _during_run(monkeypatch, action):
    """Make `action` happen once, while the analyses run (after the sheets were read)."""
    real = runner.run_analysis
    done = []

    def run_analysis(*args, **kw):
        if not done:
            done.append(action())
        return real(*args, **kw)

    monkeypatch.setattr(runner, "run_analysis", run_analysis)


def test_manifest_hashes_the_inputs_as_read(tmp_path):
    project = _project(tmp_path)
    files = [project.declaration, *project.analyses.rglob("*.yaml"), *project.extraction.rglob("*")]
    before = {p.relative_to(project.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in files if p.is_file()}
    first = runner.run_project(project, progress=False)
    manifest = json.loads(first.files["manifest.json"])
    assert manifest["inputs"] == before
    second = runner.execute(project, progress=False)
    assert second.files == first.files  # two runs byte-identical


@pytest.mark.parametrize("change", ["edit", "remove", "add"])
def test_an_input_changed_during_the_run_stops_it_and_nothing_is_written(tmp_path, monkeypatch, change):
    project = _project(tmp_path)
    sheet = _sheet(project)
    name = sheet.relative_to(project.root).as_posix()
    if change == "edit":
        def action():
            sheet.write_bytes(sheet.read_bytes() + b"\n")
        expected = f"{name} changed while the run read it"
    elif change == "remove":
        def action():
            sheet.unlink()
        expected = f"{name} was removed during the run"
    else:
        def action():
            (project.analyses / "late.yaml").write_text("# late\n", encoding="utf-8")
        expected = "analyses/late.yaml appeared during the run"
    _during_run(monkeypatch, action)
    with pytest.raises(runner.InputChangedError, match=expected) as info:
        runner.run_project(project, progress=False)
    assert isinstance(info.value, MetaexerciseError)
    assert "nothing was written" in str(info.value)
    assert not project.results.exists() or not any(project.results.iterdir())
