"""Edition diff of two results tables and the cumulative meta-analysis by publication year."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metaexercise.commands.cli import main
from metaexercise.engine.model import rma
from metaexercise.errors import SearchDataError
from metaexercise.searches.edition import cumulative_by_year, edition_diff, read_results

OLD = ("analysis_id,k,estimate,ci_lb,ci_ub,certainty\n"
       "pain_short,20,-0.28,-0.47,-0.09,low\n"
       "disability_short,18,-0.30,-0.47,-0.13,low\n"
       "pain_long,9,-0.21,-0.40,-0.02,moderate\n"
       "dropped_one,3,0.10,-0.20,0.40,very low\n")
NEW = ("analysis_id,k,estimate,ci_lb,ci_ub,certainty\n"
       "pain_short,23,-0.31,-0.48,-0.14,moderate\n"
       "disability_short,18,-0.30,-0.47,-0.13,low\n"
       "pain_long,9,-0.25,-0.44,-0.06,moderate\n"
       "new_one,4,-0.50,-0.90,-0.10,\n")


def _tables(tmp_path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(OLD)
    new.write_text(NEW)
    return old, new


def test_edition_diff(tmp_path):
    old, new = _tables(tmp_path)
    diff = edition_diff(read_results(old), read_results(new)).to_frame().set_index("analysis_id")
    assert diff["change"].to_dict() == {"pain_short": "k changed", "disability_short": "unchanged",
                                        "pain_long": "estimate moved", "new_one": "new analysis",
                                        "dropped_one": "dropped"}
    assert diff.loc["pain_short", ["k_old", "k_new"]].tolist() == [20, 23]
    assert diff.loc["pain_short", "shift"] == pytest.approx(-0.31 - -0.28)
    assert diff.loc["pain_short", ["certainty_old", "certainty_new"]].tolist() == ["low", "moderate"]
    assert np.isnan(diff.loc["new_one", "k_old"]) and np.isnan(diff.loc["dropped_one", "estimate_new"])


def test_results_problems_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("analysis_id,k,estimate,ci_lb,ci_ub\na,3,-0.2,oops,0.1\n")
    with pytest.raises(SearchDataError, match=r"bad.csv row 2, column ci_lb: 'oops' is not a number"):
        read_results(bad)
    bad.write_text("analysis_id,k,estimate\na,3,-0.2\n")
    with pytest.raises(SearchDataError, match=r"bad.csv row 1: missing column\(s\) ci_lb, ci_ub"):
        read_results(bad)


def test_cumulative_equal_effects_by_hand():
    """Equal-effects cumulative estimates are inverse-variance means. In year order the studies are
    B (2001: yi 0.1, vi 0.04), A (2005: yi 0.5, vi 0.01), C (2005: yi -0.2, vi 0.02).
    k=1: 0.1; k=2: (0.1/0.04 + 0.5/0.01) / (1/0.04 + 1/0.01) = (2.5 + 50) / 125 = 0.42;
    k=3: (2.5 + 50 - 10) / (25 + 100 + 50) = 42.5 / 175 = 0.242857...; SE = sqrt(1/175)."""
    studies = pd.DataFrame({"study": ["A", "B", "C"], "year": [2005, 2001, 2005], "yi": [0.5, 0.1, -0.2],
                            "vi": [0.01, 0.04, 0.02]})
    table = cumulative_by_year(studies, method="EE")
    assert table["study"].tolist() == ["B", "A", "C"]
    assert table["k"].tolist() == [1, 2, 3]
    assert table["estimate"].to_numpy() == pytest.approx([0.1, 0.42, 42.5 / 175], rel=1e-12)
    assert table["se"].iloc[-1] == pytest.approx(np.sqrt(1 / 175), rel=1e-12)


def test_cumulative_last_row_is_the_full_fit():
    rng = np.random.default_rng(7)  # synthetic effects, not trial data
    studies = pd.DataFrame({"study": list("ABCDEFG"), "year": rng.integers(1995, 2024, 7),
                            "yi": rng.normal(-0.3, 0.3, 7), "vi": rng.uniform(0.01, 0.08, 7)})
    table = cumulative_by_year(studies)
    full = rma(studies["yi"].to_numpy(), studies["vi"].to_numpy())
    assert table["estimate"].iloc[-1] == pytest.approx(full.estimate, rel=1e-10)
    assert table["tau2"].iloc[-1] == pytest.approx(full.tau2, rel=1e-8, abs=1e-12)
    assert table["year"].is_monotonic_increasing


def test_diff_command(tmp_path, capsys):
    old, new = _tables(tmp_path)
    studies = tmp_path / "studies.csv"
    studies.write_text("analysis_id,study,year,yi,vi\npain_short,A,2005,0.5,0.01\npain_short,B,2001,0.1,0.04\n")
    assert main(["search", "diff", str(old), str(new), "--studies", str(studies), "--json",
                 "--project", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [row["analysis_id"] for row in payload["diff"]][:2] == ["pain_short", "disability_short"]
    assert [row["study"] for row in payload["cumulative"]["pain_short"]] == ["B", "A"]
    assert main(["search", "diff", str(old), str(tmp_path / "missing.csv"), "--project", str(tmp_path)]) == 2
    assert "missing.csv: no such results table" in capsys.readouterr().err
