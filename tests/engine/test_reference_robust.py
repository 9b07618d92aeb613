"""Cluster-robust inference (`metaexercise.engine.cluster_robust`) against metafor 3.8.1's `robust()` and clubSandwich
0.5.8 (`vcovCR(type="CR2")`, `coef_test(test="Satterthwaite")`, `conf_int`, `Wald_test(test="HTZ")`).

Reference: tests/reference/robust.json, written by tests/reference/make_robust_reference.R: rma fits (dat.bcg ~
ablat clustered by allocation and by publication period, REML/EE/Knapp–Hartung; dat.bangertdrowns2004 by grade
and by subject; a seeded synthetic set of multi-arm trials, labelled synthetic) and rma.mv fits
(dat.konstantopoulos2011 ~ 1 | district/school by district, and by school, which does not nest the district
effects; dat.assink2016 ~ deltype, 1 | study/esid by study). The rma.mv fits enter through a small stand-in
object with the multivariate protocol (X, yi, beta, vb, coef_names, marginal_vcov(), weight_matrix()); its
marginal var-cov matrix M = diag(vi) + Σ_r σ²_r Z_r Z_r' is rebuilt from the fixture's σ² and groupings, and
checked against metafor's β̂ and Var(β̂) before use.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from engine_reference import ATOL, CONTROL, RTOL, check_all, fixture, mismatch
from scipy import sparse

from metaexercise import rma
from metaexercise.engine.cluster_robust import RobustResult, robust, wald_test
from metaexercise.engine.model import Coef

REF = fixture("robust")
RMA_CASES = REF["rma_cases"]
MV_CASES = REF["mv_cases"]
KWARGS = {"CR1": {}, "CR0": {"adjust": False}, "CR1.S1": {"adjust": "Stata1"}, "CR1.S2": {"adjust": "Stata2"},
          "CR2": {"clubSandwich": True}}


# --------------------------------------------------------------------------------------------------------------
# the fits
# --------------------------------------------------------------------------------------------------------------
def _rma_fit(key: str):
    c = RMA_CASES[key]
    mods = None if c["mods"] is None else pd.DataFrame(np.array(c["mods"], dtype=float), columns=c["colnames"])
    return rma(np.array(c["yi"]), np.array(c["vi"]), mods=mods, method=c["method"], test=c["test"],
               control=CONTROL)


def _marginal_vcov(c: dict) -> np.ndarray:
    """M = diag(vi) + Σ_r σ²_r [g_r(i) = g_r(j)] (rma.mv with nested random intercepts)."""
    M = np.diag(np.array(c["vi"], dtype=float))
    for s2, g in zip(c["fit"]["sigma2"], c["groups"].values(), strict=True):
        g = np.asarray(g)
        M += s2 * (g[:, None] == g[None, :])
    return M


@dataclass(frozen=True)
class MVFit:
    """A stand-in for an rma_mv result: the protocol robust() uses, plus the fit's own printout."""

    X: np.ndarray
    yi: np.ndarray
    beta: np.ndarray
    vb: np.ndarray
    coef_names: tuple[str, ...]
    M: np.ndarray
    printout: str
    as_sparse: bool = False
    level: float = 95.0

    def marginal_vcov(self):
        return sparse.csr_array(self.M) if self.as_sparse else self.M

    def weight_matrix(self):
        W = np.linalg.inv(self.M)
        return sparse.csr_array(np.where(np.abs(W) > 0, W, 0.0)) if self.as_sparse else W

    def summary(self) -> str:
        return self.printout


def _mv_fit(key: str, as_sparse: bool = False) -> MVFit:
    c = MV_CASES[key]
    return MVFit(X=np.array(c["X"], dtype=float), yi=np.array(c["yi"]), beta=np.array(c["fit"]["beta"]),
                 vb=np.array(c["fit"]["vb"]), coef_names=tuple(c["coef_names"]), M=_marginal_vcov(c),
                 printout=c["fit"]["printout"], as_sparse=as_sparse)


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def _robust_pairs(label: str, r: RobustResult, ref: dict) -> list[tuple[str, object, object]]:
    pairs = [(f"{label} {f}", getattr(r, g), ref[f]) for f, g in
             (("beta", "beta"), ("se", "se"), ("tval", "tval"), ("pval", "pval"), ("ci_lb", "ci_lb"),
              ("ci_ub", "ci_ub"), ("df", "df"), ("vb", "vb"), ("QM", "QM"), ("QMp", "QMp"))]
    pairs += [(f"{label} QMdf", np.array(r.QMdf), ref["QMdf"]), (f"{label} n", r.n, ref["n"]),
              (f"{label} tcl", np.sort(r.tcl), sorted(ref["tcl"]))]
    return pairs


RMA_RUNS = [(key, est) for key, c in RMA_CASES.items() for est in c["robust"]]
MV_RUNS = [(key, est) for key, c in MV_CASES.items() for est in c["robust"]]


# --------------------------------------------------------------------------------------------------------------
# robust() = metafor's robust()
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "est"), RMA_RUNS)
def test_robust_rma_matches_metafor(key, est):
    r = robust(_rma_fit(key), RMA_CASES[key]["cluster"], **KWARGS[est])
    ref = RMA_CASES[key]["robust"][est]
    assert r.vbest == ref["vbest"]
    check_all(_robust_pairs(f"{key} {est}", r, ref))


@pytest.mark.parametrize("as_sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(("key", "est"), MV_RUNS)
def test_robust_mv_matches_metafor(key, est, as_sparse):
    r = robust(_mv_fit(key, as_sparse), MV_CASES[key]["cluster"], **KWARGS[est])
    ref = MV_CASES[key]["robust"][est]
    assert r.vbest == ref["vbest"]
    check_all(_robust_pairs(f"{key} {est}", r, ref))


@pytest.mark.parametrize("key", list(MV_CASES))
def test_rebuilt_marginal_vcov_reproduces_metafor_fit(key):
    """The stand-in's M is the model's: its GLS β̂ and (X'M⁻¹X)⁻¹ are metafor's."""
    f = _mv_fit(key)
    W = np.linalg.inv(f.M)
    vb = np.linalg.inv(f.X.T @ W @ f.X)
    check_all([(f"{key} vb", vb, MV_CASES[key]["fit"]["vb"]),
               (f"{key} beta", vb @ f.X.T @ W @ f.yi, MV_CASES[key]["fit"]["beta"])])


# --------------------------------------------------------------------------------------------------------------
# CR2 = clubSandwich's coef_test / conf_int / Wald_test
# --------------------------------------------------------------------------------------------------------------
def _sandwich_fits():
    for key in RMA_CASES:
        yield f"rma:{key}", lambda key=key: _rma_fit(key), RMA_CASES[key]
    for key, c in MV_CASES.items():
        if "clubSandwich" in c:
            yield f"mv:{key}", lambda key=key: _mv_fit(key), c


SANDWICH = {label: (make, c) for label, make, c in _sandwich_fits()}


@pytest.mark.parametrize("label", list(SANDWICH))
def test_cr2_matches_clubsandwich(label):
    make, c = SANDWICH[label]
    fit = make()
    r = robust(fit, c["cluster"], clubSandwich=True)
    cs = c["clubSandwich"]
    ct, ci = cs["coef_test"], cs["conf_int"]
    pairs = [("vcovCR", r.vb, cs["vcov"]), ("SE", r.se, ct["SE"]), ("tstat", r.tval, ct["tstat"]),
             ("df_Satt", r.df, ct["df_Satt"]), ("p_Satt", r.pval, ct["p_Satt"]), ("CI_L", r.ci_lb, ci["CI_L"]),
             ("CI_U", r.ci_ub, ci["CI_U"])]
    if "Wald_test" in cs:
        w = cs["Wald_test"]
        btt = [b - 1 for b in w["btt"]]
        assert list(r.btt) == btt
        wt = wald_test(fit, c["cluster"], btt)
        assert (wt.test, wt.df_num) == ("HTZ", len(btt))
        pairs += [("QM = HTZ F", r.QM, w["Fstat"]), ("QMdf", np.array(r.QMdf), [w["df_num"], w["df_denom"]]),
                  ("QMp", r.QMp, w["p_val"]), ("Wald F", wt.Fstat, w["Fstat"]), ("Wald delta", wt.delta, w["delta"]),
                  ("Wald df_denom", wt.df_denom, w["df_denom"]), ("Wald p", wt.p_val, w["p_val"])]
    else:  # intercept only: metafor reports t² on (1, df)
        pairs += [("QM = t^2", r.QM, ct["tstat"][0] ** 2), ("QMp", r.QMp, ct["p_Satt"][0])]
    check_all([(f"{label} {name}", ours, ref) for name, ours, ref in pairs])


@pytest.mark.parametrize("label", [lab for lab, (_, c) in SANDWICH.items() if "Wald_test_equal" in c["clubSandwich"]])
def test_wald_test_of_a_contrast_matches_clubsandwich(label):
    make, c = SANDWICH[label]
    w = c["clubSandwich"]["Wald_test_equal"]
    wt = wald_test(make(), c["cluster"], np.array(w["constraints"], dtype=float))
    check_all([(f"{label} F", wt.Fstat, w["Fstat"]), (f"{label} delta", wt.delta, w["delta"]),
               (f"{label} df_denom", wt.df_denom, w["df_denom"]), (f"{label} p", wt.p_val, w["p_val"])])
    assert wt.df_num == w["df_num"]


def test_wald_test_by_coefficient_names():
    fit = _rma_fit("synthetic_multiarm~dose+year/trial")
    c = RMA_CASES["synthetic_multiarm~dose+year/trial"]
    by_name = wald_test(fit, c["cluster"], ["year", "dose"])
    assert mismatch("F", by_name.Fstat, c["clubSandwich"]["Wald_test"]["Fstat"]) is None


def test_cr2_refuses_clusters_that_do_not_nest_the_random_effects():
    c = MV_CASES["konstantopoulos2011/school"]
    assert "Could not obtain" in c["clubSandwich_error"]  # metafor/clubSandwich stop here too
    for as_sparse in (False, True):
        with pytest.raises(ValueError, match="nested within 'cluster'"):
            robust(_mv_fit("konstantopoulos2011/school", as_sparse), c["cluster"], clubSandwich=True)


# --------------------------------------------------------------------------------------------------------------
# printouts
# --------------------------------------------------------------------------------------------------------------
PRINTS = ([("rma", key, est) for key, c in RMA_CASES.items() for est in c["printouts"]]
          + [("mv", key, est) for key, c in MV_CASES.items() for est in c["printouts"]])


@pytest.mark.parametrize(("kind", "key", "est"), PRINTS)
def test_printout_matches_metafor(kind, key, est):
    cases, make = (RMA_CASES, _rma_fit) if kind == "rma" else (MV_CASES, _mv_fit)
    ref = _lines(cases[key]["printouts"][est])
    ours = _lines(str(robust(make(key), cases[key]["cluster"], **KWARGS[est])))
    diff = "\n".join(difflib.unified_diff(ref, ours, "metafor", "metaexercise", lineterm=""))
    assert ours == ref, f"{key} {est}:\n{diff}"


# --------------------------------------------------------------------------------------------------------------
# properties and bad input
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("est", ["CR1", "CR2"])
def test_order_and_labels_of_the_data_do_not_matter(est):
    key = "synthetic_multiarm~dose+year/trial"
    c = RMA_CASES[key]
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(c["yi"]))
    mods = pd.DataFrame(np.array(c["mods"], dtype=float)[perm], columns=c["colnames"])
    fit = rma(np.array(c["yi"])[perm], np.array(c["vi"])[perm], mods=mods, control=CONTROL)
    codes = {lab: i for i, lab in enumerate(sorted(set(c["cluster"]), reverse=True))}
    cluster = [codes[lab] * 10 for lab in np.array(c["cluster"])[perm]]  # other labels, other sort order
    r = robust(fit, cluster, **KWARGS[est])
    check_all(_robust_pairs(f"permuted {est}", r, c["robust"][est]))


def test_intercept_only_fields_are_coefs_and_frame():
    r = robust(_rma_fit("bcg/alloc"), RMA_CASES["bcg/alloc"]["cluster"], clubSandwich=True)
    assert isinstance(r.se, Coef) and isinstance(r.df, Coef) and r.int_only
    frame = r.to_frame()
    assert list(frame.columns) == ["estimate", "se", "tval", "df", "pval", "ci_lb", "ci_ub"]
    assert abs(frame.loc["intrcpt", "df"] - RMA_CASES["bcg/alloc"]["robust"]["CR2"]["df"][0]) < ATOL + RTOL
    assert r.zval is r.tval and r.n_clusters == 3


def test_bad_input_is_refused_by_name():
    fit = _rma_fit("bcg~ablat/alloc")
    cl = RMA_CASES["bcg~ablat/alloc"]["cluster"]
    with pytest.raises(ValueError, match="cluster has 12 values but the model has k = 13"):
        robust(fit, cl[:-1])
    with pytest.raises(ValueError, match=r"missing values at positions \[2\]"):
        robust(fit, [None if i == 2 else v for i, v in enumerate(cl)])
    with pytest.raises(ValueError, match=r"missing values at positions \[0\]"):
        robust(fit, np.r_[np.nan, np.arange(12.0)])
    with pytest.raises(ValueError, match=r"number of clusters \(2\) must be larger than the number of coef"):
        robust(fit, ["a"] * 6 + ["b"] * 7)
    with pytest.raises(ValueError, match="adjust must be"):
        robust(fit, cl, adjust="CR3")
    with pytest.raises(TypeError, match="clubSandwich must be True or False"):
        robust(fit, cl, clubSandwich="yes")
    with pytest.raises(TypeError, match="fit must be an rma or rma_mv result"):
        robust(object(), cl)
    with pytest.raises(ValueError, match="not a coefficient"):
        wald_test(fit, cl, ["latitude"])
    with pytest.raises(ValueError, match="q x 2 matrix"):
        wald_test(fit, cl, np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"index 5 is not in 0 … 1"):
        wald_test(fit, cl, [5])
