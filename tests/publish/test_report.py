"""`metaexercise report FILE.docx` (metaexercise.publish.report), read back with python-docx: the title, the
headings, the summary-of-findings and main-results tables cell by cell against results/, the forest plots as
PNG images with captions, the real extraction only (never the replica), an honest document when there are no
real results, exit 2 on a missing results/ folder, and an atomic write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docx
import pandas as pd
import pytest

from metaexercise.commands.cli import main
from metaexercise.publish import report as rp
from metaexercise.review import replica
from metaexercise.review import run as runner
from metaexercise.review.project import Project
from metaexercise.spreadsheet_safety import read_csv
from metaexercise.vocabulary import SYNTHETIC_LABEL

REPO = Path(__file__).resolve().parents[2]
FIXTURE_NOTE = "test fixture: generated rows standing in for a real extraction"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """A project whose extraction/ holds generated rows standing in for a real extraction (the replica's
    generator, relabelled: study ids Trial-01, ..., not marked synthetic), so that every main analysis is pooled
    and graded; run on it (results/) and on its replica (results/replica/, which the report must never show)."""
    p = Project(tmp_path_factory.mktemp("report") / "project")
    shutil.copytree(REPO / "analyses", p.analyses)
    shutil.copy2(REPO / "review.yaml", p.declaration)
    replica.write(replica.generate(review=p.review), p.extraction)
    for sheet in p.extraction.glob("*.csv"):
        text = sheet.read_text(encoding="utf-8").replace("Replica-", "Trial-")
        sheet.write_text(text.replace(SYNTHETIC_LABEL, FIXTURE_NOTE).replace("(synthetic)", "(fixture)"),
                         encoding="utf-8")
    studies = pd.read_csv(p.extraction / "studies.csv")
    studies["synthetic"] = False
    studies.to_csv(p.extraction / "studies.csv", index=False)
    runner.run_project(p, source="real", progress=False)
    runner.run_project(p, source="replica", progress=False)
    return p


@pytest.fixture(scope="module")
def written(project, tmp_path_factory) -> tuple[Path, docx.document.Document]:
    out = tmp_path_factory.mktemp("out") / "manuscript.docx"
    assert main(["--project", str(project.root), "report", str(out)]) == 0
    return out, docx.Document(str(out))


def _tiny_png(*_args, **_kwargs) -> bytes:
    """A stand-in for a forest plot where a test is not about the figures (rendering 8 forests takes seconds)."""
    import io

    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    Figure(figsize=(0.2, 0.2)).savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


def _all_text(document) -> str:
    cells = [c.text for t in document.tables for r in t.rows for c in r.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


def _fmt(x, spec=".2f") -> str:
    return "" if pd.isna(x) else format(float(x), spec)


def test_title_headings_and_captions(project, written):
    _, d = written
    review = json.loads((project.results / "review.json").read_text(encoding="utf-8"))
    first = d.paragraphs[0]
    assert first.style.name == "Title" and first.text == review["title"]
    assert d.core_properties.title == review["title"]
    headings = [p.text for p in d.paragraphs if p.style.name == "Heading 1"]
    assert headings == ["Summary of findings", "Main results", "Forest plots"]
    captions = [p.text for p in d.paragraphs if p.style.name == "Caption"]
    assert [c.split(".")[0] for c in captions if c.startswith("Table")] == [f"Table {i}" for i in range(1, 4)]
    assert rp.NO_REAL_RESULTS not in _all_text(d)


def test_summary_of_findings_tables_equal_results(project, written):
    _, d = written
    sof = read_csv(project.results / "sof.csv", dtype=str, keep_default_na=False)  # formula escapes undone
    groups = list(dict.fromkeys(sof["Comparison"]))
    assert len(groups) == 2
    captions = [p.text for p in d.paragraphs if p.style.name == "Caption" and "Summary of findings" in p.text]
    assert captions == [f"Table {i + 1}. Summary of findings: {g}" for i, g in enumerate(groups)]
    paragraphs = [p.text for p in d.paragraphs]
    for table, comparison in zip(d.tables, groups):
        rows = sof[sof["Comparison"] == comparison]
        header = [c.text for c in table.rows[0].cells]
        assert header[:3] == ["Outcome", "№ of participants (studies)", "Effect (SMD, 95% CI)"]
        assert "Certainty (GRADE)" in header
        body = [[c.text for c in r.cells] for r in table.rows[1:]]
        assert body == rows[header].to_numpy().tolist()
        for explanation in rows["Explanations"]:  # the footnotes, one paragraph each, below the table
            for note in filter(None, explanation.split("\n")):
                assert note in paragraphs


def test_main_results_table_equals_results(project, written):
    _, d = written
    review = json.loads((project.results / "review.json").read_text(encoding="utf-8"))
    analyses = pd.read_csv(project.results / "analyses.csv").set_index("analysis_id")
    table = d.tables[-1]
    assert [c.text for c in table.rows[0].cells] == list(rp.MAIN_HEADINGS)
    body = [[c.text for c in r.cells] for r in table.rows[1:]]
    assert len(body) == len(review["main_analyses"]) == 8
    for cells, aid in zip(body, review["main_analyses"]):
        r = analyses.loc[aid]
        assert r["status"] == "ok"
        assert cells == [r["label"], str(int(r["k"])), f"{_fmt(r['estimate'])} [{_fmt(r['ci_lb'])}, {_fmt(r['ci_ub'])}]",
                         f"[{_fmt(r['pi_lb'])}, {_fmt(r['pi_ub'])}]", _fmt(r["tau2"], ".3f"), f"{_fmt(r['I2'], '.0f')}%"]


def test_one_forest_plot_per_pooled_main_analysis(project, written):
    _, d = written
    shapes = d.inline_shapes
    assert len(shapes) == 8
    blobs = [d.part.related_parts[s._inline.graphic.graphicData.pic.blipFill.blip.embed].blob for s in shapes]
    assert all(b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) > 20_000 for b in blobs)
    assert len(set(blobs)) == 8
    captions = [p.text for p in d.paragraphs if p.style.name == "Caption" and p.text.startswith("Figure")]
    analyses = pd.read_csv(project.results / "analyses.csv").set_index("analysis_id")
    review = json.loads((project.results / "review.json").read_text(encoding="utf-8"))
    for i, (caption, aid) in enumerate(zip(captions, review["main_analyses"])):
        assert caption.startswith(f"Figure {i + 1}. Forest plot: {analyses.loc[aid, 'label']} (real extraction;")
    # each picture stands right above its caption
    body = d.element.body
    for caption in captions:
        (p,) = [p for p in d.paragraphs if p.text == caption]
        before = p._p.getprevious()
        assert before is not None and before.xpath(".//pic:pic") and body.index(before) == body.index(p._p) - 1


def test_the_replica_never_appears(project, written):
    _, d = written
    assert (project.results / "replica" / "analyses.csv").is_file()  # there, and not read
    text = _all_text(d)
    assert "Replica" not in text and SYNTHETIC_LABEL not in text and "synthetic replica" not in text.lower()


def test_synthetic_rows_in_results_are_left_out(project, tmp_path, monkeypatch):
    """A row marked synthetic that finds its way into results/ (a hand-copied file) is never reported."""
    monkeypatch.setattr(rp, "forest_png", _tiny_png)
    p = Project(tmp_path / "project")
    shutil.copytree(project.results, p.results)
    sof = read_csv(p.results / "sof.csv", dtype=str, keep_default_na=False)
    fake = sof.iloc[[0]].assign(data=SYNTHETIC_LABEL, Comparison="replica comparison")
    pd.concat([sof, fake]).to_csv(p.results / "sof.csv", index=False)
    analyses = pd.read_csv(p.results / "analyses.csv")
    first = analyses.index[analyses["analysis_id"] == "pain_active_short"][0]
    fake = analyses.loc[[first]].assign(synthetic=True, estimate=-9.99)
    pd.concat([fake, analyses]).to_csv(p.results / "analyses.csv", index=False)
    out = tmp_path / "out.docx"
    rp.build_report(p, out)
    text = _all_text(docx.Document(str(out)))
    assert "replica comparison" not in text and "-9.99" not in text


def test_no_real_results_is_said(project, tmp_path):
    p = Project(tmp_path / "project")
    shutil.copytree(project.results, p.results)
    analyses = pd.read_csv(p.results / "analyses.csv")
    analyses["status"] = "insufficient data (k=1)"
    analyses.to_csv(p.results / "analyses.csv", index=False)
    (p.results / "sof.csv").write_text("data\n", encoding="utf-8")
    out = tmp_path / "empty.docx"
    summary = rp.build_report(p, out)
    d = docx.Document(str(out))
    text = _all_text(d)
    assert not summary.real_results and rp.NO_REAL_RESULTS in text
    assert "No summary of findings" in text and "No forest plot" in text
    assert len(d.inline_shapes) == 0
    rows = [[c.text for c in r.cells] for r in d.tables[-1].rows[1:]]
    assert len(rows) == 8 and all(r[2] == "not estimable: insufficient data (k=1)" for r in rows)


def test_the_repository_extraction(tmp_path):
    """The repository's own extraction (public rows only): its pooled contrasts, and a summary of findings only
    where results/sof.csv has rows."""
    p = Project(tmp_path / "project")
    for name in ("analyses", "extraction"):
        shutil.copytree(REPO / name, p.root / name)
    shutil.copy2(REPO / "review.yaml", p.declaration)
    runner.run_project(p, source="real", progress=False)
    out = tmp_path / "repo.docx"
    summary = rp.build_report(p, out)
    d = docx.Document(str(out))
    analyses = pd.read_csv(p.results / "analyses.csv")
    review = json.loads((p.results / "review.json").read_text(encoding="utf-8"))
    ok = analyses[analyses["analysis_id"].isin(review["main_analyses"]) & (analyses["status"] == "ok")]
    assert len(d.inline_shapes) == len(ok) == len(summary.figures)
    sof = read_csv(p.results / "sof.csv")
    assert ("No summary of findings" in _all_text(d)) == sof.empty


def test_a_missing_results_folder_exits_2_naming_it(tmp_path, capsys):
    out = tmp_path / "x.docx"
    assert main(["--project", str(tmp_path), "report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'results'}: no results folder" in err and "metaexercise run" in err
    assert not out.exists()
    (tmp_path / "results").mkdir()
    assert main(["--project", str(tmp_path), "report", str(out)]) == 2
    assert "review.json, analyses.csv missing" in capsys.readouterr().err
    assert main(["--project", str(tmp_path), "report", str(tmp_path / "x.pdf")]) == 2
    assert "must be a .docx file" in capsys.readouterr().err


def test_written_whole_or_not_at_all(project, tmp_path, monkeypatch):
    out = tmp_path / "manuscript.docx"
    out.write_bytes(b"the previous version")

    def broken_save(self, path):
        Path(path).write_bytes(b"half a docu")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(docx.document.Document, "save", broken_save)
    monkeypatch.setattr(rp, "forest_png", _tiny_png)
    assert main(["--project", str(project.root), "report", str(out)]) == 2
    assert out.read_bytes() == b"the previous version"
    assert [f.name for f in tmp_path.iterdir()] == ["manuscript.docx"]
