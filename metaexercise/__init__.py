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
