"""Which convention reproduces a published pooled number: `metaexercise explain LABEL`.

A published random-effects result (estimate, CI, I², p, prediction interval) depends on choices its paper
rarely states in full. Given the per-study data behind it, every combination of

- effect basis (`metaexercise.engine.smd_conventions`): metafor's exact Hedges' g, RevMan 5's approximate g and
  its variance (Deeks & Higgins 2010), or Cohen's d (only for SMDs computed here from arm means and SDs);
- τ² estimator: DL, REML, ML, PM, HS, SJ, HE, EB (metafor 3.8 `rma(method=)`);
- CI for the pooled effect: z (metafor's default, RevMan), Knapp–Hartung (`test="knha"`, Knapp & Hartung 2003,
  Stat Med 22:2693), or t(k−1) on the ordinary standard error (metafor's `test="t"`);
- I²: τ²-based, 100 τ̂²/(τ̂² + s²) with s² the typical within-study variance (Higgins & Thompson 2002, Stat Med
  21:1539, eq. 9; metafor), or Q-based, 100 (Q − df)/Q truncated at 0 (Higgins & Thompson 2002, eq. 10;
  RevMan), which agree under DL;
- prediction interval: z (metafor's default), t(k−1) (Knapp–Hartung PI), t(k−2) (Higgins, Thompson &
  Spiegelhalter 2009, J R Stat Soc A 172:137; Riley et al. 2011, BMJ 342:d549)

is computed and compared with the printed digits: a value reproduces a printed number when it lies in the
interval the printing allows (`metaexercise.review.published.Printed`, half a unit of the last digit). A
convention explains the entry when it reproduces every printed number; the explanation lists those conventions
and, for each choice, which options survive.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from metaexercise.engine.kernels import TAU2_ESTIMATORS
from metaexercise.engine.model import rma
from metaexercise.engine.smd_conventions import SMD_BASES, smd
from metaexercise.review.published import Entry, Printed

CI_METHODS: tuple[str, ...] = ("z", "knha", "t")
I2_DEFINITIONS: tuple[str, ...] = ("tau2", "Q")
PI_METHODS: tuple[str, ...] = ("z", "t(k-1)", "t(k-2)")
#: The printed fields an explanation checks, in the order shown.
FIELDS: tuple[str, ...] = ("estimate", "ci_lb", "ci_ub", "i2", "q", "p", "pi_lb", "pi_ub")
#: Effect basis of data given as yi/vi (no arm means and SDs to recompute the SMD from).
GIVEN = "as given"

LABELS = {
    "basis": "effect basis", "method": "τ² estimator", "ci": "CI", "i2_def": "I²", "pi": "PI",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every convention tried (`table`: one row per combination, computed values and a match flag per printed
    field) and the printed numbers it was compared with."""

    label: str
    printed: dict[str, Printed]
    table: pd.DataFrame
    k: int
    #: What the reader must know first (e.g. the data hold fewer studies than the paper pooled).
    note: str = ""

    @property
    def matches(self) -> pd.DataFrame:
        """The conventions that reproduce every printed number."""
        return self.table[self.table["all_match"]]

    def surviving(self) -> dict[str, tuple[str, ...]]:
        """For each choice, the options that appear in at least one explaining convention."""
        m = self.matches
        return {c: tuple(dict.fromkeys(m[c].astype(str))) for c in LABELS}

    def summary(self) -> str:
        shown = ", ".join(f"{f} {p.text}" for f, p in self.printed.items())
        lines = [f"{self.label}: printed {shown} (k = {self.k} studies in the data)"]
        if self.note:
            lines.append(f"Note: {self.note}")
        m = self.matches
        if m.empty:
            best = self.table.iloc[0]
            missed = [f for f in self.printed if not best[f"{f}_match"]]
            lines.append(f"No convention tried reproduces every printed number. Closest: "
                         f"{_describe(best)}, which misses {', '.join(missed)} "
                         f"({'; '.join(f'{f} = {best[f]:.4f}' for f in missed)}).")
            return "\n".join(lines)
        lines.append(f"{len(m)} of {len(self.table)} conventions reproduce every printed number.")
        for choice, options in self.surviving().items():
            lines.append(f"  {LABELS[choice]}: {', '.join(options)}")
        lines.append(f"First of them: {_describe(m.iloc[0])}.")
        return "\n".join(lines)

    __str__ = summary


def _describe(row) -> str:
    return "; ".join(f"{LABELS[c]} {row[c]}" for c in LABELS)


def printed_numbers(entry: Entry) -> dict[str, Printed]:
    """The printed numbers of a pooled-effect entry that an explanation can check."""
    return {f: getattr(entry, f) for f in FIELDS if getattr(entry, f, None) is not None}


def _within(value: float, printed: Printed) -> bool:
    if not math.isfinite(value):
        return False
    tol = 1e-9 * max(1.0, abs(printed.value))  # a value exactly on a rounding boundary counts as printed
    if printed.relation == "<":
        return value < printed.value + tol
    if printed.relation == ">":
        return value > printed.value - tol
    return printed.lo - tol <= value <= printed.hi + tol


def _effect_sets(studies: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(yi, vi) per effect basis. Rows with arm means, SDs and sizes are recomputed under each basis; rows
    without (contrast-level data) keep their yi/vi under every basis."""
    cols = ["m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
    have = studies.reindex(columns=cols).apply(pd.to_numeric, errors="coerce")
    arm = have.notna().all(axis=1).to_numpy()
    yi0 = pd.to_numeric(studies["yi"], errors="coerce").to_numpy(dtype=float)
    vi0 = pd.to_numeric(studies["vi"], errors="coerce").to_numpy(dtype=float)
    if not arm.any():
        return {GIVEN: (yi0, vi0)}
    out = {}
    for basis in SMD_BASES:
        y, v = yi0.copy(), vi0.copy()
        a = have[arm]
        y[arm], v[arm] = smd(basis, *(a[c].to_numpy() for c in cols))
        out[basis] = (y, v)
    return out


def _pooled(y: np.ndarray, v: np.ndarray, method: str, level: float) -> dict[str, float]:
    """Estimate, its z- and KH-based spreads, τ², I² both ways, Q (one z fit and one KH fit)."""
    k = len(y)
    fit = rma(y, v, method=method, level=level)
    kh = rma(y, v, method=method, level=level, test="knha")
    w = 1 / v
    s2 = (k - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    q = fit.QE
    return {
        "estimate": fit.estimate, "se": float(fit.se[0]), "se_kh": float(kh.se[0]), "tau2": fit.tau2,
        "i2_tau2": 100 * fit.tau2 / (fit.tau2 + s2), "i2_Q": max(0.0, 100 * (q - (k - 1)) / q) if q > 0 else 0.0,
        "q": q,
    }


def _interval(est: float, se: float, crit: float) -> tuple[float, float]:
    return est - crit * se, est + crit * se


def explain_numbers(label: str, studies: pd.DataFrame, printed: dict[str, Printed], *,
                    level: float = 95, note: str = "") -> Explanation:
    """Try every convention on `studies` (columns yi, vi and, where known, m1i, sd1i, n1i, m2i, sd2i, n2i; one
    row per study, group 1 = the experimental arm) against the `printed` numbers (field -> Printed; fields in
    `FIELDS`)."""
    unknown = sorted(set(printed) - set(FIELDS))
    if unknown:
        raise ValueError(f"explain: cannot check printed field(s) {unknown}; known: {list(FIELDS)}")
    k = len(studies)
    if k < 2:
        raise ValueError(f"explain {label}: the data hold k = {k} studies; at least 2 are needed to pool")
    alpha = 1 - level / 100
    z = -special.ndtri(alpha / 2)
    t1 = special.stdtrit(k - 1, 1 - alpha / 2)
    t2 = special.stdtrit(k - 2, 1 - alpha / 2) if k > 2 else math.nan
    rows = []
    for basis, (y, v) in _effect_sets(studies).items():
        for method in TAU2_ESTIMATORS:
            fit = _pooled(y, v, method, level)
            est = fit["estimate"]
            spreads = {"z": (fit["se"], z, special.ndtr(-abs(est / fit["se"])) * 2),
                       "knha": (fit["se_kh"], t1, 2 * special.stdtr(k - 1, -abs(est / fit["se_kh"]))),
                       "t": (fit["se"], t1, 2 * special.stdtr(k - 1, -abs(est / fit["se"])))}
            pis = {"z": (fit["se"], z), "t(k-1)": (fit["se_kh"], t1), "t(k-2)": (fit["se"], t2)}
            for ci, i2_def, pi in itertools.product(CI_METHODS, I2_DEFINITIONS, PI_METHODS):
                se, crit, p = spreads[ci]
                lb, ub = _interval(est, se, crit)
                pse, pcrit = pis[pi]
                half = pcrit * math.sqrt(pse**2 + fit["tau2"])
                values = {"estimate": est, "ci_lb": lb, "ci_ub": ub, "i2": fit[f"i2_{i2_def}"], "q": fit["q"],
                          "p": float(p), "pi_lb": est - half, "pi_ub": est + half}
                row = {"basis": basis, "method": method, "ci": ci, "i2_def": i2_def, "pi": pi,
                       "tau2": fit["tau2"], **values}
                miss = 0.0
                for f, pr in printed.items():
                    ok = _within(values[f], pr)
                    row[f"{f}_match"] = ok
                    if not ok and math.isfinite(values[f]):
                        miss += abs(values[f] - pr.value) / max(pr.half_unit, 1e-12)
                row["n_match"] = sum(row[f"{f}_match"] for f in printed)
                row["distance"] = miss
                rows.append(row)
    table = pd.DataFrame(rows)
    table["all_match"] = table["n_match"] == len(printed)
    table = _without_idle_choices(table, printed)
    table = table.sort_values(["all_match", "n_match", "distance"], ascending=[False, False, True],
                              kind="stable").reset_index(drop=True)
    return Explanation(label=label, printed=dict(printed), table=table, k=k, note=note)


def _without_idle_choices(table: pd.DataFrame, printed: dict[str, Printed]) -> pd.DataFrame:
    """Collapse choices that no printed number depends on (no I² printed: one I² definition; no PI printed: one
    PI method), so the count of explaining conventions counts only distinguishable ones."""
    if "i2" not in printed:
        table = table[table["i2_def"] == I2_DEFINITIONS[0]].assign(i2_def="(not printed)")
    if not {"pi_lb", "pi_ub"} & set(printed):
        table = table[table["pi"] == PI_METHODS[0]].assign(pi="(not printed)")
    return table


def registry_effects(project) -> tuple[Entry, ...]:
    """The pooled-effect entries of the project's published registry (review.yaml's components.published)."""
    from metaexercise.errors import SpecError
    from metaexercise.review.published import EntryKind, load_published

    published = project.review.components.published
    if not published or not (project.root / published).is_file():
        raise SpecError(f"{project.declaration}: the project declares no published registry "
                        "(components.published), so there is nothing to explain")
    registry = load_published(project.root / published, project.review)
    return tuple(e for e in registry.entries if e.kind == EntryKind.EFFECT)


def _pooled_studies(result) -> pd.DataFrame:
    """The studies an analysis pooled (those it excluded as outliers left out), indexed 0..k-1."""
    studies = result.studies
    if len(studies) and "excluded_as_outlier" in studies:
        studies = studies[~studies["excluded_as_outlier"].astype(bool)]
    return studies.reset_index(drop=True)


def _k_note(entry: Entry, k: int) -> str:
    """Why a match would mean little when the data hold another number of studies than the paper pooled."""
    if entry.k is None or entry.k.value == k:
        return ""
    return (f"the paper pooled k = {entry.k.text} studies, the extraction gives {k}: a convention that reproduces "
            "the printed digits from other studies would be a coincidence")


def explain_entry(project, label: str, *, level: float = 95) -> Explanation:
    """Explain the published pooled effect `label` (a registry entry id such as ``pain_active_short.results``,
    or a contrast id when it has exactly one pooled-effect entry) from the project's real extraction: the
    analysis whose id is the entry's contrast (or that lists it in `published_as`) is run and its studies
    (outliers kept out where the analysis excludes them) are pooled under every convention.

    The synthetic replica is never explained: it is calibrated to the published numbers, so it would explain
    them by construction."""
    from metaexercise.errors import SpecError
    from metaexercise.extraction.sheets import load_extraction
    from metaexercise.review.analyses import run_analysis
    from metaexercise.review.specs import load_specs

    effects = registry_effects(project)
    entry = next((e for e in effects if e.id == label), None)
    if entry is None:
        hits = [e for e in effects if e.contrast == label]
        if len(hits) != 1:
            known = ", ".join(e.id for e in effects)
            why = (f"contrast {label!r} has {len(hits)} pooled-effect entries ({', '.join(e.id for e in hits)}); "
                   "name one" if hits else f"no pooled-effect entry {label!r}")
            raise SpecError(f"{project.root / project.review.components.published}: {why}. Entries: {known}")
        entry = hits[0]
    review = project.review
    specs = load_specs(project.analyses, review=review)
    spec = next((s for s in specs if s.id == entry.contrast), None) or next(
        (s for s in specs if entry.contrast in s.published_as), None)
    if spec is None:
        raise SpecError(f"{project.analyses}: no analysis has id {entry.contrast!r} or lists it in published_as, "
                        f"so the data behind {entry.id!r} are not declared")
    extraction = load_extraction(project.extraction, vocabulary=review.sheet_vocabulary())
    result = run_analysis(spec, extraction, review, {})
    studies = _pooled_studies(result)
    k_printed = f" (the paper pooled k = {entry.k.text})" if entry.k is not None else ""
    if len(studies) < 2:
        raise ValueError(f"explain {entry.id}: the extraction gives analysis {spec.id!r} k = {len(studies)} "
                         f"studies{k_printed}; at least 2 are needed. {result.status}")
    return explain_numbers(entry.id, studies, printed_numbers(entry), level=level, note=_k_note(entry, len(studies)))


#: Columns of results/explain.csv, the audit's section on conventions.
EXPLAIN_COLUMNS = ("entry", "contrast", "k_printed", "k_data", "status", "conventions", "tried",
                   "effect_basis", "tau2_estimator", "ci", "i2", "pi", "closest", "note")


def explain_registry(project, results) -> pd.DataFrame:
    """results/explain.csv: for every pooled-effect entry of the published registry whose analysis ran on the real
    extraction (`results`: the run's `AnalysisResult`s), which conventions reproduce its printed digits; status
    "insufficient data" where the extraction gives fewer than 2 studies. The audit's section on conventions."""
    by_id = {r.spec.id: r for r in results}
    by_alias = {alias: r for r in results for alias in r.spec.published_as}
    rows = []
    for entry in registry_effects(project):
        result = by_id.get(entry.contrast) or by_alias.get(entry.contrast)
        row = dict.fromkeys(EXPLAIN_COLUMNS, "")
        row.update(entry=entry.id, contrast=entry.contrast or "",
                   k_printed=entry.k.text if entry.k is not None else "")
        if result is None or result.regression is not None:
            rows.append({**row, "status": "no analysis declared for this contrast"})
            continue
        studies = _pooled_studies(result)
        row["k_data"] = len(studies)
        if len(studies) < 2:
            rows.append({**row, "status": f"insufficient data (k={len(studies)})"})
            continue
        ex = explain_numbers(entry.id, studies, printed_numbers(entry))
        row["note"] = _k_note(entry, len(studies))
        m = ex.matches
        row.update(conventions=len(m), tried=len(ex.table),
                   status="reproduced" if len(m) else "not reproduced by any convention tried",
                   closest=_describe(ex.table.iloc[0]))
        if len(m):
            for col, choice in (("effect_basis", "basis"), ("tau2_estimator", "method"), ("ci", "ci"),
                                ("i2", "i2_def"), ("pi", "pi")):
                row[col] = "; ".join(ex.surviving()[choice])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(EXPLAIN_COLUMNS))
