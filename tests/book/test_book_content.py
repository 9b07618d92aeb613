"""What a reader reads on the GRADE, meta-regression, reproduced-vs-published and contrast pages, from the
results of a real `metaexercise run` (real extraction and replica) in a copy of the project: one
summary-of-findings table per comparison with real footnotes and the review's own ratings, honest status
lines, one metafor-style table per meta-regression, and the published estimate on every contrast page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from metaexercise.publish import pages as bp
from metaexercise.review import run as runner
from metaexercise.review.project import Project
from metaexercise.review.published import load_published

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    work = Project(tmp_path_factory.mktemp("content") / "project")
    for name in ("analyses", "extraction"):
        shutil.copytree(REPO / name, work.root / name)
    shutil.copy2(REPO / "review.yaml", work.root / "review.yaml")
    runner.run_project(work, source="real", progress=False)
    runner.run_project(work, source="replica", progress=False)
    (work.root / "book").mkdir(exist_ok=True)
    return work


@pytest.fixture
def env(project, monkeypatch):
    monkeypatch.setenv(bp.PROJECT_ENV, str(project.root))
    return project


def _html(items) -> str:
    return "\n".join(i.html for i in items)


def _tables(html: str) -> list[str]:
    return re.findall(r'<div class="me-table-wrap" id="tab-(sof_[^"]+)"', html)


def _check_footnotes(block: str) -> None:
    """Every superscript letter in a table's cells has its note under the table, and every note is used."""
    table, _, notes = block.partition("</table>")
    used = {x for marks in re.findall(r'<sup class="me-fn">([^<]+)</sup>', table) for x in marks.split(",")}
    listed = re.findall(r"<p[^>]*><sup>([a-z]+)</sup> ", notes)
    assert len(listed) == len(set(listed))
    assert used == set(listed)


# ------------------------------------------------------------------------------------------- GRADE
def test_grade_status_names_what_was_fitted_and_why_nothing_is_rated(env):
    analyses, _ = bp.read_results("real")
    status = bp.grade_status("real")
    main = bp.main_ids()
    assert status["analysis_id"].tolist() == main
    ok = analyses.set_index("analysis_id").loc[main, "status"].eq("ok")
    fitted = int(ok.sum())
    assert (status["state"] != "not fitted").sum() == fitted
    assert (status.loc[status["state"] != "rated", "why"].str.len() > 0).all()  # a reason for every gap
    html = _html(bp.grade_report("real"))
    rated = int((status["state"] == "rated").sum())
    assert f"{len(main)} main analyses: {fitted} fitted from the real extraction, {rated} of them rated" in html
    if fitted:
        assert "no main contrast could be fitted" not in html
    for why in status.loc[status["state"] != "rated", "why"].unique():
        assert bp.escape(why) in html


def test_grade_page_has_one_summary_table_per_comparison_with_real_footnotes(env):
    html = _html(bp.grade_report("real"))
    assert "\\n" not in html  # no literal backslash-n
    comparators = list(dict.fromkeys(a.comparator for a in bp._main_infos()))
    assert _tables(html) == [f"sof_real_{c}" for c in comparators]
    for block in html.split('<div class="me-table-wrap"')[1:]:
        if 'id="tab-sof_' in block:
            _check_footnotes(block)
    assert "Summary of findings: individualized vs active (non-individualized) exercise (real extraction)" in html


def test_the_review_s_own_ratings_stand_beside_ours_for_every_main_analysis(env):
    bp.grade_report("real")
    reg = load_published(env.root / "analyses" / "published.yaml")
    tables = env.book / "generated" / "tables"
    sof = pd.concat([pd.read_csv(tables / f"sof_real_{c}.csv", dtype=str, keep_default_na=False)
                     for c in ("active", "passive")])
    assert sorted(sof["analysis_id"]) == sorted(bp.main_ids())
    for _, row in sof.iterrows():
        printed = reg.certainty(row["analysis_id"], "results")
        assert printed and row["Certainty (the review's)"].endswith(printed.capitalize())
    # places that disagree are footnoted (disability vs passive, short term: moderate in the Results, low in
    # the abstract)
    notes = sof.set_index("analysis_id").loc["disability_passive_short", "notes"]
    assert "moderate (results); low (abstract)" in notes


def test_the_replica_is_rated_without_the_review_s_ratings_and_domains_unfold(env):
    html = _html(bp.grade_report("replica"))
    assert "Certainty (the review&#x27;s)" not in html and "Certainty (the review's)" not in html
    assert "8 main analyses: 8 fitted from the synthetic replica" in html
    assert "8 of them rated" in html
    for block in html.split('<div class="me-table-wrap"')[1:]:
        if 'id="tab-sof_' in block:
            _check_footnotes(block)
            assert "Downgraded one level for risk of bias" in block
    details = re.findall(r'<details class="me-grade-domains"', html)
    assert len(details) == 8 + 1  # one per main analysis, one for the sensitivity scenarios
    assert ">Domain</th>" in html and ">Rating</th>" in html and ">Why</th>" in html
    assert "Reviewer:</strong> Adopted from the review" in html  # the judgement beside the suggestion


def test_footnotes_keep_one_letter_per_text():
    notes = bp.Footnotes()
    assert notes.mark("one", "two") == '<sup class="me-fn">a,b</sup>'
    assert notes.mark("two") == '<sup class="me-fn">b</sup>'
    assert notes.mark("") == ""
    assert notes.plain("one") == "a. one"
    assert notes.html().count("<sup>") == 2
    assert bp.Footnotes().html() == ""
    notes.mark("<b>x</b>")
    assert "&lt;b&gt;x&lt;/b&gt;" in notes.html() and "<b>" not in notes.html()  # escaped


# ------------------------------------------------------------------------------------ meta-regression
def test_one_metafor_style_table_per_meta_regression(env):
    reg = bp.metareg_table("replica")
    models = reg.groupby("analysis_id", sort=False).first()
    html = _html(bp.metareg_report("replica"))
    blocks = re.findall(r'<details class="me-metareg"( open)?', html)
    assert len(blocks) == len(models)
    assert blocks == [" open" if m == "REML" else "" for m in models["method"]]
    heads = re.findall(r"<thead><tr>(.*?)</tr></thead>", html)
    assert len(heads) == len(models)
    for head in heads:
        assert re.sub(r"<[^>]+>", "|", head).replace("||", "|").strip("|").split("|") == [
            "estimate", "se", "zval", "pval", "ci.lb", "ci.ub"]
    for aid, m in models.iterrows():
        assert f"QM(df = {int(m['QM_df'])}) = {m['QM']:.4f}" in html
        assert f"QE(df = {int(m['QE_df'])}) = {m['QE']:.4f}" in html
        assert f"{m['tau2']:.4f}" in html and f"{m['R2']:.2f}%" in html
        assert (env.book / "generated" / "tables" / f"metareg_{aid}_replica.csv").is_file()


def test_meta_regressions_that_cannot_be_fitted_are_named_once(env):
    reg = bp.metareg_table("real")
    html = _html(bp.metareg_report("real"))
    failed = reg.groupby("analysis_id", sort=False).first()
    failed = failed[failed["status"] != "ok"]
    if len(failed):
        assert f"{len(failed)} of {reg['analysis_id'].nunique()} meta-regressions could not be fitted" in html
        assert html.count("<li>") == failed["status"].nunique()


# --------------------------------------------------------------------------------------- contrasts
def test_every_contrast_page_shows_the_published_estimate_and_what_the_real_rows_give(env):
    reg = load_published(env.root / "analyses" / "published.yaml")
    analyses, _ = bp.read_results("real")
    by_id = analyses.set_index("analysis_id")
    for aid in bp.main_ids():
        e = reg.effect(aid, "results")
        items = bp.contrast_report(aid, "real")
        html = _html(items[:3])
        first = items[0].html.replace("\xa0", " ").replace("\u2212", "-")  # however the table spaces it
        assert f"{e.estimate.text} [{e.ci_lb.text}, {e.ci_ub.text}]" in first, aid
        assert "<th>published</th>" in items[0].html and "<th>ours</th>" in items[0].html
        assert "The rows of the real extraction hold" in _html(items)
        k = int(by_id.loc[aid, "k"])
        if by_id.loc[aid, "status"] != "ok":
            assert "not pooled" in items[0].html and "cannot support this analysis" in html
        elif k != int(e.k.value):
            assert f"Not comparable: ours k = {k} from the public rows vs k = {int(e.k.value)} published" in html


def test_the_replica_contrast_is_never_set_beside_the_published_numbers(env):
    first = bp.contrast_report("pain_active_short", "replica")[0].html
    assert "<th>published</th>" not in first and "Pooled result (synthetic replica" in first
    assert "⨁" in first  # our certainty of the replica's analysis


def test_generated_contrast_pages_open_with_the_review_s_result(env):
    from metaexercise.publish.generate import plan_book

    plan = plan_book(env)
    page = plan.pages["contrast_pain_active_short"].text
    assert "## The review's result and the real extraction" in page
    assert 'bp.contrast_report("pain_active_short", "real")' in page
    assert "bp.metareg_report(" in plan.pages["metaregression"].text if "metaregression" in plan.pages else True
