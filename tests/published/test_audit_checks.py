"""Each audit check on small hand-made cases, with the arithmetic written out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from metaexercise.commands.cli import main
from metaexercise.errors import SpecError
from metaexercise.review.audit import (
    audit_registry,
    audit_reported,
    kendall_two_sided_p,
    read_reported,
    run_audit,
)
from metaexercise.review.declaration import load_review
from metaexercise.review.project import Project
from metaexercise.review.published import Entry, Printed, Registry, Relation
from metaexercise.review.vocabulary import ContrastId

REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")


def effect(label, est, lb, ub, **kw):
    numbers = {k: Printed.parse(v, exact=k == "k") for k, v in kw.items() if k in ("k", "i2", "q", "p")}
    text = {k: v for k, v in kw.items() if k not in numbers}
    contrast = text.pop("contrast", label)
    return Entry(id=label, kind="effect", place=text.pop("place", "reported"), section="s", quote=label,
                 contrast=contrast, estimate=Printed.parse(est), ci_lb=Printed.parse(lb),
                 ci_ub=Printed.parse(ub), parts=ContrastId.parse(contrast, REVIEW), **numbers, **text)


def checks(*entries, relations=()):
    return [(f.check, f.severity) for f in audit_registry(Registry(tuple(entries), tuple(relations)))]


def test_centre_within_rounding_is_not_a_finding():
    # 7.17 [-2.78, 17.11]: centre 7.165; |7.17 - 7.165| = 0.005 <= 0.005 + (0.005 + 0.005)/2 = 0.01
    assert checks(effect("a", "7.17", "-2.78", "17.11")) == []
    # -10.7 [-14.1, -7.4]: centre -10.75; 0.05 <= 0.05 + 0.05 = 0.1
    assert checks(effect("b", "-10.7", "-14.1", "-7.4")) == []


def test_off_centre_beyond_rounding_is_a_warning():
    # 7.51 [5.50, 9.42]: centre 7.46; 7.51 - 7.46 = 0.05 > 0.01
    assert checks(effect("a", "7.51", "5.50", "9.42")) == [("estimate_off_centre", "warning")]


def test_estimate_outside_its_ci_is_an_error_and_not_also_off_centre():
    assert checks(effect("a", "1.15", "1.56", "3.86")) == [("estimate_outside_ci", "error")]
    assert checks(effect("a", "0.3", "0.5", "0.1")) == [("ci_order", "error")]


def test_ratio_scale_is_checked_on_the_log_scale():
    # RR 0.50 [0.25, 1.00]: ln centre = (ln 0.25 + ln 1)/2 = ln 0.5, so centred; on the raw scale it is not
    assert checks(effect("rr", "0.50", "0.25", "1.00", scale="ratio")) == []
    assert checks(effect("md", "0.50", "0.25", "1.00")) == [("estimate_off_centre", "warning")]
    # RR 0.80 [0.25, 1.00]: ln 0.8 = -0.223 vs ln 0.5 = -0.693
    assert checks(effect("rr", "0.80", "0.25", "1.00", scale="ratio")) == [("estimate_off_centre", "warning")]


def test_p_value_must_follow_from_the_ci():
    # -0.28 [-0.42, -0.14]: SE = 0.28/3.92 = 0.0714, z = 3.92, p = 8.9e-5
    assert checks(effect("a", "-0.28", "-0.42", "-0.14", p="<0.001")) == []
    assert checks(effect("a", "-0.28", "-0.42", "-0.14", p="0.04")) == [("p_vs_ci", "warning")]
    # 0.70 [-0.04, 1.44]: SE = 1.48/3.92 = 0.3776, z = 1.854, p = 0.064
    assert checks(effect("a", "0.70", "-0.04", "1.44", p="0.06")) == []
    assert checks(effect("a", "0.70", "-0.04", "1.44", p="0.01")) == [("p_vs_ci", "warning")]


def test_claims_against_the_ci():
    assert checks(effect("a", "-0.10", "-0.21", "0.01", claim="effect")) == [("claim_vs_ci", "error")]
    assert checks(effect("a", "-0.20", "-0.30", "-0.10", claim="no effect")) == [("claim_vs_ci", "error")]
    # an upper bound printed 0.00 may be -0.004 or +0.004: undecidable, so no finding either way
    assert checks(effect("a", "-0.10", "-0.20", "0.00", claim="effect")) == []
    assert checks(effect("a", "-0.10", "-0.20", "0.00", claim="no effect")) == []


def test_i2_must_follow_from_q_and_k():
    # k = 10, Q = 30.0: I2 = (30 - 9)/30 = 70%
    assert checks(effect("a", "-0.20", "-0.30", "-0.10", k="10", q="30.0", i2="70")) == []
    assert checks(effect("a", "-0.20", "-0.30", "-0.10", k="10", q="30.0", i2="80")) == [("i2_vs_q", "warning")]
    # Q < df gives I2 = 0
    assert checks(effect("a", "-0.20", "-0.30", "-0.10", k="10", q="5.1", i2="0")) == []


def test_abstract_and_results_must_agree_beyond_rounding():
    a = effect("x.abstract", "-0.18", "-0.22", "0.01", contrast="disability_passive_short", place="abstract")
    r = effect("x.results", "-0.09", "-0.18", "0.01", contrast="disability_passive_short", place="results")
    found = audit_registry(Registry((a, r)))
    clash = [f for f in found if f.check == "abstract_vs_results"]
    assert len(clash) == 1 and "estimate" in clash[0].detail and "ci_lb" in clash[0].detail
    assert "ci_ub" not in clash[0].detail
    same = effect("y.results", "-0.2", "-0.22", "0.01", contrast="disability_passive_short", place="results")
    # -0.2 stands for [-0.25, -0.15], which holds -0.18: rounding explains it
    assert not [f for f in audit_registry(Registry((a, same))) if f.check == "abstract_vs_results"]


def test_same_k_for_different_comparators_of_one_outcome_and_window():
    a = effect("pa", "-0.28", "-0.42", "-0.14", contrast="pain_active_short", k="32")
    b = effect("pp", "-0.40", "-0.58", "-0.22", contrast="pain_passive_short", k="32")
    c = effect("da", "-0.17", "-0.31", "-0.03", contrast="disability_active_short", k="32")
    assert checks(a, b, c) == [("same_k", "warning")]


def test_duplicate_estimate_and_ci_for_different_contrasts():
    a = effect("a", "-0.28", "-0.42", "-0.14", contrast="pain_active_short")
    b = effect("b", "-0.28", "-0.42", "-0.14", contrast="pain_active_short_psych")
    assert checks(a, b) == [("duplicate_numbers", "warning")]


def count(cid, n, **kw):
    return Entry(id=cid, kind="count", place="results", section="s", quote=cid, n=Printed.parse(n, exact=True),
                 percent=Printed.parse(kw["percent"]) if "percent" in kw else None, of=kw.get("of"))


def test_percentages_against_counts():
    total = count("all", "58")
    # 24/58 = 41.379...% -> "41.4" holds it; "34.8" does not
    assert checks(total, count("a", "24", percent="41.4", of="all")) == []
    assert checks(total, count("a", "24", percent="34.8", of="all")) == [("percent_vs_count", "error")]
    # 14/58 = 24.14% -> "24" allows [23.5, 24.5]
    assert checks(total, count("a", "14", percent="24", of="all")) == []


def test_sums_bounds_and_equal_counts():
    parts = [count("p1", "42"), count("p2", "21"), count("p3", "9"), count("tot", "61")]
    rel = Relation(id="r", kind="sum", parts=("p1", "p2"), total="tot", why="w")
    assert checks(*parts, relations=[rel]) == [("sum", "warning")]  # 42 + 21 = 63 != 61
    k = effect("e", "-0.40", "-0.58", "-0.22", contrast="pain_passive_short", k="32")
    bound = Relation(id="b", kind="at_most", parts=("p2", "p3"), contrast="pain_passive_short", why="w")
    assert checks(*parts, k, relations=[bound]) == [("k_exceeds_groups", "warning")]  # 32 > 21 + 9
    subset = Relation(id="s", kind="not_more", parts=("p3",), total="p2", why="w")  # 9 <= 21
    assert checks(*parts, relations=[subset]) == []
    subset = Relation(id="s", kind="not_more", parts=("p1",), total="p2", why="w")  # 42 > 21
    assert checks(*parts, relations=[subset]) == [("subset_exceeds_total", "error")]
    eq = Relation(id="q", kind="equal", parts=("p3", "p3"), why="w")
    assert checks(*parts, relations=[eq]) == []


def test_kendall_exact_p_matches_hand_enumeration():
    # n = 3: 6 permutations; concordant pairs C in {0, 1, 1, 2, 2, 3}. C = 3 (tau = 1): P(C >= 3) = 1/6,
    # two-sided p = 2/6 = 0.3333 (R: cor.test(1:3, 1:3, method="kendall")$p.value = 0.3333)
    assert kendall_two_sided_p(3, 3) == pytest.approx(1 / 3)
    # n = 4, C = 6 (tau = 1): 1/24, two-sided 1/12 = 0.08333 (R gives 0.08333)
    assert kendall_two_sided_p(6, 4) == pytest.approx(1 / 12)
    assert kendall_two_sided_p(0, 4) == pytest.approx(1 / 12)
    assert kendall_two_sided_p(3, 4) == pytest.approx(1.0)


def test_egger_p_from_z():
    e = effect("pa", "-0.28", "-0.42", "-0.14", contrast="pain_active_short", k="32")

    def egger(z, p):
        return Entry(id="eg", kind="test", test="egger", contrast="pain_active_short", place="results",
                     section="s", quote="q", statistic=Printed.parse(z), p=Printed.parse(p))

    # z = -1.407: p = 2*Phi(-1.407) = 0.1594 -> printed "0.2" holds it; "0.02" does not
    assert checks(e, egger("-1.407", "0.2")) == []
    assert checks(e, egger("-1.407", "0.02")) == [("egger_p_vs_z", "warning")]


CSV = "label,estimate,ci_lb,ci_ub,k,p,scale,source\nA,-0.28,-0.42,-0.14,32,,,x\nB,1.15,1.56,3.86,,,,y\n"


def test_reported_table_reads_text_and_flags_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(CSV, encoding="utf-8")
    before = path.read_bytes()
    reg = read_reported(path)
    assert reg.get("A").k.text == "32" and reg.get("A").estimate.decimals == 2
    assert [(f.label, f.check) for f in audit_reported(path)] == [("B", "estimate_outside_ci")]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,estimate,ci_lb\nA,1,0\n", r"missing column\(s\) \['ci_ub'\]"),
        ("label,estimate,ci_lb,ci_ub\nA,1,0,x\n", "row 2, column ci_ub"),
        ("label,estimate,ci_lb,ci_ub\nA,1,0,2\nA,1,0,2\n", "row 3, column label: 'A' repeats row 2"),
        ("label,estimate,ci_lb,ci_ub,scale\nA,1,0,2,log\n", "row 2, column scale"),
        ("label,estimate,ci_lb,ci_ub,scale\nA,1,0,2,ratio\n", "row 2, column ci_lb: a ratio must be > 0"),
        ("label,estimate,ci_lb,ci_ub\nA,,0,2\n", "row 2, column estimate: empty"),
    ],
)
def test_bad_reported_tables_name_file_row_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=message) as info:
        read_reported(path)
    assert "bad.csv" in str(info.value)


def test_cli_json_goes_to_stdout_and_exit_is_zero(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text(CSV, encoding="utf-8")
    assert main(["audit", "--reported", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert records == [{"label": "B", "check": "estimate_outside_ci", "severity": "error",
                        "detail": records[0]["detail"]}]
    assert "1 finding" in err


def test_cli_bad_input_exits_2_with_the_message_on_stderr(tmp_path, capsys):
    assert main(["audit", "--reported", str(tmp_path / "none.csv"), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "none.csv" in err


def test_run_audit_writes_results_audit_csv(tmp_path):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "analyses").mkdir()
    (tmp_path / "analyses" / "published.yaml").write_bytes((root / "analyses" / "published.yaml").read_bytes())
    (tmp_path / "review.yaml").write_bytes((root / "review.yaml").read_bytes())
    frame = run_audit(Project(tmp_path))
    written = (tmp_path / "results" / "audit.csv").read_text(encoding="utf-8")
    assert written.splitlines()[0] == "label,check,severity,detail"
    back = pd.read_csv(tmp_path / "results" / "audit.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, frame.astype(str))
    assert set(frame["severity"]) == {"warning", "error"}  # info is never written


def test_two_audit_runs_write_byte_identical_files(tmp_path):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "analyses").mkdir()
    (tmp_path / "analyses" / "published.yaml").write_bytes((root / "analyses" / "published.yaml").read_bytes())
    (tmp_path / "review.yaml").write_bytes((root / "review.yaml").read_bytes())
    run_audit(Project(tmp_path))
    first = (tmp_path / "results" / "audit.csv").read_bytes()
    run_audit(Project(tmp_path))
    assert (tmp_path / "results" / "audit.csv").read_bytes() == first


def test_kendall_p_agrees_with_the_engines_ranktest():
    # independent route: metaexercise.engine.bias.ranktest (metafor's ranktest, exact Kendall) on a fit without ties
    from metaexercise.engine.bias import ranktest
    from metaexercise.engine.model import rma

    yi = [-0.6, -0.1, -0.5, 0.2, -0.3, -0.8, 0.1, -0.4, -0.2, -0.7, -0.05, -0.35]
    vi = [0.041, 0.021, 0.052, 0.033, 0.024, 0.065, 0.036, 0.047, 0.028, 0.059, 0.011, 0.032]
    res = ranktest(rma(yi, vi))
    assert res.exact
    n = len(yi)
    concordant = round((res.tau + 1) * n * (n - 1) / 4)
    assert kendall_two_sided_p(concordant, n) == pytest.approx(res.pval, rel=1e-9)
