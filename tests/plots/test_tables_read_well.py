"""The book's tables as a reader reads them (`metaexercise.publish.pages.table`): headings instead of results/
column names, intervals in one column, the rows' names and the result first, integers as integers, no
negative zero, an empty test said in words, and no table wider than the page's text column."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from metaexercise.publish import pages as bp


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    monkeypatch.setenv(bp.PROJECT_ENV, str(tmp_path))
    return tmp_path


def _per_study(k: int = 3) -> pd.DataFrame:
    """The columns `contrast_report` shows of results/studies.csv."""
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "label": [f"Replica-{i + 1:02d} 20{10 + i}" for i in range(k)], "study_id": [f"r{i}" for i in range(k)],
        "control_type": ["usual care or advice", "passive"] * (k // 2) + ["passive"] * (k % 2),
        "instrument": ["NRS"] * k, "timepoint_weeks": [12.0, 10.0, 26.0][:k] + [12.0] * (k - 3),
        "n1i": [156.0, 129.0, 40.0][:k] + [50.0] * (k - 3), "n2i": [144, 125, 41][:k] + [50] * (k - 3),
        "yi": [-0.587412314322, -0.0000004, 0.2][:k] + [0.1] * (k - 3), "vi": rng.uniform(0.01, 0.1, k),
        "ci_lb": [-0.818736141457, -0.25, -0.1][:k] + [-0.2] * (k - 3),
        "ci_ub": [-0.356088487187, 0.25, 0.5][:k] + [0.4] * (k - 3), "weight": [53.83, 46.17, 10.0][:k] + [5.0] * (k - 3),
        "rstudent": rng.normal(size=k), "cooks_d": rng.uniform(0, 0.3, k), "outlier": [False] * k,
        "influential": [False, True, False][:k] + [False] * (k - 3),
    })


def _headings(html: str) -> list[str]:
    first = html.split("</thead>")[0]
    return re.findall(r"<th>(.*?)</th>", first)


def test_results_columns_read_as_headings_with_the_key_columns_first(project):
    html = bp.table(_per_study(), "studies", "Per-study effects").html
    heads = _headings(html)
    assert heads[:4] == ["study", "SMD", "95% CI", "weight (%)"]
    assert "n (exp.)" in heads and "ci_lb" not in html and "yi" not in heads
    assert "<td>[-0.819,\u00a0-0.356]</td>" in html  # one interval column, never broken across lines
    assert "studentized residual" in html and "Cook&#x27;s D" in html
    # the download keeps the file's own columns and values
    csv = pd.read_csv(project / "book" / "generated" / "tables" / "studies.csv")
    assert list(csv.columns) == list(_per_study().columns)


def test_counts_are_integers_and_zero_has_no_sign(project):
    html = bp.table(_per_study(), "studies", "Per-study effects").html
    assert "<td>156</td>" in html and "156.000" not in html and "<td>12</td>" in html
    assert "-0.000" not in html and "<td>0.000</td>" in html
    published = pd.DataFrame({"quantity": ["k (comparisons)", "Egger's test z (p)", "SMD"],
                              "published": [32.0, "()", "-0.000 [-0.58, -0.22]"]})
    html = bp.table(published, "summary", "Summary").html
    assert "<td>32</td>" in html and "32.000" not in html
    assert "<td>not computed</td>" in html and "()" not in html
    assert "0.000 [-0.58,\u00a0-0.22]" in html and "-0.000" not in html
    assert bp._fmt(-0.0001, ".3f") == "0.000" and bp._fmt(-0.0001, ".1e") == "-1.0e-04" and bp._fmt(None) == ""
    # a published value printed with two decimals keeps them; p-values below 0.001 say so
    html = bp.table(pd.DataFrame({"label": ["a", "b"], "estimate": [-0.28, 0.0], "pval": [0.2, 1e-9]}), "p", "p").html
    assert "<td>-0.28</td>" in html and "<td>0.00</td>" in html and "<td>&lt; 0.001</td>" in html


def test_a_wide_table_folds_its_secondary_columns_and_keeps_the_row_names(project):
    html = bp.table(_per_study(3), "studies", "Per-study effects").html
    main = html.split("<details")[0]
    assert "<details" in html and "more column" in html
    assert "study id" not in main  # bookkeeping folds first
    folded = html.split("<details")[1]
    assert folded.count("<th>study</th>") >= 1 and "Replica-01 2010" in folded
    for table_html in re.findall(r"<table.*?</table>", html, flags=re.S):
        widths = [bp._column_px(h, [], False) for h in _headings(table_html)]
        assert sum(widths) <= bp._PAGE_PX


def test_a_column_with_one_value_is_said_once(project):
    frame = _per_study(5)
    html = bp.table(frame, "studies", "Per-study effects").html
    assert re.search(r"The same in every row: [^<]*instrument: NRS", html)
    assert "<th>instrument</th>" not in html


def test_links_show_the_site_and_keep_the_whole_address(project):
    url = "https://read.qxmd.com/read/26891655/a-tailored-exercise-program-versus-general-exercise-for-a-subgroup"
    frame = pd.DataFrame({"study": ["<img src=x onerror=alert(1)>", "B 2020"], "source": [url, "javascript:alert(1)"],
                          "n": pd.array([pd.NA, 20], "Int64")})
    html = bp.links_table(frame, "links", "Studies").html
    assert f'href="{url}"' in html and 'href="javascript' not in html
    shown = html.replace("<wbr>", "")  # break points in the address, not characters
    assert ">read.qxmd.com/read/26891655/a-tailo\u2026</a>" in shown and f'title="{url}"' in html
    assert "<img" not in html and "&lt;NA&gt;" not in html
