"""Many random-effects meta-analyses at once: `rma_batch`, the intercept-only `rma` over the rows of a
2-D array, one fused numba loop per meta-analysis that stops as soon as that meta-analysis has converged.

Each row is fitted exactly as metafor 3.8's `rma.uni` fits it (Viechtbauer 2005, J Educ Behav Stat 30:261,
doi:10.3102/10769986030003261; metafor's `help(rma.uni)`, section "Note"):

* REML and ML: Fisher scoring from the Hedges-type start value (RSS - tr(PV)) / (k - p), truncated at 0,
  with step-halving so that tau^2 never becomes negative, until the change in tau^2 is at most
  `threshold`; afterwards metafor's `ll0check` (tau^2 is set to 0 if the likelihood at 0 is higher).
* DL: DerSimonian & Laird (1986, Control Clin Trials 7:177), truncated at 0.
* PM: Paule & Mandel (1982); the root of the generalized Q, Q(tau^2) = k - 1, found by safeguarded Newton
  steps to machine precision (metafor uses `uniroot`; with a tight `tol` both give the same root).

Rows are NaN-padded: a row's studies are the columns where `yi` is not NaN. Heterogeneity and prediction
intervals follow metafor: I^2 = 100 tau^2 / (tau^2 + s^2) with s^2 = (k - 1) sum(w) / ((sum w)^2 - sum(w^2)),
w = 1/vi (Higgins & Thompson 2002, Stat Med 21:1539, eq. 9); the prediction interval is `predict.rma`'s
estimate +/- crit * sqrt(se^2 + tau^2), crit from N(0, 1) under test="z" and from t(k - 1) under "knha".
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Literal

import numba
import numpy as np
import pandas as pd
from numba import njit, prange
from scipy import special

Method = Literal["REML", "ML", "DL", "PM"]
Test = Literal["z", "knha"]

#: method name -> code used inside the numba kernel.
METHOD_CODES: dict[str, int] = {"REML": 0, "ML": 1, "DL": 2, "PM": 3}
TESTS = ("z", "knha")

#: metafor's `con$tol` (.Machine$double.eps^0.25): the margin of its `ll0check` after Fisher scoring.
LL0_TOL = np.finfo(float).eps ** 0.25

#: numba writes its compiled kernels beside this file; fall back to no cache when that folder is read-only
#: (an installed, non-editable copy) and NUMBA_CACHE_DIR is not set, rather than failing at import.
_CACHE = bool(os.environ.get("NUMBA_CACHE_DIR")) or os.access(os.path.dirname(__file__), os.W_OK)

#: rows handled by one parallel task; one scratch buffer is allocated per block, not per row.
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class BatchControl:
    """Algorithm settings, kept apart from the model (as metafor's `control` list).

    `threshold` is the convergence criterion on the change in tau^2 between Fisher-scoring steps (metafor's
    default is 1e-5; 1e-10 here, as `rma`'s Control, so results agree with metafor run to convergence).
    `tau2_max` bounds the Paule-Mandel search; None means metafor 3.8's per-analysis default
    max(100, 10 mad(yi)^2).
    """

    threshold: float = 1e-10
    maxiter: int = 100
    tau2_max: float | None = None
    ll0check: bool = True

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
    (metafor's `s2w` under test="knha"), kept so that Wald, Knapp-Hartung and truncated Knapp-Hartung
    intervals can all be formed from one fit. `converged` is False for rows whose iteration did not
    converge (their other fields hold the last iterate) and for rows with no studies (NaN everywhere).
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
# numba kernel: one meta-analysis
# --------------------------------------------------------------------------------------------------


@njit(cache=_CACHE, nogil=True)
def _weighted_mean(y, v, k, tau2):
    """(sum w, mu) with w = 1/(v + tau2)."""
    sw = 0.0
    swy = 0.0
    for i in range(k):
        w = 1.0 / (v[i] + tau2)
        sw += w
        swy += w * y[i]
    return sw, swy / sw


@njit(cache=_CACHE, nogil=True)
def _q_gen(y, v, k, tau2):
    """Generalized Q at tau2 and its derivative -sum(w^2 r^2) (DerSimonian & Kacker 2007, eq. 7)."""
    sw, mu = _weighted_mean(y, v, k, tau2)
    q = 0.0
    dq = 0.0
    for i in range(k):
        w = 1.0 / (v[i] + tau2)
        r = y[i] - mu
        q += w * r * r
        dq -= w * w * r * r
    return q, dq


@njit(cache=_CACHE, nogil=True)
def _reml_ll_core(y, v, k, tau2, reml):
    """Log-likelihood without the constant -(k - p)/2 log(2 pi) (metafor's rma.uni, ll0check)."""
    sw, mu = _weighted_mean(y, v, k, tau2)
    slog = 0.0
    rss = 0.0
    for i in range(k):
        vt = v[i] + tau2
        r = y[i] - mu
        slog += math.log(vt)
        rss += r * r / vt
    ll = -0.5 * slog - 0.5 * rss
    if reml:
        ll -= 0.5 * math.log(sw)
    return ll


@njit(cache=_CACHE, nogil=True)
def _fisher_scoring(y, v, k, reml, threshold, maxiter, ll0check):
    """REML (reml=True) or ML Fisher scoring as metafor 3.8; returns (tau2, iterations, converged)."""
    # Start value: Hedges-type estimate (RSS - tr(PV)) / (k - 1) with P = I - J/k, truncated at 0.
    ybar = 0.0
    vbar = 0.0
    for i in range(k):
        ybar += y[i]
        vbar += v[i]
    ybar /= k
    vbar /= k
    rss = 0.0
    for i in range(k):
        d = y[i] - ybar
        rss += d * d
    tau2 = (rss - vbar * (k - 1)) / (k - 1)
    if not tau2 > 0.0:
        tau2 = 0.0
    it = 0
    change = threshold + 1.0
    conv = True
    while change > threshold:
        it += 1
        sw = 0.0
        swy = 0.0
        sw2 = 0.0
        sw3 = 0.0
        for i in range(k):
            w = 1.0 / (v[i] + tau2)
            sw += w
            swy += w * y[i]
            w2 = w * w
            sw2 += w2
            sw3 += w2 * w
        mu = swy / sw
        ypp = 0.0  # Y'PPY = sum((w (y - mu))^2)
        for i in range(k):
            a = (y[i] - mu) / (v[i] + tau2)
            ypp += a * a
        if reml:
            tr_p = sw - sw2 / sw
            tr_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) * (sw2 / sw)
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
            conv = False
            break
    if conv and ll0check and tau2 > threshold:
        ll0 = _reml_ll_core(y, v, k, 0.0, reml)
        ll = _reml_ll_core(y, v, k, tau2, reml)
        if ll0 - ll > 1.220703125e-04:  # LL0_TOL, metafor's con$tol
            tau2 = 0.0
    return tau2, it, conv


@njit(cache=_CACHE, nogil=True)
def _dl(y, v, k):
    """DerSimonian-Laird: max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w)), w = 1/v."""
    sw = 0.0
    swy = 0.0
    sw2 = 0.0
    for i in range(k):
        w = 1.0 / v[i]
        sw += w
        swy += w * y[i]
        sw2 += w * w
    mu = swy / sw
    q = 0.0
    for i in range(k):
        r = y[i] - mu
        q += r * r / v[i]
    tau2 = (q - (k - 1)) / (sw - sw2 / sw)
    if not tau2 > 0.0:
        tau2 = 0.0
    return tau2


@njit(cache=_CACHE, nogil=True)
def _mad2(y, k):
    """R's mad(y)^2: (1.4826 * median(|y - median(y)|))^2."""
    med = np.median(y[:k])
    return (1.4826 * np.median(np.abs(y[:k] - med))) ** 2


@njit(cache=_CACHE, nogil=True)
def _pm(y, v, k, tau2_max, maxiter):
    """Paule-Mandel root of Q(tau2) = k - 1 on [0, tau2_max]: Newton steps kept inside a shrinking bracket,
    bisection when a step would leave it. tau2_max < 0 means metafor's default max(100, 10 mad(y)^2).
    Returns (tau2, iterations, converged)."""
    target = k - 1.0
    q0, dq0 = _q_gen(y, v, k, 0.0)
    if q0 < target:
        return 0.0, 0, True
    if tau2_max < 0.0:
        tau2_max = 100.0
        qmax, dqmax = _q_gen(y, v, k, tau2_max)
        if qmax > target:
            tau2_max = max(100.0, 10.0 * _mad2(y, k))
    qmax, dqmax = _q_gen(y, v, k, tau2_max)
    if qmax > target:
        return tau2_max, 0, False
    lo = 0.0
    hi = tau2_max
    x = 0.0
    q = q0
    dq = dq0
    it = 0
    limit = 20 * maxiter
    while it < limit:
        it += 1
        f = q - target
        if f == 0.0:
            return x, it, True
        if f > 0.0:
            lo = x
        else:
            hi = x
        step = -f / dq if dq < 0.0 else np.nan
        xn = x + step
        if not (xn > lo and xn < hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 4e-16 * max(1.0, x) or hi - lo <= 4e-16 * max(1.0, hi):
            return xn, it, True
        x = xn
        q, dq = _q_gen(y, v, k, x)
    return x, it, False


@njit(cache=_CACHE, nogil=True)
def _fit_one(yrow, vrow, ybuf, vbuf, method, threshold, maxiter, tau2_max, ll0check, out, r):
    """Fit row `r`; write k, estimate, se_z, tau2, I2, QE, kh_factor, converged, iterations into `out`."""
    k = 0
    for j in range(yrow.shape[0]):
        if not math.isnan(yrow[j]):
            ybuf[k] = yrow[j]
            vbuf[k] = vrow[j]
            k += 1
    f_k, f_est, f_se, f_tau2, f_i2, f_qe, f_kh, f_conv, f_it = out
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
    conv = True
    it = 0
    if k == 1:
        tau2 = 0.0
    elif method == 0 or method == 1:
        tau2, it, conv = _fisher_scoring(ybuf, vbuf, k, method == 0, threshold, maxiter, ll0check)
    elif method == 2:
        tau2 = _dl(ybuf, vbuf, k)
    else:
        tau2, it, conv = _pm(ybuf, vbuf, k, tau2_max, maxiter)
    sw, mu = _weighted_mean(ybuf, vbuf, k, tau2)
    rss_w = 0.0
    for i in range(k):
        d = ybuf[i] - mu
        rss_w += d * d / (vbuf[i] + tau2)
    # Fixed-effect Q and the typical within-study variance s^2 of I^2.
    sw0 = 0.0
    swy0 = 0.0
    sw20 = 0.0
    for i in range(k):
        w = 1.0 / vbuf[i]
        sw0 += w
        swy0 += w * ybuf[i]
        sw20 += w * w
    mu0 = swy0 / sw0
    qe = 0.0
    for i in range(k):
        d = ybuf[i] - mu0
        qe += d * d / vbuf[i]
    if k > 1:
        s2 = (k - 1) * sw0 / (sw0 * sw0 - sw20)
        i2 = 100.0 * tau2 / (s2 + tau2)
        kh = rss_w / (k - 1)
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


@njit(cache=_CACHE, parallel=True)
def _fit_rows(yi, vi, method, threshold, maxiter, tau2_max, ll0check, out):
    n, m = yi.shape
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for b in prange(nblocks):
        ybuf = np.empty(m)
        vbuf = np.empty(m)
        for r in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            _fit_one(yi[r], vi[r], ybuf, vbuf, method, threshold, maxiter, tau2_max, ll0check, out, r)


# --------------------------------------------------------------------------------------------------
# Python driver: validation, chunking, intervals
# --------------------------------------------------------------------------------------------------

_ARRAY_FIELDS = (
    "k", "estimate", "se", "ci_lb", "ci_ub", "tau2", "I2", "QE", "pi_lb", "pi_ub", "kh_factor",
    "converged", "iterations",
)


def _check_chunk(yi: np.ndarray, vi: np.ndarray, row0: int) -> None:
    """Validate one chunk at the boundary; messages give the row (0-based, over the whole batch) and column."""
    if yi.ndim != 2 or vi.ndim != 2:
        raise ValueError(f"rma_batch: yi and vi must be 2-D (one row per meta-analysis); got {yi.ndim}-D "
                         f"and {vi.ndim}-D")
    if yi.shape != vi.shape:
        raise ValueError(f"rma_batch: yi has shape {yi.shape} but vi has shape {vi.shape} (rows from {row0})")
    present = ~np.isnan(yi)
    bad = present & ~(np.isfinite(yi))
    bad_v = present & ~(vi > 0)
    for name, mask, what in (
        ("yi", bad, "is infinite"),
        ("vi", bad_v, "must be a positive, finite sampling variance where yi is given"),
    ):
        if mask.any():
            r, c = np.argwhere(mask)[0]
            val = (yi if name == "yi" else vi)[r, c]
            raise ValueError(f"rma_batch: {name}[{row0 + r}, {c}] = {val!r} {what}")
    if np.isinf(vi[present]).any():
        r, c = np.argwhere(present & np.isinf(vi))[0]
        raise ValueError(f"rma_batch: vi[{row0 + r}, {c}] is infinite")


def _fit_chunk(yi, vi, code, control: BatchControl, row0: int) -> dict[str, np.ndarray]:
    yi = np.ascontiguousarray(yi, dtype=np.float64)
    vi = np.ascontiguousarray(vi, dtype=np.float64)
    _check_chunk(yi, vi, row0)
    n = yi.shape[0]
    out = (
        np.empty(n, np.int64), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n),
        np.empty(n), np.empty(n, np.bool_), np.empty(n, np.int64),
    )
    tau2_max = -1.0 if control.tau2_max is None else float(control.tau2_max)
    _fit_rows(yi, vi, code, float(control.threshold), int(control.maxiter), tau2_max, bool(control.ll0check), out)
    k, est, se, tau2, i2, qe, kh, conv, it = out
    return {"k": k, "estimate": est, "se_z": se, "tau2": tau2, "I2": i2, "QE": qe, "kh_factor": kh,
            "converged": conv, "iterations": it}


def _intervals(part: dict[str, np.ndarray], test: str, level: float) -> dict[str, np.ndarray]:
    """CI and PI (predict.rma) from the per-row estimate, se and tau^2."""
    k = part["k"]
    alpha = 1.0 - level / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if test == "knha":
            s2w = np.where(part["kh_factor"] <= np.finfo(float).eps, 0.0, part["kh_factor"])
            se = part["se_z"] * np.sqrt(s2w)
            crit = np.where(k > 1, special.stdtrit(np.maximum(k - 1, 1), 1.0 - alpha / 2.0), np.nan)
        else:
            se = part["se_z"]
            crit = special.ndtri(1.0 - alpha / 2.0)
        est = part["estimate"]
        half_pi = crit * np.sqrt(se * se + part["tau2"])
        return {
            "se": se, "ci_lb": est - crit * se, "ci_ub": est + crit * se,
            "pi_lb": est - half_pi, "pi_ub": est + half_pi,
        }


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
    if method not in METHOD_CODES:
        raise ValueError(f"rma_batch: method={method!r} is not one of {sorted(METHOD_CODES)}")
    if test not in TESTS:
        raise ValueError(f"rma_batch: test={test!r} is not one of {list(TESTS)}")
    if not (0 < level < 100):
        raise ValueError(f"rma_batch: level={level!r} must be a percentage between 0 and 100")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"rma_batch: chunk_size={chunk_size!r} must be a positive integer")
    control = BatchControl() if control is None else control
    code = METHOD_CODES[method]
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
        arrays[name] = (
            np.concatenate(chunks) if chunks else np.empty(0, dtype=empty.get(name, np.float64))
        )
        del chunks
    return BatchResult(method=method, test=test, level=float(level), **arrays)


def set_threads(n: int) -> int:
    """Set numba's thread count for rma_batch; returns the previous count."""
    old = numba.get_num_threads()
    numba.set_num_threads(int(n))
    return old


__all__ = ["BatchControl", "BatchResult", "rma_batch", "set_threads"]

