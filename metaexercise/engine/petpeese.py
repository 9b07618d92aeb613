"""`pet_peese`: the precision-effect test and the precision-effect estimate with standard error (PET-PEESE;
Stanley & Doucouliagos 2014, Res Synth Methods 5:60, doi:10.1002/jrsm.1095).

Both are weighted least-squares meta-regressions with weights 1/vᵢ and a multiplicative dispersion
("unrestricted WLS": Var(eᵢ) = σ² vᵢ, σ² estimated by Σ wᵢ rᵢ²/(k − 2); Stanley & Doucouliagos 2014, eqs.
4-5; Egger et al. 1997, BMJ 315:629). This is R's ``lm(yi ~ sei, weights = 1/vi)``, the model of metafor's
``regtest(model="lm")``:

* PET:   yᵢ = β₀ + β₁ seᵢ + eᵢ    (eq. 4; β₀ is the effect at se -> 0)
* PEESE: yᵢ = β₀ + β₁ vᵢ + eᵢ     (eq. 5: the predictor is the variance, seᵢ²)

Inference on β₀ uses t(k − 2), as `lm`. The conditional estimator (their section 4, "PET-PEESE"): if PET
rejects H₀: β₀ = 0, there is a genuine effect and PEESE's β₀ estimates it (less biased then); otherwise
PET's β₀ is reported. Stanley & Doucouliagos test β₀ one-sided at 5% in the direction of the expected
effect; without a pre-specified direction that is the two-sided test at 10% when the estimate has the
expected sign, which is this function's default (``alpha=0.10, alternative="two.sided"``). Give
``alternative="greater"`` or ``"less"`` (with ``alpha=0.05``) when the direction is fixed in advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from metaexercise.engine.model import RMAResult
from metaexercise.engine.wls import wls

ALTERNATIVES = ("two.sided", "greater", "less")


@dataclass(frozen=True, slots=True)
class MetaRegressionLM:
    """One unrestricted-WLS meta-regression (R's ``summary(lm(yi ~ x, weights = 1/vi))``): intercept and slope,
    each with se, t-value, two-sided p-value and `level`% CI on t(df)."""

    predictor: str
    coef: np.ndarray  # (intercept, slope)
    se: np.ndarray
    tval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    df: int
    sigma: float  # residual standard error: sqrt(sum w r^2 / df)

    @property
    def estimate(self) -> float:
        """The intercept: the effect at zero standard error."""
        return float(self.coef[0])


@dataclass(frozen=True, slots=True)
class PetPeeseResult:
    """PET and PEESE fits and the conditional choice: `pet_test_pval` is the p-value of PET's test of
    H0: beta0 = 0 under `alternative`; `chosen` is "PEESE" when it is below `alpha`, else "PET"; `estimate`,
    `se`, `ci_lb`, `ci_ub` are the chosen model's intercept."""

    pet: MetaRegressionLM
    peese: MetaRegressionLM
    alpha: float
    alternative: str
    pet_test_pval: float
    chosen: str
    k: int

    @property
    def _chosen(self) -> MetaRegressionLM:
        return self.peese if self.chosen == "PEESE" else self.pet

    @property
    def estimate(self) -> float:
        return self._chosen.estimate

    @property
    def se(self) -> float:
        return float(self._chosen.se[0])

    @property
    def ci_lb(self) -> float:
        return float(self._chosen.ci_lb[0])

    @property
    def ci_ub(self) -> float:
        return float(self._chosen.ci_ub[0])

    def summary(self) -> str:
        def row(name, f):
            return (f"{name:<6}{f.coef[0]:>10.4f}{f.se[0]:>9.4f}{f.tval[0]:>9.4f}{f.pval[0]:>9.4f}"
                    f"{f.ci_lb[0]:>10.4f}{f.ci_ub[0]:>10.4f}")

        head = f"{'':<6}{'estimate':>10}{'se':>9}{'tval':>9}{'pval':>9}{'ci.lb':>10}{'ci.ub':>10}"
        side = {"two.sided": "two-sided", "greater": "one-sided, > 0", "less": "one-sided, < 0"}[self.alternative]
        return "\n".join([
            "", f"PET-PEESE (Stanley & Doucouliagos 2014; unrestricted WLS, k = {self.k}, t(df = {self.pet.df}))", "",
            "Intercepts (effect at se -> 0):", head, row("PET", self.pet), row("PEESE", self.peese), "",
            f"PET test of H0: beta0 = 0 ({side}): p = {self.pet_test_pval:.4f} -> {self.chosen} "
            f"(alpha = {self.alpha:g})",
            f"PET-PEESE estimate: {self.estimate:.4f} (CI: {self.ci_lb:.4f}, {self.ci_ub:.4f})", "",
        ])

    __str__ = summary


def _lm(yi: np.ndarray, vi: np.ndarray, x: np.ndarray, predictor: str, level: float) -> MetaRegressionLM:
    """Weighted least squares of yi on (1, x), weights 1/vi, with sigma^2 estimated (R's lm)."""
    k = yi.shape[0]
    X = np.column_stack([np.ones(k), x])
    f = wls(X, yi, 1.0 / vi)
    df = k - 2
    s2 = f.rss / df
    se = np.sqrt(s2 * np.diag(f.A))
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = f.beta / se
    pval = 2 * special.stdtr(df, -np.abs(tval))
    crit = float(special.stdtrit(df, 1 - (1 - level / 100) / 2))
    return MetaRegressionLM(predictor=predictor, coef=f.beta, se=se, tval=tval, pval=pval, ci_lb=f.beta - crit * se,
                            ci_ub=f.beta + crit * se, df=df, sigma=math.sqrt(s2))


def pet_peese(yi, vi=None, *, sei=None, alpha: float = 0.10, alternative: str = "two.sided",
              level: float = 95) -> PetPeeseResult:
    """PET, PEESE and the conditional PET-PEESE estimate (see the module's docstring).

    `yi`: effect sizes, or a fitted `RMAResult` (its yi and vi are used; the model itself is not: PET and
    PEESE are their own regressions). `vi` or `sei`: sampling variances or standard errors. `alpha`,
    `alternative`: the PET test that decides between PET and PEESE (default: two-sided at 10%, i.e. Stanley
    & Doucouliagos' one-sided 5% test in the direction of the estimate). `level`: of the confidence intervals.
    """
    if isinstance(yi, RMAResult):
        if vi is not None or sei is not None:
            raise TypeError("pet_peese: with a fitted model, vi/sei are taken from it; do not pass them")
        y, v = yi.yi, yi.vi
    else:
        y = np.asarray(yi, dtype=float).reshape(-1)
        if vi is None and sei is None:
            raise TypeError("pet_peese: give the sampling variances 'vi' (or standard errors 'sei')")
        v = np.asarray(vi, dtype=float).reshape(-1) if vi is not None else np.asarray(sei, dtype=float).reshape(-1) ** 2
    if y.shape != v.shape:
        raise ValueError(f"pet_peese: yi has {y.size} values but vi has {v.size}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(f"pet_peese: yi is missing or non-finite at positions {bad.tolist()} (0-based)")
    bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
    if bad.size:
        raise ValueError(f"pet_peese: sampling variances must be positive and finite; vi = {v[bad].tolist()} at "
                         f"positions {bad.tolist()} (0-based)")
    if y.size < 3:
        raise ValueError(f"pet_peese: needs at least 3 studies (two coefficients and a dispersion), got k = {y.size}")
    if np.ptp(v) == 0:
        raise ValueError("pet_peese: all sampling variances are equal: the intercept at se -> 0 is not identified")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"pet_peese: alternative={alternative!r} is not one of {list(ALTERNATIVES)}")
    if not 0 < alpha < 1:
        raise ValueError(f"pet_peese: alpha={alpha!r} must be between 0 and 1")
    if not 0 < level < 100:
        raise ValueError(f"pet_peese: level={level!r} must be a percentage between 0 and 100")
    pet = _lm(y, v, np.sqrt(v), "sei", level)
    peese = _lm(y, v, v, "vi", level)
    t0 = float(pet.tval[0])
    if alternative == "two.sided":
        p_test = float(pet.pval[0])
    elif alternative == "greater":
        p_test = float(special.stdtr(pet.df, -t0))
    else:
        p_test = float(special.stdtr(pet.df, t0))
    chosen = "PEESE" if p_test < alpha else "PET"
    return PetPeeseResult(pet=pet, peese=peese, alpha=float(alpha), alternative=alternative, pet_test_pval=p_test,
                          chosen=chosen, k=int(y.size))


__all__ = ["MetaRegressionLM", "PetPeeseResult", "pet_peese"]
