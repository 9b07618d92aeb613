"""Pooled SMDs back on the 0–10 VAS scale, judged against the review's clinical thresholds.

Method (Cochrane Handbook 5.1, section 12.6.4 "Re-expressing SMDs using a familiar instrument"; chapter 15
in version 6): points = SMD × SD, where SD is "a typical among-person standard deviation" on the 0–10 scale.
We use, in order of preference,

1. the pooled baseline SD of the analysis's own studies, pooling every arm's baseline SD with its degrees
   of freedom, SD = sqrt(Σ (n_j − 1) s_j² / Σ (n_j − 1)) (the within-groups SD of Hedges' g, extended
   to many groups; Borenstein et al. 2009, Introduction to Meta-Analysis, chapter 4);
2. a typical SD on the 0–10 scale: for pain, the NRS's "common standard deviation = 1.64 points"
   (BetterBack trial protocol, NCT03147300, version 2, 30 Sept 2017, Outcome measures, NRS-LBP), which
   serves any pain scale once the review has put it on 0–10.

Never the review's descriptive SDs of study means (1.09–1.51 on the 0–10 scale, Results "Results of
individual studies"): those describe how study means vary, not how patients vary.

Thresholds (Fleckenstein et al. 2022, Methods "Certainty assessment", citing Hayden et al. 2021): a
difference of 1.5 points for pain and 1.0 point for disability on a 0–10 VAS is clinically important.
A smaller difference is "probably meaningful" when its 95% CI lies entirely on one side of zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from metaexercise.extraction.schema import Outcome

#: Clinically important differences on the 0–10 VAS (review, Methods "Certainty assessment").
THRESHOLDS: dict[str, float] = {Outcome.PAIN: 1.5, Outcome.DISABILITY: 1.0}

#: Typical patient-level SDs of instruments on the 0–10 scale, each with its source.
TYPICAL_SD: dict[str, tuple[float, str]] = {
    "NRS": (1.64, "BetterBack trial protocol (NCT03147300, v2 2017), NRS-LBP 'common standard deviation=1.64'"),
}
#: Which instrument's typical SD serves an outcome when an analysis's studies report no baseline SD. The
#: review puts every pain scale on 0–10 (Methods), so the NRS's SD serves pain whatever the instrument
#: was; our sources give no comparable figure for a 0–10 disability score.
OUTCOME_TYPICAL_SD: dict[str, str] = {Outcome.PAIN: "NRS"}


class Verdict(StrEnum):
    """What a pooled effect shows against the clinical threshold (``meaningful`` column of analyses.csv)."""

    CLINICALLY_IMPORTANT = "clinically important"
    PROBABLY_MEANINGFUL = "probably meaningful"
    NOT_SHOWN = "not shown"


@dataclass(frozen=True, slots=True)
class VasEffect:
    """A pooled SMD re-expressed in 0–10 VAS points (negative = improvement, as the review's SMDs)."""

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

    @property
    def verdict(self) -> Verdict:
        """One phrase: 'clinically important', 'probably meaningful' or 'not shown'."""
        if self.clinically_important and self.probably_meaningful:
            return Verdict.CLINICALLY_IMPORTANT
        if self.probably_meaningful:
            return Verdict.PROBABLY_MEANINGFUL
        return Verdict.NOT_SHOWN

    def summary(self) -> str:
        return (
            f"{self.outcome}: SMD {self.smd:.2f} x SD {self.sd:.2f} = {self.points:.2f} VAS points "
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


def to_vas(outcome: str, smd: float, ci_lb: float, ci_ub: float, sd: float, sd_source: str) -> VasEffect:
    """Re-express an SMD and its CI as VAS points (points = SMD × sd) and judge it against the thresholds.

    `clinically_important`: ``|points|`` ≥ threshold and the CI excludes zero; `probably_meaningful`: the CI
    (on either scale: multiplying by sd > 0 does not move zero) lies entirely on one side of zero.
    """
    if outcome not in THRESHOLDS:
        raise ValueError(f"outcome {outcome!r} has no VAS threshold; known: {', '.join(THRESHOLDS)}")
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError(f"the SD used to re-express an SMD must be positive, got {sd!r} ({sd_source})")
    threshold = THRESHOLDS[outcome]
    points, lo, hi = smd * sd, ci_lb * sd, ci_ub * sd
    meaningful = bool(hi < 0 or lo > 0)
    return VasEffect(
        outcome=outcome,
        smd=float(smd),
        points=float(points),
        ci_lb=float(lo),
        ci_ub=float(hi),
        sd=float(sd),
        sd_source=sd_source,
        threshold=threshold,
        clinically_important=bool(meaningful and abs(points) >= threshold),
        probably_meaningful=meaningful,
    )
