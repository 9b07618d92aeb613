#!/usr/bin/env Rscript
# Writes tests/reference/metareg_review.json: metafor meta-regressions shaped like the review's (Fleckenstein
# et al. 2022: several numeric and yes/no moderators, Wilson's SPSS macro = inverse-variance weights, random
# intercept, fixed slopes), fitted with method-of-moments (metafor "DL"), ML and REML, z tests.
# tests/analyses/test_metareg_metafor.py compares metaexercise.engine.metaregression against it.
#
# Usage, from the repository root:  Rscript tests/reference/make_metareg_reference.R
# Needs R with metafor 3.8-1 and jsonlite. The synthetic data set is drawn here from a fixed seed, so
# re-running reproduces the file. metafor's convergence is tightened (threshold 1e-12, maxiter 10000).
# One model carries a constant moderator, which metafor drops ("Redundant predictors dropped").

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

CTRL <- list(threshold = 1e-12, maxiter = 10000)
METHODS <- c("DL", "ML", "REML")

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_mods <- data.frame(ablat = bcg$ablat, year = bcg$year, alloc_random = as.numeric(bcg$alloc == "random"),
                       total_n = bcg$tpos + bcg$tneg + bcg$cpos + bcg$cneg)
bcg_const <- cbind(bcg_mods, always_one = 1)

mol <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
mol_mods <- data.frame(meanage = mol$meanage, quality = mol$quality, year = mol$year,
                       prospective = as.numeric(mol$design == "prospective"),
                       controls_none = as.numeric(mol$controls == "none"))

set.seed(20220211)
k <- 40
syn_mods <- data.frame(duration_weeks = sample(4:26, k, replace = TRUE),
                       comparator_passive = rbinom(k, 1, 0.5), known_effective = rbinom(k, 1, 0.4),
                       matched_control = rbinom(k, 1, 0.2), behavioural = rbinom(k, 1, 0.2),
                       total_n = round(exp(rnorm(k, log(121), 0.9))) + 20, rob_high = rbinom(k, 1, 0.55),
                       mean_age = round(rnorm(k, 45.4, 5), 1))
syn_vi <- 4 / syn_mods$total_n
syn_yi <- -0.3 - 0.02 * (syn_mods$duration_weeks - 8) - 0.1 * syn_mods$comparator_passive +
  rnorm(k, 0, sqrt(0.04 + syn_vi))

cases <- list(
  list(name = "bcg4", yi = bcg$yi, vi = bcg$vi, mods = bcg_mods),
  list(name = "bcg4_const", yi = bcg$yi, vi = bcg$vi, mods = bcg_const),
  list(name = "molloy5", yi = mol$yi, vi = mol$vi, mods = mol_mods),
  list(name = "review8_synthetic", yi = syn_yi, vi = syn_vi, mods = syn_mods)
)

out <- list(source = list(generator = "tests/reference/make_metareg_reference.R",
                          R_version = R.version.string, metafor_version = as.character(packageVersion("metafor")),
                          call = "rma(yi, vi, mods = as.matrix(mods), method = <method>, test = 'z', control = list(threshold = 1e-12, maxiter = 10000))"),
            cases = list())
for (cs in cases) {
  fits <- list()
  for (m in METHODS) {
    fit <- suppressWarnings(rma(cs$yi, cs$vi, mods = as.matrix(cs$mods), method = m, test = "z", control = CTRL))
    fits[[m]] <- list(coef_names = rownames(fit$beta), beta = as.vector(fit$beta), se = fit$se, zval = fit$zval,
                      pval = fit$pval, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub, tau2 = fit$tau2, I2 = fit$I2,
                      QE = fit$QE, QEp = fit$QEp, QE_df = fit$k - fit$p, QM = fit$QM, QMp = fit$QMp,
                      QM_df = fit$m, R2 = if (is.null(fit$R2)) NA else fit$R2)
  }
  out$cases[[cs$name]] <- list(yi = cs$yi, vi = cs$vi, mods = as.list(cs$mods), fits = fits)
}
writeLines(toJSON(out, digits = I(17), auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/reference/metareg_review.json")
