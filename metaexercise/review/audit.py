"""Audit published numbers for internal consistency, with the arithmetic behind every finding.

Every printed number stands for an interval of true values (half a unit in its last printed digit; see
`metaexercise.review.published.Printed`). A check reports a finding only when no combination of true values in
those intervals satisfies the rule, so a discrepancy that rounding can explain is never a finding.

Severity: ``error`` when the printed numbers cannot all be right (an estimate outside its own CI, a
percentage that is not its count over its denominator, two places of the paper giving different values);
``warning`` when they are suspicious but an unstated reason could explain them (an asymmetric CI, a p-value
that does not follow from the CI, the same k for disjoint comparator sets, parts that do not add up).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.atomic import write_text
from metaexercise.errors import SpecError
from metaexercise.extraction.sheets import Severity
from metaexercise.review.published import (
    BiasTest,
    Claim,
    Entry,
    EntryKind,
    Place,
    Printed,
    Registry,
    RelationKind,
    Scale,
    load_published,
)
from metaexercise.spreadsheet_safety import csv_text
from metaexercise.vocabulary import codes

log = logging.getLogger(__name__)

SEVERITIES = codes(Severity)
Z975 = stats.norm.ppf(0.975)


@dataclass(frozen=True, slots=True)
class Finding:
    """One audit result: what (label), which rule (check), how bad (severity) and the arithmetic (detail)."""

    label: str
    check: str
    severity: Severity
    detail: str


FINDING_COLUMNS = ("label", "check", "severity", "detail")


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with columns label, check, severity, detail."""
    rows = [{**asdict(f), "severity": str(f.severity)} for f in findings]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _iv(p: Printed) -> str:
    """The interval a printed number stands for, e.g. "-0.18 -> [-0.185, -0.175]"."""
    if p.relation != "=":
        return f"{p.relation} {p.text}"
    if p.half_unit == 0:
        return p.text
    return f"{p.text} -> [{_fmt(p.lo)}, {_fmt(p.hi)}]"


def _disjoint(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    return a_hi < b_lo or b_hi < a_lo


def _scale(e: Entry) -> str:
    return e.scale or Scale.DIFFERENCE


def _log_interval(p: Printed) -> tuple[float, float] | None:
    """(lo, hi) of log(p) over its rounding interval; None if the interval reaches zero."""
    if p.lo <= 0:
        return None
    return math.log(p.lo), math.log(p.hi)


# --------------------------------------------------------------------------- checks on one effect
def check_ci(entries: Iterable[Entry]) -> list[Finding]:
    """CI order, estimate inside its CI, and estimate at the centre of a symmetric Wald CI.

    A Wald CI is estimate ± z·SE, so estimate = (lb + ub) / 2 on the scale the model was fitted on: the SMD/MD
    scale, or the log scale for ratio measures (Cochrane Handbook §6.3.1 and §6.5.2.3).
    """
    out = []
    for e in entries:
        if e.kind != EntryKind.EFFECT:
            continue
        est, lb, ub = e.estimate, e.ci_lb, e.ci_ub
        if lb.lo > ub.hi:
            out.append(Finding(e.id, "ci_order", Severity.ERROR,
                               f"lower bound {lb.text} > upper bound {ub.text}"))
            continue
        if est.hi < lb.lo or est.lo > ub.hi:
            side = "below the lower bound" if est.hi < lb.lo else "above the upper bound"
            out.append(
                Finding(
                    e.id,
                    "estimate_outside_ci",
                    Severity.ERROR,
                    f"estimate {_iv(est)} lies {side} of its CI [{lb.text}, {ub.text}] "
                    f"(lower {_iv(lb)}, upper {_iv(ub)}); a minus sign may have been lost",
                )
            )
            continue
        if _scale(e) == Scale.RATIO:
            ivs = [_log_interval(x) for x in (est, lb, ub)]
            if any(v is None for v in ivs):
                continue
            (e_lo, e_hi), (l_lo, l_hi), (u_lo, u_hi) = ivs
            d_lo, d_hi = e_lo - (l_hi + u_hi) / 2, e_hi - (l_lo + u_lo) / 2
            centre = math.exp((math.log(lb.value) + math.log(ub.value)) / 2)
            what = (
                f"on the log scale the CI centre is (ln {lb.text} + ln {ub.text})/2 = "
                f"ln {_fmt(centre)}; estimate {est.text}"
            )
        else:
            d_lo = est.lo - (lb.hi + ub.hi) / 2
            d_hi = est.hi - (lb.lo + ub.lo) / 2
            centre = (lb.value + ub.value) / 2
            what = f"CI centre ({lb.text} + {ub.text})/2 = {_fmt(centre)}; estimate {est.text}"
        if d_lo > 0 or d_hi < 0:
            gap = min(abs(d_lo), abs(d_hi))
            out.append(
                Finding(
                    e.id,
                    "estimate_off_centre",
                    Severity.WARNING,
                    f"{what}; estimate - centre lies in [{_fmt(d_lo)}, {_fmt(d_hi)}] over all values the printed "
                    f"rounding allows, so at least {_fmt(gap)} off centre: not a symmetric Wald CI "
                    f"around this estimate",
                )
            )
    return out


def _null(e: Entry) -> float:
    return 1.0 if _scale(e) == Scale.RATIO else 0.0


def check_claim(entries: Iterable[Entry]) -> list[Finding]:
    """A claim of an effect (or of none) must agree with whether the 95% CI excludes the null."""
    out = []
    for e in entries:
        if e.kind != EntryKind.EFFECT or not e.claim:
            continue
        null = _null(e)
        surely_excludes = e.ci_ub.hi < null or e.ci_lb.lo > null
        surely_includes = e.ci_lb.hi < null < e.ci_ub.lo
        if e.claim == Claim.EFFECT and surely_includes:
            out.append(
                Finding(
                    e.id,
                    "claim_vs_ci",
                    Severity.ERROR,
                    f"text claims an effect but the CI [{e.ci_lb.text}, {e.ci_ub.text}] includes {null:g}",
                )
            )
        elif e.claim == Claim.NO_EFFECT and surely_excludes:
            out.append(
                Finding(
                    e.id,
                    "claim_vs_ci",
                    Severity.ERROR,
                    f"text claims no effect but the CI [{e.ci_lb.text}, {e.ci_ub.text}] excludes {null:g}",
                )
            )
    return out


def _p_interval(p: Printed) -> tuple[float, float]:
    return max(p.lo, 0.0), min(p.hi, 1.0)


def check_p_vs_ci(entries: Iterable[Entry]) -> list[Finding]:
    """A printed p-value must follow from the CI: SE = (ub - lb)/(2·1.96), z = est/SE, p = 2Φ(-|z|)
    (Altman & Bland, BMJ 2011;343:d2090), taking every value the printed rounding allows."""
    out = []
    for e in entries:
        if e.kind != EntryKind.EFFECT or e.p is None:
            continue
        if _scale(e) == Scale.RATIO:
            ivs = [_log_interval(x) for x in (e.estimate, e.ci_lb, e.ci_ub)]
            if any(v is None for v in ivs):
                continue
            (e_lo, e_hi), (l_lo, l_hi), (u_lo, u_hi) = ivs
        else:
            e_lo, e_hi = e.estimate.lo, e.estimate.hi
            l_lo, l_hi, u_lo, u_hi = e.ci_lb.lo, e.ci_lb.hi, e.ci_ub.lo, e.ci_ub.hi
        se_lo, se_hi = max(u_lo - l_hi, 0.0) / (2 * Z975), (u_hi - l_lo) / (2 * Z975)
        if se_hi <= 0:
            continue
        abs_lo = 0.0 if e_lo <= 0 <= e_hi else min(abs(e_lo), abs(e_hi))
        abs_hi = max(abs(e_lo), abs(e_hi))
        z_lo = abs_lo / se_hi
        z_hi = math.inf if se_lo == 0 else abs_hi / se_lo
        p_lo, p_hi = 2 * stats.norm.sf(z_hi), 2 * stats.norm.sf(z_lo)
        q_lo, q_hi = _p_interval(e.p)
        if _disjoint(p_lo, p_hi, q_lo, q_hi):
            se = (e.ci_ub.value - e.ci_lb.value) / (2 * Z975)
            z = (
                abs(e.estimate.value) / se
                if _scale(e) != Scale.RATIO
                else abs(math.log(e.estimate.value))
                / ((math.log(e.ci_ub.value) - math.log(e.ci_lb.value)) / (2 * Z975))
            )
            out.append(
                Finding(
                    e.id,
                    "p_vs_ci",
                    Severity.WARNING,
                    f"SE = (ub - lb)/(2 x 1.96) = {_fmt(se)}, |z| = {_fmt(z)}, p = {_fmt(2 * stats.norm.sf(z))}; "
                    f"over the rounding intervals p lies in [{_fmt(p_lo)}, {_fmt(p_hi)}], printed p {_iv(e.p)}",
                )
            )
    return out


def check_i2_from_q(entries: Iterable[Entry]) -> list[Finding]:
    """I² = max(0, (Q - df)/Q)·100 with df = k - 1 (Higgins & Thompson, Stat Med 2002;21:1539), where Q is
    printed. A τ²-based I² (metafor, RevMan Web) need not equal it; so this applies only where Q is given."""
    out = []
    for e in entries:
        if e.kind != EntryKind.EFFECT or e.q is None or e.i2 is None or e.k is None:
            continue
        df = e.k.value - 1

        def i2(q: float, df: float = df) -> float:
            return 0.0 if q <= 0 else max(0.0, (q - df) / q) * 100

        lo, hi = i2(max(e.q.lo, 0.0)), i2(e.q.hi)
        if _disjoint(lo, hi, e.i2.lo, e.i2.hi):
            out.append(
                Finding(
                    e.id,
                    "i2_vs_q",
                    Severity.WARNING,
                    f"(Q - df)/Q with Q = {e.q.text}, df = k - 1 = {df:g} gives I^2 = {_fmt(i2(e.q.value))}% "
                    f"(range [{_fmt(lo)}, {_fmt(hi)}] over Q's rounding); printed I^2 = {e.i2.text}%",
                )
            )
    return out


# --------------------------------------------------------------------------- checks across entries
def check_places_agree(entries: Iterable[Entry]) -> list[Finding]:
    """The same contrast printed in two places (abstract vs results vs discussion) must agree: numbers whose
    rounding intervals do not overlap, or certainty ratings with no level in common, are findings."""
    out = []
    by_contrast: dict[str, list[Entry]] = {}
    for e in entries:
        if e.contrast and e.kind in (EntryKind.EFFECT, EntryKind.CERTAINTY):
            by_contrast.setdefault(e.contrast, []).append(e)
    for contrast, group in by_contrast.items():
        clashes: dict[tuple[str, str], list[str]] = {}
        for a, b in itertools.combinations(group, 2):
            if a.place == b.place:
                continue
            places = (a.place, b.place)
            for f in ("estimate", "ci_lb", "ci_ub", "k", "i2"):
                x, y = getattr(a, f), getattr(b, f)
                if x is not None and y is not None and _disjoint(x.lo, x.hi, y.lo, y.hi):
                    clashes.setdefault(places, []).append(f"{f} {_iv(x)} vs {_iv(y)}")
            if a.certainty and b.certainty and not (a.certainty_levels & b.certainty_levels):
                clashes.setdefault(places, []).append(f"certainty '{a.certainty}' vs '{b.certainty}'")
        for (pa, pb), diffs in clashes.items():
            out.append(
                Finding(
                    contrast, f"{pa}_vs_{pb}", Severity.ERROR,
                    f"{pa} vs {pb}: " + "; ".join(dict.fromkeys(diffs)),
                )
            )
    return out


def check_same_k(entries: Iterable[Entry]) -> list[Finding]:
    """The same k for one outcome and follow-up but different comparator sets is a copying signal: the
    comparator sets are (nearly) disjoint groups of trials."""
    out = []
    effects = [e for e in entries if e.kind == EntryKind.EFFECT and e.k is not None and e.contrast_parts]
    for a, b in itertools.combinations(effects, 2):
        pa, pb = a.contrast_parts, b.contrast_parts
        if pa.suffix or pb.suffix or a.contrast == b.contrast:
            continue
        if (pa.outcome == pb.outcome and pa.window == pb.window and pa.comparator != pb.comparator
                and a.k.value == b.k.value):
            out.append(
                Finding(
                    f"{a.contrast} | {b.contrast}",
                    "same_k",
                    Severity.WARNING,
                    f"k = {a.k.text} for both {a.contrast} and {b.contrast} (same outcome and "
                    f"follow-up, different comparators); check for a copied k",
                )
            )
    return out


def check_duplicate_effects(entries: Iterable[Entry]) -> list[Finding]:
    """Two different contrasts with the very same printed estimate and CI (or the same points at every
    follow-up window) are a copying signal."""
    out = []
    by_numbers: dict[tuple[str, str, str], list[str]] = {}
    for e in entries:
        if e.kind == EntryKind.EFFECT:
            key = (e.estimate.text, e.ci_lb.text, e.ci_ub.text)
            if e.contrast not in by_numbers.setdefault(key, []):
                by_numbers[key].append(e.contrast)
    for key, contrasts in by_numbers.items():
        if len(contrasts) > 1:
            out.append(
                Finding(
                    " | ".join(contrasts),
                    "duplicate_numbers",
                    Severity.WARNING,
                    f"{' and '.join(contrasts)} print the same estimate and CI {key[0]} [{key[1]}, {key[2]}]",
                )
            )
    pairs: dict[tuple[str, str], dict[str, Entry]] = {}
    windows: list[str] = []  # in the order the registry first names them
    for e in entries:
        parts = e.contrast_parts
        if e.kind == EntryKind.POINTS and parts and parts.window and not parts.suffix:
            pairs.setdefault((parts.outcome, parts.comparator or ""), {})[parts.window] = e
            if parts.window not in windows:
                windows.append(parts.window)
    complete = {k: v for k, v in pairs.items() if len(windows) > 1 and set(v) == set(windows)}
    for (ka, a), (kb, b) in itertools.combinations(complete.items(), 2):
        va = tuple(a[w].value.text for w in windows)
        if va == tuple(b[w].value.text for w in windows):
            na, nb = "_".join(p for p in ka if p), "_".join(p for p in kb if p)
            out.append(
                Finding(
                    f"{na} | {nb}",
                    "duplicate_numbers",
                    Severity.WARNING,
                    f"{na} and {nb} print the same points at every follow-up window "
                    f"({', '.join(f'{w} {v}' for w, v in zip(windows, va, strict=True))})",
                )
            )
    return out


def _registry_k(registry: Registry, contrast: str) -> Printed | None:
    for e in registry.for_contrast(contrast, EntryKind.EFFECT):
        if e.k is not None:
            return e.k
    return None


def _mahonian(n: int):
    """Yield (m, P(C = c) for c = 0..m(m-1)/2) for m = 1..n: the null distribution of the number of
    concordant pairs among m items (Kendall 1938), built by the recursion P_m = P_{m-1} * U{0..m-1}."""
    dist = np.ones(1)
    yield 1, dist
    for m in range(2, n + 1):
        c = np.concatenate([np.zeros(m), np.cumsum(np.concatenate([dist, np.zeros(m - 1)]))])
        dist = (c[m:] - c[:-m]) / m
        yield m, dist


def _two_sided(dist: np.ndarray, concordant: int) -> float:
    cdf = np.cumsum(dist)
    pairs = len(dist) - 1
    p = 1.0 - cdf[concordant - 1] if concordant > pairs / 2 else cdf[concordant]
    return float(min(1.0, 2.0 * p))


def kendall_two_sided_p(concordant: int, n: int) -> float:
    """Exact two-sided p of Kendall's tau with no ties, as R's cor.test(method="kendall", exact=TRUE),
    which metafor's ranktest calls (Begg & Mazumdar, Biometrics 1994;50:1088)."""
    *_, (_, dist) = _mahonian(n)
    return _two_sided(dist, concordant)


def _k_giving(tau: float, p_lo: float, p_hi: float, max_k: int = 100) -> list[int]:
    """The k for which Kendall's tau = `tau` gives an exact p within [p_lo, p_hi]."""
    return [
        m for m, dist in _mahonian(max_k)
        if m >= 4 and p_lo <= _two_sided(dist, round((tau + 1) * m * (m - 1) / 4)) <= p_hi
    ]  # fmt: skip


def check_bias_tests(registry: Registry) -> list[Finding]:
    """Egger's z -> p = 2Φ(-|z|) (regtest, model "rma"); rank tau with the contrast's k -> exact p."""
    out = []
    for e in registry.entries:
        if e.kind != EntryKind.TEST:
            continue
        q_lo, q_hi = _p_interval(e.p)
        s = e.statistic
        if e.test == BiasTest.EGGER:
            abs_lo = 0.0 if s.lo <= 0 <= s.hi else min(abs(s.lo), abs(s.hi))
            p_lo, p_hi = 2 * stats.norm.sf(max(abs(s.lo), abs(s.hi))), 2 * stats.norm.sf(abs_lo)
            if _disjoint(p_lo, p_hi, q_lo, q_hi):
                out.append(
                    Finding(
                        e.id,
                        "egger_p_vs_z",
                        Severity.WARNING,
                        f"z = {s.text} gives p = 2*Phi(-|z|) = {_fmt(2 * stats.norm.sf(abs(s.value)))}"
                        f" (range [{_fmt(p_lo)}, {_fmt(p_hi)}]); printed p {_iv(e.p)}",
                    )
                )
        elif e.test == BiasTest.RANK and e.contrast:
            k = _registry_k(registry, e.contrast)
            if k is None:
                continue
            n = int(k.value)
            pairs = n * (n - 1) // 2
            c_lo = max(0, math.floor((s.lo + 1) * pairs / 2))
            c_hi = min(pairs, math.ceil((s.hi + 1) * pairs / 2))
            ps = [kendall_two_sided_p(c, n) for c in range(c_lo, c_hi + 1)]
            p_lo, p_hi = min(ps), max(ps)
            if _disjoint(p_lo, p_hi, q_lo, q_hi):
                fits = _k_giving(s.value, q_lo, q_hi)
                span = (
                    f"k = {fits[0]}"
                    if fits and fits[0] == fits[-1]
                    else f"k = {fits[0]}..{fits[-1]}"
                    if fits
                    else ""
                )
                hint = f"; {span} would give it" if fits else ""
                out.append(
                    Finding(
                        e.id,
                        "rank_p_vs_tau",
                        Severity.WARNING,
                        f"Kendall's tau = {s.text} with k = {n} (the contrast's printed k) gives exact "
                        f"p in [{_fmt(p_lo)}, {_fmt(p_hi)}]; printed p {_iv(e.p)}{hint}",
                    )
                )
    return out


def check_percentages(registry: Registry) -> list[Finding]:
    """A printed percentage must equal 100·n/N for its count n and denominator N (to printed rounding);
    a printed relative reduction must equal 100·(before - after)/before for the printed means."""
    out = []
    for e in registry.entries:
        if e.kind == EntryKind.COUNT and e.percent is not None and e.of:
            denom = registry.get(e.of).n
            exact = 100 * e.n.value / denom.value
            if not (e.percent.lo <= exact <= e.percent.hi):
                out.append(
                    Finding(
                        e.id,
                        "percent_vs_count",
                        Severity.ERROR,
                        f"100 x {e.n.text}/{denom.text} = {exact:.2f}%; printed {e.percent.text}% "
                        f"(allows [{_fmt(e.percent.lo)}, {_fmt(e.percent.hi)}])",
                    )
                )
        if e.kind == EntryKind.PERCENT and e.reduction_from and e.reduction_to:
            a, b = registry.get(e.reduction_from).mean, registry.get(e.reduction_to).mean
            lo = 100 * (a.lo - b.hi) / a.lo
            hi = 100 * (a.hi - b.lo) / a.hi
            if _disjoint(lo, hi, e.value.lo, e.value.hi):
                out.append(
                    Finding(
                        e.id,
                        "percent_vs_means",
                        Severity.WARNING,
                        f"100 x ({a.text} - {b.text})/{a.text} = "
                        f"{100 * (a.value - b.value) / a.value:.2f}% (range [{lo:.2f}, {hi:.2f}]); "
                        f"printed {e.value.text}%",
                    )
                )
    return out


def check_relations(registry: Registry) -> list[Finding]:
    """Parts that should add up to a total; k at most the number of available control groups; equal counts."""
    out = []
    for r in registry.relations:
        parts = [registry.get(p).n for p in r.parts]
        total = sum(p.value for p in parts)
        expr = " + ".join(p.text for p in parts)
        if r.kind == RelationKind.SUM:
            t = registry.get(r.total).n
            if total != t.value:
                out.append(
                    Finding(
                        r.id,
                        "sum",
                        Severity.WARNING,
                        f"{expr} = {total:g}, but the total is {t.text} ({r.total}). Why it should "
                        f"hold: {r.why}",
                    )
                )
        elif r.kind == RelationKind.NOT_MORE:
            t = registry.get(r.total).n
            if total > t.value:
                out.append(
                    Finding(
                        r.id,
                        "subset_exceeds_total",
                        Severity.ERROR,
                        f"{expr} = {total:g} ({', '.join(r.parts)}) exceeds the total {t.text} ({r.total}), of "
                        f"which it is a part. Why: {r.why}",
                    )
                )
        elif r.kind == RelationKind.AT_MOST:
            k = _registry_k(registry, r.contrast)
            if k.value > total:
                out.append(
                    Finding(
                        r.id,
                        "k_exceeds_groups",
                        Severity.WARNING,
                        f"{r.contrast}: k = {k.text} comparisons, but only {expr} = {total:g} such "
                        f"control groups are reported. Why it should hold: {r.why}",
                    )
                )
        elif r.kind == RelationKind.EQUAL and len({p.value for p in parts}) > 1:
            out.append(
                Finding(
                    r.id,
                    "counts_differ",
                    Severity.WARNING,
                    f"{' vs '.join(f'{p} = {registry.get(p).n.text}' for p in r.parts)}. "
                    f"Why they should agree: {r.why}",
                )
            )
    return out


ENTRY_CHECKS: tuple[Callable[[Iterable[Entry]], list[Finding]], ...] = (
    check_ci, check_claim, check_p_vs_ci, check_i2_from_q, check_places_agree, check_same_k,
    check_duplicate_effects,
)  # fmt: skip
REGISTRY_CHECKS: tuple[Callable[[Registry], list[Finding]], ...] = (
    check_bias_tests, check_percentages, check_relations,
)  # fmt: skip


def audit_registry(registry: Registry) -> list[Finding]:
    """Run every check on a registry; returns the findings (never `info`), in a stable order."""
    findings: list[Finding] = []
    for check in ENTRY_CHECKS:
        findings += check(registry.entries)
    for check in REGISTRY_CHECKS:
        findings += check(registry)
    return [f for f in findings if f.severity != Severity.INFO]


# --------------------------------------------------------------------------- reported tables (CSV)
REPORTED_REQUIRED = ("label", "estimate", "ci_lb", "ci_ub")
REPORTED_OPTIONAL = ("k", "i2", "q", "p", "scale")
REPORTED_IGNORED = ("source", "note")
REPORTED_COLUMNS = (*REPORTED_REQUIRED, *REPORTED_OPTIONAL, *REPORTED_IGNORED)
_REPORTED_NUMBERS = ("estimate", "ci_lb", "ci_ub", "k", "i2", "q", "p")
#: closed ranges of the optional statistics (I² in percent).
_REPORTED_RANGES = {"i2": (0.0, 100.0), "p": (0.0, 1.0), "q": (0.0, math.inf), "k": (1.0, math.inf)}


def _reported_rows(path: Path, text: str) -> Iterable[tuple[int, list[str]]]:
    """Yield (line of the record's first character, fields) for every non-blank record; csv errors located."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start = end + 1
            raise SpecError(
                f"{path}:{start}: row {start}: not valid CSV from this line on ({exc}; an unclosed quote?)"
            ) from None
        start, end = end + 1, reader.line_num
        if fields:
            yield start, fields


def _reported_number(path: Path, line: int, col: str, text: str) -> Printed:
    where = f"{path}:{line}: row {line}, column {col}"
    if "," in text:
        raise SpecError(
            f"{where}: {text!r} contains a comma; a decimal comma (0,28) or thousands separator (1,250) is "
            f"not accepted: write a decimal point (0.28, 1.25) or plain digits (1250)"
        )
    try:
        value = Printed.parse(text, exact=col == "k")
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if not math.isfinite(value.value):
        raise SpecError(f"{where}: {text!r} is not a finite number")
    if col == "k" and (value.decimals or value.relation != "="):
        raise SpecError(f"{where}: {text!r} is not a whole number of studies")
    if col in _REPORTED_RANGES:
        lo, hi = _REPORTED_RANGES[col]
        name = {"i2": "I² (percent)", "p": "a p value", "q": "Q", "k": "k"}[col]
        bounds = f"[{_fmt(lo)}, {_fmt(hi)}]" if math.isfinite(hi) else f">= {_fmt(lo)}"
        impossible = (
            not lo <= value.value <= hi
            or (value.relation == ">" and value.value >= hi)
            or (value.relation == "<" and value.value <= lo)
        )
        if impossible:
            raise SpecError(f"{where}: {name} must be {bounds}, got {text!r}")
    return value


def read_reported(path: str | Path) -> Registry:
    """Read a table of reported results (columns label, estimate, ci_lb, ci_ub; optional k, i2, q, p, scale;
    source and note are kept as free text and ignored) as a registry of effect entries.

    Numbers are read as text so their printed precision is kept. The reader is strict: a comma-separated UTF-8
    file whose every record has exactly as many fields as the header; unknown or repeated columns, numbers
    with a comma (decimal comma or thousands separator), non-finite numbers, I² outside [0, 100], p outside
    [0, 1], Q < 0, k not a whole number >= 1 and ci_lb > ci_ub are refused. Semicolon-separated files
    (a decimal-comma locale's CSV) are refused with a message saying how to re-export them: they are not
    guessed at. Every error is a `SpecError` starting "FILE:LINE:" and naming the row (the file line, header
    = line 1) and column; the file is never modified."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}:{line}: line {line}: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError(f"{path}:{line}: line {line}: NUL byte; not a text CSV file")
    rows = iter(_reported_rows(path, text))
    first = next(rows, None)
    if first is None:
        raise SpecError(f"{path}:1: empty file; expected a header line {','.join(REPORTED_REQUIRED)}")
    head_line, header = first
    columns = [c.strip().lower() for c in header]
    hwhere = f"{path}:{head_line}: line {head_line} (header)"
    if len(columns) == 1 and ";" in header[0]:
        raise SpecError(
            f"{hwhere}: the file is semicolon-separated (a decimal-comma locale's CSV); not accepted: save it "
            f"as comma-separated CSV with decimal points (0.28, not 0,28)"
        )
    unknown = [c for c in columns if c not in REPORTED_COLUMNS]
    if unknown:
        raise SpecError(
            f"{hwhere}: unknown column(s) {unknown}; allowed: {list(REPORTED_COLUMNS)}"
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SpecError(f"{hwhere}: column(s) {repeated} appear more than once")
    missing = [c for c in REPORTED_REQUIRED if c not in columns]
    if missing:
        raise SpecError(f"{hwhere}: missing column(s) {missing}; required: {list(REPORTED_REQUIRED)}")
    entries = []
    labels: dict[str, int] = {}
    for line, fields in rows:
        if len(fields) != len(columns):
            more = len(fields) > len(columns)
            hint = ("an unquoted comma in a value, or a decimal comma? quote the value or use a decimal point"
                    if more else "a value or separator is missing")
            raise SpecError(
                f"{path}:{line}: row {line}, column {'after ' + columns[-1] if more else columns[len(fields)]}: "
                f"{len(fields)} field(s) but the header has {len(columns)} ({hint})"
            )
        row = dict(zip(columns, (f.strip() for f in fields)))
        label = row["label"]
        if not label:
            raise SpecError(f"{path}:{line}: row {line}, column label: empty label")
        if label in labels:
            raise SpecError(f"{path}:{line}: row {line}, column label: {label!r} repeats row {labels[label]}")
        labels[label] = line
        values: dict[str, Printed] = {}
        for col in _REPORTED_NUMBERS:
            text = row.get(col, "")
            if not text:
                if col in REPORTED_REQUIRED:
                    raise SpecError(f"{path}:{line}: row {line}, column {col}: empty (required)")
                continue
            values[col] = _reported_number(path, line, col, text)
        if values["ci_lb"].value > values["ci_ub"].value:
            raise SpecError(
                f"{path}:{line}: row {line}, column ci_lb: lower bound {values['ci_lb'].text} > upper bound "
                f"{values['ci_ub'].text}"
            )
        scale = row.get("scale", "").lower() or None
        if scale not in (None, *Scale):
            raise SpecError(
                f"{path}:{line}: row {line}, column scale: {scale!r} is not 'ratio' or 'difference' (or empty)"
            )
        if scale == Scale.RATIO:
            for col in ("estimate", "ci_lb", "ci_ub"):
                if values[col].value <= 0:
                    raise SpecError(
                        f"{path}:{line}: row {line}, column {col}: a ratio must be > 0, got {values[col].text}"
                    )
        entries.append(
            Entry(
                id=label,
                kind=EntryKind.EFFECT,
                place=Place.REPORTED,
                section=f"{path.name} row {line}",
                quote=label,
                contrast=label,
                scale=scale,
                **values,
            )
        )
    return Registry(entries=tuple(entries), path=str(path))


def audit_reported(path: str | Path) -> list[Finding]:
    """Audit a reported-results table (see `read_reported`)."""
    return audit_registry(read_reported(path))


def run_audit(project) -> pd.DataFrame:
    """Audit `analyses/published.yaml` of `project` and write `results/audit.csv` (whole or not at all)."""
    path = project.root / project.review.components.published if project.review.components.published else \
        Path(project.analyses) / "published.yaml"
    registry = load_published(path, project.review)
    frame = findings_frame(audit_registry(registry))
    write_text(Path(project.results) / "audit.csv",
               csv_text(frame))
    return frame
