"""The standardized mean difference as different programs compute it, so a published SMD can be traced to the
program (and with it the convention) that produced it.

- ``"exact"``: metafor 3.8 `escalc("SMD")` (this engine's `escalc`): Hedges' g with the exact correction
  c(m) = Γ(m/2) / (√(m/2) Γ((m−1)/2)), m = n1 + n2 − 2 (Hedges 1981, J Educ Stat 6:107, eq. 6e), and the
  large-sample variance v = 1/n1 + 1/n2 + g²/(2N) (Hedges & Olkin 1985, eq. 5.15), N = n1 + n2.
- ``"revman5"``: Review Manager 5: g = d · (1 − 3/(4N − 9)) and SE² = N/(n1 n2) + g²/(2(N − 3.94))
  (Deeks JJ, Higgins JPT. Statistical algorithms in Review Manager 5, 2010, section "Standardized mean
  difference"; the approximate correction is Hedges & Olkin 1985, eq. 5.10's 1 − 3/(4m − 1) with m = N − 2).
- ``"cohen"``: Cohen's d on the pooled SD, uncorrected, with the large-sample variance 1/n1 + 1/n2 + d²/(2N)
  (Hedges & Olkin 1985, eq. 5.15 applied to d): what programs without a small-sample correction report.

All three share the pooled SD s = √(((n1 − 1) sd1² + (n2 − 1) sd2²)/(N − 2)).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from metaexercise.engine.effects import hedges_correction

SmdBasis = Literal["exact", "revman5", "cohen"]
SMD_BASES: tuple[str, ...] = ("exact", "revman5", "cohen")


def smd(basis: SmdBasis, m1i, sd1i, n1i, m2i, sd2i, n2i) -> tuple[np.ndarray, np.ndarray]:
    """(yi, vi) of the SMD (group 1 minus group 2) under `basis` ("exact", "revman5" or "cohen")."""
    if basis not in SMD_BASES:
        raise ValueError(f"smd: basis {basis!r} is not one of {SMD_BASES}")
    m1, s1, n1, m2, s2, n2 = (np.asarray(a, dtype=float) for a in (m1i, sd1i, n1i, m2i, sd2i, n2i))
    bad = np.flatnonzero(~((n1 > 0) & (n2 > 0) & (n1 + n2 > 2)))
    if bad.size:
        raise ValueError(f"smd: group sizes must be positive with n1 + n2 > 2; not so at positions {bad.tolist()}")
    total = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (m1 - m2) / np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (total - 2))
    if basis == "exact":
        g = hedges_correction(total - 2) * d
        return g, 1 / n1 + 1 / n2 + g**2 / (2 * total)
    if basis == "revman5":
        g = d * (1 - 3 / (4 * total - 9))
        return g, total / (n1 * n2) + g**2 / (2 * (total - 3.94))
    return d, 1 / n1 + 1 / n2 + d**2 / (2 * total)
