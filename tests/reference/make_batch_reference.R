#!/usr/bin/env Rscript
# Writes tests/reference/batch_reference.json, the metafor fixture that tests/batch/ compares rma_batch and
# permutest against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_batch_reference.R
#
# Needs R with metafor 3.8-1 and jsonlite. Every synthetic data set is drawn here from a fixed seed, so
# re-running the script reproduces the fixture byte for byte; numbers are written with %.17g.
# The fits run Fisher scoring to convergence (threshold 1e-13, maxiter 10000: the converged maximum that
# rma_batch's Fisher + Newton iteration reaches); Paule-Mandel's uniroot uses tol 1e-15 (converged root).
# permutest's models keep threshold 1e-10 and maxiter 100, because metafor drops refits that do not
# converge from its p-values, so those p-values depend on the control settings.
# permutest(exact = TRUE) enumerates every sign flip / distinct permutation, so its p-values do not depend
# on a random number generator and can be compared exactly.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_batch_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-15)
CTRL_PERM <- list(threshold = 1e-10, maxiter = 100, tol = 1e-15)
# Numbers as %.17g text spliced in verbatim (jsonlite itself stops at 15 significant digits); NA -> NaN,
# which Python's json module reads.
num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "NaN"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

set.seed(20211216)
datasets <- list()
ks <- c(2, 2, 3, 3, 4, 5, 5, 6, 8, 10, 12, 15, 20, 25, 30, 32, 40, 60)
tau2s <- c(0, 0.01, 0.05, 0.2)
for (i in seq_along(ks)) {
  for (t2 in tau2s) {
    k <- ks[i]
    vi <- runif(k, 0.005, 0.2)
    yi <- rnorm(k, -0.3, sqrt(vi + t2))
    datasets[[length(datasets) + 1L]] <- list(yi = yi, vi = vi)
  }
}
# an outlying set, a set with tiny variances and one with a huge spread (PM needs tau2.max > 100)
datasets[[length(datasets) + 1L]] <- list(yi = c(0.1, 0.2, 0.15, 3.5, 0.05, 0.12), vi = c(0.02, 0.03, 0.025, 0.04, 0.02, 0.03))
datasets[[length(datasets) + 1L]] <- list(yi = c(-0.21, -0.18, -0.25, -0.3, -0.2), vi = c(1e-4, 2e-4, 1.5e-4, 1e-4, 3e-4))
datasets[[length(datasets) + 1L]] <- list(yi = c(-40, 35, 10, -22, 50, -5), vi = c(0.5, 0.4, 0.6, 0.3, 0.5, 0.4))

fits <- list()
for (method in c("REML", "ML", "DL", "PM")) {
  for (test in c("z", "knha")) {
    rows <- lapply(datasets, function(d) {
      res <- try(rma(d$yi, d$vi, method = method, test = test, control = CTRL), silent = TRUE)
      if (inherits(res, "try-error")) return(list(error = as.character(res)))
      pr <- predict(res)
      list(estimate = num(res$beta[1]), se = num(res$se), ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub),
           tau2 = num(res$tau2), I2 = num(res$I2), QE = num(res$QE), pi_lb = num(pr$pi.lb),
           pi_ub = num(pr$pi.ub))
    })
    fits[[paste(method, test, sep = "_")]] <- rows
  }
}

# permutest: exact tests (no RNG involved)
set.seed(7)
perm_sets <- list(
  int_only = list(yi = rnorm(8, 0.3, 0.3), vi = runif(8, 0.01, 0.1), mods = NULL),
  continuous = list(yi = rnorm(7, 0.2, 0.3), vi = runif(7, 0.01, 0.1), mods = round(runif(7, 4, 16))),
  binary = list(yi = rnorm(10, 0.2, 0.3), vi = runif(10, 0.01, 0.1), mods = c(1, 1, 1, 1, 0, 0, 0, 0, 0, 0))
)
perms <- list()
for (name in names(perm_sets)) {
  d <- perm_sets[[name]]
  for (method in c("REML", "DL")) {
    for (test in c("z", "knha")) {
      res <- if (is.null(d$mods)) rma(d$yi, d$vi, method = method, test = test, control = CTRL_PERM)
             else rma(d$yi, d$vi, mods = ~ d$mods, method = method, test = test, control = CTRL_PERM)
      pt <- permutest(res, exact = TRUE, progbar = FALSE)
      perms[[paste(name, method, test, sep = "_")]] <- list(
        data = name, method = method, test = test, zval = num(res$zval), QM = num(res$QM),
        pval = num(pt$pval), QMp = num(pt$QMp), iter = num(pt$exact.iter))
    }
  }
}

out <- list(
  source = list(
    script = "tests/reference/make_batch_reference.R",
    R = R.version.string,
    metafor = as.character(packageVersion("metafor")),
    call = "rma(yi, vi, method, test, control = list(threshold = 1e-13, maxiter = 10000, tol = 1e-15)); predict(); permutest(rma(..., control = list(threshold = 1e-10, maxiter = 100)), exact = TRUE)"
  ),
  datasets = lapply(datasets, function(d) list(yi = num(d$yi), vi = num(d$vi))),
  fits = fits,
  perm_sets = lapply(perm_sets, function(d) list(yi = num(d$yi), vi = num(d$vi), mods = if (is.null(d$mods)) NULL else num(d$mods))),
  permutest = perms
)
json <- toJSON(out, auto_unbox = TRUE, null = "null", json_verbatim = TRUE, pretty = FALSE)
writeLines(json, file.path(OUTDIR, "batch_reference.json"))
cat("wrote", file.path(OUTDIR, "batch_reference.json"), "\n")
