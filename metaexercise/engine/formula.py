"""metafor's formula interface: model matrices from formula strings, named as R's `model.matrix` names them.

``rma(yi, vi, mods="~ ablat + factor(alloc)", data=df)`` mirrors metafor 3.8's
``rma(yi, vi, mods = ~ ablat + factor(alloc), data = dat)``: the model matrix comes from the formula by
formulaic (https://matthewwardrop.github.io/formulaic/), which follows R's formula grammar — treatment coding
of factors (first level the reference), interactions ``a:b`` and ``a*b`` (= ``a + b + a:b``), ``- 1`` or
``0 +`` to drop the intercept, terms ordered by degree — and the columns are renamed as R names them:
``factor(alloc)random`` (the level appended to the term), ``ablat:year``, ``intrcpt`` for the intercept
(metafor's name). ``factor(x)`` and ``C(x)`` make a variable categorical; string, categorical and boolean
columns are categorical on their own (``alloc`` gives ``allocrandom``, a boolean ``b`` gives ``bTRUE``, as R).

As R's ``model.matrix`` inside metafor (``na.action = "na.pass"``), the matrix is built on the whole data set
(so factor levels come from all rows, before any ``subset``) and rows with a missing value in a variable the
formula uses are marked, for `rma` to omit with metafor's warning.

Known differences from R: the levels of a string variable are sorted by code point (R sorts by the locale's
collation, which can order mixed-case levels differently; give a pandas Categorical to fix the order); and for
an interaction of two factors without their main effects (``~ factor(a):factor(b)``) formulaic codes the
factors so that the matrix has full rank, where R codes both with all their levels and metafor then drops the
redundant columns — the same model, parameterised differently.

pandas and formulaic are imported here only, so `rma` with arrays never loads them.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError
from formulaic.transforms import TRANSFORMS

#: R's `factor()` is formulaic's `C()` (a categorical variable with treatment contrasts by default).
CONTEXT: dict[str, Any] = {"factor": TRANSFORMS["C"]}


def r_level(value) -> str:
    """A factor level as R's `as.character` writes it into a column name: ``1948`` (not ``1948.0``),
    ``1.5``, ``TRUE``/``FALSE``, strings as they are; 15 significant digits for other numbers."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return format(v, ".15g")
    return str(value)


def as_frame(data, what: str = "data") -> pd.DataFrame:
    """`data` (a DataFrame, a mapping of columns, or anything pandas takes) as a DataFrame."""
    if isinstance(data, pd.DataFrame):
        return data
    try:
        return pd.DataFrame(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"rma: {what} must be a pandas DataFrame or a mapping of equal-length columns ({exc})") from None


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns as categoricals (R's logical variables give ``xTRUE`` columns)."""
    bools = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    if not bools:
        return frame
    frame = frame.copy()
    for c in bools:
        frame[c] = pd.Categorical(frame[c], categories=[False, True])
    return frame


def _r_names(columns, encoder_state: dict) -> list[str]:
    """formulaic's column names in R's spelling: ``factor(g)[T.b]`` and ``factor(g)[b]`` become ``factor(g)b``,
    ``Intercept`` becomes metafor's ``intrcpt``."""
    tokens: dict[str, str] = {}
    for expr, (kind, state) in encoder_state.items():
        if getattr(kind, "value", kind) != "categorical":
            continue
        for level in state.get("categories", []):
            r = f"{expr}{r_level(level)}"
            tokens[f"{expr}[T.{level}]"] = r
            tokens[f"{expr}[{level}]"] = r
    pattern = re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))) if tokens else None
    out = []
    for c in columns:
        c = str(c)
        if c == "Intercept":
            out.append("intrcpt")
            continue
        out.append(pattern.sub(lambda m: tokens[m.group(0)], c) if pattern is not None else c)
    return out


def _variables(formula: str, frame: pd.DataFrame) -> list[str]:
    """The data columns a formula uses (formulaic's `required_variables` also lists functions: drop them)."""
    try:
        needed = Formula(formula).required_variables
    except FormulaicError as exc:
        raise ValueError(f"rma: cannot parse the formula {formula!r}: {exc}") from None
    return [str(v) for v in needed if v in frame.columns]


@dataclass(frozen=True, slots=True)
class FormulaDesign:
    """The model matrix of a one-sided formula on a data set, with R's column names.

    ``X`` has one row per row of the data; ``na`` marks the rows with a missing value in a variable the formula
    uses (or a missing value in the matrix, e.g. ``log`` of a negative number), which `rma` omits. ``spec`` is
    formulaic's model spec: `matrix` builds the same columns from new data (`predict`).
    """

    formula: str
    X: np.ndarray
    names: tuple[str, ...]
    na: np.ndarray
    spec: Any = field(repr=False, compare=False)

    def matrix(self, newdata) -> np.ndarray:
        """The columns of this design (all of them, in order, intercept included) evaluated on `newdata` (the
        original variables), with the factor levels and transforms of the fitted data."""
        frame = _prepare(as_frame(newdata, "newmods"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mm = self.spec.get_model_matrix(frame, na_action="ignore", context=CONTEXT)
            except (FormulaicError, NameError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"predict: cannot evaluate the formula {self.formula!r} on newmods: {exc}") from None
        unseen = [w for w in caught if "outside of the nominated levels" in str(w.message)]
        if unseen:  # formulaic's DataMismatchWarning: it would code an unseen level as all-zero dummies
            raise ValueError(f"predict: newmods has factor levels the model was not fitted with: {unseen[0].message}")
        names = _r_names(mm.columns, self.spec.encoder_state)
        M = np.asarray(mm.to_numpy(dtype=float), dtype=float)
        if tuple(names) != self.names:
            raise ValueError(f"predict: newmods gives the columns {names}, the model has {list(self.names)}")
        return M


def design(formula: str, data) -> FormulaDesign:
    """Model matrix of the one-sided `formula` (``"~ ablat + factor(alloc)"``) on `data`, as metafor's
    ``model.matrix(mods, data = data)`` with ``na.action = "na.pass"`` (see the module docstring)."""
    if data is None:
        raise TypeError(f"rma: mods={formula!r} is a formula; give the data it refers to with data=")
    frame = _prepare(as_frame(data))
    text = formula.strip()
    if not text.startswith("~"):
        raise ValueError(f"rma: mods={formula!r} must be a one-sided formula starting with '~' (e.g. '~ x + factor(g)')")
    used = _variables(text, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # formulaic's notes on missing values: handled below, as metafor
        try:
            mm = model_matrix(text, frame, na_action="ignore", context=CONTEXT)
        except (FormulaicError, NameError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"rma: cannot build the model matrix of {formula!r} from data: {exc}") from None
    X = np.asarray(mm.to_numpy(dtype=float), dtype=float).reshape(len(frame), -1)
    na = frame[used].isna().any(axis=1).to_numpy(copy=True) if used else np.zeros(len(frame), dtype=bool)
    na |= np.isnan(X).any(axis=1)
    X = X.copy()
    X[na] = np.nan
    names = tuple(_r_names(mm.columns, mm.model_spec.encoder_state))
    return FormulaDesign(formula=text, X=X, names=names, na=na, spec=mm.model_spec)


def response(formula: str, data) -> tuple[np.ndarray, FormulaDesign]:
    """A two-sided formula ``"yi ~ ablat"`` (metafor's ``rma(yi ~ ablat, vi, data = dat)``): the outcome (NaN
    where missing) and the model matrix of the right-hand side."""
    if data is None:
        raise TypeError(f"rma: yi={formula!r} is a formula; give the data it refers to with data=")
    lhs, sep, rhs = formula.partition("~")
    if not sep or not lhs.strip():
        raise ValueError(f"rma: yi={formula!r} must be a two-sided formula such as 'yi ~ x'")
    frame = _prepare(as_frame(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = model_matrix(f"{lhs.strip()} ~ 1", frame, na_action="ignore", context=CONTEXT).lhs
    except (FormulaicError, NameError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"rma: cannot evaluate the outcome {lhs.strip()!r} of {formula!r}: {exc}") from None
    yv = np.asarray(y.to_numpy(dtype=float), dtype=float)
    if yv.ndim == 2 and yv.shape[1] != 1:
        raise ValueError(f"rma: the outcome {lhs.strip()!r} of {formula!r} must be one numeric column")
    return yv.reshape(-1), design("~" + rhs, frame)


__all__ = ["FormulaDesign", "design", "response", "r_level", "as_frame"]
