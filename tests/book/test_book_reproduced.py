"""Reproduced vs published: one row per place in the paper; numbers only where the real rows support them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from metaexercise.publish import pages as bp

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "analyses").mkdir()
    shutil.copy(REPO / "analyses" / "published.yaml", tmp_path / "analyses" / "published.yaml")
    # the spec of scenario ii says which published result it reproduces (`published_as`)
    shutil.copy(REPO / "analyses" / "sensitivity.yaml", tmp_path / "analyses" / "sensitivity.yaml")
    shutil.copy(REPO / "review.yaml", tmp_path / "review.yaml")  # declares the registry (components.published)
    (tmp_path / "results").mkdir()
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path))
    cols = ["analysis_id", "status", "k", "estimate", "ci_lb", "ci_ub", "I2", "vas_points", "egger_z", "egger_p",
            "rank_tau", "rank_p"]
    rows = [
        ["pain_active_short", "insufficient data (k=0)"] + [float("nan")] * 10,
        # Hypothetical "ours" for scenario ii, chosen inside and outside the printed rounding intervals:
        # the abstract prints -0.28 [-0.42, -0.14], i.e. estimate in [-0.285, -0.275].
        ["sens_psych_pain", "ok", 3, -0.2801, -0.4249, -0.1349] + [float("nan")] * 6,
    ]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "results" / "analyses.csv", index=False)
    pd.DataFrame({"analysis_id": []}).to_csv(tmp_path / "results" / "studies.csv", index=False)
    return tmp_path


def test_rows_say_why_no_number_is_shown_and_map_the_psych_abstract_result(project):
    table = bp.reproduced_vs_published().set_index("entry")
    assert table.index.is_unique
    row = table.loc["pain_active_short.abstract"]
    assert row["published"] == "-0.28 [-0.42, -0.14]"
    assert row["ours"].startswith("cannot be computed from the real rows: insufficient data (k=0)")
    assert row["difference"] == "" and row["within_rounding"] == ""
    psych = table.loc["pain_active_short_psych.abstract"]
    assert psych["analysis"] == "sens_psych_pain"
    assert psych["ours"] == "estimate -0.280, ci_lb -0.425, ci_ub -0.135"
    # -0.4249 lies in [-0.425, -0.415]; -0.1349 lies outside [-0.145, -0.135].
    assert psych["within_rounding"] == "estimate yes, ci_lb yes, ci_ub no"


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
