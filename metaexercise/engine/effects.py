"""Effect sizes and their sampling variances, as metafor 3.8-1's `escalc` computes them.

`escalc(measure, ...)` takes metafor's argument names (as keywords) and returns an :class:`EffectSizes`.
The formulas live in one module per family, each citing its sources:

============================================  ==============================  ===============================
measures                                      inputs                          module (formulas, sources)
============================================  ==============================  ===============================
RR, OR, RD, AS, PETO, YUQ, YUY                ai, bi, ci, di (or n1i, n2i)    `escalc_counts`
IRR, IRD, IRSD                                x1i, x2i, t1i, t2i              `escalc_counts`
MD, SMD, SMDH, SMD1, SMD1H, ROM, CVR, VR,     m1i, m2i, sd1i, sd2i, n1i, n2i  `escalc_means`
RPB, RBIS, D2OR, D2ORN, D2ORL                 (SMD also di, ti)
MC, SMCC, SMCR, SMCRH, ROMC, CVRC, VRC        m1i, m2i, sd1i, sd2i, ni, ri    `escalc_change`
PR, PLN, PLO, PAS, PFT                        xi, ni (or mi = non-events)     `escalc_props`
IR, IRLN, IRS, IRFT                           xi, ti                          `escalc_props`
MN, MNLN, CVLN, SDLN, SMN                     mi, sdi, ni                     `escalc_single`
ARAW, AHW, ABT; REH                           ai, mi, ni; ai, bi, ci          `escalc_single`
COR, UCOR, ZCOR                               ri, ni                          `escalc_cor`
PCOR, ZPCOR, SPCOR                            ti, ni, mi (SPCOR also r2i)     `escalc_cor`
GEN (or any measure given ``yi``)             yi with vi, sei or ci_lb/ci_ub  here
============================================  ==============================  ===============================

Options as metafor: ``add`` (default ½, but 0 for AS, IRSD, PAS, PFT, IRS, IRFT), ``to`` ("only0", "all",
"if0all", "none"), ``drop00``, ``vtype`` (one code or one per study; "LS" by default, the choices per measure
as metafor's), ``subset`` and ``include`` (boolean masks or 0-based positions), ``data`` (a DataFrame whose
columns any argument may name). A generic effect may also be given with a Wald confidence interval
``ci_lb``/``ci_ub`` at ``level``: se = (ub − lb)/(2 z₁₋α/₂) (Cochrane Handbook 6.3.1).

Missing values follow metafor: a study with a missing input gets a missing effect (its other value kept when
computable); ±Inf, or NaN arising in the computation, makes both yi and vi missing (NaN); a negative vi is
missing. Bad input (negative counts or SDs, ``|r|`` > 1, unknown options) raises ValueError/TypeError naming the
argument and the 0-based positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from numbers import Real
from typing import Literal

import numpy as np
from scipy import special

from metaexercise.engine.escalc_common import (
    TO_CHOICES,
    VTYPES,
    Args,
    Computed,
    as_vector,
    finalize,
    hedges_correction,
    isna,
)

__all__ = ["EffectSizes", "escalc", "hedges_correction", "MEASURES"]

Measure = Literal[
    "RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY", "IRR", "IRD", "IRSD", "MD", "SMD", "SMDH", "SMD1", "SMD1H",
    "ROM", "CVR", "VR", "RPB", "RBIS", "D2OR", "D2ORN", "D2ORL", "MC", "SMCC", "SMCR", "SMCRH", "ROMC", "CVRC",
    "VRC", "PR", "PLN", "PLO", "PAS", "PFT", "IR", "IRLN", "IRS", "IRFT", "MN", "MNLN", "CVLN", "SDLN", "SMN",
    "ARAW", "AHW", "ABT", "REH", "COR", "UCOR", "ZCOR", "PCOR", "ZPCOR", "SPCOR", "GEN",
]

TABLE_MEASURES: tuple[str, ...] = ("RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY")
RATE_MEASURES: tuple[str, ...] = ("IRR", "IRD", "IRSD")
COUNT_MEASURES: tuple[str, ...] = TABLE_MEASURES + RATE_MEASURES

_FAMILIES: dict[str, tuple[str, ...]] = {
    "escalc_means": ("MD", "SMD", "SMDH", "SMD1", "SMD1H", "ROM", "RPB", "RBIS", "D2OR", "D2ORN", "D2ORL", "CVR",
                     "VR"),
    "escalc_change": ("MC", "SMCC", "SMCR", "SMCRH", "ROMC", "CVRC", "VRC"),
    "escalc_props": ("PR", "PLN", "PLO", "PAS", "PFT", "IR", "IRLN", "IRS", "IRFT"),
    "escalc_single": ("MN", "MNLN", "CVLN", "SDLN", "SMN", "ARAW", "AHW", "ABT", "REH"),
    "escalc_cor": ("COR", "UCOR", "ZCOR", "PCOR", "ZPCOR", "SPCOR"),
}
#: Each measure and the module that computes it.
_MODULE: dict[str, str] = {m: "escalc_counts" for m in COUNT_MEASURES} | {
    m: module for module, names in _FAMILIES.items() for m in names}

MEASURES: tuple[str, ...] = (*_MODULE, "GEN")
#: metafor 3.8 measures not computed here (tetrachoric, matched-pairs and 2x2-to-d conversions).
NOT_AVAILABLE: tuple[str, ...] = ("PHI", "RTET", "PBIT", "OR2D", "OR2DN", "OR2DL", "MPRD", "MPRR", "MPOR",
                                  "MPORC", "MPPETO", "MPORM")
#: Measures whose default ``add`` is 0 in metafor (add=1/2 otherwise).
ZERO_ADD: tuple[str, ...] = ("AS", "PHI", "RTET", "IRSD", "PAS", "PFT", "IRS", "IRFT")

@dataclass(frozen=True, slots=True)
class EffectSizes:
    """Observed effects ``yi`` and sampling variances ``vi`` (1-D float arrays of equal length), the measure,
    and ``ni``, metafor's (unadjusted) total sample size per study where the measure has one (its
    ``attr(yi, "ni")``), else None."""

    yi: np.ndarray
    vi: np.ndarray
    measure: str
    ni: np.ndarray | None = None

    @property
    def sei(self) -> np.ndarray:
        return np.sqrt(self.vi)

    def __len__(self) -> int:
        return len(self.yi)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"yi": self.yi, "vi": self.vi})


def escalc(
    measure: Measure,
    *,
    ai=None, bi=None, ci=None, di=None, n1i=None, n2i=None, x1i=None, x2i=None, t1i=None, t2i=None,
    m1i=None, m2i=None, sd1i=None, sd2i=None, xi=None, mi=None, ri=None, ti=None, sdi=None, r2i=None, ni=None,
    yi=None, vi=None, sei=None, data=None, subset=None, include=None,
    add: float | None = None, to: str = "only0", drop00: bool = False, vtype: str | list[str] = "LS",
    ci_lb=None, ci_ub=None, level: float = 95,
) -> EffectSizes:
    """Compute effect sizes and sampling variances (metafor 3.8 ``escalc``; see the module's table).

    Arrays, lists, pandas Series (or column names of ``data``) in; an :class:`EffectSizes` with numpy arrays
    ``yi``, ``vi`` and ``ni`` out. Group 1 is the experimental group: a positive SMD means group 1 has the
    larger mean. ``add=None`` means metafor's default (0 for AS, IRSD, PAS, PFT, IRS, IRFT; ½ otherwise).
    """
    measure = _check_options(measure, to, vtype, add, drop00)
    if add is None:
        add = 0.0 if measure in ZERO_ADD else 0.5
    given = {"ai": ai, "bi": bi, "ci": ci, "di": di, "n1i": n1i, "n2i": n2i, "x1i": x1i, "x2i": x2i, "t1i": t1i,
             "t2i": t2i, "m1i": m1i, "m2i": m2i, "sd1i": sd1i, "sd2i": sd2i, "xi": xi, "mi": mi, "ri": ri,
             "ti": ti, "sdi": sdi, "r2i": r2i, "ni": ni, "yi": yi, "vi": vi, "sei": sei, "ci_lb": ci_lb,
             "ci_ub": ci_ub}
    values = {name: _vector(name, value, data) for name, value in given.items()}
    keep = _positions("subset", subset, values)
    if keep is not None:
        values = {n: None if v is None else v[keep] for n, v in values.items()}
        if not isinstance(vtype, str):
            vtype = np.asarray(list(vtype), dtype=object)[keep]
    args = Args(measure, values)
    if values["yi"] is not None or measure == "GEN":
        out = _generic(measure, args, level)
    elif measure in COUNT_MEASURES:
        out = _counts(measure, args, add=add, to=to, drop00=drop00, vtype=vtype)
    else:
        module = import_module(f"metaexercise.engine.{_MODULE[measure]}")
        out = module.compute(measure, args, add=add, to=to, vtype=vtype)
    y, v = finalize(out.yi, out.vi, out.na)
    n = None if out.ni is None else np.array(out.ni, dtype=float)
    chosen = _positions("include", include, {"yi": y})
    if chosen is not None:
        drop = np.ones(len(y), dtype=bool)
        drop[chosen] = False
        y[drop] = v[drop] = np.nan
        if n is not None:
            n[drop] = np.nan
    return EffectSizes(yi=y, vi=v, measure=measure, ni=n)


def _check_options(measure, to, vtype, add, drop00) -> str:
    if not isinstance(measure, str):
        raise TypeError(f"escalc: 'measure' must be a string such as 'SMD', got {measure!r}")
    if measure in NOT_AVAILABLE:
        raise ValueError(f"escalc: measure {measure!r} (metafor 3.8) is not available here; available: "
                         f"{', '.join(MEASURES)}")
    if measure not in MEASURES:
        raise ValueError(f"escalc: unknown measure {measure!r}; choose one of {', '.join(MEASURES)}")
    if to not in TO_CHOICES:
        raise ValueError(f"escalc: unknown 'to' argument {to!r}; choose one of {TO_CHOICES}")
    codes = np.asarray([vtype] if isinstance(vtype, str) else [str(c) for c in vtype])
    bad = np.flatnonzero(~np.isin(codes, VTYPES))
    if bad.size:
        raise ValueError(f"escalc: unknown 'vtype' {codes[bad].tolist()} at positions {bad.tolist()}; choose "
                         f"from {VTYPES}")
    if add is not None and (isinstance(add, bool) or not isinstance(add, Real) or not np.isfinite(add)):
        raise TypeError(f"escalc: 'add' must be a finite number (or None for metafor's default), got {add!r}")
    if not isinstance(drop00, bool | np.bool_):
        raise TypeError(f"escalc: 'drop00' must be True or False, got {drop00!r}")
    return measure


def _vector(name: str, value, data) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, str):
        if data is None:
            raise TypeError(f"escalc: {name}={value!r} names a column, but no 'data' was given")
        try:
            value = data[value]
        except (KeyError, IndexError) as exc:
            raise ValueError(f"escalc: {name}={value!r}: no such column in 'data'") from exc
    return as_vector(name, value)


def _positions(name: str, sel, values: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """``subset``/``include`` as an index array: a boolean mask (missing = False) or 0-based positions."""
    if sel is None:
        return None
    k = next((len(v) for v in values.values() if v is not None), None)
    if k is None:
        raise TypeError(f"escalc: '{name}' given but no data vectors")
    s = np.asarray(sel.to_numpy() if hasattr(sel, "to_numpy") else sel)
    if s.dtype == bool or s.dtype == object:
        mask = np.array([bool(x) if x is not None and x == x else False for x in s.ravel()])
        if len(mask) != k:
            raise ValueError(f"escalc: '{name}' has length {len(mask)}, expected k = {k}")
        return np.flatnonzero(mask)
    if not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"escalc: '{name}' must be a boolean mask or 0-based integer positions, got {s.dtype}")
    bad = np.flatnonzero((s < -k) | (s >= k))
    if bad.size:
        raise ValueError(f"escalc: '{name}' positions {s[bad].tolist()} are outside 0..{k - 1}")
    return s.ravel()


def _generic(measure: str, a: Args, level: float) -> Computed:
    """``yi`` given directly with ``vi``, ``sei`` or a Wald interval (metafor: escalc(yi=, vi=/sei=))."""
    if a.get("yi") is None:
        raise TypeError(f"escalc({measure!r}): give 'yi' with 'vi', 'sei' or both 'ci_lb' and 'ci_ub'")
    if a.get("vi") is not None:
        y, v, n = a.need("yi", "vi", optional=("ni",))
        bad = np.flatnonzero(v < 0)
        if bad.size:
            raise ValueError(f"escalc({measure!r}): vi is negative at positions {bad.tolist()} (0-based): "
                             f"{v[bad].tolist()}")
    else:
        if a.get("sei") is not None:
            y, se, n = a.need("yi", "sei", optional=("ni",))
        elif a.get("ci_lb") is not None and a.get("ci_ub") is not None:
            if not 0 < level < 100:
                raise ValueError(f"escalc: 'level' must be a percentage between 0 and 100, got {level!r}")
            y, lb, ub, n = a.need("yi", "ci_lb", "ci_ub", optional=("ni",))
            se = (ub - lb) / (2 * -special.ndtri((1 - level / 100) / 2))
        else:
            raise TypeError(f"escalc({measure!r}): give 'vi', 'sei' or both 'ci_lb' and 'ci_ub' with 'yi'")
        bad = np.flatnonzero(se < 0)
        if bad.size:
            raise ValueError(f"escalc({measure!r}): sei is negative at positions {bad.tolist()} (0-based): "
                             f"{se[bad].tolist()}")
        v = se**2
    return Computed(y.copy(), v, n, isna(y, v))


def _counts(measure: str, a: Args, *, add: float, to: str, drop00: bool, vtype) -> Computed:
    """Two-group counts and person-time: computed by `escalc_counts.counts_effects` (imported on first use)."""
    from metaexercise.engine.escalc_counts import counts_effects

    names = ("ai", "bi", "ci", "di", "n1i", "n2i", "x1i", "x2i", "t1i", "t2i")
    kw = {n: a.get(n) for n in names}
    yi, vi = counts_effects(measure, **kw, add=add, to=to, drop00=drop00, vtype=vtype)
    yi, vi = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    if measure in RATE_MEASURES:
        x1, x2, t1, t2 = (kw[n] for n in ("x1i", "x2i", "t1i", "t2i"))
        ni = None if t1 is None or t2 is None else t1 + t2
        na = isna(*(kw[n] for n in ("x1i", "x2i", "t1i", "t2i")))
        if drop00 and x1 is not None and x2 is not None:
            na |= (x1 == 0) & (x2 == 0)
    else:
        ai, bi, ci, di, n1, n2 = (kw[n] for n in names[:6])
        bi = _fill(bi, None if n1 is None or ai is None else n1 - ai)
        di = _fill(di, None if n2 is None or ci is None else n2 - ci)
        cells = (ai, bi, ci, di)
        ni = ai + bi + ci + di if all(c is not None for c in cells) else None
        na = isna(*cells) if any(c is not None for c in cells) else np.zeros(len(yi), dtype=bool)
        if drop00 and ni is not None:
            na |= ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
    if len(na) != len(yi):
        na = np.zeros(len(yi), dtype=bool)
    return Computed(yi, vi, ni, na)


def _fill(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    """metafor's ``replmiss(x, y)``: x with its missing values taken from y."""
    if y is None:
        return x
    if x is None:
        return y
    return np.where(np.isnan(x), y, x)
