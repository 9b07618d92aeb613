"""Arm selection, follow-up windows and change scores on the 0-10 scale, on the made-up fixture
(tests/sheets/valid/) and on the real extraction. Expected values are hand arithmetic, shown."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sheets_vocabularies import BACK_PAIN, load_extraction

from metaexercise.extraction.comparisons import FollowUpWindow, build_comparisons, select_followup
from metaexercise.extraction.schema import form
from metaexercise.review.analyses import rules_for
from metaexercise.review.declaration import load_review

#: The back-pain project's declaration: its windows, roles and scales drive the comparisons.
REVIEW = load_review(Path(__file__).resolve().parents[2] / "review.yaml")
WINDOWS = rules_for(REVIEW, "pain").windows

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PASSIVE = {"usual care or advice", "passive", "true control"}


@pytest.fixture(scope="module")
def fixture():
    return load_extraction(HERE / "valid")


@pytest.fixture(scope="module")
def real():
    return load_extraction(ROOT / "extraction")


def test_window_picks_the_closest_time_point_and_breaks_ties():
    short = WINDOWS["short"]
    assert short.choose([8, 26]) == 8
    assert short.choose([8, 16]) == 16  # tie: 4 weeks either side; the later one by default
    assert FollowUpWindow(12, 1, 32, tie="earlier").choose([8, 16]) == 8
    assert short.choose([52]) is None  # beyond 32 weeks: long term only
    assert WINDOWS["long"].choose([26, 52, 104]) == 52
    assert WINDOWS["long"].choose([32]) is None  # 32 belongs to the short window


def test_select_followup(real):
    table = select_followup(real, outcome="pain", rules=rules_for(REVIEW, "pain")).set_index("study_id")
    assert table.loc["heinrich2009", "short"] == 26
    assert table.loc["heinrich2009", "long"] == 52
    assert np.isnan(table.loc["ford2016", "long"])  # pain at 52 weeks is not in Ford's abstract


def test_final_minus_baseline_with_default_correlation(fixture):
    row = build_comparisons(
        fixture,
        outcome="pain",
        rules=rules_for(REVIEW, "pain"),
        window="short",
        comparators={"active exercise"},
    ).iloc[0]
    # individualized: (30 - 55) / 10 = -2.5 on 0-10; SD = sqrt(18^2 + 20^2 - 2*0.5*18*20)/10 = sqrt(364)/10
    assert row.m1i == pytest.approx(-2.5) and row.sd1i == pytest.approx(np.sqrt(364) / 10)
    # control: (38 - 53) / 10 = -1.5; SD = sqrt(17^2 + 21^2 - 17*21)/10 = sqrt(373)/10
    assert row.m2i == pytest.approx(-1.5) and row.sd2i == pytest.approx(np.sqrt(373) / 10)
    assert (row.n1i, row.n2i) == (38, 37)
    assert "r = 0.5 (stated default 0.5" in row.derivation
    assert row.data_kind == "arm change scores" and np.isnan(row.yi)
    assert row.comparator == "active exercise" and bool(row.control_matched)


def test_change_sd_from_se_and_ci(fixture):
    row = build_comparisons(
        fixture,
        outcome="disability",
        rules=rules_for(REVIEW, "disability"),
        window="short",
        comparators={"active exercise"},
    ).iloc[0]
    # ODI change -10, SE 2.5, n 38: SD = 2.5 * sqrt(38) = 15.411 -> 1.5411 on 0-10
    assert row.m1i == pytest.approx(-1.0) and row.sd1i == pytest.approx(2.5 * np.sqrt(38) / 10)
    # change -6, 95% CI -10 to -2, n 37 < 60: t(0.975, 36) = 2.0281 (t table); SD = sqrt(37) * 8 / 4.0562
    assert row.m2i == pytest.approx(-0.6) and row.sd2i == pytest.approx(
        np.sqrt(37) * 8 / (2 * 2.0281) / 10, rel=1e-4
    )
    assert "SD from SE" in row.derivation and "SD from the 95% CI" in row.derivation


def test_contrast_only_gives_hedges_g(fixture):
    row = build_comparisons(
        fixture, outcome="pain", rules=rules_for(REVIEW, "pain"), window="long", comparators=PASSIVE
    ).iloc[0]
    # MD -1.0 (95% CI -1.6 to -0.4), n 55 and 52: 55 < 60 so t(0.975, 105) = 1.98282 (t table);
    # SE = 1.2 / 3.96564 = 0.302600; SD = SE / sqrt(1/55 + 1/52) = 1.564688; d = -0.639105;
    # J ~ 1 - 3 / (4 * 105 - 1) = 0.992840 -> g = -0.634529; vi = 1/55 + 1/52 + g^2 / 214
    g = -1.0 / (1.2 / (2 * 1.98282) / np.sqrt(1 / 55 + 1 / 52)) * (1 - 3 / (4 * 105 - 1))
    assert row.yi == pytest.approx(g, rel=1e-4)
    assert row.vi == pytest.approx(1 / 55 + 1 / 52 + g**2 / 214, rel=1e-4)
    assert row.data_kind == "contrast MD" and np.isnan(row.m1i)
    assert "cluster trial" in row.derivation


def test_skipped_studies_say_why(fixture):
    out = build_comparisons(
        fixture,
        outcome="disability",
        rules=rules_for(REVIEW, "disability"),
        window="short",
        comparators=PASSIVE,
    )
    skipped = out.attrs["skipped"].set_index("study_id")
    assert skipped.loc["beta2018", "arm_id"] == "uc"
    assert "no usable change score" in skipped.loc["beta2018", "reason"]


def test_heinrich_arms_are_combined(real):
    """Heinrich 2009, 12-month pain vs usual care: PT (53, -2.3, 2.1) + PTCBWE (76, -2.1, 2.1) combined by
    Table 6.5.a: N = 129, M = (53 * -2.3 + 76 * -2.1) / 129 = -2.182171,
    SD^2 = (52 * 4.41 + 75 * 4.41 + 53 * 76 / 129 * 0.2^2) / 128 = 4.385305."""
    row = (
        build_comparisons(
            real, outcome="pain", rules=rules_for(REVIEW, "pain"), window="long", comparators=PASSIVE
        )
        .set_index("study_id")
        .loc["heinrich2009"]
    )
    assert row.n1i == 129 and row.m1i == pytest.approx(-281.5 / 129)
    assert row.sd1i == pytest.approx(np.sqrt((127 * 4.41 + 53 * 76 / 129 * 0.04) / 128))
    assert not row.on_common_scale  # the pain scale's range is not printed: SMD only
    assert "randomised n 53" in row.derivation


def test_split_keeps_each_stratum_with_its_own_control(real):
    out = build_comparisons(
        real,
        outcome="pain",
        rules=rules_for(REVIEW, "pain"),
        window="long",
        comparators=PASSIVE,
        multiarm="split",
    )
    assert list(out["arms"]) == ["pt vs uc_pt", "ptcbwe vs uc_ptcbwe"]
    assert list(out["n1i"]) == [53, 76]


def test_no_participant_counted_twice(real):
    for outcome in ("pain", "disability"):
        for window in ("short", "long"):
            for comp in ({"active exercise"}, PASSIVE):
                out = build_comparisons(
                    real, outcome=outcome, rules=rules_for(REVIEW, outcome), window=window, comparators=comp
                )
                assert out["study_id"].is_unique


def test_ford_contrast_smd(real):
    row = (
        build_comparisons(
            real, outcome="pain", rules=rules_for(REVIEW, "pain"), window="short", comparators=PASSIVE
        )
        .set_index("study_id")
        .loc["ford2016"]
    )
    # improvement 1.3 (0.8 to 1.8), n 156/144: SE = 1/3.919928; SD = SE / sqrt(1/156 + 1/144) = 2.207521;
    # d = -1.3 / 2.207521 = -0.588896; J ~ 1 - 3/(4*298 - 1) = 0.997481 -> g = -0.587413
    assert row.yi == pytest.approx(-0.587413, rel=1e-5)
    assert row.instrument == "NRS"  # back pain before leg pain (registry rank)


def test_as_printed_rows_are_not_pooled(real):
    out = build_comparisons(
        real, outcome="pain", rules=rules_for(REVIEW, "pain"), window="short", comparators={"active exercise"}
    )
    assert "apeldoorn2012" not in set(out["study_id"])
    reason = out.attrs["skipped"].set_index("study_id").loc["apeldoorn2012", "reason"]
    assert "not usable" in reason


def test_bad_arguments():
    with pytest.raises(ValueError, match="window 'medium'"):
        build_comparisons(
            None, outcome="pain", rules=rules_for(REVIEW, "pain"), window="medium", comparators=PASSIVE
        )


def test_correlation_is_estimated_from_arms_reporting_all_three_sds(tmp_path: Path):
    import shutil

    folder = tmp_path / "extraction"
    shutil.copytree(HERE / "valid", folder)
    with (folder / "outcomes.csv").open("a", encoding="utf-8", newline="") as fh:
        # alpha2020 'ind' pain at 12 weeks also reports its change: SD 15 (made-up fixture numbers)
        columns = list(form(BACK_PAIN).sheet("outcomes").column_names)
        csv.DictWriter(fh, fieldnames=columns, lineterminator="\n").writerow(
            {
                "study_id": "alpha2020",
                "arm_id": "ind",
                "outcome": "pain",
                "instrument": "VAS-100",
                "timepoint_weeks": 12,
                "value_kind": "change",
                "reported_as": "scale",
                "n": 38,
                "mean": -25,
                "sd": 15,
                "source": "fixture",
            }
        )
    ex = load_extraction(folder)
    row = build_comparisons(
        ex, outcome="pain", rules=rules_for(REVIEW, "pain"), window="short", comparators={"active exercise"}
    ).iloc[0]
    # r = (18^2 + 20^2 - 15^2) / (2 * 18 * 20) = 499 / 720 (Handbook 6.5.2.8), used for the control arm
    r = 499 / 720
    assert row.sd2i == pytest.approx(np.sqrt(17**2 + 21**2 - 2 * r * 17 * 21) / 10)
    assert row.sd1i == pytest.approx(1.5)  # the reported change SD, 15 / 10
    assert "mean of 1 arm(s) reporting all three SDs" in row.derivation


def test_unstated_range_is_flagged(real):
    row = build_comparisons(
        real, outcome="pain", rules=rules_for(REVIEW, "pain"), window="long", comparators=PASSIVE
    ).iloc[0]
    assert "SMD only, no 0-10 conversion" in row.derivation


def test_derivation_log_lists_every_step(real):
    from metaexercise.extraction.comparisons import derivation_log

    comps = build_comparisons(
        real, outcome="pain", rules=rules_for(REVIEW, "pain"), window="long", comparators=PASSIVE
    )
    log = derivation_log(comps)
    heinrich = log[log["study_id"] == "heinrich2009"]["step"].tolist()
    assert heinrich[0].startswith("instrument pain-unstated")
    assert "pt: n = randomised n 53 (analysed n not reported)" in heinrich
    assert "arms pt + ptcbwe combined (Handbook Table 6.5.a)" in heinrich
