"""The general meta-analysis engine, usable without any review: effect sizes and Cochrane Handbook
conversions, τ² estimators, weighted least squares, `rma` and its result, printing, funnel-asymmetry tests,
influence diagnostics, meta-regression, permutation tests, the batched kernels and simulation.

Names and defaults follow R's metafor 3.8 (Viechtbauer 2010, J Stat Softw 36(3), doi:10.18637/jss.v036.i03),
so a methodologist can check results line by line. This floor imports nothing from the floors above it
(extraction, review, publish) and nothing from the wings (searches, plots, commands).

The light verbs are imported at once; the batched ones (numba) and the simulation (Dask) load on first use.
"""

from __future__ import annotations

import importlib

from metaexercise.engine.bias import fsn, ranktest, regtest, trimfill
from metaexercise.engine.diagnostics import cumul, influence, leave1out
from metaexercise.engine.effects import EffectSizes, escalc
from metaexercise.engine.metaregression import MetaRegression, metareg
from metaexercise.engine.model import Prediction, RMAResult, rma
from metaexercise.engine.tau2 import Control

#: Verbs that bring numba or Dask with them: imported on first use, so that `import metaexercise` stays light.
_LAZY = {
    "rma_batch": "metaexercise.engine.batch",
    "leave1out_batch": "metaexercise.engine.batch",
    "cumul_batch": "metaexercise.engine.batch",
    "BatchResult": "metaexercise.engine.batch",
    "BatchControl": "metaexercise.engine.batch",
    "permutest": "metaexercise.engine.permutation",
    "permutest_arrays": "metaexercise.engine.permutation",
    "run_simulation": "metaexercise.engine.simulate",
}

__all__ = [
    "escalc", "EffectSizes", "rma", "RMAResult", "Prediction", "Control", "regtest", "ranktest", "trimfill",
    "fsn", "influence", "leave1out", "cumul", "metareg", "MetaRegression", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaexercise.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
