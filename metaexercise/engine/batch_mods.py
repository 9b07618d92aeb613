"""Many meta-regressions that share `yi` and `vi` and differ in the order of the rows of `X`: the fits
that a permutation test of moderators needs (metafor's `permutest.rma.uni`, which refits `rma.uni` with
`mods = X[perm, ]` for every permutation).

`fit_permuted(yi, vi, X, perms, method, test)` fits `rma(yi, vi, mods=X[perm])` (X holding the intercept
column) for every row `perm` of `perms`, in one fused numba loop run in parallel over permutations. The
tau^2 estimators follow metafor 3.8's `rma.uni` with a general design matrix (Viechtbauer 2005, J Educ Behav
Stat 30:261; Raudenbush 2009 for DL; Paule & Mandel 1982 for PM):

* REML/ML: Fisher scoring, adj = (Y'PPY - tr P) / tr(PP) (REML) or (Y'PPY - sum w) / sum(w^2) (ML), from
  the Hedges-type start (RSS - tr(PV)) / (k - p), with step-halving, threshold and `ll0check` as metafor.
* DL: (Y'PY - (k - p)) / tr(P) with w = 1/vi, truncated at 0.  PM: root of Q(tau^2) = k - p.  EE: tau^2 = 0.

Per fit it returns beta, the Wald statistics zval = beta/se (t-values under test="knha") and the omnibus
QM for all coefficients except the intercept (for an intercept-only X, for the intercept), QM divided by
their number under "knha", as metafor.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from metaexercise.engine.batch import _CACHE, _RMA_CONTROL, _pm_root_step

MOD_METHOD_CODES: dict[str, int] = {"REML": 0, "ML": 1, "DL": 2, "PM": 3, "EE": 4}


@njit(cache=_CACHE, nogil=True)
def _chol_inv(M, p, out):
    """Inverse of the symmetric positive-definite p x p matrix M (Cholesky). Returns (ok, log det M);
    ok is False if M is not positive definite."""
    L = np.zeros((p, p))
    logdet = 0.0
    for j in range(p):
        s = M[j, j]
        for m in range(j):
            s -= L[j, m] * L[j, m]
        if not s > 0.0:
            return False, 0.0
        L[j, j] = math.sqrt(s)
        logdet += 2.0 * math.log(L[j, j])
        for i in range(j + 1, p):
            s = M[i, j]
            for m in range(j):
                s -= L[i, m] * L[j, m]
            L[i, j] = s / L[j, j]
    Linv = np.zeros((p, p))
    for i in range(p):
        Linv[i, i] = 1.0 / L[i, i]
        for j in range(i):
            s = 0.0
            for m in range(j, i):
                s -= L[i, m] * Linv[m, j]
            Linv[i, j] = s / L[i, i]
    for i in range(p):
        for j in range(i + 1):
            s = 0.0
            for m in range(i, p):
                s += Linv[m, i] * Linv[m, j]
            out[i, j] = s
            out[j, i] = s
    return True, logdet


@njit(cache=_CACHE, nogil=True)
def _wls(y, w, X, k, p, A, b, r):
    """Weighted least squares: A = (X'WX)^-1, b = A X'Wy, r = y - Xb. Returns (ok, log det X'WX)."""
    M = np.zeros((p, p))
    xwy = np.zeros(p)
    for i in range(k):
        for a in range(p):
            xa = X[i, a] * w[i]
            xwy[a] += xa * y[i]
            for c in range(a + 1):
                M[a, c] += xa * X[i, c]
    for a in range(p):
        for c in range(a):
            M[c, a] = M[a, c]
    ok, logdet = _chol_inv(M, p, A)
    if not ok:
        return False, 0.0
    for a in range(p):
        s = 0.0
        for c in range(p):
            s += A[a, c] * xwy[c]
        b[a] = s
    for i in range(k):
        s = y[i]
        for a in range(p):
            s -= X[i, a] * b[a]
        r[i] = s
    return True, logdet


@njit(cache=_CACHE, nogil=True)
def _xtdx(X, d, k, p, out):
    """out = X' diag(d) X."""
    for a in range(p):
        for c in range(p):
            out[a, c] = 0.0
    for i in range(k):
        for a in range(p):
            xa = X[i, a] * d[i]
            for c in range(p):
                out[a, c] += xa * X[i, c]


@njit(cache=_CACHE, nogil=True)
def _tr_prod(A, B, p):
    """tr(A B)."""
    s = 0.0
    for a in range(p):
        for c in range(p):
            s += A[a, c] * B[c, a]
    return s


@njit(cache=_CACHE, nogil=True)
def _ll(y, v, X, k, p, tau2, reml, w, A, b, r):
    """ML or REML log-likelihood at tau2 without the 2 pi constant (metafor's ll0check)."""
    for i in range(k):
        w[i] = 1.0 / (v[i] + tau2)
    ok, logdet = _wls(y, w, X, k, p, A, b, r)
    s = 0.0
    for i in range(k):
        s += math.log(v[i] + tau2) + w[i] * r[i] * r[i]
    ll = -0.5 * s
    if reml:
        ll -= 0.5 * logdet
    return ll


@njit(cache=_CACHE, nogil=True)
def _q_gen(y, v, X, k, p, tau2, w, A, b, r):
    for i in range(k):
        w[i] = 1.0 / (v[i] + tau2)
    _wls(y, w, X, k, p, A, b, r)
    q = 0.0
    dq = 0.0
    for i in range(k):
        wr2 = w[i] * r[i] * r[i]
        q += wr2
        dq -= w[i] * wr2
    return q, dq


@njit(cache=_CACHE, nogil=True)
def _tau2_mods(y, v, X, k, p, method, threshold, maxiter, tau2_max, w, A, b, r, B1, B2):
    """tau^2 for one meta-regression as metafor 3.8; returns (tau2, converged)."""
    if method == 4:
        return 0.0, True
    if method == 2:
        for i in range(k):
            w[i] = 1.0 / v[i]
        _wls(y, w, X, k, p, A, b, r)
        rss = 0.0
        for i in range(k):
            rss += w[i] * r[i] * r[i]
        d = np.empty(k)
        for i in range(k):
            d[i] = w[i] * w[i]
        _xtdx(X, d, k, p, B1)
        sw = 0.0
        for i in range(k):
            sw += w[i]
        trp = sw - _tr_prod(A, B1, p)
        t = (rss - (k - p)) / trp
        return (t if t > 0.0 else 0.0), True
    if method == 3:
        target = k - p
        q, dq = _q_gen(y, v, X, k, p, 0.0, w, A, b, r)
        if q < target:
            return 0.0, True
        hi = tau2_max
        if hi < 0.0:
            hi = 100.0
            qh, dqh = _q_gen(y, v, X, k, p, hi, w, A, b, r)
            if qh > target:
                med = np.median(y[:k])
                mad = 1.4826 * np.median(np.abs(y[:k] - med))
                hi = max(100.0, 10.0 * mad * mad)
        qh, dqh = _q_gen(y, v, X, k, p, hi, w, A, b, r)
        if qh > target:
            return hi, False
        lo = 0.0
        x = 0.0
        for _ in range(20 * maxiter):
            f = q - target
            if f == 0.0:
                return x, True
            xn, lo, hi, done = _pm_root_step(x, f, dq, lo, hi)
            if done:
                return xn, True
            x = xn
            q, dq = _q_gen(y, v, X, k, p, x, w, A, b, r)
        return x, False
    # REML (0) / ML (1): start at the Hedges-type estimate with unit weights.
    reml = method == 0
    for i in range(k):
        w[i] = 1.0
    _wls(y, w, X, k, p, A, b, r)
    rss = 0.0
    for i in range(k):
        rss += r[i] * r[i]
    _xtdx(X, v, k, p, B1)
    sv = 0.0
    for i in range(k):
        sv += v[i]
    trpv = sv - _tr_prod(A, B1, p)
    tau2 = (rss - trpv) / (k - p)
    if not tau2 > 0.0:
        tau2 = 0.0
    d2 = np.empty(k)
    d3 = np.empty(k)
    change = threshold + 1.0
    it = 0
    while change > threshold:
        it += 1
        for i in range(k):
            w[i] = 1.0 / (v[i] + tau2)
        _wls(y, w, X, k, p, A, b, r)
        ypp = 0.0
        sw = 0.0
        sw2 = 0.0
        for i in range(k):
            a = w[i] * r[i]
            ypp += a * a
            sw += w[i]
            d2[i] = w[i] * w[i]
            d3[i] = d2[i] * w[i]
            sw2 += d2[i]
        if reml:
            _xtdx(X, d2, k, p, B1)  # X'W^2X
            _xtdx(X, d3, k, p, B2)  # X'W^3X
            t1 = _tr_prod(A, B1, p)
            t2 = _tr_prod(A, B2, p)
            # tr((A X'W^2X)^2)
            C = np.zeros((p, p))
            for a in range(p):
                for c in range(p):
                    for m in range(p):
                        C[a, c] += A[a, m] * B1[m, c]
            t3 = _tr_prod(C, C, p)
            tr_p = sw - t1
            tr_pp = sw2 - 2.0 * t2 + t3
            adj = (ypp - tr_p) / tr_pp
        else:
            adj = (ypp - sw) / sw2
        if math.isnan(adj):
            adj = 0.0
        while tau2 + adj < 0.0:
            adj /= 2.0
        old = tau2
        tau2 = tau2 + adj
        change = abs(old - tau2)
        if it > maxiter:
            return tau2, False
    if tau2 > threshold:
        ll0 = _ll(y, v, X, k, p, 0.0, reml, w, A, b, r)
        ll1 = _ll(y, v, X, k, p, tau2, reml, w, A, b, r)
        if ll0 - ll1 > 1.220703125e-04:
            tau2 = 0.0
    return tau2, True


@njit(cache=_CACHE, nogil=True)
def _fit_mods_one(y, v, X, k, p, method, knha, threshold, maxiter, tau2_max, beta, zval):
    """Fit one meta-regression; fill beta and zval (length p); return (QM, tau2, converged)."""
    w = np.empty(k)
    r = np.empty(k)
    A = np.empty((p, p))
    B1 = np.empty((p, p))
    B2 = np.empty((p, p))
    tau2, conv = _tau2_mods(y, v, X, k, p, method, threshold, maxiter, tau2_max, w, A, beta, r, B1, B2)
    for i in range(k):
        w[i] = 1.0 / (v[i] + tau2)
    _wls(y, w, X, k, p, A, beta, r)
    s2w = 1.0
    if knha:
        rss = 0.0
        for i in range(k):
            rss += w[i] * r[i] * r[i]
        s2w = 0.0 if rss <= 2.220446049250313e-16 else rss / (k - p)
    for a in range(p):
        zval[a] = beta[a] / math.sqrt(s2w * A[a, a])
    # QM over btt: all coefficients but the intercept (column 0), or the intercept when p == 1.
    j0 = 1 if p > 1 else 0
    m = p - j0
    S = np.empty((m, m))
    for a in range(m):
        for c in range(m):
            S[a, c] = s2w * A[a + j0, c + j0]
    Si = np.empty((m, m))
    ok, logdet = _chol_inv(S, m, Si)
    if not ok:
        return np.nan, tau2, conv
    qm = 0.0
    for a in range(m):
        for c in range(m):
            qm += beta[a + j0] * Si[a, c] * beta[c + j0]
    if knha:
        qm /= m
    return qm, tau2, conv


@njit(cache=_CACHE, parallel=True)
def _fit_permuted(y, v, X, perms, method, knha, threshold, maxiter, tau2_max, beta, zval, qm, tau2, conv):
    n, k = perms.shape
    p = X.shape[1]
    for j in prange(n):
        Xp = np.empty((k, p))
        for i in range(k):
            for a in range(p):
                Xp[i, a] = X[perms[j, i], a]
        q, t, c = _fit_mods_one(y, v, Xp, k, p, method, knha, threshold, maxiter, tau2_max, beta[j], zval[j])
        qm[j] = q
        tau2[j] = t
        conv[j] = c


def fit_permuted(yi, vi, X, perms, method: str = "REML", test: str = "z", *,
                 threshold: float = _RMA_CONTROL.threshold, maxiter: int = _RMA_CONTROL.maxiter,
                 tau2_max: float | None = None):
    """Fit `rma(yi, vi, mods=X[perm], intercept=False)` for each row of `perms` (row indices into X).

    Returns (beta, zval, QM, tau2, converged): beta and zval are (n_perm, p), the others length n_perm.
    `threshold`/`maxiter` default to `rma`'s Control. Non-converged fits have converged False (metafor's permutest skips them: `try(...)`, `next`).
    """
    if method not in MOD_METHOD_CODES:
        raise ValueError(f"fit_permuted: method={method!r} is not one of {sorted(MOD_METHOD_CODES)}")
    if test not in ("z", "knha"):
        raise ValueError(f"fit_permuted: test={test!r} is not one of ['z', 'knha']")
    y = np.ascontiguousarray(yi, dtype=np.float64)
    v = np.ascontiguousarray(vi, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    n = perms.shape[0]
    p = X.shape[1]
    beta = np.empty((n, p))
    zval = np.empty((n, p))
    qm = np.empty(n)
    tau2 = np.empty(n)
    conv = np.empty(n, dtype=np.bool_)
    _fit_permuted(y, v, X, perms, MOD_METHOD_CODES[method], test == "knha", float(threshold), int(maxiter),
                  -1.0 if tau2_max is None else float(tau2_max), beta, zval, qm, tau2, conv)
    return beta, zval, qm, tau2, conv
