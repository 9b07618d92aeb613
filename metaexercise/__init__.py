"""metaexercise: a toolkit for systematic reviews and meta-analysis, built as a house with floors.

- `metaexercise.engine`: general meta-analysis with R metafor 3.8's names and defaults (Viechtbauer 2010,
  J Stat Softw 36(3), doi:10.18637/jss.v036.i03); usable alone, without any review.
- `metaexercise.extraction`: the extraction form and sheets, instrument registry, normalisation, comparisons.
- `metaexercise.review`: a project's analyses, runs, GRADE, the published registry and its audit, the replica.
- `metaexercise.publish`: the book, built from `results/` alone.
- Wings: `metaexercise.searches` (search update), `metaexercise.plots` (figures), `metaexercise.commands` (CLI).

`import metaexercise` gives the engine's verbs (`escalc`, `rma`, `regtest`, ...) without loading numba, Dask or
the review stack: the batched verbs load numba on first use.
"""

from __future__ import annotations

import importlib

from metaexercise._version import __version__
from metaexercise.errors import ConvergenceError, ExtractionError, MetaexerciseError

#: Engine verbs re-exported here, each imported from `metaexercise.engine` on first use.
_ENGINE = (
    "escalc", "EffectSizes", "rma", "RMAResult", "Prediction", "Control", "regtest", "ranktest", "trimfill",
    "fsn", "influence", "leave1out", "cumul", "metareg", "MetaRegression", "rma_batch", "leave1out_batch",
    "cumul_batch", "BatchResult", "BatchControl", "permutest", "permutest_arrays", "run_simulation",
)

__all__ = ["__version__", "ConvergenceError", "ExtractionError", "MetaexerciseError", *_ENGINE]


def __getattr__(name: str):
    if name in _ENGINE:
        value = getattr(importlib.import_module("metaexercise.engine"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaexercise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENGINE))
