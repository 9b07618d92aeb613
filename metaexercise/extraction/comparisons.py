"""From extraction sheets to study comparisons: pick the follow-up time point, the instrument and the arms,
turn what each paper prints into values on the outcome's common scale (change scores or final values, as the
review's effect basis says), and make sure no participant is counted twice in one analysis.

Everything review-specific comes in through `ComparisonRules` (built by the review floor from the project's
`review.yaml`): the arm roles, the outcome's direction of benefit and common scale, the effect basis and the
follow-up windows. This module names no review's outcomes, windows, codes or scales.

Sign convention: metafor's ``escalc("SMD")`` / ``escalc("MD")``, experimental minus control. Values are put
in the outcome's declared direction, so a change is follow-up minus baseline on a scale whose declared direction
of benefit is the outcome's (`ComparisonRules.lower_is_better`): with benefit "lower" a negative effect favours
the experimental arm, with benefit "higher" a positive one. Contrast-only studies get `yi`/`vi`; arm-level
studies leave `yi`/`vi` NaN for `escalc` downstream (with the review's measure). Column `derivation` records
every imputation made; `result.attrs["skipped"]` lists every study or arm left out, with the reason.

Effect measures (`ComparisonRules.measure`):

- ``SMD`` (Hedges' g): a contrast row gives g from an MD and its SE/CI (pooled SD = SE / sqrt(1/n1 + 1/n2)), or
  an SMD and its SE/CI as printed. Each study may use its own instrument.
- ``MD`` (mean difference, metafor's ``escalc("MD")``: yi = m1 - m2, vi = sd1²/n1 + sd2²/n2): values in the
  instrument's own units, or in points of the outcome's common scale when the review declares one (then a
  study whose instrument states no range cannot be converted and is left out, with the reason). A contrast
  row must be an MD (yi = the MD, vi = SE², both rescaled to the common scale when there is one); an SMD
  contrast cannot enter an MD analysis and is left out ("SMD contrast in an MD analysis"). That every study of
  an MD analysis without a common scale uses one instrument is checked by the analysis
  (`metaexercise.review.analyses`), which refuses it otherwise.

Effect bases (`ComparisonRules.basis`): ``change`` (change scores; from final minus baseline, with an imputed
change SD, for an arm that reports none), ``final`` (final values) or, for MD only (Cochrane Handbook 10.5.2),
``either``: per study, change scores when every arm reports one; else final values when every arm reports one;
else change scores with some computed from final minus baseline. One kind of value serves every arm of a
study, and the `derivation` column says which (and why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from metaexercise.engine import handbook
from metaexercise.engine.effects import escalc
from metaexercise.extraction.instruments import Instrument
from metaexercise.extraction.normalise import burden_difference
from metaexercise.extraction.schema import (
    AsPrintedUse,
    ContrastMeasure,
    Design,
    InclusionStatus,
    ReportedAs,
    ValueKind,
)
from metaexercise.extraction.sheets import Extraction, records

MultiArm = Literal["combine", "split"]
#: With `multiarm="split"`, what a shared arm's n becomes: divided among its comparisons (no participant counted
#: twice, Handbook 23.3.4), or kept whole for a model of the comparisons' sampling covariance (Gleser & Olkin 2009).
SharedN = Literal["divide", "keep"]
#: Effect bases: change scores, final values, or either (change preferred; only for MD).
BASES = ("change", "final", "either")
#: Effect measures: Hedges' g or the raw mean difference (metafor's escalc "SMD" / "MD").
MEASURES = ("SMD", "MD")
#: The sheets' time-point column (in the project's `timepoint_unit`, whatever its name says).
TIMEPOINT = "timepoint_weeks"
#: The time of a row whose time point is blank: a review without time points (one follow-up per study).
#: Time points are >= 0, so this never meets a stated one; it is written back as blank.
UNTIMED = -1.0


def _time(x: dict) -> float | None:
    """A row's time point; UNTIMED for a blank follow-up row, None for a blank baseline row."""
    t = x[TIMEPOINT]
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return None if x["value_kind"] == ValueKind.BASELINE else UNTIMED
    return float(t)
#: Columns of the skipped table: one row per study (arm_id blank) or arm left out, with the reason.
SKIPPED_COLUMNS = ["study_id", "arm_id", "reason"]


#: How a window picks one of the time points inside it (`FollowUpWindow.rule`): the one closest to its target
#: (the default), or the latest or the earliest one (other defensible readings, e.g. for a multiverse).
WINDOW_RULES = ("closest", "latest", "earliest")


@dataclass(frozen=True, slots=True)
class FollowUpWindow:
    """Which time point serves a window: the one closest to `target` within [lower, upper] (`lower_open`
    excludes the lower bound); ties go to the `later` or `earlier` time point. With `rule` "latest" or
    "earliest", the latest or earliest time point inside the window instead (the target then plays no part).
    Units: the project's `timepoint_unit`."""

    target: float
    lower: float
    upper: float
    lower_open: bool = False
    tie: Literal["later", "earlier"] = "later"
    rule: Literal["closest", "latest", "earliest"] = "closest"

    def __post_init__(self) -> None:
        if self.rule not in WINDOW_RULES:
            raise ValueError(f"FollowUpWindow: rule {self.rule!r} is not one of {', '.join(WINDOW_RULES)}")

    def contains(self, t: float) -> bool:
        above = t > self.lower if self.lower_open else t >= self.lower
        return above and t <= self.upper

    def choose(self, times) -> float | None:
        """The time point this window takes from `times`, or None when none lies inside it."""
        inside = sorted({float(w) for w in times if self.contains(float(w))})
        if not inside:
            return None
        if self.rule != "closest":
            return inside[-1] if self.rule == "latest" else inside[0]
        key = (lambda w: (abs(w - self.target), -w)) if self.tie == "later" else (lambda w: (abs(w - self.target), w))
        return min(inside, key=key)


@dataclass(frozen=True, slots=True)
class ComparisonRules:
    """What one review declares that turns sheets into comparisons of one outcome (the review floor builds
    it from `review.yaml`: `metaexercise.review.analyses.rules_for`)."""

    role_experimental: str = "experimental"
    role_control: str = "control"
    #: The outcome's direction of benefit: True when lower values are better.
    lower_is_better: bool = True
    #: The outcome's common scale (min, max) when the review normalises its instruments onto one; None: each
    #: instrument's own units (an SMD needs no common scale).
    common_scale: tuple[float, float] | None = None
    basis: str = "change"
    #: The follow-up windows by id; empty when the review declares none (each study's single time point, or
    #: the one the analysis names).
    windows: Mapping[str, FollowUpWindow] = field(default_factory=dict)
    timepoint_unit: str = "weeks"
    #: The effect measure: "SMD" (Hedges' g) or "MD" (mean difference on one scale).
    measure: str = "SMD"

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"basis {self.basis!r} is not one of {', '.join(BASES)}")
        if self.measure not in MEASURES:
            raise ValueError(f"measure {self.measure!r} is not one of {', '.join(MEASURES)}")
        if self.basis == "either" and self.measure != "MD":
            raise ValueError("basis 'either' mixes change and final values, which only an MD analysis may do "
                             "(Cochrane Handbook 10.5.2)")

    @property
    def common_width(self) -> float | None:
        return None if self.common_scale is None else self.common_scale[1] - self.common_scale[0]

    @property
    def scale_text(self) -> str:
        if self.common_scale is None:
            return "the instrument's own units"
        return f"{self.common_scale[0]:g}-{self.common_scale[1]:g}"


def _blank(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _usable(row: dict) -> bool:
    if row["reported_as"] == ReportedAs.UNCLEAR:
        return False
    use = row["as_printed_use"] or AsPrintedUse.EXCLUDE
    return _blank(row["as_printed"]) or use != AsPrintedUse.EXCLUDE


def _times(values) -> str:
    return ", ".join("unstated" if w == UNTIMED else f"{w:g}" for w in sorted(values))


def select_followup(extraction: Extraction, *, outcome: str, rules: ComparisonRules,
                    statuses: tuple[str, ...] = (InclusionStatus.INCLUDED,),
                    timepoint: float | None = None) -> pd.DataFrame:
    """Per study, the follow-up time points with usable rows for `outcome` (rows kept as printed and
    excluded, or of unclear orientation, do not count) and the one each window takes. Columns: study_id,
    available, unusable, then one column per window of `rules` (NaN: none in the window); without windows,
    `chosen` (the study's single time point, or `timepoint` when the analysis names one) and `why` (when
    none is chosen: what the study has)."""
    keep = set(extraction.studies.loc[extraction.studies["inclusion_status"].isin(statuses), "study_id"])
    usable: dict[str, set[float]] = {}
    unusable: dict[str, set[float]] = {}
    for x in records(extraction.outcomes):
        t = _time(x)
        if x["outcome"] != outcome or x["study_id"] not in keep or not t:  # None or 0: baseline
            continue
        (usable if _usable(x) else unusable).setdefault(x["study_id"], set()).add(t)
    unit = rules.timepoint_unit
    rows = []
    for sid in sorted(set(usable) | set(unusable)):
        times = sorted(usable.get(sid, ()))
        row = {"study_id": sid, "available": _times(times),
               "unusable": _times(unusable.get(sid, set()) - set(times))}
        if rules.windows:
            for name, win in rules.windows.items():
                row[name] = win.choose(times)
        else:
            chosen, why = None, ""
            if timepoint is not None:
                if float(timepoint) in times:
                    chosen = float(timepoint)
                else:
                    why = (f"no usable row at the analysis's time point {timepoint:g} {unit} "
                           f"(has {row['available'] or 'none'})")
            elif len(times) == 1:
                chosen = times[0]
            elif times:
                why = (f"several time points ({row['available']} {unit}) and no window to choose among them: "
                       "name one with the analysis's `timepoint`, or declare windows in review.yaml")
            else:
                why = "no usable time point"
            if chosen is None and row["unusable"]:
                why += f"; rows not usable (as printed / orientation unclear) at {row['unusable']} {unit}"
            row["chosen"], row["why"] = chosen, why
        rows.append(row)
    columns = ["study_id", "available", "unusable", *(rules.windows or ("chosen", "why"))]
    return pd.DataFrame(rows, columns=columns)


@dataclass(slots=True)
class _Arm:
    """One arm's value (change score or final value) on the comparison scale."""

    arm_ids: list[str]
    n: float
    mean: float
    sd: float
    notes: list[str]


def _arm_n(row: dict, arm: dict, notes: list[str]) -> float | None:
    if not _blank(row.get("n")):
        return float(row["n"])
    if not _blank(arm.get("n_randomised")):
        notes.append(f"{arm['arm_id']}: n = randomised n {arm['n_randomised']} (analysed n not reported)")
        return float(arm["n_randomised"])
    return None


def _spread(row: dict, n: float, notes: list[str], aid: str) -> float | None:
    """SD of a group's value from what the row prints (Handbook §6.5.2.2, Wan 2014)."""
    if not _blank(row["sd"]):
        return float(row["sd"])
    level = row["ci_level"] or 95.0
    if not _blank(row["se"]):
        notes.append(f"{aid}: SD from SE x sqrt(n) (Handbook 6.5.2.2)")
        return float(handbook.sd_from_se(row["se"], n))
    if not _blank(row["ci_low"]) and not _blank(row["ci_high"]):
        notes.append(f"{aid}: SD from the {level:g}% CI (Handbook 6.5.2.2, t-based when n < 60)")
        return float(handbook.sd_from_ci(row["ci_low"], row["ci_high"], n, level=level))
    if not _blank(row["median"]) and (not _blank(row["q1"]) or not _blank(row["minimum"])):
        notes.append(f"{aid}: SD from median/IQR/range (Wan et al. 2014)")
        kw = {k: row[k] for k in ("q1", "q3", "minimum", "maximum") if not _blank(row[k])}
        return float(handbook.wan2014(n, median=row["median"], **kw)[1])
    return None


def _centre(row: dict, n: float, notes: list[str], aid: str) -> float | None:
    if not _blank(row["mean"]):
        return float(row["mean"])
    if not _blank(row["median"]) and (not _blank(row["q1"]) or not _blank(row["minimum"])):
        notes.append(f"{aid}: mean from median/IQR/range (Luo et al. 2018)")
        kw = {k: row[k] for k in ("q1", "q3", "minimum", "maximum") if not _blank(row[k])}
        return float(handbook.luo2018(n, median=row["median"], **kw)[0])
    return None


def _difference(d: float, inst: Instrument, reported_as: str, rules: ComparisonRules) -> float:
    """A printed difference in the outcome's declared direction (instrument units)."""
    burden = float(burden_difference(d, inst, reported_as))  # positive = worse
    return burden if rules.lower_is_better else -burden


def _to_scale(value: float, spread: float, inst: Instrument, reported_as: str,
              rules: ComparisonRules) -> tuple[float, float, bool]:
    """A difference (mean, SD) in the outcome's direction; on the common scale when the review declares one
    and the instrument's range is known."""
    d = _difference(value, inst, reported_as, rules)
    width = rules.common_width
    if width is not None and inst.has_range:
        return d * width / inst.width, float(spread * (width / inst.width)), True
    return d, float(spread), False


def _level_to_scale(value: float, spread: float, inst: Instrument,
                    rules: ComparisonRules) -> tuple[float, float, bool]:
    """A level (final value; mean, SD) in the outcome's direction, on the common scale when possible."""
    same = bool(inst.higher_is_worse) == rules.lower_is_better
    if inst.has_range:
        v = value if same else inst.minimum + inst.maximum - value
        width = rules.common_width
        if width is not None:
            lo = rules.common_scale[0]
            return lo + (v - inst.minimum) * width / inst.width, float(spread * (width / inst.width)), True
        return v, float(spread), False
    return (value if same else -value), float(spread), False


def _arm_change(rows: list[dict], arm: dict, inst: Instrument, r: float, r_note: str,
                rules: ComparisonRules, impute: bool = True) -> tuple[_Arm | None, bool, str]:
    """(arm change score, on the common scale?, reason when unusable) from the arm's rows at the chosen time
    point and its baseline row (final minus baseline only when `impute`)."""
    aid = arm["arm_id"]
    notes: list[str] = []
    by_kind = {row["value_kind"]: row for row in rows}
    change = by_kind.get(ValueKind.CHANGE)
    if change is not None and _usable(change):
        n = _arm_n(change, arm, notes)
        if n is None:
            return None, False, "no n"
        mean, sd = _centre(change, n, notes, aid), _spread(change, n, notes, aid)
        if mean is None or sd is None:
            return None, False, "change score without mean or spread (missing SD)"
        if change.get("as_printed_use") == AsPrintedUse.NEGATE:
            mean = -mean
            notes.append(f"{aid}: sign negated (as_printed: {change['as_printed']})")
        m, s, on = _to_scale(mean, sd, inst, change["reported_as"], rules)
        return _Arm([aid], n, m, s, notes), on, ""
    if not impute:
        return None, False, "no usable change score at this time point"
    final, base = by_kind.get(ValueKind.FINAL), by_kind.get(ValueKind.BASELINE)
    if final is not None and base is not None and _usable(final) and _usable(base):
        n = _arm_n(final, arm, notes)
        if n is None:
            return None, False, "no n"
        mf, sf = _centre(final, n, notes, aid), _spread(final, n, notes, aid)
        nb = n if _blank(base.get("n")) else float(base["n"])
        mb, sb = _centre(base, nb, notes, aid), _spread(base, nb, notes, aid)
        if None in (mf, sf, mb, sb):
            return None, False, "final or baseline value without mean or spread (missing SD)"
        sd = float(handbook.change_sd(sb, sf, r))
        notes.append(f"{aid}: change = final - baseline; SD_change from SD_baseline, SD_final and r = {r:.3g} "
                     f"({r_note}; Handbook 6.5.2.8)")
        m, s, on = _to_scale(mf - mb, sd, inst, ReportedAs.SCALE, rules)
        return _Arm([aid], n, m, s, notes), on, ""
    why = "no usable change score (or final and baseline values) at this time point"
    unusable = [x for x in (change, final, base) if x is not None and not _usable(x)]
    if unusable:
        why += "; rows there are not usable (as printed and excluded / orientation unclear)"
    return None, False, why


def _arm_final(rows: list[dict], arm: dict, inst: Instrument, rules: ComparisonRules) -> tuple[_Arm | None, bool, str]:
    """(arm final value, on the common scale?, reason when unusable) at the chosen time point."""
    aid = arm["arm_id"]
    notes: list[str] = []
    final = {row["value_kind"]: row for row in rows}.get(ValueKind.FINAL)
    if final is None:
        why = "no final value at this time point"
        return None, False, why + " (the review pools final values)" if rules.basis == "final" else why
    if not _usable(final):
        return None, False, "final value not usable (as printed and excluded / orientation unclear)"
    n = _arm_n(final, arm, notes)
    if n is None:
        return None, False, "no n"
    mean, sd = _centre(final, n, notes, aid), _spread(final, n, notes, aid)
    if mean is None or sd is None:
        return None, False, "final value without mean or spread (missing SD)"
    m, s, on = _level_to_scale(mean, sd, inst, rules)
    return _Arm([aid], n, m, s, notes), on, ""


#: The data kind (column `data_kind`) of each kind of arm value.
_DATA_KIND = {"change": "arm change scores", "reported change": "arm change scores", "final": "arm final values"}
#: Basis "either": the kinds tried in turn for every arm of a study, and the `derivation` note of each.
_EITHER = (
    ("reported change", "basis either: change scores (every arm reports one; Handbook 10.5.2)"),
    ("final", "basis either: final values (not every arm reports a change score; Handbook 10.5.2)"),
    ("change", "basis either: change scores, some from final minus baseline (not every arm reports a change "
               "score or a final value; Handbook 10.5.2)"),
)


def _arm_values(arms, rows, inst, r, r_note, rules, kind) -> tuple[dict[str, _Arm], list[tuple[str, str]], bool]:
    """({arm_id: arm value}, [(arm_id, reason)] for arms without one, all on the common scale?) for one kind
    of value ("change", "reported change": no final minus baseline, "final")."""
    got: dict[str, _Arm] = {}
    reasons: list[tuple[str, str]] = []
    on_all = True
    for a in arms:
        arm_rows = [x for x in rows if x["arm_id"] == a["arm_id"] and x["value_kind"] != ValueKind.CONTRAST]
        if kind == "final":
            arm, on, why = _arm_final(arm_rows, a, inst, rules)
        else:
            arm, on, why = _arm_change(arm_rows, a, inst, r, r_note, rules, impute=kind == "change")
        if arm is None:
            reasons.append((a["arm_id"], why))
        else:
            got[a["arm_id"]] = arm
            on_all = on_all and on
    return got, reasons, on_all


def _study_values(arms, rows, inst, r, r_note, rules) -> tuple[dict[str, _Arm], list[tuple[str, str]], bool,
                                                               str, str]:
    """(arm values, reasons, all on the common scale?, data kind, derivation note) as the effect basis says.
    Basis "either" uses one kind of value for every arm of the study: the first of `_EITHER` they all have."""
    if rules.basis != "either":
        got, reasons, on_all = _arm_values(arms, rows, inst, r, r_note, rules, rules.basis)
        return got, reasons, on_all, _DATA_KIND[rules.basis], ""
    whys: dict[str, list[str]] = {}
    for kind, note in _EITHER:
        got, reasons, on_all = _arm_values(arms, rows, inst, r, r_note, rules, kind)
        if not reasons:
            return got, [], on_all, _DATA_KIND[kind], note
        if kind != "reported change":
            for aid, why in reasons:
                whys.setdefault(aid, []).append(why)
    # an arm with one kind of value but not the kind its study's other arms share: say why it is not used
    usable_alone = " (it has the other kind; basis either uses one kind of value for every arm of a study)"
    reasons = [(aid, "; ".join(dict.fromkeys(w)) + (usable_alone if len(w) < 2 else "")) for aid, w in whys.items()]
    return {}, reasons, True, _DATA_KIND["change"], ""


def _combine(arms: list[_Arm]) -> _Arm:
    if len(arms) == 1:
        return arms[0]
    n, m, sd = handbook.combine_many([a.n for a in arms], [a.mean for a in arms], [a.sd for a in arms])
    notes = [x for a in arms for x in a.notes]
    ids = [i for a in arms for i in a.arm_ids]
    notes.append(f"arms {' + '.join(ids)} combined (Handbook Table 6.5.a)")
    return _Arm(ids, n, m, sd, notes)


class ChangeCorrelation(NamedTuple):
    """The baseline-final correlation used to impute change SDs, and how it was found."""

    r: float
    how: str


def estimate_change_correlation(extraction: Extraction, *, outcome: str,
                                default: float = handbook.DEFAULT_CORRELATION) -> ChangeCorrelation:
    """(r, how it was found): the baseline-final correlation implied by arms reporting baseline, final and
    change SDs for `outcome` (Handbook §6.5.2.8), else `default`."""
    o = extraction.outcomes
    o = o[o["outcome"] == outcome]
    base = o[o["value_kind"] == ValueKind.BASELINE].set_index(["study_id", "arm_id", "instrument"])["sd"]
    both = o[o["value_kind"].isin([ValueKind.FINAL, ValueKind.CHANGE])].pivot_table(
        index=["study_id", "arm_id", "instrument", TIMEPOINT], columns="value_kind", values="sd",
        aggfunc="first")
    if not {ValueKind.FINAL, ValueKind.CHANGE} <= set(both.columns):
        return ChangeCorrelation(
            default, f"stated default {default:g}: no study reports baseline, final and change SDs")
    both = both.dropna(subset=[ValueKind.FINAL, ValueKind.CHANGE]).reset_index()
    sb = [base.get((s, a, i)) for s, a, i in zip(both["study_id"], both["arm_id"], both["instrument"], strict=True)]
    sb = np.array([np.nan if _blank(x) else float(x) for x in sb])
    r, k = handbook.estimate_correlation(sb, both[ValueKind.FINAL].to_numpy(float),
                                         both[ValueKind.CHANGE].to_numpy(float),
                                         default=default)
    how = f"mean of {k} arm(s) reporting all three SDs" if k else f"stated default {default:g}"
    return ChangeCorrelation(r, how)


def _pick_instrument(rows: list[dict], extraction: Extraction) -> tuple[str, str]:
    pref = [r for r in rows if r["preferred"]]
    pool = pref or rows
    insts = sorted({r["instrument"] for r in pool}, key=lambda i: (extraction.registry.get(i).rank, i))
    why = "preferred" if pref else "registry rank"
    note = f"instrument {insts[0]} ({why}" + (f"; also reported: {', '.join(insts[1:])})" if len(insts) > 1 else ")")
    return insts[0], note


#: The outcomes sheet's per-arm n columns of a contrast row (experimental arm, control arm).
_CONTRAST_N = ("n_individualized", "n_control")


#: Why a contrast row cannot serve an MD analysis.
SMD_IN_MD = "SMD contrast in an MD analysis"


def _contrast_effect(row: dict, inst: Instrument, arms_by_id: dict,
                     rules: ComparisonRules) -> tuple[float, float, str] | str:
    """(effect, vi, derivation) from a contrast row in the review's measure (Hedges' g for SMD, the MD on the
    analysis's scale for MD), or the reason it cannot give one."""
    if rules.measure == "MD" and row["contrast_measure"] == ContrastMeasure.SMD:
        return SMD_IN_MD + " (an SMD cannot be put back on a scale of points)"
    notes = []
    n1, n2 = row[_CONTRAST_N[0]], row[_CONTRAST_N[1]]
    if _blank(n1) or _blank(n2):
        a1, a2 = arms_by_id.get(row["arm_id"], {}), arms_by_id.get(row["comparator_arm_id"], {})
        n1, n2 = a1.get("n_randomised"), a2.get("n_randomised")
        if _blank(n1) or _blank(n2):
            return "contrast without n or spread"
        notes.append("n = randomised n per arm (analysed n not reported)")
    n1, n2 = float(n1), float(n2)
    level = row["ci_level"] or 95.0
    est = float(row["mean"]) if not _blank(row["mean"]) else None
    if est is None:
        return "contrast without n or spread"
    if not _blank(row["se"]):
        se = float(row["se"])
    elif not _blank(row["ci_low"]) and not _blank(row["ci_high"]):
        se = float(handbook.se_diff_from_ci(row["ci_low"], row["ci_high"], n1, n2, level=level))
        notes.append(f"SE from the {level:g}% CI (Handbook 6.5.2.3)")
    elif not _blank(row["t_value"]):
        se = float(handbook.se_diff_from_t(est, row["t_value"]))
        notes.append("SE from t (Handbook 6.5.2.3)")
    elif not _blank(row["p_value"]):
        se = float(handbook.se_diff_from_p(est, row["p_value"], n1, n2))
        notes.append("SE from p (Handbook 6.5.2.3)")
    else:
        return "contrast without n or spread"
    if row.get("as_printed_use") == AsPrintedUse.NEGATE:
        est = -est
        notes.append(f"sign negated (as_printed: {row['as_printed']})")
    diff = _difference(est, inst, row["reported_as"], rules)
    if rules.measure == "MD":
        width = rules.common_width
        if width is not None and inst.has_range:
            f = width / inst.width
            diff, se = diff * f, se * f
            notes.append(f"MD and SE x {f:.4g} onto the {rules.scale_text} scale")
        notes.append("MD as printed; vi = SE^2")
        return diff, se**2, "; ".join(notes)
    if row["contrast_measure"] == ContrastMeasure.SMD:
        notes.append("SMD as printed; vi = SE^2")
        return diff, se**2, "; ".join(notes)
    sdp = float(handbook.sd_from_se_diff(se, n1, n2))
    notes.append(f"pooled SD {sdp:.4g} = SE / sqrt(1/n1 + 1/n2) (Handbook 6.5.2.3); Hedges' g from MD")
    es = escalc("SMD", m1i=[diff], sd1i=[sdp], n1i=[n1], m2i=[0.0], sd2i=[sdp], n2i=[n2])
    return float(es.yi[0]), float(es.vi[0]), "; ".join(notes)


def build_comparisons(extraction: Extraction, *, outcome: str, comparators: set[str], rules: ComparisonRules,
                      window: str | None = None, timepoint: float | None = None, multiarm: MultiArm = "combine",
                      statuses: tuple[str, ...] = (InclusionStatus.INCLUDED,),
                      correlation: float | None = None, shared_n: SharedN = "divide") -> pd.DataFrame:
    """One row per study (per experimental-control pair with `multiarm="split"`, where a shared arm's n is
    divided among its comparisons), no participant counted twice, for control arms whose `control_type` is
    in `comparators`. With `multiarm="split"` and `shared_n="keep"` a shared arm keeps its whole n on each of
    its comparisons: participants then count more than once, so the comparisons are dependent and only a model
    of their sampling covariance may pool them (`metaexercise.review.dependence`). `window` names one of
    `rules.windows` (required exactly when the review declares windows); without windows each study's single time point serves, or `timepoint` when given.
    Studies and arms left out are listed in `result.attrs["skipped"]` (`SKIPPED_COLUMNS`) with the reason;
    arms combined into one group are listed there too."""
    if rules.windows and window not in rules.windows:
        raise ValueError(f"window {window!r} is not one of {', '.join(rules.windows)}")
    if not rules.windows and window is not None:
        raise ValueError(f"window {window!r}: the review declares no follow-up windows")
    if multiarm not in ("combine", "split"):
        raise ValueError(f"multiarm {multiarm!r} is not 'combine' or 'split'")
    if shared_n not in ("divide", "keep"):
        raise ValueError(f"shared_n {shared_n!r} is not 'divide' or 'keep'")
    follow = select_followup(extraction, outcome=outcome, rules=rules, statuses=statuses, timepoint=timepoint)
    if correlation is None:
        r, r_note = estimate_change_correlation(extraction, outcome=outcome)
    else:
        r, r_note = correlation, "given"
    studies = {s["study_id"]: s for s in records(extraction.studies)}
    arms_by_study: dict[str, list[dict]] = {}
    for a in records(extraction.arms):
        arms_by_study.setdefault(a["study_id"], []).append(a)
    rows_by_study: dict[str, list[dict]] = {}
    pairs_by_study: dict[str, set] = {}
    for x in records(extraction.outcomes):
        if x["value_kind"] == ValueKind.CONTRAST:
            pairs_by_study.setdefault(x["study_id"], set()).add((x["arm_id"], x["comparator_arm_id"]))
        if x["outcome"] == outcome:
            rows_by_study.setdefault(x["study_id"], []).append(x)
    study_columns = [c for c in extraction.studies.columns if c not in _NOT_COPIED]
    unit = rules.timepoint_unit
    rows, skipped = [], []
    for f in records(follow):
        sid = f["study_id"]
        tp = f[window] if window is not None else f["chosen"]
        if tp is None or (isinstance(tp, float) and math.isnan(tp)):
            if window is not None:
                why = f"no usable time point in the {window} window (has {f['available'] or 'none'}"
                why += f" {unit}" if f["available"] else ""
                why += (f"; rows not usable (as printed / orientation unclear) at {f['unusable']} {unit})"
                        if f["unusable"] else ")")
            else:
                why = f["why"]
            skipped.append((sid, "", why))
            continue
        made, skips = _study_comparisons(extraction, studies[sid], arms_by_study.get(sid, []),
                                         rows_by_study[sid], pairs_by_study.get(sid, set()), tp, comparators,
                                         multiarm, r, r_note, rules, study_columns, shared_n)
        rows += made
        skipped += [(sid, arm, why) for arm, why in skips]
    df = pd.DataFrame(rows, columns=[*_COLUMNS, *(c for c in study_columns if c not in _COLUMNS)])
    df.attrs["skipped"] = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
    return df


_COLUMNS = [
    "study_id", "label", "year", "comparator", TIMEPOINT, "instrument", "on_common_scale", "arms",
    "n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i", "yi", "vi", "data_kind", "derivation", "source", "location",
    "control_matched", "n_total",
]
#: Columns of the studies sheet not copied onto comparisons (provenance; identity is copied as label/year).
_NOT_COPIED = {"study_id", "first_author", "source", "location", "extractor", "notes", "source_row", "label",
               *_COLUMNS}


def _study_comparisons(extraction, study, arms, orows, named_pairs, tp, comparators, multiarm, r, r_note,
                       rules: ComparisonRules, study_columns, shared_n: SharedN = "divide"):
    """(comparison rows, [(arm_id or "", reason)] for what was left out or combined)."""
    at_tp = [x for x in orows if _time(x) == tp]
    if not at_tp:
        return [], [("", "no rows at the chosen time point")]
    if rules.measure == "MD" and rules.common_scale is not None:
        # an MD pools points of the common scale: only an instrument with a stated range can be converted
        ranged = [x for x in at_tp if extraction.registry.get(x["instrument"]).has_range]
        if not ranged:
            insts = ", ".join(sorted({x["instrument"] for x in at_tp}))
            return [], [("", f"instrument {insts} states no range: its values cannot be put on the common "
                             f"scale {rules.scale_text} that an MD analysis pools")]
        at_tp = ranged
    inst_id, inst_note = _pick_instrument(at_tp, extraction)
    inst = extraction.registry.get(inst_id)
    if not inst.has_range and rules.common_scale is not None:
        inst_note += f"; its range is not stated: SMD only, no {rules.scale_text} conversion"
    rows = [x for x in orows if x["instrument"] == inst_id
            and (_time(x) == tp or x["value_kind"] == ValueKind.BASELINE)]
    ind = [a for a in arms if a["arm_role"] == rules.role_experimental]
    ctl = [a for a in arms if a["arm_role"] == rules.role_control and a["control_type"] in comparators]
    if not ind or not ctl:
        return [], [("", f"no {rules.role_experimental} arm or no {rules.role_control} arm of type "
                         f"{', '.join(sorted(comparators))}")]
    base = {
        "study_id": study["study_id"], "label": " ".join(str(v) for v in (study["first_author"], study["year"]) if v is not None),
        "year": study["year"],
        TIMEPOINT: None if tp == UNTIMED else tp, "instrument": inst_id, **{k: study.get(k) for k in study_columns},
    }
    got, reasons, on_all, data_kind, basis_note = _study_values(ind + ctl, rows, inst, r, r_note, rules)
    if basis_note:
        inst_note += f"; {basis_note}"
    if all(a["arm_id"] in got for a in ind + ctl):
        if study.get("design") == Design.CLUSTER:
            for arm in got.values():
                de = float(handbook.design_effect(study["mean_cluster_size"], study["icc"]))
                arm.notes.append(f"{'+'.join(arm.arm_ids)}: effective n = n / {de:.3g} (design effect, Handbook 23.1.4)")
                arm.n = arm.n / de
        pairs = [(ind, ctl)] if multiarm == "combine" else _split_pairs(named_pairs, ind, ctl)
        uses = {a["arm_id"]: sum(a in p[0] or a in p[1] for p in pairs) for a in ind + ctl}
        out, notes = [], []
        for gi, gc in pairs:
            parts = []
            for g in (gi, gc):
                arms_ = []
                for a in g:
                    arm = got[a["arm_id"]]
                    if uses[a["arm_id"]] > 1 and shared_n == "divide":
                        arm = _Arm(arm.arm_ids, arm.n / uses[a["arm_id"]], arm.mean, arm.sd,
                                   [*arm.notes, f"{a['arm_id']}: shared arm, n divided by {uses[a['arm_id']]} "
                                                "(Handbook 23.3.4)"])
                    elif uses[a["arm_id"]] > 1:
                        arm = _Arm(arm.arm_ids, arm.n, arm.mean, arm.sd,
                                   [*arm.notes, f"{a['arm_id']}: shared by {uses[a['arm_id']]} comparisons, n kept "
                                                "(their covariance is modelled)"])
                    arms_.append(arm)
                parts.append(_combine(arms_))
                if len(arms_) > 1:
                    ids = [i for x in arms_ for i in x.arm_ids]
                    notes.append(("+".join(ids), f"multi-arm: arms {' + '.join(ids)} combined into one group "
                                                 "(Handbook Table 6.5.a)"))
            one, two = parts
            out.append({
                **base, "comparator": ", ".join(sorted({a["control_type"] for a in gc})),
                "control_matched": _matched(gc), "on_common_scale": on_all,
                "arms": f"{'+'.join(one.arm_ids)} vs {'+'.join(two.arm_ids)}",
                "n1i": one.n, "m1i": one.mean, "sd1i": one.sd, "n2i": two.n, "m2i": two.mean, "sd2i": two.sd,
                "yi": np.nan, "vi": np.nan, "n_total": one.n + two.n,
                "data_kind": data_kind, "derivation": "; ".join([inst_note, *one.notes, *two.notes]),
                "source": _join(x["source"] for x in rows), "location": _join(x["location"] for x in rows),
            })
        return out, notes
    return _contrast_rows(base, rows, ind, ctl, inst, inst_note, arms, reasons, rules)


def _split_pairs(named, ind, ctl):
    """Experimental-control pairs for `multiarm="split"`: the pairs the study's contrast rows name (a
    stratified trial compares each arm with its own control), else every pair."""
    pairs = [([i], [c]) for i in ind for c in ctl if (i["arm_id"], c["arm_id"]) in named]
    return pairs or [([i], [c]) for i in ind for c in ctl]


def _contrast_rows(base, rows, ind, ctl, inst, inst_note, arms, reasons, rules):
    ids_i, ids_c = {a["arm_id"] for a in ind}, {a["arm_id"] for a in ctl}
    cons = [x for x in rows if x["value_kind"] == ValueKind.CONTRAST and x["arm_id"] in ids_i
            and x["comparator_arm_id"] in ids_c]
    usable = [x for x in cons if _usable(x)]
    if not usable:
        out = list(reasons) or [("", "no arm data")]
        if cons:
            out.append(("", "contrasts not usable (as printed / orientation unclear)"))
        return [], out
    used_arms = [a for x in usable for a in (x["arm_id"], x["comparator_arm_id"])]
    if len(used_arms) != len(set(used_arms)):
        return [], [*reasons, ("", "several contrasts share an arm; contrast-level data cannot be combined")]
    arms_by_id = {a["arm_id"]: a for a in arms}
    effects = [(x, _contrast_effect(x, inst, arms_by_id, rules)) for x in usable]
    # the contrasts the arms' reasons may point to: only those that give an effect (a rejected contrast is
    # listed with its own reason)
    used = [x for x, eff in effects if not isinstance(eff, str)]
    out = []
    skips = [(aid, f"{why}; a between-group contrast is used instead") for aid, why in reasons
             if any(aid in (x["arm_id"], x["comparator_arm_id"]) for x in used)]
    skips += [(aid, why) for aid, why in reasons
              if not any(aid in (x["arm_id"], x["comparator_arm_id"]) for x in used)]
    for x, eff in effects:
        if isinstance(eff, str):
            skips.append((f"{x['arm_id']} vs {x['comparator_arm_id']}", eff))
            continue
        g, v, how = eff
        if base.get("design") == Design.CLUSTER:
            how += "; cluster trial: the contrast's CI is taken as reported (assumed to allow for clustering)"
        ctrl = arms_by_id[x["comparator_arm_id"]]
        n1, n2 = _num(x[_CONTRAST_N[0]]), _num(x[_CONTRAST_N[1]])
        out.append({
            **base, "comparator": ctrl["control_type"], "control_matched": ctrl["control_matched"],
            "on_common_scale": inst.has_range and rules.common_scale is not None,
            "arms": f"{x['arm_id']} vs {x['comparator_arm_id']}",
            "n1i": n1, "m1i": np.nan, "sd1i": np.nan, "n2i": n2, "m2i": np.nan, "sd2i": np.nan, "yi": g, "vi": v,
            "n_total": n1 + n2,
            "data_kind": f"contrast {x['contrast_measure']}", "derivation": f"{inst_note}; {how}",
            "source": x["source"], "location": x["location"],
        })
    return out, skips


def _num(v) -> float:
    return np.nan if _blank(v) else float(v)


def _matched(group) -> bool | None:
    vals = [a["control_matched"] for a in group if not _blank(a["control_matched"])]
    return None if not vals else all(vals)


def _join(values) -> str:
    seen = []
    for v in values:
        if v and v not in seen:
            seen.append(v)
    return " ; ".join(seen)


def derivation_log(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Every imputation and choice behind a comparisons table, one row per step (for the book's list of
    derived numbers): study_id, label, arms, step."""
    rows = [
        (c["study_id"], c["label"], c["arms"], step.strip())
        for c in records(comparisons)
        for step in str(c["derivation"] or "").split("; ")
        if step.strip()
    ]
    return pd.DataFrame(rows, columns=["study_id", "label", "arms", "step"])
