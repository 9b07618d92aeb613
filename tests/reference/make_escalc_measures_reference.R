#!/usr/bin/env Rscript
# Writes tests/reference/escalc_measures.json: metafor's escalc() for the single-group, correlation, two-group
# mean and change-score measures (everything but the two-group count measures, whose fixture is separate), with
# every vtype, add/to variant and the NA rule, plus metafor's transf.* helpers. tests/engine/
# test_reference_escalc_measures.py compares metaexercise with it.
#
# Usage, from the repository root (no arguments):
#     Rscript tests/reference/make_escalc_measures_reference.R
#
# Needs R with metafor 3.8-1, metadat, gsl (for measure UCOR) and jsonlite. Runs in seconds. Nothing here
# iterates to convergence (escalc is closed-form; the transf.*.int integrals use R's integrate() defaults,
# which metaexercise mirrors). Synthetic data are drawn from fixed seeds and marked "synthetic": true, so a
# re-run reproduces the file byte for byte. Numbers with sprintf("%.17g"); NA -> null.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("This fixture was made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_escalc_measures_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

# ---------------------------------------------------------------------------------------------------
# JSON with full precision (as make_reference.R): numeric leaves pre-formatted and passed verbatim.
# ---------------------------------------------------------------------------------------------------
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
  if (is.numeric(x) && length(x) == 1L) return(structure(fmt_num(x), class = "json"))
  if (is.numeric(x)) return(structure(paste0("[", paste(fmt_num(x), collapse = ","), "]"), class = "json"))
  x
}

# ---------------------------------------------------------------------------------------------------
# One escalc case: the inputs (vectors), the options (add/to/vtype/subset/include, only when given), and
# metafor's yi, vi and ni attribute and its warnings -- or the error message when metafor stops.
# ---------------------------------------------------------------------------------------------------
CASES <- list()
add_case <- function(name, measure, inputs, origin, synthetic = FALSE, ...) {
  opts <- list(...)
  said <- character(0)
  res <- tryCatch(withCallingHandlers(do.call(escalc, c(list(measure = measure), inputs, opts)),
                                      warning = function(w) {
                                        said <<- c(said, conditionMessage(w))
                                        invokeRestart("muffleWarning")
                                      }),
                  error = function(e) structure(list(msg = conditionMessage(e)), class = "me_error"))
  case <- list(measure = measure, origin = origin, synthetic = synthetic,
               inputs = lapply(inputs, vec), options = opts, warnings = I(sort(unique(said))))
  if (inherits(res, "me_error")) {
    case$error <- res$msg
  } else {
    ni <- attr(res$yi, "ni")
    case$yi <- vec(res$yi)
    case$vi <- vec(res$vi)
    case$ni <- if (is.null(ni)) NULL else vec(ni)
  }
  if (!is.null(CASES[[name]])) stop("duplicate case ", name)
  CASES[[name]] <<- case
}
SYN <- "synthetic replica - not the trials' data"

# ---------------------------------------------------------------------------------------------------
# 1. Proportions: dat.pritz1997 (two studies with xi = ni) and seeded synthetic sets with zeros, xi = ni, NA
# ---------------------------------------------------------------------------------------------------
pr <- with(dat.pritz1997, list(xi = xi, ni = ni))
for (m in c("PR", "PLN", "PLO")) {
  for (vt in c(if (m == "PR") "UB", "LS", "AV")) {
    add_case(sprintf("pritz1997_%s_%s", m, vt), m, pr, "dat.pritz1997", vtype = vt)
  }
}
add_case("pritz1997_PAS", "PAS", pr, "dat.pritz1997")
add_case("pritz1997_PFT", "PFT", pr, "dat.pritz1997")
add_case("pritz1997_PLO_to_all", "PLO", pr, "dat.pritz1997", to = "all")
add_case("pritz1997_PLO_to_if0all", "PLO", pr, "dat.pritz1997", to = "if0all")
add_case("pritz1997_PLO_to_none", "PLO", pr, "dat.pritz1997", to = "none")
add_case("pritz1997_PLO_add0", "PLO", pr, "dat.pritz1997", add = 0)
add_case("pritz1997_PLO_add1_all", "PLO", pr, "dat.pritz1997", add = 1, to = "all")
add_case("pritz1997_PAS_add_all", "PAS", pr, "dat.pritz1997", add = 0.5, to = "all")
add_case("pritz1997_PR_mi", "PR", with(dat.pritz1997, list(xi = xi, mi = ni - xi)), "dat.pritz1997; mi = ni - xi")

set.seed(1997)
k <- 14
syn_n <- round(10^runif(k, log10(3), log10(400)))
syn_x <- rbinom(k, syn_n, runif(k, 0.02, 0.6))
syn_x[c(2, 7)] <- 0
syn_x[c(4, 11)] <- syn_n[c(4, 11)]
syn_x[9] <- NA
sp <- list(xi = syn_x, ni = syn_n)
sp_origin <- paste0(SYN, "; set.seed(1997); zero events in studies 2 and 7, xi = ni in 4 and 11, xi NA in 9")
for (m in c("PR", "PLN", "PLO", "PAS", "PFT")) {
  for (to in c("only0", "all", "if0all", "none")) {
    add_case(sprintf("syn_props_%s_%s", m, to), m, sp, sp_origin, synthetic = TRUE, to = to)
  }
}
for (vt in c("UB", "AV")) add_case(sprintf("syn_props_PR_%s", vt), "PR", sp, sp_origin, TRUE, vtype = vt)
for (m in c("PLN", "PLO")) add_case(sprintf("syn_props_%s_AV", m), m, sp, sp_origin, TRUE, vtype = "AV")
add_case("syn_props_PLO_add1", "PLO", sp, sp_origin, TRUE, add = 1)
add_case("syn_props_PFT_add_all", "PFT", sp, sp_origin, TRUE, add = 0.5, to = "all")
add_case("syn_props_PR_vtype_per_study", "PR", sp, sp_origin, TRUE, vtype = rep(c("LS", "UB", "AV"), length.out = k))
nz <- list(xi = pmax(1, pmin(syn_n - 1, replace(syn_x, 9, 3))), ni = syn_n)
add_case("syn_props_nozero_PLO_if0all", "PLO", nz, paste0(SYN, "; set.seed(1997), no zero cells"), TRUE, to = "if0all")

# ---------------------------------------------------------------------------------------------------
# 2. Incidence rates (one group): dat.hart1999 and dat.nielweise2008 (group 1), synthetic with zero events
# ---------------------------------------------------------------------------------------------------
for (m in c("IR", "IRLN", "IRS", "IRFT")) {
  add_case(sprintf("hart1999_%s", m), m, with(dat.hart1999, list(xi = x1i, ti = t1i)), "dat.hart1999; x1i, t1i")
  add_case(sprintf("nielweise2008_%s", m), m, with(dat.nielweise2008, list(xi = x2i, ti = t2i)),
           "dat.nielweise2008; x2i, t2i")
}
set.seed(2008)
k <- 10
ir <- list(xi = rpois(k, 3), ti = round(runif(k, 50, 3000)))
ir$xi[c(3, 8)] <- 0
ir$xi[6] <- NA
ir_origin <- paste0(SYN, "; set.seed(2008); zero events in studies 3 and 8, xi NA in 6")
for (m in c("IR", "IRLN", "IRS", "IRFT")) {
  for (to in c("only0", "all", "if0all", "none")) {
    add_case(sprintf("syn_rates_%s_%s", m, to), m, ir, ir_origin, synthetic = TRUE, to = to)
  }
}
add_case("syn_rates_IRFT_add", "IRFT", ir, ir_origin, TRUE, add = 0.5)
add_case("syn_rates_IRLN_add1_all", "IRLN", ir, ir_origin, TRUE, add = 1, to = "all")

# ---------------------------------------------------------------------------------------------------
# 3. Single-group means: dat.normand1999 (specialist care arm); synthetic with n = 1, 2 and NA
# ---------------------------------------------------------------------------------------------------
mn <- with(dat.normand1999, list(mi = m1i, sdi = sd1i, ni = n1i))
for (m in c("MN", "MNLN", "CVLN", "SDLN", "SMN")) add_case(sprintf("normand1999_%s", m), m, mn, "dat.normand1999; m1i, sd1i, n1i")
set.seed(1999)
k <- 9
sm <- list(mi = round(rnorm(k, 20, 6), 1), sdi = round(runif(k, 1, 8), 2), ni = c(1, 2, 3, round(runif(k - 3, 5, 200))))
sm$mi[7] <- NA
sm$sdi[5] <- 0
sm_origin <- paste0(SYN, "; set.seed(1999); ni = 1, 2, 3 in studies 1-3, sdi = 0 in 5, mi NA in 7")
for (m in c("MN", "MNLN", "CVLN", "SDLN", "SMN")) add_case(sprintf("syn_means_%s", m), m, sm, sm_origin, TRUE)

# ---------------------------------------------------------------------------------------------------
# 4. Correlations: dat.molloy2014, dat.mcdaniel1994; synthetic with n <= 4, r = +-1, 0, NA
# ---------------------------------------------------------------------------------------------------
cor_sets <- list(molloy2014 = with(dat.molloy2014, list(ri = ri, ni = ni)),
                 mcdaniel1994 = with(dat.mcdaniel1994, list(ri = ri, ni = ni)))
set.seed(2014)
cor_sets$syn_cor <- list(ri = c(-1, 1, 0, 0.99, -0.35, 0.5, 0.2, NA, round(runif(6, -0.8, 0.9), 3)),
                         ni = c(10, 12, 30, 6, 2, 3, 4, 40, 5, round(runif(5, 7, 500))))
cor_origin <- c(molloy2014 = "dat.molloy2014", mcdaniel1994 = "dat.mcdaniel1994",
                syn_cor = paste0(SYN, "; set.seed(2014); r = -1, 1, 0, .99; ni = 2, 3, 4, 5, 6; ri NA in 8"))
for (s in names(cor_sets)) {
  syn <- s == "syn_cor"
  for (vt in c("LS", "AV")) {
    add_case(sprintf("%s_COR_%s", s, vt), "COR", cor_sets[[s]], cor_origin[[s]], syn, vtype = vt)
  }
  for (vt in c("LS", "UB", "AV")) {
    add_case(sprintf("%s_UCOR_%s", s, vt), "UCOR", cor_sets[[s]], cor_origin[[s]], syn, vtype = vt)
  }
  add_case(sprintf("%s_ZCOR", s), "ZCOR", cor_sets[[s]], cor_origin[[s]], syn)
}

# partial and semi-partial correlations: dat.aloe2013 and a seeded synthetic set
pc_sets <- list(aloe2013 = with(dat.aloe2013, list(ti = tval, ni = n, mi = preds, r2i = R2)))
set.seed(2013)
k <- 8
pc_sets$syn_pcor <- list(ti = round(rnorm(k, 1.5, 2), 2), ni = round(runif(k, 20, 400)), mi = sample(1:12, k, TRUE),
                         r2i = round(runif(k, 0.02, 0.7), 3))
pc_sets$syn_pcor$ti[3] <- NA
pc_origin <- c(aloe2013 = "dat.aloe2013; ti = tval, ni = n, mi = preds, r2i = R2",
               syn_pcor = paste0(SYN, "; set.seed(2013); ti NA in 3"))
for (s in names(pc_sets)) {
  syn <- s == "syn_pcor"
  for (vt in c("LS", "AV")) {
    add_case(sprintf("%s_PCOR_%s", s, vt), "PCOR", pc_sets[[s]][c("ti", "ni", "mi")], pc_origin[[s]], syn, vtype = vt)
    add_case(sprintf("%s_SPCOR_%s", s, vt), "SPCOR", pc_sets[[s]], pc_origin[[s]], syn, vtype = vt)
  }
  add_case(sprintf("%s_ZPCOR", s), "ZPCOR", pc_sets[[s]][c("ti", "ni", "mi")], pc_origin[[s]], syn)
}

# ---------------------------------------------------------------------------------------------------
# 5. Two-group means: dat.normand1999, dat.gibson2002 (two studies all NA); synthetic edge cases
# ---------------------------------------------------------------------------------------------------
two <- function(d) with(d, list(m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i))
two_sets <- list(normand1999 = two(dat.normand1999), gibson2002 = two(dat.gibson2002))
set.seed(2002)
k <- 10
syn_two <- list(m1i = round(rnorm(k, 10, 3), 2), sd1i = round(runif(k, 1, 4), 2), n1i = c(1, 2, round(runif(k - 2, 4, 120))),
                m2i = round(rnorm(k, 11, 3), 2), sd2i = round(runif(k, 1, 4), 2), n2i = c(1, 1, round(runif(k - 2, 4, 120))))
syn_two$m2i[4] <- -syn_two$m2i[4]   # opposite signs: log ratio undefined
syn_two$m1i[6] <- NA
syn_two$sd2i[8] <- NA
two_sets$syn_two <- syn_two
two_origin <- c(normand1999 = "dat.normand1999", gibson2002 = "dat.gibson2002 (Yoon 1993 and Brewin 1995: no means)",
                syn_two = paste0(SYN, "; set.seed(2002); n1i = n2i = 1 in study 1, n = 2 + 1 in 2, m2i < 0 in 4, ",
                                 "m1i NA in 6, sd2i NA in 8"))
vtypes <- list(MD = c("LS", "UB", "HO"), SMD = c("LS", "UB", "LS2", "AV"), SMD1 = c("LS", "UB", "LS2", "AV"),
               SMDH = c("LS", "LS2"), ROM = c("LS", "HO", "AV", "AVHO"), RPB = c("ST", "LS", "CS"))
for (s in names(two_sets)) {
  syn <- s == "syn_two"
  for (m in c("MD", "SMD", "SMD1", "SMDH", "ROM", "RPB")) {
    for (vt in vtypes[[m]]) add_case(sprintf("%s_%s_%s", s, m, vt), m, two_sets[[s]], two_origin[[s]], syn, vtype = vt)
  }
  for (m in c("SMD1H", "RBIS", "D2OR", "D2ORN", "D2ORL", "CVR", "VR")) {
    add_case(sprintf("%s_%s", s, m), m, two_sets[[s]], two_origin[[s]], syn)
  }
}
add_case("normand1999_SMD_vtype_per_study", "SMD", two_sets$normand1999, "dat.normand1999",
         vtype = rep(c("LS", "UB", "LS2", "AV"), length.out = 9))
add_case("normand1999_VR_sd_only", "VR", two_sets$normand1999[c("sd1i", "n1i", "sd2i", "n2i")], "dat.normand1999")
add_case("normand1999_SMD1_no_sd1", "SMD1", two_sets$normand1999[c("m1i", "n1i", "m2i", "sd2i", "n2i")], "dat.normand1999")
# SMD from Cohen's d or t-statistics for some studies (means NA there)
dt <- two_sets$normand1999
dt$di <- c(NA, -0.4, NA, NA, 0.25, NA, NA, NA, NA)
dt$ti <- c(NA, NA, -3.1, NA, NA, 1.7, NA, NA, NA)
for (v in c("m1i", "sd1i", "m2i", "sd2i")) dt[[v]][c(2, 3, 5, 6)] <- NA
add_case("normand1999_SMD_di_ti", "SMD", dt,
         "dat.normand1999 with the means/SDs of studies 2, 3, 5, 6 replaced by made-up d (2, 5) or t (3, 6) values")
add_case("normand1999_SMD_subset", "SMD", two_sets$normand1999, "dat.normand1999",
         subset = c(TRUE, FALSE, TRUE, TRUE, FALSE, TRUE, TRUE, TRUE, FALSE))
add_case("normand1999_SMD_include", "SMD", two_sets$normand1999, "dat.normand1999", vtype = "AV",
         include = c(TRUE, FALSE, TRUE, TRUE, FALSE, TRUE, TRUE, TRUE, FALSE))

# ---------------------------------------------------------------------------------------------------
# 6. Change scores: Morris (2008), Table 5 data as in metafor's tests (test_analysis_example_morris2008.r);
#    seeded synthetic set with n = 1, 2 and NA
# ---------------------------------------------------------------------------------------------------
morris <- list(
  treatment = list(m1i = c(38.5, 26.8, 0.7, 75.9, 36.0), m2i = c(30.6, 23.5, 0.5, 53.4, 35.6),
                   sd1i = c(11.6, 4.1, 0.1, 4.4, 4.6), sd2i = c(15.0, 3.1, 0.1, 14.5, 4.7),
                   ni = c(20, 50, 9, 10, 14), ri = c(.47, .64, .77, .89, .44)),
  control = list(m1i = c(19.7, 25.3, 0.6, 60.7, 33.4), m2i = c(23.1, 24.9, 0.6, 55.7, 34.8),
                 sd1i = c(14.8, 3.3, 0.2, 17.9, 6.9), sd2i = c(13.8, 4.1, 0.2, 17.3, 3.1),
                 ni = c(20, 42, 9, 11, 14), ri = c(.47, .64, .77, .89, .44)))
set.seed(2000)
k <- 10
m2 <- round(rnorm(k, 30, 8), 1)
morris$syn_change <- list(m1i = round(m2 + rnorm(k, 3, 4), 1), m2i = m2, sd1i = round(runif(k, 2, 9), 2),
                          sd2i = round(runif(k, 2, 9), 2), ni = c(1, 2, round(runif(k - 2, 5, 150))),
                          ri = round(runif(k, -0.2, 0.95), 2))
morris$syn_change$ri[5] <- NA
morris$syn_change$m1i[7] <- NA
ch_origin <- c(treatment = "Morris (2008) Table 5, treatment groups (post = m1i, pre = m2i), as in metafor's tests",
               control = "Morris (2008) Table 5, control groups (post = m1i, pre = m2i), as in metafor's tests",
               syn_change = paste0(SYN, "; set.seed(2000); ni = 1, 2 in studies 1-2, ri NA in 5, m1i NA in 7"))
for (s in names(morris)) {
  syn <- s == "syn_change"
  for (m in c("SMCC", "SMCR")) {
    for (vt in c("LS", "LS2")) add_case(sprintf("morris2008_%s_%s_%s", s, m, vt), m, morris[[s]], ch_origin[[s]], syn, vtype = vt)
  }
  for (m in c("MC", "SMCRH", "ROMC", "CVRC", "VRC")) add_case(sprintf("morris2008_%s_%s", s, m), m, morris[[s]], ch_origin[[s]], syn)
}
add_case("morris2008_treatment_SMCR_no_sd2", "SMCR", morris$treatment[c("m1i", "m2i", "sd1i", "ni", "ri")], ch_origin[["treatment"]])

# ---------------------------------------------------------------------------------------------------
# 7. Cronbach's alpha (dat.bonett2010) and Hardy-Weinberg REH (dat.frank2008, controls)
# ---------------------------------------------------------------------------------------------------
for (m in c("ARAW", "AHW", "ABT")) {
  add_case(sprintf("bonett2010_%s", m), m, with(dat.bonett2010, list(ai = ai, mi = mi, ni = ni)), "dat.bonett2010")
}
add_case("frank2008_REH", "REH", with(dat.frank2008, list(ai = ct.ins.ins, bi = ct.ins.del, ci = ct.del.del)),
         "dat.frank2008; controls: ai = ins/ins, bi = ins/del, ci = del/del")

# ---------------------------------------------------------------------------------------------------
# 8. Bad input: metafor stops (messages recorded); metaexercise raises ValueError/TypeError
# ---------------------------------------------------------------------------------------------------
add_case("error_PR_xi_above_ni", "PR", list(xi = c(3, 12), ni = c(10, 10)), "bad input", TRUE)
add_case("error_PR_negative", "PR", list(xi = c(3, -1), ni = c(10, 10)), "bad input", TRUE)
add_case("error_PR_ni_not_xi_plus_mi", "PR", list(xi = c(3, 4), mi = c(7, 6), ni = c(10, 11)), "bad input", TRUE)
add_case("error_PR_vtype_HO", "PR", list(xi = c(3, 4), ni = c(10, 10)), "bad input", TRUE, vtype = "HO")
add_case("error_PLO_vtype_UB", "PLO", list(xi = c(3, 4), ni = c(10, 10)), "bad input", TRUE, vtype = "UB")
add_case("error_IR_time_zero", "IR", list(xi = c(3, 4), ti = c(10, 0)), "bad input", TRUE)
add_case("error_COR_above_1", "COR", list(ri = c(0.3, 1.2), ni = c(10, 20)), "bad input", TRUE)
add_case("error_ZCOR_vtype_UB", "ZCOR", list(ri = c(0.3, 0.2), ni = c(10, 20)), "bad input", TRUE, vtype = "UB")
add_case("error_COR_ni_zero", "COR", list(ri = c(0.3, 0.2), ni = c(10, 0)), "bad input", TRUE)
add_case("error_PCOR_df", "PCOR", list(ti = c(2, 1), ni = c(10, 20), mi = c(9, 3)), "bad input", TRUE)
add_case("error_SPCOR_r2", "SPCOR", list(ti = c(2, 1), ni = c(10, 20), mi = c(2, 3), r2i = c(0.2, 1.3)), "bad input", TRUE)
add_case("error_SMD_negative_sd", "SMD", list(m1i = 1:2, sd1i = c(1, -1), n1i = c(5, 5), m2i = 1:2, sd2i = c(1, 1), n2i = c(5, 5)),
         "bad input", TRUE)
add_case("error_MD_vtype_AV", "MD", list(m1i = 1:2, sd1i = c(1, 1), n1i = c(5, 5), m2i = 1:2, sd2i = c(1, 1), n2i = c(5, 5)),
         "bad input", TRUE, vtype = "AV")
add_case("error_SMD_n_zero", "SMD", list(m1i = 1:2, sd1i = c(1, 1), n1i = c(5, 0), m2i = 1:2, sd2i = c(1, 1), n2i = c(5, 5)),
         "bad input", TRUE)
add_case("error_SMCR_r_above_1", "SMCR", list(m1i = 1:2, m2i = 2:3, sd1i = c(1, 1), ni = c(5, 5), ri = c(0.5, 1.5)),
         "bad input", TRUE)
add_case("error_unknown_to", "PR", list(xi = c(3, 4), ni = c(10, 10)), "bad input", TRUE, to = "some")
add_case("error_unknown_vtype", "SMD", list(m1i = 1:2, sd1i = c(1, 1), n1i = c(5, 5), m2i = 1:2, sd2i = c(1, 1), n2i = c(5, 5)),
         "bad input", TRUE, vtype = "XX")
add_case("error_MNLN_negative_mean", "MNLN", list(mi = c(2, -1), sdi = c(1, 1), ni = c(5, 5)), "bad input", TRUE)
add_case("error_ARAW_alpha_above_1", "ARAW", list(ai = c(0.8, 1.1), mi = c(5, 5), ni = c(50, 50)), "bad input", TRUE)

# ---------------------------------------------------------------------------------------------------
# 9. transf.* helpers
# ---------------------------------------------------------------------------------------------------
TRANSF <- list()
add_transf <- function(name, fn, xi, ..., targs = NULL, per_element = FALSE) {
  extra <- list(...)
  f <- get(fn, envir = asNamespace("metafor"))
  if (per_element) {  # the *.int helpers take one value at a time (metafor's predict calls them via sapply)
    value <- sapply(xi, function(x) do.call(f, c(list(x), extra, if (!is.null(targs)) list(targs = targs))))
  } else {
    value <- do.call(f, c(list(xi), extra, if (!is.null(targs)) list(targs = targs)))
  }
  TRANSF[[name]] <<- list(fn = fn, xi = vec(xi), args = lapply(extra, vec),
                          targs = if (is.null(targs)) NULL else lapply(targs, vec), value = vec(value))
}
r <- c(-0.999, -0.5, 0, 0.25, 0.5, 0.9, 0.999)
add_transf("rtoz", "transf.rtoz", r)
add_transf("ztor", "transf.ztor", c(-4, -1, -0.2, 0, 0.3, 1.5, 5))
add_transf("exp", "exp", c(-30, -2, 0, 0.5, 3, 700))  # base R's exp, metafor's usual transf for ratios
add_transf("logit", "transf.logit", c(0, 0.001, 0.1, 0.5, 0.73, 0.999, 1))
add_transf("ilogit", "transf.ilogit", c(-40, -5, -0.5, 0, 0.5, 3, 40))
add_transf("arcsin", "transf.arcsin", c(0, 0.01, 0.1, 0.5, 0.9, 1))
add_transf("iarcsin", "transf.iarcsin", c(-0.1, 0, 0.1, 0.5, 1, 1.5, 1.6))
nis <- c(5, 10, 10, 25, 40, 100, 8)
add_transf("pft", "transf.pft", c(0, 0.1, 0.25, 0.5, 0.8, 0.99, 1), ni = nis)
add_transf("ipft", "transf.ipft", c(0.05, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6), ni = nis)
add_transf("ipft_hm", "transf.ipft.hm", c(0.05, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6), targs = list(ni = c(nis, NA)))
add_transf("isqrt", "transf.isqrt", c(-0.5, 0, 0.1, 0.5, 2))
tis <- c(10, 50, 100, 200, 1000)
add_transf("irft", "transf.irft", c(0, 0.01, 0.1, 0.5, 2), ti = tis)
add_transf("iirft", "transf.iirft", c(0, 0.02, 0.1, 0.5, 1.2), ti = tis)
add_transf("ahw", "transf.ahw", c(-0.5, 0, 0.5, 0.9, 1))
add_transf("iahw", "transf.iahw", c(-0.1, 0, 0.3, 0.6, 1, 1.2))
add_transf("abt", "transf.abt", c(-0.5, 0, 0.5, 0.9, 0.99))
add_transf("iabt", "transf.iabt", c(-0.1, 0, 0.7, 2.3, 5))
d <- c(-2, -0.5, 0, 0.3, 0.8, 2.5)
add_transf("dtou1", "transf.dtou1", d)
add_transf("dtou2", "transf.dtou2", d)
add_transf("dtou3", "transf.dtou3", d)
add_transf("dtocles", "transf.dtocles", d)
add_transf("dtorpb", "transf.dtorpb", d)
add_transf("dtorpb_n", "transf.dtorpb", d, n1i = c(10, 20, 30, 15, 50, 8), n2i = c(12, 18, 30, 45, 50, 9))
add_transf("dtobesd", "transf.dtobesd", d)
add_transf("dtomd", "transf.dtomd", d, targs = list(sd = 2.5))
lor <- c(-2, -0.7, 0, 0.4, 1.6)
add_transf("logortord", "transf.logortord", lor, pc = 0.2)
add_transf("logortorr", "transf.logortorr", lor, pc = c(0.05, 0.2, 0.5, 0.7, 0.95))
for (t2 in c(0, 0.1, 0.5, 2)) {
  tag <- gsub("\\.", "", sprintf("%g", t2))
  add_transf(paste0("exp_int_tau2_", tag), "transf.exp.int", c(-2, log(0.5), 0, 0.7, NA), targs = list(tau2 = t2), per_element = TRUE)
  add_transf(paste0("ilogit_int_tau2_", tag), "transf.ilogit.int", c(-3, transf.logit(0.1), 0, 1.2, NA), targs = list(tau2 = t2), per_element = TRUE)
  add_transf(paste0("ztor_int_tau2_", tag), "transf.ztor.int", c(-1.5, -0.2, 0, transf.rtoz(0.5), NA), targs = list(tau2 = t2), per_element = TRUE)
}
add_transf("exp_int_bounds", "transf.exp.int", c(log(0.5), 0.3), targs = list(tau2 = 0.1, lower = -10, upper = 10), per_element = TRUE)
add_transf("ilogit_int_bounds", "transf.ilogit.int", c(-1, 0.4), targs = list(tau2 = 0.3, lower = -5, upper = 4), per_element = TRUE)

# ---------------------------------------------------------------------------------------------------
obj <- list(source = list(generator = "tests/reference/make_escalc_measures_reference.R",
                          R_version = R.version.string,
                          metafor_version = as.character(packageVersion("metafor")),
                          metadat_version = as.character(packageVersion("metadat")),
                          gsl_version = as.character(packageVersion("gsl")),
                          jsonlite_version = as.character(packageVersion("jsonlite")),
                          call = "escalc(measure, <inputs>, <options>); transf.*(xi, ..., targs)",
                          control = "closed-form (no iteration); transf.*.int: integrate() defaults",
                          generated_on = "see git log of this file"),
            cases = CASES, transf = TRANSF)
txt <- toJSON(to_verbatim(obj), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "escalc_measures.json")
writeLines(txt, paste0(path, ".tmp"))
invisible(file.rename(paste0(path, ".tmp"), path))
cat("wrote", path, "(", length(CASES), "escalc cases,", length(TRANSF), "transf cases )\n")
