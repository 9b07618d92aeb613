"""What a stored multiverse holds (`metaexercise multiverse`, results/multiverse/ANALYSIS.csv and .json): its
columns, how the choices are named, and what its specification curve shows besides the table. Plain values
only, so the book reads a stored multiverse without the machinery that computed it
(`metaexercise.review.multiverse`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from metaexercise.review.vocabulary import StatusKind

#: Choices that shape the data set (the others are the model's), in the order a data set's key lists them.
DATA_CHOICES = ("correlation", "window_rule", "multiarm", "rob_filter", "outliers", "effect_basis")
#: The choice columns of the table, in order.
CHOICE_COLUMNS = ("estimator", "ci_method", "pi_method", "correlation", "window_rule", "outliers", "rob_filter",
                  "multiarm", "effect_basis")
#: Columns of results/multiverse/ANALYSIS.csv, in order (`metaexercise multiverse` puts ``data`` first).
COLUMNS = ("analysis_id", *CHOICE_COLUMNS, "r_value", "k", "estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub",
           "tau2", "vas_points", "vas_sd", "status", "note", "is_main")
#: How the indicator panel and the book name the choices.
CHOICE_LABELS = {"estimator": "τ² estimator", "ci_method": "CI", "pi_method": "PI", "correlation": "r (change SD)",
                 "window_rule": "window", "outliers": "outliers", "rob_filter": "risk of bias",
                 "multiarm": "multi-arm", "effect_basis": "effect"}
#: How a count of values names each choice ("4 τ² estimators × 3 CI methods × ...").
CHOICE_PLURALS = {"estimator": "τ² estimators", "ci_method": "CI methods", "pi_method": "PI methods",
                  "correlation": "change-score correlations", "window_rule": "window rules",
                  "outliers": "outlier rules", "rob_filter": "risk-of-bias filters", "multiarm": "multi-arm rules",
                  "effect_basis": "effect bases"}
#: The status of a fitted specification (as analyses.csv's).
OK = str(StatusKind.OK)


def curve_options(table: pd.DataFrame, info: dict, measure: str = "SMD") -> dict:
    """What the specification curve of a stored multiverse shows besides the table (`info`: its summary
    JSON): the choices' values in order, the title, the axis label, and the MID as a dashed line, on the SMD
    axis at the main specification's baseline SD (each data set has its own; the shares use each one's)."""
    mid = info["reaches_mid"]
    threshold = None
    main = table.loc[table["is_main"].astype(bool)]
    sd = float(main["vas_sd"].iloc[0]) if len(main) else math.nan
    if mid["mid"] is not None and np.isfinite(sd) and sd > 0:
        sign = -1.0 if mid["lower_is_better"] else 1.0
        y = sign * mid["mid"] / sd
        points = f"{mid['mid']:g} point{'' if mid['mid'] == 1 else 's'}"
        words = (f"MID {points}" if measure == "MD" else
                 f"MID {points} = SMD {y:.2f} at the main analysis's SD {sd:.2f}")
        threshold = (y, words)
    axis = "Mean difference" if measure == "MD" else "Standardised mean difference"
    return {"levels": info["choices"], "title": f"{info['label']}: {info['specifications']:,} specifications",
            "ylabel": axis, "threshold": threshold, "synthetic": bool(info["synthetic"])}
