"""The publish floor only reads `results/` and the project's declared files: no module of
`metaexercise/publish/` imports the engine, the extraction sheets, the analyses, the runner or the searches,
calls a fitting function or names the tests folder; and the pages render from a project that holds nothing
but results/, analyses/*.yaml, review.yaml, book/ and CITATION.cff (no extraction/, replica/, searches/ or
tests/)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from metaexercise.publish import pages as bp
from metaexercise.publish.book import execute_pages
from metaexercise.review import run as runner
from metaexercise.review.project import Project

REPO = Path(__file__).resolve().parents[2]
PUBLISH = REPO / "metaexercise" / "publish"

#: Modules the publish floor must not import (a module or anything under it).
FORBIDDEN_MODULES = ("metaexercise.engine", "metaexercise.extraction", "metaexercise.review.analyses",
                     "metaexercise.searches")
#: ... and what pages.py in particular must not import (book.py runs the analyses before building).
FORBIDDEN_IN_PAGES = ("metaexercise.review.run", "metaexercise.review.exhibits", "metaexercise.review.vas")
#: Names of fitting / sheet-reading / search-reading functions that must not appear at all.
FORBIDDEN_NAMES = {"rma", "rma_batch", "metareg", "regtest", "ranktest", "influence", "escalc", "metafor_agreement",
                   "load_extraction", "comparisons_for", "moderator_frame", "build_comparisons", "run_analysis",
                   "run_status", "to_vas", "predict", "confint"}


def _imports(tree: ast.AST) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, None, node.lineno))
            found += [(f"{node.module}.{a.name}", a.name, node.lineno) for a in node.names]
    return found


def _under(module: str, parents) -> bool:
    return any(module == p or module.startswith(p + ".") for p in parents)


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    forbidden = FORBIDDEN_MODULES + (FORBIDDEN_IN_PAGES if path.name == "pages.py" else ())
    for module, name, line in _imports(tree):
        if _under(module, forbidden):
            out.append(f"{path.name}:{line} imports {module}")
        if name in FORBIDDEN_NAMES:
            out.append(f"{path.name}:{line} imports the function {module}")
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in FORBIDDEN_NAMES:
            out.append(f"{path.name}:{node.lineno} uses {name}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = Path(node.value.strip()).parts
            if node.value.strip() == "tests" or (parts and parts[0] == "tests"):
                out.append(f"{path.name}:{node.lineno} names the tests folder: {node.value!r}")
    return out


def test_the_publish_floor_imports_no_engine_sheets_analyses_or_searches():
    files = sorted(PUBLISH.glob("*.py"))
    assert {p.name for p in files} >= {"pages.py", "book.py"}
    problems = [msg for path in files for msg in _problems(path)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_what_it_forbids(tmp_path):
    bad = tmp_path / "pages.py"
    bad.write_text("from metaexercise.engine.model import rma\nimport metaexercise.searches.workflow\n"
                   "def f(project):\n    from metaexercise.extraction.sheets import load_extraction\n"
                   "    from metaexercise.review import analyses\n    from metaexercise import rma\n"
                   "    return project.root / 'tests' / 'reference', analyses.comparisons_for, fit.predict()\n")
    text = "\n".join(_problems(bad))
    for expected in ("imports metaexercise.engine.model", "imports metaexercise.searches.workflow",
                     "imports metaexercise.extraction.sheets", "imports metaexercise.review.analyses",
                     "uses comparisons_for", "uses predict", "names the tests folder",
                     "imports the function metaexercise.rma"):
        assert expected in text, expected


# ----------------------------------------------------------------------------- pages from results alone
#: Pages that show what the publish floor used to compute itself: characteristics, coverage and the PRISMA
#: counts; risk of bias; a contrast (forest, funnel, influence); meta-regression bubbles; the VAS table; the
#: engine validation.
PAGES = ("index", "studies", "risk_of_bias", "contrast_pain_passive_short", "metaregression", "guidelines",
         "validation")


def _small_reference(folder: Path) -> None:
    """bcg only, REML/z and DL/z, from the committed metafor fixture (keeps `metaexercise run` quick)."""
    full = json.loads((REPO / "tests" / "reference" / "rma.json").read_text())
    bcg = full["datasets"]["bcg"]
    fits = {k: v for k, v in bcg["fits"].items() if k in ("REML/z", "DL/z")}
    folder.mkdir(parents=True)
    (folder / "rma.json").write_text(json.dumps({"source": full["source"], "datasets": {"bcg": {**bcg, "fits": fits}}}))


def _search_counts(folder: Path) -> dict:
    """What the command line passes `metaexercise run` (the review floor does not import the searches wing)."""
    from metaexercise.searches.store import SearchFolder
    from metaexercise.searches.workflow import run_status

    return run_status(SearchFolder(folder)).to_dict()


@pytest.fixture(scope="module")
def results_only(tmp_path_factory) -> Project:
    """Run the repository's analyses (real and replica) in a copy, then keep only what the book may read."""
    work = Project(tmp_path_factory.mktemp("run") / "project")
    for name in ("analyses", "extraction", "searches"):
        shutil.copytree(REPO / name, work.root / name)
    shutil.copy2(REPO / "review.yaml", work.root / "review.yaml")
    _small_reference(work.reference)
    runner.run_project(work, source="real", progress=False, search_counter=_search_counts)
    runner.run_project(work, source="replica", progress=False)
    shown = Project(tmp_path_factory.mktemp("book") / "project")
    shutil.copytree(work.results, shown.results)
    shown.analyses.mkdir(parents=True)
    for name in ("main.yaml", "published.yaml"):
        shutil.copy2(work.analyses / name, shown.analyses / name)
    shutil.copytree(REPO / "book", shown.book, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__"))
    shutil.copy2(REPO / "CITATION.cff", shown.root / "CITATION.cff")
    shutil.copy2(REPO / "review.yaml", shown.root / "review.yaml")  # the declaration (or results/review.json)
    return shown


def test_the_run_writes_every_exhibit_the_pages_read(results_only):
    names = {p.name for p in results_only.results.iterdir()}
    assert {"characteristics.csv", "risk_of_bias.csv", "forest.csv", "bubble_studies.csv", "bubble_lines.csv",
            "vas_published.csv", "prisma_update.json", "validation.csv"} <= names
    assert {"characteristics.csv", "risk_of_bias.csv", "forest.csv", "bubble_studies.csv",
            "bubble_lines.csv"} <= {p.name for p in (results_only.results / "replica").iterdir()}
    assert not (results_only.root / "extraction").exists() and not (results_only.root / "tests").exists()


def test_pages_render_from_results_alone(results_only, monkeypatch):
    src = results_only.root / "src"
    src.mkdir()
    for page in PAGES:
        shutil.copy2(results_only.book / f"{page}.md", src / f"{page}.md")
    assert execute_pages(src, results_only, echo=lambda s: None) == len(PAGES)
    html = {page: "\n".join(o.get("data", {}).get("text/html", "")
                            for c in nbformat.read(src / f"{page}.ipynb", as_version=4).cells
                            if c.cell_type == "code" for o in c.outputs) for page in PAGES}
    assert "Real extraction: <strong>" in html["index"]
    assert "Apeldoorn 2012" in html["studies"] and 'id="fig-prisma_flow"' in html["studies"]
    assert 'id="fig-rob_traffic_light_replica"' in html["risk_of_bias"]
    for kind in ("forest", "funnel", "influence"):
        assert f'id="fig-{kind}_pain_passive_short_replica"' in html["contrast_pain_passive_short"]
    assert 'id="fig-forest_pain_passive_short_real"' in html["contrast_pain_passive_short"]
    assert 'id="fig-bubble_metareg_pain_duration_weeks_replica"' in html["metaregression"]
    assert "probably meaningful" in html["guidelines"]
    assert "2 metafor results compared (rma.json)" in html["validation"]
    assert "results/validation.csv" in html["validation"]
    figures = results_only.book / "generated" / "figures"
    assert (figures / "forest_pain_passive_short_replica.svg").stat().st_size > 10_000

    # the helpers, called directly, agree with the stored numbers
    monkeypatch.setenv(bp.PROJECT_ENV, str(results_only.root))
    analyses, studies = bp.read_results("replica")
    row = analyses.set_index("analysis_id").loc["pain_active_short"]
    used = studies[(studies["analysis_id"] == "pain_active_short") & ~studies["excluded_as_outlier"]]
    pooled = bp.stored_pooled("pain_active_short", used.reset_index(drop=True), "replica")
    assert pooled.k == row["k"] and pooled.estimate == row["estimate"] and pooled.I2 == row["I2"]
    assert pooled.weights.sum() == pytest.approx(100)
    chars = bp.characteristics("replica")
    assert len(chars) == 58 and chars["n randomised"].dtype == "Int64"
    assert bp.prisma_update() is None  # the repository's searches/ holds no import yet
    assert bp.vas_table()["verdict"].notna().all()


def test_a_missing_results_file_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"forest\.csv missing; run `metaexercise run --source replica`"):
        bp.stored_pooled("x", pd.DataFrame(), "replica")
