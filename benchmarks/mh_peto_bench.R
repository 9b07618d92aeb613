#!/usr/bin/env Rscript
# Times metafor's rma.mh and rma.peto on the data sets benchmarks/bench_mh_peto.py writes, and prints one
# JSON object: per task the median seconds per call and the fit's beta, se and QE (so the driver can check
# that both tools computed the same thing).
# Called by benchmarks/bench_mh_peto.py:  Rscript benchmarks/mh_peto_bench.R DATA_DIR
# DATA_DIR/tasks.csv lists name, file, fun (rma.mh / rma.peto), measure, calls (per batch), batches.
# Timing: `batches` batches of `calls` calls each, wall clock (proc.time), median of the per-call times.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
tasks <- read.csv(file.path(dir, "tasks.csv"), stringsAsFactors = FALSE)

per_call <- function(f, calls, batches) {
  f()  # warm-up
  times <- vapply(seq_len(batches), function(b) {
    t <- proc.time()[["elapsed"]]
    for (i in seq_len(calls)) f()
    (proc.time()[["elapsed"]] - t) / calls
  }, numeric(1))
  median(times)
}

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string, tasks = list())
for (j in seq_len(nrow(tasks))) {
  tk <- tasks[j, ]
  d <- read.csv(file.path(dir, tk$file))
  f <- if (tk$fun == "rma.peto") {
    function() rma.peto(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di)
  } else if (tk$measure %in% c("IRR", "IRD")) {
    function() rma.mh(x1i = d$x1i, x2i = d$x2i, t1i = d$t1i, t2i = d$t2i, measure = tk$measure)
  } else {
    function() rma.mh(ai = d$ai, bi = d$bi, ci = d$ci, di = d$di, measure = tk$measure)
  }
  fit <- suppressWarnings(f())
  secs <- suppressWarnings(per_call(f, tk$calls, tk$batches))
  out$tasks[[tk$name]] <- list(seconds = secs, beta = unname(fit$beta[1]), se = fit$se, QE = fit$QE)
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA), "\n")
