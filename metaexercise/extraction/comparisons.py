"""From extraction sheets to study comparisons: pick the follow-up time point, the instrument and the arms,
turn what each paper prints into change scores on the review's 0-10 scale, and make sure no participant
is counted twice in one analysis.

Sign convention (the review's): change = follow-up minus baseline on a scale where 0 = no burden, so a
negative change is an improvement and an SMD < 0 favours the individualized arm. Contrast-only studies
get `yi`/`vi` (Hedges' g from an MD and its CI, or an SMD and its CI); arm-level studies leave `yi`/`vi`
NaN for `escalc("SMD")` downstream. Column `derivation` records every imputation made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from metaexercise.engine import handbook
from metaexercise.engine.effects import escalc
from metaexercise.extraction.instruments import Instrument
from metaexercise.extraction.normalise import burden_difference, spread_to_0_10
from metaexercise.extraction.schema import (
    ArmRole,
    AsPrintedUse,
    ContrastMeasure,
    Design,
    InclusionStatus,
    ReportedAs,
    ValueKind,
)
from metaexercise.extraction.sheets import Extraction, records

MultiArm = Literal["combine", "split"]


class Window(StrEnum):
    """A follow-up window of the review: short term (closest to 12 weeks) or long term (closest to 12
    months); `WINDOWS` says which time points each takes."""

    SHORT = "short"
    LONG = "long"


@dataclass(frozen=True, slots=True)
class FollowUpWindow:
    """Which time point serves a window: the one closest to `target` weeks within [lower, upper] weeks
    (`lower_open` excludes the lower bound); ties go to the `later` or `earlier` time point.
    Defaults follow the review ("closest to 12 weeks" short term, "closest to 52 weeks" long term) with
    the two windows split at 32 weeks, the midpoint of the targets, so no time point serves both."""

    target: float
    lower: float
    upper: float
    lower_open: bool = False
    tie: Literal["later", "earlier"] = "later"

    def contains(self, weeks: float) -> bool:
        above = weeks > self.lower if self.lower_open else weeks >= self.lower
        return above and weeks <= self.upper

    def choose(self, weeks) -> float | None:
        """The time point this window takes from `weeks`, or None when none lies inside it."""
        inside = sorted({float(w) for w in weeks if self.contains(float(w))})
        if not inside:
            return None
        key = (lambda w: (abs(w - self.target), -w)) if self.tie == "later" else (lambda w: (abs(w - self.target), w))
        return min(inside, key=key)


WINDOWS: dict[str, FollowUpWindow] = {
    Window.SHORT: FollowUpWindow(target=12, lower=1, upper=32),
    Window.LONG: FollowUpWindow(target=52, lower=32, upper=156, lower_open=True),
}

#: Moderators copied from `studies` onto every comparison.
STUDY_MODERATORS = (
    "design", "intervention_type", "psych_component", "lbp_duration_required_weeks", "lbp_duration_actual_weeks",
    "training_weeks", "sessions_per_week", "minutes_per_session", "mean_age", "percent_female", "rob_overall",
    "inclusion_status", "synthetic",
)


def _blank(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _usable(row: dict) -> bool:
    if row["reported_as"] == ReportedAs.UNCLEAR:
        return False
    use = row["as_printed_use"] or AsPrintedUse.EXCLUDE
    return _blank(row["as_printed"]) or use != AsPrintedUse.EXCLUDE


def select_followup(extraction: Extraction, *, outcome: str, windows: dict[str, FollowUpWindow] | None = None,
                    statuses: tuple[str, ...] = (InclusionStatus.INCLUDED,)) -> pd.DataFrame:
    """Per study, the follow-up time points with usable rows for `outcome` (rows kept as printed and
    excluded, or of unclear orientation, do not count) and the one each window takes. Columns:
    study_id, available_weeks, unusable_weeks, short_weeks, long_weeks (NaN: none in the window)."""
    windows = windows or WINDOWS
    keep = set(extraction.studies.loc[extraction.studies["inclusion_status"].isin(statuses), "study_id"])
    usable: dict[str, set[float]] = {}
    unusable: dict[str, set[float]] = {}
    for x in records(extraction.outcomes):
        if x["outcome"] != outcome or x["study_id"] not in keep or not x["timepoint_weeks"]:
            continue
        (usable if _usable(x) else unusable).setdefault(x["study_id"], set()).add(float(x["timepoint_weeks"]))
    rows = []
    for sid in sorted(set(usable) | set(unusable)):
        weeks = sorted(usable.get(sid, ()))
        row = {"study_id": sid, "available_weeks": ", ".join(f"{w:g}" for w in weeks),
               "unusable_weeks": ", ".join(f"{w:g}" for w in sorted(unusable.get(sid, set()) - set(weeks)))}
        for name, win in windows.items():
            row[f"{name}_weeks"] = win.choose(weeks)
        rows.append(row)
    columns = ["study_id", "available_weeks", "unusable_weeks", *(f"{n}_weeks" for n in windows)]
    return pd.DataFrame(rows, columns=columns)


@dataclass(slots=True)
class _Arm:
    """One arm's change score on the comparison scale."""

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


def _to_scale(value: float, spread: float, inst: Instrument, reported_as: str) -> tuple[float, float, bool]:
    """A change (mean, SD) as burden change; on 0-10 when the instrument's range is known."""
    d = burden_difference(value, inst, reported_as)
    if inst.has_range:
        return float(d) * 10 / inst.width, float(spread_to_0_10(spread, inst)), True
    return float(d), float(spread), False


def _arm_change(rows: list[dict], arm: dict, inst: Instrument, r: float, r_note: str) -> tuple[_Arm | None, bool, str]:
    """(arm change score, on 0-10?, reason when unusable) from the arm's rows at the chosen time point
    and its baseline row."""
    aid = arm["arm_id"]
    notes: list[str] = []
    by_kind = {row["value_kind"]: row for row in rows}
    change = by_kind.get(ValueKind.CHANGE)
    if change is not None and _usable(change):
        n = _arm_n(change, arm, notes)
        if n is None:
            return None, False, f"{aid}: no n"
        mean, sd = _centre(change, n, notes, aid), _spread(change, n, notes, aid)
        if mean is None or sd is None:
            return None, False, f"{aid}: change score without mean or spread"
        if change.get("as_printed_use") == AsPrintedUse.NEGATE:
            mean = -mean
            notes.append(f"{aid}: sign negated (as_printed: {change['as_printed']})")
        m, s, on = _to_scale(mean, sd, inst, change["reported_as"])
        return _Arm([aid], n, m, s, notes), on, ""
    final, base = by_kind.get(ValueKind.FINAL), by_kind.get(ValueKind.BASELINE)
    if final is not None and base is not None and _usable(final) and _usable(base):
        n = _arm_n(final, arm, notes)
        if n is None:
            return None, False, f"{aid}: no n"
        mf, sf = _centre(final, n, notes, aid), _spread(final, n, notes, aid)
        nb = n if _blank(base.get("n")) else float(base["n"])
        mb, sb = _centre(base, nb, notes, aid), _spread(base, nb, notes, aid)
        if None in (mf, sf, mb, sb):
            return None, False, f"{aid}: final or baseline value without mean or spread"
        sd = float(handbook.change_sd(sb, sf, r))
        notes.append(f"{aid}: change = final - baseline; SD_change from SD_baseline, SD_final and r = {r:.3g} "
                     f"({r_note}; Handbook 6.5.2.8)")
        m, s, on = _to_scale(mf - mb, sd, inst, ReportedAs.SCALE)
        return _Arm([aid], n, m, s, notes), on, ""
    return None, False, f"{aid}: no usable change score (or final and baseline values) at this time point"


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
        index=["study_id", "arm_id", "instrument", "timepoint_weeks"], columns="value_kind", values="sd",
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


def _contrast_effect(row: dict, inst: Instrument, arms_by_id: dict) -> tuple[float, float, str] | None:
    """(Hedges' g, vi, derivation) from a contrast row, or None when it cannot give an SMD."""
    notes = []
    n1, n2 = row["n_individualized"], row["n_control"]
    if _blank(n1) or _blank(n2):
        a1, a2 = arms_by_id.get(row["arm_id"], {}), arms_by_id.get(row["comparator_arm_id"], {})
        n1, n2 = a1.get("n_randomised"), a2.get("n_randomised")
        if _blank(n1) or _blank(n2):
            return None
        notes.append("n = randomised n per arm (analysed n not reported)")
    n1, n2 = float(n1), float(n2)
    level = row["ci_level"] or 95.0
    est = float(row["mean"]) if not _blank(row["mean"]) else None
    if est is None:
        return None
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
        return None
    if row.get("as_printed_use") == AsPrintedUse.NEGATE:
        est = -est
        notes.append(f"sign negated (as_printed: {row['as_printed']})")
    diff = float(burden_difference(est, inst, row["reported_as"]))
    if row["contrast_measure"] == ContrastMeasure.SMD:
        notes.append("SMD as printed; vi = SE^2")
        return diff, se**2, "; ".join(notes)
    sdp = float(handbook.sd_from_se_diff(se, n1, n2))
    notes.append(f"pooled SD {sdp:.4g} = SE / sqrt(1/n1 + 1/n2) (Handbook 6.5.2.3); Hedges' g from MD")
    es = escalc("SMD", m1i=[diff], sd1i=[sdp], n1i=[n1], m2i=[0.0], sd2i=[sdp], n2i=[n2])
    return float(es.yi[0]), float(es.vi[0]), "; ".join(notes)


def build_comparisons(extraction: Extraction, *, outcome: str, window: Window, comparators: set[str],
                      multiarm: MultiArm = "combine", windows: dict[str, FollowUpWindow] | None = None,
                      statuses: tuple[str, ...] = (InclusionStatus.INCLUDED,),
                      correlation: float | None = None) -> pd.DataFrame:
    """One row per study (per individualized-control pair with `multiarm="split"`, where a shared arm's n
    is divided among its comparisons), no participant counted twice. Studies that give nothing usable are listed in `result.attrs["skipped"]` with the reason."""
    if window not in (windows or WINDOWS):
        raise ValueError(f"window {window!r} is not one of {', '.join(windows or WINDOWS)}")
    if multiarm not in ("combine", "split"):
        raise ValueError(f"multiarm {multiarm!r} is not 'combine' or 'split'")
    follow = select_followup(extraction, outcome=outcome, windows=windows, statuses=statuses)
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
    rows, skipped = [], []
    for f in records(follow):
        sid, tp = f["study_id"], f[f"{window}_weeks"]
        if tp is None or (isinstance(tp, float) and math.isnan(tp)):
            why = f"no usable time point in the {window} window (has {f['available_weeks'] or 'none'}"
            why += f"; rows not usable (as printed / orientation unclear) at {f['unusable_weeks']})" \
                if f["unusable_weeks"] else ")"
            skipped.append((sid, why))
            continue
        made, why = _study_comparisons(extraction, studies[sid], arms_by_study.get(sid, []), rows_by_study[sid],
                                       pairs_by_study.get(sid, set()), tp, comparators, multiarm, r, r_note)
        rows += made
        if not made:
            skipped.append((sid, why))
    df = pd.DataFrame(rows, columns=_COLUMNS)
    df.attrs["skipped"] = pd.DataFrame(skipped, columns=["study_id", "reason"])
    return df


_COLUMNS = [
    "study_id", "label", "year", "comparator", "timepoint_weeks", "instrument", "on_0_10", "arms",
    "n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i", "yi", "vi", "data_kind", "derivation", "source", "location",
    "control_matched", "n_total", *STUDY_MODERATORS,
]


def _study_comparisons(extraction, study, arms, orows, named_pairs, tp, comparators, multiarm, r, r_note):
    at_tp = [x for x in orows if x["timepoint_weeks"] == tp]
    if not at_tp:
        return [], "no rows at the chosen time point"
    inst_id, inst_note = _pick_instrument(at_tp, extraction)
    inst = extraction.registry.get(inst_id)
    if not inst.has_range:
        inst_note += "; its range is not stated: SMD only, no 0-10 (VAS) conversion"
    rows = [x for x in orows if x["instrument"] == inst_id
            and (x["timepoint_weeks"] == tp or x["value_kind"] == ValueKind.BASELINE)]
    ind = [a for a in arms if a["arm_role"] == ArmRole.INDIVIDUALIZED]
    ctl = [a for a in arms if a["arm_role"] == ArmRole.CONTROL and a["control_type"] in comparators]
    if not ind or not ctl:
        return [], f"no individualized arm or no control arm of type {', '.join(sorted(comparators))}"
    base = {
        "study_id": study["study_id"], "label": f"{study['first_author']} {study['year']}", "year": study["year"],
        "timepoint_weeks": tp, "instrument": inst_id, **{k: study.get(k) for k in STUDY_MODERATORS},
    }
    got: dict[str, _Arm] = {}
    reasons = []
    on_all = True
    for a in ind + ctl:
        arm_rows = [x for x in rows if x["arm_id"] == a["arm_id"] and x["value_kind"] != ValueKind.CONTRAST]
        arm, on, why = _arm_change(arm_rows, a, inst, r, r_note)
        if arm is None:
            reasons.append(why)
        else:
            got[a["arm_id"]] = arm
            on_all = on_all and on
    if all(a["arm_id"] in got for a in ind + ctl):
        if study.get("design") == Design.CLUSTER:
            for arm in got.values():
                de = float(handbook.design_effect(study["mean_cluster_size"], study["icc"]))
                arm.notes.append(f"{'+'.join(arm.arm_ids)}: effective n = n / {de:.3g} (design effect, Handbook 23.1.4)")
                arm.n = arm.n / de
        pairs = [(ind, ctl)] if multiarm == "combine" else _split_pairs(named_pairs, ind, ctl)
        uses = {a["arm_id"]: sum(a in p[0] or a in p[1] for p in pairs) for a in ind + ctl}
        out = []
        for gi, gc in pairs:
            parts = []
            for g in (gi, gc):
                arms_ = []
                for a in g:
                    arm = got[a["arm_id"]]
                    if uses[a["arm_id"]] > 1:
                        arm = _Arm(arm.arm_ids, arm.n / uses[a["arm_id"]], arm.mean, arm.sd,
                                   [*arm.notes, f"{a['arm_id']}: shared arm, n divided by {uses[a['arm_id']]} "
                                                "(Handbook 23.3.4)"])
                    arms_.append(arm)
                parts.append(_combine(arms_))
            one, two = parts
            out.append({
                **base, "comparator": ", ".join(sorted({a["control_type"] for a in gc})),
                "control_matched": _matched(gc), "on_0_10": on_all,
                "arms": f"{'+'.join(one.arm_ids)} vs {'+'.join(two.arm_ids)}",
                "n1i": one.n, "m1i": one.mean, "sd1i": one.sd, "n2i": two.n, "m2i": two.mean, "sd2i": two.sd,
                "yi": np.nan, "vi": np.nan, "n_total": one.n + two.n,
                "data_kind": "arm change scores", "derivation": "; ".join([inst_note, *one.notes, *two.notes]),
                "source": _join(x["source"] for x in rows), "location": _join(x["location"] for x in rows),
            })
        return out, ""
    return _contrast_rows(base, rows, ind, ctl, inst, inst_note, arms, reasons)


def _split_pairs(named, ind, ctl):
    """Individualized-control pairs for `multiarm="split"`: the pairs the study's contrast rows name (a
    stratified trial such as Heinrich 2009 compares each arm with its own control), else every pair."""
    pairs = [([i], [c]) for i in ind for c in ctl if (i["arm_id"], c["arm_id"]) in named]
    return pairs or [([i], [c]) for i in ind for c in ctl]


def _contrast_rows(base, rows, ind, ctl, inst, inst_note, arms, reasons):
    ids_i, ids_c = {a["arm_id"] for a in ind}, {a["arm_id"] for a in ctl}
    cons = [x for x in rows if x["value_kind"] == ValueKind.CONTRAST and x["arm_id"] in ids_i
            and x["comparator_arm_id"] in ids_c]
    usable = [x for x in cons if _usable(x)]
    if not usable:
        why = "; ".join(reasons) or "no arm data"
        return [], why + ("; contrasts not usable (as printed / orientation unclear)" if cons else "")
    used_arms = [a for x in usable for a in (x["arm_id"], x["comparator_arm_id"])]
    if len(used_arms) != len(set(used_arms)):
        return [], "several contrasts share an arm; contrast-level data cannot be combined"
    arms_by_id = {a["arm_id"]: a for a in arms}
    out = []
    for x in usable:
        eff = _contrast_effect(x, inst, arms_by_id)
        if eff is None:
            reasons.append(f"contrast {x['arm_id']} vs {x['comparator_arm_id']}: no n or no spread")
            continue
        g, v, how = eff
        if base.get("design") == Design.CLUSTER:
            how += "; cluster trial: the contrast's CI is taken as reported (assumed to allow for clustering)"
        ctrl = arms_by_id[x["comparator_arm_id"]]
        out.append({
            **base, "comparator": ctrl["control_type"], "control_matched": ctrl["control_matched"],
            "on_0_10": inst.has_range, "arms": f"{x['arm_id']} vs {x['comparator_arm_id']}",
            "n1i": _num(x["n_individualized"]), "m1i": np.nan, "sd1i": np.nan, "n2i": _num(x["n_control"]),
            "m2i": np.nan, "sd2i": np.nan, "yi": g, "vi": v,
            "n_total": _num(x["n_individualized"]) + _num(x["n_control"]),
            "data_kind": f"contrast {x['contrast_measure']}", "derivation": f"{inst_note}; {how}",
            "source": x["source"], "location": x["location"],
        })
    return out, "; ".join(reasons)


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
