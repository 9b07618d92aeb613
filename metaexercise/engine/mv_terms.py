"""Reading `rma_mv`'s model terms: the ``random`` formulas (``"~ 1 | district/school"``, ``"~ outcome | trial"``) and a
``mods`` formula (``"~ outcome - 1"``) against a data frame, the way metafor 3.8's `rma.mv` reads them.

- ``~ 1 | a/b/c`` gives one random intercept per nesting level (σ² components ``a``, ``a/b``, ``a/b/c``; metafor's
  ``interaction(..., drop=TRUE, lex.order=TRUE, sep="/")``); several ``~ 1 | f`` terms add one σ² each.
- ``~ inner | outer`` gives one correlated random effect per level of ``inner`` within each level of ``outer`` (τ², ρ
  and the `struct`; metafor allows two such terms, the second with γ², φ).
- ``mods`` formulas go through formulaic's `model_matrix` (treatment coding, as R's default contrasts) and the columns
  are renamed as R's `model.matrix` names them: ``intrcpt``, ``outcomeAL``, ``factor(trt)2``, ``x:I(year - 1983)``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np


class Factor:
    """One grouping variable as integer codes 0..n-1 (levels in R's `factor` order) and the level labels (made when
    first asked for: a factor with one level per estimate needs none for the fit)."""

    __slots__ = ("name", "codes", "nlevels", "_make", "_levels")

    def __init__(self, name: str, codes: np.ndarray, levels):
        self.name = name
        self.codes = codes
        if callable(levels):
            self._make, self._levels = levels, None
            self.nlevels = int(codes.max()) + 1 if len(codes) else 0
        else:
            self._make, self._levels = None, tuple(levels)
            self.nlevels = len(self._levels)

    @property
    def levels(self) -> tuple[str, ...]:
        if self._levels is None:
            self._levels = tuple(self._make())
        return self._levels

    def __repr__(self) -> str:
        return f"Factor({self.name!r}, nlevels={self.nlevels})"


@dataclass(frozen=True, slots=True)
class InnerOuter:
    """An ``~ inner | outer`` term."""

    formula: str
    inner: Factor
    outer: Factor


@dataclass(frozen=True, slots=True)
class RandomTerms:
    """The parsed ``random`` argument: σ² factors in order, and up to two ``inner | outer`` terms."""

    s_factors: tuple[Factor, ...]
    io_terms: tuple[InnerOuter, ...]
    formulas: tuple[str, ...]


def r_label(value) -> str:
    """A value as R's `as.character` writes a factor level: integers without a decimal point, TRUE/FALSE."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    return str(value)


def column(data, name: str, fn: str = "rma_mv", keep_series: bool = False):
    """A column of ``data`` (pandas DataFrame or a mapping of sequences) as a numpy array (or, with
    ``keep_series``, as the pandas Series itself, so that a Categorical keeps its level order)."""
    if data is None:
        raise ValueError(f"{fn}: the formula refers to the variable {name!r}, so 'data' must be given")
    try:
        col = data[name]
    except (KeyError, IndexError, TypeError):
        cols = list(data.columns) if hasattr(data, "columns") else list(data)
        raise ValueError(f"{fn}: variable {name!r} is not a column of 'data' (columns: {cols})") from None
    if keep_series and hasattr(col, "cat"):
        return col
    return col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)


def make_factor(name: str, values, fn: str = "rma_mv") -> Factor:
    """Integer codes and levels as R's ``factor(x)``: a pandas Categorical keeps its categories' order, numbers sort
    numerically, anything else sorts as text. Missing values are refused (metafor: 'No NAs allowed in variables
    specified in the 'random' argument')."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat.remove_unused_categories()
        if (cat.cat.codes < 0).any():
            raise ValueError(f"{fn}: variable {name!r} has missing values; no NAs are allowed in random-effects "
                             "variables")
        return Factor(name, cat.cat.codes.to_numpy().astype(np.intp), tuple(r_label(c) for c in cat.cat.categories))
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: variable {name!r} must be one-dimensional, got shape {arr.shape}")
    bad = np.flatnonzero(_missing(arr))
    if bad.size:
        raise ValueError(f"{fn}: variable {name!r} is missing at positions {bad[:10].tolist()} (0-based); no NAs "
                         "are allowed in random-effects variables")
    if arr.dtype.kind in "biuf":
        uniq, codes = np.unique(arr, return_inverse=True)
    else:
        labels = np.array([r_label(v) for v in arr], dtype=object)
        uniq, codes = np.unique(labels.astype(str), return_inverse=True)
    return Factor(name, codes.astype(np.intp).reshape(-1), lambda: [r_label(u) for u in uniq])


def _missing(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float | np.floating) and v != v) for v in arr], dtype=bool)
    return np.zeros(arr.shape, dtype=bool)


def interaction(name: str, factors: list[Factor]) -> Factor:
    """metafor's nesting ``a/b``: R's ``interaction(a, b, drop=TRUE, lex.order=TRUE, sep="/")``."""
    if len(factors) == 1:
        return Factor(name, factors[0].codes, factors[0].levels)
    mult = np.ones(len(factors), dtype=np.int64)
    for j in range(len(factors) - 2, -1, -1):
        mult[j] = mult[j + 1] * factors[j + 1].nlevels
    combined = sum(f.codes.astype(np.int64) * m for f, m in zip(factors, mult, strict=True))
    uniq, codes = np.unique(combined, return_inverse=True)

    def labels() -> list[str]:
        out = []
        for u in uniq:
            parts, rest = [], int(u)
            for f, m in zip(factors, mult, strict=True):
                parts.append(f.levels[rest // int(m)])
                rest %= int(m)
            out.append("/".join(parts))
        return out

    return Factor(name, codes.astype(np.intp).reshape(-1), labels)


_RANDOM_RE = re.compile(r"^\s*~\s*(?P<inner>.+?)\s*\|\s*(?P<outer>.+?)\s*$")
_NAME_RE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def parse_random(random, data, k: int) -> RandomTerms:
    """Parse ``random`` (one formula string or a list of them) against ``data``, as metafor's `rma.mv` does."""
    if random is None:
        return RandomTerms((), (), ())
    formulas = (random,) if isinstance(random, str) else tuple(random)
    if not formulas:
        return RandomTerms((), (), ())
    s_factors: list[Factor] = []
    io_terms: list[InnerOuter] = []
    for pos, f in enumerate(formulas):
        if not isinstance(f, str):
            raise TypeError(f"rma_mv: random[{pos}] must be a formula string such as '~ 1 | study', got {f!r}")
        if "||" in f:
            raise ValueError(f"rma_mv: random[{pos}] = {f!r}: the '||' form is not supported")
        m = _RANDOM_RE.match(f)
        if m is None:
            raise ValueError(f"rma_mv: random[{pos}] = {f!r} is not of the form '~ 1 | group' or '~ inner | outer'")
        inner, outer = m.group("inner"), m.group("outer")
        if "$" in f:
            raise ValueError(f"rma_mv: random[{pos}] = {f!r}: the '$' notation cannot be used (give 'data')")
        if ":" in f:
            raise ValueError(f"rma_mv: random[{pos}] = {f!r}: ':' cannot be used in random-effects formulas")
        parts = [p.strip() for p in outer.split("/")]
        for p in parts:
            if not _NAME_RE.match(p):
                raise ValueError(f"rma_mv: random[{pos}] = {f!r}: {p!r} is not a variable name")
        if inner.strip() == "1":
            base = [make_factor(p, _values(data, p, k)) for p in parts]
            for depth in range(1, len(parts) + 1):
                s_factors.append(interaction("/".join(parts[:depth]), base[:depth]))
        else:
            if len(parts) > 1:
                raise ValueError(f"rma_mv: random[{pos}] = {f!r}: '~ inner | outer1/outer2' terms cannot be used")
            inner_name = inner.strip()
            if not _NAME_RE.match(inner_name):
                raise ValueError(f"rma_mv: random[{pos}] = {f!r}: only a single inner variable is allowed for an "
                                 "'~ inner | outer' term")
            io_terms.append(InnerOuter(f, make_factor(inner_name, _values(data, inner_name, k)),
                                       make_factor(parts[0], _values(data, parts[0], k))))
    if len(io_terms) > 2:
        raise ValueError("rma_mv: only up to two '~ inner | outer' formulas are allowed in 'random' (as metafor)")
    return RandomTerms(tuple(s_factors), tuple(io_terms), formulas)


def _values(data, name: str, k: int):
    values = column(data, name, keep_series=True)
    if len(values) != k:
        raise ValueError(f"rma_mv: variable {name!r} has {len(values)} values, but there are k = {k} estimates")
    return values


# ------------------------------------------------------------------------------------------------------------------
# mods formulas
# ------------------------------------------------------------------------------------------------------------------
_FACTOR_CALL = re.compile(r"\bfactor\(")
_LEVEL = re.compile(r"\[(?:T\.)?(?P<level>[^\[\]]*)\]")


def model_matrix(formula: str, data) -> tuple[np.ndarray, tuple[str, ...]]:
    """The model matrix of a one-sided formula and its columns named as R's `model.matrix` names them.

    formulaic's `model_matrix` builds the matrix (treatment contrasts, the first level as reference, as R's default
    `contr.treatment`); ``factor(x)`` is read as formulaic's ``C(x)``; the intercept is named ``intrcpt`` (metafor)
    and a level ``[T.b]`` / ``[b]`` is appended to its variable's name, as R does (``outcomeAL``, ``factor(trt)2``).
    """
    try:
        from formulaic import model_matrix as _mm
    except ImportError as exc:  # pragma: no cover - formulaic is a core dependency
        raise ImportError("rma_mv: formulas need the 'formulaic' package") from exc
    if data is None:
        raise ValueError(f"rma_mv: the formula {formula!r} needs 'data'")
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    rhs = formula.strip()
    if not rhs.startswith("~"):
        raise ValueError(f"rma_mv: mods formula {formula!r} must be one-sided, starting with '~'")
    translated = _FACTOR_CALL.sub("C(", rhs)
    try:
        mm = _mm(translated, frame, na_action="raise")
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types; say which formula failed
        raise ValueError(f"rma_mv: cannot build the model matrix of {formula!r}: {exc}") from exc
    names = tuple(_r_name(str(c), uses_factor="factor(" in rhs) for c in mm.columns)
    X = np.asarray(mm, dtype=float)
    return X, names


def _r_name(name: str, uses_factor: bool) -> str:
    if name == "Intercept":
        return "intrcpt"

    def level(m: re.Match) -> str:
        lv = m.group("level")
        return {"True": "TRUE", "False": "FALSE"}.get(lv, lv)

    out = _LEVEL.sub(level, name)
    if uses_factor:
        out = out.replace("C(", "factor(")
    return out


__all__ = ["Factor", "InnerOuter", "RandomTerms", "parse_random", "make_factor", "model_matrix", "column", "r_label"]
