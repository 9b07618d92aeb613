"""Put an instrument's scores on an outcome's common scale, when the review declares one.

A project may declare, per outcome, a common scale [lo, hi] (`review.yaml`: ``common_scale``; the
`SheetVocabulary` carries it: `SheetVocabulary.common_scale(outcome)`). A score x of an instrument on
[min, max] maps to lo + (hi - lo)*(x - min)/(max - min) when the instrument's direction of benefit is the
scale's, and to lo + (hi - lo)*(max - x)/(max - min) when it is the opposite (an instrument where higher is
better, on a scale where lower is better). Spreads (SD, SE) and differences (changes, contrasts) are scaled by
(hi - lo)/(max - min) and never shifted; differences of an instrument of the opposite direction change sign.
Without a declared common scale nothing is normalised (an SMD needs no common scale).
"""

from __future__ import annotations

import numpy as np

from metaexercise.extraction.instruments import Instrument
from metaexercise.extraction.schema import ReportedAs

Scale = tuple[float, float]


def _factor(instrument: Instrument, scale: Scale) -> float:
    if not instrument.has_range:
        raise ValueError(
            f"instrument {instrument.id!r} has no stated range, so it cannot be put on the common scale "
            f"{scale[0]:g}-{scale[1]:g} (an SMD needs no range)"
        )
    lo, hi = scale
    if not lo < hi:
        raise ValueError(f"a common scale needs min < max, not {lo:g}-{hi:g}")
    return (hi - lo) / instrument.width


def _same_direction(instrument: Instrument, higher_is_better: bool) -> bool:
    """True when higher instrument scores point the way higher common-scale values do."""
    return instrument.higher_is_worse != higher_is_better


def _out(a):
    return a if a.ndim else float(a)


def score_to_common(x, instrument: Instrument, scale: Scale, *, higher_is_better: bool = False):
    """A score (baseline or follow-up value, mean, median, quartile) on the common scale `scale` = (lo, hi),
    whose direction of benefit is `higher_is_better` (default: lower is better, lo = no burden)."""
    f = _factor(instrument, scale)
    x = np.asarray(x, dtype=float)
    same = _same_direction(instrument, higher_is_better)
    return _out(scale[0] + ((x - instrument.minimum) if same else (instrument.maximum - x)) * f)


def difference_to_common(d, instrument: Instrument, scale: Scale, *, higher_is_better: bool = False):
    """A difference (change from baseline, between-group contrast) in the instrument's own orientation, on
    the common scale's units and orientation."""
    f = _factor(instrument, scale)
    d = np.asarray(d, dtype=float)
    return _out(d * f if _same_direction(instrument, higher_is_better) else -d * f)


def spread_to_common(s, instrument: Instrument, scale: Scale):
    """An SD or SE on the common scale (scaled, not shifted, never negated)."""
    return _out(np.asarray(s, dtype=float) * _factor(instrument, scale))


# The three functions below put scores on a 0-10 scale (0 = no burden). They serve callers that do not yet
# pass their outcome's declared common scale; a caller with a vocabulary uses the *_to_common functions.
_ZERO_TEN = (0.0, 10.0)


def score_to_0_10(x, instrument: Instrument):
    """`score_to_common` on (0, 10), lower is better."""
    return score_to_common(x, instrument, _ZERO_TEN)


def difference_to_0_10(d, instrument: Instrument):
    """`difference_to_common` on (0, 10), positive = more burden."""
    return difference_to_common(d, instrument, _ZERO_TEN)


def spread_to_0_10(s, instrument: Instrument):
    """`spread_to_common` on (0, 10)."""
    return spread_to_common(s, instrument, _ZERO_TEN)


def orient_difference(d, instrument: Instrument, reported_as: str):
    """A printed difference turned into the instrument's own orientation (follow-up minus baseline,
    experimental minus control). `reported_as="improvement"` means positive = improvement, i.e.
    the opposite of the orientation for a higher-is-worse scale."""
    d = np.asarray(d, dtype=float)
    if reported_as == ReportedAs.SCALE:
        out = d
    elif reported_as == ReportedAs.IMPROVEMENT:
        out = -d if instrument.higher_is_worse else d
    else:
        raise ValueError(f"orientation {reported_as!r} cannot be converted (expected 'scale' or 'improvement')")
    return _out(out)


def burden_difference(d, instrument: Instrument, reported_as: str):
    """A printed difference as a change in burden (positive = worse), in instrument units: negative change
    = improvement, negative SMD favours the experimental arm. Needs no range, so it also serves instruments
    without a stated range."""
    d = orient_difference(d, instrument, reported_as)
    return d if instrument.higher_is_worse else -d
