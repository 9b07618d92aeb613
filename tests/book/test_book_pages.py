"""The book's page helpers, page execution and the metafor-agreement table (no browser, fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from metaexercise.engine.validation import metafor_agreement
from metaexercise.errors import BookBuildError
from metaexercise.plots.pooled import pooled_forest
from metaexercise.publish import pages as bp
from metaexercise.publish.book import execute_pages
from metaexercise.review.project import Project

REPO = Path(__file__).resolve().parents[2]
XSS_NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path))
    return Project(tmp_path)


def test_tables_escape_sheet_text_and_write_the_csv(project):
    frame = pd.DataFrame({"study": [XSS_NAME], "source": ["javascript:alert(1)"], "n": pd.array([pd.NA], "Int64")})
    html = bp.links_table(frame, "xss", "Studies").html
    assert "<img" not in html and "&lt;NA&gt;" not in html  # missing values are blank cells and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html  # only http(s) URLs become links
    csv = project.book / "generated" / "tables" / "xss.csv"
    assert pd.read_csv(csv)["study"].tolist() == [XSS_NAME]  # the download keeps the value as typed
    html = bp.table(frame, "xss2", "Caption <b>").html
    assert "<img" not in html and "Caption &lt;b&gt;" in html
    assert 'href="_static/tables/xss2.csv"' in html
    with pytest.raises(ValueError, match="file stem"):
        bp.table(frame, "../escape", "x")


def test_figure_writes_svg_and_png_with_download_links(project):
    pub = pd.DataFrame({"label": ["a"], "estimate": [-0.28], "ci_lb": [-0.42], "ci_ub": [-0.14]})
    html = bp.figure(pooled_forest(pub, synthetic=True), "pooled", "Pooled <results>").html
    for ext in ("svg", "png"):
        assert (project.book / "generated" / "figures" / f"pooled.{ext}").stat().st_size > 1000
        assert f'href="_static/figures/pooled.{ext}" download' in html
    assert 'alt="Pooled &lt;results&gt;"' in html


def test_short_labels_name_outcome_comparator_and_window():
    assert bp.short_label("pain_passive_short") == "Pain, vs passive / usual care, short term"
    assert bp.short_label("disability_active_long") == "Disability, vs active exercise, long term"


PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# A page

```{code-cell} python3
from metaexercise.publish import pages as bp
display(bp.note("shown <by> display"))
x = 40
```

```{code-cell} python3
import pandas as pd
bp.table(pd.DataFrame({"value": [x + 2, pd.NA]}), "last", "last value")
```
"""


def test_pages_execute_in_one_process_and_keep_rich_outputs(project):
    src = project.root / "src"
    src.mkdir()
    (src / "page.md").write_text(PAGE)
    (src / "plain.md").write_text("# Plain markdown\n")
    assert execute_pages(src, project, echo=lambda s: None) == 1
    assert not (src / "page.md").exists() and (src / "plain.md").exists()
    nb = nbformat.read(src / "page.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o.output_type for o in outputs] == ["display_data", "execute_result"]  # no text copy on stdout
    assert "shown &lt;by&gt; display" in outputs[0].data["text/html"]
    assert "last value" in outputs[1].data["text/html"] and "<td>42</td>" in outputs[1].data["text/html"]


def test_a_failing_page_stops_the_build_and_is_named(project):
    src = project.root / "src"
    src.mkdir()
    (src / "broken.md").write_text(PAGE.replace("x = 40", "x = 1 / 0"))
    with pytest.raises(BookBuildError, match=r"broken\.md failed: ZeroDivisionError"):
        execute_pages(src, project, echo=lambda s: None)


def _reference_subset(tmp_path, perturb: float = 0.0):
    """bcg only, REML/z and DL/z, from the committed metafor fixture (tests/reference/rma.json)."""
    full = json.loads((REPO / "tests" / "reference" / "rma.json").read_text())
    bcg = full["datasets"]["bcg"]
    fits = {k: v for k, v in bcg["fits"].items() if k in ("REML/z", "DL/z")}
    if perturb:
        fits["REML/z"] = {**fits["REML/z"], "tau2": fits["REML/z"]["tau2"] * (1 + perturb)}
    sub = {"source": full["source"], "datasets": {"bcg": {**bcg, "fits": fits}}}
    ref = tmp_path / "reference"
    ref.mkdir(exist_ok=True)
    (ref / "rma.json").write_text(json.dumps(sub))
    return ref


def test_metafor_agreement_is_tight_and_detects_a_perturbed_fixture(tmp_path):
    good = metafor_agreement(_reference_subset(tmp_path))
    assert good.fits == 2 and not good.failed
    assert good.table["max_rel_diff"].max() < 1e-6  # the engine issue's acceptance bar
    shutil.rmtree(tmp_path / "reference")
    bad = metafor_agreement(_reference_subset(tmp_path, perturb=0.01)).table.set_index("quantity")
    # tau2 off by 1% in the fixture: ours / (1.01 * metafor) - 1 = -0.0099 in relative terms.
    assert bad.loc["tau2", "max_rel_diff"] == pytest.approx(0.01 / 1.01, rel=1e-4)
    assert bad.loc["tau2", "worst_case"] == "bcg REML/z"


def test_build_book_names_a_missing_book_config(tmp_path):
    from metaexercise.publish.book import build_book

    with pytest.raises(BookBuildError, match=r"_config\.yml not found"):
        build_book(Project(tmp_path), run_analyses=False, echo=lambda s: None)
    assert not (tmp_path / "book" / "_build" / "html").exists()  # nothing half-written


def test_validation_page_says_so_when_a_project_has_no_fixtures(project):
    (shown,) = bp.validation_report()
    assert "No metafor reference fixtures" in shown.html
