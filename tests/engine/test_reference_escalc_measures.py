"""escalc's measures and the transf_* helpers against metafor 3.8.1: tests/reference/escalc_measures.json
(make_escalc_measures_reference.R).

Proportions (dat.pritz1997), incidence rates (dat.hart1999, dat.nielweise2008), single-group means
(dat.normand1999), correlations (dat.molloy2014, dat.mcdaniel1994), partial correlations (dat.aloe2013),
two-group means (dat.normand1999, dat.gibson2002), change scores (Morris 2008 as in metafor's tests), alphas
(dat.bonett2010), REH (dat.frank2008), each with every vtype metafor offers, add/to variants, and seeded
synthetic sets with zero cells, xi = ni, n ≤ 4, r = ±1 and missing values (synthetic replica - not the trials'
data). yi, vi and metafor's ni attribute agree to 1e-6 relative (absolute floor 1e-10), NA where metafor has NA;
where metafor stops on bad input, escalc raises a ValueError/TypeError naming the argument.
"""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import as_array, check_all, fixture

from metaexercise.engine import transf
from metaexercise.engine.effects import MEASURES, EffectSizes, escalc

FIX = fixture("escalc_measures")
CASES = {name: c for name, c in FIX["cases"].items() if "error" not in c}
ERRORS = {name: c for name, c in FIX["cases"].items() if "error" in c}


def options(c: dict) -> dict:
    opts = dict(c["options"] or {})
    for key in ("subset", "include"):
        if key in opts:
            opts[key] = np.array(opts[key], dtype=bool)
    return opts


def run(c: dict):
    inputs = {name: as_array(values) for name, values in c["inputs"].items()}
    return escalc(c["measure"], **inputs, **options(c))


#: R's own warning from log() of a negative number, not one of metafor's.
R_BASE_WARNINGS = {"NaNs produced"}


@pytest.mark.parametrize("name", list(CASES))
def test_escalc_measure_matches_metafor(name):
    c = CASES[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es = run(c)
    assert es.measure == c["measure"]
    check_all([(f"{name} yi", es.yi, c["yi"]), (f"{name} vi", es.vi, c["vi"]), (f"{name} ni", es.ni, c["ni"])])
    said = sorted({str(w.message) for w in caught})
    assert said == sorted(set(c["warnings"]) - R_BASE_WARNINGS), f"{name}: warnings {said} vs {c['warnings']}"


#: What each refused input's message must name (argument, and position where one is at fault).
ERROR_NAMES = {
    "error_PR_xi_above_ni": ("xi", "[1]"), "error_PR_negative": ("xi", "[1]"),
    "error_PR_ni_not_xi_plus_mi": ("ni", "[1]"), "error_PR_vtype_HO": ("vtype",), "error_PLO_vtype_UB": ("vtype",),
    "error_IR_time_zero": ("ti", "[1]"), "error_COR_above_1": ("ri", "[1]"), "error_ZCOR_vtype_UB": ("vtype",),
    "error_COR_ni_zero": ("ni", "[1]"), "error_PCOR_df": ("ni - mi - 1", "[0]"), "error_SPCOR_r2": ("r2i", "[1]"),
    "error_SMD_negative_sd": ("sd1i", "[1]"), "error_MD_vtype_AV": ("vtype",), "error_SMD_n_zero": ("n1i", "[1]"),
    "error_SMCR_r_above_1": ("ri", "[1]"), "error_unknown_to": ("'to'",), "error_unknown_vtype": ("vtype",),
    "error_MNLN_negative_mean": ("mi", "[1]"), "error_ARAW_alpha_above_1": ("ai", "[1]"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_is_refused_where_metafor_stops(name):
    with pytest.raises((ValueError, TypeError)) as err:
        run(ERRORS[name])
    for part in ERROR_NAMES[name]:
        assert part in str(err.value), f"{name}: {part!r} not in {err.value}"


def test_fixture_covers_every_measure_on_real_data():
    real = {c["measure"] for c in CASES.values() if not c["synthetic"]}
    ours = set(MEASURES) - {"GEN", "RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY", "IRR", "IRD", "IRSD"}
    assert ours <= real, sorted(ours - real)
    assert set(ERROR_NAMES) == set(ERRORS)
    # the NA rule is exercised: a study with yi missing but vi kept (UCOR, n = 4, vtype AV) and Inf -> both NA
    ucor = CASES["syn_cor_UCOR_AV"]
    assert ucor["yi"][6] is None and ucor["vi"][6] is not None
    assert CASES["syn_cor_ZCOR"]["yi"][0] is None and CASES["syn_cor_ZCOR"]["vi"][0] is None


def test_data_frame_columns_by_name_equal_arrays():
    c = CASES["gibson2002_SMDH_LS"]
    frame = pd.DataFrame({name: as_array(v) for name, v in c["inputs"].items()})
    es = escalc("SMDH", m1i="m1i", sd1i="sd1i", n1i="n1i", m2i="m2i", sd2i="sd2i", n2i="n2i", data=frame)
    check_all([("yi", es.yi, c["yi"]), ("vi", es.vi, c["vi"])])
    with pytest.raises(ValueError, match="'nope'"):
        escalc("SMDH", m1i="nope", sd1i="sd1i", n1i="n1i", m2i="m2i", sd2i="sd2i", n2i="n2i", data=frame)
    with pytest.raises(TypeError, match="no 'data'"):
        escalc("MD", m1i="m1i", sd1i=[1.0], n1i=[2.0], m2i=[1.0], sd2i=[1.0], n2i=[2.0])


def test_missing_and_mismatched_arguments_are_named():
    with pytest.raises(TypeError, match="'ri'"):
        escalc("COR", ni=[10, 20])
    with pytest.raises(ValueError, match="'ni' has length 3"):
        escalc("COR", ri=[0.1, 0.2], ni=[10, 20, 30])
    with pytest.raises(ValueError, match="unknown measure"):
        escalc("XYZ", ri=[0.1], ni=[10])
    with pytest.raises(ValueError, match="not available"):
        escalc("RTET", ai=[1], bi=[2], ci=[3], di=[4])
    with pytest.raises(TypeError, match="'add'"):
        escalc("PLO", xi=[1, 0], ni=[5, 5], add="half")
    with pytest.raises(ValueError, match="vtype"):
        escalc("PR", xi=[1, 2], ni=[5, 5], vtype=["LS", "UB", "AV"])
    with pytest.raises(TypeError, match="numeric"):
        escalc("PR", xi=["a", "b"], ni=[5, 5])


def test_generic_and_existing_callers_unchanged():
    es = EffectSizes(np.array([0.1]), np.array([0.01]), "GEN")  # positional construction still works
    assert es.ni is None and es.sei[0] == pytest.approx(0.1)
    g = escalc("GEN", yi=[0.2, 0.3], vi=[0.04, 0.09], ni=[10, 20])
    np.testing.assert_array_equal(g.vi, [0.04, 0.09])
    np.testing.assert_array_equal(g.ni, [10, 20])
    relabel = escalc("SMD", yi=[0.5], sei=[0.2])  # metafor: a measure with yi given only labels it
    assert relabel.measure == "SMD" and relabel.vi[0] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="vi is negative"):
        escalc("GEN", yi=[0.1, 0.2], vi=[0.1, -0.2])


# -- the count measures are routed to escalc_counts.counts_effects -------------------------------------------
def test_count_measures_are_routed_with_their_arguments(monkeypatch):
    seen = {}

    def counts_effects(measure, *, ai, bi, ci, di, n1i, n2i, x1i, x2i, t1i, t2i, add, to, drop00, vtype):
        seen.update(measure=measure, ai=ai, bi=bi, ci=ci, di=di, n1i=n1i, n2i=n2i, x1i=x1i, t1i=t1i,
                    add=add, to=to, drop00=drop00, vtype=vtype)
        k = len(ai) if ai is not None else len(x1i)
        return np.full(k, 0.5), np.array([np.inf if measure == "RD" else 0.2] + [0.1] * (k - 1))

    fake = types.ModuleType("metaexercise.engine.escalc_counts")
    fake.counts_effects = counts_effects
    monkeypatch.setitem(sys.modules, "metaexercise.engine.escalc_counts", fake)
    with pytest.warns(UserWarning, match="Recoded to NAs"):
        es = escalc("RD", ai=[1, 0, 3], ci=[2, 0, 1], n1i=[10, 12, 9], n2i=[11, 10, 8], to="all", drop00=True,
                    vtype="AV")
    assert seen["measure"] == "RD" and seen["to"] == "all" and seen["drop00"] is True and seen["vtype"] == "AV"
    assert seen["add"] == 0.5 and seen["bi"] is None and seen["x1i"] is None
    np.testing.assert_array_equal(seen["n1i"], [10, 12, 9])
    np.testing.assert_array_equal(es.ni, [21, 22, 17])  # ai + bi + ci + di, bi and di from the group sizes
    assert np.isnan(es.yi[0]) and np.isnan(es.vi[0])  # metafor's rule: Inf makes both missing
    escalc("AS", ai=[1], bi=[2], ci=[3], di=[4])
    assert seen["add"] == 0.0  # metafor's default add is 0 for AS (and IRSD)
    es = escalc("IRR", x1i=[1, 2], x2i=[3, 4], t1i=[10.0, 20.0], t2i=[30.0, 40.0], add=1)
    assert seen["measure"] == "IRR" and seen["add"] == 1 and seen["ai"] is None
    np.testing.assert_array_equal(es.ni, [40, 60])


# -- transf_* ------------------------------------------------------------------------------------------------
def _targs(t):
    return None if t is None else {k: (v[0] if len(v) == 1 else as_array(v)) for k, v in t.items()}


@pytest.mark.parametrize("name", list(FIX["transf"]))
def test_transf_matches_metafor(name):
    t = FIX["transf"][name]
    fn = getattr(transf, "transf_" + t["fn"].removeprefix("transf.").replace(".", "_"))
    kwargs = {k: as_array(v) for k, v in (t["args"] or {}).items()}
    if t["targs"] is not None:
        kwargs["targs"] = _targs(t["targs"])
    with np.errstate(invalid="ignore"):  # inf - inf in the comparison where both are ±Inf (logit of 0 and 1)
        check_all([(name, fn(as_array(t["xi"]), **kwargs), t["value"])])


def test_transf_scalars_round_trips_and_exports():
    assert isinstance(transf.transf_ilogit(0.0), float) and transf.transf_ilogit(0.0) == 0.5
    assert transf.transf_exp(0.0) == 1.0
    x = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(transf.transf_ilogit(transf.transf_logit(x)), x)
    np.testing.assert_allclose(transf.transf_ztor(transf.transf_rtoz(x)), x)
    np.testing.assert_allclose(transf.transf_ipft(transf.transf_pft(x, 20), 20), x)
    np.testing.assert_allclose(transf.transf_ipft_hm(transf.transf_pft(x, 20), ni=[20, 20]), x)
    np.testing.assert_allclose(transf.transf_iirft(transf.transf_irft(x, 50), 50), x)
    assert all(callable(getattr(transf, n)) for n in transf.__all__)
    with pytest.raises(TypeError, match="ni"):
        transf.transf_ipft_hm(0.3)
    with pytest.raises(ValueError, match="pc"):
        transf.transf_logortorr([0.1], pc=1.5)
