"""Permutation tests for random-effects models, as metafor 3.8's `permutest.rma.uni` (Follmann & Proschan
1999, Biometrics 55:574; Higgins & Thompson 2004, Stat Med 23:1663; Viechtbauer et al. 2015, Res Synth
Methods 6:6, doi:10.1002/jrsm.1113).

* Intercept-only model: the signs of `yi` are flipped at random (or, exact, in all 2^k ways) and the model
  refitted; the p-value is the share of refits with |zval| at least the observed |zval|.
* Meta-regression: the rows of the model matrix are permuted against (yi, vi) at random (or, exact, in
  every distinct order, k! / prod(m_j!) for m_j identical rows) and the model refitted; one p-value per
  coefficient from its |zval|, and one for the omnibus QM.

As in metafor: the first random permutation is the observed order; comparisons allow a tolerance of
sqrt(machine epsilon) (`comptol`); refits that fail to converge are dropped from the shares (`na.rm`);
an exact test is run whenever it needs no more refits than `iter`. Under test="knha" the statistics are
t-values and F, as metafor. All refits run in one vectorised call (`rma_batch` for sign flips,
`batch_mods.fit_permuted` for permutations), not one at a time.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metaexercise.engine import kernels
from metaexercise.engine.batch import BatchControl, rma_batch
from metaexercise.engine.batch_mods import fit_permuted

COMPTOL = np.finfo(float).eps ** 0.5  #: metafor's con$comptol


@dataclass(frozen=True, slots=True)
class PermutationTestResult:
    """Permutation p-values beside the observed statistics (metafor's `permutest` object)."""

    method: str
    test: str
    exact: bool
    iter: int
    beta: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    QM: float
    QMp: float
    zval_perm: np.ndarray
    QM_perm: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        names = ["intrcpt"] + [f"mod{j}" for j in range(1, len(self.beta))]
        stat = "tval" if self.test == "knha" else "zval"
        return pd.DataFrame({"estimate": self.beta, stat: self.zval, "pval": self.pval}, index=names)

    def summary(self) -> str:
        kind = "exact" if self.exact else "approximate"
        stat = "F" if self.test == "knha" else "QM"
        lines = [f"Test of moderators ({stat}) by {kind} permutation test ({self.iter} iterations):",
                 f"{stat} = {self.QM:.4f}, p-val* = {self.QMp:.4f}", "",
                 self.to_frame().to_string(float_format=lambda x: f"{x:.4f}"), ""]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _unique_orders(labels: np.ndarray) -> np.ndarray:
    """Every distinct arrangement of the multiset `labels`, in lexicographic order (Knuth's Algorithm L)."""
    a = sorted(labels.tolist())
    out = [list(a)]
    n = len(a)
    while True:
        i = n - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return np.array(out, dtype=np.int64)
        j = n - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1:] = reversed(a[i + 1:])
        out.append(list(a))


def _exact_count(labels: np.ndarray) -> float:
    counts = np.unique(labels, return_counts=True)[1]
    denom = math.prod(math.factorial(int(c)) for c in counts)
    total = math.factorial(len(labels)) // denom
    return float(total)


def _pvalues(zperm, qperm, conv, z, qm, comptol):
    keep = conv & np.isfinite(qperm)
    zp = zperm[keep]
    pval = np.mean(np.abs(zp) >= np.abs(z) - comptol, axis=0)
    qmp = float(np.mean(qperm[keep] >= qm - comptol))
    return np.minimum(pval, 1.0), qmp


def permutest_arrays(
    yi, vi, mods=None, *, method: str = "REML", test: str = "z", exact: bool = False, iter: int = 1000,
    seed=None, comptol: float = COMPTOL, control: BatchControl | None = None,
) -> PermutationTestResult:
    """Permutation test of `rma(yi, vi, mods=mods, method=method, test=test)`; see the module docstring.

    `mods`: None (intercept-only), a 1-D array (one moderator) or a 2-D array (k x q); the intercept is
    added, as `rma`. `seed` feeds numpy's default_rng for the random (non-exact) test. `control`: the
    refits' threshold and maxiter (default: `rma`'s); which refits fail to converge, and so drop out of
    the p-values, depends on it, as in metafor, whose permutest refits with the model's own control.
    """
    control = BatchControl() if control is None else control
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.shape[0]
    if method not in kernels.MODS_METHODS:
        raise ValueError(f"permutest: method={method!r} is not one of {sorted(kernels.MODS_METHODS)}")
    if test not in kernels.TESTS:
        raise ValueError(f"permutest: test={test!r} is not one of {list(kernels.TESTS)}")
    if int(iter) != iter or iter <= 1:
        raise ValueError(f"permutest: iter={iter!r} must be an integer >= 2 (as metafor)")
    rng = np.random.default_rng(seed)
    if mods is None:
        return _sign_flip_test(yi, vi, method, test, exact, int(iter), rng, comptol, control)
    m = np.asarray(mods, dtype=float)
    m = m.reshape(k, -1) if m.ndim == 1 else m
    if m.shape[0] != k:
        raise ValueError(f"permutest: mods has {m.shape[0]} rows but yi has {k} studies")
    X = np.column_stack([np.ones(k), m])
    labels = np.unique(X, axis=0, return_inverse=True)[1].reshape(-1)
    n_exact = _exact_count(labels)
    use_exact = bool(exact) or n_exact <= iter
    if use_exact:
        if not math.isfinite(n_exact) or n_exact > 5e7:
            raise ValueError(f"permutest: an exact test needs {n_exact:.3g} refits; too many. Use exact=False.")
        orders = _unique_orders(labels)
        representative = np.array([np.flatnonzero(labels == g)[0] for g in range(labels.max() + 1)])
        perms = representative[orders]
    else:
        perms = np.argsort(rng.random((int(iter), k)), axis=1)
        perms[0] = np.arange(k)
    opts = {"threshold": control.threshold, "maxiter": control.maxiter, "tau2_max": control.tau2_max,
            "safeguard": control.safeguard}
    beta0, z0, qm0, _t, conv0 = fit_permuted(yi, vi, X, np.arange(k)[None, :], method, test, **opts)
    _b, zperm, qperm, _t2, conv = fit_permuted(yi, vi, X, perms, method, test, **opts)
    pval, qmp = _pvalues(zperm, qperm, conv, z0[0], qm0[0], comptol)
    return PermutationTestResult(method=method, test=test, exact=use_exact, iter=int(perms.shape[0]),
                                 beta=beta0[0], zval=z0[0], pval=pval, QM=float(qm0[0]), QMp=qmp,
                                 zval_perm=zperm, QM_perm=qperm)


def _sign_flip_test(yi, vi, method, test, exact, iter, rng, comptol, control) -> PermutationTestResult:
    if method not in kernels.BATCH_METHODS:
        raise ValueError(f"permutest: the intercept-only sign-flip test is implemented for "
                         f"{', '.join(kernels.BATCH_METHODS)} (rma_batch), not {method}")
    k = yi.shape[0]
    n_exact = 2.0**k
    use_exact = bool(exact) or n_exact <= iter
    if use_exact:
        if n_exact > 2**24:
            raise ValueError(f"permutest: an exact test needs 2^{k} refits; too many. Use exact=False.")
        # rows ordered as R's expand.grid(list(c(1, -1)), ...): the first study's sign varies fastest
        signs = np.array(list(itertools.product([1.0, -1.0], repeat=k)))[:, ::-1]
    else:
        signs = rng.choice([-1.0, 1.0], size=(iter, k))
        signs[0] = 1.0
    obs = rma_batch(yi[None, :], vi[None, :], method, test=test, control=control)
    res = rma_batch(signs * yi, np.broadcast_to(vi, signs.shape).copy(), method, test=test, control=control)
    z0 = obs.estimate / obs.se
    zperm = (res.estimate / res.se)[:, None]
    qperm = zperm[:, 0] ** 2
    pval, qmp = _pvalues(zperm, qperm, res.converged, z0, float(z0[0] ** 2), comptol)
    return PermutationTestResult(method=method, test=test, exact=use_exact, iter=int(signs.shape[0]),
                                 beta=obs.estimate.copy(), zval=z0, pval=pval, QM=float(z0[0] ** 2), QMp=qmp,
                                 zval_perm=zperm, QM_perm=qperm)


def permutest(fit, *, exact: bool = False, iter: int = 1000, seed=None,
              comptol: float = COMPTOL) -> PermutationTestResult:
    """Permutation test of a fitted `rma` model (metafor's `permutest(x, exact, iter)`), refitted with the
    model's own method, test and control."""
    if not getattr(fit, "int_incl", True) or getattr(fit, "user_weights", None) is not None:
        raise ValueError("permutest: models without an intercept or with user weights are not supported")
    if getattr(fit, "tau2_fixed", False):
        raise ValueError("permutest: models with a fixed tau2 (rma(..., tau2=...)) are not supported")
    fc = getattr(fit, "control", None)
    control = BatchControl() if fc is None else BatchControl(threshold=fc.threshold, maxiter=fc.maxiter,
                                                             tau2_max=fc.tau2_max, safeguard=fc.safeguard)
    X = np.asarray(fit.X, dtype=float)
    mods = None if X.shape[1] == 1 else X[:, 1:]
    return permutest_arrays(fit.yi, fit.vi, mods, method=fit.method, test=fit.test, exact=exact, iter=iter,
                            seed=seed, comptol=comptol, control=control)
