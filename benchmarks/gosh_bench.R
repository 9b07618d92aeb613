#!/usr/bin/env Rscript
# Times metafor's gosh() on the data sets that benchmarks/bench_gosh.py writes, and prints one JSON object
# of seconds. Called by benchmarks/bench_gosh.py:  Rscript benchmarks/gosh_bench.R DATA_DIR
# metafor runs as users run it: rma() with its default control (threshold 1e-5), gosh(res, progbar=FALSE),
# serially (parallel="no", its default). Each gosh() runs once (REML on 65,535 subsets takes minutes);
# the DL runs, which take metafor's closed-form shortcut, are medians of 3.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
sets <- strsplit(args[2], ",")[[1]]

elapsed <- function(expr) { t <- proc.time()[["elapsed"]]; force(expr); proc.time()[["elapsed"]] - t }

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string)
invisible(gosh(rma(c(0.1, 0.2, 0.3), c(0.01, 0.02, 0.03)), progbar = FALSE))  # load pbapply etc.
for (name in sets) {
  d <- read.csv(file.path(dir, paste0(name, ".csv")), header = FALSE)
  for (method in c("REML", "DL")) {
    res <- rma(d[, 1], d[, 2], method = method)
    reps <- if (method == "DL") 3L else 1L
    times <- vapply(seq_len(reps), function(i) elapsed(g <- gosh(res, progbar = FALSE)), numeric(1))
    g <- gosh(res, progbar = FALSE)
    out[[paste(name, method, sep = "_")]] <- list(seconds = median(times), n = nrow(g$res),
                                                  failed = sum(!g$fit), reps = reps)
  }
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
