"""Text summaries of `rma_mv` fits and their profile CIs laid out exactly like metafor 3.8's `print.rma.mv` and
`print.confint.rma` / `print.list.confint.rma`, so the two can be diffed line by line.

Tables follow R's ``print(<character matrix>, quote=FALSE, right=TRUE, print.gap=2)``: row names left-aligned, every
column as wide as its widest entry or header, entries right-aligned, columns wrapped into chunks when a line would pass
R's default width of 80 characters; metafor's `.print.table` ends every line with one space.
"""

from __future__ import annotations

import math

import numpy as np

from metaexercise.engine.printing import _vector_table as vector_lines
from metaexercise.engine.printing import coefficient_lines, fcf, fmt_pval, matrix_lines


def abbreviate(names: list[str], minlength: int = 4) -> list[str]:
    """R's `abbreviate(names, minlength)` (method "left.kept", use.classes TRUE): drop lower-case vowels from the right,
    then lower-case letters, then anything but first letters, until short enough; lengthen duplicates."""
    out = list(names)
    todo = list(range(len(names)))
    ml = minlength
    while True:
        for i in todo:
            out[i] = _strip(names[i], ml)
        seen: dict[str, int] = {}
        dup = set()
        for i, a in enumerate(out):
            if a in seen:
                dup.add(i)
                dup.add(seen[a])
            else:
                seen[a] = i
        if not dup:
            return out
        ml += 1
        todo = sorted(dup)


def _strip(name: str, minlen: int) -> str:
    """R's C routine `stripchars` behind abbreviate()."""
    b = list(name.strip())
    if len(b) <= minlen:
        return "".join(b)

    def first_char(i):
        return b[i - 1].isspace()

    def last_char(i):
        return not b[i - 1].isspace() and (i + 1 >= len(b) or b[i + 1].isspace())

    def short():
        return len(b) - sum(1 for c in b if c.isspace()) <= minlen

    passes = (
        lambda i: b[i] in "aeiou" and last_char(i),
        lambda i: b[i] in "aeiou" and not first_char(i),
        lambda i: b[i].islower() and last_char(i),
        lambda i: b[i].islower() and not first_char(i),
        lambda i: not first_char(i) and not b[i].isspace(),
    )
    for test in passes:
        i = len(b) - 1
        while i > 0:
            if i < len(b) and test(i):
                del b[i]
            if short():
                return "".join(c for j, c in enumerate(b) if not (j > 0 and c.isspace()))
            i -= 1
    return "".join(b)


def _variance_section(fit) -> list[str]:  # noqa: C901 - mirrors print.rma.mv section by section
    L: list[str] = []
    if not (fit.withS or fit.withG or fit.withH):
        return ["Variance Components: none", ""]
    L += ["Variance Components:", ""]
    if fit.withS:
        s2 = np.asarray(fit.sigma2, dtype=float)
        rows = [[fcf(v), fcf(math.sqrt(v)), str(n), "yes" if fx else "no", name]
                for v, n, fx, name in zip(s2, fit.s_nlevels, fit.vc_fix["sigma2"], fit.s_names, strict=True)]
        rn = ["sigma^2  "] if len(s2) == 1 else [f"sigma^2.{j + 1}" for j in range(len(s2))]
        L += matrix_lines(rn, ["estim", "sqrt", "nlvls", "fixed", "factor"], rows)
        L.append("")
    for which in ("G", "H"):
        if which == "G" and not fit.withG or which == "H" and not fit.withH:
            continue
        if which == "G":
            struct, names, nlv, levels, k_lvl, comb = (fit.struct[0], fit.g_names, fit.g_nlevels, fit.g_levels,
                                                       fit.g_levels_k, fit.g_levels_comb_k)
            var, cor, fx_v, fx_r = fit.tau2, fit.rho, fit.vc_fix["tau2"], fit.vc_fix["rho"]
            vname, cname = "tau^2", "rho"
        else:
            struct, names, nlv, levels, k_lvl, comb = (fit.struct[1], fit.h_names, fit.h_nlevels, fit.h_levels,
                                                       fit.h_levels_k, fit.h_levels_comb_k)
            var, cor, fx_v, fx_r = fit.gamma2, fit.phi, fit.vc_fix["gamma2"], fit.vc_fix["phi"]
            vname, cname = "gamma^2", "phi"
        inner, outer = names[0], names[-1]
        mng = max(len(inner), len(outer))
        L.append(f"outer factor: {outer.ljust(mng)} (nlvls = {nlv[1]})")
        L.append(f"inner factor: {inner.ljust(mng)} (nlvls = {len(levels)})")
        L.append("")
        yn = ["yes" if f else "no" for f in fx_v]
        ryn = ["yes" if f else "no" for f in fx_r]
        if struct in ("CS", "AR", "ID"):
            rows = [[fcf(var[0]), fcf(math.sqrt(var[0])), yn[0]]]
            rn = [vname + " " * (9 - len(vname))]
            if struct != "ID":
                rows.append([fcf(cor[0]), "", ryn[0]])
                rn.append(cname)
            L += matrix_lines(rn, ["estim", "sqrt", "fixed"], rows)
        elif struct in ("HCS", "HAR", "DIAG"):
            rows = [[fcf(v), fcf(math.sqrt(v)), str(kk), y, lv] for v, kk, y, lv in zip(var, k_lvl, yn, levels,
                                                                                     strict=True)]
            if len(var) == 1:
                rn = [vname + "   " if which == "G" else vname + " "]
            else:
                rn = [f"{vname}.{j + 1}  " for j in range(len(var))]
            if struct != "DIAG":
                rows.append([fcf(cor[0]), "", "", ryn[0], ""])
                rn.append(cname)
            L += matrix_lines(rn, ["estim", "sqrt", "k.lvl", "fixed", "level"], rows)
        elif struct == "UN":
            rows = [[fcf(v), fcf(math.sqrt(v)), str(kk), y, lv] for v, kk, y, lv in zip(var, k_lvl, yn, levels,
                                                                                     strict=True)]
            rn = [vname] if len(var) == 1 else [f"{vname}.{j + 1}  " for j in range(len(var))]
            L += matrix_lines(rn, ["estim", "sqrt", "k.lvl", "fixed", "level"], rows)
            L.append("")
            n = max(len(levels), 2) if len(cor) == 1 else len(levels)
            G = [["" for _ in range(n)] for _ in range(n)]
            info = [["" for _ in range(n)] for _ in range(n)]
            pairs = [(i, j) for j in range(n) for i in range(j + 1, n)]
            for (i, j), r, c, y in zip(pairs, cor, comb if len(comb) else [0] * len(pairs), ryn, strict=False):
                G[i][j] = fcf(r)
                info[j][i] = str(c)
                info[i][j] = y
            for i in range(n):
                G[i][i] = "1"
                info[i][i] = "-"
            ab = abbreviate(list(levels))
            cols = [f"{cname}.{a}" for a in ab] + [""] + ab
            rows = [G[i] + [""] + info[i] for i in range(n)]
            L += matrix_lines(list(levels), cols, rows)
        L.append("")
    return L


def format_rma_mv(fit) -> str:  # noqa: C901 - mirrors print.rma.mv section by section
    """Render an `RMAMVResult` as metafor's `print.rma.mv` does (default digits, signif stars on)."""
    L: list[str] = ["", f"Multivariate Meta-Analysis Model (k = {fit.k}; method: {fit.method})", ""]
    L += _variance_section(fit)
    if not math.isnan(fit.QE):
        qp = fmt_pval(fit.QEp, showeq=True, sep=" ")
        if fit.int_only:
            L += ["Test for Heterogeneity:", f"Q(df = {fit.k - fit.p}) = {fcf(fit.QE)}, p-val {qp}", ""]
        else:
            L += ["Test for Residual Heterogeneity:", f"QE(df = {fit.k - fit.p}) = {fcf(fit.QE)}, p-val {qp}", ""]
    L += coefficient_lines(fit, [b + 1 for b in fit.btt], t_test=fit.test == "t", ddf=fit.ddf)
    return "\n".join(L) + "\n"


def format_confint(parts) -> str:
    """metafor's `print.confint.rma` (one component) / `print.list.confint.rma` (several), variance digits 4."""
    L: list[str] = [""]
    for n, part in enumerate(parts):
        rows = []
        for name, est, lb, ub in part.rows:
            rows.append((name, [fcf(est), part.lb_sign + fcf(lb), part.ub_sign + fcf(ub)]))
        L += matrix_lines([r[0] for r in rows], ["estimate", "ci.lb", "ci.ub"], [r[1] for r in rows], gap=1)
        if n != len(parts) - 1:
            L.append("")
    L.append("")
    return "\n".join(L) + "\n"


__all__ = ["format_rma_mv", "format_confint", "matrix_lines", "vector_lines", "abbreviate"]
