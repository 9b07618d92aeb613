"""The numerical steps of the τ² estimators, written once and shared by the three fitting paths:
`rma` (engine/tau2.py, vectorised numpy, never numba), `rma_batch` (engine/batch.py) and the batched
meta-regression (engine/batch_mods.py), which compile these same functions with ``numba.njit``.

Every function here is a plain-Python scalar function that numba can compile: arguments and results are
floats, ints and bools, only the `math` module is used, and no function calls another one (numba cannot
call an uncompiled Python function, so each caller strings the steps together itself). The callers compute
the sums over studies in their own way (numpy reductions in `rma`, four-lane deterministic loops in
`rma_batch`, small matrix products for a general design matrix); from those sums on, all three take the
same arithmetic, the same decisions and the same tolerances.

Notation (metafor's `rma.uni`; Viechtbauer 2005, J Educ Behav Stat 30:261, doi:10.3102/10769986030003261):
w = 1/(v + τ²), P = W − W X (X'WX)⁻¹ X'W, r = y − Xβ̂ the residuals at the weighted fit, so Py = W r and

    Q = y'Py = Σ w r²,   y'PPy = Σ w² r²,   y'PPPy = Σ w³ r² − u'(X'WX)⁻¹u, u = X'W²r.

For the intercept-only model every trace is a scalar sum: tr(P) = Σw − Σw²/Σw,
tr(PP) = Σw² − 2 Σw³/Σw + (Σw²/Σw)², y'PPPy = Σw³r² − (Σw²r)²/Σw.

Robustness (the hardening issue): the inputs the engine computes with are bounded (YI_MAX, VI_MIN, VI_MAX,
MODS_MAX, WEIGHT_DOMINANCE_MAX: outside, a clear ValueError); a non-finite score stops an iteration
(`safeguard`, `pm_root_step`) instead of counting as a zero step; Fisher scoring that oscillates or creeps
is finished by safeguarded Newton/bisection steps on a bracket of the maximum (`safeguard`); data on a
tiny scale are fitted rescaled by a power of two (`rescale_exponent`), and convergence has a relative floor
for large τ² (`converged`).

This module also holds the engine's vocabulary (estimator names, the method codes used inside the numba
kernels, the test names), so that every module validates against one list.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

#: `rma(method=...)`: "EE" (equal effects) plus the τ² estimators, in the order `rma` lists them.
Method = Literal["EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM"]
METHODS: tuple[str, ...] = get_args(Method)
#: the τ² estimators (`tau2.ESTIMATORS` has one function for each).
TAU2_ESTIMATORS: tuple[str, ...] = tuple(m for m in METHODS if m != "EE")
#: the estimators `rma_batch` fits, in the order the simulation study reports them.
BatchMethod = Literal["DL", "REML", "ML", "PM"]
BATCH_METHODS: tuple[str, ...] = get_args(BatchMethod)
#: the estimators of the batched meta-regression (`batch_mods.fit_permuted`, `permutest`).
ModsMethod = Literal["REML", "ML", "DL", "PM", "EE"]
MODS_METHODS: tuple[str, ...] = get_args(ModsMethod)
#: `test=`: Wald-type z-tests, or Knapp & Hartung (2003, Stat Med 22:2693) t- and F-tests.
Test = Literal["z", "knha"]
TESTS: tuple[str, ...] = get_args(Test)

#: Method codes inside the compiled kernels (numba freezes these module globals as constants).
REML = 0
ML = 1
DL = 2
PM = 3
EE = 4
EB = 5
METHOD_CODES: dict[str, int] = {"REML": REML, "ML": ML, "DL": DL, "PM": PM, "EE": EE, "EB": EB}

# --------------------------------------------------------------------------------------------------
# Tolerances and limits
# --------------------------------------------------------------------------------------------------

#: Fisher scoring stops when |τ²_new − τ²_old| ≤ THRESHOLD (metafor: 1e-5). Fisher scoring converges
#: linearly, slowly when τ² is small relative to the vᵢ, so a change of 1e-10 can still leave τ² ~1e-6
#: (relative) from the optimum; 1e-12 puts every reference fixture within 1e-8 of metafor run to convergence.
THRESHOLD = 1e-12
#: ... or when it is at most CONV_RTOL·τ², a few units in the last place of τ²: for τ² ≳ 1e3 an absolute
#: threshold of 1e-12 is below the spacing of doubles, and an iteration that has reached its fixed point
#: (to the last bit) must not be counted as failing (metafor's absolute criterion fails there).
CONV_RTOL = 4 * 2.0**-52
#: Fisher-scoring iterations before giving up (metafor: 100, at its looser threshold).
MAXITER = 1000
#: step length multiplier (metafor's `stepadj`).
STEPADJ = 1.0
#: Fisher scoring converges linearly; once a step changes τ² by less than this, Newton–Raphson steps with
#: the observed information take over (quadratic convergence to the same maximum) while the observed
#: information is positive and the step stays inside the bounds.
NEWTON_SWITCH = 1e-4
#: the Newton finish is used for models with this many coefficients only (the intercept-only model, whose
#: observed information is a scalar sum): meta-regressions keep metafor's pure Fisher scoring, so that
#: which refits of a permutation test converge within `maxiter` is decided as in metafor.
NEWTON_P = 1
#: the safeguard against oscillating Fisher scoring (`safeguard`) is on by default for models with at most
#: this many coefficients (the intercept-only model: ML/REML fits that metafor cannot converge, ~0.1 % of
#: random k = 30 data sets, then reach the maximum). Meta-regressions keep metafor's pure Fisher scoring
#: unless asked (`Control(safeguard=True)`), so that which refits of a permutation test converge, and so
#: count in its p-values, is decided as in metafor's `permutest`.
SAFEGUARD_P = 1
#: `safeguard`: a step of Fisher scoring that crosses more than this share of the bracket formed by the last
#: iterates on either side of the maximum marks an oscillation that decays too slowly (the ratio of
#: successive distances from the maximum is about this share): safeguarded steps take over. Oscillations
#: that decay faster (e.g. ratio 0.91, ~70 steps: tests/engine/test_kernels.py's seed25) keep metafor's path.
OSCILLATION_RATIO = 0.95
#: `safeguard`: ... and so does an iteration that has not converged in this many steps (metafor's maxiter).
SAFEGUARD_AFTER = 100
#: metafor's `ll0check` margin, its `con$tol` = .Machine$double.eps^0.25 = 2^-13 exactly.
LL0_TOL = 2.0**-13
#: Paule–Mandel: the root search stops when a step, or the bracket, is below PM_RTOL·τ²: machine precision,
#: relative (an absolute floor would end the search at its first step when vᵢ ≪ 1, where Q is so steep at
#: τ² = 0 that the first Newton steps are ~vᵢ), which safeguarded Newton steps reach in a handful of
#: iterations (metafor uses `uniroot`).
PM_RTOL = 4e-16
#: Paule–Mandel: at most PM_ITER_FACTOR·maxiter root-search steps.
PM_ITER_FACTOR = 20
#: Paule–Mandel: metafor 3.8's default upper end of the search is max(PM_UPPER, PM_UPPER_MAD·mad(yi)²);
#: the callers try PM_UPPER first and compute the median only when Q(PM_UPPER) is still above k − p.
PM_UPPER = 100.0
PM_UPPER_MAD = 10.0
#: R's `mad` constant (consistency factor for the normal distribution).
MAD_CONSTANT = 1.4826
#: The range of inputs the engine computes with (`rma`, `rma_batch`, the batched meta-regression): |yᵢ| ≤
#: YI_MAX and VI_MIN ≤ vᵢ ≤ VI_MAX, moderators |xᵢⱼ| ≤ MODS_MAX. Within it every sum the estimators form
#: (wᵃ and wᵃr², a ≤ 3, with w = 1/(v + τ²) and τ² ≲ (2·YI_MAX)²) stays below ~1e+251 and every wᵃ above
#: ~1e-302: no overflow and no subnormal weights. Outside it, squares, cubes and reciprocals of the inputs overflow or underflow
#: (|yᵢ| ~ 1e150 squares to 1e300; 1/vᵢ³ overflows for vᵢ ~ 1e-103), and the inputs are refused with a
#: ValueError that names them, instead of failing somewhere inside (metafor itself stops with "singular
#: matrix", loops forever in its step-halving or returns non-finite values there).
YI_MAX = 1e50
VI_MIN = 1e-50
VI_MAX = 1e50
MODS_MAX = 1e50
#: metafor's warning "Ratio of largest to smallest sampling variance extremely large" (1/con$evtol).
VI_RATIO_NOTE = 1e7
#: A study whose weight 1/vᵢ exceeds WEIGHT_DOMINANCE_MAX times the sum of all other weights is refused
#: (`dominated`): the traces of P (Σw − Σw²/Σw) and the Q-statistic then cancel to rounding error, ~ε·ratio
#: relative, so every heterogeneity quantity would be noise (metafor, which forms P explicitly, loses the
#: same digits: it warns from a variance ratio of 1e7 on and returns such numbers).
WEIGHT_DOMINANCE_MAX = 1e8
#: ML/REML/EB: data whose scale, max(mean vᵢ, sample variance of yᵢ), is below SCALE_MIN are fitted as
#: yᵢ/2ʲ, vᵢ/4ʲ (scale ~1; powers of two, so exactly) and τ² is scaled back (`rescale_exponent`): the
#: absolute tolerances (THRESHOLD, NEWTON_SWITCH) then act on the data's own scale, as they do for data
#: with vᵢ ~ 0.001–1. Without it Fisher scoring on, e.g., vᵢ ~ 1e-40 stops at its first step (metafor too).
#: Data of larger scale are fitted as given, bit for bit as before.
SCALE_MIN = 2.0**-20
#: metafor's `con$evtol`: a model matrix whose X'X has an eigenvalue at or below this is not fitted
#: ("Model matrix not of full rank. Cannot fit model.").
EVTOL = 1e-7
#: R's `lm` (whose pivoted QR, LINPACK dqrdc2, metafor uses to find redundant predictors): a column whose
#: norm, after the columns before it are projected out, is below QR_TOL times its original norm is redundant.
QR_TOL = 1e-7
#: Knapp–Hartung: metafor sets the variance factor to 0 when the weighted RSS is at most machine epsilon.
KNHA_RSS_EPS = 2.0**-52
#: root-finding tolerance of the Q-profile confidence interval for τ² (`Control.tol`; metafor: eps^0.25).
ROOT_TOL = 1e-13


# --------------------------------------------------------------------------------------------------
# Scalar steps
# --------------------------------------------------------------------------------------------------


def rescale_exponent(mean_v, var_y):
    """j such that yᵢ/2ʲ and vᵢ/4ʲ have scale ~1, for data whose scale s = max(mean_v, var_y) is below
    SCALE_MIN; 0 (no rescaling) otherwise, and for s not a positive number."""
    s = mean_v if mean_v > var_y else var_y
    if not (s < SCALE_MIN and s > 0.0):
        return 0
    e = math.frexp(s)[1]  # s = m·2^e, 1/2 <= m < 1
    return e // 2


def dominated(vmin, sw0, k):
    """Whether the most precise study (variance vmin) outweighs all others together by more than
    WEIGHT_DOMINANCE_MAX (sw0 = Σ 1/vᵢ; k = 1 never is)."""
    wmax = 1.0 / vmin
    return k > 1 and not wmax <= WEIGHT_DOMINANCE_MAX * (sw0 - wmax)


def hedges_start(rss, trpv, k, p, floor):
    """The Hedges-type estimate (RSS − tr(P₀V)) / (k − p), RSS and P₀ of the unweighted fit, truncated at
    `floor` (NaN gives `floor`): metafor's start value of Fisher scoring (floor = max(0, τ²_min)) and the
    HE estimator (floor = τ²_min) (Hedges 1983, Psychol Bull 93:388). Intercept-only: tr(P₀V) = Σv − Σv/k."""
    t = (rss - trpv) / (k - p)
    return t if t > floor else floor


def dl_tau2(q, k, p, trp, floor):
    """DerSimonian & Laird (1986, Control Clin Trials 7:177; Raudenbush 2009 for meta-regression):
    (Q − (k − p)) / tr(P) with the fixed-effect weights w = 1/v, truncated at `floor` (a NaN Q gives
    `floor`). Intercept-only: tr(P) = Σw − Σw²/Σw. NaN if tr(P) is not positive (rounding has destroyed it)."""
    if not trp > 0.0:
        return math.nan
    t = (q - (k - p)) / trp
    return t if t > floor else floor


def shifted_square_sum(s0, s1, s2, m):
    """Σ a (c − m)² from s0 = Σa, s1 = Σac, s2 = Σac²: lets one pass of sums about a fixed centre c
    (the unweighted mean) give the sums about the weighted mean, m being the weighted mean minus that centre.
    Centring at the unweighted mean keeps the expansion free of cancellation."""
    return s2 - 2.0 * m * s1 + m * m * s0


def intercept_terms(sw, sw2, sw3, sw3r2, sw2r):
    """tr(P), tr(PP) and y'PPPy of the intercept-only model from Σw, Σw², Σw³, Σw³r², Σw²r (r = y − μ̂).
    y'PPPy is NaN when the last two sums are (a caller outside its Newton phase need not compute them)."""
    m = sw2 / sw
    return sw - m, sw2 - 2.0 * sw3 / sw + m * m, sw3r2 - sw2r * sw2r / sw


def scoring_steps(method, k, p, sw, sw2, trp, trpp, q, ypp, yppp):
    """(Fisher step, Newton step) for τ² (metafor `rma.uni`; Viechtbauer 2005, eqs. 8 and 11).

    With score ½(y'PPy − tr P) (REML) or ½(y'PPy − Σw) (ML), expected information ½tr(PP) (REML) or ½Σw²
    (ML) and observed information y'PPPy − ½tr(PP) (REML) or y'PPPy − ½Σw² (ML) (Harville 1977, J Am Stat
    Assoc 72:320): Fisher step = score / expected, Newton step = score / observed; the Newton step is NaN
    when the observed information is not positive or `yppp` is NaN. EB (Morris 1983; Berkey et al. 1995):
    (Q k/(k − p) − k) / Σw, and no Newton step. `q` is needed for EB only, `trp`/`trpp` for REML only.
    Both steps are NaN when the expected information is not positive (rounding has destroyed it)."""
    if method == EB:
        return (q * k / (k - p) - k) / sw, math.nan
    if method == ML:
        num = ypp - sw
        info = sw2
    else:
        num = ypp - trp
        info = trpp
    if not info > 0.0:
        return math.nan, math.nan
    observed = 2.0 * yppp - info
    newton = num / observed if observed > 0.0 else math.nan
    return num / info, newton


def next_tau2(tau2, fisher, newton, newton_on, stepadj, tau2_min):
    """One update of τ²: the Newton step once `newton_on` (if finite and inside the bounds), else the Fisher
    step; times `stepadj`; a non-finite step counts as 0; then halved until τ² + step ≥ τ²_min (metafor's
    step-halving, which keeps τ² from going negative). Returns (τ²_new, |change|, newton_on_next): the Newton
    phase starts once a step changes τ² by less than NEWTON_SWITCH."""
    adj = fisher
    if newton_on and math.isfinite(newton) and tau2 + newton * stepadj >= tau2_min:
        adj = newton
    adj *= stepadj
    if not math.isfinite(adj):
        adj = 0.0
    while tau2 + adj < tau2_min and adj != 0.0:  # adj != 0: ends even if τ² starts below the bound
        adj /= 2.0
    new = tau2 + adj
    change = abs(tau2 - new)
    return new, change, newton_on or change < NEWTON_SWITCH


def converged(change, tau2, threshold):
    """Whether the iteration for τ² has converged: the last change is at most `threshold` (metafor's
    criterion) or at most CONV_RTOL·τ² (a few units in the last place: see CONV_RTOL). False for NaN."""
    return change <= threshold or change <= CONV_RTOL * tau2


def safeguard(tau2, proposal, fisher, newton, lo, hi, safe, last_change, it, tau2_min, enabled):
    """Keep Fisher scoring from oscillating: the safeguarded step, for ML, REML and EB with any design matrix.

    τ² is one scalar, whatever the number of coefficients, so the sign of the score at each iterate (that of
    the Fisher step: the expected information is positive) tells on which side of it the maximum lies (for EB,
    the root of its decreasing estimating equation). (lo, hi) brackets it: lo is the last iterate with a
    positive score, hi the last with a negative one (initially −inf and +inf; the callers start with those).

    While `safe` is False the `proposal` of `next_tau2` (metafor's Fisher step, or the Newton finish) is taken
    unchanged unless it (a) leaves [lo, hi], i.e. lands beyond a point already known to lie on the other side
    of the maximum, an oscillation that grows, or (b) once two iterates bracket the maximum, crosses more
    than OSCILLATION_RATIO of the bracket, an oscillation that decays too slowly to finish (both happen to
    Fisher scoring for REML in ~0.1–0.2 % of random k = 30 data sets, in metafor too: "Fisher scoring
    algorithm did not converge"), or (c) iteration `it` is beyond SAFEGUARD_AFTER (a monotone creep, where
    Fisher steps shrink slowly and the Newton finish has no positive observed information). Climbs that
    converge otherwise take exactly the path they took without this function. From (a), (b) or (c) on
    (`safe` True) each step is the Newton step
    (score / observed information; NaN if unavailable) if it lands strictly inside the bracket (its lower end
    at least τ²_min) and is at most half the previous change, else the bracket's midpoint (Numerical
    Recipes' rtsafe): the bracket shrinks at every step, and the iteration converges to a maximum inside it
    (or to τ²_min when the score is negative all the way down). `stepadj` does not apply to these steps.

    With `enabled` False the proposal is always taken (metafor's algorithm; see SAFEGUARD_P). Either way a
    non-finite `fisher` (a score or information that is not a number) returns change = NaN: the caller stops
    and reports non-convergence, instead of treating the step as zero and the iteration as converged.
    Returns (τ²_new, |change|, lo, hi, safe)."""
    if not math.isfinite(fisher):
        return tau2, math.nan, lo, hi, safe
    if not enabled:
        return proposal, abs(proposal - tau2), lo, hi, False
    if fisher > 0.0:
        lo = tau2
    elif fisher < 0.0:
        hi = tau2
    if not safe:
        step = abs(proposal - tau2)
        if (proposal >= lo and proposal <= hi and not step > OSCILLATION_RATIO * (hi - lo)
                and it <= SAFEGUARD_AFTER):
            return proposal, step, lo, hi, False
        safe = True
    bottom = lo if lo > tau2_min else tau2_min
    new = tau2 + newton
    if not (new > bottom and new < hi and abs(newton) <= 0.5 * last_change):  # False for a NaN Newton step
        new = 0.5 * (bottom + hi) if hi < math.inf else proposal
    return new, abs(new - tau2), lo, hi, True


def ll0_difference(method, sum_log1p, q0, q_tau2, logdet_ratio):
    """ll(0) − ll(τ²) of the ML or REML log-likelihood, from Σ log(1 + τ²/vᵢ), Q(0) = Σ (yᵢ − xᵢβ̂₀)²/vᵢ,
    Q(τ²) and (REML) log|X'W_τX| − log|X'W₀X| (intercept-only: log(Σw_τ/Σw₀)); constants cancel."""
    d = 0.5 * (sum_log1p - q0 + q_tau2)
    if method == REML:
        d += 0.5 * logdet_ratio
    return d


def ll0_due(method, tau2, threshold):
    """Whether metafor's `ll0check` applies: ML and REML fits that ended above τ² = threshold."""
    return (method == REML or method == ML) and tau2 > threshold


def ll0_resets(difference):
    """metafor's `ll0check`: if ll(0) exceeds ll(τ²) by more than LL0_TOL, Fisher scoring "may have gotten
    stuck at a local maximum" and τ² is set to 0."""
    return difference > LL0_TOL


def pm_root_step(x, f, dq, lo, hi):
    """One step of the Paule–Mandel root search (Paule & Mandel 1982, J Res Natl Bur Stand 87:377;
    DerSimonian & Kacker 2007, Contemp Clin Trials 28:105, eq. 7 for the slope) on f = Q(x) − (k − p) with
    dq = Q'(x) = −y'PPy. Q is decreasing and convex in τ² (Q'' = 2y'PPPy ≥ 0), so Newton steps from the left
    end approach the root from below; the bracket [lo, hi] is shrunk with the sign of f, and a step that
    would leave it bisects instead (safeguard). A non-finite f or dq ends the search with x_new = NaN (the
    caller reports non-convergence). Returns (x_new, lo, hi, done)."""
    if not (math.isfinite(f) and math.isfinite(dq)):
        return math.nan, lo, hi, True
    if f > 0.0:
        lo = x
    else:
        hi = x
    if dq < 0.0:
        step = -f / dq
        if abs(step) <= PM_RTOL * abs(x):  # x is the root to machine precision (x + step may round to
            return x + step, lo, hi, True  # x itself, which the bracket test below would take for an exit)
        xn = x + step
    else:
        xn = 0.5 * (lo + hi)
    if not (xn > lo and xn < hi):
        xn = 0.5 * (lo + hi)
    done = abs(xn - x) <= PM_RTOL * abs(x) or hi - lo <= PM_RTOL * abs(hi)
    return xn, lo, hi, done


def pm_upper(mad):
    """metafor 3.8's default upper end of the Paule–Mandel search, max(100, 10·mad(yi)²)."""
    return max(PM_UPPER, PM_UPPER_MAD * mad * mad)


def knha_factor(rss, df):
    """Knapp–Hartung variance factor s²_w = RSS_w / (k − p), 0 when RSS_w ≤ machine epsilon (metafor)."""
    return 0.0 if rss <= KNHA_RSS_EPS else rss / df
