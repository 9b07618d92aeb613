"""New moderator values for `RMAResult.predict` (metafor 3.8's `predict.rma`), and the back-transformation of
predictions (its ``transf``): shared by `predict` and engine.extractors' `blup` and `ranef`.

``newmods`` is a design matrix without the intercept column (metafor's form; a DataFrame may name its columns
by coefficient name, in any order, as metafor matches them), or, for a model fitted with a formula, a DataFrame
(or mapping) of the original variables, evaluated through the fitted formula (engine.formula) with the fit's
factor levels. pandas is imported only when such a table is given.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np


def apply_transf(transf, x: np.ndarray) -> np.ndarray:
    """``transf`` applied to each value (metafor's ``sapply(x, transf)``): called on the whole array when it
    takes one (a NumPy ufunc such as ``np.exp``), else value by value (e.g. ``math.exp``)."""
    x = np.asarray(x, dtype=float)
    try:
        out = np.asarray(transf(x), dtype=float)
        if out.shape == x.shape:
            return out
    except (TypeError, ValueError):
        pass
    return np.array([float(transf(float(v))) for v in x.ravel()]).reshape(x.shape)


def sorted_bounds(lb: np.ndarray, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """metafor's `.psort`: each (lower, upper) pair in increasing order (a decreasing ``transf`` swaps them)."""
    swap = lb > ub
    if not swap.any():
        return lb, ub
    return np.where(swap, ub, lb), np.where(swap, lb, ub)


def new_design(fit, newmods, intercept: bool) -> np.ndarray:
    """The design rows of `predict(newmods=...)` (see `RMAResult.predict`), metafor's `predict.rma`."""
    if fit.int_only:
        raise ValueError("predict: cannot specify new moderator values for models without moderators (metafor: "
                         "\"Cannot specify new moderator values for models without moderators.\")")
    names = fit.coef_names[1:] if fit.int_incl else fit.coef_names
    n_mod = len(names)
    pd = sys.modules.get("pandas")
    if isinstance(newmods, Mapping) or (pd is not None and isinstance(newmods, pd.DataFrame)):
        import pandas as pd

        frame = newmods if isinstance(newmods, pd.DataFrame) else pd.DataFrame(newmods)
        cols = [str(c) for c in frame.columns]
        if set(cols) == set(names) and len(cols) == n_mod:  # a design matrix named by coefficient (metafor)
            nm = frame[[c for n in names for c in frame.columns if str(c) == n]].to_numpy(dtype=float)
        elif fit.formula is not None:
            full = fit.formula.matrix(frame)
            where = {n: j for j, n in enumerate(fit.formula.names)}
            missing = [n for n in names if n not in where]
            if missing:
                raise ValueError(f"predict: cannot match the coefficients {missing} to the formula's columns")
            nm = full[:, [where[n] for n in names]]
        else:
            raise ValueError(f"predict: the columns of newmods {cols} do not match the model's moderators "
                             f"{list(names)} (a DataFrame of the original variables needs a model fitted with a "
                             "formula)")
    else:
        try:
            nm = np.asarray(newmods, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("predict: newmods must be numeric (a design matrix without intercept), or a DataFrame "
                            "of the original variables for a model fitted with a formula") from None
        nm = nm.reshape(-1, 1) if nm.ndim == 1 and n_mod == 1 else np.atleast_2d(nm)
    if nm.ndim != 2 or nm.shape[1] != n_mod:
        raise ValueError(f"predict: newmods needs {n_mod} column(s) ({', '.join(names)}), got "
                         f"{nm.shape[1] if nm.ndim == 2 else nm.shape}")
    if fit.int_incl:
        nm = np.column_stack([np.full(nm.shape[0], 1.0 if intercept else 0.0), nm])
    return nm


__all__ = ["apply_transf", "sorted_bounds", "new_design"]
