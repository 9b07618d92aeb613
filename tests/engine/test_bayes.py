"""bayesmeta: closed-form special cases, internal consistency, the priors' bookkeeping, printing and bad input.
(Agreement with R's bayesmeta: test_bayes_reference.py; with a brute-force 2-D integration:
test_bayes_bruteforce.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from metaexercise import rma
from metaexercise.engine.bayes import bayesmeta
from metaexercise.engine.bayes_priors import (
    RHODES_OUTCOMES,
    TURNER_OUTCOMES,
    empirical_prior,
    exponential,
    half_cauchy,
    half_normal,
    half_t,
    log_normal,
    log_t,
    rhodes_prior,
    turner_prior,
    uniform,
)

# synthetic: a small data set from a seeded generator (not any trial's data)
_rng = np.random.default_rng(7)
VI = _rng.uniform(0.02, 0.2, 7)
YI = _rng.normal(-0.4, np.sqrt(VI + 0.05))


@pytest.fixture(scope="module")
def hn():
    return bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5)


def test_a_single_study_leaves_the_tau_prior_unchanged():
    # k = 1 with the uniform mu prior: p(y | tau) does not depend on tau (it is 1 after integrating mu out),
    # so the posterior of tau is the prior, mu | tau ~ N(y, v + tau^2) and theta | tau ~ N(y, v + 2 tau^2).
    prior = half_normal(0.3)
    res = bayesmeta([0.2], [0.04], tau_prior=prior)
    for p in (0.1, 0.5, 0.9):
        assert res.qposterior(tau_p=p) == pytest.approx(float(prior.ppf(p)), rel=1e-9)
    assert res.pposterior(tau=0.25) == pytest.approx(float(prior.cdf(np.array(0.25))), rel=1e-9)
    assert res.summary.loc["mean", "tau"] == pytest.approx(0.3 * math.sqrt(2 / math.pi), rel=1e-9)
    # mu's CDF at x: E_tau Phi((x - y) / sqrt(v + tau^2)), integrated here with scipy over the prior
    x = 0.55
    ref = integrate.quad(lambda t: prior.pdf(np.array(t)) * stats.norm.cdf(x, 0.2, math.sqrt(0.04 + t * t)), 0,
                         math.inf, epsabs=0, epsrel=1e-12)[0]
    assert res.pposterior(mu=x) == pytest.approx(ref, rel=1e-9)
    ref = integrate.quad(lambda t: prior.pdf(np.array(t)) * stats.norm.cdf(x, 0.2, math.sqrt(0.04 + 2 * t * t)),
                         0, math.inf, epsabs=0, epsrel=1e-12)[0]
    assert res.pposterior(mu=x, predict=True) == pytest.approx(ref, rel=1e-9)


def test_a_prior_pinning_tau_at_zero_gives_the_fixed_effect_posterior():
    res = bayesmeta(YI, VI, tau_prior=uniform(1e-9))
    w = 1 / VI
    mean, sd = np.sum(w * YI) / w.sum(), math.sqrt(1 / w.sum())
    assert res.summary.loc["mean", "mu"] == pytest.approx(mean, rel=1e-9)
    assert res.summary.loc["sd", "mu"] == pytest.approx(sd, rel=1e-7)
    lo, hi = res.post_interval(mu_level=0.95)
    assert lo == pytest.approx(mean - stats.norm.ppf(0.975) * sd, rel=1e-7)
    assert hi == pytest.approx(mean + stats.norm.ppf(0.975) * sd, rel=1e-7)


def test_symmetric_data_give_a_symmetric_posterior_of_mu():
    y = np.array([-0.3, 0.1, 0.5, 0.9, 1.3])
    v = np.array([0.05, 0.1, 0.2, 0.1, 0.05])  # symmetric about 0.5
    res = bayesmeta(y, v, tau_prior="halfcauchy", tau_prior_scale=0.5)
    s = res.summary
    for col in ("mu", "theta"):
        assert s.loc["mean", col] == pytest.approx(0.5, abs=1e-12)
        assert s.loc["median", col] == pytest.approx(0.5, abs=1e-10)
        assert s.loc["mode", col] == pytest.approx(0.5, abs=1e-8)
        lo, hi = s.loc["95% lower", col], s.loc["95% upper", col]
        assert lo + hi == pytest.approx(1.0, abs=1e-9)  # shortest = central for a symmetric density
    assert res.pposterior(mu=0.2) == pytest.approx(res.pposterior(mu=0.8, upper=True), abs=1e-13)


def test_a_very_wide_normal_prior_on_mu_approaches_the_uniform_prior():
    flat = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5)
    wide = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5, mu_prior=(0.0, 1e5))
    np.testing.assert_allclose(wide.summary.to_numpy(), flat.summary.to_numpy(), rtol=1e-6, atol=1e-8)


def test_densities_integrate_to_one_and_the_joint_integrates_to_the_marginal(hn):
    tau_total = integrate.quad(lambda t: float(hn.dposterior(tau=t)), 0, math.inf, epsabs=0, epsrel=1e-10)[0]
    assert tau_total == pytest.approx(1.0, abs=1e-9)
    m, s = hn.summary.loc["mean", "mu"], hn.summary.loc["sd", "mu"]
    mu_total = integrate.quad(lambda x: float(hn.dposterior(mu=x)), m - 20 * s, m + 20 * s, epsabs=0,
                              epsrel=1e-10, limit=200)[0]
    assert mu_total == pytest.approx(1.0, abs=1e-9)
    for t in (0.05, 0.3):
        joint = integrate.quad(lambda x, t=t: float(hn.dposterior(tau=t, mu=x)), m - 30 * s, m + 30 * s,
                               epsabs=0, epsrel=1e-11, limit=200)[0]
        assert joint == pytest.approx(float(hn.dposterior(tau=t)), rel=1e-8)
    # the CDF is the integral of the density
    x = m + 0.7 * s
    cdf = integrate.quad(lambda u: float(hn.dposterior(mu=u)), m - 20 * s, x, epsabs=0, epsrel=1e-11)[0]
    assert float(hn.pposterior(mu=x)) == pytest.approx(cdf, rel=1e-8)
    t = float(hn.summary.loc["median", "tau"])
    cdf = integrate.quad(lambda u: float(hn.dposterior(tau=u)), 0, t, epsabs=0, epsrel=1e-11)[0]
    assert float(hn.pposterior(tau=t)) == pytest.approx(0.5, abs=1e-10)
    assert cdf == pytest.approx(0.5, abs=1e-9)


def test_quantiles_invert_the_cdf_in_both_tails(hn):
    for p in (1e-6, 0.01, 0.3, 0.5, 0.9, 1 - 1e-6):
        assert float(hn.pposterior(tau=hn.qposterior(tau_p=p))) == pytest.approx(p, rel=1e-9, abs=1e-15)
        assert float(hn.pposterior(mu=hn.qposterior(mu_p=p))) == pytest.approx(p, rel=1e-9, abs=1e-15)
        assert float(hn.pposterior(theta=hn.qposterior(theta_p=p))) == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert hn.qposterior(tau_p=0.0) == 0.0 and hn.qposterior(tau_p=1.0) == math.inf
    lo, hi = hn.post_interval(mu_level=0.9, method="central")
    assert (lo, hi) == pytest.approx(tuple(hn.qposterior(mu_p=[0.05, 0.95])), rel=1e-14)


def test_the_shortest_interval_is_no_longer_than_the_central_one(hn):
    for kw in ({"tau_level": 0.95}, {"mu_level": 0.95}, {"theta_level": 0.8}):
        a, b = hn.post_interval(**kw)
        c, d = hn.post_interval(**kw, method="central")
        assert b - a <= d - c + 1e-12


def test_the_joint_ml_estimate_is_metafors_ml_and_the_marginal_one_reml():
    # with the uniform prior on mu, p(y | tau) is the restricted likelihood (Roever 2020, Sec. 3.5)
    res = bayesmeta(YI, VI, tau_prior="uniform")
    ml = rma(YI, VI, method="ML")
    reml = rma(YI, VI, method="REML")
    assert res.ML.loc["joint", "tau"] == pytest.approx(math.sqrt(ml.tau2), rel=1e-7)
    assert res.ML.loc["joint", "mu"] == pytest.approx(float(ml.beta[0]), rel=1e-7)
    assert res.ML.loc["marginal", "tau"] == pytest.approx(math.sqrt(reml.tau2), rel=1e-7)
    # and the conditional moments of mu at tau_REML are rma's estimate and standard error
    cm = res.cond_moment(math.sqrt(reml.tau2))
    assert cm["mean"][0] == pytest.approx(float(reml.beta[0]), rel=1e-9)
    assert cm["sd"][0] == pytest.approx(float(reml.se[0]), rel=1e-9)


def test_marginal_likelihood_and_bayes_factors_by_direct_integration():
    res = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5, mu_prior=(0.0, 2.0))
    prior = half_normal(0.5)

    def joint_lik(t, m):
        s2 = VI + t * t
        return math.exp(np.sum(stats.norm.logpdf(YI, m, np.sqrt(s2))))

    marg = integrate.dblquad(lambda m, t: joint_lik(t, m) * float(prior.pdf(t)) * stats.norm.pdf(m, 0, 2),
                             0, 4, -6, 6, epsabs=0, epsrel=1e-8)[0]
    assert res.marginal_likelihood == pytest.approx(marg, rel=1e-6)
    lik_tau0 = integrate.quad(lambda m: joint_lik(0.0, m) * stats.norm.pdf(m, 0, 2), -8, 8, epsabs=0,
                              epsrel=1e-12)[0]
    assert res.bayesfactor.loc["actual", "tau=0"] == pytest.approx(lik_tau0 / marg, rel=1e-6)
    lik_mu0 = integrate.quad(lambda t: joint_lik(t, 0.0) * float(prior.pdf(t)), 0, 6, epsabs=0, epsrel=1e-12)[0]
    assert res.bayesfactor.loc["actual", "mu=0"] == pytest.approx(lik_mu0 / marg, rel=1e-6)
    assert float(res.likelihood(mu=0.0)) == pytest.approx(lik_mu0, rel=1e-7)
    assert 0 < res.bayesfactor.loc["minimum", "tau=0"] <= 1 and 0 < res.bayesfactor.loc["minimum", "mu=0"] <= 1
    flat = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5)
    assert math.isnan(flat.marginal_likelihood)  # improper mu prior: no marginal likelihood, as bayesmeta


def test_prob_exceeds_directions(hn):
    mid = -0.5
    p_less = hn.prob_exceeds(mid)  # negative threshold: P(mu < -0.5)
    assert p_less == pytest.approx(float(hn.pposterior(mu=mid)), rel=1e-14)
    assert hn.prob_exceeds(mid, direction="greater") == pytest.approx(1 - p_less, abs=1e-14)
    two = hn.prob_exceeds(0.2, direction="two-sided")
    assert two == pytest.approx(float(hn.pposterior(mu=-0.2)) + float(hn.pposterior(mu=0.2, upper=True)), rel=1e-14)
    assert hn.prob_exceeds(0.2, parameter="theta") == pytest.approx(float(hn.pposterior(theta=0.2, upper=True)))
    assert hn.prob_exceeds(0.3, parameter="tau") == pytest.approx(float(hn.pposterior(tau=0.3, upper=True)))
    # a new study's effect is more spread out than mu: more probability beyond a distant threshold
    assert hn.prob_exceeds(-1.2, parameter="theta") > hn.prob_exceeds(-1.2)
    with pytest.raises(ValueError, match="direction"):
        hn.prob_exceeds(0.0)
    with pytest.raises(ValueError, match="parameter"):
        hn.prob_exceeds(0.1, parameter="beta")


def test_i2_and_modes(hn):
    s2 = (len(VI) - 1) * np.sum(1 / VI) / (np.sum(1 / VI) ** 2 - np.sum(1 / VI**2))
    assert float(hn.I2(0.3)) == pytest.approx(0.09 / (0.09 + s2), rel=1e-12)
    t = hn.summary.loc["mode", "tau"]
    d = hn.dposterior(tau=[t * (1 - 1e-4), t, t * (1 + 1e-4)])
    assert d[1] >= d[0] and d[1] >= d[2]
    m = hn.summary.loc["mode", "mu"]
    d = hn.dposterior(mu=[m - 1e-4, m, m + 1e-4])
    assert d[1] >= d[0] and d[1] >= d[2]


def test_the_printout_follows_bayesmeta():
    res = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5, mu_prior=(0, 4),
                    labels=[f"S{i}" for i in range(7)])
    text = str(res)
    for line in (" 'bayesmeta' object.", "7 estimates:", "S0, S1, S2, S3, S4, S5, S6", "tau prior (proper):",
                 "half-normal(scale=0.5)", "mu prior (proper):", "normal(mean=0, sd=4)", "ML and MAP estimates:",
                 "marginal posterior summary:", "(quoted intervals are shortest credible intervals.)"):
        assert line in text.splitlines(), line
    assert "95% lower" in text and "theta" not in text
    long = res.summary_text()
    assert "theta" in long and "Bayes factors:" in long and "relative heterogeneity I^2 (posterior median):" in long
    central = bayesmeta(YI, VI, interval_type="central")
    assert "(quoted intervals are central, equal-tailed credible intervals.)" in str(central)
    assert "tau prior (improper):" in str(central) and "uniform(min=0, max=Inf)" in str(central)


def test_sei_is_the_square_root_of_vi():
    a = bayesmeta(YI, VI, tau_prior="halfnormal", tau_prior_scale=0.5)
    b = bayesmeta(YI, sei=np.sqrt(VI), tau_prior="halfnormal", tau_prior_scale=0.5)
    np.testing.assert_allclose(a.summary.to_numpy(), b.summary.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("prior", [
    half_cauchy(0.3), half_t(3, 0.3), exponential(2.0), log_normal(-1.5, 0.7), log_t(-1.5, 0.7, 5), uniform(2.0)])
def test_parametric_priors_are_normalised_and_their_cdf_and_quantiles_agree(prior):
    def on_log_scale(u):  # density of log(tau): smooth for every family, also near tau = 0
        return 0.0 if u > 700 else math.exp(float(prior.logpdf(np.array(math.exp(u)))) + u)

    total = integrate.quad(on_log_scale, -math.inf, math.inf, epsabs=0, epsrel=1e-11, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-8)
    for p in (0.05, 0.5, 0.9):
        q = float(prior.ppf(p))
        assert float(prior.cdf(np.array(q))) == pytest.approx(p, rel=1e-10)
        cdf = integrate.quad(on_log_scale, -math.inf, math.log(q), epsabs=0, epsrel=1e-11, limit=400)[0]
        assert cdf == pytest.approx(p, rel=1e-8)
    assert float(prior.pdf(-0.1)) == 0.0


def test_empirical_priors_by_name():
    p = empirical_prior("Rhodes2015:pain:non-pharma:placebo")
    assert p.parameters["outcome"] == RHODES_OUTCOMES[3]
    assert p.parameters["comparison"] == "non-pharmacological (any)"
    assert p.parameters["tau2_location"] == -3.02 and p.parameters["tau2_scale"] == 2.27
    assert p.parameters["tau_location"] == -1.51 and p.parameters["tau_scale"] == 1.135
    assert "J Clin Epidemiol 68(1):52-60" in p.source
    assert rhodes_prior("function", "pharmacological", "placebo / control").parameters["tau2_location"] == -3.16
    t = empirical_prior("Turner2015:pain:pharmacological:placebo")
    assert t.parameters["outcome"] == "pain" and t.parameters["tau2_mu"] == -1.83
    assert t.parameters["tau2_sigma"] == 1.52 and "Stat Med 34(6):984-998" in t.source
    assert empirical_prior("Turner2015").parameters["tau2_mu"] == -2.56
    assert empirical_prior("rhodes2015").parameters["tau2_location"] == -3.44
    assert turner_prior("quality", "non-pharmacological", "non-pharmacological").parameters["tau2_mu"] == -2.10
    assert len(TURNER_OUTCOMES) == 16
    # a log-normal prior on tau^2 is log-normal on tau with halved parameters
    q = float(t.ppf(0.5))
    assert q == pytest.approx(math.exp(-1.83 / 2), rel=1e-14)
    res = bayesmeta(YI, VI, tau_prior="Rhodes2015:pain:non-pharma:non-pharma")
    assert res.tau_prior.label == "log-Student-t(location=-1.510, scale=1.135, d.f.=5)"
    assert "source: Rhodes KM" in str(res)


def test_bad_prior_names_and_arguments():
    with pytest.raises(ValueError, match="needs tau_prior_scale"):
        bayesmeta(YI, VI, tau_prior="halfnormal")
    with pytest.raises(ValueError, match="is not one of"):
        bayesmeta(YI, VI, tau_prior="halfnormol", tau_prior_scale=1)
    with pytest.raises(ValueError, match="tau_prior_scale applies only"):
        bayesmeta(YI, VI, tau_prior=half_normal(0.5), tau_prior_scale=1)
    with pytest.raises(ValueError, match="both be 'placebo / control'"):
        turner_prior("pain", "placebo", "placebo")
    with pytest.raises(ValueError, match="matches several of"):
        turner_prior("in", "pharma", "placebo")  # internal / structure-related or infection / onset
    with pytest.raises(ValueError, match="is none of"):
        rhodes_prior("sleep", "pharma", "placebo")
    with pytest.raises(ValueError, match="scale must be positive"):
        half_normal(-1)
    with pytest.raises(TypeError, match="tau_prior must be"):
        bayesmeta(YI, VI, tau_prior=3)


def test_a_density_function_as_prior_is_normalised_like_bayesmeta():
    res = bayesmeta(YI, VI, tau_prior=lambda t: 7 * np.exp(-2 * t))  # exponential(2) times 7
    ref = bayesmeta(YI, VI, tau_prior=exponential(2.0))
    np.testing.assert_allclose(res.summary.to_numpy(), ref.summary.to_numpy(), rtol=1e-9)
    assert res.tau_prior.proper
    flat = bayesmeta(YI, VI, tau_prior=lambda t: np.ones_like(t))
    assert not flat.tau_prior.proper


def test_improper_posteriors_are_refused():
    with pytest.raises(ValueError, match="improper"):
        bayesmeta([0.1, 0.3], [0.01, 0.02], tau_prior="uniform")  # k = 2, uniform on tau and mu
    with pytest.raises(ValueError, match="improper"):
        bayesmeta([0.1], [0.01], tau_prior="uniform")
    # a normal prior on mu or a proper prior on tau makes it proper
    assert math.isfinite(bayesmeta([0.1, 0.3], [0.01, 0.02], tau_prior="uniform", mu_prior=(0, 1)).summary.loc[
        "median", "tau"])
    # k = 3 with uniform priors: proper, but E[tau] is infinite (tail tau^-2)
    res = bayesmeta([0.1, 0.3, -0.2], [0.01, 0.02, 0.015], tau_prior="uniform")
    assert res.summary.loc["mean", "tau"] == math.inf and math.isfinite(res.summary.loc["median", "tau"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"yi": [0.1, 0.2], "vi": [0.1]}, "yi has 2 studies but vi has 1"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.0]}, r"vi\[1\] = 0.0; it must be positive"),
    ({"yi": [0.1, 0.2], "sei": [0.1, -1.0]}, r"sei\[1\] = -1.0; it must be positive"),
    ({"yi": [0.1, math.nan], "vi": [0.1, 0.1]}, r"yi\[1\] = nan is not finite"),
    ({"yi": [0.1, 0.2]}, "exactly one of vi"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.1], "sei": [0.3, 0.3]}, "exactly one of vi"),
    ({"yi": [], "vi": []}, "at least one study"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.1], "mu_prior": (0, 0)}, "mu_prior sd"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.1], "mu_prior": "flat"}, "mu_prior must be"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.1], "interval_type": "hpd"}, "interval_type"),
    ({"yi": [0.1, 0.2], "vi": [0.1, 0.1], "labels": ["a"]}, "1 labels for 2 studies"),
])
def test_bad_input(kwargs, message):
    kwargs.setdefault("tau_prior", "halfnormal")
    kwargs.setdefault("tau_prior_scale", 0.5)
    with pytest.raises((ValueError, TypeError), match=message):
        bayesmeta(**kwargs)


def test_bad_requests_to_the_result(hn):
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        hn.post_interval(mu_level=95)
    with pytest.raises(ValueError, match="either tau_level or mu_level"):
        hn.post_interval(tau_level=0.9, mu_level=0.9)
    with pytest.raises(ValueError, match="must be a probability"):
        hn.qposterior(mu_p=1.5)
    with pytest.raises(ValueError, match="either tau or mu"):
        hn.pposterior()
    with pytest.raises(ValueError, match="method"):
        hn.post_interval(mu_level=0.9, method="hpd")
