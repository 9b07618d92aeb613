"""`vcalc` against metafor 3.8's `vcalc`, and the Gleser–Olkin common-control covariance of SMDs against the V of
Gleser & Olkin's (2009) worked example.

Reference: tests/reference/mv.json (``vcalc`` entries and the ``gleser2009`` data set), written by
tests/reference/make_mv_reference.R: dat.assink2016 (``obs``; ``type`` + ``obs``), dat.berkey1998 (``type``), and two
seeded synthetic layouts (labelled so in the fixture): multi-arm trials sharing a control arm (``grp1``, ``grp2``,
``w1``, ``w2``) and effects at 3, 6 and 12 months (``time1`` with ``phi``, with and without ``type``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from engine_reference import check_all, fixture

from metaexercise.engine.mv import rma_mv
from metaexercise.engine.sampling_vcov import VcalcWarning, gleser_olkin_smd_cov, vcalc

MV = fixture("mv")

CALLS = {
    "assink_obs": lambda df: vcalc("vi", "study", obs="esid", data=df, rho=0.6),
    "berkey_type": lambda df: vcalc("vi", "trial", type="outcome", data=df, rho=0.4),
    "assink_type_obs": lambda df: vcalc("vi", "study", type="deltype", obs="esid", data=df, rho=(0.7, 0.4)),
    "multiarm": lambda df: vcalc("vi", "trial", grp1="arm", grp2="ctrl", w1="n_t", w2="n_c", data=df),
    "multiarm_nw": lambda df: vcalc("vi", "trial", grp1="arm", grp2="ctrl", data=df),
    "times_phi": lambda df: vcalc("vi", "study", time1="time", phi=0.9, data=df),
    "times_type_phi": lambda df: vcalc("vi", "study", type="outcome", time1="time", rho=0.5, phi=0.8, data=df),
}


def _frame(name: str) -> pd.DataFrame:
    return pd.DataFrame(MV["data"][name]["columns"])


def test_every_fixture_case_is_exercised():
    assert set(CALLS) == set(MV["vcalc"])


@pytest.mark.parametrize("name", list(CALLS))
def test_vcalc_matches_metafor(name):
    case = MV["vcalc"][name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VcalcWarning)
        V = CALLS[name](_frame(case["data"]))
    check_all([(f"{name}: {case['call']}", V, case["V"])], rtol=1e-12)


def test_vcalc_warns_where_metafor_does():
    # study 3 of the time-point layout has two outcomes at the same three months and no 'type': metafor warns
    # "The var-cov matrix appears to be not positive definite in cluster 3."
    with pytest.warns(VcalcWarning, match="cluster 3"):
        CALLS["times_phi"](_frame("timepoints"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", VcalcWarning)
        CALLS["times_type_phi"](_frame("timepoints"))


def test_vcalc_sparse_output_is_the_dense_matrix():
    df = _frame("assink2016")
    S = vcalc("vi", "study", obs="esid", data=df, rho=0.6, sparse=True)
    assert S.nnz == sum(n * n for n in df.groupby("study").size())
    np.testing.assert_array_equal(S.toarray(), vcalc("vi", "study", obs="esid", data=df, rho=0.6))


def test_vcalc_rho_as_labelled_matrix_equals_scalar():
    df = _frame("berkey1998")
    R = pd.DataFrame([[1, 0.4], [0.4, 1]], index=["AL", "PD"], columns=["AL", "PD"])
    np.testing.assert_array_equal(vcalc("vi", "trial", type="outcome", data=df, rho=R),
                                  vcalc("vi", "trial", type="outcome", data=df, rho=0.4))


def test_vcalc_common_control_correlation_formula():
    """Two arms against one control: r = √(1/n_c) √(1/n_c) / √((1/n₁ + 1/n_c)(1/n₂ + 1/n_c))."""
    V = vcalc([1.0, 1.0], [1, 1], grp1=["a", "b"], grp2=["c", "c"], w1=[20, 30], w2=[25, 25])
    expected = (1 / 25) / np.sqrt((1 / 20 + 1 / 25) * (1 / 30 + 1 / 25))
    assert V[0, 1] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("kwargs, match", [
    (dict(obs=[1, 2, 3]), "'rho' must be given"),
    (dict(time1=[1, 2, 3]), "'phi' must be given"),
    (dict(grp2=[1, 2, 3]), "only 'grp1'"),
    (dict(obs=[1, 2, 3], rho=1.5), r"must be in \[-1, 1\]"),
    (dict(time1=[1, 2, 3], phi=2.0), r"must be in \[-1, 1\]"),
    (dict(type=[1, 2, 2], obs=[1, 1, 2], rho=0.5), "two values"),
])
def test_vcalc_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vcalc([0.1, 0.2, 0.3], [1, 1, 1], **kwargs)


def test_vcalc_refuses_mismatched_lengths_and_missing_values():
    with pytest.raises(ValueError, match="'cluster' has 2 values"):
        vcalc([0.1, 0.2, 0.3], [1, 1])
    with pytest.raises(ValueError, match="'vi' is missing or non-finite at positions \\[1\\]"):
        vcalc([0.1, np.nan, 0.3], [1, 1, 2])


def test_gleser_olkin_matches_the_chapter_example():
    """V of Gleser & Olkin's multiple-treatment SMD example (as metafor's tests build it), and the GLS fit on it:
    metafor's rma.mv (and the chapter, p. 367: 2.3743, 1.5702; var-cov 0.02257, 0.01244, 0.03554)."""
    data = MV["data"]["gleser2009"]
    df = _frame("gleser2009")
    V = gleser_olkin_smd_cov("yi", "n1i", "n2i", "study", data=df)
    check_all([("V", V, data["V"])], rtol=1e-13)
    # N defaults to the study's total (control + every treatment arm), as the data's Ni
    np.testing.assert_allclose(gleser_olkin_smd_cov("yi", "n1i", "n2i", "study", ni="Ni", data=df), V, rtol=1e-15)
    fit = rma_mv("yi", gleser_olkin_smd_cov("yi", "n1i", "n2i", "study", data=df, sparse=True),
                 mods="~ 0 + factor(trt)", data=df)
    ref = MV["fits"]["gleser_smd"]["fit"]
    check_all([("beta", fit.beta, ref["beta"]), ("vb", fit.vb, ref["vb"]), ("QE", fit.QE, ref["QE"])])
    np.testing.assert_allclose(fit.beta, [2.3743, 1.5702], atol=5e-5)


def test_gleser_olkin_uses_given_variances_on_the_diagonal():
    V = gleser_olkin_smd_cov([0.5, 0.3], [20, 30], [25, 25], [1, 1], vi=[0.11, 0.09])
    assert V[0, 0] == 0.11 and V[1, 1] == 0.09
    assert V[0, 1] == pytest.approx(1 / 25 + 0.5 * 0.3 / (2 * 75), rel=1e-15)


def test_gleser_olkin_refuses_two_control_sizes_in_one_study():
    with pytest.raises(ValueError, match="differs within study"):
        gleser_olkin_smd_cov([0.5, 0.3], [20, 30], [25, 26], [1, 1])
