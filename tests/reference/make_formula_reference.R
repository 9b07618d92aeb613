#!/usr/bin/env Rscript
# Writes tests/reference/formula.json: metafor's formula interface and the functions around a fitted model,
# for tests/engine/test_reference_formula.py (issue 13).
#
# Usage, from the repository root (no arguments):
#     Rscript tests/reference/make_formula_reference.R
#
# Needs R with metafor 3.8-1 (and its metadat) and jsonlite. Nothing random: re-running reproduces the file.
# Numbers are written with sprintf("%.17g"); NA becomes null. metafor's convergence is tightened
# (control=list(threshold=1e-12, tol=1e-12, maxiter=10000)) so that the fixture holds converged values.
#
# What it records, per fit (an `rma()` call on one of the data sets below, with `mods` a formula, `weights`,
# `subset`, missing values, vi = 0, intercept = FALSE):
#   - the fit: coefficient names (as R prints them), beta, se, zval, pval, ci.lb/ci.ub, vb, tau2, se.tau2,
#     I2, H2, QE/QEp, QM/QMdf/QMp, R2, k, k.all, k.f, p, parms, fit.stats (ML and REML columns), weights(),
#     the warnings metafor gave; or {"error": message} when metafor stops;
#   - predict() (fitted values), blup(), ranef(), rstandard() (marginal and conditional), residuals()
#     (response, rstandard, pearson), vcov() (fixed, obs), fitstats() (ML and REML), hatvalues();
#     each one {"error": message} where metafor refuses (e.g. blup with user weights).
# Then anova() Wald tests (btt by position and by name; linear contrasts X with and without rhs), likelihood-
# ratio tests anova(full, reduced) (ML, REML, and the cases metafor refuses or warns about), and predict()
# with newmods (a design matrix without intercept) and transf = exp.
#
# Data sets (metadat 1.2-0, shipped with metafor): dat.bcg (log risk ratios by escalc("RR"); ablat, year,
# alloc; ni = total sample size), dat.molloy2014 (Fisher's z by escalc("ZCOR"); meanage, quality, design),
# dat.raudenbush1985 (yi, vi as shipped; weeks, setting, tester), dat.bangertdrowns2004 (yi, vi as shipped;
# length, grade, imag, meta: length and meta have missing values), dat.hackshaw1998 (yi, vi as shipped; year,
# design, country). Derived sets: bcg_na (dat.bcg with yi of trials 2 and 7 set to NA), bcg_vi0
# (dat.bcg with vi of trial 4 set to 0) and bcg_vi_all0 (every vi 0: a regression with residual variance tau^2).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("These fixtures were made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_formula_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)

# --- JSON with full precision (as make_reference.R) ---------------------------------------------------------
fmt_num <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "null"
  out[is.infinite(x) & x > 0] <- "Infinity"
  out[is.infinite(x) & x < 0] <- "-Infinity"
  out
}
vec <- function(x) structure(as.numeric(x), class = "me_vec")
to_verbatim <- function(x) {
  if (inherits(x, "me_vec")) {
    return(structure(paste0("[", paste(fmt_num(unclass(x)), collapse = ","), "]"), class = "json"))
  }
  if (is.list(x)) return(lapply(x, to_verbatim))
  if (is.numeric(x) && !is.matrix(x)) {
    if (length(x) == 1L) return(structure(fmt_num(x), class = "json"))
    return(structure(paste0("[", paste(fmt_num(x), collapse = ","), "]"), class = "json"))
  }
  if (is.numeric(x) && is.matrix(x)) {
    rows <- apply(x, 1L, function(r) paste0("[", paste(fmt_num(r), collapse = ","), "]"))
    return(structure(paste0("[", paste(rows, collapse = ","), "]"), class = "json"))
  }
  x
}
mat <- function(m) {
  m <- as.matrix(m)
  dimnames(m) <- NULL
  m
}

# Evaluate, recording warnings; an error becomes list(error = message).
capture <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(error = conditionMessage(e)), class = "me_error")),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(value = value, warnings = warns)
}
is_err <- function(x) inherits(x, "me_error")
err <- function(x) list(error = x$error)

# --- data ------------------------------------------------------------------------------------------------------
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi), ablat = dat.bcg$ablat, year = dat.bcg$year,
                  alloc = dat.bcg$alloc, ni = with(dat.bcg, tpos + tneg + cpos + cneg),
                  stringsAsFactors = FALSE)
bcg$ablat2 <- 2 * bcg$ablat  # collinear with ablat: metafor drops it
bcg_na <- bcg
bcg_na$yi[c(2, 7)] <- NA
bcg_vi0 <- bcg
bcg_vi0$vi[4] <- 0
bcg_vi_all0 <- bcg
bcg_vi_all0$vi <- 0
mol <- escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
mol <- data.frame(yi = as.numeric(mol$yi), vi = as.numeric(mol$vi), meanage = mol$meanage, quality = mol$quality,
                  design = mol$design, ni = mol$ni, stringsAsFactors = FALSE)
rb <- dat.raudenbush1985
rb <- data.frame(yi = as.numeric(rb$yi), vi = as.numeric(rb$vi), weeks = rb$weeks, setting = rb$setting,
                 tester = rb$tester, stringsAsFactors = FALSE)
bd <- dat.bangertdrowns2004
bd <- data.frame(yi = as.numeric(bd$yi), vi = as.numeric(bd$vi), length = bd$length, grade = bd$grade,
                 imag = bd$imag, meta = bd$meta, ni = bd$ni, stringsAsFactors = FALSE)
hs <- dat.hackshaw1998
hs <- data.frame(yi = as.numeric(hs$yi), vi = as.numeric(hs$vi), year = hs$year, design = hs$design,
                 country = hs$country, stringsAsFactors = FALSE)

DATA <- list(bcg = bcg, bcg_na = bcg_na, bcg_vi0 = bcg_vi0, bcg_vi_all0 = bcg_vi_all0, molloy2014 = mol, raudenbush1985 = rb,
             bangertdrowns2004 = bd, hackshaw1998 = hs)
ORIGIN <- list(
  bcg = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg); ni = tpos+tneg+cpos+cneg; ablat2 = 2*ablat",
  bcg_na = "bcg with yi[c(2, 7)] <- NA",
  bcg_vi0 = "bcg with vi[4] <- 0",
  bcg_vi_all0 = "bcg with every vi set to 0",
  molloy2014 = "dat.molloy2014; escalc(\"ZCOR\", ri, ni)",
  raudenbush1985 = "dat.raudenbush1985; yi, vi as shipped",
  bangertdrowns2004 = "dat.bangertdrowns2004; yi, vi as shipped (length and meta have NAs)",
  hackshaw1998 = "dat.hackshaw1998; yi, vi as shipped")

data_json <- function(d) {
  lapply(d, function(col) if (is.numeric(col)) vec(col) else as.list(col))
}

# --- one fit and what is extracted from it ------------------------------------------------------------------
fit_values <- function(fit) {
  list(coef_names = as.list(rownames(fit$beta)), beta = vec(fit$beta), se = vec(fit$se), zval = vec(fit$zval),
       pval = vec(fit$pval), ci_lb = vec(fit$ci.lb), ci_ub = vec(fit$ci.ub), vb = mat(fit$vb), tau2 = fit$tau2,
       se_tau2 = fit$se.tau2, I2 = fit$I2, H2 = fit$H2, QE = fit$QE, QEp = fit$QEp, QM = fit$QM,
       QMdf = vec(fit$QMdf), QMp = fit$QMp, btt = vec(fit$btt), R2 = if (is.null(fit$R2)) NA else fit$R2,
       k = fit$k, k_all = fit$k.all, k_f = fit$k.f, p = fit$p, parms = fit$parms, int_incl = fit$int.incl,
       int_only = fit$int.only, not_na = as.list(fit$not.na), ddf = fit$ddf, s2w = fit$s2w,
       fit_stats_ML = vec(fit$fit.stats$ML), fit_stats_REML = vec(fit$fit.stats$REML),
       weights = vec(weights(fit)))
}

extras <- function(fit) {
  out <- list()
  pr <- capture(predict(fit))
  out$predict <- if (is_err(pr$value)) err(pr$value) else
    list(pred = vec(pr$value$pred), se = vec(pr$value$se), ci_lb = vec(pr$value$ci.lb),
         ci_ub = vec(pr$value$ci.ub), pi_lb = vec(pr$value$pi.lb), pi_ub = vec(pr$value$pi.ub))
  for (fn in c("blup", "ranef")) {
    r <- capture(get(fn)(fit))
    out[[fn]] <- if (is_err(r$value)) err(r$value) else
      list(pred = vec(r$value$pred), se = vec(r$value$se), pi_lb = vec(r$value$pi.lb),
           pi_ub = vec(r$value$pi.ub))
  }
  for (type in c("marginal", "conditional")) {
    r <- capture(rstandard(fit, type = type))
    out[[paste0("rstandard_", type)]] <- if (is_err(r$value)) err(r$value) else
      list(resid = vec(r$value$resid), se = vec(r$value$se), z = vec(r$value$z))
  }
  for (type in c("response", "rstandard", "pearson")) {
    r <- capture(residuals(fit, type = type))
    out[[paste0("residuals_", type)]] <- if (is_err(r$value)) err(r$value) else vec(r$value)
  }
  out$vcov_fixed <- mat(vcov(fit, type = "fixed"))
  out$vcov_obs <- mat(vcov(fit, type = "obs"))
  out$fitstats_ML <- vec(fitstats(fit, REML = FALSE))
  out$fitstats_REML <- vec(fitstats(fit, REML = TRUE))
  out$logLik <- as.numeric(logLik(fit))
  out$hatvalues <- vec(hatvalues(fit))
  out
}

FITS <- list()
FIT_OBJ <- list()
add_fit <- function(name, data, args, python) {
  d <- DATA[[data]]
  call_args <- c(list(data = d, control = CTRL), args)
  r <- capture(do.call(rma, call_args))
  entry <- list(data = data, args = python, warnings = as.list(r$warnings))
  if (is_err(r$value)) {
    entry$result <- err(r$value)
  } else {
    entry$result <- fit_values(r$value)
    entry$extras <- extras(r$value)
    FIT_OBJ[[name]] <<- r$value
  }
  FITS[[name]] <<- entry
}

# `python` holds the call's arguments as tests/engine/test_reference_formula.py passes them to
# metaexercise.rma: column names for yi/vi/weights, the formula as a string, subset as a logical vector or
# 1-based indices (the test turns them into 0-based ones), method/test/intercept/tau2.
f <- function(mods, method = "REML", test = "z", ...) {
  extra <- list(...)
  r_args <- c(list(yi = quote(yi), vi = quote(vi), method = method, test = test), extra)
  if (!is.null(mods)) r_args$mods <- as.formula(mods)
  py_extra <- lapply(extra, function(e) if (is.symbol(e)) as.character(e) else e)
  if (!is.null(py_extra$subset)) {
    if (is.logical(py_extra$subset)) py_extra$subset <- as.list(py_extra$subset) else {
      py_extra$subset_1based <- vec(py_extra$subset)
      py_extra$subset <- NULL
    }
  }
  py <- c(list(yi = "yi", vi = "vi", mods = mods, method = method, test = test), py_extra)
  list(r = r_args, py = py)
}
add <- function(name, data, spec) add_fit(name, data, spec$r, spec$py)

MAIN <- "~ ablat + factor(alloc)"
for (mt in list(c("REML", "z"), c("REML", "knha"), c("ML", "z"), c("EE", "z"), c("DL", "z"), c("PM", "knha"),
                c("HE", "z"), c("SJ", "z"), c("EB", "z"), c("HS", "z"))) {
  add(paste0("bcg_ablat_alloc_", mt[1], "_", mt[2]), "bcg", f(MAIN, mt[1], mt[2]))
}
add("bcg_alloc_character", "bcg", f("~ alloc"))
add("bcg_ablat_times_year", "bcg", f("~ ablat * year"))
add("bcg_ablat_times_alloc", "bcg", f("~ ablat * factor(alloc)"))
add("bcg_alloc_colon_ablat", "bcg", f("~ factor(alloc):ablat"))
add("bcg_alloc_minus1", "bcg", f("~ factor(alloc) - 1"))
add("bcg_zero_plus_alloc_ablat", "bcg", f("~ 0 + factor(alloc) + ablat"))
add("bcg_zero_plus_alloc_ablat_knha", "bcg", f("~ 0 + factor(alloc) + ablat", test = "knha"))
add("bcg_factor_year", "bcg", f("~ factor(year)", method = "EE"))
add("bcg_redundant", "bcg", f("~ ablat + ablat2 + factor(alloc)"))
add("bcg_formula_intercept_only", "bcg", f("~ 1"))
add("bcg_ablat_tau2_fixed", "bcg", f("~ ablat", tau2 = 0.1))
# user weights
for (mt in list(c("REML", "z"), c("REML", "knha"), c("EE", "z"), c("ML", "z"), c("DL", "z"))) {
  add(paste0("bcg_weights_ablat_", mt[1], "_", mt[2]), "bcg",
      f("~ ablat", mt[1], mt[2], weights = quote(ni)))
}
add("bcg_weights_intercept_only", "bcg", f(NULL, weights = quote(ni)))
# subset: logical and by index (1-based here)
add("bcg_subset_logical", "bcg", f("~ ablat", subset = bcg$alloc != "systematic"))
add("bcg_subset_index", "bcg", f(NULL, subset = c(1, 3, 5, 7, 9, 11, 13)))
add("bcg_subset_index_alloc", "bcg", f(MAIN, subset = c(2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13)))
# missing values
add("bcg_na_ablat_alloc", "bcg_na", f(MAIN))
add("bcg_na_ablat_alloc_knha", "bcg_na", f(MAIN, test = "knha"))
add("bcg_na_intercept_only", "bcg_na", f(NULL))
add("bangert_length_grade_imag_meta", "bangertdrowns2004", f("~ length + factor(grade) + imag + meta"))
add("bangert_length_ML", "bangertdrowns2004", f("~ length", method = "ML"))
add("bangert_grade_ML", "bangertdrowns2004", f("~ length + factor(grade)", method = "ML"))
add("bangert_weights_length", "bangertdrowns2004", f("~ length", weights = quote(ni)))
# vi = 0
for (m in c("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")) {
  add(paste0("bcg_vi0_", m), "bcg_vi0", f(NULL, m))
}
add("bcg_vi0_ablat_REML", "bcg_vi0", f("~ ablat"))
add("bcg_vi0_ablat_REML_knha", "bcg_vi0", f("~ ablat", test = "knha"))
add("bcg_vi0_tau2_fixed", "bcg_vi0", f(NULL, tau2 = 0.2))
for (m in c("REML", "ML", "HE", "EE")) add(paste0("bcg_vi_all0_", m), "bcg_vi_all0", f("~ ablat", m))
# other data sets
add("molloy_meanage_quality", "molloy2014", f("~ meanage + factor(quality)"))
add("molloy_design_meanage_knha", "molloy2014", f("~ factor(design) + meanage", test = "knha"))
add("raudenbush_weeks_tester_setting", "raudenbush1985", f("~ weeks + factor(tester) + setting"))
add("raudenbush_tester_times_weeks", "raudenbush1985", f("~ tester * weeks", method = "ML"))
add("hackshaw_design_year_ML", "hackshaw1998", f("~ factor(design) + year", method = "ML"))
add("hackshaw_year_ML", "hackshaw1998", f("~ year", method = "ML"))
add("hackshaw_design_REML", "hackshaw1998", f("~ factor(design)"))

# array interface: mods as a matrix, intercept = FALSE
r <- capture(rma(bcg$yi, bcg$vi, mods = cbind(ablat = bcg$ablat), intercept = FALSE, control = CTRL))
FITS$bcg_array_ablat_no_intercept <- list(data = "bcg", warnings = as.list(r$warnings),
  args = list(yi = "yi", vi = "vi", mods_columns = list("ablat"), intercept = FALSE, method = "REML", test = "z"),
  result = fit_values(r$value), extras = extras(r$value))
FIT_OBJ$bcg_array_ablat_no_intercept <- r$value
r <- capture(rma(bcg$yi, bcg$vi, mods = cbind(one = 1, ablat = bcg$ablat), intercept = FALSE, control = CTRL))
FITS$bcg_array_ones_no_intercept <- list(data = "bcg", warnings = as.list(r$warnings),
  args = list(yi = "yi", vi = "vi", mods_columns = list("ones", "ablat"), intercept = FALSE, method = "REML",
              test = "z"),
  result = fit_values(r$value), extras = extras(r$value))
FIT_OBJ$bcg_array_ones_no_intercept <- r$value

# --- anova: Wald tests ---------------------------------------------------------------------------------------
wald_values <- function(a) {
  if (a$type == "Wald.btt") {
    list(QM = a$QM, QMdf = vec(a$QMdf), QMp = a$QMp, btt = vec(a$btt), m = a$m)
  } else {
    list(QM = a$QM, QMdf = vec(a$QMdf), QMp = a$QMp, Xb = vec(a$Xb), se = vec(a$se), zval = vec(a$zval),
         pval = vec(a$pval), ddf = vec(a$ddf), hyp = as.list(a$hyp[[1]]), m = a$m)
  }
}
ANOVA <- list()
add_wald <- function(name, fit, python, ...) {
  r <- capture(anova(FIT_OBJ[[fit]], ...))
  entry <- list(fit = fit, args = python, warnings = as.list(r$warnings))
  if (is_err(r$value)) {
    entry$result <- err(r$value)
  } else {
    entry$result <- wald_values(r$value)
    entry$printout <- as.list(capture.output(print(r$value)))
  }
  ANOVA[[name]] <<- entry
}
# python: btt as 0-based positions (R's btt minus 1), or the string as given
add_wald("btt_2_3", "bcg_ablat_alloc_REML_z", list(btt = vec(c(1, 2))), btt = 2:3)
add_wald("btt_2", "bcg_ablat_alloc_REML_z", list(btt = vec(1)), btt = 2)
add_wald("btt_alloc", "bcg_ablat_alloc_REML_z", list(btt = "alloc"), btt = "alloc")
add_wald("btt_alloc_knha", "bcg_ablat_alloc_REML_knha", list(btt = "alloc"), btt = "alloc")
add_wald("btt_2_3_knha", "bcg_ablat_alloc_REML_knha", list(btt = vec(c(1, 2))), btt = 2:3)
add_wald("btt_default_noint", "bcg_zero_plus_alloc_ablat", list(), btt = NULL)
add_wald("btt_1_noint", "bcg_zero_plus_alloc_ablat", list(btt = vec(0)), btt = 1)
add_wald("btt_regex", "bcg_ablat_times_alloc", list(btt = ":"), btt = ":")
add_wald("btt_rhs", "bcg_ablat_alloc_REML_z", list(btt = vec(1), rhs = -0.03), btt = 2, rhs = -0.03)
add_wald("btt_bad_name", "bcg_ablat_alloc_REML_z", list(btt = "nonesuch"), btt = "nonesuch")
add_wald("X_contrasts", "bcg_ablat_alloc_REML_z", list(X = mat(rbind(c(0, 0, 1, -1), c(0, 1, 0, 0)))),
         X = rbind(c(0, 0, 1, -1), c(0, 1, 0, 0)))
add_wald("X_one_row", "bcg_ablat_alloc_REML_z", list(X = vec(c(1, 30, 1, 0))), X = c(1, 30, 1, 0))
add_wald("X_no_intercept_column", "bcg_ablat_alloc_REML_z", list(X = mat(rbind(c(30, 1, 0), c(30, 0, 1)))),
         X = rbind(c(30, 1, 0), c(30, 0, 1)))
add_wald("X_knha", "bcg_ablat_alloc_REML_knha", list(X = mat(rbind(c(0, 0, 1, -1), c(1, 20, 0, 0)))),
         X = rbind(c(0, 0, 1, -1), c(1, 20, 0, 0)))
add_wald("X_rhs", "bcg_ablat_alloc_REML_z", list(X = mat(rbind(c(0, 0, 1, -1), c(0, 1, 0, 0))), rhs = 0.1),
         X = rbind(c(0, 0, 1, -1), c(0, 1, 0, 0)), rhs = 0.1)
add_wald("X_rank_deficient", "bcg_ablat_alloc_REML_z",
         list(X = mat(rbind(c(0, 1, 0, 0), c(0, 2, 0, 0)))), X = rbind(c(0, 1, 0, 0), c(0, 2, 0, 0)))

# --- anova: likelihood-ratio tests ---------------------------------------------------------------------------
LRT <- list()
add_lrt <- function(name, full, reduced, ...) {
  r <- capture(anova(FIT_OBJ[[full]], FIT_OBJ[[reduced]], ...))
  entry <- list(full = full, reduced = reduced, warnings = as.list(r$warnings), refit = isTRUE(list(...)$refit))
  if (is_err(r$value)) {
    entry$result <- err(r$value)
  } else {
    a <- r$value
    entry$result <- list(LRT = a$LRT, pval = a$pval, parms_f = a$parms.f, parms_r = a$parms.r,
                         fit_stats_f = vec(a$fit.stats.f), fit_stats_r = vec(a$fit.stats.r), QE_f = a$QE.f,
                         QE_r = a$QE.r, tau2_f = a$tau2.f, tau2_r = a$tau2.r, R2 = a$R2, method = a$method)
    entry$printout <- as.list(capture.output(print(a)))
  }
  LRT[[name]] <<- entry
}
add("bcg_ablat_ML", "bcg", f("~ ablat", method = "ML"))
add("bcg_ablat_REML", "bcg", f("~ ablat"))
add("bcg_intercept_only_REML", "bcg", f(NULL))
add("bcg_intercept_only_ML", "bcg", f(NULL, method = "ML"))
add("bcg_intercept_only_EE", "bcg", f(NULL, method = "EE"))
add("bcg_ablat_EE", "bcg", f("~ ablat", method = "EE"))
add_lrt("ML_alloc_vs_ablat", "bcg_ablat_alloc_ML_z", "bcg_ablat_ML")
add_lrt("ML_reduced_first", "bcg_ablat_ML", "bcg_ablat_alloc_ML_z")
add_lrt("ML_ablat_vs_intercept", "bcg_ablat_ML", "bcg_intercept_only_ML")
add_lrt("REML_RE_vs_EE", "bcg_intercept_only_REML", "bcg_intercept_only_EE")
add_lrt("REML_different_X", "bcg_ablat_alloc_REML_z", "bcg_ablat_REML")
add_lrt("REML_different_X_refit", "bcg_ablat_alloc_REML_z", "bcg_ablat_REML", refit = TRUE)
add_lrt("EE_ablat_vs_intercept", "bcg_ablat_EE", "bcg_intercept_only_EE")
add_lrt("ML_vs_REML", "bcg_ablat_alloc_ML_z", "bcg_ablat_REML")
add_lrt("ML_RE_vs_EE", "bcg_ablat_ML", "bcg_ablat_EE")
add_lrt("same_parms", "bcg_intercept_only_ML", "bcg_ablat_EE")
add_lrt("different_data", "bcg_ablat_ML", "bcg_na_intercept_only")
add_lrt("EE_full_RE_reduced", "bcg_ablat_alloc_EE_z", "bcg_ablat_REML")
add_lrt("DL_models", "bcg_ablat_alloc_DL_z", "bcg_intercept_only_REML")
add_lrt("hackshaw_design", "hackshaw_design_year_ML", "hackshaw_year_ML")
add_lrt("bangert_grade", "bangert_grade_ML", "bangert_length_ML")

# --- predict with newmods and transf ----------------------------------------------------------------------------
PRED <- list()
add_pred <- function(name, fit, python, ...) {
  r <- capture(predict(FIT_OBJ[[fit]], ...))
  entry <- list(fit = fit, args = python, warnings = as.list(r$warnings))
  if (is_err(r$value)) {
    entry$result <- err(r$value)
  } else {
    v <- r$value
    entry$result <- list(pred = vec(v$pred), se = vec(v$se), ci_lb = vec(v$ci.lb), ci_ub = vec(v$ci.ub),
                         pi_lb = if (is.null(v$pi.lb)) NULL else vec(v$pi.lb),
                         pi_ub = if (is.null(v$pi.ub)) NULL else vec(v$pi.ub),
                         X = if (is.null(v$X)) NULL else mat(v$X))
  }
  PRED[[name]] <<- entry
}
NEW <- rbind(c(10, 0, 0), c(30, 1, 0), c(50, 0, 1))
NEW_DF <- list(ablat = vec(c(10, 30, 50)), alloc = list("alternate", "random", "systematic"))
add_pred("alloc_newmods", "bcg_ablat_alloc_REML_z", list(newmods = mat(NEW), newdata = NEW_DF), newmods = NEW)
add_pred("alloc_newmods_exp", "bcg_ablat_alloc_REML_z", list(newmods = mat(NEW), newdata = NEW_DF, transf = "exp"),
         newmods = NEW, transf = exp)
add_pred("alloc_newmods_addx", "bcg_ablat_alloc_REML_z", list(newmods = mat(NEW), newdata = NEW_DF, addx = TRUE),
         newmods = NEW, addx = TRUE)
add_pred("alloc_newmods_knha_exp", "bcg_ablat_alloc_REML_knha",
         list(newmods = mat(NEW), newdata = NEW_DF, transf = "exp"), newmods = NEW, transf = exp)
add_pred("alloc_newmods_no_intercept", "bcg_ablat_alloc_REML_z",
         list(newmods = mat(NEW), newdata = NEW_DF, intercept = FALSE), newmods = NEW, intercept = FALSE)
add_pred("alloc_newmods_level90", "bcg_ablat_alloc_REML_z", list(newmods = mat(NEW), newdata = NEW_DF, level = 90),
         newmods = NEW, level = 90)
add_pred("ablat_vector", "bcg_ablat_REML", list(newmods = vec(c(10, 20, 30, 40, 50)),
                                                newdata = list(ablat = vec(c(10, 20, 30, 40, 50)))),
         newmods = c(10, 20, 30, 40, 50))
add_pred("intercept_only_exp", "bcg_intercept_only_REML", list(transf = "exp"), transf = exp)
add_pred("na_fitted_exp", "bcg_na_ablat_alloc", list(transf = "exp"), transf = exp)
add_pred("noint_newmods", "bcg_zero_plus_alloc_ablat",
         list(newmods = mat(rbind(c(1, 0, 0, 20), c(0, 0, 1, 40))),
              newdata = list(alloc = list("alternate", "systematic"), ablat = vec(c(20, 40)))),
         newmods = rbind(c(1, 0, 0, 20), c(0, 0, 1, 40)))
add_pred("weights_newmods", "bcg_weights_ablat_REML_z",
         list(newmods = vec(c(15, 45)), newdata = list(ablat = vec(c(15, 45)))), newmods = c(15, 45))
add_pred("interaction_newmods", "bcg_ablat_times_year",
         list(newmods = mat(rbind(c(20, 1960, 20 * 1960), c(40, 1970, 40 * 1970))),
              newdata = list(ablat = vec(c(20, 40)), year = vec(c(1960, 1970)))),
         newmods = rbind(c(20, 1960, 20 * 1960), c(40, 1970, 40 * 1970)))
add_pred("intercept_only_newmods_error", "bcg_intercept_only_REML", list(newmods = vec(1)), newmods = 1)

# --- write --------------------------------------------------------------------------------------------------
SOURCE <- list(
  generator = "tests/reference/make_formula_reference.R",
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  control = "control=list(threshold=1e-12, tol=1e-12, maxiter=10000)",
  call = paste("rma(yi, vi, mods = <formula>, data = <data>, method, test, weights, subset, tau2, intercept,",
               "control); predict(), blup(), ranef(), rstandard(type=), residuals(type=), vcov(type=),",
               "fitstats(REML=), hatvalues(); anova(fit, btt=, X=, rhs=); anova(full, reduced, refit=);",
               "predict(fit, newmods=, transf=exp, addx=, intercept=, level=)"),
  na_action = getOption("na.action"),
  origin = ORIGIN)
obj <- list(source = SOURCE, datasets = lapply(DATA, data_json), fits = FITS, anova = ANOVA, lrt = LRT,
            predict = PRED)
txt <- toJSON(to_verbatim(obj), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null",
              pretty = TRUE)
path <- file.path(OUTDIR, "formula.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
