"""The audit on the KNGF 2021 low-back-pain guideline's reported mean differences.

`data/kngf_reported.csv` copies 22 estimates with their CIs from the KNGF guideline (Notes C.2.1, C.4.2,
C.4.3; each row carries its source line). Four of them are internally inconsistent, found by hand:
- interference vs placebo/sham, RMDQ: MD 1.15 with CI 1.56 to 3.86 -> the estimate lies below its CI;
- TENS vs placebo/sham, ODI: MD 2.21, CI -6.36 to 14.78 -> CI centre (-6.36 + 14.78)/2 = 4.21;
- interference vs usual care/manual therapy, long term, RMDQ: MD 1.85, CI 0.08 to 4.62 -> centre 2.35;
- interference vs nothing, RMDQ: MD 7.51, CI 5.50 to 9.42 -> centre 7.46 (0.05 off; rounding allows 0.01).
The other 18 are centred to within rounding (e.g. 7.17 [-2.78, 17.11]: centre 7.165, off by 0.005 <= 0.01).
"""

from __future__ import annotations

from pathlib import Path

from metaexercise.review.audit import audit_reported

DATA = Path(__file__).parent / "data" / "kngf_reported.csv"

EXPECTED = {
    "interference vs placebo/sham; function (RMDQ 0-24)": ("estimate_outside_ci", "error"),
    "TENS vs placebo/sham; function (ODI 0-100)": ("estimate_off_centre", "warning"),
    "interference vs usual care/manual therapy; function long term (RMDQ 0-24)": ("estimate_off_centre", "warning"),
    "interference vs nothing; function (RMDQ 0-24)": ("estimate_off_centre", "warning"),
}


def test_the_audit_flags_exactly_the_four_defective_kngf_rows():
    found = {f.label: (f.check, f.severity) for f in audit_reported(DATA)}
    assert found == EXPECTED


def test_the_findings_show_the_arithmetic():
    details = {f.label: f.detail for f in audit_reported(DATA)}
    assert "(-6.36 + 14.78)/2 = 4.21" in details["TENS vs placebo/sham; function (ODI 0-100)"]
    assert "(5.50 + 9.42)/2 = 7.46" in details["interference vs nothing; function (RMDQ 0-24)"]
