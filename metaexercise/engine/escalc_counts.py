"""Effect sizes from two-group counts and from incidence rates, as metafor 3.8's `escalc` computes them.

Two-group counts (2×2 tables: ``ai``/``bi`` events/non-events in group 1, ``ci``/``di`` in group 2; ``bi`` and
``di`` may be given as group sizes ``n1i``/``n2i`` instead), with p₁ = a/(a+b), p₂ = c/(c+d):

- ``"RR"`` log risk ratio, yi = ln p₁ − ln p₂, vi = 1/a − 1/n₁ + 1/c − 1/n₂;
- ``"OR"`` log odds ratio, yi = logit p₁ − logit p₂, vi = 1/a + 1/b + 1/c + 1/d (Woolf 1955);
- ``"RD"`` risk difference, yi = p₁ − p₂; vi = p₁(1 − p₁)/n₁ + p₂(1 − p₂)/n₂ (``vtype="LS"``), with n − 1 in
  the denominators (``"UB"``, unbiased), or with the sample-size-weighted mean risks of all studies in place of
  p₁ and p₂ (``"AV"``);
- ``"AS"`` arcsine square-root risk difference, yi = asin √p₁ − asin √p₂, vi = 1/(4n₁) + 1/(4n₂) (Rücker et
  al. 2009, Stat Med 28:721);
- ``"PETO"`` Peto's log odds ratio, yi = (a − E)/V, vi = 1/V with E = (a + c) n₁/N and the hypergeometric
  variance V = (a + c)(b + d) n₁ n₂ / (N² (N − 1)) (Yusuf et al. 1985, Prog Cardiovasc Dis 27:335);
- ``"YUQ"`` Yule's Q = (OR − 1)/(OR + 1), vi = (1 − Q²)²/4 · (1/a + 1/b + 1/c + 1/d); ``"YUY"`` Yule's
  Y = (√OR − 1)/(√OR + 1), vi = (1 − Y²)²/16 · (1/a + 1/b + 1/c + 1/d) (Bishop, Fienberg & Holland 1975, §11.2).

Incidence rates (``x1i``, ``x2i`` events over person-times ``t1i``, ``t2i``; r = x/t):

- ``"IRR"`` log incidence rate ratio, yi = ln r₁ − ln r₂, vi = 1/x₁ + 1/x₂;
- ``"IRD"`` incidence rate difference, yi = r₁ − r₂, vi = r₁/t₁ + r₂/t₂;
- ``"IRSD"`` square-root rate difference, yi = √r₁ − √r₂, vi = 1/(4t₁) + 1/(4t₂).

Zero cells (metafor's ``add``, ``to``, ``drop00``): ``to="only0"`` adds ``add`` to each cell of the tables with a
zero cell (``"all"``: of every table; ``"if0all"``: of every table when any has a zero cell; ``"none"``: never);
``drop00=True`` makes the studies without events (or with only events) in both groups missing. ``add`` defaults
to 1/2, and to 0 for AS and IRSD (metafor's behaviour when ``add`` is not given). As in metafor, infinite yi or vi
(e.g. ``add=0`` with a zero cell) become NaN (with metafor's warning), and so do negative variances.
"""

from __future__ import annotations

import warnings

import numpy as np

from metaexercise.engine.escalc_common import INF_WARNING, TO_CHOICES, VTYPES, wmean

COUNT_MEASURES: tuple[str, ...] = ("RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY")
RATE_MEASURES: tuple[str, ...] = ("IRR", "IRD", "IRSD")
MEASURES: tuple[str, ...] = COUNT_MEASURES + RATE_MEASURES
#: RD uses the vtypes UB, LS and AV; the other measures here ignore vtype (as metafor)
RD_VTYPES: tuple[str, ...] = ("UB", "LS", "AV")
#: measures whose ``add`` defaults to 0 when not given (metafor 3.8 `escalc`)
_ADD0: tuple[str, ...] = ("AS", "IRSD")

def as_counts(name: str, value, k: int | None, caller: str) -> np.ndarray:
    """One count or person-time argument as a 1-D float array (NaN = missing), checked for length."""
    if type(value) is np.ndarray and value.dtype == np.float64 and value.ndim == 1:  # the common case, cheaply
        a = value
    elif value is None:
        raise TypeError(f"{caller}: argument {name!r} is required for this measure")
    else:
        if hasattr(value, "to_numpy"):
            value = value.to_numpy(dtype=float, na_value=np.nan)
        try:
            a = np.atleast_1d(np.asarray(value, dtype=float))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{caller}: {name!r} must be numeric ({exc})") from None
    if a.ndim != 1:
        raise ValueError(f"{caller}: {name!r} must be one-dimensional, got shape {a.shape}")
    if k is not None and a.size != k:
        raise ValueError(f"{caller}: {name!r} has length {a.size}, expected {k} (one value per study)")
    return a


def _refuse(caller: str, what: str, mask: np.ndarray, *values: np.ndarray) -> None:
    if mask.any():
        bad = np.flatnonzero(mask)
        shown = [v[bad].tolist() for v in values]
        raise ValueError(f"{caller}: {what} at positions {bad.tolist()} (0-based): {shown if len(shown) > 1 else shown[0]}")


def tables(ai, bi, ci, di, n1i, n2i, *, caller: str = "escalc") -> tuple[np.ndarray, ...]:
    """The four cells of each 2×2 table, ``bi``/``di`` completed from ``n1i``/``n2i`` as metafor does
    (``replmiss(bi, n1i - ai)``), with metafor's checks: equal lengths, n1i = ai + bi where both are given, no
    negative counts, events not above group sizes."""
    a = as_counts("ai", ai, None, caller)
    k = a.size
    c = as_counts("ci", ci, k, caller)
    cells = []
    for cell, n, ev, cname, nname, evname in ((bi, n1i, a, "bi", "n1i", "ai"), (di, n2i, c, "di", "n2i", "ci")):
        if cell is None and n is None:
            raise TypeError(f"{caller}: give {cname!r} or {nname!r} (group size) for this measure")
        x = as_counts(cname, cell, k, caller) if cell is not None else None
        if n is not None:
            nn = as_counts(nname, n, k, caller)
            _refuse(caller, f"{evname} is larger than {nname}", ev > nn, ev, nn)
            if x is None:
                x = nn - ev
            else:
                total = ev + x
                _refuse(caller, f"{nname} is not {evname} + {cname}", (nn != total) & ~np.isnan(nn - total), nn, total)
                x = np.where(np.isnan(x), nn - ev, x)
        cells.append(x)
    b, d = cells
    for name, x in (("ai", a), ("bi", b), ("ci", c), ("di", d)):
        _refuse(caller, f"{name} is negative (a count)", x < 0, x)
    return a, b, c, d


def rates(x1i, x2i, t1i, t2i, *, caller: str = "escalc") -> tuple[np.ndarray, ...]:
    """Events and person-times, with metafor's checks (equal lengths, counts ≥ 0, person-times > 0)."""
    x1 = as_counts("x1i", x1i, None, caller)
    k = x1.size
    x2, t1, t2 = (as_counts(n, v, k, caller) for n, v in (("x2i", x2i), ("t1i", t1i), ("t2i", t2i)))
    for name, x in (("x1i", x1), ("x2i", x2)):
        _refuse(caller, f"{name} is negative (a count)", x < 0, x)
    for name, t in (("t1i", t1), ("t2i", t2)):
        _refuse(caller, f"{name} is <= 0 (a person-time)", t <= 0, t)
    return x1, x2, t1, t2


def default_add(measure: str, add: float | None, caller: str = "escalc") -> float:
    """metafor's ``add``: 1/2, except 0 for AS and IRSD when the user gives none."""
    if add is None:
        return 0.0 if measure in _ADD0 else 0.5
    try:
        out = float(add)
    except (TypeError, ValueError):
        raise TypeError(f"{caller}: 'add' must be a number, got {add!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{caller}: 'add' must be finite, got {add!r}")
    return out


def check_to(to: str, caller: str = "escalc") -> str:
    if to not in TO_CHOICES:
        raise ValueError(f"{caller}: unknown 'to' {to!r}; choose one of {TO_CHOICES}")
    return to


def _vtypes(measure: str, vtype, k: int) -> np.ndarray:
    v = np.atleast_1d(np.asarray(vtype, dtype=object))
    bad = [x for x in v.tolist() if x not in VTYPES]
    if bad:
        raise ValueError(f"escalc: unknown 'vtype' {bad[0]!r}; choose one of {VTYPES}")
    if measure == "RD":
        bad = [x for x in v.tolist() if x not in RD_VTYPES]
        if bad:
            raise ValueError(f"escalc: for measure 'RD', 'vtype' must be one of {RD_VTYPES}, got {bad[0]!r}")
    if v.size == 1:
        return np.repeat(v, k)
    if v.size != k:
        raise ValueError(f"escalc: 'vtype' has length {v.size}; give one value or one per study ({k})")
    return v


def add_to(cells: list[np.ndarray], zero: np.ndarray, add: float, to: str) -> list[np.ndarray]:
    """metafor's continuity correction: ``add`` to the cells of the tables ``to`` selects (``zero``: tables with
    a zero cell; NaN tables count as without)."""
    if to == "all" or (to == "if0all" and zero.any()):
        return [x + add for x in cells]
    if to == "only0" and zero.any():
        return [np.where(zero, x + add, x) for x in cells]
    return cells


def count_effects(measure, a, b, c, d, add, to, drop00, vtype):
    k = a.size
    if drop00:
        dz = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
        if dz.any():
            a, b, c, d = (np.where(dz, np.nan, x) for x in (a, b, c, d))
    missing = np.isnan(a + b + c + d)  # counts are >= 0, so the sum is NaN exactly when a cell is
    if to != "none":
        zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
        a, b, c, d = add_to([a, b, c, d], zero, add, to)
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    if measure == "RR":
        yi = np.log(p1) - np.log(p2)
        vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
    elif measure == "OR":
        yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
        vi = 1 / a + 1 / b + 1 / c + 1 / d
    elif measure == "RD":
        yi = p1 - p2
        vt = _vtypes(measure, vtype, k)
        ls = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        ub = p1 * (1 - p1) / (n1 - 1) + p2 * (1 - p2) / (n2 - 1)
        vi = np.where(vt == "UB", ub, ls)
        if (vt == "AV").any():
            m1, m2 = wmean(p1, n1), wmean(p2, n2)
            vi = np.where(vt == "AV", m1 * (1 - m1) / n1 + m2 * (1 - m2) / n2, vi)
    elif measure == "PETO":
        ni = n1 + n2
        xt, yt = a + c, b + d
        e = xt * n1 / ni
        v = xt * yt * (n1 / ni) * (n2 / ni) / (ni - 1)
        yi, vi = (a - e) / v, 1 / v
    elif measure == "AS":
        yi = np.arcsin(np.sqrt(p1)) - np.arcsin(np.sqrt(p2))
        vi = 1 / (4 * n1) + 1 / (4 * n2)
    else:  # YUQ, YUY
        odds = (a / b) / (c / d)
        if measure == "YUQ":
            yi = (odds - 1) / (odds + 1)
            vi = 0.25 * (1 - yi**2) ** 2 * (1 / a + 1 / b + 1 / c + 1 / d)
        else:
            yi = (np.sqrt(odds) - 1) / (np.sqrt(odds) + 1)
            vi = (1 / 16) * (1 - yi**2) ** 2 * (1 / a + 1 / b + 1 / c + 1 / d)
    return yi, vi, missing


def rate_effects(measure, x1, x2, t1, t2, add, to, drop00):
    if drop00:
        dz = (x1 == 0) & (x2 == 0)
        if dz.any():
            x1, x2 = np.where(dz, np.nan, x1), np.where(dz, np.nan, x2)
    missing = np.isnan(x1 + x2 + t1 + t2)  # counts >= 0 and person-times > 0: NaN exactly when one is
    if to != "none":
        x1, x2 = add_to([x1, x2], (x1 == 0) | (x2 == 0), add, to)
    r1, r2 = x1 / t1, x2 / t2
    if measure == "IRR":
        return np.log(r1) - np.log(r2), 1 / x1 + 1 / x2, missing
    if measure == "IRD":
        return r1 - r2, r1 / t1 + r2 / t2, missing
    return np.sqrt(r1) - np.sqrt(r2), 1 / (4 * t1) + 1 / (4 * t2), missing


def finish(yi: np.ndarray, vi: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """metafor's clean-up at the end of `escalc`: ±Inf in yi or vi makes both missing (with its warning), so
    does a NaN that arose in the arithmetic (0/0) of a study with complete data; negative variances become
    missing. (A study missing from the start keeps whatever the formula gives without its counts, e.g. IRSD's
    vi, as R's NA, unlike NaN, passes this check.)"""
    if np.isfinite(yi + vi).all() and not (vi < 0).any():
        return yi, vi
    inf = np.isinf(yi) | np.isinf(vi)
    if inf.any():
        warnings.warn(INF_WARNING, UserWarning, stacklevel=3)
    bad = inf | (~missing & (np.isnan(yi) | np.isnan(vi)))
    yi = np.where(bad, np.nan, yi)
    vi = np.where(bad | (vi < 0), np.nan, vi)
    return yi, vi


def counts_effects(
    measure: str,
    *,
    ai=None,
    bi=None,
    ci=None,
    di=None,
    n1i=None,
    n2i=None,
    x1i=None,
    x2i=None,
    t1i=None,
    t2i=None,
    add: float | None = None,
    to: str = "only0",
    drop00: bool = False,
    vtype="LS",
) -> tuple[np.ndarray, np.ndarray]:
    """``(yi, vi)`` for a two-group counts measure (RR, OR, RD, AS, PETO, YUQ, YUY: ``ai, bi, ci, di`` or
    ``ai, ci, n1i, n2i``) or an incidence-rate measure (IRR, IRD, IRSD: ``x1i, x2i, t1i, t2i``), as metafor 3.8's
    `escalc` with its defaults (``add=1/2``, 0 for AS and IRSD; ``to="only0"``; ``drop00=False``;
    ``vtype="LS"``, or one vtype per study). NaN inputs (metafor's NA) give NaN outputs for that study."""
    if measure not in MEASURES:
        raise ValueError(f"escalc: unknown measure {measure!r}; this function computes {MEASURES}")
    add = default_add(measure, add)
    check_to(to)
    with np.errstate(all="ignore"):
        if measure in RATE_MEASURES:
            x1, x2, t1, t2 = rates(x1i, x2i, t1i, t2i)
            _vtypes(measure, vtype, x1.size)
            yi, vi, missing = rate_effects(measure, x1, x2, t1, t2, add, to, bool(drop00))
        else:
            a, b, c, d = tables(ai, bi, ci, di, n1i, n2i)
            yi, vi, missing = count_effects(measure, a, b, c, d, add, to, bool(drop00), vtype)
            if measure != "RD":
                _vtypes(measure, vtype, a.size)
        return finish(yi, vi, missing)
