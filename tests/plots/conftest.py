"""Shared data for the plot tests: BCG vaccine trials (dat.bcg, Colditz et al. 1994, as shipped with metafor)."""

import io

import numpy as np
import pandas as pd
import pytest

from metaexercise import rma

#: dat.bcg counts (metafor's data set): tpos, tneg, cpos, cneg for the 13 trials.
BCG = np.array([
    [4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
    [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
    [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
    [27, 16886, 29, 17825],
], dtype=float)


@pytest.fixture(scope="session")
def bcg_fit():
    """REML fit of log risk ratios; yi/vi by the textbook formulas (Borenstein 2009, eq. 5.1-5.3)."""
    a, b, c, d = BCG.T
    yi = np.log(a / (a + b)) - np.log(c / (c + d))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return rma(yi, vi)


@pytest.fixture(scope="session")
def bcg_studies():
    a, b, c, d = BCG.T
    return pd.DataFrame({"study": [f"Trial {i + 1}" for i in range(13)], "n1i": a + b, "n2i": c + d})


def stored(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as `metaexercise run` stores it in results/ and a page reads it back (CSV, 12 digits)."""
    from metaexercise.review.run import FLOAT_FORMAT

    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format=FLOAT_FORMAT)))


@pytest.fixture(scope="session")
def bcg_pooled(bcg_fit):
    """The BCG fit as the plots get it from results/: its forest.csv row and studies.csv rows, read back."""
    from metaexercise.plots.inputs import PooledEffect
    from metaexercise.review.exhibits import pooled_row

    row = stored(pd.DataFrame([pooled_row("bcg", bcg_fit)])).iloc[0]
    studies = stored(pd.DataFrame({"yi": bcg_fit.yi, "vi": bcg_fit.vi, "weight": bcg_fit.weights}))
    return PooledEffect.from_results(row, studies)
