"""rma against metafor 3.8.1: every data set × method × test in tests/reference/rma.json, every quantity.

Reference: tests/reference/make_reference.R (metafor's rma, predict, confint with threshold = tol = 1e-12 on
metafor's dat.bcg, dat.normand1999, dat.hackshaw1998, dat.molloy2014, dat.raudenbush1985 and 36 seeded
synthetic sets). Tolerance: relative 1e-6 (engine issue #2), absolute floor 1e-10.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from engine_reference import CONTROL, check_all, fixture

from metaexercise import rma
from metaexercise.engine.diagnostics import _s2w

RMA = fixture("rma")
METHODS = ("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
TESTS = ("z", "knha")
REAL_SETS = ("bcg", "normand1999", "hackshaw1998", "molloy2014", "raudenbush1985")

DATASETS = list(RMA["datasets"])


def fit_pairs(fit, ref: dict, label: str) -> list[tuple[str, object, object]]:
    """(label, ours, metafor) for every quantity both sides report."""
    pairs = [
        (f"{label} k", fit.k, ref["k"]),
        (f"{label} p", fit.p, ref["p"]),
        (f"{label} beta", fit.beta, ref["beta"]),
        (f"{label} se", fit.se, ref["se"]),
        (f"{label} zval", fit.zval, ref["zval"]),
        (f"{label} pval", fit.pval, ref["pval"]),
        (f"{label} ci_lb", fit.ci_lb, ref["ci_lb"]),
        (f"{label} ci_ub", fit.ci_ub, ref["ci_ub"]),
        (f"{label} vb", fit.vb, ref["vb"]),
        (f"{label} tau2", fit.tau2, ref["tau2"]),
        (f"{label} se_tau2", fit.se_tau2, ref["se_tau2"]),
        (f"{label} I2", fit.I2, ref["I2"]),
        (f"{label} H2", fit.H2, ref["H2"]),
        (f"{label} QE", fit.QE, ref["QE"]),
        (f"{label} QEp", fit.QEp, ref["QEp"]),
        (f"{label} QM", fit.QM, ref["QM"]),
        (f"{label} QMp", fit.QMp, ref["QMp"]),
        (f"{label} ddf", fit.ddf, ref.get("ddf")),
        (f"{label} s2w (Knapp-Hartung scale, as influence() computes it)", _s2w(fit), ref["s2w"]),
        (f"{label} weights", fit.weights, ref["weights"]),
        (f"{label} ll", fit.ll, ref["ll_REML"] if fit.method == "REML" else ref["ll_ML"]),
    ]
    if "pi_lb" in ref:
        pairs += [(f"{label} pi_lb", fit.pi_lb, ref["pi_lb"]), (f"{label} pi_ub", fit.pi_ub, ref["pi_ub"])]
        pred = fit.predict()
        pairs += [(f"{label} predict().pred", pred.pred, ref["pred"]),
                  (f"{label} predict().pi_lb", pred.pi_lb, ref["pi_lb"]),
                  (f"{label} predict().pi_ub", pred.pi_ub, ref["pi_ub"])]
    if "pi_lb_riley" in ref:
        riley = fit.predict(pi_dist="riley")
        pairs += [(f"{label} pi_lb riley t(k-2)", riley.pi_lb, ref["pi_lb_riley"]),
                  (f"{label} pi_ub riley t(k-2)", riley.pi_ub, ref["pi_ub_riley"])]
    if "R2" in ref:
        pairs.append((f"{label} R2", fit.R2, ref["R2"]))
    return pairs


def confint_pairs(fit, ref: dict, label: str) -> list[tuple[str, object, object]]:
    ci = fit.confint()
    return [(f"{label} confint {name}", getattr(ci, name), ref[name]) for name in ("tau2", "tau", "I2", "H2")]


@pytest.mark.parametrize("dataset", DATASETS)
def test_rma_matches_metafor(dataset):
    # One test per data set (18 fits each) keeps the run fast; each failing line names method/test/quantity.
    d = RMA["datasets"][dataset]
    yi, vi = np.array(d["yi"]), np.array(d["vi"])
    pairs = []
    for key, ref in d["fits"].items():
        method, test = key.split("/")
        assert "error" not in ref, f"metafor itself failed on {dataset} {key}: {ref['error']}"
        fit = rma(yi, vi, method=method, test=test, control=CONTROL)
        label = f"{dataset} {method}/{test}"
        pairs += fit_pairs(fit, ref, label)
        if "confint" in ref and "error" not in ref["confint"]:
            pairs += confint_pairs(fit, ref["confint"], label)
    check_all(pairs)


def test_fixture_grid_is_complete():
    # Every data set carries every method x test combination, and metafor fitted every one of them.
    assert tuple(RMA["methods"]) == METHODS and tuple(RMA["tests"]) == TESTS
    expected = {f"{m}/{t}" for m, t in itertools.product(METHODS, TESTS)}
    for name, d in RMA["datasets"].items():
        assert set(d["fits"]) == expected, name
        failed = [k for k, v in d["fits"].items() if "error" in v]
        assert not failed, f"{name}: metafor failed for {failed}"
        z_fits = [k for k in expected if k.endswith("/z") and not k.startswith("EE")]
        assert all("confint" in d["fits"][k] for k in z_fits), name


def test_fixture_spans_the_required_designs():
    # Engine issue #2: the five metafor data sets and >= 30 seeded synthetic sets spanning k = 2..120,
    # tau2 = 0..1 and sampling variances that differ by orders of magnitude.
    sets = RMA["datasets"]
    assert set(REAL_SETS) <= set(sets)
    synthetic = {n: d for n, d in sets.items() if d["synthetic"]}
    assert len(synthetic) >= 30
    ks = [len(d["yi"]) for d in synthetic.values()]
    assert min(ks) == 2 and max(ks) == 120
    assert all("synthetic replica" in d["origin"] for d in synthetic.values())
    spans = [np.log10(max(d["vi"]) / min(d["vi"])) for d in synthetic.values()]
    assert max(spans) > 4
    assert RMA["source"]["metafor_version"] == "3.8.1"


def test_k1_with_knha_falls_back_to_z_as_metafor():
    # metafor's rma.uni: `if (k == 1L && test != "z") test <- "z"` (with a warning). Reference: the first row of
    # cumul() under test="knha" in tests/reference/influence.json, a one-study fit of dat.bcg's study 1.
    ref = fixture("influence")["datasets"]["bcg"]["fits"]["REML/knha"]["cumul"]
    yi, vi = RMA["datasets"]["bcg"]["yi"][0], RMA["datasets"]["bcg"]["vi"][0]
    fit = rma([yi], [vi], test="knha", control=CONTROL)
    check_all([(f"k=1 knha {q}", ours, ref[q][0]) for q, ours in (
        ("estimate", fit.estimate), ("se", fit.se[0]), ("zval", fit.zval[0]), ("pval", fit.pval[0]),
        ("ci_lb", fit.ci_lb[0]), ("ci_ub", fit.ci_ub[0]), ("tau2", fit.tau2), ("Q", fit.QE), ("Qp", fit.QEp))])
