"""Many meta-regressions that share `yi` and `vi` and differ in the order of the rows of `X`: the fits
that a permutation test of moderators needs (metafor's `permutest.rma.uni`, which refits `rma.uni` with
`mods = X[perm, ]` for every permutation).

`fit_permuted(yi, vi, X, perms, method, test)` fits `rma(yi, vi, mods=X[perm])` (X holding the intercept
column) for every row `perm` of `perms`, in one fused numba loop run in parallel over permutations. The
tau^2 estimators follow metafor 3.8's `rma.uni` with a general design matrix (Viechtbauer 2005, J Educ Behav
Stat 30:261; Raudenbush 2009 for DL; Paule & Mandel 1982 for PM):

* REML/ML: Fisher scoring, adj = (Y'PPY - tr P) / tr(PP) (REML) or (Y'PPY - sum w) / sum(w^2) (ML), from
  the Hedges-type start (RSS - tr(PV)) / (k - p), with step-halving, threshold and `ll0check` as metafor;
  an intercept-only X gets `rma`'s Newton finish and, where Fisher scoring oscillates, the safeguarded
  steps of kernels.safeguard (as `rma`; for meta-regression only when asked: `safeguard=True`).
* DL: (Y'PY - (k - p)) / tr(P) with w = 1/vi, truncated at 0.  PM: root of Q(tau^2) = k - p.  EE: tau^2 = 0.

The steps and tolerances are those of `rma` and `rma_batch` (`engine.kernels`), compiled here by numba;
this module computes the traces and quadratic forms of a general X that feed them.

Per fit it returns beta, the Wald statistics zval = beta/se (t-values under test="knha") and the omnibus
QM for all coefficients except the intercept (for an intercept-only X, for the intercept), QM divided by
their number under "knha", as metafor.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from metaexercise.engine import kernels
from metaexercise.engine.batch import _CACHE, _cache_depends_on

# The kernels below have engine/kernels.py compiled into them: recompile when it changes.
_cache_depends_on(__file__, kernels.__file__)


def _shared(f):
    """A shared step (engine.kernels) compiled for this module (not cached on its own: see batch._shared)."""
    return njit(nogil=True, error_model="numpy")(f)


_hedges_start = _shared(kernels.hedges_start)
_dl_tau2 = _shared(kernels.dl_tau2)
_scoring_steps = _shared(kernels.scoring_steps)
_next_tau2 = _shared(kernels.next_tau2)
_safeguard = _shared(kernels.safeguard)
_converged = _shared(kernels.converged)
_ll0_due = _shared(kernels.ll0_due)
_ll0_difference = _shared(kernels.ll0_difference)
_ll0_resets = _shared(kernels.ll0_resets)
_pm_root_step = _shared(kernels.pm_root_step)
_pm_upper = _shared(kernels.pm_upper)
_knha_factor = _shared(kernels.knha_factor)


@njit(cache=_CACHE, nogil=True, error_model="numpy")
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


@njit(cache=_CACHE, nogil=True, error_model="numpy")
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


@njit(cache=_CACHE, nogil=True, error_model="numpy")
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


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _tr_prod(A, B, p):
    """tr(A B)."""
    s = 0.0
    for a in range(p):
        for c in range(p):
            s += A[a, c] * B[c, a]
    return s


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _fit_at(y, v, X, k, p, tau2, w, A, b, r):
    """Weighted fit at tau2: w = 1/(v + tau2), then _wls. Returns (ok, log det X'WX, Q = sum w r^2,
    y'PPy = sum w^2 r^2, sum w, sum w^2)."""
    for i in range(k):
        w[i] = 1.0 / (v[i] + tau2)
    ok, logdet = _wls(y, w, X, k, p, A, b, r)
    q = 0.0
    ypp = 0.0
    sw = 0.0
    sw2 = 0.0
    for i in range(k):
        wr = w[i] * r[i]
        q += wr * r[i]
        ypp += wr * wr
        sw += w[i]
        sw2 += w[i] * w[i]
    return ok, logdet, q, ypp, sw, sw2


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _traces(X, w, k, p, A, d2, d3, B1, B2, C):
    """tr(P) and tr(PP) at the weights w (A = (X'WX)^-1): sum w - tr(A X'W^2X) and
    sum w^2 - 2 tr(A X'W^3X) + tr((A X'W^2X)^2) (engine.wls)."""
    sw = 0.0
    sw2 = 0.0
    for i in range(k):
        d2[i] = w[i] * w[i]
        d3[i] = d2[i] * w[i]
        sw += w[i]
        sw2 += d2[i]
    _xtdx(X, d2, k, p, B1)  # X'W^2X
    _xtdx(X, d3, k, p, B2)  # X'W^3X
    for a in range(p):
        for c in range(p):
            s = 0.0
            for m in range(p):
                s += A[a, m] * B1[m, c]
            C[a, c] = s
    return sw - _tr_prod(A, B1, p), sw2 - 2.0 * _tr_prod(A, B2, p) + _tr_prod(C, C, p)


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _yppp(X, w, r, k, p, A, u):
    """y'PPPy = sum w^3 r^2 - u'Au with u = X'W^2 r (Py = W r): the observed information's quadratic form."""
    s = 0.0
    for a in range(p):
        u[a] = 0.0
    for i in range(k):
        wr = w[i] * r[i]
        s += w[i] * wr * wr
        for a in range(p):
            u[a] += X[i, a] * w[i] * wr
    for a in range(p):
        for c in range(p):
            s -= u[a] * A[a, c] * u[c]
    return s


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _tau2_mods(y, v, X, k, p, method, threshold, maxiter, tau2_max, mad, guarded, w, A, b, r, S):
    """tau^2 for one meta-regression as metafor 3.8 (the steps of engine.kernels); returns (tau2, converged).
    `mad` is R's mad(y), for the default upper end of the Paule-Mandel search; S is p x p x 3 scratch."""
    B1 = S[0]
    B2 = S[1]
    C = S[2]
    if method == kernels.EE or k == 1:  # one study: tau^2 = 0, as rma (metafor)
        return 0.0, True
    if method == kernels.DL:
        ok, logdet, q, ypp, sw, sw2 = _fit_at(y, v, X, k, p, 0.0, w, A, b, r)
        if not ok:
            return np.nan, False
        trp, trpp = _traces(X, w, k, p, A, np.empty(k), np.empty(k), B1, B2, C)
        t = _dl_tau2(q, k, p, trp, 0.0)
        return t, not math.isnan(t)
    if method == kernels.PM:
        target = k - p
        ok, logdet, q, ypp, sw, sw2 = _fit_at(y, v, X, k, p, 0.0, w, A, b, r)
        dq = -ypp
        if ok and q < target:
            return 0.0, True
        default = tau2_max < 0.0
        hi = kernels.PM_UPPER if default else tau2_max
        q_hi = _fit_at(y, v, X, k, p, hi, w, A, b, r)[2]
        if default and q_hi > target:
            hi = _pm_upper(mad)
            q_hi = _fit_at(y, v, X, k, p, hi, w, A, b, r)[2]
        if not q_hi <= target:  # Q(tau2_max) still above k - p (or not a number)
            return np.nan, False
        lo = 0.0
        x = 0.0
        for _ in range(kernels.PM_ITER_FACTOR * maxiter):
            if not ok:
                return np.nan, False
            f = q - target
            if f == 0.0:
                return x, True
            xn, lo, hi, done = _pm_root_step(x, f, dq, lo, hi)
            if done:
                return xn, not math.isnan(xn)  # NaN: Q or its slope was not a number
            x = xn
            ok, logdet, q, ypp, sw, sw2 = _fit_at(y, v, X, k, p, x, w, A, b, r)
            dq = -ypp
        return np.nan, False
    # REML / ML: start at the Hedges-type estimate with unit weights.
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
    tau2 = _hedges_start(rss, sv - _tr_prod(A, B1, p), k, p, 0.0)
    d2 = np.empty(k)
    d3 = np.empty(k)
    u = np.empty(p)
    with_newton = p == kernels.NEWTON_P  # rma's Newton finish for the intercept-only model only
    change = np.inf
    it = 0
    newton = False
    lo = -np.inf  # the bracket of kernels.safeguard, and whether its safeguarded phase has begun
    hi = np.inf
    safe = False
    while not _converged(change, tau2, threshold):
        it += 1
        ok, logdet, q, ypp, sw, sw2 = _fit_at(y, v, X, k, p, tau2, w, A, b, r)
        if not ok:  # X'WX not positive definite at this tau^2
            return np.nan, False
        trp = np.nan
        trpp = np.nan
        if method == kernels.REML:
            trp, trpp = _traces(X, w, k, p, A, d2, d3, B1, B2, C)
        yppp = np.nan
        if (with_newton and newton) or safe:
            yppp = _yppp(X, w, r, k, p, A, u)
        fisher, newton_step = _scoring_steps(method, k, p, sw, sw2, trp, trpp, q, ypp, yppp)
        proposal, _change, newton = _next_tau2(tau2, fisher, newton_step, newton, 1.0, 0.0)
        tau2, change, lo, hi, safe = _safeguard(tau2, proposal, fisher, newton_step, lo, hi, safe, change, it,
                                                0.0, guarded)
        if not (change < np.inf) or it > maxiter:  # a non-finite score (NaN change), or maxiter steps
            return np.nan, False
    if _ll0_due(method, tau2, threshold):
        ok0, logdet0, q0, ypp0, sw0, sw20 = _fit_at(y, v, X, k, p, 0.0, w, A, b, r)
        ok, logdet1, q1, ypp1, sw1, sw21 = _fit_at(y, v, X, k, p, tau2, w, A, b, r)
        if not (ok0 and ok):
            return np.nan, False
        sum_log1p = 0.0
        for i in range(k):
            sum_log1p += math.log1p(tau2 / v[i])
        if _ll0_resets(_ll0_difference(method, sum_log1p, q0, q1, logdet1 - logdet0)):
            tau2 = 0.0
    return tau2, True


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _fit_mods_one(y, v, X, k, p, method, knha, threshold, maxiter, tau2_max, mad, guarded, beta, zval):
    """Fit one meta-regression; fill beta and zval (length p); return (QM, tau2, converged)."""
    w = np.empty(k)
    r = np.empty(k)
    A = np.empty((p, p))
    S = np.empty((3, p, p))
    tau2, conv = _tau2_mods(y, v, X, k, p, method, threshold, maxiter, tau2_max, mad, guarded, w, A, beta, r, S)
    ok = False
    if conv:
        ok, logdet, rss, ypp, sw, sw2 = _fit_at(y, v, X, k, p, tau2, w, A, beta, r)
    if not ok:  # no fit: NaN, never the last iterate
        for a in range(p):
            beta[a] = np.nan
            zval[a] = np.nan
        return np.nan, np.nan, False
    s2w = 1.0
    if knha:
        s2w = _knha_factor(rss, k - p)
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


@njit(cache=_CACHE, parallel=True, error_model="numpy")
def _fit_permuted(y, v, X, perms, method, knha, threshold, maxiter, tau2_max, mad, guarded,
                  beta, zval, qm, tau2, conv):
    n, k = perms.shape
    p = X.shape[1]
    for j in prange(n):
        Xp = np.empty((k, p))
        for i in range(k):
            for a in range(p):
                Xp[i, a] = X[perms[j, i], a]
        q, t, c = _fit_mods_one(y, v, Xp, k, p, method, knha, threshold, maxiter, tau2_max, mad, guarded,
                                beta[j], zval[j])
        qm[j] = q
        tau2[j] = t
        conv[j] = c


def _check_inputs(y: np.ndarray, v: np.ndarray, X: np.ndarray, perms: np.ndarray, method: str) -> None:
    """What the compiled kernels assume: clear ValueErrors naming argument and position otherwise."""
    from metaexercise.engine.wls import redundant_columns

    if y.ndim != 1 or v.shape != y.shape:
        raise ValueError(f"fit_permuted: yi and vi must be 1-D of equal length; got shapes {y.shape}, {v.shape}")
    k = y.shape[0]
    if X.ndim != 2 or X.shape[0] != k or X.shape[1] < 1:
        raise ValueError(f"fit_permuted: X must be k x p with k = {k} rows; got shape {X.shape}")
    p = X.shape[1]
    bad = np.flatnonzero(~(np.abs(y) <= kernels.YI_MAX))
    if bad.size:
        raise ValueError(f"fit_permuted: yi[{bad[0]}] = {float(y[bad[0]])!r} is missing, infinite or outside the "
                         f"engine's range |yi| <= {kernels.YI_MAX:g}")
    bad = np.flatnonzero(~((v >= kernels.VI_MIN) & (v <= kernels.VI_MAX)))
    if bad.size:
        raise ValueError(f"fit_permuted: vi[{bad[0]}] = {float(v[bad[0]])!r} is not a sampling variance in the "
                         f"engine's range {kernels.VI_MIN:g} <= vi <= {kernels.VI_MAX:g}")
    j = int(np.argmin(v)) if k else 0
    if k and kernels.dominated(float(v[j]), float(np.sum(1 / v)), k):
        raise ValueError(f"fit_permuted: study {j} (vi = {float(v[j])!r}) outweighs all other studies together by more "
                         f"than {kernels.WEIGHT_DOMINANCE_MAX:g} (its weight 1/vi against the sum of the others): "
                         "the fits would be rounding noise in double precision (as rma)")
    bad = np.argwhere(~(np.abs(X) <= kernels.MODS_MAX))
    if bad.size:
        i, j = (int(a) for a in bad[0])
        raise ValueError(f"fit_permuted: X[{i}, {j}] = {float(X[i, j])!r} is missing, infinite or outside the "
                         f"engine's range |X| <= {kernels.MODS_MAX:g}")
    n_par = p + (method != "EE")
    if n_par > k and not (p == 1 and k == 1):
        raise ValueError(f"fit_permuted: {n_par} parameters to estimate from k = {k} studies")
    if p > 1:
        redundant = np.flatnonzero(redundant_columns(X, kernels.QR_TOL))
        if redundant.size:
            raise ValueError(f"fit_permuted: columns {redundant.tolist()} of X are redundant (collinear with the "
                             "columns before them; R's lm tolerance 1e-7); drop them, as rma does")
        ev = float(np.linalg.eigvalsh(X.T @ X).min())
        if not ev > kernels.EVTOL:
            raise ValueError(f"fit_permuted: X is not of full rank: the smallest eigenvalue of X'X is {ev:.3g} "
                             f"<= {kernels.EVTOL:g} (metafor's evtol)")
    if perms.ndim != 2 or perms.shape[1] != k:
        raise ValueError(f"fit_permuted: perms must be n x k with k = {k} columns; got shape {perms.shape}")
    bad = np.argwhere((perms < 0) | (perms >= k))
    if bad.size:
        r, c = (int(a) for a in bad[0])
        raise ValueError(f"fit_permuted: perms[{r}, {c}] = {perms[r, c]} is not a row index of X (0..{k - 1})")


def fit_permuted(yi, vi, X, perms, method: kernels.ModsMethod = "REML", test: kernels.Test = "z", *,
                 threshold: float = kernels.THRESHOLD, maxiter: int = kernels.MAXITER,
                 tau2_max: float | None = None, safeguard: bool | None = None):
    """Fit `rma(yi, vi, mods=X[perm], intercept=False)` for each row of `perms` (row indices into X).

    Returns (beta, zval, QM, tau2, converged): beta and zval are (n_perm, p), the others length n_perm.
    `threshold`/`maxiter`/`safeguard` default to `rma`'s Control (the safeguard against oscillating Fisher
    scoring on for an intercept-only X, off for meta-regression, as metafor's permutest). Fits that do not converge (kernels.safeguard makes
    that rare for ML/REML; PM whose Q(tau2_max) is still above k - p; an X'WX that is not positive
    definite) have converged False and NaN in beta, zval, QM and tau2, never the last iterate (metafor's
    permutest skips them: `try(...)`, `next`).
    The inputs are checked as `rma` checks them (finite, in the engine's range, X of full rank: a
    permutation of the rows of X keeps its rank, so redundant columns are an error here; `rma` drops them
    first, as metafor); every entry of `perms` must be a row index of X, 0..k-1.
    """
    if method not in kernels.MODS_METHODS:
        raise ValueError(f"fit_permuted: method={method!r} is not one of {sorted(kernels.MODS_METHODS)}")
    if test not in kernels.TESTS:
        raise ValueError(f"fit_permuted: test={test!r} is not one of {list(kernels.TESTS)}")
    y = np.ascontiguousarray(yi, dtype=np.float64)
    v = np.ascontiguousarray(vi, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    _check_inputs(y, v, X, perms, method)
    n = perms.shape[0]
    p = X.shape[1]
    beta = np.empty((n, p))
    zval = np.empty((n, p))
    qm = np.empty(n)
    tau2 = np.empty(n)
    conv = np.empty(n, dtype=np.bool_)
    # R's mad(yi), for the default upper end of the PM search: y is the same in every refit, so once here
    mad = kernels.MAD_CONSTANT * float(np.median(np.abs(y - np.median(y)))) if y.size else 0.0
    guarded = p <= kernels.SAFEGUARD_P if safeguard is None else bool(safeguard)
    # ML/REML on data of a tiny scale: fitted as y/2^j, v/4^j (exactly), as rma (kernels.SCALE_MIN)
    j = 0
    if method in ("REML", "ML") and y.size > 1:
        j = kernels.rescale_exponent(float(np.mean(v)), float(np.var(y, ddof=1)))
    ys, vs = (y, v) if j == 0 else (np.ldexp(y, -j), np.ldexp(v, -2 * j))
    _fit_permuted(ys, vs, X, perms, kernels.METHOD_CODES[method], test == "knha", float(threshold),
                  int(maxiter), -1.0 if tau2_max is None else float(tau2_max), mad, guarded, beta, zval, qm, tau2,
                  conv)
    if j != 0:
        beta = np.ldexp(beta, j)
        tau2 = np.ldexp(tau2, 2 * j)
    return beta, zval, qm, tau2, conv
