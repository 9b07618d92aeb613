"""`metaexercise run`: files, byte-identical reruns, manifest, status rows, replica labelling, mixing guard."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from analyses_sheets_helpers import build, two_arm

from metaexercise.commands.cli import main
from metaexercise.review import exhibits, replica
from metaexercise.review import run as runner
from metaexercise.review.analyses import ANALYSIS_COLUMNS
from metaexercise.review.declaration import load_review
from metaexercise.review.project import Project
from metaexercise.review.specs import load_specs
from metaexercise.review.vocabulary import main_ids

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, name: str) -> Project:
    root = tmp_path / name
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    shutil.copy(ROOT / "review.yaml", root / "review.yaml")
    return Project(root)


@pytest.fixture(scope="module")
def small_replica(tmp_path_factory):
    """A project whose replica folder holds the first 12 replica studies (fast; still labelled)."""
    project = _project(tmp_path_factory.mktemp("rep"), "p")
    rep = replica.generate(review=REVIEW)
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
    assert names == ["analyses.csv", "bayes.csv", "bubble_lines.csv", "bubble_studies.csv", "characteristics.csv", "dependence.csv",
                     "excluded.csv",
                     "forest.csv", "grade.csv", "manifest.json", "metareg.csv", "pi_coverage.csv", "replica", "review.json",
                     "risk_of_bias.csv", "sof.csv", "studies.csv"]  # no staging folder left behind; results/replica untouched
    # no analyses/published.yaml, searches/ or reference fixtures in this project: none of their exhibits
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
    for name in ("analyses", "studies", "grade", "sof", "characteristics", "risk_of_bias", "forest",
                 "bubble_studies", "bubble_lines"):
        frame = out.frame(name)
        assert (frame["data"] == replica.LABEL).all(), name
    for name in ("audit.csv", "vas_published.csv", "validation.csv", "prisma_update.json"):
        assert name not in out.files  # the replica is never set beside the published numbers
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
    shutil.copy(ROOT / "review.yaml", project.root / "review.yaml")
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
    shutil.copy(ROOT / "review.yaml", project.root / "review.yaml")
    shutil.copytree(ROOT / "extraction", project.extraction)
    out = runner.execute(project, progress=False)
    analyses = out.frame("analyses").set_index("analysis_id")
    for main_id in main_ids(load_specs(project.analyses, review=REVIEW)):
        status = analyses.loc[main_id, "status"]
        assert status == "ok" or status.startswith("insufficient data (k="), (main_id, status)
    assert not analyses["synthetic"].any() and (analyses["data"] == "extraction").all()
    assert "audit.csv" in out.files


def test_the_exhibits_agree_with_the_analysis_tables(tmp_path):
    """What the pages draw (metaexercise.review.exhibits) is the analyses' own numbers: forest.csv repeats
    analyses.csv, the bubble lines are the fitted meta-regression, the characteristics count the sheets."""
    project = _project(tmp_path, "exhibits")
    shutil.copy(ROOT / "analyses" / "metaregression.yaml", project.analyses / "metaregression.yaml")
    out = runner.execute(project, source="replica", progress=False)
    analyses = out.frame("analyses").set_index("analysis_id")
    forest = out.frame("forest").set_index("analysis_id")
    assert list(out.frame("forest").columns) == ["data", *exhibits.FOREST_COLUMNS]
    fitted = analyses[(analyses["status"] == "ok") & (analyses["kind"] == "meta-analysis")]
    assert set(forest.index) == set(fitted.index) and len(forest)
    for col in ("k", "estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "I2", "QE", "QEp"):
        assert forest[col].to_numpy() == pytest.approx(fitted.loc[forest.index, col].to_numpy(), rel=1e-12), col
    assert forest["zval"].to_numpy() == pytest.approx((forest["estimate"] / forest["se"]).to_numpy(), rel=1e-9)
    assert (forest["tau2_ci_lb"] <= forest["tau2"]).all() and (forest["tau2"] <= forest["tau2_ci_ub"]).all()

    sheets = replica.generate(review=REVIEW)
    chars = out.frame("characteristics")
    assert list(chars.columns) == ["data", *exhibits.characteristics_columns(REVIEW)] and len(chars) == len(sheets.studies)
    rob = out.frame("risk_of_bias")
    assert list(rob.columns) == ["data", *exhibits.rob_columns(REVIEW)] and len(rob) == sheets.risk_of_bias["study_id"].nunique()
    first = rob.iloc[0]
    long = sheets.risk_of_bias[sheets.risk_of_bias["study_id"] == first["study_id"]].set_index("domain")
    assert all(first[d] == long.loc[d, "judgement"] for d in long.index)

    reg = out.frame("metareg")
    lines, points = out.frame("bubble_lines"), out.frame("bubble_studies")
    for (aid, term), line in lines.groupby(["analysis_id", "term"]):
        pts = points[(points["analysis_id"] == aid) & (points["term"] == term)]
        coef = reg[reg["analysis_id"] == aid].set_index("term")
        assert len(line) == exhibits.BUBBLE_GRID and len(pts) == coef.loc[term, "k"]
        assert line["x"].min() == pts["x"].min() and line["x"].max() == pts["x"].max()
        assert pts["weight"].sum() == pytest.approx(100)
        slope = (line["pred"].iloc[-1] - line["pred"].iloc[0]) / (line["x"].iloc[-1] - line["x"].iloc[0])
        assert slope == pytest.approx(coef.loc[term, "estimate"], rel=1e-9)  # a straight line: the slope
        assert (line["ci_lb"] < line["pred"]).all() and (line["pred"] < line["ci_ub"]).all()
    assert len(lines)  # the replica's meta-regressions have numeric moderators


def test_the_real_run_writes_the_published_vas_the_search_counts_and_the_engine_validation(tmp_path):
    project = _project(tmp_path, "declared")
    shutil.copy(ROOT / "analyses" / "published.yaml", project.analyses / "published.yaml")
    build(project.extraction, two_arm("aa2020", -2.0, -1.0, 2.0, 20), two_arm("bb2020", -1.5, -1.2, 1.5, 40))
    project.searches.mkdir()
    full = json.loads((ROOT / "tests" / "reference" / "rma.json").read_text())
    bcg = full["datasets"]["bcg"]
    project.reference.mkdir(parents=True)
    (project.reference / "rma.json").write_text(json.dumps(
        {"source": full["source"], "datasets": {"bcg": {**bcg, "fits": {"REML/z": bcg["fits"]["REML/z"]}}}}))
    from metaexercise.searches.store import SearchFolder
    from metaexercise.searches.workflow import run_status

    def counter(folder):
        return run_status(SearchFolder(folder)).to_dict()

    out = runner.execute(project, progress=False, search_counter=counter)
    assert "prisma_update.json" not in runner.execute(project, progress=False).files  # no counter, no counts
    vas = out.frame("vas_published").set_index("contrast")
    # Results: pain vs active, short term, SMD -0.28 [-0.42, -0.14]; x NRS common SD 1.64 = -0.46 points
    assert vas.loc["pain_active_short", "points"] == pytest.approx(-0.28 * 1.64)
    assert vas.loc["pain_active_short", "verdict"] == "probably meaningful"
    counts = json.loads(out.files["prisma_update.json"])
    assert counts["records_identified"] == 0 and counts["previous_studies"] == 58
    validation = out.frame("validation").set_index("quantity")
    assert validation["fits"].eq(1).all() and validation["reference"].eq("tests/reference").all()
    assert validation.loc["tau2", "max_rel_diff"] < 1e-6
    inputs = json.loads(out.files["manifest.json"])["inputs"]
    assert "tests/reference/rma.json" in inputs
    second = runner.execute(project, progress=False, search_counter=counter)
    assert second.files == out.files  # byte-identical, exhibits included
    # an exhibit the next run no longer writes goes, so no page shows stale counts; other files stay
    runner.write(out)
    (project.results / "notes.txt").write_text("mine", encoding="utf-8")
    shutil.rmtree(project.reference)
    runner.run_project(project, progress=False)
    names = {p.name for p in project.results.iterdir()}
    assert "prisma_update.json" not in names and "validation.csv" not in names
    assert {"notes.txt", "vas_published.csv", "forest.csv"} <= names
