"""Shared pieces of `escalc`: input vectors, checks with located messages, metafor's zero-cell adjustment
(``add``/``to``), per-study ``vtype``, weighted means and metafor's final NA rule.

Everything here mirrors metafor 3.8-1 (R/escalc.r and R/misc.func.hidden*.r: ``.cmicalc``, ``.wmean``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

#: metafor's ``to`` choices and every ``vtype`` it knows (escalc stops on anything else).
TO_CHOICES: tuple[str, ...] = ("all", "only0", "if0all", "none")
VTYPES: tuple[str, ...] = ("UB", "LS", "LS2", "HO", "ST", "CS", "AV", "AVHO")
#: metafor's warning when ±Inf values are recoded to NA (escalc's last step).
INF_WARNING = "Some 'yi' and/or 'vi' values equal to +-Inf. Recoded to NAs."


@dataclass(frozen=True, slots=True)
class Computed:
    """One measure's raw output: ``yi``, ``vi``, metafor's unadjusted sample sizes ``ni`` (its ``ni.u``) and
    ``na``, the studies whose missing values are R's ``NA`` (missing inputs, or set to NA on purpose, as
    `.cmicalc` does for m ≤ 1): there a NaN in one of yi/vi does not blank the other (see `finalize`)."""

    yi: np.ndarray
    vi: np.ndarray
    ni: np.ndarray | None
    na: np.ndarray


class Args:
    """The vectors given to `escalc` (numpy float arrays or None), read by name with located errors."""

    def __init__(self, measure: str, values: dict[str, np.ndarray | None]):
        self.measure = measure
        self._values = values

    def get(self, name: str) -> np.ndarray | None:
        return self._values.get(name)

    def need(self, *names: str, optional: tuple[str, ...] = ()) -> list[np.ndarray | None]:
        """The arrays `names` (each required) and `optional` (None when not given), all of one length."""
        missing = [n for n in names if self._values.get(n) is None]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise TypeError(f"escalc({self.measure!r}): argument{plural} {', '.join(map(repr, missing))} "
                            f"required for this measure")
        out = [self._values[n] for n in names] + [self._values.get(n) for n in optional]
        given = [(n, a) for n, a in zip(names + optional, out) if a is not None]
        k = len(given[0][1])
        for n, a in given[1:]:
            if len(a) != k:
                raise ValueError(f"escalc({self.measure!r}): {n!r} has length {len(a)} but {given[0][0]!r} has "
                                 f"length {k} (one value per study)")
        return out


def as_vector(name: str, value) -> np.ndarray:
    """A 1-D float array from a list, array, pandas Series or scalar; None in a list is a missing value."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy(dtype=float, na_value=np.nan)
    if isinstance(value, list | tuple):
        value = [np.nan if v is None else v for v in value]
    try:
        a = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"escalc: {name!r} must be numeric, got {value!r:.80}") from exc
    if a.ndim != 1:
        raise ValueError(f"escalc: {name!r} must be one-dimensional, got shape {a.shape}")
    return a


def stop_if(measure: str, name: str, bad: np.ndarray, what: str, values: np.ndarray) -> None:
    """Raise ValueError naming `name`, the 0-based positions where `bad` holds and the offending values."""
    where = np.flatnonzero(bad)
    if where.size:
        shown = values[where[:10]].tolist()
        more = f" (and {where.size - 10} more)" if where.size > 10 else ""
        raise ValueError(f"escalc({measure!r}): {name} {what} at positions {where[:10].tolist()}{more} "
                         f"(0-based): {shown}")


def isna(*arrays: np.ndarray | None) -> np.ndarray:
    """Studies with a missing value in any of `arrays` (None entries are skipped)."""
    given = [a for a in arrays if a is not None]
    out = np.zeros(len(given[0]), dtype=bool)
    for a in given:
        out |= np.isnan(a)
    return out


def hedges_correction(m) -> np.ndarray:
    """Exact bias-correction factor c(m) = exp(lnΓ(m/2) − ln√(m/2) − lnΓ((m−1)/2)), NaN for m ≤ 1.

    Hedges (1981), eq. 6e; metafor's `.cmicalc` (which gives NA for m ≤ 1).
    """
    m = np.asarray(m, dtype=float)
    out = np.full(m.shape, np.nan)
    ok = m > 1
    mm = m[ok]
    out[ok] = np.exp(special.gammaln(mm / 2) - np.log(np.sqrt(mm / 2)) - special.gammaln((mm - 1) / 2))
    return out


def wmean(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean over the studies where neither x nor w is missing (metafor's `.wmean(na.rm=TRUE)`)."""
    ok = ~(np.isnan(x) | np.isnan(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(x[ok] * w[ok]) / np.sum(w[ok]))


def vtype_vector(measure: str, vtype, k: int, allowed: tuple[str, ...]) -> np.ndarray:
    """``vtype`` as one code per study (a single code is recycled), each one of `allowed` for this measure."""
    if isinstance(vtype, str):
        if vtype not in allowed:
            raise ValueError(f"escalc({measure!r}): vtype must be one of {allowed} for this measure, got {vtype!r}")
        return np.full(k, vtype)
    v = np.asarray([str(x) for x in vtype])
    if len(v) != k:
        raise ValueError(f"escalc({measure!r}): 'vtype' has {len(v)} entries, expected 1 or {k} (one per study)")
    bad = np.flatnonzero(~np.isin(v, allowed))
    if bad.size:
        raise ValueError(f"escalc({measure!r}): vtype must be one of {allowed} for this measure; got "
                         f"{v[bad].tolist()} at positions {bad.tolist()} (0-based)")
    return v


def scalar_vtype(measure: str, vtype, allowed: tuple[str, ...]) -> str:
    """A single ``vtype`` code (measures whose metafor code takes one code for all studies)."""
    if not isinstance(vtype, str):
        codes = set(vtype)
        if len(codes) != 1:
            raise ValueError(f"escalc({measure!r}): give one vtype for all studies with this measure, "
                             f"got {sorted(codes)}")
        vtype = codes.pop()
    if vtype not in allowed:
        raise ValueError(f"escalc({measure!r}): vtype must be one of {allowed} for this measure, got {vtype!r}")
    return vtype


def add_to(cells: list[np.ndarray], add: float, to: str) -> list[np.ndarray]:
    """metafor's zero-cell adjustment: add `add` to every cell of all studies (``to="all"``), of the studies
    with a zero cell (``"only0"``), or of all studies when any has a zero cell (``"if0all"``); ``"none"``
    adds nothing. Missing cells stay missing."""
    if to == "none":
        return list(cells)
    if to == "all":
        return [c + add for c in cells]
    zero = np.zeros(len(cells[0]), dtype=bool)
    for c in cells:
        zero |= c == 0
    if to == "only0":
        return [np.where(zero, c + add, c) for c in cells]
    return [c + add for c in cells] if zero.any() else list(cells)


def finalize(yi: np.ndarray, vi: np.ndarray, na: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """metafor's last step: ±Inf in yi or vi makes both missing; a NaN that arose in the computation (not
    from a missing input, i.e. outside `na`) makes both missing; a negative vi becomes missing. Warns as
    metafor does when it recodes ±Inf."""
    yi = np.array(yi, dtype=float)
    vi = np.array(vi, dtype=float)
    inf = np.isinf(yi) | np.isinf(vi)
    if inf.any():
        warnings.warn(INF_WARNING, UserWarning, stacklevel=3)
    blank = inf | (~na & (np.isnan(yi) | np.isnan(vi)))
    yi[blank] = np.nan
    vi[blank] = np.nan
    with np.errstate(invalid="ignore"):
        vi[vi < 0] = np.nan
    return yi, vi
