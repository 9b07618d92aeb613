"""influence, leave1out and cumul against metafor 3.8.1 (tests/reference/influence.json, make_reference.R), plus
independent cross-checks. Influence measures: relative 1e-5; leave-one-out and cumulative fits: 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
from engine_reference import CONTROL, RTOL, RTOL_INFLUENCE, check_all, fixture

from metaexercise import rma
from metaexercise.engine.diagnostics import cumul, hatvalues, influence, leave1out

INFL = fixture("influence")
DATASETS = list(INFL["datasets"])
MEASURES = ("rstudent", "dffits", "cooks_d", "cov_r", "tau2_del", "QE_del", "hat", "weight")


def _influence_pairs(inf, ref: dict, label: str) -> list:
    pairs = [(f"{label} {q}", inf[q].to_numpy(), ref[q]) for q in MEASURES]
    pairs += [(f"{label} dfbs_{c}", inf[f"dfbs_{c}"].to_numpy(), v) for c, v in ref["dfbs"].items()]
    return pairs


def _flags(inf, ref: dict, label: str) -> list[str]:
    # A study whose deletion cannot be refitted has NA diagnostics; reporter() does not flag it
    # (`abszi >= crit & !is.na(abszi)`), so metafor's NA counts as False here.
    return [f"{label} {q}: ours {inf[q].to_numpy().tolist()} vs metafor {ref[q]}"
            for q in ("inf", "outlier", "influential") if inf[q].tolist() != [bool(v) for v in ref[q]]]


@pytest.mark.parametrize("dataset", DATASETS)
def test_influence_matches_metafor(dataset):
    d = INFL["datasets"][dataset]
    yi, vi = np.array(d["yi"]), np.array(d["vi"])
    pairs, flags = [], []
    for key, ref in d["fits"].items():
        method, test = key.split("/")
        fit = rma(yi, vi, method=method, test=test, control=CONTROL)
        label = f"{dataset} {key} influence"
        inf = influence(fit)
        assert list(inf.columns[:8]) == list(MEASURES)
        pairs += _influence_pairs(inf, ref["influence"], label)
        flags += _flags(inf, ref["influence"], label)
    check_all(pairs, rtol=RTOL_INFLUENCE)
    assert not flags, "\n".join(flags)


@pytest.mark.parametrize("dataset", DATASETS)
def test_leave1out_and_cumul_match_metafor(dataset):
    d = INFL["datasets"][dataset]
    yi, vi = np.array(d["yi"]), np.array(d["vi"])
    pairs = []
    for key, ref in d["fits"].items():
        method, test = key.split("/")
        fit = rma(yi, vi, method=method, test=test, control=CONTROL)
        frames = {"leave1out": leave1out(fit), "cumul": cumul(fit),
                  "cumul_ordered": cumul(fit, order=np.array(d["cumul_order"]))}
        for kind, frame in frames.items():
            for q, values in ref[kind].items():
                pairs.append((f"{dataset} {key} {kind} {q}", frame[q].to_numpy(), values))
    check_all(pairs, rtol=RTOL)


@pytest.mark.parametrize("key", list(INFL["metareg"]))
def test_influence_with_moderators_matches_metafor(key):
    # bcg ~ ablat, ~ factor(alloc), ~ study4 (a dummy for study 4 alone: its deletion cannot be refitted, so
    # metafor and we report NA in that row), REML with z and knha.
    d = INFL["metareg"][key]
    test = key.rsplit("/", 1)[1]
    fit = rma(np.array(d["yi"]), np.array(d["vi"]), mods=np.array(d["mods"], dtype=float), test=test,
              control=CONTROL)
    inf = influence(fit)
    assert [c for c in inf.columns if c.startswith("dfbs_")] == [f"dfbs_{c}" for c in fit.coef_names]
    ref = d["influence"]
    assert len(ref["dfbs"]) == fit.p
    ref_dfbs = dict(zip(fit.coef_names, ref["dfbs"].values()))
    check_all(_influence_pairs(inf, dict(ref, dfbs=ref_dfbs), key), rtol=RTOL_INFLUENCE)
    assert not _flags(inf, ref, key)


def test_influence_with_fixed_tau2_matches_metafor():
    d = INFL["fixed_tau2"]
    fit = rma(np.array(d["yi"]), np.array(d["vi"]), tau2=d["tau2"], control=CONTROL)
    inf = influence(fit)
    assert np.all(inf["tau2_del"] == d["tau2"])
    pairs = _influence_pairs(inf, d["influence"], "bcg tau2=0.1")
    for kind, frame in (("leave1out", leave1out(fit)), ("cumul", cumul(fit))):
        pairs += [(f"bcg tau2=0.1 {kind} {q}", frame[q].to_numpy(), v) for q, v in d[kind].items()]
    check_all(pairs, rtol=RTOL_INFLUENCE)


# --- independent cross-checks ---------------------------------------------------------------------------------
def test_hat_values_by_explicit_matrix_algebra():
    # H = X (X'WX)^-1 X'W built as a k x k matrix (as metafor's hatvalues.rma.uni does); its trace is p.
    d = INFL["metareg"]["bcg~ablat/REML/z"]
    fit = rma(np.array(d["yi"]), np.array(d["vi"]), mods=np.array(d["mods"]), control=CONTROL)
    W = np.diag(1 / (fit.vi + fit.tau2))
    H = fit.X @ np.linalg.inv(fit.X.T @ W @ fit.X) @ fit.X.T @ W
    np.testing.assert_allclose(hatvalues(fit), np.diag(H), rtol=1e-12)
    assert hatvalues(fit).sum() == pytest.approx(fit.p, rel=1e-12)


def test_leave1out_rows_are_refits_without_the_study():
    d = INFL["datasets"]["bcg"]
    yi, vi = np.array(d["yi"]), np.array(d["vi"])
    l1o = leave1out(rma(yi, vi))
    for i in (0, 6, 12):
        other = rma(np.delete(yi, i), np.delete(vi, i))
        assert l1o.loc[i + 1, "estimate"] == pytest.approx(other.estimate, rel=1e-12)
        assert l1o.loc[i + 1, "tau2"] == pytest.approx(other.tau2, rel=1e-12)


def test_cumul_last_row_is_the_full_fit_and_index_names_the_added_study():
    d = INFL["datasets"]["bcg"]
    yi, vi = np.array(d["yi"]), np.array(d["vi"])
    fit = rma(yi, vi)
    cm = cumul(fit, order=vi)  # most precise study first
    assert cm["estimate"].iloc[-1] == pytest.approx(fit.estimate, rel=1e-12)
    first = int(np.argmin(vi))
    assert cm.index[0] == first + 1
    assert cm["estimate"].iloc[0] == pytest.approx(yi[first], rel=1e-12)  # one study: its own effect


def test_outlier_rule_is_bonferroni_on_rstudent():
    # reporter.rma.uni: |rstudent| >= qnorm(1 - 0.05/(2k)); with one grossly deviating study it is flagged alone.
    yi = np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.10, 2.50])
    vi = np.full(7, 0.01)
    inf = influence(rma(yi, vi))
    assert inf["outlier"].tolist() == [False] * 6 + [True]


def test_errors():
    with pytest.raises(ValueError, match="k = 1"):
        influence(rma([0.3], [0.1]))
    with pytest.raises(ValueError, match="without moderators"):
        leave1out(rma(np.arange(5.0), np.full(5, 0.1), mods=np.arange(5.0) ** 2))
    with pytest.raises(ValueError, match="one value per study"):
        cumul(rma(np.arange(5.0), np.full(5, 0.1)), order=[1, 2])
