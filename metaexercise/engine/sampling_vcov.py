"""Sampling var-cov matrices of dependent effect sizes: metafor 3.8's `vcalc`, and the Gleser–Olkin covariance of
standardized mean differences that share a control group.

`vcalc` (metafor's vcalc help, "Details"): estimates i and j in the same cluster have covariance
R_ij √(vᵢ vⱼ), where R_ij is the product of

- a construct / observation part: 1 if i and j measure the same construct (``type``) in the same sample (``obs``),
  ``rho`` for different ``obs`` of one type, and the between-construct correlation for different ``type``;
- a group / time part, for effects that contrast groups: with the groups (``grp1`` vs ``grp2``), their sizes as weights
  (``w1``, ``w2``) and the time points (``time1``, ``time2``) of the two groups, and f(g, g', t, t') = [g = g'] ·
  φ^|t − t'| (the autocorrelation of measurements φ),

      [f(g1ᵢ,g1ⱼ,t1ᵢ,t1ⱼ)/√(w1ᵢw1ⱼ) − f(g1ᵢ,g2ⱼ,t1ᵢ,t2ⱼ)/√(w1ᵢw2ⱼ) − f(g2ᵢ,g1ⱼ,t2ᵢ,t1ⱼ)/√(w2ᵢw1ⱼ)
       + f(g2ᵢ,g2ⱼ,t2ᵢ,t2ⱼ)/√(w2ᵢw2ⱼ)]  /  (sᵢ sⱼ),   sᵢ² = 1/w1ᵢ + 1/w2ᵢ − 2 f(g1ᵢ,g2ᵢ,t1ᵢ,t2ᵢ)/√(w1ᵢw2ᵢ),

  i.e. the correlation of two differences between group means (two treatments against one shared control arm:
  √(1/w2ᵢ · 1/w2ⱼ)/(sᵢsⱼ), the classic n-weighted correlation of contrasts sharing a control; Gleser & Olkin 2009).

Without ``grp1``/``grp2``/``time1`` the group part is 1, so effects of one cluster are correlated by ``rho`` alone.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from scipy import sparse as sp

from metaexercise.engine.mv_terms import column, make_factor, r_label


class VcalcWarning(UserWarning):
    """A cluster's var-cov matrix is not positive definite (metafor's vcalc warns the same)."""


def _arg(name: str, x, data, k: int | None, *, numeric: bool = False, required: bool = False):
    if x is None:
        if required:
            raise TypeError(f"vcalc: '{name}' must be given")
        return None
    if isinstance(x, str) and data is not None:
        x = column(data, x, fn="vcalc", keep_series=True)
    if numeric:
        a = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=float)
        a = np.atleast_1d(a)
        if a.ndim != 1:
            raise ValueError(f"vcalc: '{name}' must be one-dimensional, got shape {a.shape}")
        if k is not None and len(a) == 1 and name == "vi":
            a = np.full(k, a[0])
        if k is not None and len(a) != k:
            raise ValueError(f"vcalc: '{name}' has {len(a)} values, but 'vi' has {k}")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"vcalc: '{name}' is missing or non-finite at positions {bad.tolist()} (0-based)")
        return a
    if k is not None and len(x) != k:
        raise ValueError(f"vcalc: '{name}' has {len(x)} values, but 'vi' has {k}")
    return x


def _codes(name: str, x, k: int) -> tuple[np.ndarray, tuple[str, ...]]:
    f = make_factor(name, x, fn="vcalc")
    return f.codes, f.levels


def _rho_matrix(name: str, value, levels: tuple[str, ...]) -> np.ndarray:
    """A correlation matrix over ``levels``: a scalar (off-diagonal value) or a pandas DataFrame / dict-of-dicts
    labelled by the levels, as metafor's matrices with dimension names."""
    n = len(levels)
    if np.ndim(value) == 0 and not isinstance(value, dict) and not hasattr(value, "loc"):
        r = float(value)
        if not -1 <= r <= 1:
            raise ValueError(f"vcalc: {name} = {r!r} must be in [-1, 1]")
        R = np.full((n, n), r)
        np.fill_diagonal(R, 1.0)
        return R
    pd = sys.modules.get("pandas")
    if isinstance(value, dict) and pd is not None:
        value = pd.DataFrame(value)
    if pd is None or not isinstance(value, pd.DataFrame):
        raise TypeError(f"vcalc: {name} must be a number or a pandas DataFrame labelled by the levels (metafor: "
                        "'Any matrices specified via rho argument must have dimension names.')")
    idx = {str(c): c for c in value.index}
    cols = {str(c): c for c in value.columns}
    missing = [lv for lv in levels if lv not in idx or lv not in cols]
    if missing:
        raise ValueError(f"vcalc: {name} has no row/column for the level(s) {missing}")
    R = np.array([[float(value.loc[idx[a], cols[b]]) for b in levels] for a in levels])
    if np.any(np.abs(R) > 1):
        raise ValueError(f"vcalc: all correlations in {name} must be in [-1, 1]")
    return R


def vcalc(vi, cluster, obs=None, type=None, time1=None, time2=None, grp1=None, grp2=None, w1=None,  # noqa: A002
          w2=None, *, rho=None, phi=None, data=None, subgroup=None, checkpd: bool = True, sparse: bool = False):
    """The var-cov matrix of dependent estimates (metafor 3.8 ``vcalc``; the ``rvars`` and ``nearpd`` options are not
    provided).

    Arguments are arrays or column names of ``data``. ``cluster``: estimates in different clusters are independent.
    ``obs`` (with scalar ``rho``): different observations / samples-of-one-construct correlate by ``rho``; ``type``
    (with ``rho``): different constructs correlate by ``rho``; with both, ``rho`` is a pair (within-construct,
    between-construct). A ``rho`` may also be a pandas DataFrame labelled by the ``obs``/``type`` levels.
    ``time1`` (and ``time2`` for the second group), with ``phi``: measurements at different time points correlate by
    φ^abs(Δt). ``grp1``, ``grp2`` (group labels of the two groups an effect contrasts) and ``w1``, ``w2`` (their sizes):
    effects sharing a group (e.g. a control arm) correlate as in the module docstring. ``subgroup``: splits clusters.
    ``checkpd``: warn about clusters whose matrix is not positive definite. Returns a dense k × k array, or a
    scipy.sparse CSR matrix with ``sparse=True``.
    """
    v = _arg("vi", vi, data, None, numeric=True, required=True)
    k = len(v)
    if k == 1:
        raise ValueError("vcalc: processing terminated since k = 1")
    v = _arg("vi", v, data, k, numeric=True)
    if np.any(v < 0):
        raise ValueError(f"vcalc: vi must not be negative (positions {np.flatnonzero(v < 0).tolist()}, 0-based)")
    cl = _arg("cluster", cluster, data, k, required=True)
    cl_codes, cl_levels = _codes("cluster", cl, k)
    names = [cl_levels[c] for c in cl_codes]
    if subgroup is not None:
        sg_codes, sg_levels = _codes("subgroup", _arg("subgroup", subgroup, data, k), k)
        names = [f"{a}.{sg_levels[b]}" for a, b in zip(names, sg_codes, strict=True)]
        _, cl_codes = np.unique(cl_codes * (int(sg_codes.max()) + 1) + sg_codes, return_inverse=True)
        cl_codes = cl_codes.reshape(-1)
    if (grp2 is not None) and grp1 is None:
        raise ValueError("vcalc: either give only 'grp1', both 'grp1' and 'grp2', or neither")
    if time2 is not None and time1 is None:
        raise ValueError("vcalc: either give only 'time1', both 'time1' and 'time2', or neither")
    if time2 is not None and grp2 is None:
        raise ValueError("vcalc: 'grp2' must be given when 'time2' is")
    if w2 is not None and w1 is None:
        raise ValueError("vcalc: either give only 'w1', both 'w1' and 'w2', or neither")
    if w2 is not None and grp2 is None:
        raise ValueError("vcalc: 'grp2' must be given when 'w2' is")

    # construct / observation part
    if (type is not None or obs is not None) and rho is None:
        raise ValueError("vcalc: 'rho' must be given when 'type' or 'obs' is")
    obs_codes, obs_levels = _codes("obs", _arg("obs", obs, data, k), k) if obs is not None else (np.zeros(k, int),
                                                                                                ("1",))
    type_codes, type_levels = _codes("type", _arg("type", type, data, k), k) if type is not None else (
        np.zeros(k, int), ("1",))
    if type is not None and obs is not None:
        pair = list(rho) if isinstance(rho, list | tuple) or (np.ndim(rho) == 1 and not hasattr(rho, "loc")) else None
        if pair is None or len(pair) != 2:
            raise ValueError("vcalc: when 'type' and 'obs' are both given, 'rho' must give the within- and the "
                             "between-construct correlation (two values)")
        rho_obs, rho_type = pair
    elif obs is not None:
        rho_obs, rho_type = rho, 0.0
    elif type is not None:
        rho_obs, rho_type = 0.0, rho
    else:
        rho_obs = rho_type = 0.0
    R_obs = _rho_matrix("rho", rho_obs, obs_levels)
    R_type = _rho_matrix("rho", rho_type, type_levels)

    # group / time part (defaults: two distinct groups of equal weight at one time point, which makes it 1)
    if time1 is not None or time2 is not None:
        if phi is None:
            raise ValueError("vcalc: 'phi' must be given when 'time1' and/or 'time2' is")
    else:
        phi = 1.0
    phi = float(phi)
    if abs(phi) > 1:
        raise ValueError(f"vcalc: phi = {phi!r} must be in [-1, 1]")
    if grp1 is not None:
        g1 = _arg("grp1", grp1, data, k)
        g2 = _arg("grp2", grp2, data, k) if grp2 is not None else np.full(k, "__vcalc_grp2__", dtype=object)
        # metafor compares grp1 and grp2 values as R's == does, i.e. as text when one of them is text
        labels = [r_label(x) for x in np.concatenate([_objects(g1), _objects(g2)])]
        _, both = np.unique(labels, return_inverse=True)
        g1c, g2c = both[:k], both[k:]
    else:
        g1c, g2c = np.zeros(k, int), np.ones(k, int)
    t1 = _arg("time1", time1, data, k, numeric=True) if time1 is not None else np.ones(k)
    t2 = _arg("time2", time2, data, k, numeric=True) if time2 is not None else t1
    a1 = _arg("w1", w1, data, k, numeric=True) if w1 is not None else np.ones(k)
    a2 = _arg("w2", w2, data, k, numeric=True) if w2 is not None else a1
    if np.any(a1 <= 0) or np.any(a2 <= 0):
        raise ValueError("vcalc: the weights w1 and w2 must be positive")

    # every within-cluster pair (i, j), the diagonal included
    order = np.argsort(cl_codes, kind="stable")
    sizes = np.bincount(cl_codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_of = sizes[cl_codes[order]]
    ii = np.repeat(order, n_of)
    offs = np.arange(len(ii)) - np.repeat(np.cumsum(n_of) - n_of, n_of)
    jj = order[np.repeat(starts[cl_codes[order]], n_of) + offs]

    def f(ga, gb, ta, tb):
        return (ga == gb) * np.where(ta == tb, 1.0, phi ** np.abs(ta - tb))

    num = (f(g1c[ii], g1c[jj], t1[ii], t1[jj]) / np.sqrt(a1[ii] * a1[jj])
           - f(g1c[ii], g2c[jj], t1[ii], t2[jj]) / np.sqrt(a1[ii] * a2[jj])
           - f(g2c[ii], g1c[jj], t2[ii], t1[jj]) / np.sqrt(a2[ii] * a1[jj])
           + f(g2c[ii], g2c[jj], t2[ii], t2[jj]) / np.sqrt(a2[ii] * a2[jj]))
    sd = np.sqrt(1 / a1 + 1 / a2 - 2 * f(g1c, g2c, t1, t2) / np.sqrt(a1 * a2))
    with np.errstate(invalid="ignore", divide="ignore"):
        grp_part = num / (sd[ii] * sd[jj])
    same_type = type_codes[ii] == type_codes[jj]
    same_obs = obs_codes[ii] == obs_codes[jj]
    construct = np.where(same_type, np.where(same_obs, 1.0, R_obs[obs_codes[ii], obs_codes[jj]]),
                         R_type[type_codes[ii], type_codes[jj]])
    r = construct * grp_part
    r[ii == jj] = 1.0  # metafor: diag(R) <- 1 (its loop recomputes it as 1 for every proper layout)
    cov = r * np.sqrt(v[ii] * v[jj])
    V = sp.csr_array((cov, (ii, jj)), shape=(k, k))
    if checkpd:
        for c in _not_pd(cl_codes, sizes, r, ii, jj):
            first = int(np.flatnonzero(cl_codes == c)[0])
            warnings.warn(f"vcalc: the var-cov matrix appears to be not positive definite in cluster {names[first]}.",
                          VcalcWarning, stacklevel=2)
    return V if sparse else V.toarray()


def _objects(x) -> np.ndarray:
    return np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=object)


def _not_pd(cl_codes, sizes, r, ii, jj) -> list[int]:
    """metafor's checkpd: the clusters whose correlation matrix has an eigenvalue <= machine epsilon (blocks of equal
    size stacked, one batched eigvalsh per size)."""
    order = np.argsort(cl_codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.empty(len(cl_codes), dtype=np.intp)
    local[order] = np.arange(len(cl_codes)) - np.repeat(starts, sizes)
    bad: list[int] = []
    for s in np.unique(sizes):
        if s == 1:
            continue
        cls = np.flatnonzero(sizes == s)
        slot = np.full(len(sizes), -1)
        slot[cls] = np.arange(len(cls))
        sel = slot[cl_codes[ii]] >= 0
        stack = np.zeros((len(cls), s, s))
        stack[slot[cl_codes[ii[sel]]], local[ii[sel]], local[jj[sel]]] = r[sel]
        ev = np.linalg.eigvalsh(stack)[:, 0]
        bad.extend(int(c) for c, e in zip(cls, ev, strict=True) if not e > np.finfo(float).eps)
    return sorted(bad)


def gleser_olkin_smd_cov(yi, n1i, n2i, cluster, *, vi=None, ni=None, data=None, sparse: bool = False):
    """Var-cov matrix of standardized mean differences of several treatment groups against one control group
    (Gleser & Olkin 2009, "Stochastically dependent effect sizes", ch. 19 of Cooper, Hedges & Valentine (eds.), The
    Handbook of Research Synthesis and Meta-Analysis, 2nd ed., Russell Sage; the multiple-treatment SMD example,
    pp. 364-367 — the formula metafor's gleser2009 analysis example uses):

        Var(dᵢ) = 1/n_Tᵢ + 1/n_C + dᵢ²/(2N),     Cov(dᵢ, dⱼ) = 1/n_C + dᵢ dⱼ/(2N)

    for treatments i ≠ j of one study, n_C its control group's size and N the study's total sample size (every
    treatment group plus the control; the SDs are pooled over all groups). ``yi``: the SMDs; ``n1i``: treatment group
    sizes; ``n2i``: the control group's size (the same on every row of a study); ``cluster``: the study. ``vi``: the
    variances to put on the diagonal instead of the formula's (e.g. escalc's); ``ni``: N per row instead of
    n_C + Σ n_T over the study's rows. Estimates of different studies are independent.
    """
    d = _arg("yi", yi, data, None, numeric=True, required=True)
    k = len(d)
    n1 = _arg("n1i", n1i, data, k, numeric=True, required=True)
    n2 = _arg("n2i", n2i, data, k, numeric=True, required=True)
    if np.any(n1 <= 0) or np.any(n2 <= 0):
        raise ValueError("gleser_olkin_smd_cov: group sizes must be positive")
    codes, levels = _codes("cluster", _arg("cluster", cluster, data, k, required=True), k)
    nc_min = np.full(len(levels), np.inf)
    nc_max = np.full(len(levels), -np.inf)
    np.minimum.at(nc_min, codes, n2)
    np.maximum.at(nc_max, codes, n2)
    differ = np.flatnonzero(nc_min != nc_max)
    if differ.size:
        raise ValueError(f"gleser_olkin_smd_cov: the control group size n2i differs within study {levels[differ[0]]!r}: "
                         "the effects of one study must share one control group")
    if ni is None:
        N = (np.bincount(codes, weights=n1) + nc_min)[codes]
    else:
        N = _arg("ni", ni, data, k, numeric=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_of = sizes[codes[order]]
    ii = np.repeat(order, n_of)
    offs = np.arange(len(ii)) - np.repeat(np.cumsum(n_of) - n_of, n_of)
    jj = order[np.repeat(starts[codes[order]], n_of) + offs]
    cov = 1 / n2[ii] + d[ii] * d[jj] / (2 * N[ii])
    diag = ii == jj
    var = 1 / n1 + 1 / n2 + d**2 / (2 * N) if vi is None else _arg("vi", vi, data, k, numeric=True)
    cov[diag] = var[ii[diag]]
    V = sp.csr_array((cov, (ii, jj)), shape=(k, k))
    return V if sparse else V.toarray()


__all__ = ["vcalc", "gleser_olkin_smd_cov", "VcalcWarning"]
