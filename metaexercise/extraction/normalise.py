"""Put scores on the review's 0-10 scale: 0 = no burden, 10 = worst.

The review: "All scales were normalised to a 0-10 VAS" (Fleckenstein et al. 2022, Methods). A score x
on [min, max] maps to 10*(x - min)/(max - min); scales where higher is better are reversed,
10*(max - x)/(max - min). Spreads (SD, SE) and differences (changes, contrasts) are scaled by
10/(max - min) and never shifted; differences of higher-is-better scales change sign.
"""

from __future__ import annotations

import numpy as np

from metaexercise.extraction.instruments import Instrument
from metaexercise.extraction.schema import ReportedAs


def _factor(instrument: Instrument) -> float:
    if not instrument.has_range:
        raise ValueError(
            f"instrument {instrument.id!r} has no stated range, so it cannot be put on the 0-10 scale "
            "(an SMD needs no range)"
        )
    return 10.0 / instrument.width


def score_to_0_10(x, instrument: Instrument):
    """A score (baseline or follow-up value, mean, median, quartile) on 0-10, 0 = no burden."""
    f = _factor(instrument)
    x = np.asarray(x, dtype=float)
    out = (x - instrument.minimum) * f if instrument.higher_is_worse else (instrument.maximum - x) * f
    return out if out.ndim else float(out)


def difference_to_0_10(d, instrument: Instrument):
    """A difference (change from baseline, between-group contrast) in the instrument's own orientation,
    on the 0-10 scale where positive = more burden."""
    f = _factor(instrument)
    d = np.asarray(d, dtype=float)
    out = d * f if instrument.higher_is_worse else -d * f
    return out if out.ndim else float(out)


def spread_to_0_10(s, instrument: Instrument):
    """An SD or SE on the 0-10 scale (scaled, not shifted, never negated)."""
    s = np.asarray(s, dtype=float) * _factor(instrument)
    return s if s.ndim else float(s)


def orient_difference(d, instrument: Instrument, reported_as: str):
    """A printed difference turned into the instrument's own orientation (follow-up minus baseline,
    individualized minus control). `reported_as="improvement"` means positive = improvement, i.e.
    the opposite of the orientation for a higher-is-worse scale."""
    d = np.asarray(d, dtype=float)
    if reported_as == ReportedAs.SCALE:
        out = d
    elif reported_as == ReportedAs.IMPROVEMENT:
        out = -d if instrument.higher_is_worse else d
    else:
        raise ValueError(f"orientation {reported_as!r} cannot be converted (expected 'scale' or 'improvement')")
    return out if out.ndim else float(out)


def burden_difference(d, instrument: Instrument, reported_as: str):
    """A printed difference as a change in burden (positive = worse), in instrument units: the sign the
    review uses (negative change = improvement; negative SMD favours the individualized arm). Needs no
    range, so it also serves instruments without a stated range."""
    d = orient_difference(d, instrument, reported_as)
    return d if instrument.higher_is_worse else -d
