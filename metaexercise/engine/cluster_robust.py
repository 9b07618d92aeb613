"""`robust`: cluster-robust tests and confidence intervals for `rma` and `rma_mv` fits, as metafor 3.8's
`robust.rma.uni` and `robust.rma.mv`.

Default (``clubSandwich=False``): the sandwich estimator with the model's working weights W = M⁻¹ (M the
marginal var-cov matrix of the estimates: diag(vᵢ + τ̂²) for `rma`, Z D Z' + V for `rma_mv`)::

    Var_R(β̂) = c · B X'W (Σ_j e_j e_j') W X B,   B = Var(β̂) of the fit, e = y − Xβ̂, j = 1 … n clusters

(Hedges, Tipton & Johnson 2010, Res Synth Methods 1:39; metafor `robust.rma.uni`/`.mv`). c = n/(n − p)
("CR1", ``adjust=True``), 1 ("CR0", ``adjust=False``), n/(n − 1)·(k − 1)/(k − p) ("Stata1") or n/(n − 1)
("Stata2"). Tests are t(n − p), the moderators' test F(m, n − p): metafor's choices. Like metafor, B is the
fit's own ``vb``: for a Knapp–Hartung `rma` fit it carries the factor s², so the sandwich carries s⁴ (metafor
3.8 does the same; fit with ``test="z"`` for the plain sandwich).

``clubSandwich=True``: what metafor then delegates to R's clubSandwich 0.5 (``vcovCR(type="CR2")``,
``coef_test(test="Satterthwaite")``, ``conf_int``, ``Wald_test(test="HTZ")``): the bias-reduced linearisation
of Bell & McCaffrey (2002, Surv Methodol 28:169) in the form of Pustejovsky & Tipton (2018, J Bus Econ Stat
36:672) for a working model whose inverse-variance weights are W_j = M_j⁻¹ (its "inverse_var" case); with a
factor R_j of the block M_j (R_j'R_j = M_j)::

    A_j = R_j' [R_j (M_j − X_j B X_j') R_j']^(−1/2) R_j,   Var_CR2 = B (Σ_j X_j'W_j A_j e_j e_j' A_j W_j X_j) B

B = (X'WX)⁻¹; the inverse square root is clubSandwich's `matrix_power` (eigenvalues ≤ 1e-12 set to 0). Each
coefficient gets Satterthwaite degrees of freedom 2E²/V of the quadratic form that estimates its variance
(Pustejovsky & Tipton 2018); several coefficients the Hotelling-T² "HTZ" F approximation (Tipton & Pustejovsky
2015, J Educ Behav Stat 40:604). Formulas as clubSandwich 0.5.8's `CR2` (R/CR-adjustments.R), `get_GH` and
`get_P_array` (R/get_arrays.R), `Satterthwaite` (R/coef_test.R), `total_variance_mat` and `Hotelling_Tsq`
(R/Wald_test.R), `matrix_power` (R/matrix-functions.R), computed without its J × J arrays: per cluster, batched
over clusters of equal size, no dense k × k algebra. CR2 needs the model's random effects nested within the
clusters (M block-diagonal by cluster), as clubSandwich does.

Works on `rma` fits (``X``, ``yi``, ``vi``, ``tau2``, ``beta``, ``vb``, ``coef_names``) and on multivariate
fits exposing ``X``, ``yi``, ``beta``, ``vb``, ``coef_names``, ``marginal_vcov()`` and ``weight_matrix()``
(k × k, dense or scipy.sparse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from metaexercise.engine.model import Coef, _coefs, _pval_t, coef_vector

if TYPE_CHECKING:  # pandas only when a table is asked for
    import pandas as pd

#: clubSandwich's `matrix_power` tolerance: eigenvalues at or below it count as zero.
EIGEN_TOL = 1e-12
ADJUST = (True, False, "Stata", "Stata1", "Stata2")


# --------------------------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RobustWaldTest:
    """A cluster-robust Wald test of C β = 0 (clubSandwich's `Wald_test`, ``test="HTZ"``): F = δ·Q/q on
    (q, ν − q + 1) degrees of freedom, Q = (Cβ̂)'(C V C')⁻¹(Cβ̂)."""

    test: str
    Fstat: float
    delta: float
    df_num: int
    df_denom: float
    p_val: float


@dataclass(frozen=True, slots=True)
class RobustResult:
    """Cluster-robust inference for a fitted model (metafor's `robust.rma` object). Per-coefficient fields are
    1-D arrays (a `Coef` for an intercept-only model, as `RMAResult`); ``df`` holds each coefficient's degrees
    of freedom (n − p for all under CR0/CR1, Satterthwaite's under CR2); ``vb`` is the robust var-cov matrix;
    ``QM`` on ``QMdf`` = (df1, df2) is the F-test of the coefficients ``btt`` (0-based; metafor's ``btt``);
    ``n`` the number of clusters, ``tcl`` the estimates per cluster (in sorted cluster order), ``cluster``
    the labels as given; ``vbest`` the estimator ("CR0", "CR1", "CR1.S1", "CR1.S2", "CR2")."""

    fit: object
    k: int
    p: int
    level: float
    coef_names: tuple[str, ...]
    beta: np.ndarray | Coef
    se: np.ndarray | Coef
    tval: np.ndarray | Coef
    df: np.ndarray | Coef
    pval: np.ndarray | Coef
    ci_lb: np.ndarray | Coef
    ci_ub: np.ndarray | Coef
    vb: np.ndarray
    QM: float
    QMdf: tuple[float, float]
    QMp: float
    btt: tuple[int, ...]
    n: int
    tcl: np.ndarray
    cluster: np.ndarray
    vbest: str
    robumethod: str
    int_only: bool

    @property
    def zval(self):
        """metafor's name for the test statistics (a t statistic here)."""
        return self.tval

    @property
    def n_clusters(self) -> int:
        return self.n

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = {"estimate": self.beta, "se": self.se, "tval": self.tval, "df": self.df, "pval": self.pval,
                "ci_lb": self.ci_lb, "ci_ub": self.ci_ub}
        return pd.DataFrame({c: coef_vector(v) for c, v in cols.items()},
                            index=pd.Index(list(self.coef_names), name="coef"))

    def summary(self) -> str:
        return format_robust(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RobustResult k={self.k} clusters={self.n} vbest={self.vbest} estimate={float(self.beta[0]):.4f}>"


# --------------------------------------------------------------------------------------------------------------
# the working model of a fit
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Model:
    X: np.ndarray
    y: np.ndarray
    beta: np.ndarray
    vb: np.ndarray
    names: tuple[str, ...]
    w: np.ndarray | None  # rma: the weights 1/(vi + tau2); None for a multivariate fit
    fit: object

    @property
    def multivariate(self) -> bool:
        return self.w is None


def _model(fit) -> _Model:
    """The pieces robust() needs, from an `rma` fit or from a fit with the multivariate protocol."""
    missing = [a for a in ("X", "yi", "beta", "vb", "coef_names") if not hasattr(fit, a)]
    mv = callable(getattr(fit, "marginal_vcov", None)) and callable(getattr(fit, "weight_matrix", None))
    if missing or not (mv or (hasattr(fit, "vi") and hasattr(fit, "tau2"))):
        raise TypeError(
            f"robust: fit must be an rma or rma_mv result (with X, yi, beta, vb, coef_names and either vi + tau2 or "
            f"marginal_vcov() + weight_matrix()); got {type(fit).__name__}"
            + (f" without {', '.join(missing)}" if missing else ""))
    X = np.asarray(fit.X, dtype=float)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    y = np.asarray(fit.yi, dtype=float).reshape(-1)
    beta = coef_vector(fit.beta)
    k, p = X.shape
    vb = np.asarray(fit.vb, dtype=float).reshape(p, p) if np.size(fit.vb) == p * p else None
    if len(y) != k or len(beta) != p or vb is None:
        raise ValueError(f"robust: the fit's X is {k} x {p} but yi has {len(y)} values, beta {len(beta)} and vb "
                         f"{np.size(fit.vb)} entries")
    w = None
    if not mv:
        w = 1 / (np.asarray(fit.vi, dtype=float).reshape(-1) + float(fit.tau2))
    for name, a in (("X", X), ("yi", y), ("beta", beta), ("vb", vb)) + ((("1/(vi + tau2)", w),) if w is not None
                                                                           else ()):
        if not np.isfinite(a).all():
            raise ValueError(f"robust: the fit's {name} has missing or non-finite values")
    return _Model(X=X, y=y, beta=beta, vb=vb, names=tuple(str(n) for n in fit.coef_names), w=w, fit=fit)


def _clusters(cluster, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels as given, integer codes 0 … n−1 in sorted label order, counts per cluster)."""
    if hasattr(cluster, "to_numpy"):
        cluster = cluster.to_numpy()
    labels = np.asarray(cluster)
    if labels.ndim != 1:
        raise ValueError(f"robust: cluster must be one-dimensional, got shape {labels.shape}")
    if len(labels) != k:
        raise ValueError(f"robust: cluster has {len(labels)} values but the model has k = {k} estimates "
                         "(metafor: \"Length of variable specified via 'cluster' ... does not correspond\")")
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels))
    elif labels.dtype.kind == "O":
        bad = np.flatnonzero([v is None or (isinstance(v, float) and math.isnan(v)) for v in labels])
    else:
        bad = np.array([], dtype=int)
    if bad.size:
        raise ValueError(f"robust: cluster has missing values at positions {bad.tolist()} (0-based); metafor: "
                         "\"No missing values allowed in 'cluster' variable.\"")
    try:
        _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    except TypeError:  # labels of mixed types: compare them as text
        _, codes, counts = np.unique(labels.astype(str), return_inverse=True, return_counts=True)
    return labels, codes.reshape(-1), counts


def _btt(names: tuple[str, ...]) -> np.ndarray:
    """metafor's default ``btt`` (`.set.btt`): all coefficients but the intercept when there is one."""
    p = len(names)
    return np.arange(1, p) if p > 1 and names[0] == "intrcpt" else np.arange(p)


def _cluster_sums(U: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Σ over the columns of U (p × k) within each cluster: p × n."""
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n))
    return np.add.reduceat(U[:, order], starts, axis=1)


def _t_crit(level: float, df):
    """Upper (1 − α/2) t quantile, α = 1 − level/100 (R's ``qt(α/2, df, lower.tail=FALSE)``)."""
    return -special.stdtrit(df, (1 - level / 100) / 2)


# --------------------------------------------------------------------------------------------------------------
# the verb
# --------------------------------------------------------------------------------------------------------------
def robust(fit, cluster, adjust: bool | str = True, clubSandwich: bool = False) -> RobustResult:  # noqa: N803
    """Cluster-robust tests and confidence intervals for the coefficients of ``fit`` (metafor 3.8 ``robust(x,
    cluster, adjust=TRUE, clubSandwich=FALSE)``).

    ``cluster``: one label per estimate (array-like, no missing values). ``adjust``: True (CR1, n/(n − p)),
    False (CR0), "Stata1"/"Stata" or "Stata2" (metafor's Stata-like factors). ``clubSandwich=True``: CR2 with
    Satterthwaite degrees of freedom and the HTZ test of the moderators (clubSandwich 0.5's defaults in
    metafor); ``adjust`` is then ignored, as in metafor. See the module docstring for the formulas.
    """
    if adjust not in ADJUST or (isinstance(adjust, int | float) and not isinstance(adjust, bool)):
        raise ValueError(f"robust: adjust must be True, False, 'Stata1' or 'Stata2'; got {adjust!r}")
    if not isinstance(clubSandwich, bool | np.bool_):
        raise TypeError(f"robust: clubSandwich must be True or False; got {clubSandwich!r}")
    m = _model(fit)
    k, p = m.X.shape
    labels, codes, tcl = _clusters(cluster, k)
    n = len(tcl)
    dfs = n - p
    if dfs <= 0:
        raise ValueError(f"robust: the number of clusters ({n}) must be larger than the number of coefficients "
                         f"({p}) (metafor stops here too)")
    level = float(getattr(fit, "level", 95.0))
    btt = _btt(m.names)
    int_only = p == 1 and m.names[0] == "intrcpt"
    beta = m.beta

    if clubSandwich:
        cr2 = _CR2(m, codes, tcl)
        vb = cr2.vcov
        se = np.sqrt(np.diag(vb))
        tval = beta / se
        df = cr2.satterthwaite()
        pval = _pval_t(tval, df)
        crit = _t_crit(level, df)
        if int_only:
            QM, QMdf, QMp = max(0.0, float(tval[0] ** 2)), (1.0, float(df[0])), float(pval[0])
        else:
            wt = cr2.wald(np.eye(p)[btt], vb)
            QM, QMdf, QMp = max(0.0, wt.Fstat), (float(wt.df_num), wt.df_denom), wt.p_val
        vbest, method = "CR2", "clubSandwich"
    else:
        e = m.y - m.X @ beta
        if m.multivariate:
            W = fit.weight_matrix()
            XtW = np.asarray(W.T @ m.X).T  # X'W (metafor: crossprod(X, W), W = chol2inv(chol(M)))
        else:
            XtW = m.X.T * m.w
        S = _cluster_sums(XtW * e, codes, n)  # column j: X'W_{·j} e_j
        bread_S = m.vb @ S
        vb = bread_S @ bread_S.T
        factor, vbest = {True: (n / dfs, "CR1"), False: (1.0, "CR0"),
                         "Stata": (n / (n - 1) * (k - 1) / (k - p), "CR1.S1"),
                         "Stata1": (n / (n - 1) * (k - 1) / (k - p), "CR1.S1"),
                         "Stata2": (n / (n - 1), "CR1.S2")}[adjust]
        vb = factor * vb
        se = np.sqrt(np.diag(vb))
        tval = beta / se
        df = np.full(p, float(dfs))
        pval = _pval_t(tval, dfs)
        crit = _t_crit(level, dfs)
        mm = len(btt)
        sub = vb[np.ix_(btt, btt)]
        try:
            L = np.linalg.cholesky(sub)  # metafor: chol2inv(chol(vb[btt, btt])), NA if that fails
            z = np.linalg.solve(L, beta[btt])
            QM = float(z @ z) / mm
        except np.linalg.LinAlgError:
            QM = math.nan
        QMdf = (float(mm), float(dfs))
        QMp = float(special.fdtrc(mm, dfs, QM)) if not math.isnan(QM) else math.nan
        method = "default"
    return RobustResult(
        fit=fit, k=k, p=p, level=level, coef_names=m.names, beta=_coefs(beta), se=_coefs(se), tval=_coefs(tval),
        df=_coefs(df), pval=_coefs(pval), ci_lb=_coefs(beta - crit * se), ci_ub=_coefs(beta + crit * se), vb=vb,
        QM=QM, QMdf=QMdf, QMp=QMp, btt=tuple(int(b) for b in btt), n=n, tcl=tcl, cluster=labels, vbest=vbest,
        robumethod=method, int_only=int_only,
    )


def wald_test(fit, cluster, constraints) -> RobustWaldTest:
    """CR2 cluster-robust Wald test of C β = 0 with the HTZ small-sample F approximation (clubSandwich's
    ``Wald_test(fit, constraints, vcov="CR2", cluster=cluster, test="HTZ")``; Tipton & Pustejovsky 2015).

    ``constraints``: a q × p matrix C, or the coefficients to test at zero (0-based indices or names:
    clubSandwich's ``constrain_zero``)."""
    m = _model(fit)
    k, p = m.X.shape
    _, codes, tcl = _clusters(cluster, k)
    if len(tcl) < 2:
        raise ValueError("robust: cluster-robust variance estimation needs at least two clusters")
    C = _constraint_matrix(constraints, m.names)
    cr2 = _CR2(m, codes, tcl)
    return cr2.wald(C, cr2.vcov)


def _constraint_matrix(constraints, names: tuple[str, ...]) -> np.ndarray:
    p = len(names)
    a = np.asarray(constraints)
    if a.ndim == 2:
        if a.shape[1] != p or a.shape[0] < 1:
            raise ValueError(f"wald_test: constraints must be a q x {p} matrix; got shape {a.shape}")
        C = a.astype(float)
        if not np.isfinite(C).all():
            raise ValueError("wald_test: constraints has non-finite entries")
        return C
    idx = []
    for c in np.atleast_1d(a).tolist():
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"wald_test: {c!r} is not a coefficient; the coefficients are {list(names)}")
            idx.append(names.index(c))
        elif isinstance(c, int) and 0 <= c < p:
            idx.append(c)
        else:
            raise ValueError(f"wald_test: coefficient index {c!r} is not in 0 … {p - 1}")
    if not idx:
        raise ValueError("wald_test: give at least one constraint")
    return np.eye(p)[sorted(set(idx))]


# --------------------------------------------------------------------------------------------------------------
# CR2 (clubSandwich), per cluster, batched over clusters of equal size
# --------------------------------------------------------------------------------------------------------------
def _inv_sqrt_psd(G: np.ndarray) -> np.ndarray:
    """clubSandwich's ``matrix_power(G, -1/2)`` for a stack of symmetric matrices: eigenvalues ≤ 1e-12 → 0."""
    vals, vecs = np.linalg.eigh(0.5 * (G + np.swapaxes(G, -1, -2)))
    pw = np.where(vals > EIGEN_TOL, np.abs(vals) ** -0.5, 0.0)
    return (vecs * pw[..., None, :]) @ np.swapaxes(vecs, -1, -2)


class _CR2:
    """The CR2 var-cov matrix and the per-cluster pieces of its Satterthwaite / HTZ degrees of freedom.

    Per cluster j (clubSandwich's names): Θ_j the target = working var-cov block (for `rma` scaled, as
    clubSandwich's `weightMatrix.rma.uni` does, by the mean weight, which only matters for the 1e-12
    eigenvalue cut-offs), W_j = Θ_j⁻¹, B = (Σ X_j'W_j X_j)⁻¹, A_j the CR2 adjustment, E_j = X_j'W_j A_j;
    for the degrees of freedom D_j = M E_j Θ_j E_j' M and H_j = M E_j X_j chol(B) (M = clubSandwich's
    bread/v_scale), so that its P array is P_st = diag_j(D_j[s,t]) − h_s h_t' (h_s: the rows H_j[s, ·])."""

    def __init__(self, m: _Model, codes: np.ndarray, tcl: np.ndarray):
        k, p = m.X.shape
        self._beta = m.beta
        e = m.y - m.X @ m.beta
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(tcl)[:-1]])
        pos = np.empty(k, dtype=np.intp)
        pos[order] = np.arange(k) - starts[codes[order]]
        if m.multivariate:
            ws = 1.0
            theta = self._blocks_from_matrix(m.fit.marginal_vcov(), codes, pos, tcl)
        else:
            ws = float(np.mean(m.w))  # clubSandwich: W = diag(w / mean(w)), Θ = W⁻¹
            theta = {}
            for s in np.unique(tcl):
                cl = np.flatnonzero(tcl == s)
                idx = order[starts[cl][:, None] + np.arange(s)]
                T = np.zeros((len(cl), s, s))
                T[:, np.arange(s), np.arange(s)] = ws / m.w[idx]
                theta[int(s)] = T
        groups = []
        XWX = np.zeros((p, p))
        for s, T in theta.items():
            cl = np.flatnonzero(tcl == s)
            idx = order[starts[cl][:, None] + np.arange(s)]
            try:
                L = np.linalg.cholesky(T)
            except np.linalg.LinAlgError:
                raise ValueError("robust: a cluster's block of the marginal var-cov matrix is not positive "
                                 "definite") from None
            Linv = np.linalg.inv(L)
            W = np.swapaxes(Linv, -1, -2) @ Linv  # chol2inv(chol(Θ_j))
            Xg = m.X[idx]  # (clusters, s, p)
            XtW = np.swapaxes(Xg, -1, -2) @ W
            XWX += (XtW @ Xg).sum(axis=0)
            groups.append((T, L, Xg, XtW, e[idx]))
        try:
            B = np.linalg.inv(XWX)
        except np.linalg.LinAlgError:
            raise ValueError("robust: X'WX is singular: the coefficients are not estimable") from None
        LU = np.linalg.cholesky(0.5 * (B + B.T))  # clubSandwich: M_U_ct = t(chol(M_U))
        Mgh = B / ws  # clubSandwich's bread / v_scale (bread of rma.uni: unscaled weights)
        comps, Ds, Hs = [], [], []
        for T, L, Xg, XtW, eg in groups:
            Q = T - Xg @ B @ np.swapaxes(Xg, -1, -2)
            G = np.swapaxes(L, -1, -2) @ Q @ L  # R (Θ − X B X') R', R = L'
            A = L @ _inv_sqrt_psd(G) @ np.swapaxes(L, -1, -2)  # R' G^(−1/2) R
            E = XtW @ A
            comps.append((E @ eg[..., None])[..., 0])
            ME = Mgh @ E
            Ds.append(ME @ T @ np.swapaxes(ME, -1, -2))
            Hs.append(ME @ Xg @ LU)
        comp = np.concatenate(comps)
        self.vcov = B @ (comp.T @ comp) @ B  # bread meat bread / v_scale: the scale factors cancel
        self.D = np.concatenate(Ds)  # (J, p, p)
        self.H = np.concatenate(Hs)  # (J, p, p)

    @staticmethod
    def _blocks_from_matrix(M, codes, pos, tcl) -> dict[int, np.ndarray]:
        """The within-cluster blocks of M (dense or sparse), stacked by cluster size; refuses an M with
        covariance between clusters (clubSandwich: "Random effects are not nested within clustering
        variable.")."""
        from scipy import sparse

        C = sparse.coo_array(M)
        k = len(codes)
        if C.shape != (k, k):
            raise ValueError(f"robust: marginal_vcov() is {C.shape[0]} x {C.shape[1]}, expected {k} x {k}")
        r, c, v = C.row, C.col, C.data
        if not np.isfinite(v).all():
            raise ValueError("robust: marginal_vcov() has non-finite entries")
        same = codes[r] == codes[c]
        if np.any(~same & (v != 0)):
            raise ValueError("robust: clubSandwich=True needs the model's random effects nested within 'cluster' "
                             "(clubSandwich: \"Random effects are not nested within clustering variable.\"): "
                             "marginal_vcov() has covariances between estimates of different clusters")
        r, c, v = r[same], c[same], v[same]
        gidx = np.empty(len(tcl), dtype=np.intp)
        blocks = {}
        for s in np.unique(tcl):
            cl = np.flatnonzero(tcl == s)
            gidx[cl] = np.arange(len(cl))
            blocks[int(s)] = np.zeros((len(cl), s, s))
        sz = tcl[codes[r]]
        for s, blk in blocks.items():
            sel = sz == s
            np.add.at(blk, (gidx[codes[r[sel]]], pos[r[sel]], pos[c[sel]]), v[sel])
        return blocks

    def _inner(self, C: np.ndarray, On: np.ndarray | None):
        """Transformed pieces: D_j → K D_j K', H_j → K H_j with K = On·C (On = I for single coefficients)."""
        K = C if On is None else On @ C
        D = K @ self.D @ K.T
        H = K @ self.H
        hh = H @ np.swapaxes(H, -1, -2)  # hh[j, s, t] = H_j[s]·H_j[t]
        T = np.einsum("jsa,jtb->stab", H, H)  # T[s, t] = h_s' h_t
        return D, hh, T

    def satterthwaite(self) -> np.ndarray:
        """Per coefficient i: df = 2E²/V with E = tr P_i, V = 2‖P_i‖²_F (clubSandwich's `Satterthwaite`)."""
        p = self.D.shape[1]
        D, hh, T = self._inner(np.eye(p), None)
        d = np.einsum("jii->ji", D)
        h = np.einsum("jii->ji", hh)
        Tii = np.einsum("iiab->iab", T)
        E = d.sum(axis=0) - h.sum(axis=0)
        sumsq = (d ** 2).sum(axis=0) - 2 * (d * h).sum(axis=0) + np.einsum("iab,iab->i", Tii, Tii)
        with np.errstate(divide="ignore", invalid="ignore"):
            return E ** 2 / sumsq

    def wald(self, C: np.ndarray, vcov: np.ndarray) -> RobustWaldTest:
        """HTZ test of C β = 0 (clubSandwich's `Wald_testing`, `total_variance_mat`, `Hotelling_Tsq`)."""
        q = C.shape[0]
        D, hh, _ = self._inner(C, None)
        Omega = D.sum(axis=0) - hh.sum(axis=0)
        On = _inv_sqrt_psd(Omega)
        D, hh, T = self._inner(C, On)
        # var_mat[s,t] = <B_st, B_ts> + <B_ss, B_tt>, B_st = diag_j(D_j[s,t]) − h_s h_t' (Frobenius products)
        cross = (np.einsum("jst,jts->st", D, D) - np.einsum("jst,jts->st", D, hh) - np.einsum("jts,jst->st", D, hh)
                 + np.einsum("stab,tsab->st", T, T))
        d, h = np.einsum("jss->js", D), np.einsum("jss->js", hh)
        dh = d.T @ h
        same = d.T @ d - dh - dh.T + np.einsum("stab,stab->st", T, T)
        nu = q * (q + 1) / float(np.sum(cross + same))
        Cb = C @ self._beta
        try:
            L = np.linalg.cholesky(C @ vcov @ C.T)
            z = np.linalg.solve(L, Cb)
            Q = float(z @ z)
        except np.linalg.LinAlgError:
            raise ValueError("robust: the robust var-cov matrix of the tested coefficients is singular") from None
        delta = max((nu - q + 1) / nu, 0.0)
        df = nu - q + 1
        F = delta * Q / q
        pv = float(special.fdtrc(q, df, F)) if df > 0 else math.nan
        return RobustWaldTest(test="HTZ", Fstat=F, delta=delta, df_num=q, df_denom=df, p_val=pv)


# --------------------------------------------------------------------------------------------------------------
# printing (metafor's print.rma.uni / print.rma.mv of a robust.rma object)
# --------------------------------------------------------------------------------------------------------------
FOOT = "¹"


def _fit_header(fit) -> list[str]:
    """The fit's own printout up to its tests of the coefficients (metafor prints the same lines for the
    robust object): title, variance components, heterogeneity, each as the fit's summary prints them."""
    text = fit.summary() if callable(getattr(fit, "summary", None)) else str(fit)
    lines = text.rstrip("\n").split("\n")
    for i, line in enumerate(lines):
        if line.startswith(("Test of Moderators", "Model Results")):
            return lines[:i]
    return lines


def _as_character(x: float) -> str:
    """R's ``as.character`` of a double (15 significant digits, no trailing zeros)."""
    return f"{x:.15g}"


def format_robust(r: RobustResult) -> str:
    """Render a `RobustResult` as metafor 3.8 prints a robust.rma object (default digits, signif stars)."""
    from metaexercise.engine.printing import (
        SIGNIF_LEGEND,
        _format_btt,
        _vector_table,
        fcf,
        fmt_pval,
        matrix_lines,
        signif_stars,
    )

    L = _fit_header(r.fit)
    tcl = np.asarray(r.tcl)
    if np.all(tcl == tcl[0]):
        per = f"{int(tcl[0])}"
    else:
        per = (f"{int(tcl.min())}-{int(tcl.max())} (mean: {fcf(float(tcl.mean()), 2)}, "
               f"median: {_as_character(round(float(np.median(tcl)), 2))})")
    L += [f"Number of estimates:   {r.k}", f"Number of clusters:    {r.n}", f"Estimates per cluster: {per}", ""]
    if r.p > 1 and not math.isnan(r.QM):
        btt = [b + 1 for b in r.btt]
        L.append(f"Test of Moderators (coefficient{' ' if len(btt) == 1 else 's '}{_format_btt(btt)}):{FOOT}")
        L.append(f"F(df1 = {_as_character(r.QMdf[0])}, df2 = {_as_character(round(r.QMdf[1], 2))}) = "
                 f"{fcf(r.QM)}, p-val {fmt_pval(r.QMp, showeq=True, sep=' ')}")
        L.append("")
    L += ["Model Results:", ""]
    names = ["estimate"] + [c + FOOT for c in ("se", "tval", "df", "pval", "ci.lb", "ci.ub")] + [""]
    rows = []
    for j in range(r.p):
        cells = [fcf(r.se[j]), fcf(r.tval[j]), _as_character(round(float(r.df[j]), 2)), fmt_pval(r.pval[j]),
                 fcf(r.ci_lb[j]), fcf(r.ci_ub[j])]
        rows.append([fcf(r.beta[j])] + [c + " " for c in cells] + [signif_stars(r.pval[j])])
    if r.int_only:
        L += _vector_table(names, rows[0])
    else:
        L += matrix_lines(list(r.coef_names), names, rows)
    tests = "t-test and confidence interval" if r.int_only else "t/F-tests and confidence intervals"
    dfs = "residual method" if r.robumethod == "default" else "Satterthwaite approx"
    L += ["", "---", SIGNIF_LEGEND, "",
          f"1) results based on cluster-robust inference (var-cov estimator: {r.vbest},",
          f"   approx {tests}, df: {dfs})", ""]
    return "\n".join(L) + "\n"


__all__ = ["robust", "wald_test", "RobustResult", "RobustWaldTest", "format_robust"]
