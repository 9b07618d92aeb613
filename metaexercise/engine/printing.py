"""Text summaries laid out exactly like metafor 3.8's `print.rma.uni`, so the two can be diffed line by line.

Digits follow metafor's defaults (4 for estimates, SEs, tests, p-values, CIs and variances; 2 for I² and H²),
p-values below 1e-4 print as "<.0001", and each table line ends in one space, as metafor's `.print.table`.
"""

from __future__ import annotations

import math

import numpy as np

DIGITS = 4
SIGNIF_LEGEND = "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"


R_WIDTH = 80  # R's getOption("width"), at which metafor's printouts in the fixtures were captured


def fcf(x: float, digits: int = DIGITS) -> str:
    """metafor's `.fcf`: fixed notation, trimmed."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NA"
    return f"{x:.{digits}f}".strip()


def fmt_pval(p: float, digits: int = DIGITS, showeq: bool = False, sep: str = "") -> str:
    """metafor's `.pval`: "<.0001" below the cutoff, else fixed with `digits` decimals."""
    if p is None or math.isnan(p):
        return f"{'=' if showeq else ''}{sep}NA"
    cutoff = 10.0 ** (-digits)
    if p >= cutoff:
        return f"{'=' if showeq else ''}{sep}{p:.{digits}f}"
    return f"<{sep}." + "0" * (digits - 1) + "1"


def signif_stars(p: float) -> str:
    if p is None or math.isnan(p):
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return sym
    return " "


def _format_btt(btt: list[int]) -> str:
    """metafor's `.format.btt`: 1-based coefficient indices with runs written as a:b."""
    parts, i = [], 0
    while i < len(btt):
        j = i
        while j + 1 < len(btt) and btt[j + 1] == btt[j] + 1:
            j += 1
        parts.append(f"{btt[i]}:{btt[j]}" if j > i else f"{btt[i]}")
        i = j + 1
    return ",".join(parts)


def _vector_table(names: list[str], values: list[str]) -> list[str]:
    """metafor's `.print.vector` (+ `.print.table`'s trailing space)."""
    widths = [max(len(n), len(v)) for n, v in zip(names, values)]
    head = "  ".join(n.rjust(w) for n, w in zip(names, widths))
    row = "  ".join(v.rjust(w) for v, w in zip(values, widths))
    return [head + " ", row + " "]


def matrix_lines(rownames: list[str], names: list[str], rows: list[list[str]], gap: int = 2,
                 right: bool = True) -> list[str]:
    """R's print of a character matrix or data frame (`print.data.frame(right=TRUE, print.gap=gap)`), wrapped
    as R's printMatrix wraps it: a column joins the current block while the block stays narrower than R's
    width of 80, else starts a new block; each line with `.print.table`'s trailing space."""
    rw = max((len(r) for r in rownames), default=0)
    widths = [max(len(n), *(len(r[j]) for r in rows)) if rows else len(n) for j, n in enumerate(names)]
    blocks: list[list[int]] = []
    used = rw
    for j, w in enumerate(widths):
        if blocks and used + gap + w < R_WIDTH:
            blocks[-1].append(j)
            used += gap + w
        else:
            blocks.append([j])
            used = rw + gap + w
    out = []
    for cols in blocks:
        out.append(" " * rw + "".join(" " * gap + (names[j].rjust(widths[j]) if right else names[j].ljust(widths[j]))
                                      for j in cols) + " ")
        for rn, r in zip(rownames, rows, strict=True):
            out.append(rn.ljust(rw) + "".join(" " * gap + r[j].rjust(widths[j]) for j in cols) + " ")
    return out


def _frame_table(rownames: list[str], names: list[str], rows: list[list[str]]) -> list[str]:
    """R's `print.data.frame(right=TRUE, print.gap=2)` (`matrix_lines`)."""
    return matrix_lines(rownames, names, rows)


def format_rma(fit) -> str:  # noqa: C901 - mirrors print.rma.uni section by section
    """Render an `RMAResult` as metafor's `print.rma.uni` does (default digits, signif stars on)."""
    L: list[str] = [""]
    ee = fit.method == "EE"
    if ee:
        title = "Equal-Effects Model" if fit.int_only else "Fixed-Effects with Moderators Model"
        L.append(f"{title} (k = {fit.k})")
    else:
        title = "Random-Effects Model" if fit.int_only else "Mixed-Effects Model"
        est = "user-specified tau^2 value" if fit.tau2_fixed else f"tau^2 estimator: {fit.method}"
        L.append(f"{title} (k = {fit.k}; {est})")
    L.append("")
    tiny = abs(fit.tau2) <= np.finfo(float).eps * 10
    if not ee:
        se_txt = "" if math.isnan(fit.se_tau2) else f" (SE = {fcf(fit.se_tau2)})"
        t2 = fcf(fit.tau2, 0 if tiny else DIGITS)
        tau = fcf(math.sqrt(fit.tau2), 0 if fit.tau2 <= np.finfo(float).eps * 10 else DIGITS)
        if fit.int_only:
            L.append(f"tau^2 (estimated amount of total heterogeneity): {t2}{se_txt}")
            L.append(f"tau (square root of estimated tau^2 value):      {tau}")
        else:
            L.append(f"tau^2 (estimated amount of residual heterogeneity):     {t2}{se_txt}")
            L.append(f"tau (square root of estimated tau^2 value):             {tau}")
    if getattr(fit, "allvipos", True):  # metafor prints no I^2/H^2 (nor Q) when some vi are 0
        if fit.int_only:
            L.append(f"I^2 (total heterogeneity / total variability):   {fcf(fit.I2, 2)}%")
            L.append(f"H^2 (total variability / sampling variability):  {fcf(fit.H2, 2)}")
        else:
            L.append(f"I^2 (residual heterogeneity / unaccounted variability): {fcf(fit.I2, 2)}%")
            L.append(f"H^2 (unaccounted variability / sampling variability):   {fcf(fit.H2, 2)}")
            if fit.R2 is not None:
                L.append(f"R^2 (amount of heterogeneity accounted for):            {fcf(fit.R2, 2)}%")
    L.append("")
    df = fit.k - fit.p
    qp = fmt_pval(fit.QEp, showeq=True, sep=" ")
    if not getattr(fit, "allvipos", True):
        pass
    elif fit.int_only:
        L += ["Test for Heterogeneity:", f"Q(df = {df}) = {fcf(fit.QE)}, p-val {qp}", ""]
    else:
        L += ["Test for Residual Heterogeneity:", f"QE(df = {df}) = {fcf(fit.QE)}, p-val {qp}", ""]
    # the coefficients QM tests (metafor's btt, 1-based): all but the intercept, or all without one
    btt = [b + 1 for b in getattr(fit, "btt", ())] or list(range(2, fit.p + 1))
    L += coefficient_lines(fit, btt, t_test=fit.test == "knha", ddf=[fit.ddf] * fit.p)
    return "\n".join(L) + "\n"


def coefficient_lines(fit, btt: list[int], *, t_test: bool, ddf) -> list[str]:
    """The "Test of Moderators" block (when p > 1; `btt` 1-based) and the "Model Results" table with the signif.
    legend, as metafor's print.rma.uni and print.rma.mv end: z or t tests (`t_test`, with `ddf` per
    coefficient), a vector for an intercept-only model, a wrapped table otherwise."""
    L: list[str] = []
    if fit.p > 1 and not math.isnan(fit.QM):
        plural = " " if len(btt) == 1 else "s "
        L.append(f"Test of Moderators (coefficient{plural}{_format_btt(btt)}):")
        qmp = fmt_pval(fit.QMp, showeq=True, sep=" ")
        if t_test:
            d2 = fit.QM_df[1]
            d2s = f"{d2:g}" if float(d2).is_integer() else f"{round(d2, 2)}"
            L.append(f"F(df1 = {int(fit.QM_df[0])}, df2 = {d2s}) = {fcf(fit.QM)}, p-val {qmp}")
        else:
            L.append(f"QM(df = {int(fit.QM_df[0])}) = {fcf(fit.QM)}, p-val {qmp}")
        L.append("")
    L += ["Model Results:", ""]
    names = ["estimate", "se", "tval" if t_test else "zval"] + (["df"] if t_test else []) + ["pval", "ci.lb",
                                                                                             "ci.ub", ""]
    rows = []
    for j in range(fit.p):
        r = [fcf(fit.beta[j]), fcf(fit.se[j]), fcf(fit.zval[j])]
        if t_test:
            r.append(f"{round(float(ddf[j]), 2):g}")
        r += [fmt_pval(fit.pval[j]), fcf(fit.ci_lb[j]), fcf(fit.ci_ub[j]), signif_stars(fit.pval[j])]
        rows.append(r)
    L += _vector_table(names, rows[0]) if fit.int_only else matrix_lines(list(fit.coef_names), names, rows)
    return L + ["", "---", SIGNIF_LEGEND, ""]


# -- anova (metafor's print.anova.rma) --------------------------------------------------------------------------
def _r_data_frame(rownames: list[str], names: list[str], rows: list[list[str]], gap: int = 1) -> list[str]:
    """R's `print.data.frame(right=TRUE)` of string cells with one space between columns (`matrix_lines`)."""
    return matrix_lines(rownames, names, rows, gap=gap)


def _qm_line(test: str, QM: float, QM_df, QMp: float) -> str:
    p = fmt_pval(QMp, showeq=True, sep=" ")
    if test == "knha":
        d2 = QM_df[1]
        d2s = f"{d2:g}" if float(d2).is_integer() else f"{round(d2, 2)}"
        return f"F(df1 = {int(QM_df[0])}, df2 = {d2s}) = {fcf(QM)}, p-val {p}"
    return f"QM(df = {int(QM_df[0])}) = {fcf(QM)}, p-val {p}"


def format_anova_wald(res) -> str:
    """Render an engine.hypothesis.WaldTest as metafor's `print.anova.rma` does (types "Wald.btt" and "Wald.Xb")."""
    L: list[str] = [""]
    if res.Xb is None:
        btt = [b + 1 for b in res.btt]
        L.append(f"Test of Moderators (coefficient{' ' if res.m == 1 else 's '}{_format_btt(btt)}):")
        L.append(_qm_line(res.test, res.QM, res.QM_df, res.QMp))
        return "\n".join(L) + "\n"
    rn = [f"{j + 1}:" for j in range(res.m)]
    hyp = list(res.hyp)
    rw, hw = max(len(r) for r in rn), max(len(h) for h in hyp)
    L.append(("Hypothesis:" if res.m == 1 else "Hypotheses:") + " " * (rw + 1 + hw + 1))
    L += [r.ljust(rw) + " " + h.rjust(hw) + " " for r, h in zip(rn, hyp)]
    L += ["", "Results:"]
    knha = res.test == "knha"
    names = ["estimate", "se", "tval" if knha else "zval"] + (["df"] if knha else []) + ["pval"]
    rows = []
    for j in range(res.m):
        r = [fcf(res.Xb[j]), fcf(res.se[j]), fcf(res.zval[j])]
        if knha:
            r.append(f"{round(float(res.ddf[j]), 2):g}")
        r.append(fmt_pval(res.pval[j]))
        rows.append(r)
    L += _r_data_frame(rn, names, rows)
    if not math.isnan(res.QM):
        L += ["", "Test of Hypothesis:" if res.m == 1 else "Omnibus Test of Hypotheses:"]
        L.append(_qm_line(res.test, res.QM, res.QM_df, res.QMp))
    return "\n".join(L) + "\n"


def format_anova_lrt(res) -> str:
    """Render an engine.hypothesis.LikelihoodRatioTest as metafor's `print.anova.rma` does (type "LRT")."""
    names = ["df", "AIC", "BIC", "AICc", "logLik", "LRT", "pval", "QE", "tau^2", "R^2"]
    full = [str(res.parms_f), fcf(res.fit_stats_f[2]), fcf(res.fit_stats_f[3]), fcf(res.fit_stats_f[4]),
            fcf(res.fit_stats_f[0]), "", "", fcf(res.QE_f), fcf(res.tau2_f), ""]
    red = [str(res.parms_r), fcf(res.fit_stats_r[2]), fcf(res.fit_stats_r[3]), fcf(res.fit_stats_r[4]),
           fcf(res.fit_stats_r[0]), fcf(res.LRT), fmt_pval(res.pval), fcf(res.QE_r), fcf(res.tau2_r),
           f"{fcf(res.R2)}%"]
    if res.method == "EE" or math.isnan(res.tau2_f) or math.isnan(res.tau2_r):
        j = names.index("tau^2")
        for row in (names, full, red):
            del row[j]
    return "\n".join(["", *_r_data_frame(["Full", "Reduced"], names, [full, red])]) + "\n"
