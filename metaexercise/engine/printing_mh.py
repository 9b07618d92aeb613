"""Text summaries of Mantel–Haenszel and Peto fits laid out exactly like metafor 3.8's `print.rma.mh` and
`print.rma.peto` (default digits: 4, and 2 for I² and H²), so the two can be diffed line by line.

Each function replays the `cat` calls of metafor's method in order, so blank lines and trailing spaces come out
where metafor puts them, including when a statistic is NA (NaN here) and its line is left out.
"""

from __future__ import annotations

import math

from metaexercise.engine.printing import fcf

_NOT_COMPUTABLE = "test value not computable for these data"


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _pval(p: float, showeq: bool = False, sep: str = "", add0: bool = False, digits: int = 4) -> str:
    """metafor's `.pval` (with its ``add0``: "< 0.0001" rather than "< .0001")."""
    eq = "=" if showeq else ""
    if _nan(p):
        return f"{eq}{sep}NA"
    cutoff = "." + "0" * (digits - 1) + "1"
    if p >= float(cutoff):
        return f"{eq}{sep}{p:.{digits}f}"
    return f"<{sep}{'0' if add0 else ''}{cutoff}"


def _table(names: list[str], values: list[str]) -> str:
    """metafor's `.print.vector` through `.print.table`: names over values, each column right-aligned to its
    wider entry, two spaces between columns, each line ending in a space."""
    widths = [max(len(n), len(v)) for n, v in zip(names, values, strict=True)]
    head = "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
    row = "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
    return f"{head} \n{row} \n"


def _header_and_heterogeneity(fit, q_df: int) -> str:
    out = "\nEqual-Effects Model" + f" (k = {fit.k})" + "\n" + "\n"
    if not _nan(fit.I2):
        out += f"I^2 (total heterogeneity / total variability):  {fcf(fit.I2, 2)}%\n"
    if not _nan(fit.H2):
        out += f"H^2 (total variability / sampling variability): {fcf(fit.H2, 2)}\n"
    if not _nan(fit.QE):
        out += "\nTest for Heterogeneity: \n"
        out += f"Q(df = {q_df}) = {fcf(fit.QE)}, p-val {_pval(fit.QEp, showeq=True, sep=' ')}"
    if not (_nan(fit.I2) and _nan(fit.H2) and _nan(fit.QE)):
        out += "\n\n"
    return out


def _log_and_exp_tables(fit, scale: str) -> str:
    exp = [math.exp(x) if not _nan(x) else math.nan for x in (fit.beta, fit.ci_lb, fit.ci_ub)]
    out = "Model Results (log scale):\n\n"
    out += _table(["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"],
                  [fcf(fit.beta), fcf(fit.se), fcf(fit.zval), _pval(fit.pval), fcf(fit.ci_lb), fcf(fit.ci_ub)])
    out += "\n" + f"Model Results ({scale} scale):\n\n"
    out += _table(["estimate", "ci.lb", "ci.ub"], [fcf(v) for v in exp])
    return out


def format_rma_mh(fit) -> str:
    """Render an `rma_mh` result as metafor's `print.rma.mh` does."""
    out = _header_and_heterogeneity(fit, max(fit.k_yi - 1, 0))
    if fit.measure in ("OR", "RR", "IRR"):
        out += _log_and_exp_tables(fit, fit.measure)
        if fit.measure == "OR":
            mh = None if _nan(fit.MH) else fcf(fit.MH)
            ta = None if _nan(fit.TA) else fcf(fit.TA)
            width = max(len(mh or "NA"), len(ta or "NA"))  # R: nchar(NA) is 2
            out += "\nCochran-Mantel-Haenszel Test:    "
            if mh is None:
                out += _NOT_COMPUTABLE + "\n"
            else:
                pad = " " * (len(str(int(fit.k_pos))) - 1)
                out += (f"CMH = {mh.rjust(width)}, df = 1,{pad} p-val "
                        f"{_pval(fit.MHp, showeq=True, sep=' ', add0=True)}\n")
            out += "Tarone's Test for Heterogeneity: "
            if ta is None:
                out += _NOT_COMPUTABLE
            else:
                out += (f"X^2 = {ta.rjust(width)}, df = {int(fit.k_pos) - 1}, p-val "
                        f"{_pval(fit.TAp, showeq=True, sep=' ', add0=True)}")
            out += "\n"
        if fit.measure == "IRR":
            out += "\nMantel-Haenszel Test: "
            if _nan(fit.MH):
                out += _NOT_COMPUTABLE
            else:
                out += f"MH = {fcf(fit.MH)}, df = 1, p-val {_pval(fit.MHp, showeq=True, sep=' ')}"
            out += "\n"
    else:
        out += "Model Results:\n\n"
        out += _table(["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"],
                      [fcf(fit.beta), fcf(fit.se), fcf(fit.zval), _pval(fit.pval), fcf(fit.ci_lb), fcf(fit.ci_ub)])
    return out + "\n"


def format_rma_peto(fit) -> str:
    """Render an `rma_peto` result as metafor's `print.rma.peto` does (Q's df is k.pos − 1, as metafor prints)."""
    out = _header_and_heterogeneity(fit, int(fit.k_pos) - 1)
    out += _log_and_exp_tables(fit, "OR")
    return out + "\n"
