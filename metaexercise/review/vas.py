"""Pooled SMDs back on the outcome's common scale (e.g. 0–10 points), judged against its minimal important
difference: both declared by the project (`review.yaml`: an outcome's `common_scale`, `mid`, `typical_sd`).

Method (Cochrane Handbook 5.1, section 12.6.4 "Re-expressing SMDs using a familiar instrument"; chapter 15
in version 6): points = SMD × SD, where SD is "a typical among-person standard deviation" on the common
scale. We use, in order of preference,

1. the pooled baseline SD of the analysis's own studies, pooling every arm's baseline SD with its degrees
   of freedom, SD = sqrt(Σ (n_j − 1) s_j² / Σ (n_j − 1)) (the within-groups SD of Hedges' g, extended
   to many groups; Borenstein et al. 2009, Introduction to Meta-Analysis, chapter 4);
2. the typical SD the outcome declares (`typical_sd`, with its source); never one declared for another
   outcome.

An effect is "probably meaningful" when its CI lies entirely on the side of benefit (the outcome's declared
direction), "clinically important" when moreover abs(points) reaches the MID; a CI entirely on the other side
"favours control". An outcome without a declared MID gets no "clinically important" verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from metaexercise.review.declaration import OutcomeDecl


class Verdict(StrEnum):
    """What a pooled effect shows against the clinical threshold (``meaningful`` column of analyses.csv)."""

    CLINICALLY_IMPORTANT = "clinically important"
    PROBABLY_MEANINGFUL = "probably meaningful"
    NOT_SHOWN = "not shown"
    FAVOURS_CONTROL = "favours control"

    @classmethod
    def of(cls, lo: float, hi: float, lower_is_better: bool = True) -> Verdict:
        """The verdict of a CI [lo, hi] on the SMD (or points) scale, without a MID."""
        benefit = hi < 0 if lower_is_better else lo > 0
        harm = lo > 0 if lower_is_better else hi < 0
        return cls.PROBABLY_MEANINGFUL if benefit else cls.FAVOURS_CONTROL if harm else cls.NOT_SHOWN


@dataclass(frozen=True, slots=True)
class VasEffect:
    """A pooled SMD re-expressed in points of the outcome's common scale (SMD × SD); `threshold` is the
    outcome's MID (NaN when it declares none)."""

    outcome: str
    smd: float
    points: float
    ci_lb: float
    ci_ub: float
    sd: float
    sd_source: str
    threshold: float
    clinically_important: bool
    probably_meaningful: bool
    favours_control: bool = False

    @property
    def verdict(self) -> Verdict:
        """One phrase: 'clinically important', 'probably meaningful', 'favours control' or 'not shown'."""
        if self.clinically_important and self.probably_meaningful:
            return Verdict.CLINICALLY_IMPORTANT
        if self.probably_meaningful:
            return Verdict.PROBABLY_MEANINGFUL
        if self.favours_control:
            return Verdict.FAVOURS_CONTROL
        return Verdict.NOT_SHOWN

    def summary(self) -> str:
        return (
            f"{self.outcome}: SMD {self.smd:.2f} x SD {self.sd:.2f} = {self.points:.2f} points "
            f"[{self.ci_lb:.2f}, {self.ci_ub:.2f}]; threshold {self.threshold:g}: {self.verdict} "
            f"(SD from {self.sd_source})"
        )


def pooled_sd(sd, n) -> float:
    """Pooled SD over groups: sqrt(Σ (n_j − 1) s_j² / Σ (n_j − 1)) (Borenstein et al. 2009, chapter 4).

    Groups with a missing SD or n are skipped; NaN if none is left.
    """
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    if sd.shape != n.shape:
        raise ValueError(f"sd and n must have the same length, got {sd.size} and {n.size}")
    ok = np.isfinite(sd) & np.isfinite(n) & (n > 1)
    if not ok.any():
        return float("nan")
    df = n[ok] - 1.0
    return float(np.sqrt(np.sum(df * sd[ok] ** 2) / np.sum(df)))


def to_vas(outcome: OutcomeDecl, smd: float, ci_lb: float, ci_ub: float, sd: float, sd_source: str) -> VasEffect:
    """Re-express an SMD and its CI as points (points = SMD × sd) and judge it against the outcome's MID.

    `probably_meaningful`: the CI (on either scale: multiplying by sd > 0 does not move zero) lies entirely on
    the side of benefit; `clinically_important`: moreover ``|points|`` ≥ the MID (never without a MID)."""
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError(f"the SD used to re-express an SMD must be positive, got {sd!r} ({sd_source})")
    threshold = outcome.mid.value if outcome.mid is not None else math.nan
    points, lo, hi = smd * sd, ci_lb * sd, ci_ub * sd
    verdict = Verdict.of(lo, hi, outcome.lower_is_better)
    meaningful = verdict is Verdict.PROBABLY_MEANINGFUL
    return VasEffect(
        outcome=outcome.id,
        smd=float(smd),
        points=float(points),
        ci_lb=float(lo),
        ci_ub=float(hi),
        sd=float(sd),
        sd_source=sd_source,
        threshold=threshold,
        clinically_important=bool(meaningful and outcome.mid is not None and abs(points) >= threshold),
        probably_meaningful=meaningful,
        favours_control=verdict is Verdict.FAVOURS_CONTROL,
    )
