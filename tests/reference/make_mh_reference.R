#!/usr/bin/env Rscript
# Writes tests/reference/mh.json, the metafor fixture that tests/engine/test_reference_escalc_counts.py and
# tests/engine/test_reference_mh.py compare metaexercise against:
#   - escalc() for two-group counts (RR, OR, RD, AS, PETO, YUQ, YUY) and incidence rates (IRR, IRD, IRSD) with
#     add / to / drop00 / vtype variants;
#   - rma.mh() (OR, RR, RD, IRR, IRD) and rma.peto(), every returned statistic, predict(transf = exp) and the
#     printout (capture.output(print(fit))).
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_mh_reference.R
#
# Needs R with metafor 3.8-1 (and metadat, which ships the dat.* data sets) and jsonlite. Mantel-Haenszel and
# Peto estimates are closed-form: there is no convergence control to tighten. The synthetic sets are drawn
# from a fixed seed, so a re-run reproduces the file byte for byte. Numbers are written with
# sprintf("%.17g"); NA becomes null, +-Inf Infinity/-Infinity. Warnings metafor gives are recorded per case;
# an entry {"error": "..."} records that metafor itself stopped with that message.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("This fixture was made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_mh_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

# ---------------------------------------------------------------------------------------------------
# JSON writing with full precision (as make_reference.R): numeric leaves pre-formatted, spliced verbatim.
# ---------------------------------------------------------------------------------------------------
fmt_num <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "null"
  out[is.infinite(x) & x > 0] <- "Infinity"
  out[is.infinite(x) & x < 0] <- "-Infinity"
  out
}
vec <- function(x) structure(as.numeric(x), class = "me_vec")  # stays an array even with length 1
to_verbatim <- function(x) {
  if (inherits(x, "me_vec")) {
    return(structure(paste0("[", paste(fmt_num(unclass(x)), collapse = ","), "]"), class = "json"))
  }
  if (is.list(x)) return(lapply(x, to_verbatim))
  if (is.logical(x) && length(x) == 1L && is.na(x)) return(structure("null", class = "json"))
  if (is.numeric(x)) {
    if (length(x) == 1L) return(structure(fmt_num(x), class = "json"))
    return(structure(paste0("[", paste(fmt_num(x), collapse = ","), "]"), class = "json"))
  }
  x
}

# Run `expr`, returning its value and the (distinct) warning messages metafor gave, or an error record.
with_warnings <- function(expr) {
  msgs <- character(0)
  value <- tryCatch(
    withCallingHandlers(expr, warning = function(w) {
      msgs <<- c(msgs, conditionMessage(w))
      invokeRestart("muffleWarning")
    }),
    error = function(e) structure(list(msg = conditionMessage(e)), class = "me_error"))
  list(value = value, warnings = as.list(unique(msgs)))
}
is_err <- function(x) inherits(x, "me_error")

deparse_args <- function(args) {
  if (length(args) == 0L) return("")
  paste0(", ", paste(names(args), vapply(args, function(a) paste(deparse(a), collapse = ""), ""),
                     sep = "=", collapse = ", "))
}

# ---------------------------------------------------------------------------------------------------
# Data: metadat's dat.* sets (exported, so the tests need no R) and seeded synthetic edge sets.
# ---------------------------------------------------------------------------------------------------
yus <- dat.yusuf1985
col <- dat.collins1985a
counts <- list(
  bcg = list(origin = "dat.bcg (Colditz et al. 1994): ai=tpos, bi=tneg, ci=cpos, di=cneg",
             inputs = list(ai = dat.bcg$tpos, bi = dat.bcg$tneg, ci = dat.bcg$cpos, di = dat.bcg$cneg)),
  nielweise2007 = list(origin = "dat.nielweise2007 (Niel-Weise et al. 2007): ai, n1i, ci, n2i (zero cells; study 15 has no events)",
                       inputs = as.list(dat.nielweise2007[c("ai", "n1i", "ci", "n2i")])),
  yusuf1985_6 = list(origin = "dat.yusuf1985, table == \"6\" (Yusuf et al. 1985): ai, n1i, ci, n2i (double zeros; a row of NAs)",
                     inputs = as.list(yus[yus$table == "6", c("ai", "n1i", "ci", "n2i")])),
  yusuf1985_9 = list(origin = "dat.yusuf1985, table == \"9\" (Yusuf et al. 1985): ai, n1i, ci, n2i (many zero cells; rows of NAs)",
                     inputs = as.list(yus[yus$table == "9", c("ai", "n1i", "ci", "n2i")])),
  collins1985a = list(origin = "dat.collins1985a (Collins & Langman 1985), bleeding: ai=b.xti, n1i=nti, ci=b.xci, n2i=nci (NAs; a double zero)",
                      inputs = list(ai = col$b.xti, n1i = col$nti, ci = col$b.xci, n2i = col$nci))
)

set.seed(20240613)
syn_counts <- function() {
  k <- 12
  n1 <- sample(8:60, k, replace = TRUE)
  n2 <- sample(8:60, k, replace = TRUE)
  a <- rbinom(k, n1, 0.2)
  c <- rbinom(k, n2, 0.3)
  # edge patterns: no events in one arm, no events at all, every patient an event in one arm and in both
  a[2] <- 0
  c[3] <- 0
  a[4] <- 0; c[4] <- 0
  a[5] <- n1[5]
  a[6] <- n1[6]; c[6] <- n2[6]
  list(ai = a, bi = n1 - a, ci = c, di = n2 - c)
}
counts$syn_edges <- list(origin = "synthetic replica - not the trials' data; seeded binomial counts with edge tables forced: arm 1 without events (2), arm 2 without events (3), no events (4), all events in arm 1 (5), all events in both arms (6)",
                         synthetic = TRUE, inputs = syn_counts())
counts$syn_k1 <- list(origin = "synthetic replica - not the trials' data; one table", synthetic = TRUE,
                      inputs = list(ai = 7, bi = 23, ci = 12, di = 18))
counts$syn_arm2_zero <- list(origin = "synthetic replica - not the trials' data; seeded counts, no events in arm 2 of any table (MH ratio estimates undefined)",
                             synthetic = TRUE,
                             inputs = local({ n1 <- sample(10:40, 5); a <- rbinom(5, n1, 0.3)
                                              list(ai = a, n1i = n1, ci = rep(0, 5), n2i = sample(10:40, 5)) }))
counts$syn_all00 <- list(origin = "synthetic replica - not the trials' data; no events in any table",
                         synthetic = TRUE, inputs = list(ai = c(0, 0, 0), n1i = c(20, 31, 15), ci = c(0, 0, 0),
                                                         n2i = c(22, 30, 16)))

rates <- list(
  nielweise2008 = list(origin = "dat.nielweise2008 (Niel-Weise et al. 2008): x1i, t1i, x2i, t2i",
                       inputs = as.list(dat.nielweise2008[c("x1i", "x2i", "t1i", "t2i")])),
  hart1999 = list(origin = "dat.hart1999 (Hart et al. 1999): x1i, t1i, x2i, t2i",
                  inputs = as.list(dat.hart1999[c("x1i", "x2i", "t1i", "t2i")]))
)
rates$syn_rates <- list(origin = "synthetic replica - not the trials' data; seeded Poisson counts, a zero in arm 1 (2), in arm 2 (3), in both (4)",
                        synthetic = TRUE,
                        inputs = local({ t1 <- round(runif(8, 100, 3000)); t2 <- round(runif(8, 100, 3000))
                                         x1 <- rpois(8, t1 * 0.004); x2 <- rpois(8, t2 * 0.006)
                                         x1[2] <- 0; x2[3] <- 0; x1[4] <- 0; x2[4] <- 0
                                         list(x1i = x1, x2i = x2, t1i = t1, t2i = t2) }))

# ---------------------------------------------------------------------------------------------------
# escalc
# ---------------------------------------------------------------------------------------------------
COUNT_VARIANTS <- list(
  default = list(), add0 = list(add = 0), to_all = list(to = "all"), to_if0all = list(to = "if0all"),
  to_none = list(to = "none"), add_quarter_all = list(add = 1/4, to = "all"), drop00 = list(drop00 = TRUE),
  add_half = list(add = 1/2)
)
RD_VTYPES <- list(vtype_UB = list(vtype = "UB"), vtype_AV = list(vtype = "AV"),
                  vtype_AV_drop00 = list(vtype = "AV", drop00 = TRUE))
RATE_VARIANTS <- COUNT_VARIANTS[c("default", "add0", "to_all", "to_if0all", "to_none", "add_quarter_all",
                                  "drop00", "add_half")]

escalc_cases <- list()
run_escalc <- function(set, measure, vname, args, inputs) {
  call <- paste0("escalc(\"", measure, "\", <", paste(names(inputs), collapse = ", "), "> of ", set,
                 deparse_args(args), ")")
  r <- with_warnings(do.call(escalc, c(list(measure = measure), inputs, args)))
  key <- paste(set, measure, vname, sep = "/")
  entry <- list(dataset = set, measure = measure, args = args, call = call, warnings = r$warnings)
  if (is_err(r$value)) {
    entry$error <- r$value$msg
  } else {
    entry$yi <- vec(r$value$yi)
    entry$vi <- vec(r$value$vi)
  }
  escalc_cases[[key]] <<- entry
}
for (set in names(counts)) {
  inputs <- counts[[set]]$inputs
  for (measure in c("RR", "OR", "RD", "AS", "PETO", "YUQ", "YUY")) {
    variants <- if (measure == "RD") c(COUNT_VARIANTS, RD_VTYPES) else COUNT_VARIANTS
    for (vname in names(variants)) run_escalc(set, measure, vname, variants[[vname]], inputs)
  }
}
# vtype given per study (recycled by metafor only when of length 1)
k_bcg <- length(counts$bcg$inputs$ai)
run_escalc("bcg", "RD", "vtype_mixed", list(vtype = rep_len(c("LS", "UB", "AV"), k_bcg)), counts$bcg$inputs)
for (set in names(rates)) {
  inputs <- rates[[set]]$inputs
  for (measure in c("IRR", "IRD", "IRSD")) {
    for (vname in names(RATE_VARIANTS)) run_escalc(set, measure, vname, RATE_VARIANTS[[vname]], inputs)
  }
}

# ---------------------------------------------------------------------------------------------------
# rma.mh and rma.peto
# ---------------------------------------------------------------------------------------------------
fit_values <- function(fit, ratio) {
  out <- list(beta = unname(fit$beta[1]), se = fit$se, zval = fit$zval, pval = fit$pval, ci_lb = fit$ci.lb,
              ci_ub = fit$ci.ub, QE = fit$QE, QEp = fit$QEp, I2 = fit$I2, H2 = fit$H2, tau2 = fit$tau2,
              k = fit$k, k_yi = fit$k.yi, k_pos = fit$k.pos, k_all = fit$k.all,
              yi = vec(fit$yi), vi = vec(fit$vi),
              ll_ML = fit$fit.stats["ll", "ML"], ll_REML = fit$fit.stats["ll", "REML"],
              dev_ML = fit$fit.stats["dev", "ML"], AIC_ML = fit$fit.stats["AIC", "ML"],
              BIC_ML = fit$fit.stats["BIC", "ML"], AICc_ML = fit$fit.stats["AICc", "ML"])
  for (s in c("CO", "COp", "MH", "MHp", "BD", "BDp", "TA", "TAp")) {
    if (!is.null(fit[[s]])) out[[s]] <- fit[[s]]
  }
  # predict() returns empty vectors when the estimate is NA: recorded as NA
  na0 <- function(x) if (length(x) == 0L) NA_real_ else x
  pr <- predict(fit)
  out$pred <- list(pred = na0(pr$pred), se = na0(pr$se), ci_lb = na0(pr$ci.lb), ci_ub = na0(pr$ci.ub))
  if (ratio) {
    pe <- predict(fit, transf = exp)
    out$pred_exp <- list(pred = na0(pe$pred), ci_lb = na0(pe$ci.lb), ci_ub = na0(pe$ci.ub))
  }
  out
}

model_cases <- list()
run_model <- function(fun, set, inputs, measure, vname, args, print = FALSE) {
  fname <- if (identical(fun, "mh")) "rma.mh" else "rma.peto"
  margs <- if (identical(fun, "mh")) c(list(measure = measure), args) else args
  call <- paste0(fname, "(<", paste(names(inputs), collapse = ", "), "> of ", set, deparse_args(margs), ")")
  r <- with_warnings(do.call(if (identical(fun, "mh")) rma.mh else rma.peto, c(inputs, margs)))
  key <- paste(fname, set, if (identical(fun, "mh")) measure else "PETO", vname, sep = "/")
  entry <- list(fun = fname, dataset = set, measure = if (identical(fun, "mh")) measure else "PETO",
                args = args, call = call, warnings = r$warnings)
  if (is_err(r$value)) {
    entry$error <- r$value$msg
  } else {
    entry$result <- fit_values(r$value, ratio = measure %in% c("OR", "RR", "IRR", "PETO"))
    if (print) entry$printout <- paste(capture.output(print(r$value)), collapse = "\n")
  }
  model_cases[[key]] <<- entry
}

MH_VARIANTS <- list(
  default = list(), uncorrected = list(correct = FALSE), level90 = list(level = 90),
  keep00 = list(drop00 = FALSE), drop00_both = list(drop00 = c(TRUE, TRUE)),
  add_both = list(add = c(1/2, 1/2), to = c("only0", "only0")), to_all = list(to = c("all", "all"), add = c(1/2, 1/4)),
  to_if0all = list(to = c("if0all", "if0all"), add = c(1/2, 1/2))
)
PRINTED <- c("bcg/default", "nielweise2007/default", "collins1985a/default", "syn_arm2_zero/default",
             "syn_all00/default", "syn_k1/default", "yusuf1985_9/uncorrected", "nielweise2008/default",
             "hart1999/default", "syn_rates/default", "bcg/level90", "yusuf1985_6/default")
for (set in names(counts)) {
  for (measure in c("OR", "RR", "RD")) {
    for (vname in names(MH_VARIANTS)) {
      run_model("mh", set, counts[[set]]$inputs, measure, vname, MH_VARIANTS[[vname]],
                print = paste(set, vname, sep = "/") %in% PRINTED)
    }
  }
  for (vname in c("default", "level90", "keep00", "drop00_both", "add_both", "to_all", "to_if0all")) {
    run_model("peto", set, counts[[set]]$inputs, "PETO", vname, MH_VARIANTS[[vname]],
              print = paste(set, vname, sep = "/") %in% PRINTED)
  }
}
for (set in names(rates)) {
  for (measure in c("IRR", "IRD")) {
    for (vname in names(MH_VARIANTS)) {
      run_model("mh", set, rates[[set]]$inputs, measure, vname, MH_VARIANTS[[vname]],
                print = paste(set, vname, sep = "/") %in% PRINTED)
    }
  }
}

# ---------------------------------------------------------------------------------------------------
out <- list(
  source = list(generator = "tests/reference/make_mh_reference.R", R_version = R.version.string,
                metafor_version = as.character(packageVersion("metafor")),
                metadat_version = as.character(packageVersion("metadat")),
                jsonlite_version = as.character(packageVersion("jsonlite")),
                control = "none: escalc, rma.mh and rma.peto are closed-form",
                na_action = getOption("na.action"),
                generated_on = "see git log of this file"),
  counts = lapply(counts, function(d) c(d[setdiff(names(d), "inputs")], list(inputs = lapply(d$inputs, vec)))),
  rates = lapply(rates, function(d) c(d[setdiff(names(d), "inputs")], list(inputs = lapply(d$inputs, vec)))),
  escalc = escalc_cases,
  models = model_cases
)
txt <- toJSON(to_verbatim(out), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null",
              pretty = TRUE, digits = NA)
path <- file.path(OUTDIR, "mh.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
file.rename(tmp, path)
cat("wrote", path, "(", length(escalc_cases), "escalc cases,", length(model_cases), "model cases )\n")
