#!/usr/bin/env Rscript
# Times metafor's rma.mv on the data sets that benchmarks/bench_rma_mv.py writes, and prints one JSON object with the
# seconds and the estimates (so the Python side can report agreement).
# Called by benchmarks/bench_rma_mv.py:  Rscript benchmarks/rma_mv_bench.R DATA_DIR [--skip-dense]
# metafor runs with its defaults (nlminb, rel.tol 1e-10), as users run it, once with dense matrices (its default) and
# once with sparse=TRUE. Medians over repeats, except the dense fits of the larger data sets, which run once.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
skip_dense <- "--skip-dense" %in% args
tasks <- fromJSON(file.path(dir, "tasks.json"), simplifyVector = FALSE)

elapsed <- function(expr) { t <- proc.time()[["elapsed"]]; force(expr); proc.time()[["elapsed"]] - t }

fit_task <- function(task, sparse) {
  dat <- read.csv(file.path(dir, task$csv))
  V <- if (is.null(task$V_csv)) dat$vi else as.matrix(read.csv(file.path(dir, task$V_csv), header = FALSE))
  args <- list(yi = dat$yi, V = V, random = if (length(task$random) == 1L) as.formula(task$random[[1]])
                                             else lapply(task$random, as.formula),
               data = dat, sparse = sparse)
  if (!is.null(task$mods)) args$mods <- as.formula(task$mods)
  if (!is.null(task$struct)) args$struct <- task$struct
  function() do.call(rma.mv, args)
}

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string,
            blas = extSoftVersion()[["BLAS"]], tasks = list())
for (task in tasks) {
  res <- list()
  for (sparse in c(FALSE, TRUE)) {
    label <- if (sparse) "sparse" else "dense"
    if (!sparse && skip_dense) next
    if (!sparse && !isTRUE(task$dense)) next
    f <- fit_task(task, sparse)
    reps <- if (sparse) task$reps_sparse else task$reps_dense
    times <- numeric(reps)
    fit <- NULL
    for (i in seq_len(reps)) times[i] <- elapsed(fit <- f())
    res[[label]] <- list(seconds = median(times), reps = reps,
                         beta = as.numeric(fit$beta), se = as.numeric(fit$se),
                         sigma2 = if (fit$withS) as.numeric(fit$sigma2) else list(),
                         tau2 = if (fit$withG) as.numeric(fit$tau2) else list(),
                         rho = if (fit$withG) as.numeric(fit$rho) else list(),
                         ll = as.numeric(logLik(fit)))
  }
  out$tasks[[task$name]] <- res
  message(task$name, " done")
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"))
