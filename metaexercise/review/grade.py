"""GRADE certainty per analysis: the five domains, a suggestion computed from the data with its reason,
reviewer judgements that override a suggestion only with a written rationale, and summary-of-findings rows.

Certainty starts high for randomized trials and drops one level per level of concern (GRADE Handbook
§5; Guyatt et al., J Clin Epidemiol 2011;64:401-406). The rules, each with its source:

- Risk of bias: downgrade one level when more than 25% of the information comes from studies at high
  risk of bias (Cochrane Back and Neck Group, Furlan et al., Spine 2015;40:1660, "> 25% of participants";
  information is measured here as the REML weight, as in robvis's weighted summary).
- Inconsistency (GRADE 7, Guyatt et al. 2011;64:1294; decision matrix of Cochrane review CD009172):
  I² < 40% -> not serious; 40-74% -> not serious if the true effects share one direction, serious if not;
  >= 75% -> serious if one direction, very serious if not. "Directions differ" when the 95% prediction
  interval crosses zero (the true effects include both benefit and harm; Riley et al., BMJ 2011;342:d549).
- Imprecision (GRADE 6, Guyatt et al. 2011;64:1283; GRADE Guidance 34, Zeng et al. 2022;150:216): rating
  certainty of a non-null effect (the "probably meaningful" rule): serious if the 95% CI crosses
  zero, very serious if it spans both the clinical threshold for benefit and for harm (±MID in SMD units =
  MID points / SD used for back-transformation); if the CI crosses no threshold, serious when the total
  number of participants is below the optimal information size OIS = 4(z_0.975 + z_0.8)^2 / δ^2 with δ the
  MID in SMD units (two-arm trial, α = 0.05, power 0.8). An outcome that declares no MID is judged on zero
  alone (serious if the CI crosses it), and the reason says so.
- Publication bias (Sterne et al., BMJ 2011;343:d4002): tests only when k >= 10; serious when Egger's
  regression test or the rank correlation test has p < 0.10 (Egger et al., BMJ 1997;315:629) with the
  funnel asymmetric towards benefit (small studies showing larger benefits).
- Indirectness: reviewer input; the suggestion is "not serious" until a reviewer judges otherwise.

The MID, the typical SD, the direction of benefit, the rule constants and the wording of the summary of
findings come from the project's `review.yaml` (`metaexercise.review.declaration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from metaexercise.errors import SpecError
from metaexercise.review.declaration import GradeDecl, OutcomeDecl, Review
from metaexercise.review.published import Place, Registry
from metaexercise.review.vocabulary import Certainty, ContrastId, GradeDomain
from metaexercise.strict_yaml import load_yaml
from metaexercise.vocabulary import RobJudgement, codes

DOMAINS = codes(GradeDomain)
DOMAIN_TITLES = {d.value: d.label for d in GradeDomain}
#: A domain's rating by the levels it downgrades (0, 1, 2).
RATINGS = ("not serious", "serious", "very serious")
LEVEL_WORDS = {1: "one level", 2: "two levels"}


class Suggestion(NamedTuple):
    """A domain's suggestion computed from the data: levels to downgrade (0-2) and the reason."""

    downgrade: int
    reason: str


def optimal_information_size(delta: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Total participants for a two-arm trial to detect an SMD of `delta`: 4(z_{1-α/2} + z_power)²/δ²
    (GRADE 6, Guyatt et al. 2011; ≈ 785 for δ = 0.2, ≈ 126 for δ = 0.5)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta!r}")
    return 4 * (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) ** 2 / delta**2


@dataclass(frozen=True, slots=True)
class GradeThresholds:
    """Thresholds for one analysis: the outcome's MID in points of its common scale (None when it declares
    none) and the SD (points per SMD unit) used to re-express it, with its source; plus the rule constants
    documented in the module docstring, the outcome's direction of benefit, the experimental intervention's
    name (for reasons) and the common scale's name (e.g. "0-10")."""

    mid_points: float | None
    sd_points: float
    sd_source: str
    # the rule constants' defaults are the declaration's (one place: review.declaration.GradeDecl)
    rob_high_share: float = GradeDecl.__dataclass_fields__["rob_high_share"].default
    i2_moderate: float = GradeDecl.__dataclass_fields__["i2_moderate"].default
    i2_considerable: float = GradeDecl.__dataclass_fields__["i2_considerable"].default
    bias_min_k: int = GradeDecl.__dataclass_fields__["bias_min_k"].default
    bias_p: float = GradeDecl.__dataclass_fields__["bias_p"].default
    power: float = GradeDecl.__dataclass_fields__["power"].default
    alpha: float = GradeDecl.__dataclass_fields__["alpha"].default
    lower_is_better: bool = True
    experimental: str = "the experimental intervention"
    scale: str = ""

    def __post_init__(self) -> None:
        if self.mid_points is not None and not (self.mid_points > 0 and self.sd_points > 0):
            raise ValueError(f"mid_points and sd_points must be > 0, got {self.mid_points}, {self.sd_points}")

    @property
    def has_mid(self) -> bool:
        return self.mid_points is not None

    @property
    def mid_smd(self) -> float:
        """The clinical threshold in SMD units: MID points / SD (NaN without a MID)."""
        return self.mid_points / self.sd_points if self.has_mid else float("nan")

    @property
    def ois(self) -> float:
        return optimal_information_size(self.mid_smd, alpha=self.alpha, power=self.power)

    @classmethod
    def for_outcome(cls, outcome: OutcomeDecl, sd_points: float, sd_source: str, *,
                    grade: GradeDecl | None = None, experimental: str = "the experimental intervention",
                    **kw) -> GradeThresholds:
        """The thresholds of one analysis of `outcome`: its declared MID (None when it declares none), the
        SD that re-expresses the SMD, the review's rule constants (`grade`) and direction of benefit."""
        grade = GradeDecl() if grade is None else grade
        constants = {k: getattr(grade, k) for k in GradeDecl.__dataclass_fields__}
        scale = f"{outcome.common_min:g}-{outcome.common_max:g}" if outcome.normalised else ""
        return cls(outcome.mid.value if outcome.mid is not None else None, sd_points, sd_source,
                   lower_is_better=outcome.lower_is_better, experimental=experimental, scale=scale,
                   **{**constants, **kw})


@dataclass(frozen=True, slots=True)
class Judgement:
    """A reviewer's judgement for one domain: levels to downgrade (0-2) and the written rationale."""

    domain: GradeDomain
    downgrade: int
    rationale: str


@dataclass(frozen=True, slots=True)
class DomainRating:
    """One GRADE domain: the computed suggestion and its reason, and the reviewer's judgement if any."""

    domain: GradeDomain
    suggestion: int
    reason: str
    judgement: Judgement | None = None

    @property
    def downgrade(self) -> int:
        return self.suggestion if self.judgement is None else self.judgement.downgrade

    @property
    def rating(self) -> str:
        return RATINGS[self.downgrade]

    @property
    def explanation(self) -> str:
        """The footnote text: the reviewer's rationale where it overrides, else the computed reason."""
        return self.reason if self.judgement is None else f"{self.judgement.rationale} (reviewer judgement)"


@dataclass(frozen=True, slots=True)
class GradeAssessment:
    """The GRADE assessment of one analysis."""

    analysis_id: str
    k: int
    participants: int
    estimate: float
    ci_lb: float
    ci_ub: float
    points: float
    points_lb: float
    points_ub: float
    thresholds: GradeThresholds
    domains: tuple[DomainRating, ...]
    start: int = Certainty.HIGH
    notes: tuple[str, ...] = field(default=())

    @property
    def level(self) -> Certainty:
        return Certainty(max(Certainty.VERY_LOW, self.start - sum(d.downgrade for d in self.domains)))

    @property
    def certainty(self) -> str:
        """"High", "Moderate", "Low" or "Very low"."""
        return self.level.label

    @property
    def symbols(self) -> str:
        return self.level.symbols

    def domain(self, name: str) -> DomainRating:
        return next(d for d in self.domains if d.domain == name)

    def summary(self) -> str:
        lines = [
            f"GRADE: {self.analysis_id} (k = {self.k}, n = {self.participants})",
            f"SMD {self.estimate:.2f} [{self.ci_lb:.2f}, {self.ci_ub:.2f}]; "
            f"{self.points:.2f} [{self.points_lb:.2f}, {self.points_ub:.2f}] VAS points",
        ]
        for d in self.domains:
            who = "reviewer" if d.judgement else "suggested"
            lines.append(f"  {DOMAIN_TITLES[d.domain]:<17} {d.rating:<13} ({who}) {d.explanation}")
        lines.append(f"Certainty: {self.symbols} {self.certainty}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_frame(self) -> pd.DataFrame:
        """One row per domain: suggestion, reason, judgement, rationale, final rating."""
        return pd.DataFrame(
            [
                {
                    "analysis_id": self.analysis_id,
                    "domain": str(d.domain),
                    "suggested_downgrade": d.suggestion,
                    "reason": d.reason,
                    "judged_downgrade": None if d.judgement is None else d.judgement.downgrade,
                    "rationale": None if d.judgement is None else d.judgement.rationale,
                    "rating": d.rating,
                }
                for d in self.domains
            ]
        )


# --------------------------------------------------------------------------- the five domains
def rate_risk_of_bias(rob: np.ndarray, weights: np.ndarray, th: GradeThresholds) -> Suggestion:
    """Share of weight from studies at high overall risk of bias vs `th.rob_high_share`."""
    weights = weights / weights.sum()
    high = float(weights[rob == RobJudgement.HIGH].sum())
    some = float(weights[rob == RobJudgement.SOME_CONCERNS].sum())
    low = max(0.0, 1 - high - some)  # rounding can leave a tiny negative remainder ("-0% low")
    n_high = int((rob == RobJudgement.HIGH).sum())
    reason = (
        f"{n_high} of {len(rob)} studies at high risk of bias carry {100 * high:.0f}% of the weight "
        f"({100 * some:.0f}% some concerns, {100 * low:.0f}% low)"
    )
    if high > th.rob_high_share:
        return Suggestion(1, f"{reason}; more than {100 * th.rob_high_share:.0f}% from high-risk studies")
    return Suggestion(0, f"{reason}; at most {100 * th.rob_high_share:.0f}% from high-risk studies")


def rate_inconsistency(fit, th: GradeThresholds) -> Suggestion:
    """I² band and whether the 95% prediction interval crosses zero (decision matrix, CD009172)."""
    yi = np.asarray(fit.yi, dtype=float)
    benefit = int((yi < 0).sum()) if th.lower_is_better else int((yi > 0).sum())
    split = fit.pi_lb < 0 < fit.pi_ub
    reason = (
        f"I² = {fit.I2:.0f}%, Q = {fit.QE:.2f} (df = {fit.k - 1}, p = {fit.QEp:.3g}); 95% prediction interval "
        f"[{fit.pi_lb:.2f}, {fit.pi_ub:.2f}] {'crosses' if split else 'does not cross'} zero; "
        f"{benefit} of {fit.k} point estimates favour {th.experimental}"
    )
    if fit.I2 >= th.i2_considerable:
        return Suggestion(2 if split else 1, reason)
    if fit.I2 >= th.i2_moderate:
        return Suggestion(1 if split else 0, reason)
    return Suggestion(0, reason)


def rate_imprecision(estimate: float, lb: float, ub: float, n: int, th: GradeThresholds) -> Suggestion:
    """95% CI against zero and ±MID (in SMD units); otherwise total n against the OIS. Without a MID: the CI
    against zero only."""
    ci = f"95% CI [{lb:.2f}, {ub:.2f}]"
    if not th.has_mid:
        why = "the outcome declares no MID (review.yaml), so imprecision is judged on zero alone (no ±MID, no OIS)"
        if lb < 0 < ub:
            return Suggestion(1, f"{ci} crosses zero; {why}")
        return Suggestion(0, f"{ci} excludes zero; {why}")
    d = th.mid_smd
    mid = f"±MID = ±{th.mid_points:g} points / SD {th.sd_points:.2f} = ±{d:.2f} SMD"
    if lb < -d and ub > d:
        return Suggestion(2, f"{ci} spans both appreciable benefit and harm ({mid})")
    if lb < 0 < ub:
        return Suggestion(1, f"{ci} crosses zero ({mid})")
    ois = th.ois
    size = "smaller than" if max(abs(lb), abs(ub)) < d else "may reach"
    if n < ois:
        return Suggestion(1, f"{ci} excludes zero, but n = {n} < OIS = {ois:.0f} for δ = {d:.2f} SMD ({mid})")
    return Suggestion(
        0,
        f"{ci} excludes zero and n = {n} >= OIS = {ois:.0f} for δ = {d:.2f}; the effect is {size} the MID",
    )


def rate_publication_bias(k: int, regtest, ranktest, th: GradeThresholds) -> Suggestion:
    """Egger's and the rank test when k >= 10; serious when either p < 0.10 with asymmetry towards benefit."""
    if k < th.bias_min_k:
        return Suggestion(
            0, f"k = {k} < {th.bias_min_k}: funnel-plot tests not meaningful (Sterne et al. 2011)")
    if regtest is None and ranktest is None:
        return Suggestion(0, "no funnel-plot test supplied")
    parts, flags = [], []
    if regtest is not None:
        z, p = float(regtest.zval), float(regtest.pval)
        parts.append(f"Egger z = {z:.2f}, p = {p:.3g}")
        towards_benefit = (z < 0) if th.lower_is_better else (z > 0)
        flags.append(p < th.bias_p and towards_benefit)
    if ranktest is not None:
        tau, p = float(ranktest.tau), float(ranktest.pval)
        parts.append(f"rank correlation tau = {tau:.3f}, p = {p:.3g}")
        towards_benefit = (tau < 0) if th.lower_is_better else (tau > 0)
        flags.append(p < th.bias_p and towards_benefit)
    reason = "; ".join(parts)
    if any(flags):
        return Suggestion(1, f"{reason}: funnel asymmetric towards benefit (p < {th.bias_p:g})")
    return Suggestion(0, f"{reason}: no asymmetry towards benefit at p < {th.bias_p:g}")


# --------------------------------------------------------------------------- one analysis
def _study_column(studies: pd.DataFrame, names: tuple[str, ...], what: str) -> pd.Series:
    for name in names:
        if name in studies.columns:
            return studies[name]
    raise ValueError(
        f"studies table needs a column {' or '.join(names)} ({what}); has {list(studies.columns)}"
    )


def grade_analysis(
    analysis_id: str,
    fit,
    studies_df: pd.DataFrame,
    regtest=None,
    ranktest=None,
    *,
    thresholds: GradeThresholds,
    judgements: Mapping[str, Judgement] | None = None,
) -> GradeAssessment:
    """Assess one intercept-only random-effects fit.

    `studies_df` has one row per study in the order of `fit.yi`, with `rob_overall` (low | some concerns |
    high) and `n_total` (or `n1i` + `n2i`); `weight` (percent) if present, else `fit.weights`.
    `regtest`/`ranktest` are metafor-style results (`zval`, `pval` / `tau`, `pval`). `judgements` maps a
    domain to the reviewer's `Judgement` (see `load_judgements`)."""
    if fit.p != 1:
        raise ValueError(f"{analysis_id}: GRADE needs an intercept-only model, got {fit.p} coefficients")
    if len(studies_df) != fit.k:
        raise ValueError(
            f"{analysis_id}: studies table has {len(studies_df)} rows but the fit has k = {fit.k}"
        )
    rob = (
        _study_column(studies_df, ("rob_overall",), "overall risk of bias").astype(str).str.lower().to_numpy()
    )
    bad = sorted(set(rob) - set(codes(RobJudgement)))
    if bad:
        raise ValueError(f"{analysis_id}: rob_overall values {bad} are not low, some concerns or high")
    weights = (
        studies_df["weight"].to_numpy(dtype=float)
        if "weight" in studies_df.columns
        else np.asarray(fit.weights)
    )
    if "n_total" in studies_df.columns:
        n = int(np.nansum(studies_df["n_total"].to_numpy(dtype=float)))
    else:
        n = int(np.nansum(_study_column(studies_df, ("n1i",), "participants").to_numpy(dtype=float)))
        n += int(np.nansum(_study_column(studies_df, ("n2i",), "participants").to_numpy(dtype=float)))
    est, lb, ub = fit.estimate, float(fit.ci_lb[0]), float(fit.ci_ub[0])
    suggestions = {
        GradeDomain.RISK_OF_BIAS: rate_risk_of_bias(rob, weights, thresholds),
        GradeDomain.INCONSISTENCY: rate_inconsistency(fit, thresholds),
        GradeDomain.INDIRECTNESS: Suggestion(
            0, "not computable from the data: reviewer input needed (not serious until judged)"),
        GradeDomain.IMPRECISION: rate_imprecision(est, lb, ub, n, thresholds),
        GradeDomain.PUBLICATION_BIAS: rate_publication_bias(fit.k, regtest, ranktest, thresholds),
    }
    judgements = dict(judgements or {})
    unknown = sorted(set(judgements) - set(DOMAINS))
    if unknown:
        raise ValueError(f"{analysis_id}: judgements for unknown domain(s) {unknown}; domains: {DOMAINS}")
    domains = tuple(DomainRating(d, *suggestions[d], judgement=judgements.get(d)) for d in GradeDomain)
    sd = thresholds.sd_points
    return GradeAssessment(
        analysis_id=analysis_id, k=fit.k, participants=n, estimate=est, ci_lb=lb, ci_ub=ub,
        points=est * sd, points_lb=lb * sd, points_ub=ub * sd, thresholds=thresholds, domains=domains,
    )  # fmt: skip


# --------------------------------------------------------------------------- reviewer judgements
_JUDGEMENT_KEYS = {"downgrade", "rationale"}


def _judgement(raw, *, where: str, domain: str) -> Judgement:
    if domain not in DOMAINS:
        raise SpecError(f"{where}: unknown domain {domain!r}; domains: {', '.join(DOMAINS)}")
    if not isinstance(raw, dict):
        raise SpecError(f"{where}.{domain}: expected a mapping with downgrade and rationale")
    unknown = sorted(set(raw) - _JUDGEMENT_KEYS)
    if unknown:
        raise SpecError(f"{where}.{domain}: unknown key(s) {unknown}; allowed: downgrade, rationale")
    down = raw.get("downgrade")
    if isinstance(down, bool) or down not in (0, 1, 2):
        raise SpecError(f"{where}.{domain}: downgrade must be 0, 1 or 2 (levels), got {down!r}")
    rationale = raw.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        raise SpecError(
            f"{where}.{domain}: a judgement overrides the suggestion only with a written rationale"
        )
    return Judgement(GradeDomain(domain), int(down), rationale.strip())


def load_judgements(path: str | Path) -> dict[str, dict[str, Judgement]]:
    """Read `analyses/grade.yaml`: `defaults` (domain -> judgement, for every analysis) and `analyses`
    (analysis id -> domain -> judgement). Returns analysis id -> domain -> Judgement, with the key "*"
    holding the defaults; use `judgements_for`. Safe YAML; unknown keys and missing rationales are errors."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: cannot read (no such file)")
    doc = load_yaml(path, what="GRADE judgements")  # strict: no aliases, no duplicate keys, size limit
    doc = doc or {}
    if not isinstance(doc, dict) or set(doc) - {"defaults", "analyses"}:
        raise SpecError(f"{path}: top-level keys must be 'defaults' and/or 'analyses'")
    out: dict[str, dict[str, Judgement]] = {}
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SpecError(f"{path}: defaults must map domains to judgements")
    out["*"] = {d: _judgement(v, where=f"{path}: defaults", domain=d) for d, v in defaults.items()}
    analyses = doc.get("analyses") or {}
    if not isinstance(analyses, dict):
        raise SpecError(f"{path}: analyses must map analysis ids to domains")
    for aid, domains in analyses.items():
        if not isinstance(domains, dict):
            raise SpecError(f"{path}: analyses.{aid} must map domains to judgements")
        out[str(aid)] = {
            d: _judgement(v, where=f"{path}: analyses.{aid}", domain=d) for d, v in domains.items()
        }
    return out


def judgements_for(table: Mapping[str, Mapping[str, Judgement]], analysis_id: str) -> dict[str, Judgement]:
    """The defaults overlaid with the analysis's own judgements."""
    return {**table.get("*", {}), **table.get(analysis_id, {})}


# --------------------------------------------------------------------------- summary of findings
def smd_phrase(est: float, lb: float, ub: float) -> str:
    """GRADEpro's wording: 'SMD 0.28 SD lower (0.42 lower to 0.14 lower)'."""

    def word(x: float) -> str:
        return f"{abs(x):.2f} {'lower' if x < 0 else 'higher'}"

    return f"SMD {abs(est):.2f} SD {'lower' if est < 0 else 'higher'} ({word(lb)} to {word(ub)})"



def _titles(analysis_id: str, review: Review | None) -> tuple[str, str]:
    """(Outcome, Comparison) cells of a summary-of-findings row, in the words review.yaml declares."""
    c = ContrastId.parse(analysis_id, review) if review is not None else None
    if c is None:
        return analysis_id, ""
    suffix = f" ({c.suffix})" if c.suffix else ""
    outcome = review.outcome(c.outcome).label
    if c.window:
        outcome += f", {review.window(c.window).label}"
    return outcome + suffix, review.comparison_title(c.comparator) if c.comparator else ""


#: Where the review's own certainty ratings are read, in this order (the Results first).
REVIEW_PLACES = (Place.RESULTS, Place.ABSTRACT, Place.DISCUSSION, Place.CONCLUSIONS)


def review_ratings(published: Registry, analysis_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """The review's own certainty for `analysis_id` as (rating, places where it is printed), one item per
    distinct rating, in the order of `REVIEW_PLACES` (e.g. [("very low", ("results", "abstract")),
    ("low", ("discussion",))]); empty when the review prints none."""
    out: dict[str, list[str]] = {}
    for place in REVIEW_PLACES:
        rating = published.certainty(analysis_id, place)
        if rating:
            out.setdefault(rating, []).append(str(place))
    return [(rating, tuple(places)) for rating, places in out.items()]


def _review_rating(published: Registry | None, analysis_id: str) -> str:
    if published is None:
        return ""
    places = []
    for place in (Place.RESULTS, Place.ABSTRACT, Place.DISCUSSION):
        rating = published.certainty(analysis_id, place)
        if rating:
            places.append((place, rating))
    if not places:
        return "not reported"
    if len({r for _, r in places}) == 1:
        return places[0][1].capitalize()
    return "; ".join(f"{r.capitalize()} ({p})" for p, r in places)


def summary_of_findings(assessments, published: Registry | None = None, review: Review | None = None
                        ) -> pd.DataFrame:
    """Summary-of-findings rows in the GRADEpro layout, the review's own rating beside ours.

    Columns: Outcome, Comparison, № of participants (studies), Effect (SMD, 95% CI), Effect in VAS
    points (95% CI), Certainty (GRADE), Explanations (lettered footnotes for each downgrade), Review's
    certainty. Footnote letters run through the table (a, b, c, ...)."""
    rows, letter = [], 0
    for a in assessments:
        outcome, comparison = _titles(a.analysis_id, review)
        marks, notes = [], []
        for d in a.domains:
            if d.downgrade == 0:
                continue
            mark = footnote_letter(letter)
            letter += 1
            marks.append(mark)
            notes.append(
                f"{mark}. Downgraded {LEVEL_WORDS[d.downgrade]} for {DOMAIN_TITLES[d.domain].lower()}: "
                f"{d.explanation}."
            )
        rows.append(
            {
                "Outcome": outcome,
                "Comparison": comparison,
                "№ of participants (studies)": f"{a.participants} ({a.k} RCTs)",
                "Effect (SMD, 95% CI)": smd_phrase(a.estimate, a.ci_lb, a.ci_ub),
                "Effect in VAS points (95% CI)": _points_text(a),
                "Certainty (GRADE)": f"{a.symbols} {a.certainty}" + (f" {','.join(marks)}" if marks else ""),
                "Explanations": "\n".join(notes),
                "Review's certainty": _review_rating(published, a.analysis_id),
            }
        )
    return pd.DataFrame(rows)


def _points_text(a: GradeAssessment) -> str:
    """The SMD re-expressed in points of the common scale, with the MID and SD used ("" when none)."""
    th = a.thresholds
    if not np.isfinite(a.points):
        return ""
    on = f" on {th.scale}" if th.scale else ""
    mid = f"MID {th.mid_points:g}" if th.has_mid else "no MID declared"
    return (f"{a.points:.2f} ({a.points_lb:.2f} to {a.points_ub:.2f}) points{on}; {mid}; "
            f"SD {th.sd_points:.2f} ({th.sd_source})")


def evidence_profile(assessments, review: Review | None = None) -> pd.DataFrame:
    """The GRADE evidence profile: one row per analysis with each domain's rating ("not serious" /
    "serious" / "very serious"), who decided it, and the resulting certainty (GRADEpro's layout, with
    "Other considerations" holding publication bias)."""
    rows = []
    for a in assessments:
        outcome, comparison = _titles(a.analysis_id, review)
        row = {
            "Analysis": a.analysis_id,
            "Outcome": outcome,
            "Comparison": comparison,
            "№ of studies": a.k,
            "Study design": "randomised trials",
        }
        for d in a.domains:
            bias = d.domain == GradeDomain.PUBLICATION_BIAS
            title = "Other considerations" if bias else DOMAIN_TITLES[d.domain]
            text = (
                d.rating
                if not bias
                else ("publication bias strongly suspected" if d.downgrade else "none")
            )
            row[title] = text + (" (reviewer)" if d.judgement else "")
        row["Certainty"] = f"{a.symbols} {a.certainty}"
        rows.append(row)
    return pd.DataFrame(rows)


def footnote_letter(i: int) -> str:
    """The footnote mark of the i-th note (from 0): a, b, ..., z, aa, ab, ..."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(97 + r) + s
    return s



__all__ = [
    "DOMAINS", "DomainRating", "GradeAssessment", "evidence_profile", "footnote_letter", "GradeThresholds", "Judgement",
    "grade_analysis", "judgements_for", "load_judgements", "optimal_information_size", "review_ratings", "smd_phrase",
    "Suggestion", "summary_of_findings",
]  # fmt: skip
