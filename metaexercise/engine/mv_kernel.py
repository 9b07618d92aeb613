"""The (restricted) log-likelihood of `rma_mv` and its gradient, computed cluster by cluster.

The marginal covariance of the estimates is M = V + Σ_j σ_j² Z_j Z_j' + Σ_t (Z_t1 G_t Z_t1') ∘ (Z_t2 Z_t2')
(metafor 3.8 `.ll.rma.mv`). Two estimates are correlated only if V links them, they share a level of a σ² factor, or
they share the outer level of an ``inner | outer`` term; the connected components of that relation ("clusters", e.g.
the districts of ``~ 1 | district/school``) make M block-diagonal. Every quantity the likelihood needs is a sum over
blocks:

    log|M| = Σ_b log|M_b|,   X'M⁻¹X = Σ_b X_b' M_b⁻¹ X_b,   X'M⁻¹y = Σ_b X_b' M_b⁻¹ y_b,   r'M⁻¹r = Σ_b r_b' M_b⁻¹ r_b

and blocks of equal size are stacked and handled by batched numpy (Cholesky, inverse, matrix products), so a model
with thousands of estimates in hundreds of clusters costs a few batched calls instead of one k × k factorisation.

ML:   ℓ = −½ k log 2π − ½ log|M| − ½ r'M⁻¹r
REML: ℓ = −½ (k − p) log 2π + ½ log|X'X| − ½ log|M| − ½ log|X'M⁻¹X| − ½ r'M⁻¹r
(r = y − Xβ̂, β̂ = (X'M⁻¹X)⁻¹X'M⁻¹y; Harville 1977, JASA 72:320; metafor's `.ll.rma.mv` with ``REMLf=TRUE``).

Gradient: ∂ℓ/∂θ = Σ_ij Γ_ij ∂M_ij/∂θ with Γ = −½ M⁻¹ + ½ uu' (+ ½ M⁻¹X A X'M⁻¹ for REML), u = M⁻¹r, A = (X'M⁻¹X)⁻¹;
M's derivatives live in the blocks, so only Γ's diagonal blocks are formed. ∂ℓ/∂σ_j² = Σ Γ ∘ Z_jZ_j' and
∂ℓ/∂G_t[a, b] = Σ_{i,j: inner a, b, same outer} Γ_ij.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


@dataclass
class _Group:
    """The clusters of one size s, stacked: g clusters × s estimates."""

    idx: np.ndarray  # (g, s) positions of the estimates in the data
    V: np.ndarray  # (g, s, s)
    X: np.ndarray  # (g, s, p) rows of Q, an orthonormal basis of the columns of X (zero rows: padding)
    y: np.ndarray  # (g, s)
    same_s: list[np.ndarray]  # per σ² factor: (g, s, s) 1.0 where two estimates share its level
    inner: list[np.ndarray]  # per inner|outer term: (g, s) inner level codes
    same_outer: list[np.ndarray]  # per inner|outer term: (g, s, s) 1.0 where two estimates share the outer level


@dataclass
class Evaluation:
    """The model at one set of variance components."""

    ll_ml: float
    ll_reml: float
    beta: np.ndarray
    vb: np.ndarray  # (X'M⁻¹X)⁻¹
    logdet_M: float
    rss: float  # r'M⁻¹r
    grad_sigma2: np.ndarray | None = None  # ∂ℓ/∂σ_j²
    grad_G: list[np.ndarray] | None = None  # ∂ℓ/∂G_t (entries as independent)


#: Relative size of a Cholesky pivot (L_ii² / M_ii) below which M counts as singular (~450 machine epsilons).
_PIVOT_RTOL = 1e-13


class NotPositiveDefinite(ArithmeticError):
    """The marginal covariance (or X'M⁻¹X) at these variance components is not positive definite."""


class BlockKernel:
    """y, X, V and the random-effects design, split into the clusters that make M block-diagonal."""

    def __init__(self, y: np.ndarray, X: np.ndarray, V, s_codes: list[np.ndarray],
                 io_terms: list[tuple[np.ndarray, np.ndarray, int]], s_links: list[bool] | None = None,
                 remlf: bool = True):
        k = len(y)
        self.k, self.p = k, X.shape[1]
        self.y, self.X = y, X
        # Work with an orthonormal basis Q of X's columns (X = QR): β̂, r and the REML term are invariant to the basis,
        # and X'M⁻¹X = R'(Q'M⁻¹Q)R, so ½log|X'X| − ½log|X'M⁻¹X| = −½log|Q'M⁻¹Q| without the cancellation that a
        # badly conditioned X (a raw 'year' beside the intercept) causes; β̂ = R⁻¹β̂_Q, Var(β̂) = R⁻¹(Q'M⁻¹Q)⁻¹R⁻ᵀ.
        Q, self._R = np.linalg.qr(X)
        self._remlf = remlf
        self.n_inner = [n for _, _, n in io_terms]
        V_diag = np.ndim(V) == 1
        if V_diag:
            rows = cols = np.arange(k)
            vals = np.asarray(V, dtype=float)
        else:
            coo = sparse.coo_array(V)
            rows, cols, vals = coo.row.astype(np.intp), coo.col.astype(np.intp), coo.data.astype(float)
        # clusters: connected components of "shares a level" and of V's non-zero off-diagonal entries; a σ² factor
        # whose σ² is fixed at 0 (s_links False) adds nothing to M and links nothing
        s_links = [True] * len(s_codes) if s_links is None else s_links
        groupings = [c for c, link in zip(s_codes, s_links, strict=True) if link] + [o for _, o, _ in io_terms]
        self.labels = _clusters(k, rows, cols, groupings)
        self.n_clusters = int(self.labels.max()) + 1 if k else 0
        order = np.argsort(self.labels, kind="stable")
        sizes = np.bincount(self.labels, minlength=self.n_clusters)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.cluster_sizes = sizes
        local = np.empty(k, dtype=np.intp)
        local[order] = np.arange(k) - np.repeat(starts, sizes)
        self.groups: list[_Group] = []
        group_of = np.empty(k, dtype=np.intp)
        slot_of = np.empty(k, dtype=np.intp)
        for gi, (lo, hi) in enumerate(_buckets(sizes)):
            cl = np.flatnonzero((sizes >= lo) & (sizes <= hi))
            s = hi  # clusters smaller than the bucket's largest are padded (identity rows of M, zero rows of X, y)
            pos = np.arange(s)[None, :]
            valid = pos < sizes[cl][:, None]
            idx = np.where(valid, order[np.minimum(starts[cl][:, None] + pos, k - 1)], -1)
            where = idx >= 0
            group_of[idx[where]] = gi
            slot_of[idx[where]] = np.broadcast_to(np.arange(len(cl))[:, None], idx.shape)[where]
            safe = np.where(where, idx, 0)
            pair = where[:, :, None] & where[:, None, :]
            same_s = [((c[safe][:, :, None] == c[safe][:, None, :]) & pair).astype(float) for c in s_codes]
            inner = [codes[safe] for codes, _, _ in io_terms]
            same_outer = [((outer[safe][:, :, None] == outer[safe][:, None, :]) & pair).astype(float)
                          for _, outer, _ in io_terms]
            Vb = np.zeros((len(cl), s, s))
            pad_g, pad_i = np.nonzero(~where)
            Vb[pad_g, pad_i, pad_i] = 1.0
            self.groups.append(_Group(idx, Vb, Q[safe] * where[:, :, None], y[safe] * where, same_s, inner,
                                      same_outer))
        # V's entries into the blocks (both ends of an entry are in one cluster by construction)
        g_of, slot, li, lj = group_of[rows], slot_of[rows], local[rows], local[cols]
        for gi, grp in enumerate(self.groups):
            sel = g_of == gi
            grp.V[slot[sel], li[sel], lj[sel]] = vals[sel]
        self._logdet_R = float(np.sum(np.log(np.abs(np.diag(self._R)))))  # ½ log|X'X|

    # -- the blocks of M ----------------------------------------------------------------------------------------
    def blocks(self, sigma2: np.ndarray, Gs: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for grp in self.groups:
            M = grp.V.copy()
            for s2, same in zip(sigma2, grp.same_s, strict=True):
                if s2 != 0:
                    M += s2 * same
            for G, inner, same in zip(Gs, grp.inner, grp.same_outer, strict=True):
                M += G[inner[:, :, None], inner[:, None, :]] * same
            out.append(M)
        return out

    def to_sparse(self, blocks: list[np.ndarray]) -> sparse.csr_array:
        """k × k sparse matrix (in the data's order) from per-group stacks of blocks."""
        r, c, v = [], [], []
        for grp, B in zip(self.groups, blocks, strict=True):
            s = grp.idx.shape[1]
            rr = np.repeat(grp.idx, s, axis=1).ravel()
            cc = np.tile(grp.idx, (1, s)).ravel()
            keep = (rr >= 0) & (cc >= 0)  # padding
            r.append(rr[keep])
            c.append(cc[keep])
            v.append(B.reshape(len(B), -1).ravel()[keep])
        if not r:
            return sparse.csr_array((self.k, self.k))
        return sparse.csr_array((np.concatenate(v), (np.concatenate(r), np.concatenate(c))), shape=(self.k, self.k))

    # -- likelihood -------------------------------------------------------------------------------------------
    def evaluate(self, sigma2: np.ndarray, Gs: list[np.ndarray], reml: bool, gradient: bool = False,
                 blocks: list[np.ndarray] | None = None) -> Evaluation:
        """Log-likelihoods (ML and REML), β̂ and (X'M⁻¹X)⁻¹ at these variance components; with ``gradient``, the
        derivatives of the REML (``reml=True``) or ML log-likelihood. Raises NotPositiveDefinite."""
        p, k = self.p, self.k
        Ms = self.blocks(sigma2, Gs) if blocks is None else blocks
        logdet = 0.0
        XtWX = np.zeros((p, p))
        XtWy = np.zeros(p)
        Ws, WXs = [], []
        for grp, M in zip(self.groups, Ms, strict=True):
            try:
                L = np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                raise NotPositiveDefinite("the marginal var-cov matrix is not positive definite") from None
            d = np.diagonal(L, axis1=1, axis2=2)
            # a pivot that is rounding noise relative to its diagonal entry means M is singular (e.g. V = 0 with
            # fewer random-effect levels than estimates in a cluster): refuse it rather than invert noise
            if not (np.all(np.isfinite(d)) and np.all(d * d > _PIVOT_RTOL * np.diagonal(M, axis1=1, axis2=2))):
                raise NotPositiveDefinite("the marginal var-cov matrix is not positive definite")
            logdet += 2.0 * float(np.log(d).sum())
            Linv = np.linalg.inv(L)
            W = np.matmul(Linv.transpose(0, 2, 1), Linv)
            WX = W @ grp.X
            XtWX += np.einsum("gsp,gsq->pq", grp.X, WX)
            XtWy += np.einsum("gsp,gs->p", WX, grp.y)
            Ws.append(W)
            WXs.append(WX)
        XtWX = (XtWX + XtWX.T) / 2
        try:
            C = np.linalg.cholesky(XtWX)
        except np.linalg.LinAlgError:
            raise NotPositiveDefinite("X'M⁻¹X is not positive definite") from None
        Cinv = np.linalg.inv(C)
        A = Cinv.T @ Cinv
        beta_q = A @ XtWy
        logdet_QtWQ = 2.0 * float(np.log(np.diag(C)).sum())
        rss = 0.0
        us = []
        for grp, W in zip(self.groups, Ws, strict=True):
            r = grp.y - grp.X @ beta_q
            u = np.einsum("gij,gj->gi", W, r)
            rss += float(np.einsum("gi,gi->", r, u))
            us.append(u)
        ll_ml = -0.5 * k * math.log(2 * math.pi) - 0.5 * logdet - 0.5 * rss
        ll_reml = -0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * logdet - 0.5 * logdet_QtWQ - 0.5 * rss
        if not self._remlf:  # metafor's REMLf=FALSE leaves out ½ log|X'X|
            ll_reml -= self._logdet_R
        Rinv = np.linalg.inv(self._R)
        ev = Evaluation(ll_ml, ll_reml, Rinv @ beta_q, Rinv @ A @ Rinv.T, logdet, rss)
        if gradient:
            g_s2 = np.zeros(len(sigma2))
            g_G = [np.zeros((n, n)) for n in self.n_inner]
            for grp, W, WX, u in zip(self.groups, Ws, WXs, us, strict=True):
                Gam = 0.5 * (u[:, :, None] * u[:, None, :] - W)
                if reml:
                    Gam += 0.5 * np.einsum("gip,pq,gjq->gij", WX, A, WX)
                for j, same in enumerate(grp.same_s):
                    g_s2[j] += float(np.einsum("gij,gij->", Gam, same))
                for t, (inner, same) in enumerate(zip(grp.inner, grp.same_outer, strict=True)):
                    n = self.n_inner[t]
                    pair = (inner[:, :, None] * n + inner[:, None, :]).ravel()
                    g_G[t] += np.bincount(pair, weights=(Gam * same).ravel(), minlength=n * n).reshape(n, n)
            ev.grad_sigma2 = g_s2
            ev.grad_G = g_G
        return ev


#: Cost model of bucketing (in floating-point operations): each batched group costs a fixed overhead of numpy calls
#: plus about 3 s³ per block of size s (Cholesky, triangular inverse, products).
_GROUP_OVERHEAD = 2e5
_FLOPS_PER_CUBE = 3.0


def _buckets(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Ranges of cluster sizes to stack together, each padded to its largest size: the partition of the sorted
    distinct sizes into consecutive runs that minimises Σ (overhead + clusters · 3 · largest³) (dynamic programming),
    so many small groups of nearly equal size share one batched call while very different sizes stay apart."""
    distinct, count = np.unique(sizes, return_counts=True)
    n = len(distinct)
    if n == 0:
        return []
    cum = np.concatenate([[0], np.cumsum(count)])
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.intp)
    for j in range(1, n + 1):  # best[j]: the first j distinct sizes bucketed; the last bucket starts at size i
        cost = best[:j] + _GROUP_OVERHEAD + _FLOPS_PER_CUBE * (cum[j] - cum[:j]) * float(distinct[j - 1]) ** 3
        cut[j] = int(np.argmin(cost))
        best[j] = cost[cut[j]]
    out, j = [], n
    while j > 0:
        i = cut[j]
        out.append((int(distinct[i]), int(distinct[j - 1])))
        j = i
    return out[::-1]


def _clusters(k: int, rows: np.ndarray, cols: np.ndarray, groupings: list[np.ndarray]) -> np.ndarray:
    """Connected components over the estimates: linked by V's off-diagonal entries and by shared levels."""
    off = rows != cols
    r_parts, c_parts = [rows[off]], [cols[off]]
    n_nodes = k
    for codes in groupings:
        codes = np.asarray(codes, dtype=np.intp)
        r_parts.append(np.arange(k))
        c_parts.append(n_nodes + codes)
        n_nodes += int(codes.max()) + 1 if k else 0
    r = np.concatenate(r_parts)
    c = np.concatenate(c_parts)
    graph = sparse.coo_array((np.ones(len(r)), (r, c)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    labels = labels[:k]
    # renumber in order of first appearance, so cluster 0 holds the first estimate
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inv.reshape(-1)]


__all__ = ["BlockKernel", "Evaluation", "NotPositiveDefinite"]
