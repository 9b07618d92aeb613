"""`gosh`: the model fitted to subsets of the studies (GOSH: "graphical display of study heterogeneity",
Olkin, Dahabreh & Trikalinos 2012, Res Synth Methods 3:214, doi:10.1002/jrsm.1053), as metafor 3.8's
`gosh.rma`.

Which subsets (metafor's `gosh.rma`): all 2^k - 1 non-empty subsets when there are at most `subsets` of them
(default 10^6), in the order of R's ``expand.grid`` (study 1 varies fastest) stably sorted by size, single
studies included; otherwise `subsets` random subsets: a size m drawn from Binomial(k, 1/2) restricted to
m >= 1, then m studies drawn without replacement (duplicates are possible, as in metafor).

How each subset is fitted (metafor's `.profile.rma.uni` with ``subset=TRUE``):

* REML, ML, PM: the model refitted by `rma` on the subset, with the
  fit's control; here all subsets at once by the batched engine `rma_batch`, which fits each row as `rma`
  does. I² = 100 τ²/(τ² + s²) and H² = τ²/s² + 1 with s² = (k - 1) Σw / ((Σw)² - Σw²), w = 1/vᵢ
  (Higgins & Thompson 2002, Stat Med 21:1539, eq. 9), as `rma.uni`.
* EE and DL: metafor's closed-form shortcut, Q-based I² = max(0, 100 (Q - (k - 1))/Q) and H² = Q/(k - 1)
  (for DL also when τ̂² is truncated at 0, where H² < 1 then, unlike `rma`'s H² = 1); DL's τ² is
  max(0, (Q - (k - 1))/(Σw - Σw²/Σw)) (DerSimonian & Laird 1986, Control Clin Trials 7:177), estimate the
  weighted mean with 1/(vᵢ + τ̂²). metafor takes this route for every fit whose method is "DL", even one
  with τ² fixed by the user; so does this function.
* τ² fixed by the user (other methods): estimate with weights 1/(vᵢ + τ²), I² and H² from that τ², as
  `rma.uni`.

A subset of one study has Q = 0, I² = 0, H² = 1 and τ² = 0 (or the fixed τ²).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.engine import kernels
from metaexercise.engine.batch import BatchControl, rma_batch
from metaexercise.engine.model import RMAResult

#: metafor's default for `subsets` (10^6): all subsets up to this many, a random sample beyond.
SUBSETS_DEFAULT = 1_000_000

#: Subsets handed to the batched engine at a time: the NaN-padded yi/vi copies of one chunk stay small.
CHUNK_ROWS = 65_536

#: Columns of `GoshResult.res`, metafor's names and order.
COLUMNS = ("k", "QE", "I2", "H2", "tau2", "estimate")

#: Methods fitted by gosh: the batched engine's τ² estimators and the equal-effects model.
GOSH_METHODS = (*kernels.BATCH_METHODS, "EE")


@dataclass(frozen=True, slots=True)
class GoshResult:
    """metafor's `gosh.rma` object: `res` holds one row per subset (columns k, QE, I2, H2, tau2, estimate),
    `incl` the subsets (n_subsets x k booleans, column j = study j), `fit` whether each fit succeeded (no NA in
    its row, metafor's `fit`), `exact` whether all subsets were fitted (else a random sample); `model` is the
    fitted model the subsets were drawn from."""

    res: pd.DataFrame
    incl: np.ndarray
    fit: np.ndarray
    k: int
    method: str
    exact: bool
    model: RMAResult

    def __len__(self) -> int:
        return int(self.incl.shape[0])

    def summary(self) -> str:
        """Laid out as metafor's `print.gosh.rma`: fits attempted and succeeded, then mean, min, quartiles
        (R's `quantile`, type 7 = numpy's default) and max of each column (QE labelled Q; no tau2 row for
        an equal-effects model), with 4 decimals."""
        res = self.res
        rows = [c for c in COLUMNS if not (c == "tau2" and self.method == "EE")]
        table = []
        for c in rows:
            x = res[c].to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            if x.size:
                vals = [x.mean(), x.min(), *np.quantile(x, [0.25, 0.5, 0.75]), x.max()]
            else:
                vals = [np.nan] * 6
            table.append(["NA" if math.isnan(v) else f"{v:.4f}" for v in vals])
        names = ["Q" if c == "QE" else c for c in rows]
        head = ["mean", "min", "q1", "median", "q3", "max"]
        nw = max(len(n) for n in names)
        widths = [max(len(h), *(len(r[j]) for r in table)) for j, h in enumerate(head)]
        lines = ["", f"Model fits attempted: {len(self)}", f"Model fits succeeded: {int(self.fit.sum())}", "",
                 " " * nw + "".join(" " + h.rjust(w) for h, w in zip(head, widths)) + " "]
        for n, r in zip(names, table):
            lines.append(n.ljust(nw) + "".join(" " + v.rjust(w) for v, w in zip(r, widths)) + " ")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        kind = "all" if self.exact else "random"
        return f"<GoshResult k={self.k} method={self.method} subsets={len(self)} ({kind})>"


def _n_subsets(subsets) -> int:
    if subsets is None:
        return SUBSETS_DEFAULT
    if isinstance(subsets, bool) or not isinstance(subsets, int | float | np.integer | np.floating):
        raise TypeError(f"gosh: subsets must be a number, got {type(subsets).__name__}")
    if not math.isfinite(subsets):
        raise ValueError(f"gosh: subsets must be finite, got {subsets!r}")
    n = round(float(subsets))  # metafor: subsets <- round(subsets)
    if n <= 1:
        raise ValueError(f"gosh: subsets must be >= 2 (metafor: \"Argument 'subsets' must be >= 2.\"), "
                         f"got {subsets!r}")
    return int(n)


def all_subsets(k: int) -> np.ndarray:
    """Every non-empty subset of k studies as an (2^k - 1) x k boolean array, in metafor's order: R's
    ``expand.grid`` of k (FALSE, TRUE) columns (row r holds the bits of r, study 1 the lowest), the empty row
    dropped, stably sorted by subset size."""
    if k > 62:
        raise ValueError(f"gosh: 2^{k} - 1 subsets cannot be enumerated")
    r = np.arange(1, 1 << k, dtype=np.int64)
    size = np.zeros(r.shape, dtype=np.int8)
    for j in range(k):  # popcount, one pass per study (k passes over int64s, no per-subset Python loop)
        size += ((r >> j) & 1).astype(np.int8)
    r = r[np.argsort(size, kind="stable")]
    return ((r[:, None] >> np.arange(k, dtype=np.int64)) & 1).astype(bool)


def random_subsets(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random subsets as metafor draws them: size m from Binomial(k, 1/2) given m >= 1 (R: ``sample(1:k,
    n, replace=TRUE, prob=dbinom(1:k, k, 0.5))``), then m of the k studies without replacement. Sorted by
    size (the sizes are drawn and sorted first: the same distribution as metafor's sort afterwards)."""
    sizes = np.arange(1, k + 1)
    prob = stats.binom.pmf(sizes, k, 0.5)
    m = np.sort(rng.choice(sizes, size=n, replace=True, p=prob / prob.sum()))
    incl = np.empty((n, k), dtype=bool)
    cols = np.arange(k)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        order = np.argsort(rng.random((stop - start, k)), axis=1)  # a random permutation per row
        np.put_along_axis(incl[start:stop], order, cols[None, :] < m[start:stop, None], axis=1)
    return incl


def _padded(incl: np.ndarray, yi: np.ndarray, vi: np.ndarray):
    """The subsets as rma_batch's NaN-padded rows, one chunk at a time."""
    for start in range(0, incl.shape[0], CHUNK_ROWS):
        m = incl[start:start + CHUNK_ROWS]
        yield np.where(m, yi, np.nan), np.where(m, vi, np.nan)


def _subset_sums(incl: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """incl @ cols (per-subset sums of per-study columns), a chunk at a time."""
    out = np.empty((incl.shape[0], cols.shape[1]))
    for start in range(0, incl.shape[0], CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = incl[start:start + CHUNK_ROWS].astype(np.float64) @ cols
    return out


def _batch_control(fit: RMAResult) -> BatchControl:
    c = fit.control
    unsupported = [name for name, default in (("stepadj", kernels.STEPADJ), ("tau2_init", None), ("tau2_min", 0.0))
                   if getattr(c, name) != default]
    if unsupported and fit.method not in ("EE", "DL") and not fit.tau2_fixed:
        raise ValueError(f"gosh: the fit's control sets {', '.join(unsupported)}, which the batched engine does "
                         "not support; refit the model without it")
    return BatchControl(threshold=c.threshold, maxiter=c.maxiter, tau2_max=c.tau2_max, ll0check=c.ll0check,
                        safeguard=c.safeguard)


def _check_fit(fit) -> None:
    if not isinstance(fit, RMAResult):
        raise TypeError(f"gosh: fit must be a model fitted by rma(), got {type(fit).__name__}")
    if fit.k == 1:
        raise ValueError("gosh: stopped because k = 1")
    if not fit.int_only:
        raise ValueError("gosh: fit has moderators; gosh fits intercept-only models (the batched engine)")
    if fit.method not in GOSH_METHODS:
        raise ValueError(f"gosh: fit's method {fit.method!r} is not one of {list(GOSH_METHODS)} (the batched "
                         "engine's estimators and EE)")
    # A subset of two studies is as unbalanced as the data get: where one weight exceeds the other's by more
    # than the engine's limit, the heterogeneity statistics of that pair are rounding noise (rma_batch refuses).
    vmin, vmax = float(fit.vi.min()), float(fit.vi.max())
    if vmax / vmin > kernels.WEIGHT_DOMINANCE_MAX:
        i, j = int(np.argmin(fit.vi)), int(np.argmax(fit.vi))
        raise ValueError(f"gosh: the sampling variances of studies {i} and {j} (0-based) differ by a factor "
                         f"{vmax / vmin:.3g} (> {kernels.WEIGHT_DOMINANCE_MAX:g}): in the subset of these two the "
                         "heterogeneity statistics would be rounding noise in double precision")


def gosh(fit: RMAResult, subsets: float | None = None, seed=None) -> GoshResult:
    """Fit `fit`'s model to all subsets of its studies (or to `subsets` random ones), as metafor 3.8's
    ``gosh(x, subsets)``; see the module's docstring for the rules.

    `fit`: an intercept-only model from `rma` (method REML, ML, DL, PM or EE; τ² may be fixed).
    `subsets`: None (metafor's default, 10^6) or a number >= 2: all 2^k - 1 subsets are fitted when there are
    at most this many, else this many random subsets. `seed`: for the random subsets (an int, a
    `numpy.random.Generator` or None; `numpy.random.default_rng(seed)`).
    """
    _check_fit(fit)
    n_max = _n_subsets(subsets)
    k = fit.k
    exact = k < 63 and (1 << k) - 1 <= n_max
    incl = all_subsets(k) if exact else random_subsets(k, n_max, np.random.default_rng(seed))
    yi, vi = fit.yi, fit.vi
    method = fit.method
    n = incl.shape[0]
    ks = incl.sum(axis=1).astype(np.int64)
    w = 1.0 / vi
    sw0, sw20 = _subset_sums(incl, np.column_stack([w, w * w])).T

    if method in ("EE", "DL") and not fit.tau2_fixed:
        # closed form, vectorised over subsets (no iteration to batch): metafor's own shortcut for these two
        qe, tau2, est = _closed_form(incl, yi, vi, method, ks)
        i2, h2 = _q_based(qe, ks)
        return _result(incl, ks, qe, i2, h2, tau2, est, np.ones(n, dtype=bool), k, method, exact, fit)
    # The fixed-effect Q (and every estimator's fit) from the batched engine; DL also for EE/fixed τ², whose
    # estimates and I^2 do not need τ^2 estimated but whose Q the engine computes accurately (no cancellation).
    batch_method = method if method in kernels.BATCH_METHODS and not (fit.tau2_fixed and method != "DL") else "DL"
    first, second = itertools.tee(_padded(incl, yi, vi))  # rma_batch zips the two: one chunk in memory
    b = rma_batch((y for y, _ in first), (v for _, v in second), batch_method, control=_batch_control(fit))
    qe = b.QE.copy()
    ok = b.converged.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "DL":  # here only with a fixed tau^2: metafor still takes the DL shortcut
            i2, h2 = _q_based(qe, ks)
            tau2 = b.tau2.copy()
            est = b.estimate.copy()
        else:
            if fit.tau2_fixed:
                t = float(fit.tau2)
                wt = 1.0 / (vi + t)
                s = _subset_sums(incl, np.column_stack([wt, wt * yi]))
                est = s[:, 1] / s[:, 0]
                tau2 = np.full(n, t)
            else:
                est = b.estimate.copy()
                tau2 = b.tau2.copy()
            s2 = (ks - 1) * sw0 / (sw0 * sw0 - sw20)
            i2 = np.where(ks > 1, 100 * tau2 / (s2 + tau2), 0.0)
            h2 = np.where(ks > 1, tau2 / s2 + 1, 1.0)
    return _result(incl, ks, qe, i2, h2, tau2, est, ok, k, method, exact, fit)


def _q_based(qe: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """metafor's shortcut for EE and DL (.profile.rma.uni, models 1 and 2): Q-based I² and H²."""
    with np.errstate(divide="ignore", invalid="ignore"):
        i2 = np.where(ks > 1, np.maximum(0.0, 100 * (qe - (ks - 1)) / qe), 0.0)  # Q = 0: max(0, -Inf)
        h2 = np.where(ks > 1, qe / (ks - 1), 1.0)
    return i2, h2


def _closed_form(incl: np.ndarray, yi: np.ndarray, vi: np.ndarray, method: str, ks: np.ndarray):
    """(Q, τ², estimate) of every subset for EE and DL, a chunk of subsets at a time: Q by the two-pass sum
    Σ wᵢ (yᵢ − μ̂)² (no cancellation), DerSimonian & Laird's (1986) τ² = max(0, (Q − (k − 1)) / (Σw − Σw²/Σw))
    (0 for one study), and the weighted mean with 1/(vᵢ + τ²)."""
    n = incl.shape[0]
    qe, tau2, est = np.empty(n), np.zeros(n), np.empty(n)
    w = 1.0 / vi
    for start in range(0, n, CHUNK_ROWS):
        m = incl[start:start + CHUNK_ROWS].astype(np.float64)
        W = m * w
        sw = W.sum(axis=1)
        mu = (W @ yi) / sw
        r = yi[None, :] - mu[:, None]
        q = np.einsum("ij,ij->i", W, r * r)
        qe[start:start + CHUNK_ROWS] = q
        if method == "EE":
            est[start:start + CHUNK_ROWS] = mu
            continue
        kk = ks[start:start + CHUNK_ROWS]
        c = sw - (W * w).sum(axis=1) / sw
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(kk > 1, np.maximum(0.0, (q - (kk - 1)) / c), 0.0)
        tau2[start:start + CHUNK_ROWS] = t
        Wre = m / (vi[None, :] + t[:, None])
        est[start:start + CHUNK_ROWS] = (Wre @ yi) / Wre.sum(axis=1)
    return qe, tau2, est


def _result(incl, ks, qe, i2, h2, tau2, est, ok, k, method, exact, fit) -> GoshResult:
    cols = {"QE": qe, "I2": i2, "H2": h2, "tau2": tau2, "estimate": est}
    for x in cols.values():
        ok &= np.isfinite(x)
    failed = ~ok
    if failed.any():  # a failed fit is NA in every column but k, as metafor
        for x in cols.values():
            x[failed] = np.nan
    res = pd.DataFrame({"k": ks, **cols}, copy=False)
    return GoshResult(res=res, incl=incl, fit=ok, k=k, method=method, exact=exact, model=fit)


__all__ = ["GOSH_METHODS", "GoshResult", "all_subsets", "gosh", "random_subsets"]
