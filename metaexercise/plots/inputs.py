"""What the plots draw, as plain numbers: built from the rows `metaexercise run` stores in `results/`, so a
figure needs no fit object and no refit.

* `PooledEffect`: an intercept-only random-effects meta-analysis, for `forest_plot` and `funnel_plot` (the
  studies' yi, vi and weights from studies.csv; the pooled numbers from forest.csv). It has the attribute
  names of `metaexercise.engine.model.RMAResult`, so either may be drawn.
* `BubbleData`: one meta-regression against one moderator, for `bubble_plot` (bubble_studies.csv and
  bubble_lines.csv; the slope and its p-value from metareg.csv).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _number(value) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _array(values) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class PooledEffect:
    """An intercept-only random-effects meta-analysis as stored in results/: per-study effects `yi`, sampling
    variances `vi` and weights (percent, summing to 100), and the pooled numbers. `tau2_ci` is the Q-profile
    CI of tau^2 (None when it could not be computed)."""

    yi: np.ndarray
    vi: np.ndarray
    weights: np.ndarray
    estimate: float
    ci_lb: float
    ci_ub: float
    pi_lb: float
    pi_ub: float
    zval: float
    pval: float
    tau2: float
    I2: float
    QE: float
    QEp: float
    method: str = "REML"
    test: str = "z"
    ddf: float | None = None
    p: int = 1
    tau2_ci: tuple[float, float] | None = None

    def __post_init__(self):
        for name in ("yi", "vi", "weights"):
            object.__setattr__(self, name, _array(getattr(self, name)))
        if not self.yi.shape == self.vi.shape == self.weights.shape or self.yi.ndim != 1:
            raise ValueError(f"PooledEffect: yi, vi and weights must be 1-d of one length; got {self.yi.shape}, "
                             f"{self.vi.shape}, {self.weights.shape}")

    @property
    def k(self) -> int:
        return int(self.yi.size)

    @classmethod
    def from_results(cls, pooled: Mapping, studies: pd.DataFrame) -> PooledEffect:
        """From one row of results/forest.csv and the analysis's rows of results/studies.csv that entered the
        fit (columns yi, vi, weight), in the fit's order."""
        if int(pooled["k"]) != len(studies):
            raise ValueError(f"{pooled.get('analysis_id', 'analysis')}: forest.csv says k = {int(pooled['k'])} "
                             f"but {len(studies)} study rows were given")
        lb, ub = _number(pooled.get("tau2_ci_lb")), _number(pooled.get("tau2_ci_ub"))
        ddf = _number(pooled.get("ddf"))
        return cls(
            yi=studies["yi"].to_numpy(float), vi=studies["vi"].to_numpy(float),
            weights=studies["weight"].to_numpy(float),
            estimate=_number(pooled["estimate"]), ci_lb=_number(pooled["ci_lb"]), ci_ub=_number(pooled["ci_ub"]),
            pi_lb=_number(pooled["pi_lb"]), pi_ub=_number(pooled["pi_ub"]), zval=_number(pooled["zval"]),
            pval=_number(pooled["pval"]), tau2=_number(pooled["tau2"]), I2=_number(pooled["I2"]),
            QE=_number(pooled["QE"]), QEp=_number(pooled["QEp"]), method=str(pooled.get("method", "REML")),
            test=str(pooled.get("test", "z")), ddf=None if np.isnan(ddf) else ddf,
            p=int(pooled.get("p", 1)), tau2_ci=None if np.isnan(lb) or np.isnan(ub) else (lb, ub),
        )


@dataclass(frozen=True, slots=True, eq=False)
class BubbleData:
    """One meta-regression against one moderator: the studies' moderator values `x`, effects `yi` and
    weights (percent); the fitted line `pred` with its CI over `grid`; the moderator's slope, its p-value
    and the number of studies `k`."""

    x: np.ndarray
    yi: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    pred: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    slope: float
    pval: float
    k: int
    moderator: str = "moderator"

    def __post_init__(self):
        for name in ("x", "yi", "weights", "grid", "pred", "ci_lb", "ci_ub"):
            object.__setattr__(self, name, _array(getattr(self, name)))
        if not self.x.shape == self.yi.shape == self.weights.shape or self.x.size == 0:
            raise ValueError("BubbleData: x, yi and weights must be non-empty and of one length")
        if not self.grid.shape == self.pred.shape == self.ci_lb.shape == self.ci_ub.shape:
            raise ValueError("BubbleData: grid, pred, ci_lb and ci_ub must be of one length")

    @classmethod
    def from_results(cls, studies: pd.DataFrame, line: pd.DataFrame, slope: float, pval: float, k: int,
                     moderator: str = "moderator") -> BubbleData:
        """From the rows of results/bubble_studies.csv (x, yi, weight) and bubble_lines.csv (x, pred, ci_lb,
        ci_ub) of one analysis and moderator, and the moderator's coefficient row of metareg.csv."""
        return cls(x=studies["x"].to_numpy(float), yi=studies["yi"].to_numpy(float),
                   weights=studies["weight"].to_numpy(float), grid=line["x"].to_numpy(float),
                   pred=line["pred"].to_numpy(float), ci_lb=line["ci_lb"].to_numpy(float),
                   ci_ub=line["ci_ub"].to_numpy(float), slope=float(slope), pval=float(pval), k=int(k),
                   moderator=moderator)
