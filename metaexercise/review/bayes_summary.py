"""The Bayesian random-effects model beside the frequentist result of every main contrast (results/bayes.csv).

Each main contrast's studies, exactly those its fit in analyses.csv pooled (`AnalysisResult.fit`: yi, vi), go
through `metaexercise.engine.bayes.bayesmeta`, the normal-normal hierarchical model integrated numerically as R's
bayesmeta 3.4 does it (Roever 2020, J Stat Softw 93(6), doi:10.18637/jss.v093.i06), with the priors review.yaml
declares (`bayes`: the tau prior of the contrast's outcome, the mu prior; `declaration.BayesDecl`). A row holds

* the posterior of mu (median, mean, sd and the 95% interval), of tau (median and 95% interval) and the
  posterior predictive 95% interval of a new study's effect theta; intervals are bayesmeta's default, the
  shortest ones (Roever 2020, Sec. 2.9);
* P(mu beyond 0 in the direction of benefit) and P(mu beyond the minimal important difference): the outcome's
  MID in points converted to the effect's scale with the SD that re-expresses the analysis's SMD in points
  (analyses.csv ``vas_sd``: the pooled baseline SD of its studies, else the outcome's typical SD;
  `metaexercise.review.vas`), MID / SD; a mean difference on the outcome's common scale is in points already.
  Where no SD exists the row says so (``mid_note``) and gives no probability;
* the frequentist estimate, CI, prediction interval and tau^2 of the same fit (the numbers of analyses.csv) and
  the prediction-interval method that fit used (``freq_pi_method``: metafor's predict.rma takes the normal
  quantile under test="z" and t(k-1) with the Knapp-Hartung SE under test="knha"), against the one the project
  states it reports (review.yaml ``prediction_interval``; a difference is noted).

A main contrast the run could not fit (k < 2) gets a row with its status and no numbers; a prior that leaves
the posterior improper (e.g. the uniform prior of tau with k = 2) gives "not computed" and the engine's
message. A review of mean differences that declares no tau prior gets "not computed": the default prior is on
the SMD scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from metaexercise.engine.bayes import BayesMetaResult, bayesmeta
from metaexercise.review.analyses import AnalysisResult
from metaexercise.review.declaration import OutcomeDecl, Review, TauPriorDecl

#: Columns of bayes.csv, in order (the run adds ``data`` first).
BAYES_COLUMNS = (
    "analysis_id", "label", "k", "tau_prior", "tau_prior_label", "tau_prior_source", "mu_prior", "mu_prior_source",
    "interval_type", "mu_median", "mu_mean", "mu_sd", "mu_lb", "mu_ub", "tau_median", "tau_lb", "tau_ub",
    "theta_lb", "theta_ub", "benefit", "p_benefit", "mid_points", "mid_sd", "mid_effect", "p_mid", "mid_note",
    "freq_estimate", "freq_ci_lb", "freq_ci_ub", "freq_pi_lb", "freq_pi_ub", "freq_tau2", "freq_pi_method",
    "status", "notes",
)
#: bayesmeta's default intervals (Roever 2020, Sec. 2.9).
INTERVAL_TYPE = "shortest"
#: The prediction interval metafor's predict.rma computes under each `rma(test=...)`.
PI_METHOD_OF_TEST = {"z": "z", "knha": "knha"}
NOT_COMPUTED = "not computed"


def mu_prior_text(review: Review) -> tuple[str, str]:
    """(description, source) of the declared mu prior."""
    mp = review.bayes.mu_prior
    if mp is None:
        return "flat (uniform, improper)", "bayesmeta's default (Roever 2020, Sec. 2.2)"
    return f"normal(mean={mp.mean:g}, sd={mp.sd:g})", mp.source


def mid_threshold(outcome: OutcomeDecl, result: AnalysisResult, measure: str) -> tuple[float, float, float, str]:
    """(MID in points, SD, MID on the pooled effect's scale, note): the outcome's MID divided by the SD that
    re-expresses the analysis's SMD in points (`AnalysisResult.vas_sd`, as analyses.csv's vas_* columns); for a
    mean difference on the outcome's common scale, the MID itself. NaN and the reason where there is none."""
    nan = math.nan
    if outcome.mid is None:
        return nan, nan, nan, f"{outcome.id} declares no MID (review.yaml outcomes.mid)"
    mid = float(outcome.mid.value)
    if measure == "MD":
        if outcome.normalised:
            return mid, nan, mid, (f"MD in points of the {outcome.common_min:g}-{outcome.common_max:g} scale: "
                                   "the MID as declared")
        return mid, nan, nan, "MD without a common scale: the MID in points cannot be set against it"
    sd = float(result.vas_sd)
    if not (math.isfinite(sd) and sd > 0):
        return mid, nan, nan, f"not convertible to an SMD: {result.vas_sd_source}"
    return mid, sd, mid / sd, f"MID {mid:g} points / SD {sd:.4g} ({result.vas_sd_source})"


def _frequentist(result: AnalysisResult) -> dict:
    fit = result.fit
    return {"freq_estimate": fit.estimate, "freq_ci_lb": float(fit.ci_lb[0]), "freq_ci_ub": float(fit.ci_ub[0]),
            "freq_pi_lb": fit.pi_lb, "freq_pi_ub": fit.pi_ub, "freq_tau2": fit.tau2,
            "freq_pi_method": PI_METHOD_OF_TEST.get(fit.test, fit.test)}


def posterior_row(res: BayesMetaResult, lower_is_better: bool, mid_effect: float) -> dict:
    """The posterior columns of one row from a `bayesmeta` result: its summary (bayesmeta's layout), P(mu
    beyond 0 towards benefit) and P(mu beyond the MID towards benefit) (NaN without a MID on the effect scale)."""
    s = res.summary
    direction = "less" if lower_is_better else "greater"
    sign = -1.0 if lower_is_better else 1.0
    return {
        "mu_median": s.loc["median", "mu"], "mu_mean": s.loc["mean", "mu"], "mu_sd": s.loc["sd", "mu"],
        "mu_lb": s.loc["95% lower", "mu"], "mu_ub": s.loc["95% upper", "mu"],
        "tau_median": s.loc["median", "tau"], "tau_lb": s.loc["95% lower", "tau"],
        "tau_ub": s.loc["95% upper", "tau"], "theta_lb": s.loc["95% lower", "theta"],
        "theta_ub": s.loc["95% upper", "theta"],
        "p_benefit": res.prob_exceeds(0.0, "mu", direction),
        "p_mid": (res.prob_exceeds(sign * mid_effect, "mu", direction) if math.isfinite(mid_effect) else math.nan),
    }


def bayes_row(result: AnalysisResult, review: Review) -> dict:
    """One main contrast's row of bayes.csv (`BAYES_COLUMNS`)."""
    spec = result.spec
    outcome = review.outcome(spec.outcome)
    decl = review.bayes.tau_prior_for(outcome.id)
    mu_text, mu_source = mu_prior_text(review)
    row = {c: math.nan for c in BAYES_COLUMNS}
    row.update(analysis_id=spec.id, label=spec.label, k=int(result.row()["k"]), tau_prior=decl.describe(), tau_prior_label="",
               tau_prior_source=decl.source, mu_prior=mu_text, mu_prior_source=mu_source, interval_type=INTERVAL_TYPE,
               benefit="mu < 0" if outcome.lower_is_better else "mu > 0", mid_note="", freq_pi_method="",
               status=str(result.status), notes="")
    fit = result.fit
    if fit is None or result.regression is not None:
        return row
    row.update(_frequentist(result))
    mid, sd, mid_effect, note = mid_threshold(outcome, result, review.measure)
    row.update(mid_points=mid, mid_sd=sd, mid_effect=mid_effect, mid_note=note)
    notes = []
    declared = review.prediction_interval.method
    if row["freq_pi_method"] != declared:
        notes.append(f"the fit's prediction interval is {row['freq_pi_method']}, not the {declared} review.yaml "
                     "states (prediction_interval)")
    if review.measure != "SMD" and decl == TauPriorDecl():
        row.update(status=NOT_COMPUTED, notes="; ".join([*notes, "the default tau prior is on the SMD scale: "
                                                         "declare bayes.tau_prior for a review of mean differences"]))
        return row
    mp = review.bayes.mu_prior
    try:
        res = bayesmeta(np.asarray(fit.yi, dtype=float), np.asarray(fit.vi, dtype=float), tau_prior=decl.name,
                        tau_prior_scale=decl.scale, mu_prior=None if mp is None else (mp.mean, mp.sd),
                        interval_type=INTERVAL_TYPE)
    except ValueError as exc:
        row.update(status=NOT_COMPUTED, notes="; ".join([*notes, str(exc)]))
        return row
    row["tau_prior_label"] = res.tau_prior.label
    row.update(posterior_row(res, outcome.lower_is_better, mid_effect))
    row["notes"] = "; ".join(notes)
    return row


def bayes_table(results: Sequence[AnalysisResult], review: Review, main: Sequence[str]) -> pd.DataFrame:
    """bayes.csv: one row per main contrast (`main` ids, in their order), columns `BAYES_COLUMNS`."""
    by_id = {r.spec.id: r for r in results}
    rows = [bayes_row(by_id[aid], review) for aid in main if aid in by_id]
    frame = pd.DataFrame(rows, columns=list(BAYES_COLUMNS))
    frame["k"] = frame["k"].astype(int)
    return frame


__all__ = ["BAYES_COLUMNS", "INTERVAL_TYPE", "bayes_row", "bayes_table", "mid_threshold", "mu_prior_text",
           "posterior_row"]
