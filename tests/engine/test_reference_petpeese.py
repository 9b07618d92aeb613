"""PET-PEESE against R: PET = lm(yi ~ sei, weights = 1/vi), PEESE = lm(yi ~ vi, weights = 1/vi) on dat.hackshaw1998,
dat.bcg, dat.normand1999, dat.molloy2014, dat.baskerville2012, dat.cohen1981, dat.pritz1997
(tests/reference/make_petpeese_reference.R):
coefficients, SEs, t- and p-values, confint at 95% and 90%, sigma, the one-sided p-values, and metafor's
regtest(model = "lm") limit estimate. Tolerance: relative 1e-6, absolute floor 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from engine_reference import check_all, fixture

from metaexercise import rma
from metaexercise.engine.petpeese import pet_peese

PP = fixture("petpeese")
SETS = list(PP["datasets"])


def _data(name):
    d = PP["datasets"][name]
    return np.array(d["yi"]), np.array(d["vi"])


@pytest.mark.parametrize("name", SETS)
def test_pet_and_peese_equal_r_lm(name):
    ref = PP["datasets"][name]
    yi, vi = _data(name)
    res = pet_peese(yi, vi)
    res90 = pet_peese(yi, vi, level=90)
    pairs = []
    for part, f, f90 in (("pet", res.pet, res90.pet), ("peese", res.peese, res90.peese)):
        r = ref[part]
        pairs += [
            (f"{name} {part} coef", f.coef, r["coef"]), (f"{name} {part} se", f.se, r["se"]),
            (f"{name} {part} tval", f.tval, r["tval"]), (f"{name} {part} pval", f.pval, r["pval"]),
            (f"{name} {part} ci95", np.r_[f.ci_lb, f.ci_ub], r["ci95_lb"] + r["ci95_ub"]),
            (f"{name} {part} ci90", np.r_[f90.ci_lb, f90.ci_ub], r["ci90_lb"] + r["ci90_ub"]),
            (f"{name} {part} sigma", f.sigma, r["sigma"][0]), (f"{name} {part} df", f.df, r["df"][0]),
        ]
    pairs += [
        (f"{name} PET limit estimate = regtest(model='lm', predictor='sei')$est",
         [res.pet.estimate, res.pet.ci_lb[0], res.pet.ci_ub[0]],
         ref["regtest_sei"]["est"] + ref["regtest_sei"]["ci_lb"] + ref["regtest_sei"]["ci_ub"]),
        (f"{name} PEESE limit estimate = regtest(model='lm', predictor='vi')$est",
         [res.peese.estimate, res.peese.ci_lb[0], res.peese.ci_ub[0]],
         ref["regtest_vi"]["est"] + ref["regtest_vi"]["ci_lb"] + ref["regtest_vi"]["ci_ub"]),
        (f"{name} PET one-sided p (greater)", pet_peese(yi, vi, alternative="greater").pet_test_pval,
         ref["pet"]["pval_greater"][0]),
        (f"{name} PET one-sided p (less)", pet_peese(yi, vi, alternative="less").pet_test_pval,
         ref["pet"]["pval_less"][0]),
    ]
    check_all(pairs)


@pytest.mark.parametrize("name", SETS)
def test_conditional_rule(name):
    """PEESE's intercept when PET's is significant (two-sided 10% by default), else PET's."""
    ref = PP["datasets"][name]
    yi, vi = _data(name)
    res = pet_peese(yi, vi)
    p = ref["pet"]["pval"][0]
    expected = "PEESE" if p < 0.10 else "PET"
    assert res.chosen == expected
    assert res.estimate == pytest.approx(ref["peese" if expected == "PEESE" else "pet"]["coef"][0], rel=1e-9)
    # one-sided at 5% in the direction of the estimate is the same decision as two-sided at 10%
    side = "greater" if ref["pet"]["tval"][0] > 0 else "less"
    assert pet_peese(yi, vi, alpha=0.05, alternative=side).chosen == expected
    assert res.summary().count(res.chosen) >= 1


def test_both_branches_are_exercised():
    chosen = {pet_peese(*_data(name)).chosen for name in SETS}
    assert chosen == {"PET", "PEESE"}


def test_fit_and_sei_inputs():
    yi, vi = _data("bcg")
    a = pet_peese(yi, vi)
    b = pet_peese(rma(yi, vi))
    c = pet_peese(yi, sei=np.sqrt(vi))
    assert a.estimate == b.estimate == pytest.approx(c.estimate, rel=1e-14)


def test_bad_input():
    yi, vi = _data("bcg")
    with pytest.raises(ValueError, match="at least 3"):
        pet_peese(yi[:2], vi[:2])
    with pytest.raises(ValueError, match="positions \\[1\\]"):
        pet_peese(yi, np.r_[vi[0], -1.0, vi[2:]])
    with pytest.raises(ValueError, match="yi is missing"):
        pet_peese(np.r_[np.nan, yi[1:]], vi)
    with pytest.raises(ValueError, match="alternative"):
        pet_peese(yi, vi, alternative="one.sided")
    with pytest.raises(ValueError, match="all sampling variances are equal"):
        pet_peese(yi, np.full(13, 0.1))
    with pytest.raises(TypeError, match="vi"):
        pet_peese(yi)
