"""Reproduced vs published: one row per place in the paper, the verdict first; numbers are compared only where
the real rows pool the same number of comparisons as the review, never subtracted across different k."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from metaexercise.publish import pages as bp

REPO = Path(__file__).resolve().parents[2]
NAN = float("nan")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "analyses").mkdir()
    for name in ("published.yaml", "main.yaml", "sensitivity.yaml"):
        shutil.copy(REPO / "analyses" / name, tmp_path / "analyses" / name)
    shutil.copy(REPO / "review.yaml", tmp_path / "review.yaml")  # declares the registry (components.published)
    (tmp_path / "results").mkdir()
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path))
    cols = ["analysis_id", "status", "k", "estimate", "ci_lb", "ci_ub", "I2", "vas_points", "egger_z", "egger_p",
            "rank_tau", "rank_p"]
    rows = [
        ["pain_active_short", "insufficient data (k=0)", 0] + [NAN] * 9,
        # Hypothetical "ours" for scenario ii, chosen inside and outside the printed rounding intervals:
        # the abstract prints -0.28 [-0.42, -0.14], i.e. estimate in [-0.285, -0.275]; it prints no k.
        ["sens_psych_pain", "ok", 3, -0.2801, -0.4249, -0.1349] + [NAN] * 6,
        # two public studies against the review's 32: not comparable, whatever the numbers
        ["pain_passive_short", "ok", 2, -0.547, -0.716, -0.377, 0.0] + [NAN] * 5,
        # the review's k = 17, -0.14 [-0.22, -0.07], I² 29%: every printed number within rounding
        ["pain_passive_long", "ok", 17, -0.1404, -0.2203, -0.0701, 29.3] + [NAN] * 5,
    ]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "results" / "analyses.csv", index=False)
    pd.DataFrame({"analysis_id": []}).to_csv(tmp_path / "results" / "studies.csv", index=False)
    return tmp_path


def test_the_verdict_comes_first_and_every_row_that_cannot_be_compared_says_why(project):
    table = bp.reproduced_vs_published()
    assert list(table.columns)[:6] == ["verdict", "result", "where in the paper", "published", "ours", "why"]
    table = table.set_index("entry")
    assert table.index.is_unique
    assert all(v in ("reproduced", "differs") or v.startswith("cannot be compared: ") for v in table["verdict"])
    assert (table.loc[table["verdict"].str.startswith("cannot be compared"), "why"].str.len() > 0).all()
    row = table.loc["pain_active_short.abstract"]
    assert row["published"] == "-0.28 [-0.42, -0.14]"
    assert row["verdict"] == "cannot be compared: too few real rows"
    assert row["ours"] == "—"
    assert row["why"] == "ours k = 0 from the public rows (too few to pool) vs k = 32 published: nothing to compare"


def test_a_different_k_is_not_comparable_and_no_difference_is_shown(project):
    table = bp.reproduced_vs_published().set_index("entry")
    assert "difference" not in table.columns and "within_rounding" not in table.columns
    row = table.loc["pain_passive_short.results"]
    assert row["verdict"] == "cannot be compared: k differs"
    assert row["why"] == "ours k = 2 from the public rows vs k = 32 published: not comparable"
    assert row["ours"] == "k 2, -0.547 [-0.716, -0.377], I² 0%"  # ours beside theirs, nothing subtracted
    # the abstract prints no k: the contrast's k from the Results decides
    assert table.loc["pain_passive_short.abstract", "verdict"] == "cannot be compared: k differs"


def test_same_k_is_compared_within_the_rounding_of_the_printed_digits(project):
    table = bp.reproduced_vs_published().set_index("entry")
    ok = table.loc["pain_passive_long.results"]
    assert ok["verdict"] == "reproduced"
    assert ok["why"] == "all 5 numbers within rounding of the printed digits"
    psych = table.loc["pain_active_short_psych.abstract"]
    assert psych["analysis"] == "sens_psych_pain"
    assert psych["result"] == "Pain, short term, vs active: with a psychological intervention"
    # -0.4249 lies in [-0.425, -0.415]; -0.1349 lies outside [-0.145, -0.135].
    assert psych["verdict"] == "differs"
    assert psych["why"].startswith("CI upper bound -0.1349 outside [-0.145, -0.135] (printed -0.14)")
    assert "the published k is not printed" in psych["why"]
    # verdicts that compare numbers are listed first
    verdicts = bp.reproduced_vs_published()["verdict"].tolist()
    assert verdicts[: verdicts.count("reproduced")] == ["reproduced"] * verdicts.count("reproduced")


def test_the_summary_line_counts_printed_numbers(project):
    line = bp.reproduced_summary()
    table = bp.reproduced_vs_published()
    # pain_passive_long: 5 (Results) + 3 (abstract); sens_psych_pain: 2 of 3 (the CI upper bound differs)
    assert line.startswith("10 of ") and "; 1 differ;" in line
    assert f"({len(table)} results in the paper)" in line
    assert "because our k differs from the published k" in line
    assert "because the real rows are too few to pool" in line
    items = bp.reproduced_report()
    assert items[0].html.count(line.split(";")[0].replace("'", "&#x27;")) == 1


def test_the_methods_page_simulation_is_deterministic_and_reported(tmp_path, monkeypatch):
    from metaexercise.publish.book import _run_simulation
    from metaexercise.review.project import Project

    texts = []
    for name in ("a", "b"):
        root = tmp_path / name
        (root / "book").mkdir(parents=True)
        _run_simulation(Project(root))
        texts.append((root / "results" / "simulation.csv").read_text())
    assert texts[0] == texts[1]  # fixed seed: the page shows the same numbers on every build
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path / "a"))
    items = bp.simulation_report()
    assert len(items) == 2 and "Simulation study, review preset (k = 32, I² = 73%" in items[0].html
