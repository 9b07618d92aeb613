"""Fleckenstein et al. 2022 (medRxiv 2021.12.16.21267900v2): the registry against the paper, and the audit
finding the inconsistencies in the paper's own text.

Expected values below were transcribed independently of analyses/published.yaml, from the results
table in the project's research notes (review-data.md §c, main pooled results), and compared at half a
unit in the last printed digit (two decimals for SMDs: 0.005)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaexercise.review.audit import audit_registry
from metaexercise.review.published import load_published

REGISTRY = Path(__file__).resolve().parents[2] / "analyses" / "published.yaml"
TOL_SMD = 0.005  # half a unit in the second decimal

# contrast: (k, SMD, CI lower, CI upper, I2 %, certainty in the results text); Results, Figures 3-6, App. H
RESULTS = {
    "pain_active_short": (32, -0.28, -0.42, -0.14, 73, "low"),
    "pain_active_long": (16, -0.10, -0.21, 0.01, 41, "low"),
    "pain_passive_short": (32, -0.40, -0.58, -0.22, 89, "very low"),
    "pain_passive_long": (17, -0.14, -0.22, -0.07, 29, "moderate"),
    "disability_active_short": (32, -0.17, -0.31, -0.02, 73, "very low"),
    "disability_active_long": (15, -0.12, -0.27, 0.03, 69, "very low"),
    "disability_passive_short": (22, -0.09, -0.18, 0.01, 54, "moderate"),
    "disability_passive_long": (15, -0.20, -0.30, -0.10, 51, "moderate"),
}


@pytest.fixture(scope="module")
def registry():
    return load_published(REGISTRY)


@pytest.fixture(scope="module")
def findings(registry):
    return audit_registry(registry)


@pytest.mark.parametrize("contrast", sorted(RESULTS))
def test_results_section_numbers(registry, contrast):
    k, est, lb, ub, i2, certainty = RESULTS[contrast]
    e = registry.effect(contrast, "results")
    assert e.k.value == k
    assert e.estimate.value == pytest.approx(est, abs=TOL_SMD)
    assert (e.ci_lb.value, e.ci_ub.value) == (pytest.approx(lb, abs=TOL_SMD), pytest.approx(ub, abs=TOL_SMD))
    assert e.i2.value == pytest.approx(i2, abs=0.5)
    assert registry.certainty(contrast, "results") == certainty


def test_prisma_and_study_counts(registry):
    # Results, first paragraph and Figure 1: 1,172 -> 109 -> 73 -> 58; 53 with data, 5 without
    got = [registry.get(i).n.value for i in ("prisma.records", "prisma.full_texts", "prisma.potentially_eligible",
                                             "prisma.included", "prisma.analysed", "prisma.lacking_data")]
    assert got == [1172, 109, 73, 58, 53, 5]


def test_abstract_vs_results_disability_passive_short_is_found(findings):
    # abstract: -0.18 [-0.22 to 0.01], low certainty; results: -0.09 [-0.18 to 0.01], moderate certainty
    hit = [f for f in findings if f.label == "disability_passive_short" and f.check == "abstract_vs_results"]
    assert len(hit) == 1 and hit[0].severity == "error"
    assert "estimate -0.18" in hit[0].detail and "vs -0.09" in hit[0].detail
    assert "certainty 'low' vs 'moderate'" in hit[0].detail


def test_the_asymmetric_abstract_ci_is_found(findings):
    # centre of [-0.22, 0.01] is -0.105; -0.18 is 0.075 away, rounding allows 0.01
    hit = [f for f in findings if f.label == "disability_passive_short.abstract"]
    assert [(f.check, f.severity) for f in hit] == [("estimate_off_centre", "warning")]
    assert "(-0.22 + 0.01)/2 = -0.105" in hit[0].detail


def test_percentages_that_do_not_match_their_counts(findings):
    # other psychological components 24/58 = 41.4% (printed 34.8%); RoB 26/58 = 44.8% (44.3%), 32/58 = 55.2%
    # (55.7%). Correct ones are not flagged: 24/58 = 41.4%, 22/58 = 37.9%, 34/58 = 58.6%, 42/61 = 68.9%.
    bad = {f.label for f in findings if f.check == "percent_vs_count"}
    assert bad == {"psych.other", "rob.some_concerns", "rob.high"}


def test_control_groups_do_not_add_up_and_k_exceeds_them(findings):
    labels = {(f.label, f.check) for f in findings}
    assert ("controls.by_type", "sum") in labels  # 42 + 21 + 3 + 5 + 1 = 72 != 61
    assert ("pain_passive_short.capacity", "k_exceeds_groups") in labels  # k = 32 > 21 + 3 + 5 + 1 = 30
    assert ("disability_passive_short.capacity", "k_exceeds_groups") not in labels  # 22 <= 30
    assert ("pain_active_short | pain_passive_short", "same_k") in labels


def test_copied_numbers_are_found(findings):
    labels = {(f.label, f.check) for f in findings}
    # abstract's "combination with psychological interventions" result = the main short-term pain result
    assert ("pain_active_short | pain_active_short_psych", "duplicate_numbers") in labels
    # disability vs active prints the same (-0.33, -0.18) VAS points as pain vs passive
    assert ("pain_passive | disability_active", "duplicate_numbers") in labels


def test_rank_test_p_does_not_follow_from_tau_and_k(findings):
    # tau = -0.373, k = 32: exact p = 0.0022 (R: Kendall null distribution), printed 0.009; -0.202 with
    # k = 32 gives p = 0.109, printed .1 -> consistent
    hit = {f.label for f in findings if f.check == "rank_p_vs_tau"}
    assert hit == {"pain_passive_short.rank"}


def test_no_significance_claim_contradicts_its_ci(findings):
    assert not [f for f in findings if f.check in ("claim_vs_ci", "estimate_outside_ci", "egger_p_vs_z")]


def test_a_subset_larger_than_its_total_is_found(findings):
    # Discussion: one study had "98 treatment-related" events; Results: "50 (9%) were at least possibly
    # treatment-related" in all studies together. 98 > 50. The 414-of-553 events subset is fine.
    labels = {(f.label, f.check) for f in findings}
    assert ("adverse.related.subset", "subset_exceeds_total") in labels
    assert not {lab for lab, check in labels if check == "subset_exceeds_total"} - {"adverse.related.subset"}
