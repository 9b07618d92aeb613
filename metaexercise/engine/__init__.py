"""The general meta-analysis engine, usable without any review: effect sizes and Cochrane Handbook
conversions, τ² estimators, weighted least squares, `rma` and its result, printing, funnel-asymmetry tests,
influence diagnostics, meta-regression, permutation tests, the batched kernels and simulation.

Names and defaults follow R's metafor 3.8 (Viechtbauer 2010, J Stat Softw 36(3), doi:10.18637/jss.v036.i03),
so a methodologist can check results line by line. This floor imports nothing from the floors above it
(extraction, review, publish) and nothing from the wings (searches, plots, commands).

Every verb is imported from its module on first use (PEP 562), so `import metaexercise.engine` costs nothing
and `rma` loads only what a fit needs (numpy and scipy.special; pandas when a table is asked for). The batched
verbs need numba and the simulation Dask: the ``scale`` extra (``pip install "metaexercise[scale]"``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Each exported name and the engine module that defines it.
_EXPORTS: dict[str, str] = {
    "escalc": "effects",
    "EffectSizes": "effects",
    "rma": "model",
    "RMAResult": "model",
    "Prediction": "model",
    "Control": "model",  # defined in tau2; model re-exports it (rma takes it)
    "regtest": "bias",
    "ranktest": "bias",
    "trimfill": "bias",
    "fsn": "bias",
    "influence": "diagnostics",
    "leave1out": "diagnostics",
    "cumul": "diagnostics",
    "metareg": "metaregression",
    "MetaRegression": "metaregression",
    "rma_batch": "batch",
    "leave1out_batch": "batch",
    "cumul_batch": "batch",
    "BatchResult": "batch",
    "BatchControl": "batch",
    "permutest": "permutation",
    "permutest_arrays": "permutation",
    "run_simulation": "simulate",
    "robust": "cluster_robust",
    "RobustResult": "cluster_robust",
    "wald_test": "cluster_robust",
    "RobustWaldTest": "cluster_robust",
    "transf_rtoz": "transf",
    "transf_ztor": "transf",
    "transf_ztor_int": "transf",
    "transf_exp": "transf",
    "transf_exp_int": "transf",
    "transf_logit": "transf",
    "transf_ilogit": "transf",
    "transf_ilogit_int": "transf",
    "transf_arcsin": "transf",
    "transf_iarcsin": "transf",
    "transf_pft": "transf",
    "transf_ipft": "transf",
    "transf_ipft_hm": "transf",
    "transf_isqrt": "transf",
    "transf_irft": "transf",
    "transf_iirft": "transf",
    "transf_ahw": "transf",
    "transf_iahw": "transf",
    "transf_abt": "transf",
    "transf_iabt": "transf",
    "transf_dtou1": "transf",
    "transf_dtou2": "transf",
    "transf_dtou3": "transf",
    "transf_dtocles": "transf",
    "transf_dtorpb": "transf",
    "transf_dtobesd": "transf",
    "transf_dtomd": "transf",
    "transf_logortord": "transf",
    "transf_logortorr": "transf",
    "rma_mh": "mh",
    "rma_peto": "mh",
    "MHResult": "mh",
    "anova": "hypothesis",
    "WaldTest": "hypothesis",
    "LikelihoodRatioTest": "hypothesis",
    "LRTWarning": "hypothesis",
    "blup": "extractors",
    "ranef": "extractors",
    "rstandard": "extractors",
    "residuals": "extractors",
    "vcov": "extractors",
    "hatvalues": "extractors",
    "fitstats": "extractors",
    "logLik": "extractors",
    "NAOmittedWarning": "model",
    "NonPositiveVariancesWarning": "model",
    "rma_mv": "mv",
    "RMAMVResult": "mv",
    "RMAMVWarning": "mv",
    "MVControl": "mv",
    "vcalc": "sampling_vcov",
    "gleser_olkin_smd_cov": "sampling_vcov",
    "MVConfint": "mv_confint",
    "bayesmeta": "bayes",
    "BayesMetaResult": "bayes",
    "predictive_intervals": "bayes",
    "pi_coverage": "prediction_coverage",
    "PICoverageResult": "prediction_coverage",
    "gosh": "gosh_subsets",
    "GoshResult": "gosh_subsets",
    "selmodel": "selection_models",
    "SelmodelResult": "selection_models",
    "pet_peese": "petpeese",
    "PetPeeseResult": "petpeese",
}

#: Optional third-party packages behind some verbs, and the extra that installs them.
_EXTRAS: dict[str, str] = {"numba": "scale", "dask": "scale", "distributed": "scale", "tqdm": "scale"}

__all__ = [  # = list(_EXPORTS), spelled out for static analysis (tests/engine/test_surface.py checks)
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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from metaexercise.engine.batch import BatchControl, BatchResult, cumul_batch, leave1out_batch, rma_batch
    from metaexercise.engine.bayes import BayesMetaResult, bayesmeta, predictive_intervals
    from metaexercise.engine.bias import fsn, ranktest, regtest, trimfill
    from metaexercise.engine.cluster_robust import RobustResult, RobustWaldTest, robust, wald_test
    from metaexercise.engine.diagnostics import cumul, influence, leave1out
    from metaexercise.engine.effects import EffectSizes, escalc
    from metaexercise.engine.extractors import (
        blup,
        fitstats,
        hatvalues,
        logLik,
        ranef,
        residuals,
        rstandard,
        vcov,
    )
    from metaexercise.engine.gosh_subsets import GoshResult, gosh
    from metaexercise.engine.hypothesis import LikelihoodRatioTest, LRTWarning, WaldTest, anova
    from metaexercise.engine.metaregression import MetaRegression, metareg
    from metaexercise.engine.mh import MHResult, rma_mh, rma_peto
    from metaexercise.engine.model import (
        Control,
        NAOmittedWarning,
        NonPositiveVariancesWarning,
        Prediction,
        RMAResult,
        rma,
    )
    from metaexercise.engine.mv import MVControl, RMAMVResult, RMAMVWarning, rma_mv
    from metaexercise.engine.mv_confint import MVConfint
    from metaexercise.engine.permutation import permutest, permutest_arrays
    from metaexercise.engine.petpeese import PetPeeseResult, pet_peese
    from metaexercise.engine.prediction_coverage import PICoverageResult, pi_coverage
    from metaexercise.engine.sampling_vcov import gleser_olkin_smd_cov, vcalc
    from metaexercise.engine.selection_models import SelmodelResult, selmodel
    from metaexercise.engine.simulate import run_simulation
    from metaexercise.engine.transf import (
        transf_abt,
        transf_ahw,
        transf_arcsin,
        transf_dtobesd,
        transf_dtocles,
        transf_dtomd,
        transf_dtorpb,
        transf_dtou1,
        transf_dtou2,
        transf_dtou3,
        transf_exp,
        transf_exp_int,
        transf_iabt,
        transf_iahw,
        transf_iarcsin,
        transf_iirft,
        transf_ilogit,
        transf_ilogit_int,
        transf_ipft,
        transf_ipft_hm,
        transf_irft,
        transf_isqrt,
        transf_logit,
        transf_logortord,
        transf_logortorr,
        transf_pft,
        transf_rtoz,
        transf_ztor,
        transf_ztor_int,
    )


def _load(name: str, module: str):
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _EXTRAS:
            raise
        extra = _EXTRAS[missing]
        raise ImportError(
            f"metaexercise: {name} needs {missing}, which is not installed. Install the {extra!r} extra: "
            f'pip install "metaexercise[{extra}]"',
            name=missing,
        ) from exc
    return getattr(mod, name)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _load(name, module)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
