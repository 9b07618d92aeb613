#!/usr/bin/env Rscript
# Writes tests/reference/robustness.json, the metafor fixture of the engine's robustness tests
# (tests/engine/test_extreme_inputs.py and tests/engine/test_safeguard.py).
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_robustness_reference.R
#
# Needs R with metafor 3.8-1 and jsonlite. Takes a few minutes (the search for data sets on which Fisher
# scoring does not converge, and metafor's own hangs, each stopped after TIME_LIMIT seconds). Every data set
# is written out in full (%.17g); re-running the script reproduces the file byte for byte.
#
# Three parts:
# 1. "intercept_only": extreme inputs (effect sizes up to 1e300, sampling variances from 5e-324 to 1e300,
#    mixtures, k = 1 and 2, identical studies, tau^2 = 0 exactly), fitted with every method (EE, DL, HE, HS,
#    SJ, ML, REML, EB, PM) and test (z, knha). Where metafor fits a case its numbers are recorded; where it
#    stops, its error message; where it does not return within TIME_LIMIT seconds (its step-halving loop
#    never ends when a step is -Inf), {"error": "timeout"}. Convergence: threshold 1e-12 (Fisher scoring)
#    and tol 1e-12 (uniroot, PM), both times the case's squared scale `scale2` where that is below 1
#    (yi ~ 1e-20, vi ~ 1e-40: an absolute 1e-12 would stop Fisher scoring at its first step). They are not
#    scaled up for larger scales: metafor starts its loop with change = threshold + 1, which is the
#    threshold itself once that exceeds 2^53, so Fisher scoring would not iterate at all.
# 2. "moderators": nearly collinear (condition numbers 1.7e3 ... 1e16), exactly collinear, constant and zero
#    moderators, moderators on tiny and huge scales: coef.na (the redundant predictors metafor drops, with
#    its warning), or metafor's error ("Model matrix not of full rank"), and the fit.
# 3. "nonconvergence": data sets drawn here (k = 30, vi ~ U(0.005, 0.2), yi ~ N(-0.3, vi + 0.05), as
#    benchmarks/run.py) on which metafor's REML (or ML) Fisher scoring does not converge with threshold 1e-12
#    and maxiter 1000; for each, metafor's fit with damped steps (stepadj 0.5, or 0.25 where 0.5 still
#    fails), run to convergence (threshold 1e-13, maxiter 100000): tau^2, beta, se and the log-likelihood.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_robustness_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())
TIME_LIMIT <- 5

num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x) & !is.nan(x)] <- "NaN"
  txt[is.nan(x)] <- "NaN"
  txt[is.infinite(x) & x > 0] <- "Infinity"
  txt[is.infinite(x) & x < 0] <- "-Infinity"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

# One rma() call with a time limit; returns list(fit = , warnings = ) or list(error = ).
run <- function(expr) {
  warns <- character(0)
  setTimeLimit(elapsed = TIME_LIMIT, transient = TRUE)
  on.exit(setTimeLimit(elapsed = Inf), add = TRUE)
  res <- withCallingHandlers(
    tryCatch(list(fit = eval.parent(substitute(expr))),
             error = function(e) {
               msg <- conditionMessage(e)
               if (grepl("time limit", msg)) msg <- "timeout"
               list(error = msg)
             }),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  setTimeLimit(elapsed = Inf)
  res$warnings <- unique(warns)
  res
}

record <- function(res) {
  if (!is.null(res$error)) return(list(error = res$error, warnings = res$warnings))
  f <- res$fit
  list(k = f$k, p = f$p, coef_na = f$coef.na, beta = num(f$beta), se = num(f$se), zval = num(f$zval),
       pval = num(f$pval), ci_lb = num(f$ci.lb), ci_ub = num(f$ci.ub), tau2 = num(f$tau2),
       se_tau2 = num(f$se.tau2), QE = num(f$QE), QEp = num(f$QEp), QM = num(f$QM), QMp = num(f$QMp),
       I2 = num(f$I2), H2 = num(f$H2), ll_ML = num(f$fit.stats["ll", "ML"]),
       ll_REML = num(f$fit.stats["ll", "REML"]), warnings = res$warnings)
}

METHODS <- c("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
TESTS <- c("z", "knha")

fit_all <- function(yi, vi, mods = NULL, scale2 = 1) {
  ctrl <- list(threshold = 1e-12 * min(1, scale2), maxiter = 10000, tol = 1e-12 * min(1, scale2))
  fits <- list()
  for (m in METHODS) for (t in TESTS) {
    res <- if (is.null(mods)) run(rma(yi, vi, method = m, test = t, control = ctrl))
           else run(rma(yi, vi, mods = mods, method = m, test = t, control = ctrl))
    fits[[paste(m, t, sep = "/")]] <- record(res)
  }
  fits
}

# ---------------------------------------------------------------------------------------------------
# 1. intercept-only extreme inputs (the same definitions as tests/engine/test_extreme_inputs.py)
# ---------------------------------------------------------------------------------------------------
y0 <- c(0.12, -0.35, 0.48, 0.05, -0.2, 0.31, 0.9, -0.07)
v0 <- c(0.05, 0.12, 0.03, 0.08, 0.15, 0.02, 0.1, 0.06)
int_cases <- list(
  base = list(yi = y0, vi = v0),
  y_1e50 = list(yi = y0 * 1e50, vi = v0, scale2 = 1e100),
  y_bound = list(yi = c(1e50, -1e50, y0[3:8]), vi = v0, scale2 = 1e100),
  "v_1e-48" = list(yi = y0, vi = v0 * 1e-48),
  v_1e48 = list(yi = y0, vi = v0 * 1e48),
  v_mix_1e48 = list(yi = y0, vi = c(v0[1:4] * 1e-48, v0[5:8] * 1e48)),
  v_bound = list(yi = y0, vi = c(1e-50, 1e50, v0[3:8])),
  scaled_1e24 = list(yi = y0 * 1e24, vi = v0 * 1e48, scale2 = 1e48),
  "scaled_1e-20" = list(yi = y0 * 1e-20, vi = v0 * 1e-40, scale2 = 1e-40),
  y_subnormal = list(yi = c(1e-310, -2e-310, 3e-310, 0, 1e-320, -1e-315, 2e-312, 5e-324), vi = v0),
  one_dominant = list(yi = y0, vi = c(1e-40, v0[2:8])),
  k1 = list(yi = 0.3, vi = 0.04),
  k2_identical = list(yi = c(0.3, 0.3), vi = c(0.1, 0.1)),
  k2_different = list(yi = c(0.1, 0.9), vi = c(0.01, 0.02)),
  all_equal = list(yi = rep(0.3, 8), vi = rep(0.1, 8)),
  yi_equal = list(yi = rep(0.3, 8), vi = v0),
  # outside the engine's range (|yi| <= 1e50, 1e-50 <= vi <= 1e50): metafor's behaviour, for the record
  y_1e150 = list(yi = y0 * 1e150, vi = v0, scale2 = 1e300),
  y_1e150_v_1e300 = list(yi = y0 * 1e150, vi = v0 * 1e300, scale2 = 1e300),
  y_1e300 = list(yi = y0 * 1e300, vi = v0),
  "y_-1e300" = list(yi = -abs(y0) * 1e300, vi = v0),
  "v_1e-300" = list(yi = y0, vi = v0 * 1e-300),
  v_1e300 = list(yi = y0, vi = v0 * 1e300),
  v_subnormal = list(yi = y0, vi = rep(5e-324, 8)),
  "v_subnormal_1e-310" = list(yi = y0, vi = v0 * 1e-309),
  v_mix_1e300 = list(yi = y0, vi = c(v0[1:4] * 1e-300, v0[5:8] * 1e300))
)
intercept_only <- list()
for (name in names(int_cases)) {
  d <- int_cases[[name]]
  s2 <- if (is.null(d$scale2)) 1 else d$scale2
  intercept_only[[name]] <- list(yi = num(d$yi), vi = num(d$vi), scale2 = num(s2), fits = fit_all(d$yi, d$vi, scale2 = s2))
}

# ---------------------------------------------------------------------------------------------------
# 2. moderators
# ---------------------------------------------------------------------------------------------------
x1 <- c(-0.626, 0.184, -0.836, 1.595, 0.33, -0.82, 0.487, 0.738, 0.576, -0.305, 1.512, 0.39)
z <- c(-0.621, -2.215, 1.125, -0.045, -0.016, 0.944, 0.821, 0.594, 0.919, 0.782, 0.075, -1.989)
g <- c(1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3)
y12 <- c(0.05, 0.41, -0.12, 0.72, 0.33, -0.3, 0.28, 0.55, 0.19, 0.02, 0.66, 0.35)
v12 <- c(0.04, 0.09, 0.06, 0.03, 0.12, 0.05, 0.08, 0.02, 0.07, 0.1, 0.05, 0.06)
mod_cases <- list(
  kappa_1.7e3 = cbind(x1 = x1, x2 = x1 + 1e-3 * z),
  kappa_1.7e5 = cbind(x1 = x1, x2 = x1 + 1e-5 * z),
  kappa_1.7e7 = cbind(x1 = x1, x2 = x1 + 1e-7 * z),
  kappa_1e14 = cbind(x1 = x1, x2 = x1 + 1e-14 * z),
  kappa_1e15 = cbind(x1 = x1, x2 = x1 + 1e-15 * z),
  kappa_1e16 = cbind(x1 = x1, x2 = x1 + 1e-16 * z),
  kappa_1e17 = cbind(x1 = x1, x2 = x1 + 1e-17 * z),
  exact_collinear = cbind(x1 = x1, x2 = 2 * x1),
  collinear_after_other = cbind(x1 = x1, z = z, x3 = x1 - 3 * z),
  dummies_sum_to_intercept = cbind(g1 = as.numeric(g == 1), g2 = as.numeric(g == 2), g3 = as.numeric(g == 3)),
  constant = cbind(x1 = x1, c5 = rep(5, 12)),
  zero = cbind(z0 = rep(0, 12), x1 = x1),
  tiny_scale = cbind(x1 = x1 * 1e-5),
  huge_scale = cbind(x1 = x1 * 1e40),
  v_spread_1e12 = cbind(x1 = x1)
)
moderators <- list()
for (name in names(mod_cases)) {
  M <- mod_cases[[name]]
  vv <- if (name == "v_spread_1e12") v12 * 10^c(-6, 6, 0, 0, -6, 6, 0, 0, -6, 6, 0, 0) else v12
  moderators[[name]] <- list(yi = num(y12), vi = num(vv), mods = lapply(seq_len(ncol(M)), function(j) num(M[, j])),
                             colnames = colnames(M), fits = fit_all(y12, vv, mods = M))
}

# ---------------------------------------------------------------------------------------------------
# 3. data sets on which Fisher scoring does not converge
# ---------------------------------------------------------------------------------------------------
set.seed(20240601)
STRICT <- list(threshold = 1e-12, maxiter = 1000)
nonconv <- list()
n_reml <- 0
n_ml <- 0
tries <- 0
while ((n_reml < 20 || n_ml < 8) && tries < 60000) {
  tries <- tries + 1
  vi <- runif(30, 0.005, 0.2)
  yi <- rnorm(30, -0.3, sqrt(vi + 0.05))
  for (m in c("REML", "ML")) {
    if (m == "REML" && n_reml >= 20) next
    if (m == "ML" && n_ml >= 8) next
    strict <- try(rma(yi, vi, method = m, control = STRICT), silent = TRUE)
    if (!inherits(strict, "try-error")) next
    default <- try(rma(yi, vi, method = m), silent = TRUE)
    ref <- NULL
    for (adj in c(0.5, 0.25)) {
      ref <- try(rma(yi, vi, method = m, control = list(stepadj = adj, threshold = 1e-13, maxiter = 100000)),
                 silent = TRUE)
      if (!inherits(ref, "try-error")) break
    }
    entry <- list(draw = tries, method = m, yi = num(yi), vi = num(vi),
                  strict_error = as.character(strict),
                  default_error = if (inherits(default, "try-error")) as.character(default) else NULL)
    if (inherits(ref, "try-error")) {
      entry$stepadj_error <- as.character(ref)
    } else {
      entry$stepadj <- adj
      entry$tau2 <- num(ref$tau2)
      entry$beta <- num(ref$beta)
      entry$se <- num(ref$se)
      entry$ll <- num(ref$fit.stats["ll", m])
    }
    nonconv[[length(nonconv) + 1L]] <- entry
    if (m == "REML") n_reml <- n_reml + 1 else n_ml <- n_ml + 1
  }
}

out <- list(
  source = list(
    script = "tests/reference/make_robustness_reference.R",
    R = R.version.string,
    metafor = as.character(packageVersion("metafor")),
    jsonlite = as.character(packageVersion("jsonlite")),
    time_limit_seconds = TIME_LIMIT,
    call = paste("rma(yi, vi, [mods,] method, test, control = list(threshold = 1e-12 * min(1, scale2),",
                 "maxiter = 10000, tol = 1e-12 * min(1, scale2))); nonconvergence: rma(yi, vi, method, control = list(threshold = 1e-12,",
                 "maxiter = 1000)) fails, rma(..., control = list(stepadj = 0.5 (0.25), threshold = 1e-13,",
                 "maxiter = 100000))"),
    nonconvergence_draws = tries
  ),
  intercept_only = intercept_only,
  moderators = moderators,
  nonconvergence = nonconv
)
json <- toJSON(out, auto_unbox = TRUE, null = "null", json_verbatim = TRUE, pretty = FALSE, digits = NA)
writeLines(json, file.path(OUTDIR, "robustness.json"))
cat("wrote", file.path(OUTDIR, "robustness.json"), "after", tries, "draws\n")
