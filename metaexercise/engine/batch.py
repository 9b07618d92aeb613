"""Many random-effects meta-analyses at once: `rma_batch`, the intercept-only `rma` over the rows of a
2-D array, one fused numba loop per meta-analysis that stops as soon as that meta-analysis has converged.

Each row is fitted exactly as metafor 3.8's `rma.uni` fits it (Viechtbauer 2005, J Educ Behav Stat 30:261,
doi:10.3102/10769986030003261; metafor's `help(rma.uni)`, section "Note"):

* REML and ML: Fisher scoring from the Hedges-type start value (RSS - tr(PV)) / (k - p), truncated at 0,
  with step-halving so that tau^2 never becomes negative, until the change in tau^2 is at most
  `threshold`; afterwards metafor's `ll0check` (tau^2 is set to 0 if the likelihood at 0 is higher).
  Where Fisher scoring oscillates (metafor: "did not converge"), safeguarded Newton/bisection steps on a
  bracket of the maximum take over (kernels.safeguard), as in `rma`.
* DL: DerSimonian & Laird (1986, Control Clin Trials 7:177), truncated at 0.
* PM: Paule & Mandel (1982); the root of the generalized Q, Q(tau^2) = k - 1, found by safeguarded Newton
  steps to machine precision (metafor uses `uniroot`; with a tight `tol` both give the same root).

Rows are NaN-padded: a row's studies are the columns where `yi` is not NaN. Heterogeneity and prediction
intervals follow metafor: I^2 = 100 tau^2 / (tau^2 + s^2) with s^2 = (k - 1) sum(w) / ((sum w)^2 - sum(w^2)),
w = 1/vi (Higgins & Thompson 2002, Stat Med 21:1539, eq. 9); the prediction interval is `predict.rma`'s
estimate +/- crit * sqrt(se^2 + tau^2), crit from N(0, 1) under test="z" and from t(k - 1) under "knha".

The steps (start value, Fisher/Newton step, step-halving, ll0check, Paule-Mandel root step, DL) and their
tolerances are `engine.kernels`, the functions `rma` runs, compiled here by numba; this module computes the
sums over studies that feed them, in fused loops.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numba
import numpy as np
import pandas as pd
from numba import njit, prange
from scipy import special

from metaexercise.engine import kernels

Method = kernels.BatchMethod
Test = kernels.Test

# --------------------------------------------------------------------------------------------------
# numba's on-disk cache
# --------------------------------------------------------------------------------------------------

#: numba writes its compiled kernels beside this file; fall back to no cache when that folder is read-only
#: (an installed, non-editable copy) and NUMBA_CACHE_DIR is not set, rather than failing at import.
_CACHE = bool(os.environ.get("NUMBA_CACHE_DIR")) or os.access(os.path.dirname(__file__), os.W_OK)


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


try:
    from numba.core import caching as _numba_caching

    class _DependentSourceLocator(_numba_caching._CacheLocator):
        """Numba reuses a cached kernel while the file that defines it is unchanged, but a kernel compiled
        here has the functions of engine/kernels.py compiled into it: editing kernels.py alone would leave
        the stale machine code in use. For the files registered in `depends`, this locator (otherwise
        numba's own choice of cache folder) adds the contents of their dependencies to the freshness stamp."""

        depends: dict[str, tuple[str, ...]] = {}

        def __init__(self, inner, dependencies):
            self._inner = inner
            self._dependencies = dependencies

        def ensure_cache_path(self):
            self._inner.ensure_cache_path()

        def get_cache_path(self):
            return self._inner.get_cache_path()

        def get_disambiguator(self):
            return self._inner.get_disambiguator()

        def get_source_stamp(self):
            return self._inner.get_source_stamp(), tuple(_file_digest(f) for f in self._dependencies)

        @classmethod
        def from_function(cls, py_func, py_file):
            dependencies = cls.depends.get(os.path.realpath(py_file))
            if dependencies is None:
                return None
            for other in _numba_caching.CacheImpl._locator_classes:
                if other is not cls:
                    inner = other.from_function(py_func, py_file)
                    if inner is not None:
                        return cls(inner, dependencies)
            return None

    _locators = _numba_caching.CacheImpl._locator_classes
    if _DependentSourceLocator.__name__ not in {c.__name__ for c in _locators}:  # once, even on reload
        _locators.insert(0, _DependentSourceLocator)
    _LOCATOR = next(c for c in _locators if c.__name__ == _DependentSourceLocator.__name__)
except (ImportError, AttributeError, TypeError):  # numba's internals changed: never risk a stale kernel
    _LOCATOR = None
    _CACHE = False


def _cache_depends_on(module_file: str, *dependencies: str) -> None:
    """Cached kernels defined in `module_file` are recompiled whenever one of `dependencies` changes.
    Call before the module's first ``@njit(cache=...)``."""
    if _LOCATOR is not None:
        _LOCATOR.depends[os.path.realpath(module_file)] = tuple(os.path.realpath(d) for d in dependencies)


_cache_depends_on(__file__, kernels.__file__)

#: Fused multiply-adds only: no "reassoc" (it made sums depend on memory alignment, so results changed
#: with allocation history) and no nnan/ninf (padding and validation rely on NaN semantics).
_FAST = {"contract"}

#: inputs with at most this many cells (rows x columns) are fitted on one thread.
_SERIAL_CELLS = 16_384

#: rows handled by one parallel task; one scratch buffer is allocated per block, not per row.
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class BatchControl:
    """Algorithm settings, kept apart from the model (as metafor's `control` list).

    `threshold` is the convergence criterion on the change in tau^2 between Fisher-scoring steps and
    `maxiter` the iteration limit; both default to those of `rma`'s `Control` (kernels.THRESHOLD = 1e-12 and
    kernels.MAXITER = 1,000; metafor's are 1e-5 and 100), so that `rma_batch` takes exactly `rma`'s path.
    `tau2_max` bounds the Paule-Mandel search; None means metafor 3.8's per-analysis default
    max(100, 10 mad(yi)^2). `safeguard`: see `rma`'s Control.
    """

    threshold: float = kernels.THRESHOLD
    maxiter: int = kernels.MAXITER
    tau2_max: float | None = None
    ll0check: bool = True
    #: safeguarded steps once Fisher scoring oscillates (kernels.safeguard), as `rma`'s Control.safeguard:
    #: None = the default by model (on for intercept-only fits, i.e. every rma_batch row; off for the
    #: meta-regressions of permutest, as metafor), True or False = on or off.
    safeguard: bool | None = None

    def __post_init__(self):
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"BatchControl.threshold must be a positive number, got {self.threshold!r}")
        if int(self.maxiter) != self.maxiter or self.maxiter < 1:
            raise ValueError(f"BatchControl.maxiter must be a positive integer, got {self.maxiter!r}")
        if self.tau2_max is not None and not self.tau2_max > 0:
            raise ValueError(f"BatchControl.tau2_max must be positive, got {self.tau2_max!r}")


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One entry per meta-analysis (row). Fields are named as `RMAResult`'s.

    `kh_factor` is the Knapp-Hartung variance factor sum(w (y - mu)^2) / (k - 1) at the fitted tau^2
    (metafor's `s2w` under test="knha", 0 when that sum is at most machine epsilon), kept so that Wald,
    Knapp-Hartung and truncated Knapp-Hartung intervals can all be formed from one fit. `converged` is False
    for rows with no studies (NaN everywhere) and for rows whose iteration did not converge: ML/REML that
    fails even with kernels.safeguard's steps (it should not happen for data in the engine's range; a
    non-finite score stops the iteration), Paule-Mandel whose Q(tau2_max) is still above k - 1. Such a row
    is NaN in every field that depends on tau^2 (estimate, se, ci, tau2, I2, pi, kh_factor), never the last
    iterate; its k, QE (the fixed-effect Q) and iterations are kept.
    """

    method: str
    test: str
    level: float
    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    tau2: np.ndarray
    I2: np.ndarray
    QE: np.ndarray
    pi_lb: np.ndarray
    pi_ub: np.ndarray
    kh_factor: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray

    def __len__(self) -> int:
        return int(self.k.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per meta-analysis, one column per array field."""
        return pd.DataFrame(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("method", "test", "level")}
        )

    def summary(self) -> str:
        n = len(self)
        conv = int(np.count_nonzero(self.converged))
        lines = [
            f"Batch of {n} random-effects models (tau^2 estimator: {self.method}; test: {self.test}; "
            f"level: {self.level:g}%)",
            f"converged: {conv} of {n}",
        ]
        if n:
            lines.append(f"k: median {np.median(self.k):g} (range {self.k.min()}-{self.k.max()})")
            with np.errstate(all="ignore"):
                lines.append(f"estimate: median {np.nanmedian(self.estimate):.4f}")
                lines.append(f"tau^2: median {np.nanmedian(self.tau2):.4f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------------
# The shared steps (engine.kernels), compiled with this module's float semantics. They are not cached on
# their own: they are compiled into the cached kernels below (whose cache knows about kernels.py, see
# _DependentSourceLocator), and numba's cache index does not tell compile options apart, while batch_mods
# compiles the same functions without fastmath.
# --------------------------------------------------------------------------------------------------


def _shared(f):
    return njit(nogil=True, fastmath=_FAST, error_model="numpy")(f)


_hedges_start = _shared(kernels.hedges_start)
_dl_tau2 = _shared(kernels.dl_tau2)
_shifted_square_sum = _shared(kernels.shifted_square_sum)
_intercept_terms = _shared(kernels.intercept_terms)
_scoring_steps = _shared(kernels.scoring_steps)
_next_tau2 = _shared(kernels.next_tau2)
_safeguard = _shared(kernels.safeguard)
_converged = _shared(kernels.converged)
_rescale_exponent = _shared(kernels.rescale_exponent)
_dominated = _shared(kernels.dominated)
_ll0_due = _shared(kernels.ll0_due)
_ll0_difference = _shared(kernels.ll0_difference)
_ll0_resets = _shared(kernels.ll0_resets)
_pm_root_step = _shared(kernels.pm_root_step)
_pm_upper = _shared(kernels.pm_upper)
_knha_factor = _shared(kernels.knha_factor)


# --------------------------------------------------------------------------------------------------
# numba kernel: one meta-analysis. Weights live in scratch buffers so that each pass over the studies
# divides at most once per study; sums are plain loops that LLVM turns into SIMD reductions.
# --------------------------------------------------------------------------------------------------


@njit(cache=_CACHE, nogil=True, fastmath=_FAST, error_model="numpy")
def _weight_sums(y, v, k, tau2, wbuf):
    """w = 1/(v + tau2) into wbuf; returns sum w, sum w y, sum w^2, sum w^3.

    The divisions run as one vectorisable loop; each sum is kept in four lanes that are added in a fixed
    order, so the compiler may use SIMD without reordering any sum: results do not depend on memory
    alignment or thread count (they did with fastmath's "reassoc")."""
    for i in range(k):
        wbuf[i] = 1.0 / (v[i] + tau2)
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    c0 = c1 = c2 = c3 = 0.0
    d0 = d1 = d2 = d3 = 0.0
    k4 = k - k % 4
    for i in range(0, k4, 4):
        w0 = wbuf[i]
        w1 = wbuf[i + 1]
        w2 = wbuf[i + 2]
        w3 = wbuf[i + 3]
        a0 += w0
        a1 += w1
        a2 += w2
        a3 += w3
        b0 += w0 * y[i]
        b1 += w1 * y[i + 1]
        b2 += w2 * y[i + 2]
        b3 += w3 * y[i + 3]
        q0 = w0 * w0
        q1 = w1 * w1
        q2 = w2 * w2
        q3 = w3 * w3
        c0 += q0
        c1 += q1
        c2 += q2
        c3 += q3
        d0 += q0 * w0
        d1 += q1 * w1
        d2 += q2 * w2
        d3 += q3 * w3
    for i in range(k4, k):
        w = wbuf[i]
        a0 += w
        b0 += w * y[i]
        q = w * w
        c0 += q
        d0 += q * w
    return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), (c0 + c1) + (c2 + c3), (d0 + d1) + (d2 + d3)


@njit(cache=_CACHE, nogil=True, fastmath=_FAST, error_model="numpy")
def _residual_sums(y, wbuf, k, mu):
    """(sum w r^2, sum w^2 r^2) with r = y - mu: the (generalized) Q and Y'PPY of the intercept-only model
    (four fixed lanes, as _weight_sums)."""
    q0 = q1 = q2 = q3 = 0.0
    p0 = p1 = p2 = p3 = 0.0
    k4 = k - k % 4
    for i in range(0, k4, 4):
        r0 = y[i] - mu
        r1 = y[i + 1] - mu
        r2 = y[i + 2] - mu
        r3 = y[i + 3] - mu
        e0 = wbuf[i] * r0
        e1 = wbuf[i + 1] * r1
        e2 = wbuf[i + 2] * r2
        e3 = wbuf[i + 3] * r3
        q0 += e0 * r0
        q1 += e1 * r1
        q2 += e2 * r2
        q3 += e3 * r3
        p0 += e0 * e0
        p1 += e1 * e1
        p2 += e2 * e2
        p3 += e3 * e3
    for i in range(k4, k):
        r = y[i] - mu
        e = wbuf[i] * r
        q0 += e * r
        p0 += e * e
    return (q0 + q1) + (q2 + q3), (p0 + p1) + (p2 + p3)


@njit(cache=_CACHE, nogil=True, fastmath=_FAST, error_model="numpy")
def _log_prod_1p(wbuf0, k, tau2):
    """sum(log(1 + tau2 w0)) = sum(log(v + tau2)) - sum(log v), with one log per ~100 studies."""
    acc = 0.0
    prod = 1.0
    for i in range(k):
        f = 1.0 + tau2 * wbuf0[i]
        if f > 1e100:
            acc += math.log(f)
        else:
            prod *= f
            if prod > 1e200:
                acc += math.log(prod)
                prod = 1.0
    return acc + math.log(prod)


@njit(cache=_CACHE, nogil=True, fastmath=_FAST, error_model="numpy")
def _score_moments(y, v, k, tau2, ybar, wbuf):
    """One pass for a Fisher-scoring step: with w = 1/(v + tau2) and c = y - ybar, returns sum w, sum w c,
    sum w^2, sum w^3 and Y'PPY = sum w^2 (c - m)^2 = sum w^2 c^2 - 2 m sum w^2 c + m^2 sum w^2,
    m = sum w c / sum w (centring at ybar keeps the expansion free of cancellation). Four fixed lanes per
    sum, as _weight_sums."""
    for i in range(k):
        wbuf[i] = 1.0 / (v[i] + tau2)
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    c0 = c1 = c2 = c3 = 0.0
    d0 = d1 = d2 = d3 = 0.0
    e0 = e1 = e2 = e3 = 0.0
    f0 = f1 = f2 = f3 = 0.0
    k4 = k - k % 4
    for i in range(0, k4, 4):
        w0 = wbuf[i]
        w1 = wbuf[i + 1]
        w2 = wbuf[i + 2]
        w3 = wbuf[i + 3]
        x0 = y[i] - ybar
        x1 = y[i + 1] - ybar
        x2 = y[i + 2] - ybar
        x3 = y[i + 3] - ybar
        q0 = w0 * w0
        q1 = w1 * w1
        q2 = w2 * w2
        q3 = w3 * w3
        a0 += w0
        a1 += w1
        a2 += w2
        a3 += w3
        b0 += w0 * x0
        b1 += w1 * x1
        b2 += w2 * x2
        b3 += w3 * x3
        c0 += q0
        c1 += q1
        c2 += q2
        c3 += q3
        d0 += q0 * w0
        d1 += q1 * w1
        d2 += q2 * w2
        d3 += q3 * w3
        e0 += q0 * x0
        e1 += q1 * x1
        e2 += q2 * x2
        e3 += q3 * x3
        f0 += q0 * x0 * x0
        f1 += q1 * x1 * x1
        f2 += q2 * x2 * x2
        f3 += q3 * x3 * x3
    for i in range(k4, k):
        w = wbuf[i]
        x = y[i] - ybar
        q = w * w
        a0 += w
        b0 += w * x
        c0 += q
        d0 += q * w
        e0 += q * x
        f0 += q * x * x
    sw = (a0 + a1) + (a2 + a3)
    swc = (b0 + b1) + (b2 + b3)
    sw2 = (c0 + c1) + (c2 + c3)
    sw2c = (e0 + e1) + (e2 + e3)
    m = swc / sw
    ypp = _shifted_square_sum(sw2, sw2c, (f0 + f1) + (f2 + f3), m)
    return sw, sw2, (d0 + d1) + (d2 + d3), ypp, m


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _newton_moments(y, k, ybar, m, wbuf):
    """For the Newton step, with w in wbuf and r = (y - ybar) - m: returns sum w^3 r^2 and sum w^2 r, so
    that Y'PPPY = sum w^3 r^2 - (sum w^2 r)^2 / sum w (as metaexercise.engine.tau2). A plain sequential loop:
    without fastmath's reassociation the sums do not depend on alignment."""
    s3 = 0.0
    s2 = 0.0
    for i in range(k):
        w = wbuf[i]
        r = (y[i] - ybar) - m
        q = w * w * r
        s2 += q
        s3 += q * w * r
    return s3, s2


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _moments(y, v, k):
    """(ybar, sum v, RSS = sum (y - ybar)^2): the inputs of metafor's start value (kernels.hedges_start, with
    tr(P0 V) = sum v - sum v / k) and of kernels.rescale_exponent."""
    ybar = 0.0
    sv = 0.0
    for i in range(k):
        ybar += y[i]
        sv += v[i]
    ybar /= k
    rss = 0.0
    for i in range(k):
        d = y[i] - ybar
        rss += d * d
    return ybar, sv, rss


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _scale(y, v, k, f):
    """y *= f, v *= f^2 in place (f a power of two: exact)."""
    f2 = f * f
    for i in range(k):
        y[i] *= f
        v[i] *= f2


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _fisher_scoring(y, v, k, method, threshold, maxiter, guarded, wbuf):
    """REML or ML (kernels.REML / kernels.ML) Fisher scoring with step-halving from metafor 3.8's start value,
    with the Newton finish once the steps are below kernels.NEWTON_SWITCH and the safeguarded steps of
    kernels.safeguard once scoring oscillates: the steps of `rma` (kernels), fed with this module's sums.
    Data on a tiny scale are fitted as y/2^j, v/4^j (kernels.rescale_exponent; y and v, this row's copies,
    are scaled in place and back, exactly). Returns (tau2, iterations, converged), tau2 NaN if not
    converged; the ll0check is done by the caller."""
    ybar, sv, rss = _moments(y, v, k)
    j = _rescale_exponent(sv / k, rss / (k - 1))
    if j != 0:
        f = math.ldexp(1.0, -j)
        _scale(y, v, k, f)
        ybar, sv, rss = _moments(y, v, k)
    tau2, it, conv = _fisher_loop(y, v, k, ybar, _hedges_start(rss, sv - sv / k, k, 1, 0.0), method, threshold,
                                  maxiter, guarded, wbuf)
    if j != 0:
        _scale(y, v, k, math.ldexp(1.0, j))
        tau2 *= math.ldexp(1.0, 2 * j)
    return tau2, it, conv


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _fisher_loop(y, v, k, ybar, tau2, method, threshold, maxiter, guarded, wbuf):
    """The iteration of _fisher_scoring, from the start value tau2."""
    it = 0
    change = np.inf
    newton = False
    lo = -np.inf  # the bracket of kernels.safeguard, and whether its safeguarded phase has begun
    hi = np.inf
    safe = False
    while not _converged(change, tau2, threshold):
        it += 1
        sw, sw2, sw3, ypp, m = _score_moments(y, v, k, tau2, ybar, wbuf)
        sw3r2 = np.nan
        sw2r = np.nan
        if newton or safe:  # the observed information needs two more sums, only in these phases
            sw3r2, sw2r = _newton_moments(y, k, ybar, m, wbuf)
        trp, trpp, yppp = _intercept_terms(sw, sw2, sw3, sw3r2, sw2r)
        fisher, newton_step = _scoring_steps(method, k, 1, sw, sw2, trp, trpp, np.nan, ypp, yppp)
        proposal, _change, newton = _next_tau2(tau2, fisher, newton_step, newton, 1.0, 0.0)
        tau2, change, lo, hi, safe = _safeguard(tau2, proposal, fisher, newton_step, lo, hi, safe, change, it,
                                                0.0, guarded)
        if not (change < np.inf) or it > maxiter:  # a non-finite score (NaN change), or maxiter steps
            return np.nan, it, False
    return tau2, it, True


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _q_and_slope(y, v, k, tau2, wbuf):
    """Generalized Q(tau2) and its derivative -sum(w^2 r^2) (DerSimonian & Kacker 2007, eq. 7)."""
    sw, swy, sw2, sw3 = _weight_sums(y, v, k, tau2, wbuf)
    q, ypp = _residual_sums(y, wbuf, k, swy / sw)
    return q, -ypp


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _select(a, n, j):
    """Rearrange a[:n] so that a[j] is its (j+1)-th smallest value, smaller values before it and larger after
    (Hoare's quickselect), and return a[j]. Cheaper to compile than np.median, which took ~2 s."""
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        m = hi
        while i <= m:
            while a[i] < pivot:
                i += 1
            while a[m] > pivot:
                m -= 1
            if i <= m:
                t = a[i]
                a[i] = a[m]
                a[m] = t
                i += 1
                m -= 1
        if j <= m:
            hi = m
        elif j >= i:
            lo = i
        else:
            break
    return a[j]


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _median(a, n):
    """Median of a[:n] (rearranged), as R's and numpy's: the mean of the two middle values for even n."""
    h = n // 2
    upper = _select(a, n, h)
    if n % 2 == 1:
        return upper
    lower = a[0]  # after the selection a[:h] holds the h smallest values
    for i in range(1, h):
        if a[i] > lower:
            lower = a[i]
    return 0.5 * (lower + upper)


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _mad(y, k, buf):
    """R's mad(y[:k]) = 1.4826 median(|y - median(y)|), using buf as scratch."""
    for i in range(k):
        buf[i] = y[i]
    med = _median(buf, k)
    for i in range(k):
        buf[i] = abs(y[i] - med)
    return kernels.MAD_CONSTANT * _median(buf, k)


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _pm(y, v, k, q0, tau2_max, maxiter, wbuf):
    """Paule-Mandel root of Q(tau2) = k - 1 on [0, tau2_max] (q0 = Q(0)) by kernels.pm_root_step, as `rma`.
    tau2_max < 0 means metafor's default max(100, 10 mad(y)^2), the median computed only when Q(100) is
    still above k - 1. Returns (tau2, iterations, converged)."""
    target = k - 1.0
    if q0 < target:
        return 0.0, 0, True
    default = tau2_max < 0.0
    if default:
        tau2_max = kernels.PM_UPPER
    qmax, dqmax = _q_and_slope(y, v, k, tau2_max, wbuf)
    if default and qmax > target:
        tau2_max = _pm_upper(_mad(y, k, wbuf))
        qmax, dqmax = _q_and_slope(y, v, k, tau2_max, wbuf)
    if not qmax <= target:  # Q(tau2_max) still above k - 1 (or not a number)
        return np.nan, 0, False
    lo = 0.0
    hi = tau2_max
    x = 0.0
    q, dq = _q_and_slope(y, v, k, 0.0, wbuf)
    it = 0
    while it < kernels.PM_ITER_FACTOR * maxiter:
        it += 1
        f = q - target
        if f == 0.0:
            return x, it, True
        xn, lo, hi, done = _pm_root_step(x, f, dq, lo, hi)
        if done:
            return xn, it, not math.isnan(xn)  # NaN: Q or its slope was not a number
        x = xn
        q, dq = _q_and_slope(y, v, k, x, wbuf)
    return np.nan, it, False


@njit(cache=_CACHE, nogil=True, error_model="numpy")
def _fit_one(yrow, vrow, ybuf, vbuf, wbuf, w0buf, method, threshold, maxiter, tau2_max, ll0check, guarded, out,
             r):
    """Fit row `r`; write k, estimate, se_z, tau2, I2, QE, kh_factor, converged, iterations into `out`."""
    f_k, f_est, f_se, f_tau2, f_i2, f_qe, f_kh, f_conv, f_it = out
    k = 0
    vmin = np.inf
    for j in range(yrow.shape[0]):
        if not math.isnan(yrow[j]):
            vj = vrow[j]
            if not (abs(yrow[j]) <= kernels.YI_MAX and vj >= kernels.VI_MIN and vj <= kernels.VI_MAX):
                f_k[r] = -1 - j  # invalid or out-of-range study in column j: reported by the Python driver
                f_conv[r] = False
                return
            vmin = min(vmin, vj)
            ybuf[k] = yrow[j]
            vbuf[k] = vj
            k += 1
    f_k[r] = k
    if k == 0:
        f_est[r] = np.nan
        f_se[r] = np.nan
        f_tau2[r] = np.nan
        f_i2[r] = np.nan
        f_qe[r] = np.nan
        f_kh[r] = np.nan
        f_conv[r] = False
        f_it[r] = 0
        return
    # Fixed-effect quantities: QE, the typical within-study variance of I^2, and DL/PM/ll0check inputs.
    sw0, swy0, sw20, sw30 = _weight_sums(ybuf, vbuf, k, 0.0, w0buf)
    if _dominated(vmin, sw0, k):
        for j in range(yrow.shape[0]):  # one study outweighs all others together: reported by the driver
            if not math.isnan(yrow[j]) and vrow[j] == vmin:
                f_k[r] = -1 - j
                break
        f_conv[r] = False
        return
    qe, ypp0 = _residual_sums(ybuf, w0buf, k, swy0 / sw0)
    conv = True
    it = 0
    if k == 1:
        tau2 = 0.0
    elif method == kernels.REML or method == kernels.ML:
        tau2, it, conv = _fisher_scoring(ybuf, vbuf, k, method, threshold, maxiter, guarded, wbuf)
    elif method == kernels.DL:
        trp0, trpp0, _nan = _intercept_terms(sw0, sw20, sw30, np.nan, np.nan)
        tau2 = _dl_tau2(qe, k, 1, trp0, 0.0)
        conv = not math.isnan(tau2)
    else:
        tau2, it, conv = _pm(ybuf, vbuf, k, qe, tau2_max, maxiter, wbuf)
    if not conv:
        # no fit: NaN, never the last iterate (QE, the fixed-effect Q, does not depend on tau^2 and is kept)
        f_est[r] = np.nan
        f_se[r] = np.nan
        f_tau2[r] = np.nan
        f_i2[r] = np.nan
        f_qe[r] = max(0.0, qe)
        f_kh[r] = np.nan
        f_conv[r] = False
        f_it[r] = it
        return
    sw, swy, sw2, sw3 = _weight_sums(ybuf, vbuf, k, tau2, wbuf)
    mu = swy / sw
    rss_w, ypp = _residual_sums(ybuf, wbuf, k, mu)
    if ll0check and _ll0_due(method, tau2, threshold):
        # ll(0) - ll(tau2) from sums: sum log(1 + tau2/v), Q(0) = QE, Q(tau2), log(sum w / sum w0)
        diff = _ll0_difference(method, _log_prod_1p(w0buf, k, tau2), qe, rss_w, math.log(sw / sw0))
        if _ll0_resets(diff):
            tau2 = 0.0
            sw, swy, sw2, sw3 = _weight_sums(ybuf, vbuf, k, tau2, wbuf)
            mu = swy / sw
            rss_w, ypp = _residual_sums(ybuf, wbuf, k, mu)
    if k > 1:
        s2 = (k - 1) * sw0 / (sw0 * sw0 - sw20)
        i2 = 100.0 * tau2 / (s2 + tau2)
        kh = _knha_factor(rss_w, k - 1)
    else:
        qe = 0.0
        i2 = 0.0
        kh = np.nan
    f_est[r] = mu
    f_se[r] = math.sqrt(1.0 / sw)
    f_tau2[r] = tau2
    f_i2[r] = i2
    f_qe[r] = max(0.0, qe)
    f_kh[r] = kh
    f_conv[r] = conv
    f_it[r] = it


@njit(cache=_CACHE, parallel=True, error_model="numpy")
def _fit_rows(yi, vi, method, threshold, maxiter, tau2_max, ll0check, guarded, out):
    n, m = yi.shape
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(nblocks):
        ybuf = np.empty(m)
        vbuf = np.empty(m)
        wbuf = np.empty(m)
        w0buf = np.empty(m)
        for r in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            _fit_one(yi[r], vi[r], ybuf, vbuf, wbuf, w0buf, method, threshold, maxiter, tau2_max, ll0check,
                     guarded, out, r)


@njit(cache=_CACHE, error_model="numpy")
def _fit_rows_serial(yi, vi, method, threshold, maxiter, tau2_max, ll0check, guarded, out):
    """As _fit_rows on one thread: for a few rows, waking the thread pool costs more than the fits (and,
    on a busy machine, a descheduled worker thread stalls the whole call). (One kernel run by Python threads
    on blocks of rows would spare the second compilation, but numba's parfor-compiled loop runs ~7% faster
    per row than the same loop compiled serially, measured at k = 30.)"""
    n, m = yi.shape
    ybuf = np.empty(m)
    vbuf = np.empty(m)
    wbuf = np.empty(m)
    w0buf = np.empty(m)
    for r in range(n):
        _fit_one(yi[r], vi[r], ybuf, vbuf, wbuf, w0buf, method, threshold, maxiter, tau2_max, ll0check, guarded,
                 out, r)


# --------------------------------------------------------------------------------------------------
# Python driver: validation, chunking, intervals
# --------------------------------------------------------------------------------------------------

_ARRAY_FIELDS = (
    "k", "estimate", "se", "ci_lb", "ci_ub", "tau2", "I2", "QE", "pi_lb", "pi_ub", "kh_factor",
    "converged", "iterations",
)


def _raise_invalid(yi: np.ndarray, vi: np.ndarray, k: np.ndarray, row0: int) -> None:
    """The kernel marks a row whose column j holds an invalid study with k = -1 - j; name the first."""
    r = int(np.flatnonzero(k < 0)[0])
    c = -1 - int(k[r])
    y, v = float(yi[r, c]), float(vi[r, c])
    where = f"[{row0 + r}, {c}]"
    if not np.isfinite(y):
        raise ValueError(f"rma_batch: yi{where} = {y!r} is infinite; use NaN for padding")
    if abs(y) > kernels.YI_MAX:
        raise ValueError(f"rma_batch: yi{where} = {y!r} is outside the range the engine computes with, "
                         f"|yi| <= {kernels.YI_MAX:g} (its square would come close to overflowing double "
                         "precision); rescale the effect sizes")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"rma_batch: vi{where} = {v!r}; a sampling variance must be positive and finite "
                         f"where yi is given (yi = {y!r})")
    if kernels.VI_MIN <= v <= kernels.VI_MAX:  # in range: the study outweighs all others of its row
        studies = ~np.isnan(yi[r])
        studies[c] = False
        others = float(np.sum(1 / vi[r][studies]))
        raise ValueError(f"rma_batch: row {row0 + r}: the study in column {c} (vi = {v!r}) has a weight 1/vi "
                         f"{1 / v / others:.3g} times the sum of all other weights of its row (more than "
                         f"{kernels.WEIGHT_DOMINANCE_MAX:g}): its heterogeneity statistics would be rounding "
                         "noise in double precision (as rma; metafor warns and returns them)")
    raise ValueError(f"rma_batch: vi{where} = {v!r} is outside the range the engine computes with, "
                     f"{kernels.VI_MIN:g} <= vi <= {kernels.VI_MAX:g} (the cubes of the weights 1/vi would "
                     "overflow or underflow double precision); rescale the effect sizes and their variances")


#: Results kept across chunks are put in their own anonymous memory maps once they are this large: glibc's
#: dynamic mmap threshold otherwise serves them from the heap, interleaved with each chunk's freed
#: temporaries, and the fragmented heap doubled the peak memory of a 10-million-fit stream.
_MMAP_BYTES = 1 << 17


def _kept_empty(n: int, dtype) -> np.ndarray:
    """np.empty(n, dtype), in an anonymous memory map (returned to the OS when freed) if it is large."""
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes < _MMAP_BYTES:
        return np.empty(n, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=n)


def _writable(a) -> np.ndarray:
    """A C-contiguous float64 array that numba can type as writable: a read-only input (a memory map opened
    with mode "r") is copied, one chunk at a time, rather than compiled a second time for a read-only type."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a if a.flags.writeable else a.copy()


def _fit_chunk(yi, vi, code, control: BatchControl, row0: int) -> dict[str, np.ndarray]:
    yi = _writable(yi)
    vi = _writable(vi)
    if yi.ndim != 2 or yi.shape != vi.shape:
        raise ValueError(f"rma_batch: the chunk starting at row {row0} has yi of shape {yi.shape} and vi of "
                         f"shape {vi.shape}; both must be the same 2-D shape")
    n = yi.shape[0]
    f8 = np.float64
    out = (
        _kept_empty(n, np.int64), _kept_empty(n, f8), _kept_empty(n, f8), _kept_empty(n, f8), _kept_empty(n, f8),
        _kept_empty(n, f8), _kept_empty(n, f8), _kept_empty(n, np.bool_), _kept_empty(n, np.int64),
    )
    tau2_max = -1.0 if control.tau2_max is None else float(control.tau2_max)
    kernel = _fit_rows_serial if n * yi.shape[1] <= _SERIAL_CELLS else _fit_rows
    guarded = 1 <= kernels.SAFEGUARD_P if control.safeguard is None else bool(control.safeguard)
    kernel(yi, vi, code, float(control.threshold), int(control.maxiter), tau2_max, bool(control.ll0check), guarded,
           out)
    k, est, se, tau2, i2, qe, kh, conv, it = out
    if n and k.min() < 0:
        _raise_invalid(yi, vi, k, row0)
    return {"k": k, "estimate": est, "se_z": se, "tau2": tau2, "I2": i2, "QE": qe, "kh_factor": kh,
            "converged": conv, "iterations": it}


def _intervals(part: dict[str, np.ndarray], test: str, level: float) -> dict[str, np.ndarray]:
    """CI and PI (predict.rma) from the per-row estimate, se and tau^2."""
    k = part["k"]
    alpha = 1.0 - level / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if test == "knha":
            # kh_factor is metafor's s2w (kernels.knha_factor); a single study is fitted with test="z", as
            # rma and metafor ('Setting argument test="z" since k=1.')
            se = part["se_z"] * np.sqrt(np.where(k == 1, 1.0, part["kh_factor"]))
            ks, inverse = np.unique(k, return_inverse=True)  # one t quantile per distinct k, not per row
            crit_k = np.where(ks > 1, special.stdtrit(np.maximum(ks - 1, 1), 1.0 - alpha / 2.0),
                              np.where(ks == 1, special.ndtri(1.0 - alpha / 2.0), np.nan))
            crit = crit_k[inverse.reshape(-1)]
        else:
            se = part["se_z"]
            crit = special.ndtri(1.0 - alpha / 2.0)
        est = part["estimate"]
        n = est.shape[0]
        if se is part["se_z"]:
            se_kept = se
        else:
            se_kept = _kept_empty(n, np.float64)
            np.copyto(se_kept, se)
        half_pi = crit * np.sqrt(se * se + part["tau2"])
        half_ci = crit * se
        res = {name: _kept_empty(n, np.float64) for name in ("ci_lb", "ci_ub", "pi_lb", "pi_ub")}
        np.subtract(est, half_ci, out=res["ci_lb"])
        np.add(est, half_ci, out=res["ci_ub"])
        np.subtract(est, half_pi, out=res["pi_lb"])
        np.add(est, half_pi, out=res["pi_ub"])
        res["se"] = se_kept
        return res


def _iter_chunks(yi, vi, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if isinstance(yi, np.ndarray) or isinstance(vi, np.ndarray):
        if not (isinstance(yi, np.ndarray) and isinstance(vi, np.ndarray)):
            raise TypeError("rma_batch: pass yi and vi both as arrays or both as iterables of 2-D chunks")
        if yi.ndim != 2 or vi.ndim != 2:
            raise ValueError(f"rma_batch: yi and vi must be 2-D (one row per meta-analysis); got "
                             f"{yi.ndim}-D and {vi.ndim}-D")
        if yi.shape != vi.shape:
            raise ValueError(f"rma_batch: yi has shape {yi.shape} but vi has shape {vi.shape}")
        for start in range(0, yi.shape[0], chunk_size):
            yield yi[start:start + chunk_size], vi[start:start + chunk_size]
        return
    yield from zip(yi, vi, strict=True)


def rma_batch(
    yi,
    vi,
    method: Method = "REML",
    *,
    level: float = 95,
    test: Test = "z",
    chunk_size: int = 65_536,
    control: BatchControl | None = None,
) -> BatchResult:
    """Fit the intercept-only random-effects model to every row of `yi`/`vi`, as `rma(yi[r], vi[r])`.

    `yi`, `vi`: 2-D arrays (rows = meta-analyses, NaN-padded for unequal k; a memory-mapped array works and
    is read `chunk_size` rows at a time), or two iterables yielding matching 2-D chunks, for inputs larger
    than memory. Only the results (about 100 bytes a fit) are held in memory.
    `method`: "REML", "ML", "DL" or "PM". `test`: "z" or "knha" (Knapp & Hartung 2003, Stat Med 22:2693).
    """
    if method not in kernels.BATCH_METHODS:
        raise ValueError(f"rma_batch: method={method!r} is not one of {sorted(kernels.BATCH_METHODS)}")
    if test not in kernels.TESTS:
        raise ValueError(f"rma_batch: test={test!r} is not one of {list(kernels.TESTS)}")
    if not (0 < level < 100):
        raise ValueError(f"rma_batch: level={level!r} must be a percentage between 0 and 100")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"rma_batch: chunk_size={chunk_size!r} must be a positive integer")
    control = BatchControl() if control is None else control
    code = kernels.METHOD_CODES[method]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAY_FIELDS}
    row0 = 0
    for yc, vc in _iter_chunks(yi, vi, int(chunk_size)):
        part = _fit_chunk(yc, vc, code, control, row0)
        part.update(_intervals(part, test, level))
        for name in _ARRAY_FIELDS:
            parts[name].append(part[name])
        row0 += part["k"].shape[0]
    arrays = {}
    empty = {"converged": np.bool_, "iterations": np.int64, "k": np.int64}
    for name in _ARRAY_FIELDS:
        chunks = parts.pop(name)
        if len(chunks) == 1:
            arrays[name] = chunks[0]
        elif chunks:
            arrays[name] = np.concatenate(chunks, out=_kept_empty(row0, chunks[0].dtype))
        else:
            arrays[name] = np.empty(0, dtype=empty.get(name, np.float64))
        del chunks
    return BatchResult(method=method, test=test, level=float(level), **arrays)


def leave1out_batch(yi, vi, method: Method = "REML", *, level: float = 95, test: Test = "z",
                    control: BatchControl | None = None) -> BatchResult:
    """Leave-one-out fits (metafor's `leave1out`): row i is the model fitted without study i, all k fits in
    one `rma_batch` call."""
    yi = np.asarray(yi, dtype=float).reshape(-1)
    vi = np.asarray(vi, dtype=float).reshape(-1)
    if yi.shape != vi.shape:
        raise ValueError(f"leave1out_batch: yi has {yi.shape[0]} studies but vi has {vi.shape[0]}")
    k = yi.shape[0]
    y2 = np.tile(yi, (k, 1))
    np.fill_diagonal(y2, np.nan)
    return rma_batch(y2, np.tile(vi, (k, 1)), method, level=level, test=test, control=control)


def cumul_batch(yi, vi, method: Method = "REML", *, level: float = 95, test: Test = "z",
                control: BatchControl | None = None) -> BatchResult:
    """Cumulative fits (metafor's `cumul`) in the given order: row i uses studies 0..i."""
    yi = np.asarray(yi, dtype=float).reshape(-1)
    vi = np.asarray(vi, dtype=float).reshape(-1)
    if yi.shape != vi.shape:
        raise ValueError(f"cumul_batch: yi has {yi.shape[0]} studies but vi has {vi.shape[0]}")
    k = yi.shape[0]
    y2 = np.where(np.tri(k, dtype=bool), yi[None, :], np.nan)
    return rma_batch(y2, np.tile(vi, (k, 1)), method, level=level, test=test, control=control)


def set_threads(n: int) -> int:
    """Set numba's thread count for rma_batch; returns the previous count."""
    old = numba.get_num_threads()
    numba.set_num_threads(int(n))
    return old


__all__ = ["BatchControl", "BatchResult", "cumul_batch", "leave1out_batch", "rma_batch", "set_threads"]

