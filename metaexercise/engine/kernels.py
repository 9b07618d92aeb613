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
#: metafor's `ll0check` margin, its `con$tol` = .Machine$double.eps^0.25 = 2^-13 exactly.
LL0_TOL = 2.0**-13
#: Paule–Mandel: the root search stops when a step, or the bracket, is below PM_RTOL·max(1, τ²): machine
#: precision, which safeguarded Newton steps reach in a handful of iterations (metafor uses `uniroot`).
PM_RTOL = 4e-16
#: Paule–Mandel: at most PM_ITER_FACTOR·maxiter root-search steps.
PM_ITER_FACTOR = 20
#: Paule–Mandel: metafor 3.8's default upper end of the search is max(PM_UPPER, PM_UPPER_MAD·mad(yi)²);
#: the callers try PM_UPPER first and compute the median only when Q(PM_UPPER) is still above k − p.
PM_UPPER = 100.0
PM_UPPER_MAD = 10.0
#: R's `mad` constant (consistency factor for the normal distribution).
MAD_CONSTANT = 1.4826
#: Knapp–Hartung: metafor sets the variance factor to 0 when the weighted RSS is at most machine epsilon.
KNHA_RSS_EPS = 2.0**-52
#: root-finding tolerance of the Q-profile confidence interval for τ² (`Control.tol`; metafor: eps^0.25).
ROOT_TOL = 1e-13


# --------------------------------------------------------------------------------------------------
# Scalar steps
# --------------------------------------------------------------------------------------------------


def hedges_start(rss, trpv, k, p, floor):
    """The Hedges-type estimate (RSS − tr(P₀V)) / (k − p), RSS and P₀ of the unweighted fit, truncated at
    `floor` (NaN gives `floor`): metafor's start value of Fisher scoring (floor = max(0, τ²_min)) and the
    HE estimator (floor = τ²_min) (Hedges 1983, Psychol Bull 93:388). Intercept-only: tr(P₀V) = Σv − Σv/k."""
    t = (rss - trpv) / (k - p)
    return t if t > floor else floor


def dl_tau2(q, k, p, trp, floor):
    """DerSimonian & Laird (1986, Control Clin Trials 7:177; Raudenbush 2009 for meta-regression):
    (Q − (k − p)) / tr(P) with the fixed-effect weights w = 1/v, truncated at `floor` (NaN gives `floor`).
    Intercept-only: tr(P) = Σw − Σw²/Σw."""
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
    (Q k/(k − p) − k) / Σw, and no Newton step. `q` is needed for EB only, `trp`/`trpp` for REML only."""
    if method == EB:
        return (q * k / (k - p) - k) / sw, math.nan
    if method == ML:
        num = ypp - sw
        info = sw2
    else:
        num = ypp - trp
        info = trpp
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
    would leave it bisects instead (safeguard). Returns (x_new, lo, hi, done)."""
    if f > 0.0:
        lo = x
    else:
        hi = x
    if dq < 0.0:
        step = -f / dq
        if abs(step) <= PM_RTOL * max(1.0, x):  # x is the root to machine precision (x + step may round to
            return x + step, lo, hi, True  # x itself, which the bracket test below would take for an exit)
        xn = x + step
    else:
        xn = 0.5 * (lo + hi)
    if not (xn > lo and xn < hi):
        xn = 0.5 * (lo + hi)
    done = abs(xn - x) <= PM_RTOL * max(1.0, x) or hi - lo <= PM_RTOL * max(1.0, hi)
    return xn, lo, hi, done


def pm_upper(mad):
    """metafor 3.8's default upper end of the Paule–Mandel search, max(100, 10·mad(yi)²)."""
    return max(PM_UPPER, PM_UPPER_MAD * mad * mad)


def knha_factor(rss, df):
    """Knapp–Hartung variance factor s²_w = RSS_w / (k − p), 0 when RSS_w ≤ machine epsilon (metafor)."""
    return 0.0 if rss <= KNHA_RSS_EPS else rss / df
