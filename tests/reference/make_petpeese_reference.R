#!/usr/bin/env Rscript
# Writes tests/reference/petpeese.json, the R fixture that tests/engine/test_reference_petpeese.py compares
# metaexercise.engine.petpeese against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_petpeese_reference.R
#
# PET and PEESE (Stanley & Doucouliagos 2014, Res Synth Methods 5:60) are weighted least-squares regressions
# with a multiplicative dispersion: R's lm(yi ~ sei, weights = 1/vi) and lm(yi ~ vi, weights = 1/vi), the
# model of metafor's regtest(model = "lm"). For each data set the script records summary(lm)'s coefficient
# table, confint() at 95% and 90%, the residual standard error and df, the one-sided p-values of the
# intercept (pt), and metafor's regtest(model = "lm") limit estimate (est, ci.lb, ci.ub) as a second route.
# No iteration, no random numbers: re-running reproduces the file byte for byte. Numbers with %.17g.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_petpeese_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "null"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
mol <- escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
coh <- escalc("ZCOR", ri = ri, ni = ni, data = dat.cohen1981)
pri <- escalc("PR", xi = xi, ni = ni, data = dat.pritz1997)
SETS <- list(
  hackshaw1998 = list(origin = "dat.hackshaw1998; yi, vi as shipped (log odds ratios)",
                      yi = dat.hackshaw1998$yi, vi = dat.hackshaw1998$vi),
  bcg = list(origin = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)", yi = bcg$yi, vi = bcg$vi),
  normand1999 = list(origin = "dat.normand1999; escalc(\"SMD\", m1i, sd1i, n1i, m2i, sd2i, n2i)",
                     yi = nor$yi, vi = nor$vi),
  molloy2014 = list(origin = "dat.molloy2014; escalc(\"ZCOR\", ri, ni)", yi = mol$yi, vi = mol$vi),
  baskerville2012 = list(origin = "dat.baskerville2012; yi = smd, vi = se^2", yi = dat.baskerville2012$smd,
                         vi = dat.baskerville2012$se^2),
  # two sets whose PET intercept is significant (PET-PEESE then reports PEESE)
  cohen1981 = list(origin = "dat.cohen1981; escalc(\"ZCOR\", ri, ni)", yi = coh$yi, vi = coh$vi),
  pritz1997 = list(origin = "dat.pritz1997; escalc(\"PR\", xi, ni)", yi = pri$yi, vi = pri$vi)
)

fit_lm <- function(yi, vi, x) {
  m <- lm(yi ~ x, weights = 1 / vi)
  s <- summary(m)
  ct <- coef(s)
  t0 <- ct[1, 3]
  df <- m$df.residual
  list(coef = num(ct[, 1]), se = num(ct[, 2]), tval = num(ct[, 3]), pval = num(ct[, 4]),
       ci95_lb = num(confint(m, level = 0.95)[, 1]), ci95_ub = num(confint(m, level = 0.95)[, 2]),
       ci90_lb = num(confint(m, level = 0.90)[, 1]), ci90_ub = num(confint(m, level = 0.90)[, 2]),
       sigma = num(s$sigma), df = num(df),
       pval_greater = num(pt(t0, df, lower.tail = FALSE)), pval_less = num(pt(t0, df, lower.tail = TRUE)))
}

out <- list()
for (name in names(SETS)) {
  d <- SETS[[name]]
  sei <- sqrt(d$vi)
  fit <- rma(d$yi, d$vi, method = "EE")
  rt_sei <- regtest(fit, model = "lm", predictor = "sei")
  rt_vi <- regtest(fit, model = "lm", predictor = "vi")
  out[[name]] <- list(
    origin = d$origin, yi = num(d$yi), vi = num(d$vi),
    pet = fit_lm(d$yi, d$vi, sei),
    peese = fit_lm(d$yi, d$vi, d$vi),
    regtest_sei = list(est = num(rt_sei$est), ci_lb = num(rt_sei$ci.lb), ci_ub = num(rt_sei$ci.ub)),
    regtest_vi = list(est = num(rt_vi$est), ci_lb = num(rt_vi$ci.lb), ci_ub = num(rt_vi$ci.ub))
  )
}

res <- list(
  source = list(
    generator = "tests/reference/make_petpeese_reference.R",
    R_version = R.version.string,
    metafor_version = as.character(packageVersion("metafor")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    calls = paste("summary(lm(yi ~ sei, weights = 1/vi)), summary(lm(yi ~ vi, weights = 1/vi)), confint(),",
                  "pt(); regtest(rma(yi, vi, method = 'EE'), model = 'lm', predictor = 'sei' / 'vi')"),
    control = "none (closed-form least squares)",
    generated_on = "see git log of this file"
  ),
  datasets = out
)
txt <- toJSON(res, auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "petpeese.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
