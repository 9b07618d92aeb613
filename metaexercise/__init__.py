"""metaexercise: reproduce, audit and update a published meta-analysis of individualized exercise for
chronic non-specific low back pain (Fleckenstein et al., J Pain 2022; medRxiv 2021.12.16.21267900).

The engine mirrors R's metafor 3.8 (Viechtbauer 2010, J Stat Softw 36(3), doi:10.18637/jss.v036.i03):
the same verbs (`escalc`, `rma`, `regtest`, `ranktest`, `trimfill`, `influence`, `leave1out`, `cumul`)
and the same defaults, so results can be compared line by line.
"""

__version__ = "0.1.0"

from metaexercise.effects import EffectSizes, escalc  # noqa: E402
from metaexercise.errors import ConvergenceError, ExtractionError, MetaexerciseError  # noqa: E402
from metaexercise.model import RMAResult, rma  # noqa: E402
from metaexercise.tau2 import Control  # noqa: E402

__all__ = [
    "__version__",
    "escalc",
    "EffectSizes",
    "rma",
    "RMAResult",
    "Control",
    "ConvergenceError",
    "ExtractionError",
    "MetaexerciseError",
]

#: Names re-exported lazily from their modules (imported on first use, so `import metaexercise` stays light).
_LAZY = {
    "regtest": "metaexercise.bias",
    "ranktest": "metaexercise.bias",
    "trimfill": "metaexercise.bias",
    "fsn": "metaexercise.bias",
    "influence": "metaexercise.influence",
    "leave1out": "metaexercise.influence",
    "cumul": "metaexercise.influence",
    "rma_batch": "metaexercise.batch",
    "leave1out_batch": "metaexercise.batch",
    "cumul_batch": "metaexercise.batch",
    "BatchResult": "metaexercise.batch",
    "BatchControl": "metaexercise.batch",
    "permutest_arrays": "metaexercise.permutest",
    "run_simulation": "metaexercise.simulate",
    "review_preset": "metaexercise.simulate",
    "permutest": "metaexercise.permutest",
    "metareg": "metaexercise.metareg",
    "load_extraction": "metaexercise.sheets",
    "validate": "metaexercise.sheets",
    "Extraction": "metaexercise.sheets",
    "build_comparisons": "metaexercise.comparisons",
    "load_published": "metaexercise.published",
    "audit_registry": "metaexercise.audit",
    "audit_reported": "metaexercise.audit",
    "run_audit": "metaexercise.audit",
    "grade_analysis": "metaexercise.grade",
    "GradeThresholds": "metaexercise.grade",
    "summary_of_findings": "metaexercise.grade",
    "run_project": "metaexercise.run",
}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metaexercise' has no attribute {name!r}")
