"""escalc against metafor 3.8.1: tests/reference/escalc.json (make_reference.R).

SMD = Hedges' g with the exact gamma-function correction and vtype="LS"; SMD applied to change-score means
and SDs (the review's SMD of change scores is plain escalc("SMD") on change data); MD. dat.normand1999 and
seeded synthetic arms (synthetic replica - not the trials' data). Relative 1e-6, absolute floor 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine_reference import check_all, fixture

from metaexercise import escalc

ESCALC = fixture("escalc")
CASES = list(ESCALC["cases"])


@pytest.mark.parametrize("case", CASES)
def test_escalc_matches_metafor(case):
    c = ESCALC["cases"][case]
    inputs = {name: np.array(values, dtype=float) for name, values in c["inputs"].items()}
    es = escalc(c["measure"], **inputs)
    check_all([(f"{case} yi", es.yi, c["yi"]), (f"{case} vi", es.vi, c["vi"])])


def test_escalc_fixture_covers_smd_on_change_scores():
    assert {"normand1999_SMD", "synthetic_arms_SMD", "synthetic_change_SMD"} <= set(CASES)
    assert "change" in ESCALC["cases"]["synthetic_change_SMD"]["origin"]
