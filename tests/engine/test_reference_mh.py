"""rma_mh and rma_peto against metafor 3.8.1's rma.mh and rma.peto: tests/reference/mh.json
(tests/reference/make_mh_reference.R).

Mantel–Haenszel OR, RR, RD on dat.bcg, dat.nielweise2007, dat.yusuf1985 (tables 6 and 9), dat.collins1985a and
seeded synthetic edge sets (a group without events in every table, tables without any events, k = 1: synthetic
replica - not the trials' data); IRR and IRD on dat.nielweise2008, dat.hart1999 and seeded synthetic rates;
Peto on the 2×2 sets. Each with the default and with correct=False, level=90, drop00 / add / to variants (one
and two values). Every statistic metafor returns (estimate, se, z, p, CI, QE, QEp, I2, H2, CMH/Cochran,
Breslow–Day/Tarone, k's, the yi/vi behind QE, log-likelihoods and information criteria), predict() with and
without transf=exp, metafor's warnings and errors, and the printouts (line by line). Relative 1e-6, absolute
floor 1e-10; NaN where metafor has NA.
"""

from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import as_array, check_all, fixture

from metaexercise.engine.mh import MHResult, rma_mh, rma_peto

MH = fixture("mh")
CASES = list(MH["models"])
PRINTED = [k for k, c in MH["models"].items() if "printout" in c]
#: R's own arithmetic warning (sqrt of a negative variance), which numpy does not raise
R_ONLY = {"NaNs produced"}


def inputs(dataset: str) -> dict[str, np.ndarray]:
    src = MH["counts"].get(dataset) or MH["rates"][dataset]
    return {name: as_array(values) for name, values in src["inputs"].items()}


def call(key: str):
    c = MH["models"][key]
    args = {n: tuple(v) if isinstance(v, list) else v for n, v in (c["args"] or {}).items()}
    if c["fun"] == "rma.mh":
        return lambda: rma_mh(**inputs(c["dataset"]), measure=c["measure"], **args)
    return lambda: rma_peto(**inputs(c["dataset"]), **args)


def fit_of(key: str) -> MHResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(key)()


@pytest.mark.parametrize("key", CASES)
def test_fit_matches_metafor(key):
    c = MH["models"][key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "error" in c:
            with pytest.raises(ValueError):
                call(key)()
            return
        fit = call(key)()
    said = sorted({str(w.message) for w in caught})
    assert said == sorted(set(c["warnings"]) - R_ONLY), f"{key}: warnings {said} vs metafor's {c['warnings']}"
    pairs = []
    for name, ref in c["result"].items():
        if name in ("pred", "pred_exp"):
            pred = fit.predict(transf=np.exp if name == "pred_exp" else None)
            pairs += [(f"{key} {name}.{q}", getattr(pred, q), v) for q, v in ref.items()]
        else:
            pairs.append((f"{key} {name}", getattr(fit, name), ref))
    with np.errstate(invalid="ignore"):  # -inf vs -inf (BIC with k_yi = 0) compares as equal in check_all
        check_all(pairs)


@pytest.mark.parametrize("key", PRINTED)
def test_printout_matches_metafor(key):
    ref = MH["models"][key]["printout"].rstrip("\n").split("\n")
    ours = str(fit_of(key)).rstrip("\n").split("\n")
    diff = "\n".join(difflib.unified_diff(ref, ours, "metafor", "metaexercise", lineterm=""))
    assert ours == ref, f"{key} ({MH['models'][key]['call']}):\n{diff}"


def test_fixture_covers_measures_edges_and_printouts():
    combos = {(c["fun"], c["measure"]) for c in MH["models"].values()}
    assert combos == {("rma.mh", m) for m in ("OR", "RR", "RD", "IRR", "IRD")} | {("rma.peto", "PETO")}
    assert {"rma.mh/syn_arm2_zero/OR/default", "rma.mh/syn_all00/OR/default", "rma.mh/syn_k1/OR/default",
            "rma.peto/syn_all00/PETO/default"} <= set(CASES)
    assert {MH["models"][k]["measure"] for k in PRINTED} == {"OR", "RR", "RD", "IRR", "IRD", "PETO"}
    # a double-zero study has no yi (drop00), yet its table stays in the MH estimate
    nw = MH["models"]["rma.mh/nielweise2007/OR/default"]["result"]
    assert (nw["k"], nw["k_yi"]) == (18, 17)


def test_results_expose_metafor_names():
    fit = fit_of("rma.mh/bcg/OR/default")
    assert fit.estimate == fit.beta and fit.measure == "OR" and fit.model == "rma.mh"
    assert np.isfinite([fit.MH, fit.MHp, fit.TA, fit.TAp, fit.QE, fit.QEp, fit.I2, fit.H2]).all()
    assert fit.vb.shape == (1, 1) and fit.vb[0, 0] == pytest.approx(fit.se**2)
    assert fit.predict(np.exp).pred == pytest.approx(np.exp(fit.beta))
    assert np.isnan(fit.predict(np.exp).se)
    assert "rma.mh" in repr(fit)
    peto = fit_of("rma.peto/bcg/PETO/default")
    assert peto.measure == "PETO" and np.isnan(peto.MH)


def test_data_columns_and_subset():
    bcg = pd.DataFrame({k: v for k, v in inputs("bcg").items()})
    direct = fit_of("rma.mh/bcg/RR/default")
    by_name = rma_mh(ai="ai", bi="bi", ci="ci", di="di", data=bcg, measure="RR")
    assert by_name.beta == direct.beta and by_name.QE == direct.QE
    first = rma_mh(ai=bcg.ai, bi=bcg.bi, ci=bcg.ci, di=bcg.di, subset=np.arange(13) < 6)
    same = rma_mh(ai=bcg.ai[:6], bi=bcg.bi[:6], ci=bcg.ci[:6], di=bcg.di[:6])
    by_pos = rma_mh(ai=bcg.ai, bi=bcg.bi, ci=bcg.ci, di=bcg.di, subset=[0, 1, 2, 3, 4, 5])
    assert first.beta == same.beta == by_pos.beta and first.k == 6 and first.k_all == 13
    peto = rma_peto(ai="ai", bi="bi", ci="ci", di="di", data=bcg, subset=np.arange(13) < 6)
    assert peto.k == 6


@pytest.mark.parametrize(
    ("fn", "kwargs", "error", "words"),
    [
        (rma_mh, dict(ai=[1], bi=[2], ci=[3], di=[4], measure="PETO"), ValueError, "can only be used with"),
        (rma_mh, dict(ai=[1], bi=[2], ci=[3], di=[4], add=(0.5, 0.5, 0.5)), ValueError, "one or two values"),
        (rma_mh, dict(ai=[1], bi=[2], ci=[3], di=[4], to="both"), ValueError, "unknown 'to'"),
        (rma_mh, dict(ai=[1], bi=[2], ci=[3], di=[-4]), ValueError, "di is negative (a count) at positions [0]"),
        (rma_mh, dict(ai=[1], ci=[3], di=[4]), TypeError, "'bi' or 'n1i'"),
        (rma_mh, dict(x1i=[1], x2i=[2], t1i=[3], measure="IRR"), TypeError, "'t2i' is required"),
        (rma_mh, dict(ai="a", bi=[2], ci=[3], di=[4]), TypeError, "no 'data'"),
        (rma_mh, dict(ai=[1, 1], bi=[2, 2], ci=[3, 3], di=[4, 4], subset=[True]), ValueError, "one value per study"),
        (rma_mh, dict(ai=[1, 1], bi=[2, 2], ci=[3, 3], di=[4, 4], subset=[5]), ValueError, "out of range"),
        (rma_mh, dict(ai=[np.nan], bi=[2], ci=[3], di=[4]), ValueError, "k = 0"),
        (rma_peto, dict(ai=[0, 0], bi=[5, 6], ci=[0, 0], di=[7, 8]), ValueError, "Peto's method cannot be used"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(fn, kwargs, error, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            fn(**kwargs)
    assert words in str(info.value)


def test_many_tables_stay_fast():
    """Vectorised: 100,000 tables in well under a second (no Python loop over studies)."""
    import time

    rng = np.random.default_rng(7)  # synthetic
    n1, n2 = rng.integers(20, 200, 100_000), rng.integers(20, 200, 100_000)
    a, c = rng.binomial(n1, 0.1), rng.binomial(n2, 0.15)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few double-zero tables have no yi
        fit = rma_mh(ai=a, n1i=n1, ci=c, n2i=n2)
    assert time.perf_counter() - start < 2.0
    assert fit.k == 100_000 and np.isfinite(fit.TA)
