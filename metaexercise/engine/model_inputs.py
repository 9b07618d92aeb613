"""The data `rma` fits, resolved as metafor 3.8's `rma.uni` resolves them, before any fitting.

Order (metafor's): ``yi``, ``vi`` (or ``sei``), ``weights`` and the moderators are taken from ``data`` where
given as column names; a ``mods`` formula is expanded on the whole data set (engine.formula); ``subset`` (a
boolean mask, or 0-based positions — metafor's are 1-based) selects studies; then studies with a missing value
(NaN) in yi, vi, a moderator or a weight are omitted with metafor's warning "Studies with NAs omitted from model
fitting." (``na.action = "na.omit"``, metafor's default). ``k_all`` counts the studies given, ``not_na`` marks,
among those selected by ``subset``, the ones fitted.

Array input never imports pandas or formulaic (engine.formula is imported only for a formula string).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np


class NAOmittedWarning(UserWarning):
    """Studies with missing values (NaN) in yi, vi, the moderators or the weights were left out of the fit
    (metafor 3.8: "Studies with NAs omitted from model fitting.")."""


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """What `rma` fits: the studies kept (after ``subset`` and the omission of missing values)."""

    y: np.ndarray
    v: np.ndarray
    weights: np.ndarray | None
    #: the moderators as given (k × q, no intercept column added yet), or the full formula design
    mods: np.ndarray | None
    mod_names: tuple[str, ...]
    #: True when the moderators come from a formula (which carries its own intercept column)
    from_formula: bool
    design: object | None  # engine.formula.FormulaDesign
    k_all: int
    subset: np.ndarray | None  # boolean mask over the k_all studies given
    not_na: np.ndarray  # boolean mask over the studies selected by subset: True where fitted
    positions: np.ndarray  # 0-based positions (among the k_all given) of the studies fitted


def _pandas():
    return sys.modules.get("pandas")  # a pandas object can only exist once pandas is imported


def _column(name: str, value, data):
    """A column of `data` when `value` is a string (metafor's non-standard evaluation of `yi`, `vi`, ...)."""
    if not isinstance(value, str):
        return value
    if data is None:
        raise TypeError(f"rma: {name}={value!r} names a column, but no data= was given")
    try:
        return data[value]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"rma: {name}={value!r} is not a column of data") from None


def _as_1d(name: str, x, k: int | None = None) -> np.ndarray:
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    try:
        a = np.atleast_1d(np.asarray(x, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"rma: {name} must be numeric (metafor: \"The object/variable specified for the '{name}' "
                        "argument is not numeric.\")") from None
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"rma: {name} must be one-dimensional, got shape {a.shape}")
    if k is not None and a.size == 1 and k != 1:
        a = np.full(k, a[0])  # metafor recycles a single vi (or weight)
    return a


def _mods_matrix(mods, k: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """An array or DataFrame of moderators as a k × q float matrix with names (metafor's `mods = X`)."""
    pd = _pandas()
    if pd is not None and isinstance(mods, pd.Series):
        mods = mods.to_frame()
    if pd is not None and isinstance(mods, pd.DataFrame):
        names = tuple(str(c) for c in mods.columns)
        try:
            M = mods.to_numpy(dtype=float)
        except (TypeError, ValueError):
            bad = [str(c) for c in mods.columns if not pd.api.types.is_numeric_dtype(mods[c])]
            raise TypeError(f"rma: mods has non-numeric columns {bad} (metafor: \"Model matrix contains character "
                            "variables.\"); give a formula, e.g. mods='~ factor(x)', with data=") from None
    else:
        try:
            M = np.asarray(mods, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("rma: mods must be numeric (metafor: \"Model matrix contains character variables.\"); "
                            "give a formula, e.g. mods='~ factor(x)', with data=") from None
        if M.ndim == 1:
            M = M.reshape(-1, 1)
        names = ("mods",) if M.ndim == 2 and M.shape[1] == 1 else tuple(f"mods{j + 1}" for j in range(M.shape[-1]))
    if M.ndim != 2 or M.shape[0] != k:
        raise ValueError(f"rma: mods has {M.shape[0] if M.ndim else 0} rows, expected k = {k} (metafor: \"Number "
                         "of rows in the model matrix does not match length of the outcome vector.\")")
    return M, names


def _subset_mask(subset, k: int) -> np.ndarray:
    """metafor's `.chksubset`: a boolean mask of length k, or positions (0-based here; metafor's are 1-based)."""
    s = np.asarray(subset.to_numpy() if hasattr(subset, "to_numpy") else subset)
    if s.dtype == bool:
        if s.shape != (k,):
            raise ValueError(f"rma: a boolean subset must have one value per study (k = {k}), got shape {s.shape}")
        mask = s.copy()
    else:
        if s.ndim > 1 or not (np.issubdtype(s.dtype, np.integer) or (np.issubdtype(s.dtype, np.floating)
                                                                     and np.all(s == np.round(s)))):
            raise TypeError("rma: subset must be a boolean mask or an array of 0-based integer positions")
        idx = np.atleast_1d(s).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise ValueError(f"rma: subset positions must be 0-based, between 0 and k - 1 = {k - 1}; got "
                             f"{idx[(idx < 0) | (idx >= k)].tolist()} (metafor's positions are 1-based)")
        mask = np.zeros(k, dtype=bool)
        mask[idx] = True
    if not mask.any():
        raise ValueError("rma: stopped because k = 0 after subsetting (metafor: \"Stopped because k = 0 after "
                         "subsetting.\")")
    return mask


def model_inputs(yi, vi, sei, weights, mods, data, subset) -> ModelInputs:
    """Resolve `rma`'s data arguments (see the module docstring)."""
    if isinstance(yi, str) and "~" in yi:
        if mods is not None:
            raise TypeError("rma: give the moderators either in the formula yi='y ~ x' or as mods=, not both")
        from metaexercise.engine.formula import response

        y, des = response(yi, data)
        mods = des
    else:
        y = _as_1d("yi", _column("yi", yi, data))
        des = None
    k_all = y.shape[0]
    if k_all == 0:
        raise ValueError("rma: no studies (k = 0)")
    if vi is None:
        if sei is None:
            raise TypeError("rma: give the sampling variances 'vi' (or standard errors 'sei')")
        v = _as_1d("sei", _column("sei", sei, data), k_all) ** 2
    else:
        v = _as_1d("vi", _column("vi", vi, data), k_all)
    if v.shape[0] != k_all:
        raise ValueError(f"rma: yi has {k_all} values but vi has {v.shape[0]} (metafor: \"Length of 'yi' and 'vi' "
                         "(or 'sei') is not the same.\")")
    w = None
    if weights is not None:
        w = _as_1d("weights", _column("weights", weights, data), k_all)
        if w.shape[0] != k_all:
            raise ValueError(f"rma: yi has {k_all} values but weights has {w.shape[0]}")
    if isinstance(mods, str):
        from metaexercise.engine.formula import design

        des = design(mods, data)
    M, names, from_formula = None, (), False
    if des is not None:
        if des.X.shape[0] != k_all:
            raise ValueError(f"rma: the formula's data has {des.X.shape[0]} rows, but there are k = {k_all} "
                             "outcomes")
        M, names, from_formula = des.X, des.names, True
    elif mods is not None:
        M, names = _mods_matrix(_column("mods", mods, data), k_all)
    mask = None
    if subset is not None:
        mask = _subset_mask(_column("subset", subset, data), k_all)
        y, v = y[mask], v[mask]
        w = None if w is None else w[mask]
        M = None if M is None else M[mask]
        positions = np.flatnonzero(mask)
    else:
        positions = np.arange(k_all)
    has_na = np.isnan(y) | np.isnan(v)
    if M is not None:
        has_na |= np.isnan(M).any(axis=1)
    if w is not None:
        has_na |= np.isnan(w)
    not_na = ~has_na
    if has_na.any():
        omitted = positions[has_na]
        y, v = y[not_na], v[not_na]
        w = None if w is None else w[not_na]
        M = None if M is None else M[not_na]
        positions = positions[not_na]
        warnings.warn(f"rma: studies with NAs omitted from model fitting: {omitted.size} of "
                      f"{has_na.size} (positions {omitted.tolist()}, 0-based), as metafor's na.action='na.omit'",
                      NAOmittedWarning, stacklevel=3)
        if y.shape[0] == 0:
            raise ValueError("rma: every study has a missing value (NaN) in yi, vi, the moderators or the weights "
                             "(metafor: \"Processing terminated since k = 0.\")")
    return ModelInputs(y=y, v=v, weights=w, mods=M, mod_names=tuple(names), from_formula=from_formula, design=des,
                       k_all=k_all, subset=mask, not_na=not_na, positions=positions)


__all__ = ["ModelInputs", "model_inputs", "NAOmittedWarning"]
