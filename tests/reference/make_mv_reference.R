#!/usr/bin/env Rscript
# Writes tests/reference/mv.json: metafor 3.8's multilevel / multivariate models (`rma.mv`), their profile-likelihood
# confidence intervals (`confint.rma.mv`), their printouts, and `vcalc()` var-cov matrices.
# tests/engine/test_reference_mv.py and test_reference_vcalc.py compare metaexercise.engine.mv and
# metaexercise.engine.sampling_vcov (vcalc) against it.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_mv_reference.R
#
# Needs R with metafor 3.8-1, metadat, minqa and jsonlite (Debian: apt-get install r-cran-metafor r-cran-minqa
# r-cran-jsonlite).
# Takes two to three minutes. The two synthetic sets (a multi-arm / multi-time-point layout for vcalc) are drawn from a
# fixed seed and labelled "synthetic", so a re-run reproduces the file byte for byte.
#
# Convergence: rma.mv's default optimizer (nlminb) with control=list(rel.tol=1e-12, iter.max=10000, eval.max=10000);
# where nlminb stops with "convergence = 1" at that tolerance, the script steps to rel.tol 1e-11 and then 1e-10. Each
# model is also fitted with minqa's bobyqa (control=list(optimizer="bobyqa", rhoend=1e-12)), and the fit with the
# higher log-likelihood is kept; each fit records its control (`control`). The tests do not trust this blindly: they
# evaluate metaexercise's log-likelihood at metafor's estimates and check that their own maximum is not below it.
# Profile CIs: confint(fit, control=list(tol=1e-12)) (uniroot's tolerance); every profile refit inherits the fit's
# control. Numbers are written with sprintf("%.17g"); NA becomes null.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("These fixtures were made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_mv_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

REL_TOLS <- c(1e-12, 1e-11, 1e-10)
CI_CTRL <- list(tol = 1e-12)

# ---------------------------------------------------------------------------------------------------
# JSON writing with full precision (as make_reference.R): numeric leaves are pre-formatted.
# ---------------------------------------------------------------------------------------------------
fmt_num <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "null"
  out[is.infinite(x) & x > 0] <- "Infinity"
  out[is.infinite(x) & x < 0] <- "-Infinity"
  out
}
vec <- function(x) structure(as.numeric(x), class = "me_vec")  # stays an array even at length 1
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
capture <- function(expr) paste(capture.output(print(expr)), collapse = "\n")
numvec <- function(x) if (is.null(x)) NULL else vec(x)

# ---------------------------------------------------------------------------------------------------
# Data sets (metadat, shipped with metafor) and their var-cov matrices
# ---------------------------------------------------------------------------------------------------
konst <- dat.konstantopoulos2011
berkey <- dat.berkey1998
V_berkey <- bldiag(lapply(split(berkey[c("v1i", "v2i")], berkey$trial), as.matrix))
assink <- dat.assink2016
V_assink <- vcalc(vi, cluster = study, obs = esid, data = assink, rho = 0.6)

# Gleser & Olkin (2009, ch. 19 of the Handbook of Research Synthesis and Meta-Analysis, 2nd ed.): their
# multiple-treatment example with standardized mean differences against a shared control group, as metafor's test
# suite (test_analysis_example_gleser2009.r) transcribes it; V by the chapter's formula (common-control covariance)
gleser <- data.frame(study = c(1, 1, 2, 3, 4, 4), trt = c(1, 2, 1, 1, 1, 2),
                     m1i = c(7.87, 4.35, 9.32, 8.08, 7.44, 5.34), m2i = c(-1.36, -1.36, 0.98, 1.17, 0.45, 0.45),
                     sdpi = c(4.2593, 4.2593, 2.8831, 3.1764, 2.9344, 2.9344),
                     n1i = c(25, 22, 38, 50, 30, 30), n2i = c(25, 25, 40, 50, 30, 30))
gleser$Ni <- unlist(lapply(split(gleser, gleser$study), function(x) rep(sum(x$n1i) + x$n2i[1], each = nrow(x))))
gleser$yi <- with(gleser, (m1i - m2i) / sdpi)
gleser$vi <- with(gleser, 1 / n1i + 1 / n2i + yi^2 / (2 * Ni))
V_gleser <- bldiag(lapply(split(gleser, gleser$study), function(x) {
  v <- matrix(1 / x$n2i[1] + outer(x$yi, x$yi, "*") / (2 * x$Ni[1]), nrow = nrow(x), ncol = nrow(x))
  diag(v) <- x$vi
  v
}))

# metafor's AR example (rma.mv help, dat.ishak2007): the wide data in long format, one row per study and time point
ishak <- reshape(dat.ishak2007, direction = "long", idvar = "study", v.names = c("yi", "vi"),
                 varying = list(c(2, 4, 6, 8), c(3, 5, 7, 9)))
ishak <- ishak[order(ishak$study, ishak$time), ]
ishak <- ishak[!is.na(ishak$yi), ]
rownames(ishak) <- NULL
V_ishak <- vcalc(vi, cluster = study, time1 = time, phi = 0.97, data = ishak)

DATA <- list(
  konstantopoulos2011 = list(
    origin = "metadat dat.konstantopoulos2011 (Konstantopoulos 2011): 56 schools in 11 districts",
    columns = list(district = vec(konst$district), school = vec(konst$school), study = vec(konst$study),
                   year = vec(konst$year), yi = vec(konst$yi), vi = vec(konst$vi))),
  berkey1998 = list(
    origin = "metadat dat.berkey1998 (Berkey et al. 1998): 5 trials x 2 outcomes (PD, AL); V = bldiag of (v1i, v2i)",
    columns = list(trial = vec(berkey$trial), author = berkey$author, year = vec(berkey$year),
                   ni = vec(berkey$ni), outcome = berkey$outcome, yi = vec(berkey$yi), vi = vec(berkey$vi),
                   v1i = vec(berkey$v1i), v2i = vec(berkey$v2i)),
    V = unclass(V_berkey), V_call = "bldiag(lapply(split(dat[c(\"v1i\", \"v2i\")], dat$trial), as.matrix))"),
  assink2016 = list(
    origin = "metadat dat.assink2016 (Assink et al. 2016): 100 effects in 17 studies",
    columns = list(study = vec(assink$study), esid = vec(assink$esid), id = vec(assink$id),
                   yi = vec(assink$yi), vi = vec(assink$vi), pubstatus = vec(assink$pubstatus),
                   year = vec(assink$year), deltype = assink$deltype),
    V = unclass(V_assink), V_call = "vcalc(vi, cluster=study, obs=esid, data=dat, rho=0.6)"),
  gleser2009 = list(
    origin = paste("Gleser & Olkin (2009), Handbook of Research Synthesis and Meta-Analysis 2nd ed., ch. 19:",
                   "multiple-treatment studies, standardized mean differences (as in metafor's tests)"),
    columns = list(study = vec(gleser$study), trt = vec(gleser$trt), n1i = vec(gleser$n1i), n2i = vec(gleser$n2i),
                   Ni = vec(gleser$Ni), yi = vec(gleser$yi), vi = vec(gleser$vi)),
    V = unclass(V_gleser),
    V_call = "bldiag of 1/n2i + outer(yi, yi)/(2 Ni) per study, diagonal vi = 1/n1i + 1/n2i + yi^2/(2 Ni)")
)
DATA$ishak2007 <- list(
  origin = "metadat dat.ishak2007 (Ishak et al. 2007) in long format: 46 studies, time points 1-4",
  columns = list(study = ishak$study, time = vec(ishak$time), yi = vec(ishak$yi), vi = vec(ishak$vi),
                 mdur = vec(ishak$mdur), mbase = vec(ishak$mbase)),
  V = unclass(V_ishak), V_call = "vcalc(vi, cluster=study, time1=time, phi=0.97, data=dat.long)")
DATA_FRAMES <- list(konstantopoulos2011 = konst, berkey1998 = berkey, assink2016 = assink, gleser2009 = gleser,
                    ishak2007 = ishak)
V_MATS <- list(berkey1998 = V_berkey, assink2016 = V_assink, gleser2009 = V_gleser, ishak2007 = V_ishak)

# ---------------------------------------------------------------------------------------------------
# The fits. V: "vi" (the vector of sampling variances) or "V" (the data set's full matrix above).
# ---------------------------------------------------------------------------------------------------
CASES <- list(
  konst_reml = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school"),
  konst_ml = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school", method = "ML"),
  konst_year_reml = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school",
                         mods = "~ year"),
  konst_year_ml = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school",
                       mods = "~ I(year - 2000)", method = "ML"),
  konst_t = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school", test = "t"),
  konst_fixed = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district/school",
                     sigma2 = c(NA, 0.03)),
  konst_single = list(data = "konstantopoulos2011", V = "vi", random = "~ 1 | district"),
  berkey_un_reml = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "UN",
                        mods = "~ outcome - 1"),
  berkey_un_ml_year = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "UN",
                           mods = "~ outcome + outcome:I(year - 1983) - 1", method = "ML"),
  berkey_un_t = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "UN",
                     mods = "~ outcome - 1", test = "t"),
  berkey_cs_reml = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "CS",
                        mods = "~ outcome - 1"),
  berkey_hcs_reml = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "HCS",
                         mods = "~ outcome - 1"),
  berkey_hcs_ml = list(data = "berkey1998", V = "V", random = "~ outcome | trial", struct = "HCS",
                       mods = "~ outcome", method = "ML"),
  berkey_cs_vi = list(data = "berkey1998", V = "vi", random = "~ outcome | trial", struct = "CS",
                      mods = "~ outcome - 1"),
  assink_reml = list(data = "assink2016", V = "V", random = "~ 1 | study/esid"),
  assink_deltype = list(data = "assink2016", V = "V", random = "~ 1 | study/esid", mods = "~ deltype"),
  assink_vi_ml = list(data = "assink2016", V = "vi", random = "~ 1 | study/esid", mods = "~ deltype + year",
                      method = "ML"),
  assink_two_terms = list(data = "assink2016", V = "vi", random = c("~ 1 | id", "~ deltype | study"),
                          struct = "CS"),
  ishak_ar = list(data = "ishak2007", V = "V", random = "~ time | study", struct = "AR",
                  mods = "~ factor(time) - 1"),
  ishak_har = list(data = "ishak2007", V = "V", random = "~ time | study", struct = "HAR",
                   mods = "~ factor(time) - 1"),
  assink_G_H = list(data = "assink2016", V = "V", random = c("~ deltype | study", "~ deltype | id"),
                    struct = c("CS", "DIAG")),
  gleser_smd = list(data = "gleser2009", V = "V", random = NULL, mods = "~ 0 + factor(trt)"),
  assink_two_terms_hcs = list(data = "assink2016", V = "V", random = c("~ 1 | id", "~ deltype | study"),
                              struct = "HCS", mods = "~ pubstatus")
)
CONFINT <- c("konst_reml", "konst_ml", "konst_year_reml", "konst_fixed", "berkey_un_reml", "berkey_cs_reml",
             "berkey_hcs_reml", "assink_reml", "assink_two_terms", "ishak_ar")
PRINT <- names(CASES)

fit_case <- function(spec, tols = REL_TOLS, polish = TRUE) {
  dat <- DATA_FRAMES[[spec$data]]
  V <- if (spec$V == "vi") dat$vi else V_MATS[[spec$data]]
  args <- list(yi = dat$yi, V = V, data = dat, method = if (is.null(spec$method)) "REML" else spec$method,
               test = if (is.null(spec$test)) "z" else spec$test)
  if (!is.null(spec$random)) {
    random <- lapply(spec$random, as.formula)
    args$random <- if (length(random) == 1L) random[[1L]] else random
  }
  if (!is.null(spec$mods)) args$mods <- as.formula(spec$mods)
  if (!is.null(spec$struct)) args$struct <- spec$struct
  if (!is.null(spec$sigma2)) args$sigma2 <- spec$sigma2
  best <- NULL
  for (tol in tols) {
    args$control <- list(rel.tol = tol, iter.max = 10000, eval.max = 10000)
    fit <- tryCatch(suppressWarnings(do.call(rma.mv, args)), error = function(e) e)
    if (!inherits(fit, "error")) {
      best <- list(fit = fit, rel_tol = tol,
                   control = sprintf("list(rel.tol = %g, iter.max = 10000, eval.max = 10000)", tol))
      break
    }
  }
  if (is.null(best)) stop("rma.mv failed at every tolerance: ", conditionMessage(fit))
  if (polish) {
    # nlminb stops on its relative change in the log-likelihood; minqa's bobyqa with rhoend = 1e-12 (a trust-region
    # radius on the parameters) often gets closer still where nlminb cannot run at 1e-12: keep the higher maximum
    args$control <- list(optimizer = "bobyqa", rhoend = 1e-12, maxfun = 100000)
    alt <- tryCatch(suppressWarnings(do.call(rma.mv, args)), error = function(e) e)
    if (!inherits(alt, "error") && logLik(alt) > logLik(best$fit)) {
      best <- list(fit = alt, rel_tol = NA, control = "list(optimizer = \"bobyqa\", rhoend = 1e-12, maxfun = 100000)")
    }
  }
  best
}

fit_values <- function(fit) {
  fs <- fit$fit.stats
  out <- list(
    k = fit$k, p = fit$p, parms = fit$parms, coef_names = as.list(rownames(fit$beta)),
    beta = vec(fit$beta), se = vec(fit$se), zval = vec(fit$zval), pval = vec(fit$pval),
    ci_lb = vec(fit$ci.lb), ci_ub = vec(fit$ci.ub), vb = unclass(fit$vb),
    sigma2 = if (fit$withS) vec(fit$sigma2) else NULL,
    tau2 = if (fit$withG) vec(fit$tau2) else NULL, rho = if (fit$withG) vec(fit$rho) else NULL,
    gamma2 = if (fit$withH) vec(fit$gamma2) else NULL, phi = if (fit$withH) vec(fit$phi) else NULL,
    QE = fit$QE, QEp = fit$QEp, QM = fit$QM, QMp = fit$QMp, QMdf = vec(fit$QMdf),
    ddf = if (all(is.na(fit$ddf))) NULL else vec(fit$ddf),
    ll_ML = fs["ll", "ML"], ll_REML = fs["ll", "REML"], dev_ML = fs["dev", "ML"], dev_REML = fs["dev", "REML"],
    AIC_ML = fs["AIC", "ML"], AIC_REML = fs["AIC", "REML"], BIC_ML = fs["BIC", "ML"], BIC_REML = fs["BIC", "REML"],
    AICc_ML = fs["AICc", "ML"], AICc_REML = fs["AICc", "REML"],
    s_names = if (fit$withS) as.list(unname(fit$s.names)) else NULL,
    s_nlevels = if (fit$withS) vec(fit$s.nlevels) else NULL,
    g_names = if (fit$withG) as.list(unname(fit$g.names)) else NULL,
    g_nlevels = if (fit$withG) vec(fit$g.nlevels) else NULL,
    g_levels_k = if (fit$withG) vec(fit$g.levels.k) else NULL,
    g_levels_comb_k = if (fit$withG) vec(fit$g.levels.comb.k) else NULL,
    h_names = if (fit$withH) as.list(unname(fit$h.names)) else NULL,
    h_nlevels = if (fit$withH) vec(fit$h.nlevels) else NULL,
    h_levels_k = if (fit$withH) vec(fit$h.levels.k) else NULL,
    vc_fix = list(sigma2 = if (fit$withS) as.list(fit$vc.fix$sigma2) else NULL,
                  tau2 = if (fit$withG) as.list(fit$vc.fix$tau2) else NULL,
                  rho = if (fit$withG) as.list(fit$vc.fix$rho) else NULL,
                  gamma2 = if (fit$withH) as.list(fit$vc.fix$gamma2) else NULL,
                  phi = if (fit$withH) as.list(fit$vc.fix$phi) else NULL),
    M_diag = vec(diag(as.matrix(fit$M)))
  )
  out
}

# Every profile refit inherits the fit's control. The CI is taken from the fit above (its optimizer, bobyqa or nlminb at
# the tightest rel.tol that converged) when none of its bounds is NA; otherwise from the first refit with nlminb at
# rel.tol 1e-12, 1e-11, 1e-10 whose confint() has no NA bound (at tight tolerances nlminb often stops with
# "convergence = 1" in a profile refit, and metafor then reports NA). The bounds depend only on log-likelihood values,
# which nlminb's 1e-10 still gets to ~1e-10.
confint_values <- function(spec, ft) {
  no_na <- function(parts) !anyNA(unlist(lapply(parts, function(p) p$random[, 2:3])))
  ci_of <- function(fit) {
    ci <- suppressWarnings(confint(fit, control = CI_CTRL))
    if (inherits(ci, "list.confint.rma")) ci[names(ci) != "digits"] else list(ci)
  }
  parts <- ci_of(ft$fit)
  used <- ft$control
  ci <- NULL
  if (!no_na(parts)) {
    for (tol in REL_TOLS) {
      fit <- tryCatch(fit_case(spec, tols = tol, polish = FALSE)$fit, error = function(e) NULL)
      if (is.null(fit)) next
      parts <- ci_of(fit)
      used <- sprintf("list(rel.tol = %g, iter.max = 10000, eval.max = 10000)", tol)
      if (no_na(parts)) break
    }
  }
  ci <- if (length(parts) == 1L) parts[[1L]] else structure(c(parts, list(digits = parts[[1L]]$digits)),
                                                             class = "list.confint.rma")
  rows <- list()
  for (part in parts) {
    r <- part$random
    for (i in seq_len(nrow(r))) {
      rows[[length(rows) + 1L]] <- list(name = rownames(r)[i], estimate = r[i, 1], ci_lb = r[i, 2],
                                        ci_ub = r[i, 3], lb_sign = part$lb.sign, ub_sign = part$ub.sign)
    }
  }
  list(control = used, rows = rows, printout = capture(ci))
}

results <- list()
for (name in names(CASES)) {
  spec <- CASES[[name]]
  ft <- fit_case(spec)
  fit <- ft$fit
  call <- sprintf("rma.mv(yi, %s%s%s%s, data = dat, method = \"%s\", test = \"%s\"%s, control = %s)",
                  spec$V, if (is.null(spec$mods)) "" else paste0(", mods = ", spec$mods),
                  if (is.null(spec$random)) "" else if (length(spec$random) == 1L) paste0(", random = ", spec$random)
                  else paste0(", random = list(", paste(spec$random, collapse = ", "), ")"),
                  if (is.null(spec$struct)) "" else if (length(spec$struct) == 1L) paste0(", struct = \"", spec$struct, "\"")
                  else paste0(", struct = c(", paste0("\"", spec$struct, "\"", collapse = ", "), ")"),
                  if (is.null(spec$method)) "REML" else spec$method, if (is.null(spec$test)) "z" else spec$test,
                  if (is.null(spec$sigma2)) "" else paste0(", sigma2 = c(", paste(spec$sigma2, collapse = ", "), ")"),
                  ft$control)
  entry <- list(data = spec$data, call = call, V = spec$V, random = as.list(spec$random),
                mods = spec$mods, struct = as.list(if (is.null(spec$struct)) "CS" else spec$struct),
                method = if (is.null(spec$method)) "REML" else spec$method,
                test = if (is.null(spec$test)) "z" else spec$test,
                sigma2_arg = if (is.null(spec$sigma2)) NULL else vec(spec$sigma2),
                rel_tol = ft$rel_tol, control = ft$control, fit = fit_values(fit))
  if (name %in% PRINT) entry$printout <- capture(fit)
  if (name %in% CONFINT) entry$confint <- confint_values(spec, ft)
  results[[name]] <- entry
  cat(name, "done (rel.tol", ft$rel_tol, ")\n")
}

# ---------------------------------------------------------------------------------------------------
# vcalc
# ---------------------------------------------------------------------------------------------------
set.seed(20240514)
# synthetic multi-arm trials: 6 trials with 2-3 treatment arms against one shared control arm, and 2 of them
# measured at 2-3 time points (months 3, 6, 12)
arms <- data.frame(trial = c(1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 6, 6))
arms$arm <- ave(arms$trial, arms$trial, FUN = seq_along)
arms$n_t <- round(runif(nrow(arms), 15, 80))
arms$n_c <- ave(round(runif(nrow(arms), 20, 90)), arms$trial, FUN = function(x) rep(x[1], length(x)))
arms$vi <- round(1 / arms$n_t + 1 / arms$n_c + runif(nrow(arms), 0, 0.01), 5)
arms$ctrl <- "control"
times <- data.frame(study = c(1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3), time = c(3, 6, 12, 3, 12, 3, 6, 12, 3, 6, 12),
                    outcome = c("pain", "pain", "pain", "pain", "pain", "pain", "pain", "pain", "function",
                                "function", "function"))
times$vi <- round(runif(nrow(times), 0.02, 0.1), 4)

VCALC <- list(
  assink_obs = list(data = "assink2016", call = "vcalc(vi, cluster=study, obs=esid, data=dat, rho=0.6)",
                    V = unclass(vcalc(vi, cluster = study, obs = esid, data = assink, rho = 0.6))),
  berkey_type = list(data = "berkey1998", call = "vcalc(vi, cluster=trial, type=outcome, data=dat, rho=0.4)",
                     V = unclass(vcalc(vi, cluster = trial, type = outcome, data = berkey, rho = 0.4))),
  assink_type_obs = list(data = "assink2016",
                         call = "vcalc(vi, cluster=study, type=deltype, obs=esid, data=dat, rho=c(0.7, 0.4))",
                         V = unclass(vcalc(vi, cluster = study, type = deltype, obs = esid, data = assink,
                                           rho = c(0.7, 0.4)))),
  multiarm = list(data = "multiarm",
                  call = "vcalc(vi, cluster=trial, grp1=arm, grp2=ctrl, w1=n_t, w2=n_c, data=arms)",
                  V = unclass(vcalc(vi, cluster = trial, grp1 = arm, grp2 = ctrl, w1 = n_t, w2 = n_c,
                                    data = arms))),
  multiarm_nw = list(data = "multiarm", call = "vcalc(vi, cluster=trial, grp1=arm, grp2=ctrl, data=arms)",
                     V = unclass(vcalc(vi, cluster = trial, grp1 = arm, grp2 = ctrl, data = arms))),
  times_phi = list(data = "timepoints", call = "vcalc(vi, cluster=study, time1=time, phi=0.9, data=times)",
                   V = unclass(vcalc(vi, cluster = study, time1 = time, phi = 0.9, data = times))),
  times_type_phi = list(data = "timepoints",
                        call = "vcalc(vi, cluster=study, type=outcome, time1=time, rho=0.5, phi=0.8, data=times)",
                        V = unclass(vcalc(vi, cluster = study, type = outcome, time1 = time, rho = 0.5, phi = 0.8,
                                          data = times)))
)
VCALC_DATA <- list(
  multiarm = list(origin = "synthetic replica - not the trials' data; multi-arm trials sharing a control arm",
                  synthetic = TRUE,
                  columns = list(trial = vec(arms$trial), arm = vec(arms$arm), n_t = vec(arms$n_t),
                                 n_c = vec(arms$n_c), vi = vec(arms$vi), ctrl = arms$ctrl)),
  timepoints = list(origin = "synthetic replica - not the trials' data; effects at 3, 6 and 12 months",
                    synthetic = TRUE,
                    columns = list(study = vec(times$study), time = vec(times$time), outcome = times$outcome,
                                   vi = vec(times$vi)))
)

SOURCE <- list(
  generator = "tests/reference/make_mv_reference.R",
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  minqa_version = as.character(packageVersion("minqa")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  control = paste("rma.mv: control=list(rel.tol=1e-12, iter.max=10000, eval.max=10000) (nlminb), stepping to",
                  "rel.tol 1e-11 / 1e-10 where nlminb reports convergence = 1, or bobyqa (rhoend=1e-12) where that",
                  "reaches a higher log-likelihood (each fit's control); confint: control=list(tol=1e-12) on that",
                  "fit, or on an nlminb refit where that gives NA bounds (each confint's control)"),
  generated_on = "see git log of this file"
)

obj <- list(source = SOURCE, data = c(DATA, VCALC_DATA), fits = results, vcalc = VCALC)
txt <- toJSON(to_verbatim(obj), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null",
              pretty = TRUE)
path <- file.path(OUTDIR, "mv.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
file.rename(tmp, path)
cat("wrote", path, "\n")
