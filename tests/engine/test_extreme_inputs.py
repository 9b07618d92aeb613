"""Extreme inputs through every fitting path (hardening issue): `rma` (every method and test), `rma_batch`
(DL, REML, ML, PM) and the batched meta-regression (`batch_mods.fit_permuted`, `permutest`).

The corpus is generated here; `tests/reference/make_robustness_reference.R` builds the same data and
records metafor 3.8.1's results in `tests/reference/robustness.json` (first test: the data agree bit for bit).
Every case must either return finite numbers equal to metafor's (where metafor fits it), or raise a
metaexercise error (ValueError or a MetaexerciseError subclass) with a clear message: never
ZeroDivisionError, LinAlgError, FloatingPointError, OverflowError, a RuntimeWarning, or a hang (each call
runs in a thread that must finish within TIMEOUT seconds).

Where metafor fails but the engine fits (its Fisher scoring does not converge: the safeguard of
kernels.safeguard converges; the EB estimate, whose equation Q(tau^2) = k - p metafor's oscillating
iteration does not solve), the fit is checked against its defining equation instead.
"""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from metaexercise.engine import kernels
from metaexercise.engine.model import RedundantPredictorsWarning, coef_vector, rma
from metaexercise.engine.model_inputs import NAOmittedWarning
from metaexercise.engine.tau2 import Control, generalized_q
from metaexercise.errors import ConvergenceError, MetaexerciseError

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "robustness.json"
TIMEOUT = 120.0  # seconds; generous: the machine may be shared
METHODS = kernels.METHODS
TESTS = kernels.TESTS

# ------------------------------------------------------------------------------------------------------------
# the corpus (the same definitions as make_robustness_reference.R)
# ------------------------------------------------------------------------------------------------------------

Y0 = np.array([0.12, -0.35, 0.48, 0.05, -0.2, 0.31, 0.9, -0.07])
V0 = np.array([0.05, 0.12, 0.03, 0.08, 0.15, 0.02, 0.1, 0.06])


def intercept_only_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "base": (Y0, V0),
        "y_1e50": (Y0 * 1e50, V0),
        "y_bound": (np.r_[1e50, -1e50, Y0[2:]], V0),
        "v_1e-48": (Y0, V0 * 1e-48),
        "v_1e48": (Y0, V0 * 1e48),
        "v_mix_1e48": (Y0, np.r_[V0[:4] * 1e-48, V0[4:] * 1e48]),
        "v_bound": (Y0, np.r_[1e-50, 1e50, V0[2:]]),
        "scaled_1e24": (Y0 * 1e24, V0 * 1e48),
        "scaled_1e-20": (Y0 * 1e-20, V0 * 1e-40),
        "y_subnormal": (np.array([1e-310, -2e-310, 3e-310, 0, 1e-320, -1e-315, 2e-312, 5e-324]), V0),
        "one_dominant": (Y0, np.r_[1e-40, V0[1:]]),
        "k1": (np.array([0.3]), np.array([0.04])),
        "k2_identical": (np.array([0.3, 0.3]), np.array([0.1, 0.1])),
        "k2_different": (np.array([0.1, 0.9]), np.array([0.01, 0.02])),
        "all_equal": (np.full(8, 0.3), np.full(8, 0.1)),
        "yi_equal": (np.full(8, 0.3), V0),
        "y_1e150": (Y0 * 1e150, V0),
        "y_1e150_v_1e300": (Y0 * 1e150, V0 * 1e300),
        "y_1e300": (Y0 * 1e300, V0),
        "y_-1e300": (-np.abs(Y0) * 1e300, V0),
        "v_1e-300": (Y0, V0 * 1e-300),
        "v_1e300": (Y0, V0 * 1e300),
        "v_subnormal": (Y0, np.full(8, 5e-324)),
        "v_subnormal_1e-310": (Y0, V0 * 1e-309),
        "v_mix_1e300": (Y0, np.r_[V0[:4] * 1e-300, V0[4:] * 1e300]),
    }


#: outside the engine's range (kernels.YI_MAX, VI_MIN, VI_MAX): ValueError naming the argument
OUT_OF_RANGE = {"y_1e150": "yi", "y_1e150_v_1e300": "yi", "y_1e300": "yi", "y_-1e300": "yi", "v_1e-300": "vi",
                "v_1e300": "vi", "v_subnormal": "vi", "v_subnormal_1e-310": "vi", "v_mix_1e300": "vi"}
#: one study's weight exceeds kernels.WEIGHT_DOMINANCE_MAX times all others': ValueError (metafor's numbers
#: are rounding noise there: e.g. its QE for one_dominant is 15.227, the exact value 15.395)
DOMINATED = {"v_bound": 0, "one_dominant": 0}

X1 = np.array([-0.626, 0.184, -0.836, 1.595, 0.33, -0.82, 0.487, 0.738, 0.576, -0.305, 1.512, 0.39])
Z = np.array([-0.621, -2.215, 1.125, -0.045, -0.016, 0.944, 0.821, 0.594, 0.919, 0.782, 0.075, -1.989])
G = np.array([1, 2, 3] * 4)
Y12 = np.array([0.05, 0.41, -0.12, 0.72, 0.33, -0.3, 0.28, 0.55, 0.19, 0.02, 0.66, 0.35])
V12 = np.array([0.04, 0.09, 0.06, 0.03, 0.12, 0.05, 0.08, 0.02, 0.07, 0.1, 0.05, 0.06])


def moderator_cases() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(yi, vi, moderators k x q): nearly collinear (condition numbers of [1, x1, x2] from 1.7e3 to ~1e16),
    exactly collinear, constant and zero columns, tiny and huge moderator scales, vi spread over 1e12."""
    cases = {f"kappa_{name}": np.column_stack([X1, X1 + d * Z]) for name, d in
             [("1.7e3", 1e-3), ("1.7e5", 1e-5), ("1.7e7", 1e-7), ("1e14", 1e-14), ("1e15", 1e-15),
              ("1e16", 1e-16), ("1e17", 1e-17)]}
    cases.update({
        "exact_collinear": np.column_stack([X1, 2 * X1]),
        "collinear_after_other": np.column_stack([X1, Z, X1 - 3 * Z]),
        "dummies_sum_to_intercept": np.column_stack([(G == g).astype(float) for g in (1, 2, 3)]),
        "constant": np.column_stack([X1, np.full(12, 5.0)]),
        "zero": np.column_stack([np.zeros(12), X1]),
        "tiny_scale": (X1 * 1e-5)[:, None],
        "huge_scale": (X1 * 1e40)[:, None],
        "v_spread_1e12": X1[:, None],
    })
    spread = V12 * 10.0 ** np.array([-6, 6, 0, 0] * 3)
    return {name: (Y12, spread if name == "v_spread_1e12" else V12, M) for name, M in cases.items()}


#: metafor stops: "Model matrix not of full rank. Cannot fit model." (an eigenvalue of X'X <= 1e-7)
NOT_FULL_RANK = {"kappa_1.7e5", "kappa_1.7e7", "tiny_scale"}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Load (or compile) the numba kernels before any call runs under the hang guard."""
    from metaexercise.engine.batch import rma_batch
    from metaexercise.engine.batch_mods import fit_permuted

    for m in kernels.BATCH_METHODS:
        rma_batch(Y0[None, :], V0[None, :], m)
    for m in kernels.MODS_METHODS:
        fit_permuted(Y12, V12, np.column_stack([np.ones(12), X1]), np.arange(12)[None, :], m)


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------


def guarded(fn):
    """fn() in a thread that must finish within TIMEOUT seconds, with RuntimeWarnings as errors. Returns
    ("ok", value) or ("error", exception); a hang fails the test."""
    box: dict = {}

    def target():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        pytest.fail(f"no result within {TIMEOUT:g} s (a hang)")
    return ("error", box["error"]) if "error" in box else ("ok", box["value"])


def assert_clear_error(exc: BaseException, where: str, *, match: str | None = None) -> None:
    """A metaexercise error (ValueError or MetaexerciseError), not numpy's LinAlgError (a ValueError too) nor
    an arithmetic error, with a message that explains itself."""
    assert isinstance(exc, ValueError | MetaexerciseError) and not isinstance(exc, np.linalg.LinAlgError), (
        f"{where}: {type(exc).__name__}: {exc}")
    text = str(exc)
    assert len(text) > 40, f"{where}: uninformative message {text!r}"
    if match is not None:
        assert match in text, f"{where}: {text!r} does not mention {match!r}"


def arr(x) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=float))


#: (attribute of RMAResult, key in the fixture, relative tolerance, absolute tolerance in units of scale^a)
QUANTITIES = [("beta", "beta", 1e-8, 1), ("se", "se", 1e-8, 1), ("ci_lb", "ci_lb", 1e-8, 1),
              ("ci_ub", "ci_ub", 1e-8, 1), ("tau2", "tau2", 1e-8, 2), ("se_tau2", "se_tau2", 1e-7, 2),
              ("zval", "zval", 1e-8, 0), ("pval", "pval", 1e-7, 0), ("QE", "QE", 1e-8, 0), ("QM", "QM", 1e-7, 0),
              ("I2", "I2", 1e-7, 0), ("H2", "H2", 1e-8, 0)]


def assert_matches_metafor(fit, ref: dict, where: str, scale: float) -> None:
    for attr, key, rtol, power in QUANTITIES:
        want = arr(ref[key])
        got = arr(getattr(fit, attr))
        assert got.shape == want.shape, f"{where} {attr}: shape {got.shape} != metafor's {want.shape}"
        both_nan = np.isnan(got) & np.isnan(want)
        atol = 1e-10 * scale**power
        ok = both_nan | (got == want) | np.isclose(got, want, rtol=rtol, atol=atol)
        assert ok.all(), f"{where} {attr}: ours {got.tolist()} metafor {want.tolist()}"


def assert_finite_fit(fit, where: str) -> None:
    for name in ("beta", "se", "tau2", "ci_lb", "ci_ub", "QE", "I2", "H2"):
        assert np.isfinite(arr(getattr(fit, name))).all(), f"{where}: {name} = {getattr(fit, name)}"


def score_terms(y, v, tau2, reml: bool) -> tuple[float, float]:
    """The two terms of the score of the intercept-only model, d ll / d tau^2 = (a - b) / 2: a = y'PPy and
    b = tr P (REML) or sum w (ML)."""
    w = 1 / (v + tau2)
    r = y - np.sum(w * y) / np.sum(w)
    return float(np.sum((w * r) ** 2)), float(np.sum(w) - np.sum(w * w) / np.sum(w) if reml else np.sum(w))


def assert_maximum(y, v, tau2, reml: bool, where: str, rtol: float = 1e-8) -> None:
    """tau2 is where the (restricted) likelihood is maximal: the score is zero (to rtol of its terms), or
    tau2 = 0 (to the threshold) with a negative score."""
    a, b = score_terms(y, v, tau2, reml)
    if tau2 <= kernels.THRESHOLD * max(1.0, float(np.mean(v))) and a <= b:
        return
    assert abs(a - b) <= rtol * max(a, b), f"{where}: score terms {a} and {b} differ (tau2 = {tau2})"


# ------------------------------------------------------------------------------------------------------------
# the corpus agrees with the fixture
# ------------------------------------------------------------------------------------------------------------


def test_corpus_is_the_fixtures_data(reference):
    cases = intercept_only_cases()
    assert set(cases) == set(reference["intercept_only"])
    for name, (y, v) in cases.items():
        ref = reference["intercept_only"][name]
        np.testing.assert_array_equal(y, arr(ref["yi"]), err_msg=name)
        np.testing.assert_array_equal(v, arr(ref["vi"]), err_msg=name)
    mods = moderator_cases()
    assert set(mods) == set(reference["moderators"])
    for name, (y, v, M) in mods.items():
        ref = reference["moderators"][name]
        np.testing.assert_array_equal(y, arr(ref["yi"]), err_msg=name)
        np.testing.assert_array_equal(v, arr(ref["vi"]), err_msg=name)
        np.testing.assert_array_equal(M, np.column_stack([arr(c) for c in ref["mods"]]), err_msg=name)


# ------------------------------------------------------------------------------------------------------------
# rma
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(intercept_only_cases()))
def test_rma_on_extreme_intercept_only_inputs(reference, case):
    y, v = intercept_only_cases()[case]
    ref_case = reference["intercept_only"][case]
    scale = math.sqrt(float(arr(ref_case["scale2"])[0]))
    for method in METHODS:
        for test in TESTS:
            where = f"{case} {method}/{test}"
            ref = ref_case["fits"][f"{method}/{test}"]
            status, out = guarded(lambda m=method, t=test: rma(y, v, method=m, test=t))
            if case in OUT_OF_RANGE:
                assert status == "error", f"{where}: fitted although outside the engine's range"
                assert_clear_error(out, where, match=OUT_OF_RANGE[case])
                assert "range" in str(out)
                continue
            if case in DOMINATED:
                assert status == "error", f"{where}: fitted although one study outweighs the rest by ~1e40"
                assert_clear_error(out, where, match=f"study {DOMINATED[case]}")
                continue
            if "error" in ref:  # metafor stops; we stop too (clearly) or fit (checked below)
                if status == "error":
                    assert_clear_error(out, where)
                    continue
                assert_finite_fit(out, where)
                _check_where_metafor_fails(case, method, y, v, out, where)
                continue
            assert status == "ok", f"{where}: metafor fits it, we raised {type(out).__name__}: {out}"
            assert_finite_fit(out, where)
            assert_matches_metafor(out, ref, where, scale)


def _check_where_metafor_fails(case, method, y, v, fit, where):
    """metafor's Fisher scoring (threshold 1e-12) does not converge on these; ours must be the estimate."""
    k = y.shape[0]
    if method == "EB":  # the EB estimate solves Q(tau^2) k / (k - 1) = k, i.e. Q(tau^2) = k - 1 (as PM)
        q = generalized_q(y, v, np.ones((k, 1)), fit.tau2)
        assert q == pytest.approx(k - 1, rel=1e-9), where
    elif method in ("ML", "REML"):
        assert_maximum(y, v, fit.tau2, method == "REML", where)
    else:
        pytest.fail(f"{where}: metafor fails but we fit; no check for {method}")
    if case == "scaled_1e24":  # yi = y0 1e24, vi = v0 1e48: tau^2 is the base case's times 1e48
        base = rma(Y0, V0, method=method)
        assert fit.tau2 == pytest.approx(base.tau2 * 1e48, rel=1e-9), where


@pytest.mark.parametrize("case", list(moderator_cases()))
def test_rma_on_extreme_moderators(reference, case):
    y, v, M = moderator_cases()[case]
    ref_case = reference["moderators"][case]
    for method in METHODS:
        for test in TESTS:
            where = f"{case} {method}/{test}"
            ref = ref_case["fits"][f"{method}/{test}"]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RedundantPredictorsWarning)
                status, out = guarded(lambda m=method, t=test: rma(y, v, mods=M, method=m, test=t))
            dropped_warning = any(issubclass(w.category, RedundantPredictorsWarning) for w in caught)
            if case in NOT_FULL_RANK:
                assert "error" in ref and "full rank" in ref["error"]
                assert status == "error", where
                assert_clear_error(out, where, match="not of full rank")
                continue
            if "error" in ref:  # metafor's EB iteration does not converge (meta-regression: no safeguard)
                assert status == "error", f"{where}: metafor stops ({ref['error']}) but we fitted"
                assert isinstance(out, ConvergenceError) and "safeguard=True" in str(out), where
                # ... which the remedy it names reaches: the EB estimate solves Q(tau^2) = k - p
                status, out = guarded(lambda m=method, t=test: rma(y, v, mods=M, method=m, test=t,
                                                                    control=Control(safeguard=True)))
                assert status == "ok", where
                assert generalized_q(y, v, out.X, out.tau2) == pytest.approx(out.k - out.p, rel=1e-9), where
                continue
            assert status == "ok", f"{where}: metafor fits it, we raised {type(out).__name__}: {out}"
            coef_na = np.atleast_1d(np.asarray(ref["coef_na"], dtype=bool))
            names = ("intrcpt",) + tuple(ref_case["colnames"] if isinstance(ref_case["colnames"], list)
                                         else [ref_case["colnames"]])
            want_dropped = tuple(f"mods{j}" if M.shape[1] > 1 else "mods" for j in range(1, M.shape[1] + 1))
            want_dropped = tuple(n for n, na in zip(want_dropped, coef_na[1:], strict=True) if na)
            assert out.dropped == want_dropped, f"{where}: dropped {out.dropped}, metafor {names} {coef_na}"
            assert dropped_warning == bool(want_dropped), where
            assert out.p == int(ref["p"]) and out.k == int(ref["k"])
            assert_finite_fit(out, where)
            assert_matches_metafor(out, ref, where, 1.0)


def test_inf_and_nan_inputs_are_named_with_their_position():
    # metafor 3.8 (na.action = "na.omit"): a missing value (NaN) omits the study with a warning; infinite or
    # negative values stop with an error naming the argument and position; vi = 0 is fitted as metafor does
    # (DL, HS, PM and EE refuse it, the others fit when tau^2 > 0; tests/engine/test_reference_formula.py)
    y, v = Y0.copy(), V0.copy()
    for arg, bad in [("yi", np.inf), ("yi", -np.inf), ("vi", np.inf), ("vi", -0.1)]:
        yy, vv = y.copy(), v.copy()
        (yy if arg == "yi" else vv)[3] = bad
        for method in METHODS:
            status, out = guarded(lambda m=method, a=yy, b=vv: rma(a, b, method=m))
            assert status == "error"
            assert_clear_error(out, f"{arg}={bad} {method}", match=arg)
            assert "[3]" in str(out) and "position" in str(out)
    keep = np.arange(len(y)) != 3
    for arg in ("yi", "vi"):
        yy, vv = y.copy(), v.copy()
        (yy if arg == "yi" else vv)[3] = np.nan
        for method in METHODS:
            with pytest.warns(NAOmittedWarning, match=r"positions \[3\]"):
                status, out = guarded(lambda m=method, a=yy, b=vv: rma(a, b, method=m))
            assert status == "ok", f"{arg}=nan {method}: {out}"
            want = rma(y[keep], v[keep], method=method)
            assert (out.k, out.k_all) == (7, 8) and out.positions.tolist() == np.flatnonzero(keep).tolist()
            assert float(out.beta[0]) == want.estimate and out.tau2 == want.tau2
    vv = v.copy()
    vv[3] = 0.0
    for method in METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            status, out = guarded(lambda m=method: rma(y, vv, method=m))
        if method in ("EE", "DL", "HS", "PM"):
            assert status == "error", method
            assert_clear_error(out, f"vi=0 {method}", match="vi = 0 at positions [3]")
        elif status == "ok":
            assert out.tau2 > 0 and not out.allvipos and np.isnan(out.QE) and np.isnan(out.I2), method
        else:  # tau^2 estimated at 0: 1/vi is infinite for study 3, as in metafor
            assert_clear_error(out, f"vi=0 {method}", match="Division by zero")
    M = np.column_stack([X1, Z])
    for bad in (np.nan, np.inf):
        MM = M.copy()
        MM[5, 1] = bad
        if np.isnan(bad):  # a missing moderator value omits the study, as metafor's na.omit
            with pytest.warns(NAOmittedWarning, match=r"positions \[5\]"):
                status, out = guarded(lambda m=MM: rma(Y12, V12, mods=m))
            assert status == "ok" and out.k == 11
            continue
        status, out = guarded(lambda m=MM: rma(Y12, V12, mods=m))
        assert status == "error"
        assert_clear_error(out, f"mods={bad}", match="mods")
        assert "[5]" in str(out)
    for tau2 in (np.nan, np.inf, 1e60):
        status, out = guarded(lambda t=tau2: rma(Y0, V0, tau2=t))
        assert status == "error"
        assert_clear_error(out, f"tau2={tau2}", match="tau2")
    status, out = guarded(lambda: rma(Y12, V12, mods=(X1 * 1e60)[:, None]))
    assert status == "error"
    assert_clear_error(out, "mods 1e60", match="mods[0, 0]")


# ------------------------------------------------------------------------------------------------------------
# rma_batch
# ------------------------------------------------------------------------------------------------------------

BATCH_FIELDS = ("estimate", "tau2", "I2", "QE", "ci_lb", "ci_ub", "pi_lb", "pi_ub")


@pytest.mark.parametrize("case", list(intercept_only_cases()))
def test_rma_batch_on_extreme_inputs(case):
    from metaexercise.engine.batch import rma_batch

    y, v = intercept_only_cases()[case]
    with np.errstate(over="ignore"):
        scale = math.sqrt(min(max(float(np.mean(v)), float(np.var(y)) if len(y) > 1 else 0.0, 1e-300), 1e300))
    # the row twice, once among NaN padding in a wider array
    width = y.shape[0] + 3
    yi = np.full((2, width), np.nan)
    vi = np.full((2, width), np.nan)
    yi[0, : y.shape[0]], vi[0, : y.shape[0]] = y, v
    yi[1, 3:], vi[1, 3:] = y, v
    for method in kernels.BATCH_METHODS:
        for test in TESTS:
            where = f"{case} rma_batch {method}/{test}"
            status, out = guarded(lambda m=method, t=test: rma_batch(yi, vi, m, test=t))
            want_status, want = guarded(lambda m=method, t=test: rma(y, v, method=m, test=t))
            if case in OUT_OF_RANGE:
                assert status == "error", where
                assert_clear_error(out, where, match=OUT_OF_RANGE[case])
                assert "[0, " in str(out) and "range" in str(out)
                continue
            if case in DOMINATED:
                assert status == "error", where
                assert_clear_error(out, where, match=f"column {DOMINATED[case]}")
                continue
            assert status == "ok", f"{where}: {type(out).__name__}: {out}"
            if want_status == "error":  # rma stops (ConvergenceError): the row is NaN and not converged
                assert isinstance(want, ConvergenceError), where
                assert not out.converged.any() and np.isnan(out.tau2).all() and np.isnan(out.estimate).all()
                continue
            assert out.converged.all(), where
            for name in BATCH_FIELDS:
                got = getattr(out, name)
                ref = float(getattr(want, name)) if name != "estimate" else want.estimate
                np.testing.assert_allclose(got, [ref, ref], rtol=1e-8,
                                           atol=1e-10 * scale ** (2 if name == "tau2" else 1),
                                           err_msg=f"{where} {name}")


def test_rma_batch_names_bad_cells_and_treats_nan_yi_as_padding():
    from metaexercise.engine.batch import rma_batch

    yi = np.tile(Y0, (3, 1))
    vi = np.tile(V0, (3, 1))
    for arr_name, bad, match in [("yi", np.inf, r"yi\[2, 4\] = inf"), ("yi", -np.inf, r"yi\[2, 4\] = -inf"),
                                 ("vi", np.nan, r"vi\[2, 4\] = nan"), ("vi", np.inf, r"vi\[2, 4\] = inf"),
                                 ("vi", 0.0, r"vi\[2, 4\] = 0.0"), ("vi", -1.0, r"vi\[2, 4\] = -1.0"),
                                 ("yi", 1e51, r"yi\[2, 4\] = 1e\+51"), ("vi", 1e-51, r"vi\[2, 4\] = 1e-51")]:
        a, b = yi.copy(), vi.copy()
        (a if arr_name == "yi" else b)[2, 4] = bad
        status, out = guarded(lambda a=a, b=b: rma_batch(a, b))
        assert status == "error"
        assert_clear_error(out, f"{arr_name}={bad}")
        assert re.search(match, str(out)), str(out)
    a = yi.copy()
    a[1, 2] = np.nan  # padding: the study is left out, whatever vi holds
    b = vi.copy()
    b[1, 2] = np.inf
    res = rma_batch(a, b)
    assert res.k.tolist() == [8, 7, 8] and res.converged.all()


# ------------------------------------------------------------------------------------------------------------
# the batched meta-regression
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(moderator_cases()))
def test_fit_permuted_and_permutest_on_extreme_moderators(case):
    from metaexercise.engine.batch_mods import fit_permuted
    from metaexercise.engine.permutation import permutest

    y, v, M = moderator_cases()[case]
    k = y.shape[0]
    X = np.column_stack([np.ones(k), M])
    identity = np.arange(k)[None, :]
    for method in kernels.MODS_METHODS:
        for test in TESTS:
            where = f"{case} fit_permuted {method}/{test}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RedundantPredictorsWarning)
                fit_status, fit = guarded(lambda m=method, t=test: rma(y, v, mods=M, method=m, test=t))
            status, out = guarded(lambda m=method, t=test: fit_permuted(y, v, X, identity, m, t))
            if case in NOT_FULL_RANK or (fit_status == "ok" and fit.dropped):
                assert status == "error", f"{where}: X is rank deficient"
                assert_clear_error(out, where, match="X")
            else:
                assert status == "ok", f"{where}: {type(out).__name__}: {out}"
                beta, zval, qm, tau2, conv = out
                if fit_status == "error":
                    assert not conv[0] and np.isnan(tau2[0]) and np.isnan(beta).all(), where
                    continue
                assert conv[0], where
                np.testing.assert_allclose(beta[0], coef_vector(fit.beta), rtol=1e-8, atol=1e-12, err_msg=where)
                np.testing.assert_allclose(zval[0], coef_vector(fit.zval), rtol=1e-7, atol=1e-9, err_msg=where)
                np.testing.assert_allclose(tau2[0], fit.tau2, rtol=1e-8, atol=1e-12, err_msg=where)
            if fit_status == "ok" and method in ("REML", "DL") and test == "z":
                # permutest of the fitted model: refits of its (reduced) design; the observed order first
                pstatus, perm = guarded(lambda f=fit: permutest(f, iter=50, seed=1))
                assert pstatus == "ok", f"{where} permutest: {perm}"
                np.testing.assert_allclose(perm.zval, coef_vector(fit.zval), rtol=1e-7, atol=1e-9)
                assert np.isfinite(perm.pval).all() and 0 < perm.QMp <= 1


@pytest.mark.parametrize("case", list(intercept_only_cases()))
def test_fit_permuted_on_extreme_intercept_only_inputs(case):
    from metaexercise.engine.batch_mods import fit_permuted

    y, v = intercept_only_cases()[case]
    k = y.shape[0]
    for method in kernels.MODS_METHODS:
        where = f"{case} fit_permuted {method}"
        status, out = guarded(lambda m=method: fit_permuted(y, v, np.ones((k, 1)), np.arange(k)[None, :], m))
        want_status, want = guarded(lambda m=method: rma(y, v, method=m))
        if case in OUT_OF_RANGE or case in DOMINATED:
            assert status == "error", where
            assert_clear_error(out, where)
            continue
        assert status == "ok", f"{where}: {type(out).__name__}: {out}"
        beta, zval, qm, tau2, conv = out
        if want_status == "error":
            assert isinstance(want, ConvergenceError) and not conv[0] and np.isnan(tau2[0]), where
            continue
        assert conv[0], where
        scale2 = max(float(np.mean(v)), float(np.var(y)) if k > 1 else 0.0)  # in range here: no overflow
        np.testing.assert_allclose(beta[0, 0], want.estimate, rtol=1e-8, atol=1e-10 * math.sqrt(scale2),
                                   err_msg=where)
        np.testing.assert_allclose(tau2[0], want.tau2, rtol=1e-8, atol=1e-10 * scale2, err_msg=where)


def test_fit_permuted_names_bad_inputs():
    from metaexercise.engine.batch_mods import fit_permuted

    X = np.column_stack([np.ones(12), X1])
    perms = np.arange(12)[None, :]
    for label, args, match in [
        ("yi nan", (np.r_[Y12[:-1], np.nan], V12, X, perms), "yi[11]"),
        ("vi inf", (Y12, np.r_[np.inf, V12[1:]], X, perms), "vi[0]"),
        ("vi 0", (Y12, np.r_[V12[:5], 0.0, V12[6:]], X, perms), "vi[5]"),
        ("X nan", (Y12, V12, np.column_stack([np.ones(12), np.r_[X1[:3], np.nan, X1[4:]]]), perms), "X[3, 1]"),
        ("X collinear", (Y12, V12, np.column_stack([np.ones(12), X1, 2 * X1]), perms), "redundant"),
        ("perm out of range", (Y12, V12, X, np.r_[np.arange(11), 12][None, :]), "perms[0, 11]"),
    ]:
        status, out = guarded(lambda a=args: fit_permuted(*a))
        assert status == "error", label
        assert_clear_error(out, label, match=match)
