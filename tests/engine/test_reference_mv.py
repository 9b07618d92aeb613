"""`rma_mv` against metafor 3.8's `rma.mv`: estimates, tests, fit statistics, printouts and profile CIs.

Reference: tests/reference/mv.json, written by tests/reference/make_mv_reference.R (metafor 3.8-1; nlminb at
rel.tol 1e-12 where it converges there, or minqa's bobyqa at rhoend 1e-12 when that reaches a higher log-likelihood;
each fit's ``control`` says which) on metadat's dat.konstantopoulos2011 (``~ 1 | district/school``),
dat.berkey1998 (``~ outcome | trial`` with struct UN, CS, HCS; full V), dat.assink2016 (``~ 1 | study/esid`` with V
from vcalc; two random terms) and Gleser & Olkin's (2009) multiple-treatment SMD example (no random effects).
Tolerance: 1e-6 relative (absolute floor 1e-10), the engine's bar. The log-likelihood surface is flat near these
maxima, so metafor's optimisers stop where the parameters agree with the exact maximiser to ~1e-7: each case also
checks that our maximum is not below our log-likelihood at metafor's estimates (our optimum is the better one, or the
same) and that metafor's log-likelihood is ours to 1e-9 relative.
"""

from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import check_all, fixture

from metaexercise.engine.mv import RMAMVWarning, rma_mv

MV = fixture("mv")
CASES = list(MV["fits"])
CI_CASES = [n for n in CASES if "confint" in MV["fits"][n]]


def _frame(name: str) -> pd.DataFrame:
    return pd.DataFrame(MV["data"][name]["columns"])


def _V(case: dict):
    data = MV["data"][case["data"]]
    return np.asarray(data["columns"]["vi"], dtype=float) if case["V"] == "vi" else np.array(data["V"], dtype=float)


def _kwargs(case: dict) -> dict:
    random = case["random"]
    return dict(mods=case.get("mods"), random=None if not random else random[0] if len(random) == 1 else random,
                struct=case["struct"], data=_frame(case["data"]), method=case["method"], test=case["test"])


def _fit(name: str, **over):
    case = MV["fits"][name]
    kw = _kwargs(case) | over
    kw.setdefault("sigma2", case.get("sigma2_arg"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RMAMVWarning)
        return rma_mv("yi", _V(case), **kw)


_FITS: dict[str, object] = {}


def fitted(name: str):
    if name not in _FITS:
        _FITS[name] = _fit(name)
    return _FITS[name]


def _opt(x):
    return [] if x is None else x


@pytest.mark.parametrize("name", CASES)
def test_estimates_match_metafor(name):
    ref = MV["fits"][name]["fit"]
    fit = fitted(name)
    meth = "REML" if fit.method == "REML" else "ML"
    names = ref["coef_names"]
    assert fit.coef_names == ((names,) if isinstance(names, str) else tuple(names))
    assert (fit.k, fit.p, fit.parms) == (ref["k"], ref["p"], ref["parms"])
    pairs = [(q, getattr(fit, q), ref[q]) for q in ("beta", "se", "zval", "ci_lb", "ci_ub", "vb", "QE", "QEp",
                                                      "QM", "QMp")]
    pairs += [("pval", fit.pval, ref["pval"]), ("ll", fit.ll, ref[f"ll_{meth}"]),
              ("sigma2", fit.sigma2, _opt(ref["sigma2"])), ("tau2", fit.tau2, _opt(ref["tau2"])),
              ("rho", fit.rho, _opt(ref["rho"])), ("gamma2", fit.gamma2, _opt(ref["gamma2"])),
              ("phi", fit.phi, _opt(ref["phi"]))]
    for which in ("ML", "REML"):
        fs = fit.fit_stats[which]
        pairs += [(f"{key}_{which}", fs[key], ref[f"{key}_{which}"]) for key in ("ll", "dev", "AIC", "BIC", "AICc")]
    pairs.append(("diag(M)", fit.marginal_vcov().diagonal(), ref["M_diag"]))
    if ref["ddf"] is not None:
        pairs.append(("ddf", fit.ddf, ref["ddf"]))
    pairs.append(("QMdf", fit.QM_df[0], ref["QMdf"][0]))
    check_all(pairs)


@pytest.mark.parametrize("name", CASES)
def test_levels_and_fixed_components_match_metafor(name):
    ref = MV["fits"][name]["fit"]
    fit = fitted(name)
    assert list(fit.s_names) == (ref["s_names"] or [])
    assert list(fit.s_nlevels) == [int(x) for x in (ref["s_nlevels"] or [])]
    assert list(fit.g_names) == (ref["g_names"] or [])
    assert list(fit.g_nlevels) == [int(x) for x in (ref["g_nlevels"] or [])]
    assert list(fit.g_levels_k) == [int(x) for x in (ref["g_levels_k"] or [])]
    assert list(fit.g_levels_comb_k) == [int(x) for x in (ref["g_levels_comb_k"] or [])]
    assert list(fit.h_names) == (ref["h_names"] or [])
    assert list(fit.h_nlevels) == [int(x) for x in (ref["h_nlevels"] or [])]
    assert list(fit.h_levels_k) == [int(x) for x in (ref["h_levels_k"] or [])]
    for kind in ("sigma2", "tau2", "rho", "gamma2", "phi"):
        assert list(fit.vc_fix[kind]) == (ref["vc_fix"][kind] or []), kind


@pytest.mark.parametrize("name", [n for n in CASES if MV["fits"][n]["fit"]["parms"] > MV["fits"][n]["fit"]["p"]])
def test_our_maximum_is_not_below_metafors(name):
    """Convergence of both: our log-likelihood at metafor's estimates (all components fixed there) is not above our
    maximum, and metafor's own value of it agrees with ours to 1e-9."""
    ref = MV["fits"][name]["fit"]
    fit = fitted(name)
    at_ref = _fit(name, sigma2=ref["sigma2"], tau2=ref["tau2"], rho=ref["rho"], gamma2=ref["gamma2"], phi=ref["phi"])
    assert fit.ll >= at_ref.ll - 1e-12 * max(1.0, abs(fit.ll))
    meth = "REML" if fit.method == "REML" else "ML"
    assert abs(at_ref.ll - ref[f"ll_{meth}"]) <= 1e-9 * max(1.0, abs(fit.ll))
    assert fit.converged


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


@pytest.mark.parametrize("name", CASES)
def test_printout_matches_metafor(name):
    case = MV["fits"][name]
    ref = _lines(case["printout"])
    ours = _lines(str(fitted(name)))
    diff = "\n".join(difflib.unified_diff(ref, ours, "metafor", "metaexercise", lineterm=""))
    assert ours == ref, f"{name} ({case['call']}):\n{diff}"


@pytest.mark.parametrize("name", CI_CASES)
def test_profile_ci_matches_metafor(name):
    """Profile-likelihood bounds to 1e-6. metafor's profile refits inherit the fit's control (``confint.control``:
    bobyqa at rhoend 1e-12, or nlminb at rel.tol down to 1e-10 where bobyqa's profile gave NA bounds); the bounds
    depend only on log-likelihood values, which either gets to ~1e-10, so they agree far inside 1e-6."""
    case = MV["fits"][name]
    ci = fitted(name).confint()
    rows = [r for part in ci.parts for r in part.rows]
    ref_rows = case["confint"]["rows"]
    assert [r[0] for r in rows] == [r["name"] for r in ref_rows]
    check_all([(f"{r['name']} ci_lb", row[2], r["ci_lb"]) for row, r in zip(rows, ref_rows, strict=True)]
              + [(f"{r['name']} ci_ub", row[3], r["ci_ub"]) for row, r in zip(rows, ref_rows, strict=True)])
    signs = {(r["lb_sign"], r["ub_sign"]) for r in ref_rows}
    assert {(p.lb_sign, p.ub_sign) for p in ci.parts} <= signs | {("", "")}


@pytest.mark.parametrize("name", CI_CASES)
def test_profile_ci_printout_matches_metafor(name):
    case = MV["fits"][name]
    ref = _lines(case["confint"]["printout"])
    ours = _lines(str(fitted(name).confint()))
    diff = "\n".join(difflib.unified_diff(ref, ours, "metafor", "metaexercise", lineterm=""))
    assert ours == ref, f"{name}:\n{diff}"


def test_single_component_ci_is_the_same_as_in_the_full_list():
    fit = fitted("konst_reml")
    one = fit.confint(sigma2=2)
    assert len(one) == 1 and one[0].component == "sigma2" and one[0].index == 2
    full = fit.confint()
    assert one[0].rows == full[1].rows


def test_confint_refuses_fixed_and_absent_components():
    fit = fitted("konst_fixed")
    with pytest.raises(ValueError, match="fixed"):
        fit.confint(sigma2=2)
    with pytest.raises(ValueError, match="no tau2 component"):
        fit.confint(tau2=1)
    with pytest.raises(ValueError, match="only one"):
        fit.confint(sigma2=1, tau2=1)
