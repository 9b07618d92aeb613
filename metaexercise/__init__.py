"""metaexercise: a toolkit for systematic reviews and meta-analysis, built as a house with floors.

- `metaexercise.engine`: general meta-analysis with R metafor 3.8's names and defaults (Viechtbauer 2010,
  J Stat Softw 36(3), doi:10.18637/jss.v036.i03); usable alone, without any review.
- `metaexercise.extraction`: the extraction form and sheets, instrument registry, normalisation, comparisons.
- `metaexercise.review`: a project's analyses, runs, GRADE, the published registry and its audit, the replica.
- `metaexercise.publish`: the book, built from `results/` alone.
- Wings: `metaexercise.searches` (search update), `metaexercise.plots` (figures), `metaexercise.commands` (CLI).

`import metaexercise` gives the engine's verbs (`escalc`, `rma`, `regtest`, ...), each imported from
`metaexercise.engine` on first use, without loading numba, Dask, matplotlib or the review stack. `pip install
metaexercise` brings what the engine's verbs need (numpy, scipy, pandas); the batched verbs (`rma_batch`,
`permutest`, ...) and the simulation need the ``scale`` extra, the review floors the ``review`` extra.
"""

from __future__ import annotations

import importlib

from metaexercise._version import __version__
from metaexercise.errors import ConvergenceError, ExtractionError, MetaexerciseError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as True)

__all__ = [
    "__version__", "ConvergenceError", "ExtractionError", "MetaexerciseError",
    # the engine's verbs (`metaexercise.engine.__all__`), each loaded from `metaexercise.engine` on first use
    "escalc", "EffectSizes", "rma", "RMAResult", "Prediction", "Control", "regtest", "ranktest", "trimfill",
    "fsn", "influence", "leave1out", "cumul", "metareg", "MetaRegression", "rma_batch", "leave1out_batch",
    "cumul_batch", "BatchResult", "BatchControl", "permutest", "permutest_arrays", "run_simulation",
    "robust", "RobustResult", "wald_test", "RobustWaldTest",
    "transf_rtoz", "transf_ztor", "transf_ztor_int", "transf_exp", "transf_exp_int", "transf_logit", "transf_ilogit", "transf_ilogit_int", "transf_arcsin", "transf_iarcsin", "transf_pft", "transf_ipft", "transf_ipft_hm", "transf_isqrt", "transf_irft", "transf_iirft", "transf_ahw", "transf_iahw", "transf_abt", "transf_iabt", "transf_dtou1", "transf_dtou2", "transf_dtou3", "transf_dtocles", "transf_dtorpb", "transf_dtobesd", "transf_dtomd", "transf_logortord", "transf_logortorr", "rma_mh", "rma_peto", "MHResult",
    "anova", "WaldTest", "LikelihoodRatioTest", "LRTWarning", "blup", "ranef", "rstandard", "residuals", "vcov", "hatvalues", "fitstats", "logLik", "NAOmittedWarning", "NonPositiveVariancesWarning",
    "rma_mv", "RMAMVResult", "RMAMVWarning", "MVControl", "vcalc", "gleser_olkin_smd_cov", "MVConfint",
    "bayesmeta", "BayesMetaResult", "predictive_intervals", "pi_coverage", "PICoverageResult",
    "gosh", "GoshResult", "selmodel", "SelmodelResult", "pet_peese", "PetPeeseResult",
]

#: The names of `__all__` that come from the engine.
_ENGINE = frozenset(__all__[4:])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from metaexercise.engine import (
        BatchControl,
        BatchResult,
        Control,
        EffectSizes,
        MetaRegression,
        Prediction,
        RMAResult,
        RobustResult,
        RobustWaldTest,
        cumul,
        cumul_batch,
        escalc,
        fsn,
        influence,
        leave1out,
        leave1out_batch,
        metareg,
        permutest,
        permutest_arrays,
        ranktest,
        regtest,
        rma,
        rma_batch,
        robust,
        run_simulation,
        trimfill,
        wald_test,
    )


def __getattr__(name: str):
    # The package root's one lazy reach into the engine floor (PEP 562): nothing above the engine is loaded.
    if name in _ENGINE:
        value = getattr(importlib.import_module("metaexercise.engine"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaexercise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENGINE))
