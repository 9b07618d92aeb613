"""`metaexercise init` from a long table of arms, end to end: the project it writes, the errors it refuses a bad
table with, metafor's answers from `metaexercise run` on real metadat tables (tests/reference/metadat/), and
the book generated from the project, which names the project's outcomes and nothing of another review."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from metaexercise.commands.cli import main
from metaexercise.review.declaration import load_review
from metaexercise.review.init_project import COLUMNS, InitError, init_project, read_arms_table, timepoints
from metaexercise.review.project import Project

REPO = Path(__file__).resolve().parents[2]
METADAT = REPO / "tests" / "reference" / "metadat"
REFERENCE = json.loads((METADAT / "metadat_smd.json").read_text(encoding="utf-8"))["datasets"]
#: Words of the back-pain review that no page of another project may carry (\b: "metaexercise" is allowed).
FOREIGN = re.compile(r"back pain|individuali|\bVAS\b|\bNRS\b|Fleckenstein|\bexercise\b", re.IGNORECASE)


def _init(tmp_path: Path, dataset: str, **kw) -> Path:
    root = tmp_path / dataset
    assert main(["init", str(root), "--data", str(METADAT / f"{dataset}_arms.csv"), *kw.get("args", [])]) == 0
    return root


# ------------------------------------------------------------------------------------- the project
def test_init_writes_a_project_from_the_dagostino_table(tmp_path):
    root = _init(tmp_path, "dagostino1998", args=["--title", "Antihistamines for the common cold"])
    review = load_review(root / "review.yaml")
    assert review.title == "Antihistamines for the common cold"
    assert review.outcome_ids == ("runny_nose", "sneezing")
    assert [o.label for o in review.outcomes] == ["Runny nose", "Sneezing"]
    assert (review.measure, review.basis, review.windows, review.comparators) == ("SMD", "final", (), ())
    assert (review.role_experimental, review.role_control, review.timepoint_unit) == ("experimental", "control",
                                                                                      "days")
    specs = yaml.safe_load((root / "analyses" / "analyses.yaml").read_text())["analyses"]
    assert [(s["id"], s["label"]) for s in specs] == [
        ("runny_nose_day_1", "Runny nose, day 1"), ("runny_nose_day_2", "Runny nose, day 2"),
        ("sneezing_day_1", "Sneezing, day 1"), ("sneezing_day_2", "Sneezing, day 2")]
    assert all("window" not in s and "comparator" not in s for s in specs)
    assert [s["timepoint"] for s in specs] == [1, 2, 1, 2]
    studies = pd.read_csv(root / "extraction" / "studies.csv", dtype=str, keep_default_na=False)
    assert len(studies) == 9 and (studies["inclusion_status"] == "included").all()
    assert (studies["synthetic"] == "false").all() and (studies["source"] == "dagostino1998_arms.csv").all()
    assert studies["first_author"].iloc[0] == "Study 1 (chlorpheniramine; natural cold)"
    outcomes = pd.read_csv(root / "extraction" / "outcomes.csv", dtype=str, keep_default_na=False)
    assert len(outcomes) == 68 and (outcomes["value_kind"] == "final").all()
    assert outcomes.loc[0, "location"] == "row 2" and outcomes.loc[0, "timepoint_label"] == "day 1"
    assert set(outcomes["instrument"]) == {"runny_nose-as-reported", "sneezing-as-reported"}
    instruments = yaml.safe_load((root / "extraction" / "instruments.yaml").read_text())
    assert {i["id"]: i["outcome"] for i in instruments} == {"runny_nose-as-reported": "runny_nose",
                                                            "sneezing-as-reported": "sneezing"}
    arms = pd.read_csv(root / "extraction" / "arms.csv", dtype=str, keep_default_na=False)
    assert set(arms.loc[arms["arm_role"] == "control", "control_type"]) == {"control"}
    assert list(pd.read_csv(root / "extraction" / "risk_of_bias.csv").columns)[:2] == ["study_id", "domain"]


def test_init_without_time_points_and_study_names(tmp_path):
    root = _init(tmp_path, "normand1999")
    specs = yaml.safe_load((root / "analyses" / "analyses.yaml").read_text())["analyses"]
    assert [(s["id"], s["label"]) for s in specs] == [("length_of_stay", "Length of stay")]
    assert load_review(root / "review.yaml").title == "normand1999"
    gibson = init_project(tmp_path / "g", data=METADAT / "gibson2002_arms.csv")
    st = pd.read_csv(tmp_path / "g" / "extraction" / "studies.csv", dtype=str, keep_default_na=False)
    assert gibson.studies == 13 and (st.loc[0, "study_id"], st.loc[0, "first_author"], st.loc[0, "year"]) == (
        "cote1997", "Cote", "1997")


def test_time_point_labels_keep_their_numbers():
    unit, tps = timepoints(["day 1", "day 2"])
    assert unit == "days" and [tps[x].value for x in ("day 1", "day 2")] == [1, 2]
    unit, tps = timepoints(["12 weeks", "6 months", "baseline"])
    assert unit == "weeks" and tps["12 weeks"].value == 12 and tps["6 months"].value == 26
    assert tps["baseline"].value is None


def test_an_empty_project_and_a_non_empty_folder(tmp_path):
    root = tmp_path / "empty"
    assert main(["init", str(root)]) == 0
    assert yaml.safe_load((root / "analyses" / "analyses.yaml").read_text()) == {"analyses": []}
    assert len(pd.read_csv(root / "extraction" / "studies.csv")) == 0
    assert main(["init", str(root), "--data", str(METADAT / "normand1999_arms.csv")]) == 2
    assert yaml.safe_load((root / "analyses" / "analyses.yaml").read_text()) == {"analyses": []}
    assert main(["init", str(root), "--force", "--data", str(METADAT / "normand1999_arms.csv")]) == 0
    assert len(pd.read_csv(root / "extraction" / "studies.csv")) == 9


# ------------------------------------------------------------------------------------ bad tables
GOOD = ["Smith 2001,drug,experimental,pain,,20,1.5,0.9", "Smith 2001,placebo,control,pain,,21,2.0,1.0"]
BAD = {
    "missing column": (["study,arm,role,outcome,n,mean,sd", "a,b,control,pain,3,1,1"], "row 1, column timepoint"),
    "non-numeric n": ([GOOD[0], "Smith 2001,placebo,control,pain,,twenty,2.0,1.0"], "row 3, column n"),
    "sd not above 0": ([GOOD[0], "Smith 2001,placebo,control,pain,,21,2.0,0"], "row 3, column sd"),
    "unknown role": ([GOOD[0], "Smith 2001,placebo,comparator,pain,,21,2.0,1.0"], "row 3, column role"),
    "no control arm": ([GOOD[0]], "row 2, column role: study 'Smith 2001' has no control arm"),
    "duplicate rows": ([*GOOD, GOOD[1]], "row 4, columns study/arm/outcome/timepoint: repeats row 3"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_table_is_refused_with_file_row_and_column_and_nothing_written(tmp_path, capsys, case):
    lines, expected = BAD[case]
    data = tmp_path / "arms.csv"
    header = [] if lines[0].startswith("study,") else [",".join(COLUMNS)]
    data.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    root = tmp_path / "project"
    assert main(["init", str(root), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"arms.csv, {expected}" in err and "nothing written" in err
    assert not root.exists() and [p.name for p in tmp_path.iterdir()] == ["arms.csv"]
    with pytest.raises(InitError):
        read_arms_table(data)


# ---------------------------------------------------------------------------- end to end: metafor
def _run(root: Path) -> pd.DataFrame:
    from metaexercise.review import run as runner

    runner.run_project(Project(root), source="real", progress=False)
    return pd.read_csv(root / "results" / "analyses.csv").set_index("analysis_id")


@pytest.mark.parametrize("dataset", ["normand1999", "dagostino1998"])
def test_init_then_run_gives_metafor_pooled_results(tmp_path, dataset):
    root = _init(tmp_path, dataset)
    ours = _run(root)
    ref = REFERENCE[dataset]["analyses"]
    assert len(ours) == len(ref)
    for key, r in ref.items():
        outcome, _, timepoint = key.partition("/")
        aid = outcome + (f"_{timepoint.replace(' ', '_')}" if timepoint else "")
        row, fit = ours.loc[aid], r["fit"]
        assert row["status"] == "ok" and row["k"] == r["k"] == fit["k"], aid
        for ours_col, theirs in (("estimate", "beta"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("se", "se")):
            expected = fit[theirs][0] if isinstance(fit[theirs], list) else fit[theirs]
            assert row[ours_col] == pytest.approx(expected, rel=1e-6), (aid, ours_col)
        for col, theirs in (("tau2", "tau2"), ("I2", "I2")):
            expected = fit[theirs][0] if isinstance(fit[theirs], list) else fit[theirs]
            if r["tau2_at_zero"]:
                assert row[col] == pytest.approx(expected, abs=1e-10), (aid, col)
            else:
                assert row[col] == pytest.approx(expected, rel=1e-6), (aid, col)


# --------------------------------------------------------------------------------- the book
def _execute_book(root: Path) -> dict[str, str]:
    """Write the book's sources and execute every page without Sphinx; the pages' text and outputs."""
    from metaexercise.publish.book import execute_pages
    from metaexercise.publish.generate import write_book_sources

    project = Project(root)
    plan = write_book_sources(project)
    src = root / "_pages"
    shutil.copytree(project.book, src)
    execute_pages(src, project, echo=lambda s: None)
    out = {}
    for name in plan.pages:
        nb = nbformat.read(src / f"{name}.ipynb", as_version=4)
        texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
        texts += [o.get("data", {}).get("text/html", "") + o.get("text", "") for c in nb.cells
                  if c.cell_type == "code" for o in c.outputs]
        out[name] = "\n".join(texts)
    return out


def test_the_dagostino_book_names_its_outcomes_and_nothing_of_another_review(tmp_path):
    root = _init(tmp_path, "dagostino1998", args=["--title", "Antihistamines for the common cold"])
    _run(root)
    pages = _execute_book(root)
    assert {"index", "methods", "studies", "risk_of_bias", "contrast_runny_nose_day_1", "contrast_sneezing_day_2"} \
        <= set(pages)
    assert not {"reproduced", "guidelines", "replica", "grade", "sensitivity", "metaregression"} & set(pages)
    assert "Antihistamines for the common cold" in pages["index"]
    assert "Runny nose, day 1" in pages["contrast_runny_nose_day_1"]
    assert 'id="fig-forest_sneezing_day_2_real"' in pages["contrast_sneezing_day_2"]
    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    assert [c["file"] for p in toc["parts"] for c in p["chapters"]][:3] == ["methods", "studies", "risk_of_bias"]
    for name, text in pages.items():
        assert not FOREIGN.search(text), (name, FOREIGN.search(text).group(0))
    svg = (root / "book" / "generated" / "figures" / "forest_runny_nose_day_1_real.svg").read_text()
    assert "Favours" in svg and not FOREIGN.search(svg)


def test_an_empty_project_has_a_book_that_says_there_is_no_data(tmp_path):
    root = tmp_path / "empty"
    assert main(["init", str(root), "--title", "A new review"]) == 0
    pages = _execute_book(root)
    assert set(pages) == {"index", "methods"}
    assert "There is no data yet" in pages["index"] and "A new review" in pages["index"]
