"""Text snapshots: our summaries against metafor 3.8.1's printouts, line by line.

Reference: tests/reference/printout.json, `capture.output(print(...))` in make_reference.R, on dat.bcg (log risk
ratios): rma with REML, DL, EE and Knapp–Hartung; rma ~ ablat (z and knha); regtest (rma and lm models; sei,
vi and ni predictors), ranktest, trimfill (L0, R0) and fsn (Rosenthal, Orwin, Rosenberg).
Only trailing blank lines are ignored.
"""

from __future__ import annotations

import difflib

import numpy as np
import pytest
from engine_reference import CONTROL, fixture

from metaexercise import rma
from metaexercise.engine.bias import fsn, ranktest, regtest, trimfill

PRINT = fixture("printout")
YI, VI, ABLAT, NI = (np.array(PRINT[k], dtype=float) for k in ("yi", "vi", "ablat", "ni"))


def _object(key: str):
    base = rma(YI, VI, control=CONTROL)
    return {
        "bcg/REML/z": lambda: base,
        "bcg/DL/z": lambda: rma(YI, VI, method="DL", control=CONTROL),
        "bcg/EE/z": lambda: rma(YI, VI, method="EE", control=CONTROL),
        "bcg/REML/knha": lambda: rma(YI, VI, test="knha", control=CONTROL),
        "bcg~ablat/REML/knha": lambda: rma(YI, VI, mods=ABLAT, test="knha", control=CONTROL),
        "bcg~ablat/REML/z": lambda: rma(YI, VI, mods=ABLAT, control=CONTROL),
        "bcg/regtest": lambda: regtest(base),
        "bcg/ranktest": lambda: ranktest(base),
        "bcg/trimfill": lambda: trimfill(base),
        "bcg/trimfill_R0": lambda: trimfill(base, estimator="R0"),
        "bcg/regtest_lm": lambda: regtest(base, model="lm"),
        "bcg/regtest_knha_vi": lambda: regtest(rma(YI, VI, test="knha", control=CONTROL), predictor="vi"),
        "bcg/regtest_EE_ni": lambda: regtest(rma(YI, VI, method="EE", control=CONTROL), predictor="ni", ni=NI),
        "bcg/fsn_Rosenthal": lambda: fsn(YI, VI),
        "bcg/fsn_Orwin": lambda: fsn(YI, VI, type="Orwin"),
        "bcg/fsn_Rosenberg": lambda: fsn(YI, VI, type="Rosenberg"),
    }[key]()


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


@pytest.mark.parametrize("key", list(PRINT["printouts"]))
def test_printout_matches_metafor(key):
    ref = _lines(PRINT["printouts"][key]["text"])
    ours = _lines(str(_object(key)))
    diff = "\n".join(difflib.unified_diff(ref, ours, "metafor", "metaexercise", lineterm=""))
    assert ours == ref, f"{key} ({PRINT['printouts'][key]['call']}):\n{diff}"


def test_summary_is_str():
    fit = rma(YI, VI, control=CONTROL)
    assert str(fit) == fit.summary()
    assert str(regtest(fit)) == regtest(fit).summary()
