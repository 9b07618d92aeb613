"""Effect measures by metafor's codes: which are ratios (analysed on the log scale) and what they are called.

A ratio measure's ``yi`` is a log ratio (or, for Peto's method, a log odds ratio); metafor shows such results
back-transformed with ``exp`` (e.g. `print.rma.mh`'s "Model Results (OR scale)", ``forest(res,
atransf=exp)``). The plots draw them on a log axis with the null at 1.
"""

from __future__ import annotations

#: metafor measures whose ``yi`` is the natural log of a ratio of two groups or time points (metafor 3.8 `escalc`
#: documentation: RR, OR, PETO (log odds ratio), IRR, ROM (ratio of means), VR / CVR (ratios of variability), the
#: matched-pairs ratios MPRR / MPOR / MPORC / MPPETO / MPORM, and ROMC / VRC / CVRC for change). Single-group
#: logs (PLN, IRLN, MNLN, ...) are logs but not ratios: no null value of 1, so they are not listed.
RATIO_MEASURES: tuple[str, ...] = (
    "RR", "OR", "PETO", "IRR", "ROM", "VR", "CVR", "MPRR", "MPOR", "MPORC", "MPPETO", "MPORM", "ROMC", "VRC",
    "CVRC",
)

#: Names as RevMan and metafor's documentation print them (Cochrane Handbook §6.4 and §10.4; metafor `escalc`).
MEASURE_LABELS: dict[str, str] = {
    "RR": "Risk Ratio",
    "OR": "Odds Ratio",
    "PETO": "Peto Odds Ratio",
    "RD": "Risk Difference",
    "AS": "Arcsine Square Root Difference",
    "YUQ": "Yule's Q",
    "YUY": "Yule's Y",
    "IRR": "Rate Ratio",
    "IRD": "Rate Difference",
    "IRSD": "Square Root Rate Difference",
    "ROM": "Ratio of Means",
    "VR": "Variability Ratio",
    "CVR": "Coefficient of Variation Ratio",
    "SMD": "Std. Mean Difference",
    "SMDH": "Std. Mean Difference (heteroscedastic)",
    "MD": "Mean Difference",
}


def is_ratio(measure: object) -> bool:
    """True for a metafor measure code whose ``yi`` is a log ratio (see `RATIO_MEASURES`)."""
    return measure in RATIO_MEASURES
