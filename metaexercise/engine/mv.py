"""`rma_mv`: multilevel and multivariate meta-analytic models, as metafor 3.8's `rma.mv`.

Model (Viechtbauer 2010, J Stat Softw 36(3); metafor's rma.mv help; Konstantopoulos 2011, Res Synth Methods 2:61 for
the multilevel case; Berkey et al. 1998, Stat Med 17:2537 for the multivariate one)::

    y = Xβ + Σ_j Z_j u_j + Σ_t (the inner | outer effects of term t) + ε,   ε ~ N(0, V)

with independent random intercepts u_j ~ N(0, σ_j² I) for every level of each ``~ 1 | f`` factor (nested factors
``~ 1 | a/b`` give one σ² per level of nesting) and, for an ``~ inner | outer`` term, correlated effects for the inner
levels within each outer level with covariance G (`struct`: CS, HCS, UN, ID, DIAG, AR, HAR; see `mv_structures`).
The estimates' marginal covariance is M = V + Σ_j σ_j² Z_jZ_j' + (Z₁GZ₁') ∘ (Z₂Z₂') (+ the same for a second
``inner | outer`` term with γ², φ); β̂ = (X'M⁻¹X)⁻¹X'M⁻¹y with Var(β̂) = (X'M⁻¹X)⁻¹, the variance components by ML or
REML (`mv_fit`), computed cluster by cluster (`mv_kernel`). Q_E = (y − Xβ̂_FE)'V⁻¹(y − Xβ̂_FE) with β̂_FE the GLS
estimate under V alone (metafor: NA when V is not positive definite).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse, special

from metaexercise._version import __version__
from metaexercise.engine import kernels
from metaexercise.engine.mv_fit import Components, MVControl, maximise
from metaexercise.engine.mv_kernel import BlockKernel, NotPositiveDefinite
from metaexercise.engine.mv_structures import STRUCTS, Structure, counts
from metaexercise.engine.mv_terms import Factor, InnerOuter, column, model_matrix, parse_random
from metaexercise.engine.wls import redundant_columns

if TYPE_CHECKING:  # pandas is imported where a table is built
    import pandas as pd

    from metaexercise.engine.mv_confint import MVConfint

MV_METHODS: tuple[str, ...] = ("REML", "ML", "EE", "FE", "CE")
MV_TESTS: tuple[str, ...] = ("z", "t")


class RMAMVWarning(UserWarning):
    """What metafor's `rma.mv` warns about (a component fixed because it cannot be estimated, dropped predictors,
    a V that is not positive definite)."""


@dataclass
class _Spec:
    """What a fit needs to be evaluated again at other variance components (profiles, M, M⁻¹)."""

    kernel: BlockKernel
    structs: list[str]
    n_inner: list[int]
    fixed: Components  # the user's fixed values and metafor's automatic ones; NaN = estimated
    reml: bool
    control: MVControl
    scale: float  # typical size of a variance here (boundary detection)
    estimated: bool  # whether any variance component is in the model at all


@dataclass(frozen=True)
class RMAMVResult:
    """A fitted multilevel / multivariate model (metafor's ``rma.mv`` object).

    Per-coefficient fields (``beta``, ``se``, ``zval``, ``pval``, ``ci_lb``, ``ci_ub``) are 1-D arrays, intercept first;
    ``vb`` is the p × p covariance of β̂. ``sigma2`` has one entry per ``~ 1 | f`` component (``s_names``), ``tau2`` /
    ``rho`` (and ``gamma2`` / ``phi``) those of the ``inner | outer`` terms (empty when absent). ``ll``, ``deviance``,
    ``AIC``, ``BIC``, ``AICc`` are for the fitted method; ``fit_stats`` holds both ML and REML versions.
    """

    k: int
    p: int
    method: str
    test: str
    level: float
    yi: np.ndarray
    V: object  # the sampling variances (1-D) or their k × k var-cov matrix (numpy or scipy.sparse), as fitted
    vi: np.ndarray
    X: np.ndarray
    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    ddf: np.ndarray | None
    sigma2: np.ndarray
    tau2: np.ndarray
    rho: np.ndarray
    gamma2: np.ndarray
    phi: np.ndarray
    QE: float
    QEp: float
    QM: float
    QMp: float
    QM_df: tuple[float, float | None]
    btt: tuple[int, ...]
    ll: float
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    fit_stats: dict
    parms: int
    struct: tuple[str, str]
    random: tuple[str, ...]
    s_names: tuple[str, ...]
    s_nlevels: tuple[int, ...]
    g_names: tuple[str, ...]
    g_nlevels: tuple[int, ...]
    g_levels: tuple[str, ...]
    g_levels_k: tuple[int, ...]
    g_levels_comb_k: tuple[int, ...]
    h_names: tuple[str, ...]
    h_nlevels: tuple[int, ...]
    h_levels: tuple[str, ...]
    h_levels_k: tuple[int, ...]
    h_levels_comb_k: tuple[int, ...]
    vc_fix: dict
    int_only: bool
    int_incl: bool
    clusters: np.ndarray  # block of M (0-based, in order of first appearance) that each estimate belongs to
    converged: bool
    iterations: int
    control: MVControl
    notes: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    version: str = __version__
    _spec: _Spec | None = field(default=None, repr=False, compare=False)

    # -- convenience -------------------------------------------------------------------------------------------------
    @property
    def withS(self) -> bool:  # noqa: N802 - metafor's name
        return len(self.s_names) > 0

    @property
    def withG(self) -> bool:  # noqa: N802
        return len(self.g_names) > 0

    @property
    def withH(self) -> bool:  # noqa: N802
        return len(self.h_names) > 0

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1 if len(self.clusters) else 0

    @property
    def fitted(self) -> np.ndarray:
        return self.X @ self.beta

    @property
    def residuals(self) -> np.ndarray:
        return self.yi - self.fitted

    @property
    def G(self) -> np.ndarray | None:  # noqa: N802 - metafor's name
        """The inner | outer term's G (τ², ρ), rows and columns in ``g_levels`` order."""
        if not self.withG:
            return None
        return Structure(self.struct[0], len(self.g_levels), self.tau2, self.rho).G(self.tau2, self.rho)

    @property
    def H(self) -> np.ndarray | None:  # noqa: N802
        if not self.withH:
            return None
        return Structure(self.struct[1], len(self.h_levels), self.gamma2, self.phi).G(self.gamma2, self.phi)

    def _blocks(self) -> list[np.ndarray]:
        spec = self._spec
        Gs = [g for g in (self.G, self.H) if g is not None]
        return spec.kernel.blocks(self.sigma2, Gs)

    def marginal_vcov(self) -> sparse.csr_array:
        """M = V + Z G Z' at the estimates, as a k × k scipy.sparse matrix in the data's order; it is block-diagonal
        over ``clusters`` (metafor's ``fit$M``)."""
        return self._spec.kernel.to_sparse(self._blocks())

    def weight_matrix(self) -> sparse.csr_array:
        """W = M⁻¹, block by block, as a k × k scipy.sparse matrix in the data's order (metafor's
        ``weights(fit, type="matrix")``)."""
        inv = []
        for M in self._blocks():
            L = np.linalg.cholesky(M)
            Linv = np.linalg.inv(L)
            inv.append(np.matmul(Linv.transpose(0, 2, 1), Linv))
        return self._spec.kernel.to_sparse(inv)

    def cluster_blocks(self) -> list[np.ndarray]:
        """The estimates' positions in each block of M (one array per cluster, in ``clusters`` order)."""
        order = np.argsort(self.clusters, kind="stable")
        return np.split(order, np.cumsum(np.bincount(self.clusters))[:-1])

    # -- derived results ---------------------------------------------------------------------------------------------
    def confint(self, *, sigma2: int | None = None, tau2: int | None = None, rho: int | None = None,
                gamma2: int | None = None, phi: int | None = None, level: float | None = None,
                control: dict | None = None) -> MVConfint:
        """Profile-likelihood CIs of the variance components (metafor's `confint.rma.mv`); see `mv_confint.confint`."""
        from metaexercise.engine.mv_confint import confint

        return confint(self, sigma2=sigma2, tau2=tau2, rho=rho, gamma2=gamma2, phi=phi, level=level,
                       control=control)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        stat = "tval" if self.test == "t" else "zval"
        cols = {"estimate": self.beta, "se": self.se, stat: self.zval, "pval": self.pval, "ci_lb": self.ci_lb,
                "ci_ub": self.ci_ub}
        return pd.DataFrame(cols, index=pd.Index(list(self.coef_names), name="coef"))

    def summary(self) -> str:
        from metaexercise.engine.mv_print import format_rma_mv

        return format_rma_mv(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<RMAMVResult k={self.k} p={self.p} method={self.method} sigma2={np.round(self.sigma2, 6).tolist()} "
                f"tau2={np.round(self.tau2, 6).tolist()} rho={np.round(self.rho, 6).tolist()}>")

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(self.summary())}</pre>"


# ----------------------------------------------------------------------------------------------------------------------
# input processing
# ----------------------------------------------------------------------------------------------------------------------
def _as_vector(name: str, x, data) -> np.ndarray:
    if isinstance(x, str):
        x = column(data, x)
    a = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=float)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"rma_mv: {name} must be one-dimensional, got shape {a.shape}")
    return a


def _process_V(V, k: int, data):
    """V as a 1-D array of variances, or a k × k CSR matrix (dense input is kept sparse: only blocks are used)."""
    if isinstance(V, str):
        V = column(data, V)
    if isinstance(V, list | tuple) and V and all(np.ndim(b) == 2 for b in V):
        V = sparse.block_diag([np.asarray(b, dtype=float) for b in V], format="csr")  # metafor: bldiag(V)
    if sparse.issparse(V):
        Vm = sparse.csr_array(V, dtype=float)
        if Vm.shape != (k, k):
            raise ValueError(f"rma_mv: yi has {k} values but V is {Vm.shape[0]} x {Vm.shape[1]}")
        if Vm.nnz and not np.all(np.isfinite(Vm.data)):
            raise ValueError("rma_mv: V has missing or non-finite entries")
        asym = abs(Vm - Vm.T)
        if asym.nnz and asym.max() > 1.5e-8 * max(1.0, abs(Vm).max()):
            raise ValueError("rma_mv: V must be a symmetric matrix")
        diag = Vm.diagonal()
        offdiag = Vm - sparse.diags_array(diag, format="csr")
        offdiag.eliminate_zeros()
        return (diag if offdiag.nnz == 0 else Vm), diag
    a = np.asarray(V.to_numpy() if hasattr(V, "to_numpy") else V, dtype=float)
    if a.ndim == 0:
        a = np.full(k, float(a))
    if a.ndim == 2 and 1 in a.shape and a.shape != (1, 1) or a.ndim == 2 and a.shape == (1, 1) and k == 1:
        a = a.reshape(-1)
    if a.ndim == 1:
        if len(a) != k:
            raise ValueError(f"rma_mv: yi has {k} values but V has {len(a)}")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"rma_mv: V (sampling variances) is missing or non-finite at positions {bad.tolist()} "
                             "(0-based)")
        return a, a
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"rma_mv: V must be a vector of sampling variances or a square matrix, got shape {a.shape}")
    if a.shape[0] != k:
        raise ValueError(f"rma_mv: yi has {k} values but V is {a.shape[0]} x {a.shape[1]}")
    if not np.all(np.isfinite(a)):
        i, j = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"rma_mv: V[{i}, {j}] is missing or non-finite")
    if np.max(np.abs(a - a.T), initial=0.0) > 1.5e-8 * max(1.0, np.max(np.abs(a), initial=0.0)):
        raise ValueError("rma_mv: V must be a symmetric matrix")
    diag = np.diag(a).copy()
    if np.count_nonzero(a - np.diag(diag)) == 0:
        return diag, diag
    return sparse.csr_array(a), diag


def _design(mods, k: int, data, intercept: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    if mods is None:
        return np.ones((k, 1)), ("intrcpt",)
    if isinstance(mods, str):
        X, names = model_matrix(mods, data)
        if X.shape[0] != k:
            raise ValueError(f"rma_mv: the mods formula gives {X.shape[0]} rows, expected k = {k}")
    else:
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(mods, pd.Series):
            mods = mods.to_frame()
        if pd is not None and isinstance(mods, pd.DataFrame):
            names = tuple(str(c) for c in mods.columns)
            M = mods.to_numpy(dtype=float)
        else:
            M = np.asarray(mods, dtype=float)
            if M.ndim == 1:
                M = M.reshape(-1, 1)
            names = ("mods",) if M.shape[1] == 1 else tuple(f"mods{j + 1}" for j in range(M.shape[1]))
        if M.ndim != 2 or M.shape[0] != k:
            raise ValueError(f"rma_mv: mods has {M.shape[0]} rows, expected k = {k}")
        X = np.column_stack([np.ones(k), M]) if intercept else M
        names = ("intrcpt", *names) if intercept else names
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ValueError(f"rma_mv: the moderators are missing or non-finite in rows {bad.tolist()} (0-based)")
    big = np.argwhere(np.abs(X) > kernels.MODS_MAX)
    if big.size:
        i, j = (int(a) for a in big[0])
        raise ValueError(f"rma_mv: moderator {names[j]!r} = {float(X[i, j])!r} in row {i} (0-based) is outside the "
                         f"range the engine computes with, |x| <= {kernels.MODS_MAX:g}; rescale it")
    # metafor: a column of ones anywhere is the intercept, moved to the front and named "intrcpt"
    ones = [j for j in range(X.shape[1]) if np.all(X[:, j] == 1.0)]
    if ones and (ones[0] != 0 or names[0] != "intrcpt"):
        j = ones[0]
        keep = [i for i in range(X.shape[1]) if i != j]
        X = np.column_stack([X[:, j], X[:, keep]])
        names = ("intrcpt", *(names[i] for i in keep))
    return X, names


def _struct_pair(struct) -> tuple[str, str]:
    pair = (struct, struct) if isinstance(struct, str) else tuple(struct)
    if len(pair) == 1:
        pair = (pair[0], pair[0])
    if len(pair) != 2:
        raise ValueError(f"rma_mv: struct must be one or two names, got {struct!r}")
    for s in pair:
        if s not in STRUCTS:
            raise ValueError(f"rma_mv: unknown struct {s!r}; supported: {STRUCTS} (metafor also has spatial, "
                             "phylogenetic and GEN structures, not implemented here)")
    return pair


def _values(name: str, x, n: int, *, lo: float, hi: float) -> np.ndarray:
    """A user's fixed values (NaN/None = estimate) of one kind of component, recycled as metafor does."""
    if x is None:
        return np.full(n, np.nan)
    a = np.array([np.nan if v is None else v for v in np.atleast_1d(np.asarray(x, dtype=object))], dtype=float)
    if len(a) == 1:
        a = np.full(n, a[0])
    if len(a) != n:
        raise ValueError(f"rma_mv: {name} has {len(a)} value(s), but the model has {n} such component(s)")
    bad = np.flatnonzero(~np.isnan(a) & ((a < lo) | (a > hi)))
    if bad.size:
        raise ValueError(f"rma_mv: {name}[{bad[0]}] = {a[bad[0]]!r} must be in [{lo:g}, {hi:g}]")
    return a


def _comb_k(term: InnerOuter) -> np.ndarray:
    """metafor's ``g.levels.comb.k``: for each pair of inner levels (R's lower.tri order), the number of outer levels
    in which both occur."""
    n, m = term.inner.nlevels, term.outer.nlevels
    present = np.zeros((m, n), dtype=bool)
    present[term.outer.codes, term.inner.codes] = True
    both = present.T.astype(int) @ present.astype(int)
    rows = [i for j in range(n) for i in range(j + 1, n)]
    cols = [j for j in range(n) for i in range(j + 1, n)]
    return both[rows, cols]


def _auto_fix_rho(term: InnerOuter, struct: str, rho: np.ndarray, k: int, which: str) -> list[str]:
    """metafor's `.process.G.afterrmna`: correlations that cannot be estimated are fixed at 0, with its warnings."""
    msgs: list[str] = []
    n = term.inner.nlevels
    if struct in ("ID", "DIAG"):
        rho[:] = 0.0
        return msgs
    if n == 1 and struct in ("CS", "HCS", "AR", "HAR", "UN") and np.isnan(rho).any():
        rho[np.isnan(rho)] = 0.0
        msgs.append(f"Inner factor has only a single level, so fixed value of {which} to 0.")
    if term.outer.nlevels == k and struct in ("CS", "HCS", "AR", "HAR") and np.isnan(rho).any():
        rho[np.isnan(rho)] = 0.0
        msgs.append("Each level of the outer factor contains only a single level of the inner factor, so fixed "
                    f"value of {which} to 0.")
    if struct == "UN" and n > 1:
        never = (_comb_k(term) == 0) & np.isnan(rho)
        if never.any():
            rho[never] = 0.0
            msgs.append("Some combinations of the levels of the inner factor never occurred. Corresponding "
                        f"{which} value(s) fixed to 0.")
    return msgs


# ----------------------------------------------------------------------------------------------------------------------
def rma_mv(yi, V=None, *, mods=None, random=None, struct="CS", data=None, method: str = "REML", test: str = "z",
           level: float = 95, sigma2=None, tau2=None, rho=None, gamma2=None, phi=None, intercept: bool = True,
           control=None) -> RMAMVResult:
    """Fit a multilevel / multivariate meta-analytic model (metafor 3.8 ``rma.mv``).

    ``yi``: estimates (array, or a column name of ``data``; an `EffectSizes` brings its ``vi`` as V). ``V``: their
    sampling variances (vector) or full var-cov matrix (numpy, scipy.sparse, or a list of blocks as metafor's
    ``bldiag``). ``mods``: a formula string against ``data`` (``"~ outcome - 1"``, ``"~ factor(x) + year"``) or an
    array/DataFrame of moderators (an intercept is added unless ``intercept=False``). ``random``: a formula string or
    a list of them, ``"~ 1 | study"``, nested ``"~ 1 | district/school"``, ``"~ inner | outer"`` (with ``struct``, one
    name or one per inner|outer term). ``sigma2``, ``tau2``, ``rho`` (``gamma2``, ``phi``): values to fix components
    at (None/NaN entries are estimated). ``method``: "REML" (default) or "ML" ("EE" ignores ``random``). ``test``:
    "z" or "t" (t and F tests with k − p degrees of freedom). ``control``: an `MVControl` or a dict of its fields.
    """
    if method not in MV_METHODS:
        raise ValueError(f"rma_mv: unknown method {method!r}; choose one of {MV_METHODS}")
    if test not in MV_TESTS:
        raise ValueError(f"rma_mv: unknown test {test!r}; choose one of {MV_TESTS} (metafor's knha is not available "
                         "for rma.mv)")
    if not 0 < level < 100:
        raise ValueError(f"rma_mv: level must be a percentage between 0 and 100, got {level!r}")
    control = MVControl.coerce(control)
    structs = _struct_pair(struct)
    if hasattr(yi, "yi") and hasattr(yi, "vi") and V is None:
        yi, V = yi.yi, yi.vi
    if V is None:
        raise TypeError("rma_mv: give the sampling variances or var-cov matrix 'V'")
    y = _as_vector("yi", yi, data)
    k = len(y)
    if k <= 1:
        raise ValueError(f"rma_mv: at least two estimates are needed, got k = {k} (metafor: 'Processing terminated "
                         "since k <= 1.')")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(f"rma_mv: yi is missing or non-finite at positions {bad.tolist()} (0-based); drop them")
    big = np.flatnonzero(np.abs(y) > kernels.YI_MAX)
    if big.size:
        raise ValueError(f"rma_mv: yi = {float(y[big[0]])!r} at positions {big.tolist()} (0-based) is outside the range the "
                         f"engine computes with, |yi| <= {kernels.YI_MAX:g}; rescale the effect sizes")
    Vp, vi = _process_V(V, k, data)
    neg = np.flatnonzero(vi < 0)
    if neg.size:
        raise ValueError(f"rma_mv: sampling variances must not be negative; V[{neg[0]}, {neg[0]}] = {float(vi[neg[0]])!r} "
                         f"(positions {neg.tolist()}, 0-based)")
    out = np.flatnonzero((vi > kernels.VI_MAX) | ((vi > 0) & (vi < kernels.VI_MIN)))
    if out.size:
        raise ValueError(f"rma_mv: V[{out[0]}, {out[0]}] = {float(vi[out[0]])!r} is outside the range the engine computes "
                         f"with, {kernels.VI_MIN:g} <= v <= {kernels.VI_MAX:g} (or 0); rescale the effect sizes and "
                         "their variances")
    notes: list[str] = []

    def warn(msg: str) -> None:
        warnings.warn(f"rma_mv: {msg}", RMAMVWarning, stacklevel=3)
        notes.append(msg)

    X, names = _design(mods, k, data, intercept)
    dropped: tuple[str, ...] = ()
    if X.shape[1] > 1:
        red = redundant_columns(X, 1e-7)
        if red.any():
            dropped = tuple(n for n, r in zip(names, red, strict=True) if r)
            warn(f"Redundant predictors dropped from the model: {', '.join(dropped)}")
            X = X[:, ~red]
            names = tuple(n for n, r in zip(names, red, strict=True) if not r)
    p = X.shape[1]
    if p > k:
        raise ValueError(f"rma_mv: the model has {p} coefficients but only k = {k} estimates")
    ev_min = float(np.linalg.eigvalsh(X.T @ X).min())
    if not ev_min > control.evtol:
        raise ValueError(f"rma_mv: the model matrix is not of full rank (smallest eigenvalue of X'X {ev_min:.3g} <= "
                         f"evtol {control.evtol:g}); metafor stops here too: 'Model matrix not of full rank.'")
    int_incl = names[0] == "intrcpt"
    int_only = p == 1 and int_incl

    fixed_effects_only = method in ("EE", "FE", "CE")
    if fixed_effects_only and random is not None:
        warn(f"The 'random' argument is disregarded when method=\"{method}\".")
    terms = parse_random(None if fixed_effects_only else random, data, k)
    if not terms.io_terms and structs != ("CS", "CS"):
        warn("Model does not contain an '~ inner | outer' term, so 'struct' argument is disregarded.")

    # -- the components and what metafor fixes by itself -------------------------------------------------------------
    s_factors: tuple[Factor, ...] = terms.s_factors
    s_val = _values("sigma2", sigma2, len(s_factors), lo=0.0, hi=math.inf) if s_factors else np.zeros(0)
    single = np.array([f.nlevels == 1 for f in s_factors], dtype=bool)
    if (single & np.isnan(s_val)).any():
        s_val[single & np.isnan(s_val)] = 0.0
        warn("Single-level factor(s) found in 'random' argument. Corresponding 'sigma2' value(s) fixed to 0.")
    tau2_vals, rho_vals = [], []
    user = [(tau2, rho, "tau2", "rho"), (gamma2, phi, "gamma2", "phi")]
    for t, term in enumerate(terms.io_terms):
        n_t, n_r = counts(structs[t], term.inner.nlevels)
        tv = _values(user[t][2], user[t][0], n_t, lo=0.0, hi=math.inf)
        rv = _values(user[t][3], user[t][1], n_r, lo=-1.0, hi=1.0)
        for msg in _auto_fix_rho(term, structs[t], rv, k, user[t][3]):
            warn(msg)
        tau2_vals.append(tv)
        rho_vals.append(rv)
    fixed = Components(s_val, tau2_vals, rho_vals)
    # metafor's vc.fix: what the user fixed and what it fixed itself (single-level factors, rho that cannot be
    # estimated), shown as "fixed: yes" in the printout and not counted as parameters
    vc_fix = {"sigma2": tuple(bool(b) for b in ~np.isnan(s_val)),
              "tau2": tuple(bool(b) for b in ~np.isnan(tau2_vals[0])) if tau2_vals else (),
              "rho": tuple(bool(b) for b in ~np.isnan(rho_vals[0])) if rho_vals else (),
              "gamma2": tuple(bool(b) for b in ~np.isnan(tau2_vals[1])) if len(tau2_vals) > 1 else (),
              "phi": tuple(bool(b) for b in ~np.isnan(rho_vals[1])) if len(rho_vals) > 1 else ()}

    io_struct = list(structs[: len(terms.io_terms)])
    n_inner = [term.inner.nlevels for term in terms.io_terms]
    kernel = BlockKernel(y, X, Vp, [f.codes for f in s_factors],
                         [(t.inner.codes, t.outer.codes, t.inner.nlevels) for t in terms.io_terms],
                         s_links=[not (v == 0.0) for v in s_val], remlf=control.REMLf)

    # -- equal-effects fit under V alone: Q_E and the starting values ---------------------------------------------------
    zero_G = [np.zeros((n, n)) for n in n_inner]
    V0 = bool(np.all(vi == 0)) and Vp is vi
    try:
        fe = None if V0 else kernel.evaluate(np.zeros(len(s_factors)), zero_G, reml=False)
    except NotPositiveDefinite:
        fe = None
        if not V0:
            warn("'V' appears to be not positive definite.")
    # metafor divides the total among sigma2s + tau2s + gamma2s, each of which is 1 when its kind is absent
    n_comp = (len(s_factors) or 1) + (len(tau2_vals[0]) if tau2_vals else 1) + (len(tau2_vals[1]) if len(
        tau2_vals) > 1 else 1)
    if fe is None:
        resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        total = float(resid @ resid / (k - p)) if k > p else float("nan")
        if not math.isfinite(total):
            raise ValueError("rma_mv: cannot compute initial values (metafor: 'Cannot compute initial values.')")
        QE = QEp = float("nan")
        ll_QE = float("nan")
    else:
        r_fe = y - X @ fe.beta
        with np.errstate(divide="ignore"):  # a zero variance: 1/mean(1/v) = 0, as in R
            typical = 1 / float(np.mean(1 / vi))
        total = max(0.001 * n_comp, float(np.var(r_fe, ddof=1)) - typical)
        QE = max(0.0, fe.rss)
        QEp = float(special.chdtrc(k - p, QE)) if k > p else 1.0
        ll_QE = -0.5 * k * math.log(2 * math.pi) - 0.5 * fe.logdet_M
    if k == p:
        QE, QEp = 0.0, 1.0

    start = Components(_init(control.sigma2_init, total, n_comp, len(s_factors)),
                       [_init(init, total, n_comp, len(t)) for init, t in
                        zip((control.tau2_init, control.gamma2_init), tau2_vals, strict=False)],
                       [np.broadcast_to(np.asarray(0.5 if init is None else init, dtype=float), r.shape).copy()
                        for init, r in zip((control.rho_init, control.phi_init), rho_vals, strict=False)])
    scale = float(np.mean(vi)) + max(total, 0.0) if np.mean(vi) > 0 else max(total, 1e-8)
    reml = method == "REML"
    if k == p and fixed.n_free():  # metafor: every free component is set to 0 when p == k
        fixed = Components(np.nan_to_num(fixed.sigma2), [np.nan_to_num(t) for t in fixed.tau2],
                           [np.nan_to_num(r) for r in fixed.rho])
    try:
        sol = maximise(kernel, io_struct, n_inner, fixed, reml, start, control, scale)
    except NotPositiveDefinite:
        raise ValueError("rma_mv: the marginal var-cov matrix is not positive definite at the starting values or "
                         "at the fixed values given (metafor: 'Final variance-covariance matrix not positive "
                         "definite.')") from None
    if not sol.converged:
        warn("the optimiser did not reach a point where the gradient vanishes to the requested tolerance")
    spec = _Spec(kernel, io_struct, n_inner, fixed, reml, control, scale, bool(s_factors or terms.io_terms))
    return _finish(y, Vp, vi, X, names, dropped, terms, structs, method, test, level, sol, spec, QE, QEp, ll_QE,
                   vc_fix, int_incl, int_only, notes, control)


def _init(init, total: float, n_comp: int, n: int) -> np.ndarray:
    if init is None:
        return np.full(n, total / max(n_comp, 1))
    a = np.broadcast_to(np.asarray(init, dtype=float), (n,)).copy()
    if np.any(a <= 0):
        raise ValueError("rma_mv: starting values of variance components must be > 0")
    return a


def _finish(y, Vp, vi, X, names, dropped, terms, structs, method, test, level, sol, spec: _Spec, QE, QEp, ll_QE,
            vc_fix, int_incl, int_only, notes, control) -> RMAMVResult:
    k, p = X.shape
    ev = sol.evaluation
    beta = ev.beta
    vb = (ev.vb + ev.vb.T) / 2
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    alpha = 1 - level / 100
    btt = tuple(range(1, p)) if (p > 1 and int_incl) else tuple(range(p)) if p > 1 else (0,)
    m = len(btt)
    ix = np.array(btt)
    try:
        C = np.linalg.cholesky(vb[np.ix_(ix, ix)])
        z = np.linalg.solve(C, beta[ix])
        QM = float(z @ z)
    except np.linalg.LinAlgError:
        QM = float("nan")
    ddf = None
    if test == "t":
        df = max(k - p, 1)
        ddf = np.full(p, float(df))
        QM = QM / m
        QM_df = (float(m), float(df))
        QMp = float(special.fdtrc(m, df, QM))
        pval = 2 * special.stdtr(df, -np.abs(zval))
        crit = float(special.stdtrit(df, 1 - alpha / 2))
    else:
        QM_df = (float(m), None)
        QMp = float(special.chdtrc(m, QM))
        pval = 2 * special.ndtr(-np.abs(zval))
        crit = float(-special.ndtri(alpha / 2))
    ci_lb, ci_ub = beta - crit * se, beta + crit * se

    comps = sol.components
    parms = p + int(sum(not f for f in vc_fix["sigma2"]) + sum(not f for f in vc_fix["tau2"])
                    + sum(not f for f in vc_fix["rho"]) + sum(not f for f in vc_fix["gamma2"])
                    + sum(not f for f in vc_fix["phi"]))
    ll_ml, ll_reml = ev.ll_ml, ev.ll_reml
    allvipos = bool(np.all(vi > 0))
    dev_ml = -2 * (ll_ml - ll_QE) if allvipos else -2 * ll_ml

    def stats(ll, n, dev):
        nn = max(n, parms + 2)
        bic = -2 * ll + parms * math.log(n) if n > 0 else (-math.inf if n == 0 else math.nan)
        return {"ll": ll, "dev": dev, "AIC": -2 * ll + 2 * parms, "BIC": bic,
                "AICc": -2 * ll + 2 * parms * nn / (nn - parms - 1)}

    fit_stats = {"ML": stats(ll_ml, k, dev_ml), "REML": stats(ll_reml, k - p, -2 * ll_reml)}
    fs = fit_stats["REML" if method == "REML" else "ML"]
    io = terms.io_terms

    def term_info(t: int):
        if len(io) <= t:
            return (), (), (), (), ()
        term = io[t]
        k_lvl = tuple(int(c) for c in np.bincount(term.inner.codes, minlength=term.inner.nlevels))
        return ((term.inner.name, term.outer.name), (term.inner.nlevels, term.outer.nlevels), term.inner.levels,
                k_lvl, tuple(int(c) for c in _comb_k(term)))

    g = term_info(0)
    h = term_info(1)
    empty = np.zeros(0)
    return RMAMVResult(
        k=k, p=p, method=method, test=test, level=float(level), yi=y, V=Vp, vi=vi, X=X, coef_names=tuple(names),
        beta=beta, se=se, zval=zval, pval=np.asarray(pval, dtype=float), ci_lb=ci_lb, ci_ub=ci_ub, vb=vb, ddf=ddf,
        sigma2=np.asarray(comps.sigma2, dtype=float),
        tau2=comps.tau2[0] if len(io) > 0 else empty, rho=comps.rho[0] if len(io) > 0 else empty,
        gamma2=comps.tau2[1] if len(io) > 1 else empty, phi=comps.rho[1] if len(io) > 1 else empty,
        QE=float(QE), QEp=float(QEp), QM=QM, QMp=QMp, QM_df=QM_df, btt=btt,
        ll=fs["ll"], deviance=fs["dev"], AIC=fs["AIC"], BIC=fs["BIC"], AICc=fs["AICc"], fit_stats=fit_stats,
        parms=parms, struct=structs, random=terms.formulas,
        s_names=tuple(f.name for f in terms.s_factors), s_nlevels=tuple(f.nlevels for f in terms.s_factors),
        g_names=g[0], g_nlevels=g[1], g_levels=g[2], g_levels_k=g[3], g_levels_comb_k=g[4],
        h_names=h[0], h_nlevels=h[1], h_levels=h[2], h_levels_k=h[3], h_levels_comb_k=h[4],
        vc_fix=vc_fix, int_only=int_only, int_incl=int_incl, clusters=spec.kernel.labels,
        converged=sol.converged, iterations=sol.iterations, control=control, notes=tuple(notes), dropped=dropped,
        _spec=spec,
    )


def refit_fixed(fit: RMAMVResult, fixed: Components, start: Components | None = None):
    """The same model with other components fixed (profiles): the `mv_fit.Solution`. Raises NotPositiveDefinite."""
    spec = fit._spec
    if start is None:
        start = Components(fit.sigma2.copy(), [t.copy() for t in (fit.tau2, fit.gamma2)[: len(spec.structs)]],
                           [r.copy() for r in (fit.rho, fit.phi)[: len(spec.structs)]])
    return maximise(spec.kernel, spec.structs, spec.n_inner, fixed, spec.reml, start, spec.control, spec.scale)


__all__ = ["rma_mv", "RMAMVResult", "RMAMVWarning", "MVControl", "refit_fixed"]
