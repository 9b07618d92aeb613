#!/usr/bin/env Rscript
# Writes tests/reference/multiverse.json, the metafor fixture that tests/analyses/test_multiverse.py compares
# the multiverse's confidence and prediction intervals (metaexercise.review.multiverse.intervals, fed by one
# rma_batch z-test fit per data set and estimator) against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_multiverse_reference.R
#
# Needs R with metafor 3.8-1 and jsonlite. Takes a second. No random numbers.
#
# For each data set and each tau^2 estimator (DL, REML, ML, PM) and test ("z", "knha", "t"), metafor's fit:
# estimate, se, ci.lb, ci.ub, tau2, and predict()'s pi.lb, pi.ub (metafor 3.8: N(0, 1) under test="z",
# t(k - 1) under "knha" and "t", with the test's SE). The prediction intervals of the multiverse's three PI
# methods, z, t(k - 1) and t(k - 2) (Higgins, Thompson & Spiegelhalter 2009), are
# pred +/- crit * sqrt(se^2 + tau2) with that fit's se and tau2 (written out below, as metafor's predict.rma
# forms its interval); t(k - 2) is NA for k = 2.
#
# Data sets: dat.normand1999 (SMD, k = 9), its first three and first two studies (k = 3: one degree of
# freedom for t(k - 2); k = 2: none), and dat.bcg (log risk ratios, k = 13).
#
# Convergence: control=list(threshold=1e-12, tol=1e-12, maxiter=10000) (tight, as the other fixtures).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("This fixture was made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_multiverse_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
LEVEL <- 95

# Numbers as %.17g text spliced in verbatim (jsonlite stops at 15 significant digits); NA -> null.
num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "null"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
DATA <- list(
  normand1999 = list(origin = "dat.normand1999; escalc(\"SMD\", m1i, sd1i, n1i, m2i, sd2i, n2i)",
                     yi = nor$yi, vi = nor$vi),
  normand1999_k3 = list(origin = "dat.normand1999[1:3, ]; escalc(\"SMD\", ...)", yi = nor$yi[1:3], vi = nor$vi[1:3]),
  normand1999_k2 = list(origin = "dat.normand1999[1:2, ]; escalc(\"SMD\", ...)", yi = nor$yi[1:2], vi = nor$vi[1:2]),
  bcg = list(origin = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)", yi = bcg$yi, vi = bcg$vi)
)
METHODS <- c("DL", "REML", "ML", "PM")
TESTS <- c("z", "knha", "t")
alpha <- 1 - LEVEL / 100

fits <- list()
for (dname in names(DATA)) {
  d <- DATA[[dname]]
  k <- length(d$yi)
  for (method in METHODS) {
    for (test in TESTS) {
      fit <- rma(d$yi, d$vi, method = method, test = test, level = LEVEL, control = CTRL)
      p <- predict(fit)
      half <- function(crit) crit * sqrt(fit$se^2 + fit$tau2)
      crits <- c(z = qnorm(1 - alpha / 2), t1 = qt(1 - alpha / 2, k - 1),
                 t2 = if (k > 2) qt(1 - alpha / 2, k - 2) else NA_real_)
      fits[[length(fits) + 1L]] <- list(
        data = dname, method = method, test = test, k = num(k),
        call = sprintf("rma(yi, vi, method=\"%s\", test=\"%s\", level=%g, control=%s)", method, test, LEVEL,
                       paste(deparse(CTRL), collapse = "")),
        estimate = num(fit$b[1]), se = num(fit$se), ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub),
        tau2 = num(fit$tau2), predict_pi_lb = num(p$pi.lb), predict_pi_ub = num(p$pi.ub),
        pi_z_lb = num(p$pred - half(crits[["z"]])), pi_z_ub = num(p$pred + half(crits[["z"]])),
        pi_t1_lb = num(p$pred - half(crits[["t1"]])), pi_t1_ub = num(p$pred + half(crits[["t1"]])),
        pi_t2_lb = num(p$pred - half(crits[["t2"]])), pi_t2_ub = num(p$pred + half(crits[["t2"]]))
      )
    }
  }
}

out <- list(
  source = list(
    generator = "tests/reference/make_multiverse_reference.R",
    R_version = R.version.string,
    metafor_version = as.character(packageVersion("metafor")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    control = "rma(..., control=list(threshold=1e-12, tol=1e-12, maxiter=10000))",
    prediction = paste("predict_pi_*: metafor's predict(); pi_z/pi_t1/pi_t2: pred +/- crit * sqrt(se^2 + tau2)",
                       "with crit = qnorm(0.975), qt(0.975, k - 1), qt(0.975, k - 2) and the fit's se"),
    generated_on = "see git log of this file"
  ),
  datasets = lapply(DATA, function(d) list(origin = d$origin, yi = num(d$yi), vi = num(d$vi))),
  fits = fits
)
txt <- toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "multiverse.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
