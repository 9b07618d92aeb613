"""`metaexercise run`: files, byte-identical reruns, manifest, status rows, replica labelling, mixing guard."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from analyses_sheets_helpers import build, two_arm

from metaexercise.commands.cli import main
from metaexercise.review import replica
from metaexercise.review import run as runner
from metaexercise.review.analyses import ANALYSIS_COLUMNS
from metaexercise.review.project import Project

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, name: str) -> Project:
    root = tmp_path / name
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    return Project(root)


@pytest.fixture(scope="module")
def small_replica(tmp_path_factory):
    """A project whose replica folder holds the first 12 replica studies (fast; still labelled)."""
    project = _project(tmp_path_factory.mktemp("rep"), "p")
    rep = replica.generate()
    keep = set(rep.studies["study_id"].iloc[:12])
    small = replica.Replica(*(frame[frame["study_id"].isin(keep)] for frame in rep.sheets().values()),
                            seed=rep.seed)
    replica.write(small, project.root / "replica" / "extraction")
    return project


def test_real_extraction_run_writes_every_file_and_status_rows(tmp_path, capsys):
    project = _project(tmp_path, "real")
    build(project.extraction, two_arm("aa2020", -2.0, -1.0, 2.0, 20, base_sd=2.0),
          two_arm("bb2020", -1.5, -1.2, 1.5, 40, base_sd=1.0),
          two_arm("cc2020", -1.0, -0.9, 2.5, 30, control="usual care or advice"))
    (project.results / "replica").mkdir(parents=True)
    (project.results / "replica" / "keep.txt").write_text("replica results stay", encoding="utf-8")
    assert main(["run", "--project", str(project.root), "--quiet"]) == 0
    assert "8 analyses from extraction: 1 fitted, 7 with insufficient data" in capsys.readouterr().out
    names = sorted(p.name for p in project.results.iterdir())
    assert names == ["analyses.csv", "grade.csv", "manifest.json", "metareg.csv", "replica", "sof.csv",
                     "studies.csv"]  # no staging folder left behind; results/replica untouched
    assert (project.results / "replica" / "keep.txt").exists()
    analyses = pd.read_csv(project.results / "analyses.csv")
    assert list(analyses.columns) == ["data", *ANALYSIS_COLUMNS]
    assert (analyses["data"] == "extraction").all() and not analyses["synthetic"].any()
    row = analyses.set_index("analysis_id").loc["pain_passive_short"]
    assert row["status"] == "insufficient data (k=1)" and pd.isna(row["estimate"])
    fitted = analyses.set_index("analysis_id").loc["pain_active_short"]
    assert fitted["status"] == "ok" and fitted["k"] == 2
    grade = pd.read_csv(project.results / "grade.csv")
    assert set(grade["analysis_id"]) == {"pain_active_short"} and grade["certainty"].notna().all()
    studies = pd.read_csv(project.results / "studies.csv")
    assert set(studies.loc[studies["analysis_id"] == "pain_active_short", "study_id"]) == {"aa2020", "bb2020"}


def test_two_runs_are_byte_identical_and_manifest_hashes_inputs(small_replica):
    first = runner.execute(small_replica, source="replica", progress=False)
    runner.write(first)
    folder = small_replica.results / "replica"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    second = runner.execute(small_replica, source="replica", progress=False)
    runner.write(second)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert before == after and first.files == second.files
    manifest = json.loads(after["manifest.json"])
    assert set(manifest["versions"]) == {"python", "numpy", "scipy", "pandas"}
    assert manifest["toolkit"]["name"] == "metaexercise" and manifest["source"] == "replica"
    assert "analyses/main.yaml" in manifest["inputs"] and "replica/extraction/outcomes.csv" in manifest["inputs"]
    import hashlib

    for name, digest in manifest["outputs"].items():
        assert hashlib.sha256(after[name]).hexdigest() == digest
    assert not any(word in after["manifest.json"].decode() for word in ("time", "date"))
    assert manifest["replica_not_honoured"] == list(replica.NOT_HONOURED)


def test_replica_results_are_labelled_and_kept_apart(small_replica):
    out = runner.execute(small_replica, source="replica", progress=False)
    assert out.folder == small_replica.results / "replica"
    for name in ("analyses", "studies", "grade", "sof"):
        frame = out.frame(name)
        assert (frame["data"] == replica.LABEL).all(), name
    assert "audit.csv" not in out.files  # the replica is never set beside the published numbers
    sof = out.frame("sof")
    assert sof["Review's certainty"].isna().all()
    assert out.frame("analyses")["synthetic"].all()


def test_source_must_match_the_sheets(tmp_path, small_replica):
    project = _project(tmp_path, "wrong")
    shutil.copytree(small_replica.root / "replica" / "extraction", project.extraction)
    with pytest.raises(ValueError, match="synthetic but were run as source 'extraction'"):
        runner.execute(project, source="extraction", progress=False)


def test_full_replica_through_the_sheets_layer_hits_its_target(tmp_path):
    """`run --source replica` generates the replica when missing; through sheets, comparisons, escalc and
    rma the contrast has the published k exactly and its SMD / I² within the CSV rounding (1e-4 / 0.05)."""
    project = Project(tmp_path / "full")
    (project.analyses).mkdir(parents=True)
    (project.analyses / "one.yaml").write_text(
        "analyses:\n  - {id: disability_passive_short, label: t, kind: meta-analysis, outcome: disability,\n"
        "     comparator: passive, window: short}\n", encoding="utf-8")
    out = runner.execute(project, source="replica", progress=False)
    assert (project.root / "replica" / "extraction" / "studies.csv").exists()
    row = out.frame("analyses").iloc[0]
    k, smd, i2 = replica.TARGETS["disability_passive_short"]
    assert row["k"] == k
    assert row["estimate"] == pytest.approx(smd, abs=1e-4) and row["I2"] == pytest.approx(i2, abs=0.05)


def test_real_run_includes_the_audit_of_the_published_numbers(tmp_path):
    project = _project(tmp_path, "audited")
    shutil.copy(ROOT / "analyses" / "published.yaml", project.analyses / "published.yaml")
    build(project.extraction, two_arm("aa2020", -2.0, -1.0, 2.0, 20),
          two_arm("bb2020", -1.5, -1.2, 1.5, 40, rob_overall=None))
    out = runner.execute(project, progress=False)
    grade = out.frame("grade")  # a study without an overall RoB rating: listed as not graded, with the reason
    assert grade["reason"].str.contains("risk of bias not rated for bb2020").any()
    audit = out.frame("audit")
    # the review's own inconsistency (abstract -0.18 [-0.22, 0.01] vs results -0.09 [-0.18, 0.01])
    hit = audit[(audit["label"] == "disability_passive_short") & (audit["check"] == "abstract_vs_results")]
    assert len(hit) == 1 and "-0.18" in hit["detail"].iloc[0] and "-0.09" in hit["detail"].iloc[0]
    assert "analyses/published.yaml" in json.loads(out.files["manifest.json"])["inputs"]


def test_run_project_writes_what_execute_returns(small_replica):
    out = runner.run_project(small_replica, source="replica", progress=False)
    for name, data in out.files.items():
        assert (out.folder / name).read_bytes() == data


def test_cli_shows_progress_on_stderr(small_replica, capsys):
    assert main(["run", "--project", str(small_replica.root), "--source", "replica"]) == 0
    captured = capsys.readouterr()
    assert "metaexercise run (replica)" in captured.err and "8/8" in captured.err
    assert replica.LABEL in captured.out


def test_the_committed_project_runs_on_its_real_extraction(tmp_path):
    """Smoke test on the repository's own analyses/ and extraction/ (copied; inputs are never modified)."""
    project = Project(tmp_path / "repo")
    shutil.copytree(ROOT / "analyses", project.analyses)
    shutil.copytree(ROOT / "extraction", project.extraction)
    out = runner.execute(project, progress=False)
    analyses = out.frame("analyses").set_index("analysis_id")
    for main_id in runner.MAIN_IDS:
        status = analyses.loc[main_id, "status"]
        assert status == "ok" or status.startswith("insufficient data (k="), (main_id, status)
    assert not analyses["synthetic"].any() and (analyses["data"] == "extraction").all()
    assert "audit.csv" in out.files
