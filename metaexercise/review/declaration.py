"""The project file, `review.yaml`: what is specific to one review, declared as data.

The package knows no review's outcomes, comparators, follow-up windows, thresholds, codes or texts; a project
declares them here and every floor above the engine reads them from the `Review` this module returns. The
back-pain review's own values live in its `review.yaml`, each with its source. `metaexercise init` writes a
minimal one from a table of arms.

Layout (keys marked * are required; everything else has the default shown in `Review`'s fields)::

    title*: "…"                      # the review's title, shown on the book's cover
    citation: "…"                    # the published review, when there is one
    question: {population, intervention, comparison, outcomes, study_design}   # PICOS, free text
    effect:
      measure: SMD                   # SMD: Hedges' g | MD: mean difference on one scale (the outcome's
                                     # common_scale, else one instrument's units); experimental minus control
      basis: change                  # change | final | either (see EFFECT_BASES)
    labels: {experimental, control, favours_experimental, favours_control}     # plot and table labels
    arm_roles: {experimental: "…", control: "…"}                                # codes of arms.arm_role
    outcomes*:                       # one entry per outcome the review pools
      - id*: pain
        label*: "Pain intensity"
        benefit: lower               # lower | higher: which direction of the scale is better
        common_scale: {min: 0, max: 10}            # normalisation target, when the review uses one
        mid: {value: 1.5, source: "…"}             # minimal important difference on the common scale
        typical_sd: {value: 1.64, instrument: NRS, source: "…"}   # for back-transforming SMDs
    comparators:                     # classes of control arms; an analysis names one (or "any")
      - {id*: active, label*: "…", control_types*: ["active exercise"], comparison: "…"}   # comparison: the
                                     # summary of findings' "Comparison" cell (default "<experimental> vs <label>")
    control_types: ["…"]             # codes of arms.control_type (default: those the comparators name)
    timepoint_unit: weeks            # the unit of outcomes.timepoint (any word: days, weeks, months, …)
    windows:                         # follow-up windows; none when the review has one time point
      - {id*: short, label*: "…", target*: 12, lower*: 1, upper*: 32, lower_open: false, ties: later}
    moderators:                      # study-level characteristics (columns of the studies sheet)
      - {name*: training_weeks, label: "…", type*: numeric, minimum: 0, maximum: null, table: true}
      - {name*: psych_component, label: "…", type*: categorical, levels*: [none, CBT, …]}
    risk_of_bias: {tool: "…", domains: [{id, label}], judgements: [low, some concerns, high]}
    grade: {rob_high_share, i2_moderate, i2_considerable, bias_min_k, bias_p, alpha, power}
    prisma_previous: {records_identified, …, source}   # the previous edition's counts (updated reviews)
    dependence: {rho_time: 0.6, source: "…"}   # the dependence sensitivity analysis (review.dependence): the
                                     # assumed correlation of a trial's effects at two follow-up windows
    bayes:                           # the Bayesian random-effects model beside each main contrast
      tau_prior: {name: halfnormal, scale: 0.5, source: "…"}   # prior of tau for every outcome not listed
      tau_priors: {pain: {name: "Rhodes2015:pain:non-pharmacological:placebo", source: "…"}}   # per outcome
      mu_prior: flat                 # flat (improper uniform) | {mean: 0, sd: 1, source: "…"}
    prediction_interval: {method: z, why: "…"}   # the PI the run reports (z | t(k-1) | t(k-2) | knha), and why
    components: {published, grade_judgements, guidelines, replica, simulation}

A `bayes` prior's `name` is any `tau_prior` name of `metaexercise.engine.bayes.bayesmeta` ("halfnormal",
"halfcauchy", "exponential" and "uniform" with `scale`: the scale, the mean, the upper bound; bayesmeta's
reference priors; "Rhodes2015[:outcome:comparator1:comparator2[:area]]", the empirical priors of Rhodes et al.
2015 for standardised mean differences); Turner et al. 2015's priors are for log odds ratios and are refused,
Rhodes et al.'s too when the review pools mean differences. The default, a half-normal prior with scale 0.5, is
on the SMD scale (`TAU_PRIOR_SOURCE`); a review of mean differences declares its own.

Unknown keys, wrong types and values outside their allowed set raise `SpecError` naming the file, the line
and the key. The Handbook's rule on change and final values (Cochrane Handbook 6.5.2.8, 10.5.2): they may be
mixed in an MD meta-analysis but not in an SMD one, because the SDs of change and of final values measure
different things; a project that pools SMDs therefore chooses `change` or `final`, and `either` is accepted
only with measure MD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaexercise.errors import SpecError
from metaexercise.strict_yaml import line_of, load_yaml

#: The project file's name, at the project's root.
FILE_NAME = "review.yaml"

MEASURES = ("SMD", "MD")
EFFECT_BASES = ("change", "final", "either")
BENEFITS = ("lower", "higher")
MODERATOR_TYPES = ("numeric", "categorical")
TIES = ("later", "earlier")
#: The comparator id that pools every declared class (meta-regressions with the class as a moderator).
ANY_COMPARATOR = "any"


@dataclass(frozen=True, slots=True)
class Sourced:
    """A number with the source it was taken from."""

    value: float
    source: str = ""
    instrument: str | None = None  #: for a typical SD: the instrument whose SD it is


@dataclass(frozen=True, slots=True)
class OutcomeDecl:
    id: str
    label: str
    benefit: str = "lower"  #: "lower": lower values of the (common) scale are better
    common_min: float | None = None
    common_max: float | None = None
    mid: Sourced | None = None
    typical_sd: Sourced | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.benefit == "lower"

    @property
    def normalised(self) -> bool:
        """Whether the review puts this outcome's instruments on one common scale."""
        return self.common_min is not None and self.common_max is not None


@dataclass(frozen=True, slots=True)
class ComparatorDecl:
    id: str
    label: str
    control_types: tuple[str, ...]
    comparison: str | None = None  #: how a summary of findings names the comparison (None: see `Review`)


@dataclass(frozen=True, slots=True)
class WindowDecl:
    """A follow-up window: the time point closest to `target` within [lower, upper] (`lower_open` excludes
    the lower bound); ties go to the `ties` ("later" or "earlier") time point. Units: `Review.timepoint_unit`."""

    id: str
    label: str
    target: float
    lower: float
    upper: float
    lower_open: bool = False
    ties: str = "later"


@dataclass(frozen=True, slots=True)
class ModeratorDecl:
    name: str
    label: str
    type: str  #: "numeric" or "categorical"
    levels: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    table: bool = False  #: shown in the book's table of study characteristics

    @property
    def categorical(self) -> bool:
        return self.type == "categorical"


@dataclass(frozen=True, slots=True)
class RobDecl:
    tool: str = "Cochrane risk-of-bias tool"
    domains: tuple[tuple[str, str], ...] = ()  #: (id, label)
    judgements: tuple[str, ...] = ("low", "some concerns", "high")


@dataclass(frozen=True, slots=True)
class GradeDecl:
    """GRADE's rule constants (review.grade documents each rule): the share of weight from high-risk studies
    that downgrades for risk of bias, the I² bounds for inconsistency, the smallest k for a funnel test and
    its p-value threshold, and the α and power of the optimal information size."""

    rob_high_share: float = 0.25
    i2_moderate: float = 40.0
    i2_considerable: float = 75.0
    bias_min_k: int = 10
    bias_p: float = 0.10
    alpha: float = 0.05
    power: float = 0.8


#: Where the default within-study correlation across follow-up windows comes from.
RHO_TIME_SOURCE = ("Pustejovsky JE, Tipton E. Meta-analysis with robust variance estimation: expanding the range "
                   "of working models. Prev Sci 2022;23:425-438 (the correlated-and-hierarchical-effects working "
                   "model with an assumed within-study correlation of 0.6)")


@dataclass(frozen=True, slots=True)
class DependenceDecl:
    """The dependence sensitivity analysis (`metaexercise.review.dependence`): `rho_time`, the assumed
    correlation between one trial's effects at two follow-up windows (0 <= rho_time < 1), and its source."""

    rho_time: float = 0.6
    source: str = RHO_TIME_SOURCE


#: Where the default prior of the heterogeneity tau comes from (on the SMD scale).
TAU_PRIOR_SOURCE = ("Friede T, Roever C, Wandel S, Neuenschwander B. Meta-analysis of two studies in the presence of "
                    "heterogeneity with applications in rare diseases. Biom J 2017;59(4):658-671, "
                    "doi:10.1002/bimj.201500236; Roever C. Bayesian random-effects meta-analysis using the bayesmeta "
                    "R package. J Stat Softw 2020;93(6), doi:10.18637/jss.v093.i06: a half-normal prior with scale "
                    "0.5 for tau, weakly informative (95% of its mass below tau = 0.98) on the scale of "
                    "standardised mean differences")
#: The prediction-interval methods a project may state it reports (`PredictionIntervalDecl`).
PI_METHODS = ("z", "t(k-1)", "t(k-2)", "knha")
#: Why the default is what it is.
PI_WHY = ("metafor's default: predict.rma under test='z' takes the normal quantile, mu-hat +/- z sqrt(SE^2 + "
          "tau^2-hat) (Viechtbauer W. J Stat Softw 2010;36(3); metafor 3.8 predict.rma)")
#: Empirical priors of tau for log odds ratios (Turner et al. 2015): not for the effects this toolkit pools.
_LOG_OR_PRIORS = ("turner2015",)


@dataclass(frozen=True, slots=True)
class TauPriorDecl:
    """A prior of the heterogeneity tau for `metaexercise.engine.bayes.bayesmeta` (its `tau_prior` name and
    `tau_prior_scale`), with its source."""

    name: str = "halfnormal"
    scale: float | None = 0.5
    source: str = TAU_PRIOR_SOURCE

    def describe(self) -> str:
        """"halfnormal(scale=0.5)", or the name of a prior without a scale."""
        return f"{self.name}(scale={self.scale:g})" if self.scale is not None else self.name

    @property
    def label(self) -> str:
        """The distribution as bayesmeta prints it ("half-normal(scale=0.5)", "log-Student-t(location=-1.510,
        scale=1.135, d.f.=5)"; a reference prior by its name)."""
        import numpy as np

        from metaexercise.engine.bayes_priors import resolve_tau_prior

        return resolve_tau_prior(self.name, self.scale, np.array([0.05, 0.1, 0.2])).label


@dataclass(frozen=True, slots=True)
class MuPriorDecl:
    """A normal prior of the overall effect mu (bayesmeta's mu.prior.mean, mu.prior.sd), with its source."""

    mean: float
    sd: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class BayesDecl:
    """The Bayesian random-effects model shown beside each main contrast (`metaexercise.review.bayes_summary`):
    the tau prior of every outcome (`tau_priors`: (outcome id, prior) pairs; others get `tau_prior`) and the
    prior of mu (None: the improper flat prior, bayesmeta's default)."""

    tau_prior: TauPriorDecl = TauPriorDecl()
    tau_priors: tuple[tuple[str, TauPriorDecl], ...] = ()
    mu_prior: MuPriorDecl | None = None

    def tau_prior_for(self, outcome_id: str) -> TauPriorDecl:
        return dict(self.tau_priors).get(outcome_id, self.tau_prior)


@dataclass(frozen=True, slots=True)
class PredictionIntervalDecl:
    """Which 95% prediction interval the project reports (one of `PI_METHODS`: mu-hat +/- c sqrt(SE^2 + tau^2)
    with c from N(0, 1), t(k-1) or t(k-2), or "knha": t(k-1) with the Knapp-Hartung SE) and why."""

    method: str = "z"
    why: str = PI_WHY


@dataclass(frozen=True, slots=True)
class Labels:
    experimental: str = "Experimental"
    control: str = "Control"
    favours_experimental: str = "Favours experimental"
    favours_control: str = "Favours control"


@dataclass(frozen=True, slots=True)
class Components:
    """Optional parts of a project; a path is relative to the project's root, None when absent."""

    published: str | None = None  #: registry of the review's printed numbers (analyses/published.yaml)
    grade_judgements: str | None = None  #: reviewers' GRADE judgements (analyses/grade.yaml)
    guidelines: str | None = None  #: guideline recommendations for the guidelines page
    replica: bool = False  #: a labelled synthetic replica generated by committed, seeded code
    simulation: bool = False  #: a simulation study of the estimators on the methods page


@dataclass(frozen=True, slots=True)
class Review:
    title: str
    outcomes: tuple[OutcomeDecl, ...]
    citation: str | None = None
    question: dict[str, str] = field(default_factory=dict)
    measure: str = "SMD"
    basis: str = "change"
    labels: Labels = Labels()
    role_experimental: str = "experimental"
    role_control: str = "control"
    comparators: tuple[ComparatorDecl, ...] = ()
    control_types: tuple[str, ...] = ()
    timepoint_unit: str = "weeks"
    windows: tuple[WindowDecl, ...] = ()
    moderators: tuple[ModeratorDecl, ...] = ()
    risk_of_bias: RobDecl = RobDecl()
    grade: GradeDecl = GradeDecl()
    prisma_previous: dict[str, Any] | None = None
    components: Components = Components()
    path: str = FILE_NAME
    dependence: DependenceDecl = DependenceDecl()
    bayes: BayesDecl = BayesDecl()
    prediction_interval: PredictionIntervalDecl = PredictionIntervalDecl()

    # ---------------------------------------------------------------------------------- look-ups
    def outcome(self, outcome_id: str) -> OutcomeDecl:
        for o in self.outcomes:
            if o.id == outcome_id:
                return o
        raise KeyError(f"{self.path}: no outcome {outcome_id!r}; declared: {', '.join(self.outcome_ids)}")

    @property
    def outcome_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.outcomes)

    def comparator(self, comparator_id: str) -> ComparatorDecl:
        for c in self.comparators:
            if c.id == comparator_id:
                return c
        raise KeyError(f"{self.path}: no comparator {comparator_id!r}; declared: "
                       f"{', '.join(self.comparator_ids)}")

    @property
    def comparator_ids(self) -> tuple[str, ...]:
        """Declared classes, and "any" (all of them together) when there are any."""
        ids = tuple(c.id for c in self.comparators)
        return (*ids, ANY_COMPARATOR) if ids else ()

    def window(self, window_id: str) -> WindowDecl:
        for w in self.windows:
            if w.id == window_id:
                return w
        raise KeyError(f"{self.path}: no window {window_id!r}; declared: {', '.join(self.window_ids)}")

    @property
    def window_ids(self) -> tuple[str, ...]:
        return tuple(w.id for w in self.windows)

    def moderator(self, name: str) -> ModeratorDecl:
        for m in self.moderators:
            if m.name == name:
                return m
        raise KeyError(f"{self.path}: no moderator {name!r}; declared: "
                       f"{', '.join(m.name for m in self.moderators)}")

    def comparator_types(self, comparator_id: str) -> tuple[str, ...]:
        """The control types an analysis against `comparator_id` pools ("any": every declared class's)."""
        if comparator_id == ANY_COMPARATOR:
            return tuple(dict.fromkeys(t for c in self.comparators for t in c.control_types))
        return self.comparator(comparator_id).control_types

    def comparison_title(self, comparator_id: str) -> str:
        """The summary of findings' "Comparison" cell: the comparator's declared `comparison`, else
        "<experimental label> vs <comparator label>"."""
        if comparator_id == ANY_COMPARATOR:
            return f"{self.labels.experimental} vs any comparator"
        c = self.comparator(comparator_id)
        return c.comparison or f"{self.labels.experimental} vs {c.label}"

    def to_dict(self) -> dict[str, Any]:
        """The declaration as plain data (what `metaexercise run` writes to results/review.json for the book)."""
        def sourced(s: Sourced | None) -> dict | None:
            if s is None:
                return None
            out = {"value": s.value, "source": s.source}
            if s.instrument is not None:
                out["instrument"] = s.instrument
            return out

        def tau_prior(p: TauPriorDecl) -> dict:
            return {"name": p.name, "scale": p.scale, "label": p.label, "source": p.source}

        c = self.components
        return {
            "title": self.title, "citation": self.citation, "question": dict(self.question),
            "effect": {"measure": self.measure, "basis": self.basis},
            "labels": {k: getattr(self.labels, k) for k in Labels.__dataclass_fields__},
            "arm_roles": {"experimental": self.role_experimental, "control": self.role_control},
            "outcomes": [{"id": o.id, "label": o.label, "benefit": o.benefit,
                          "common_scale": ({"min": o.common_min, "max": o.common_max} if o.normalised else None),
                          "mid": sourced(o.mid), "typical_sd": sourced(o.typical_sd)} for o in self.outcomes],
            "comparators": [{"id": x.id, "label": x.label, "control_types": list(x.control_types),
                             "comparison": self.comparison_title(x.id)} for x in self.comparators],
            "control_types": list(self.control_types), "timepoint_unit": self.timepoint_unit,
            "windows": [{"id": w.id, "label": w.label, "target": w.target, "lower": w.lower, "upper": w.upper,
                         "lower_open": w.lower_open, "ties": w.ties} for w in self.windows],
            "moderators": [{"name": m.name, "label": m.label, "type": m.type, "levels": list(m.levels),
                            "minimum": m.minimum, "maximum": m.maximum, "table": m.table}
                           for m in self.moderators],
            "risk_of_bias": {"tool": self.risk_of_bias.tool,
                             "domains": [{"id": i, "label": lab} for i, lab in self.risk_of_bias.domains],
                             "judgements": list(self.risk_of_bias.judgements)},
            "grade": {k: getattr(self.grade, k) for k in GradeDecl.__dataclass_fields__},
            "prisma_previous": self.prisma_previous,
            # paths (relative to the project) for the declared files, flags for the generated parts
            "components": {"published": c.published, "grade_judgements": c.grade_judgements,
                           "guidelines": c.guidelines, "replica": c.replica, "simulation": c.simulation},
            "dependence": {"rho_time": self.dependence.rho_time, "source": self.dependence.source},
            "bayes": {"tau_prior": tau_prior(self.bayes.tau_prior),
                      "tau_priors": {o.id: tau_prior(self.bayes.tau_prior_for(o.id)) for o in self.outcomes},
                      "mu_prior": (None if self.bayes.mu_prior is None else
                                   {"mean": self.bayes.mu_prior.mean, "sd": self.bayes.mu_prior.sd,
                                    "source": self.bayes.mu_prior.source})},
            "prediction_interval": {"method": self.prediction_interval.method, "why": self.prediction_interval.why},
        }

    @property
    def mixes_bases(self) -> bool:
        """True when change and final values may be pooled together (only for MD: Handbook 10.5.2)."""
        return self.basis == "either"

    def sheet_vocabulary(self):
        """What the project's extraction sheets accept (`metaexercise.extraction.vocabulary.SheetVocabulary`):
        the declared outcome ids and common scales, arm-role codes, control types, risk-of-bias domains (their
        labels, as the sheets hold them) and judgements, and the moderators (extra studies columns)."""
        from metaexercise.extraction.vocabulary import ModeratorColumn, OutcomeCode, SheetVocabulary

        return SheetVocabulary(
            outcomes=tuple(OutcomeCode(o.id, o.common_min, o.common_max, o.label, not o.lower_is_better)
                           for o in self.outcomes),
            role_experimental=self.role_experimental, role_control=self.role_control,
            control_types=self.control_types,
            rob_domains=tuple(label for _, label in self.risk_of_bias.domains),
            rob_judgements=self.risk_of_bias.judgements,
            moderators=tuple(ModeratorColumn(m.name, m.categorical, m.levels, m.minimum, m.maximum, m.label)
                             for m in self.moderators),
            declared_in=Path(self.path).name,
        )


# --------------------------------------------------------------------------------------- the loader
class _Reader:
    """Checks one mapping of the file against its allowed keys and types, naming file, line and key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where, key: str | None, message: str):
        line = line_of(where, key) if where is not None else None
        loc = f"{self.path}" + (f", line {line}" if line else "")
        raise SpecError(f"{loc}: {key + ': ' if key else ''}{message}")

    def mapping(self, value, where, key: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(where, key, f"must be a mapping, not {type(value).__name__}")
        for k in value:
            if k not in allowed:
                self.fail(value, k, f"unknown key in {key} (allowed: {', '.join(sorted(allowed))})")
        for k in required:
            if value.get(k) in (None, ""):
                self.fail(value, None, f"{key}.{k} is required")
        return value

    def text(self, m: dict, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        v = m.get(key, default)
        if v is None:
            if required:
                self.fail(m, None, f"{key} is required")
            return None
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            self.fail(m, key, "must be text")
        return str(v).strip()

    def number(self, m: dict, key: str, default: float | None = None, *, required: bool = False) -> float | None:
        v = m.get(key, default)
        if v is None:
            if required:
                self.fail(m, None, f"{key} is required")
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.fail(m, key, f"must be a number, not {v!r}")
        return float(v)

    def flag(self, m: dict, key: str, default: bool) -> bool:
        v = m.get(key, default)
        if not isinstance(v, bool):
            self.fail(m, key, f"must be true or false, not {v!r}")
        return v

    def choice(self, m: dict, key: str, allowed: tuple[str, ...], default: str) -> str:
        v = self.text(m, key, default)
        if v not in allowed:
            self.fail(m, key, f"{v!r} is not one of {', '.join(allowed)}")
        return v

    def texts(self, m: dict, key: str) -> tuple[str, ...]:
        v = m.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str | int | float) and not isinstance(x, bool)
                                              for x in v):
            self.fail(m, key, "must be a list of texts")
        out = tuple(str(x).strip() for x in v)
        dup = sorted({x for x in out if out.count(x) > 1})
        if dup:
            self.fail(m, key, f"repeats {', '.join(dup)}")
        return out

    def items(self, m: dict, key: str) -> list:
        v = m.get(key) or []
        if not isinstance(v, list):
            self.fail(m, key, "must be a list")
        return v

    def ident(self, m: dict, key: str = "id") -> str:
        v = self.text(m, key, required=True)
        if not v or not v.replace("_", "a").replace("-", "a").isalnum() or not v[0].isalpha() or v != v.lower():
            self.fail(m, key, f"{v!r} must be lower-case letters, digits, '_' or '-', starting with a letter")
        return v

    def sourced(self, m: dict, key: str, *, instrument: bool = False) -> Sourced | None:
        if m.get(key) is None:
            return None
        allowed = {"value", "source"} | ({"instrument"} if instrument else set())
        s = self.mapping(m[key], m, key, allowed, ("value",))
        value = self.number(s, "value", required=True)
        if not value > 0:
            self.fail(s, "value", f"must be > 0, not {value:g}")
        return Sourced(value, self.text(s, "source", "") or "", self.text(s, "instrument") if instrument else None)


_TOP = {"title", "citation", "question", "effect", "labels", "arm_roles", "outcomes", "comparators",
        "control_types", "timepoint_unit", "windows", "moderators", "risk_of_bias", "grade", "prisma_previous",
        "components", "dependence", "bayes", "prediction_interval"}


def load_review(path: str | Path) -> Review:
    """The review declared in the project file at `path` (usually PROJECT/review.yaml)."""
    path = Path(path)
    doc = load_yaml(path, what="project file")
    if doc is None:
        raise SpecError(f"{path}: the project file is empty; it declares at least the review's title and outcomes "
                        "(`metaexercise init` writes one; schema: metaexercise/review/declaration.py)")
    r = _Reader(path)
    top = r.mapping(doc, None, "the project file", _TOP, ("title", "outcomes"))

    question = r.mapping(top.get("question"), top, "question",
                         {"population", "intervention", "comparison", "outcomes", "study_design"})
    question = {k: r.text(question, k) or "" for k in question}
    effect = r.mapping(top.get("effect"), top, "effect", {"measure", "basis"})
    measure = r.choice(effect, "measure", MEASURES, "SMD")
    basis = r.choice(effect, "basis", EFFECT_BASES, "change")
    if basis == "either" and measure == "SMD":
        r.fail(effect, "basis", "'either' would pool change and final values in one SMD, which the Cochrane "
                                "Handbook (10.5.2) rules out: their SDs measure different things. Choose "
                                "'change' or 'final', or use measure MD")
    lab = r.mapping(top.get("labels"), top, "labels",
                    {"experimental", "control", "favours_experimental", "favours_control"})
    labels = Labels(**{k: r.text(lab, k) for k in lab})
    roles = r.mapping(top.get("arm_roles"), top, "arm_roles", {"experimental", "control"})

    outcomes = []
    for item in r.items(top, "outcomes"):
        o = r.mapping(item, top, "outcomes", {"id", "label", "benefit", "common_scale", "mid", "typical_sd"},
                      ("id", "label"))
        scale = r.mapping(o.get("common_scale"), o, "common_scale", {"min", "max"}) if "common_scale" in o else {}
        lo, hi = r.number(scale, "min"), r.number(scale, "max")
        if (lo is None) != (hi is None) or (lo is not None and not lo < hi):
            r.fail(o, "common_scale", "needs min < max")
        outcomes.append(OutcomeDecl(r.ident(o), r.text(o, "label"), r.choice(o, "benefit", BENEFITS, "lower"),
                                    lo, hi, r.sourced(o, "mid"), r.sourced(o, "typical_sd", instrument=True)))
    if not outcomes:
        r.fail(top, "outcomes", "declare at least one outcome")
    _unique(r, top, "outcomes", [o.id for o in outcomes])

    comparators = []
    for item in r.items(top, "comparators"):
        c = r.mapping(item, top, "comparators", {"id", "label", "control_types", "comparison"},
                      ("id", "label", "control_types"))
        cid = r.ident(c)
        if cid == ANY_COMPARATOR:
            r.fail(c, "id", f"'{ANY_COMPARATOR}' is reserved: it names all comparator classes together")
        comparators.append(ComparatorDecl(cid, r.text(c, "label"), r.texts(c, "control_types"),
                                          r.text(c, "comparison")))
    _unique(r, top, "comparators", [c.id for c in comparators])
    named = tuple(dict.fromkeys(t for c in comparators for t in c.control_types))
    control_types = r.texts(top, "control_types") if "control_types" in top else named
    missing = [t for t in named if t not in control_types]
    if missing:
        r.fail(top, "control_types", f"lacks {', '.join(missing)}, which a comparator names")

    windows = []
    for item in r.items(top, "windows"):
        w = r.mapping(item, top, "windows", {"id", "label", "target", "lower", "upper", "lower_open", "ties"},
                      ("id", "label", "target", "lower", "upper"))
        win = WindowDecl(r.ident(w), r.text(w, "label"), r.number(w, "target"), r.number(w, "lower"),
                         r.number(w, "upper"), r.flag(w, "lower_open", False), r.choice(w, "ties", TIES, "later"))
        if not win.lower <= win.target <= win.upper:
            r.fail(w, "target", f"{win.target:g} must lie within lower {win.lower:g} and upper {win.upper:g}")
        windows.append(win)
    _unique(r, top, "windows", [w.id for w in windows])

    moderators = []
    for item in r.items(top, "moderators"):
        m = r.mapping(item, top, "moderators",
                      {"name", "label", "type", "levels", "minimum", "maximum", "table"}, ("name", "type"))
        kind = r.choice(m, "type", MODERATOR_TYPES, "numeric")
        levels = r.texts(m, "levels")
        if kind == "categorical" and len(levels) < 2:
            r.fail(m, "levels", "a categorical moderator needs at least two levels (the first is the reference)")
        if kind == "numeric" and levels:
            r.fail(m, "levels", "only categorical moderators have levels")
        name = r.ident(m, "name")
        moderators.append(ModeratorDecl(name, r.text(m, "label") or name, kind, levels,
                                        r.number(m, "minimum"), r.number(m, "maximum"), r.flag(m, "table", False)))
    _unique(r, top, "moderators", [m.name for m in moderators])

    rob = r.mapping(top.get("risk_of_bias"), top, "risk_of_bias", {"tool", "domains", "judgements"})
    domains = []
    for item in r.items(rob, "domains"):
        d = r.mapping(item, rob, "domains", {"id", "label"}, ("id", "label"))
        domains.append((r.text(d, "id"), r.text(d, "label")))
    default = RobDecl()  # class attributes of a slots dataclass are descriptors, not the defaults
    risk = RobDecl(r.text(rob, "tool", default.tool), tuple(domains),
                   r.texts(rob, "judgements") if "judgements" in rob else default.judgements)

    g = r.mapping(top.get("grade"), top, "grade", set(GradeDecl.__dataclass_fields__))
    grade = GradeDecl(**{k: (int(r.number(g, k)) if k == "bias_min_k" else r.number(g, k)) for k in g})

    prisma = top.get("prisma_previous")
    if prisma is not None:
        prisma = r.mapping(prisma, top, "prisma_previous", set(prisma) if isinstance(prisma, dict) else set())
        for k, v in prisma.items():
            if k != "source" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                r.fail(prisma, k, f"must be a count (a whole number >= 0), not {v!r}")
        prisma = dict(prisma)

    comp = r.mapping(top.get("components"), top, "components", set(Components.__dataclass_fields__))
    components = Components(
        published=r.text(comp, "published"), grade_judgements=r.text(comp, "grade_judgements"),
        guidelines=r.text(comp, "guidelines"), replica=r.flag(comp, "replica", False),
        simulation=r.flag(comp, "simulation", False))

    dep = r.mapping(top.get("dependence"), top, "dependence", {"rho_time", "source"})
    default_dep = DependenceDecl()  # class attributes of a slots dataclass are descriptors, not the defaults
    rho_time = r.number(dep, "rho_time", default_dep.rho_time)
    if not 0 <= rho_time < 1:
        r.fail(dep, "rho_time", f"must be a correlation in [0, 1), not {rho_time:g}")
    if "rho_time" in dep and not r.text(dep, "source"):
        r.fail(dep, None, "dependence.source is required with rho_time (where the assumed correlation comes from)")
    dependence = DependenceDecl(rho_time, r.text(dep, "source") or default_dep.source)

    bayes = _bayes(r, top, measure, [o.id for o in outcomes])
    pi = r.mapping(top.get("prediction_interval"), top, "prediction_interval", {"method", "why"})
    pi_method = r.choice(pi, "method", PI_METHODS, PredictionIntervalDecl().method)
    if "method" in pi and not r.text(pi, "why"):
        r.fail(pi, None, "prediction_interval.why is required with method (why the project reports this interval)")
    prediction_interval = PredictionIntervalDecl(pi_method, r.text(pi, "why") or PredictionIntervalDecl().why)

    return Review(
        title=r.text(top, "title", required=True), outcomes=tuple(outcomes), citation=r.text(top, "citation"),
        question=question, measure=measure, basis=basis, labels=labels,
        role_experimental=r.text(roles, "experimental", "experimental"),
        role_control=r.text(roles, "control", "control"), comparators=tuple(comparators),
        control_types=control_types, timepoint_unit=r.text(top, "timepoint_unit", "weeks"),
        windows=tuple(windows), moderators=tuple(moderators), risk_of_bias=risk, grade=grade,
        prisma_previous=prisma, components=components, path=str(path), dependence=dependence, bayes=bayes,
        prediction_interval=prediction_interval,
    )


def _tau_prior(r: _Reader, value, where, key: str, measure: str) -> TauPriorDecl:
    """One declared tau prior: a name `bayesmeta` resolves (checked here, on placeholder variances), the scale
    a scaled family needs, and a source."""
    import numpy as np

    from metaexercise.engine.bayes_priors import resolve_tau_prior

    m = r.mapping(value, where, key, {"name", "scale", "source"}, ("name", "source"))
    name = r.text(m, "name", required=True)
    scale = r.number(m, "scale")
    head = name.split(":")[0].strip().lower()
    if head in _LOG_OR_PRIORS:
        r.fail(m, "name", f"{name!r}: Turner et al. (2015)'s priors are for log odds ratios; this review pools "
                          f"{'standardised mean differences' if measure == 'SMD' else 'mean differences'} "
                          "(Rhodes2015:... are the empirical priors for SMDs)")
    if head == "rhodes2015" and measure != "SMD":
        r.fail(m, "name", f"{name!r}: Rhodes et al. (2015)'s priors are for standardised mean differences; this "
                          "review pools mean differences (declare a prior on the scale of its points)")
    try:
        resolve_tau_prior(name, scale, np.array([0.05, 0.1, 0.2]))
    except (TypeError, ValueError) as exc:
        r.fail(m, "name", str(exc).removeprefix("bayesmeta: "))
    return TauPriorDecl(name, scale, r.text(m, "source"))


def _bayes(r: _Reader, top: dict, measure: str, outcome_ids: list[str]) -> BayesDecl:
    """The `bayes` block (`BayesDecl`): a default tau prior, tau priors per declared outcome, the mu prior."""
    b = r.mapping(top.get("bayes"), top, "bayes", {"tau_prior", "tau_priors", "mu_prior"})
    default = BayesDecl()  # class attributes of a slots dataclass are descriptors, not the defaults
    tau_prior = (_tau_prior(r, b["tau_prior"], b, "tau_prior", measure) if b.get("tau_prior") is not None
                 else default.tau_prior)
    per = r.mapping(b.get("tau_priors"), b, "tau_priors", set(outcome_ids))
    tau_priors = tuple((str(o), _tau_prior(r, v, per, str(o), measure)) for o, v in per.items())
    mu = b.get("mu_prior")
    mu_prior = None
    if isinstance(mu, str):
        if mu.strip() != "flat":
            r.fail(b, "mu_prior", f"{mu!r} is not 'flat' or a mapping {{mean, sd, source}}")
    elif mu is not None:
        mm = r.mapping(mu, b, "mu_prior", {"mean", "sd", "source"}, ("mean", "sd", "source"))
        mean, sd = r.number(mm, "mean", required=True), r.number(mm, "sd", required=True)
        if not (math.isfinite(mean) and math.isfinite(sd) and sd > 0):
            r.fail(mm, "sd", f"needs a finite mean and a positive finite sd, not mean {mean:g}, sd {sd:g}")
        mu_prior = MuPriorDecl(mean, sd, r.text(mm, "source"))
    return BayesDecl(tau_prior, tau_priors, mu_prior)


def _unique(r: _Reader, where, key: str, ids: list[str]) -> None:
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        r.fail(where, key, f"declares {', '.join(dup)} more than once")
