#!/usr/bin/env Rscript
# Writes tests/reference/robust.json: metafor 3.8's cluster-robust inference, `robust()`, and the clubSandwich
# functions it calls with `clubSandwich=TRUE` (vcovCR type "CR2", coef_test with Satterthwaite df, conf_int,
# Wald_test with the HTZ approximation), on rma and rma.mv fits. tests/engine/test_reference_robust.py
# compares metaexercise.engine.robust against it.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_robust_reference.R
#
# Needs R with metafor 3.8-1, metadat, clubSandwich (0.5.8 here) and jsonlite
# (Debian: apt-get install r-cran-metafor r-cran-clubsandwich r-cran-jsonlite). Takes a few seconds.
# The one synthetic data set is drawn here from a fixed seed (labelled "synthetic"), so a re-run reproduces
# the file byte for byte. Numbers are written with sprintf("%.17g"); NA becomes null.
#
# Convergence: rma() with control=list(threshold=1e-12, tol=1e-12, maxiter=10000); rma.mv() with nlminb's
# control=list(rel.tol=1e-10, iter.max=10000, eval.max=10000) (1e-12 stops nlminb with "convergence = 1" on
# assink2016 ~ 1). robust() is a closed-form function of the fitted model, so for the rma.mv cases the fixture also holds
# what is needed to rebuild the model's marginal var-cov matrix M = diag(vi) + sum_r sigma2[r] Z_r Z_r'
# (vi, sigma2, the grouping of each random term) together with metafor's beta and vb at those sigma2: the
# Python tests rebuild M from them and need no rma.mv of their own.

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("These fixtures were made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_robust_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
MV_CTRL <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)

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

# ---------------------------------------------------------------------------------------------------
# What is recorded for one fit and one clustering
# ---------------------------------------------------------------------------------------------------
robust_values <- function(r) {
  list(beta = vec(r$beta), se = vec(r$se), tval = vec(r$zval), pval = vec(r$pval), ci_lb = vec(r$ci.lb),
       ci_ub = vec(r$ci.ub), df = vec(rep_len(r$ddf, length(r$beta))), vb = unclass(as.matrix(r$vb)),
       QM = r$QM, QMdf = vec(r$QMdf), QMp = r$QMp, n = r$n, tcl = vec(as.integer(r$tcl)), vbest = r$vbest)
}

sandwich_values <- function(fit, cluster, btt) {
  V <- vcovCR(fit, cluster = cluster, type = "CR2")
  ct <- coef_test(fit, vcov = V, cluster = cluster, test = "Satterthwaite")
  ci <- conf_int(fit, vcov = V, cluster = cluster, test = "Satterthwaite", level = 0.95)
  out <- list(vcov = unclass(as.matrix(V))[seq_along(fit$beta), seq_along(fit$beta), drop = FALSE],
              coef_test = list(beta = vec(ct$beta), SE = vec(ct$SE), tstat = vec(ct$tstat),
                               df_Satt = vec(ct$df_Satt), p_Satt = vec(ct$p_Satt)),
              conf_int = list(df = vec(ci$df), CI_L = vec(ci$CI_L), CI_U = vec(ci$CI_U)))
  out$vcov <- matrix(as.numeric(out$vcov), nrow = length(fit$beta))
  if (!is.null(btt)) {
    w <- Wald_test(fit, constraints = constrain_zero(btt), vcov = V, test = "HTZ")
    out$Wald_test <- list(btt = vec(btt), test = w$test, Fstat = w$Fstat, delta = w$delta, df_num = w$df_num,
                          df_denom = w$df_denom, p_val = w$p_val)
  }
  if (length(fit$beta) >= 3L) {  # a contrast that is not a set of zeros: coefficients 2 and 3 equal
    C <- constrain_equal(2:3, coefs = coef(fit))
    w <- Wald_test(fit, constraints = C, vcov = V, test = "HTZ")
    out$Wald_test_equal <- list(constraints = unclass(C) + 0, test = w$test, Fstat = w$Fstat, delta = w$delta,
                                df_num = w$df_num, df_denom = w$df_denom, p_val = w$p_val)
  }
  out
}

robust_block <- function(fit, cluster, stata = FALSE, nested = TRUE) {
  cr1 <- robust(fit, cluster = cluster)
  cr0 <- robust(fit, cluster = cluster, adjust = FALSE)
  if (!nested) {  # clubSandwich refuses clusters that do not nest the random effects: record its message
    msg <- tryCatch({robust(fit, cluster = cluster, clubSandwich = TRUE); "no error"},
                    error = function(e) conditionMessage(e))
    return(list(robust = list(CR1 = robust_values(cr1), CR0 = robust_values(cr0)), clubSandwich_error = msg,
                printouts = list(CR1 = capture(cr1), CR0 = capture(cr0))))
  }
  cr2 <- robust(fit, cluster = cluster, clubSandwich = TRUE)
  btt <- if (fit$p > 1L) fit$btt else NULL
  out <- list(
    robust = list(CR1 = robust_values(cr1), CR0 = robust_values(cr0), CR2 = robust_values(cr2)),
    clubSandwich = sandwich_values(fit, cluster, btt),
    printouts = list(CR1 = capture(cr1), CR0 = capture(cr0), CR2 = capture(cr2))
  )
  if (stata) {
    s1 <- robust(fit, cluster = cluster, adjust = "Stata1")
    s2 <- robust(fit, cluster = cluster, adjust = "Stata2")
    out$robust$CR1.S1 <- robust_values(s1)
    out$robust$CR1.S2 <- robust_values(s2)
  }
  out
}

uni_case <- function(origin, yi, vi, mods, cluster, method = "REML", test = "z", synthetic = FALSE,
                     stata = FALSE) {
  yi <- as.numeric(yi)
  vi <- as.numeric(vi)
  if (is.null(mods)) {
    fit <- rma(yi, vi, method = method, test = test, control = CTRL)
    mods_out <- NULL
  } else {
    mods <- as.matrix(mods)
    fit <- rma(yi, vi, mods = mods, method = method, test = test, control = CTRL)
    mods_out <- unname(mods)
  }
  call <- sprintf("fit <- rma(yi, vi%s, method=\"%s\", test=\"%s\", control=CTRL); robust(fit, cluster=cluster[, adjust=FALSE | clubSandwich=TRUE])",
                  if (is.null(mods)) "" else ", mods=mods", method, test)
  c(list(origin = origin, synthetic = synthetic, call = call, yi = vec(yi), vi = vec(vi), mods = mods_out,
         colnames = if (is.null(mods)) NULL else I(colnames(mods)), cluster = as.character(cluster),
         method = method, test = test,
         fit = list(beta = vec(fit$beta), vb = unclass(fit$vb), tau2 = fit$tau2, coef_names = I(rownames(fit$beta)))),
    robust_block(fit, cluster, stata = stata))
}

mv_case <- function(origin, data, mods, random, groups, cluster, nested = TRUE) {
  fit <- if (is.null(mods)) {
    rma.mv(yi, vi, random = random, data = data, control = MV_CTRL)
  } else {
    rma.mv(yi, vi, mods = mods, random = random, data = data, control = MV_CTRL)
  }
  X <- unname(fit$X)
  c(list(origin = origin, synthetic = FALSE,
         call = sprintf("fit <- rma.mv(yi, vi%s, random=%s, data=data, control=MV_CTRL); robust(fit, cluster=cluster[, adjust=FALSE | clubSandwich=TRUE])",
                        if (is.null(mods)) "" else paste0(", mods=", deparse(mods)), deparse(random)),
         yi = vec(fit$yi), vi = vec(fit$vi), X = X, coef_names = I(rownames(fit$beta)),
         cluster = as.character(cluster), method = fit$method,
         groups = lapply(groups, as.character),
         fit = list(beta = vec(fit$beta), vb = unclass(fit$vb), sigma2 = vec(fit$sigma2), QE = fit$QE,
                    QEp = fit$QEp, ll = as.numeric(logLik(fit)), s_names = I(unname(fit$s.names)),
                    s_nlevels = vec(fit$s.nlevels), printout = capture(fit))),
    robust_block(fit, cluster, nested = nested))
}

# ---------------------------------------------------------------------------------------------------
# rma fits
# ---------------------------------------------------------------------------------------------------
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_origin <- "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)"
ablat <- cbind(ablat = bcg$ablat)
# a coarser grouping of the 13 trials by publication period, for more clusters than `alloc` has
bcg_period <- cut(bcg$year, breaks = c(1930, 1950, 1970, 1975, 1980), labels = c("<=1950", "1951-70", "1971-75", "1976-80"))

gb <- dat.bangertdrowns2004
gb_origin <- "dat.bangertdrowns2004 (yi, vi as shipped: standardized mean differences)"
gb_l <- gb[!is.na(gb$length), ]  # the two studies without `length` dropped (metafor would omit them)

# synthetic multi-arm trials: 22 trials with 1-3 intervention arms each, every arm compared with the trial's
# control (the effect sizes of a trial share that control, hence the clustering); arm-level dose, trial-level
# year. Labelled synthetic: not the review's trials.
set.seed(20240614)
n_trials <- 22
arms <- sample(1:3, n_trials, replace = TRUE, prob = c(0.45, 0.35, 0.2))
trial <- rep(sprintf("T%02d", seq_len(n_trials)), arms)
dose <- unlist(lapply(arms, function(a) sort(sample(1:3, a))))
year <- rep(sample(1995:2021, n_trials, replace = TRUE), arms)
n_arm <- rep(round(exp(rnorm(n_trials, log(40), 0.6))) + 10, arms)
u_trial <- rep(rnorm(n_trials, 0, sqrt(0.05)), arms)
syn_vi <- 2 / n_arm + 0.04 / n_arm
syn_yi <- round(-0.1 - 0.15 * dose + u_trial + rnorm(length(dose), 0, sqrt(syn_vi + 0.02)), 4)
syn_mods <- cbind(dose = dose, year = year - 2008)
syn_origin <- "synthetic multi-arm trials (seed 20240614), synthetic replica - not the trials' data"

rma_cases <- list(
  "bcg~ablat/alloc" = uni_case(bcg_origin, bcg$yi, bcg$vi, ablat, dat.bcg$alloc, stata = TRUE),
  "bcg/alloc" = uni_case(bcg_origin, bcg$yi, bcg$vi, NULL, dat.bcg$alloc),
  "bcg~ablat/period" = uni_case(bcg_origin, bcg$yi, bcg$vi, ablat, bcg_period),
  "bcg~ablat/period/knha" = uni_case(bcg_origin, bcg$yi, bcg$vi, ablat, bcg_period, test = "knha"),
  "bcg~ablat/period/EE" = uni_case(bcg_origin, bcg$yi, bcg$vi, ablat, bcg_period, method = "EE"),
  "bangertdrowns2004/grade" = uni_case(gb_origin, gb$yi, gb$vi, NULL, gb$grade),
  "bangertdrowns2004~length/subject" = uni_case(paste(gb_origin, "without the 2 studies missing length"), gb_l$yi, gb_l$vi,
                                                cbind(length = gb_l$length), gb_l$subject),
  "synthetic_multiarm~dose+year/trial" = uni_case(syn_origin, syn_yi, syn_vi, syn_mods, trial, synthetic = TRUE,
                                                  stata = TRUE),
  "synthetic_multiarm/trial/DL" = uni_case(syn_origin, syn_yi, syn_vi, NULL, trial, method = "DL", synthetic = TRUE)
)

# ---------------------------------------------------------------------------------------------------
# rma.mv fits (multilevel: random intercepts of the outer cluster and of each estimate within it)
# ---------------------------------------------------------------------------------------------------
ko <- dat.konstantopoulos2011
ko_groups <- list(district = ko$district, "district/school" = paste(ko$district, ko$school, sep = "/"))
ko$year_c <- ko$year - 1990
asn <- dat.assink2016
as_groups <- list(study = asn$study, "study/esid" = paste(asn$study, asn$esid, sep = "/"))

mv_cases <- list(
  "konstantopoulos2011/district" = mv_case("dat.konstantopoulos2011 (yi, vi as shipped)", ko, NULL,
                                           ~ 1 | district/school, ko_groups, ko$district),
  "konstantopoulos2011~year/district" = mv_case("dat.konstantopoulos2011 (yi, vi as shipped); year_c = year - 1990",
                                                ko, ~ year_c, ~ 1 | district/school, ko_groups, ko$district),
  "konstantopoulos2011/school" = mv_case("dat.konstantopoulos2011 (yi, vi as shipped); clusters = schools, which do not nest the district effects",
                                         ko, NULL, ~ 1 | district/school, ko_groups, ko_groups[[2]], nested = FALSE),
  "assink2016~deltype/study" = mv_case("dat.assink2016 (yi, vi as shipped)", asn, ~ deltype,
                                       ~ 1 | study/esid, as_groups, asn$study),
  "assink2016/study" = mv_case("dat.assink2016 (yi, vi as shipped)", asn, NULL, ~ 1 | study/esid, as_groups,
                               asn$study)
)

body <- list(
  source = list(
    generator = "tests/reference/make_robust_reference.R",
    R_version = R.version.string,
    metafor_version = as.character(packageVersion("metafor")),
    metadat_version = as.character(packageVersion("metadat")),
    clubSandwich_version = as.character(packageVersion("clubSandwich")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    control = "rma: control=list(threshold=1e-12, tol=1e-12, maxiter=10000); rma.mv: control=list(rel.tol=1e-10, iter.max=10000, eval.max=10000)",
    call = paste("robust(fit, cluster) [CR1]; robust(fit, cluster, adjust=FALSE) [CR0];",
                 "robust(fit, cluster, adjust=\"Stata1\"|\"Stata2\") [CR1.S1, CR1.S2];",
                 "robust(fit, cluster, clubSandwich=TRUE) [CR2];",
                 "V <- clubSandwich::vcovCR(fit, cluster, type=\"CR2\"); coef_test(fit, vcov=V, test=\"Satterthwaite\");",
                 "conf_int(fit, vcov=V, test=\"Satterthwaite\", level=0.95);",
                 "Wald_test(fit, constraints=constrain_zero(fit$btt), vcov=V, test=\"HTZ\");",
                 "printouts: capture.output(print(robust(...)))"),
    generated_on = "see git log of this file"
  ),
  rma_cases = rma_cases,
  mv_cases = mv_cases
)

txt <- toJSON(to_verbatim(body), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "robust.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
