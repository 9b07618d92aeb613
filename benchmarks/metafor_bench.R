#!/usr/bin/env Rscript
# Times metafor on the data sets that benchmarks/run.py writes, and prints one JSON object of seconds.
# Called by benchmarks/run.py:  Rscript benchmarks/metafor_bench.R DATA_DIR [--skip-k5000]
# metafor runs with its defaults (threshold 1e-5), as users run it. Medians over repeats, except the
# 10,000-fit loop and the k = 5,000 fit, which run once (minutes under the reference BLAS).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
skip_k5000 <- "--skip-k5000" %in% args

read <- function(name) as.matrix(read.csv(file.path(dir, name), header = FALSE))
elapsed <- function(expr) { t <- proc.time()[["elapsed"]]; force(expr); proc.time()[["elapsed"]] - t }
median_time <- function(f, reps) median(vapply(seq_len(reps), function(i) elapsed(f()), numeric(1)))

single <- read("single_k30.csv")
many_y <- read("many_k30_yi.csv")
many_v <- read("many_k30_vi.csv")
loo <- read("loo_k60.csv")
perm <- read("perm_k30.csv")

out <- list(metafor = as.character(packageVersion("metafor")), R = R.version.string,
            blas = extSoftVersion()[["BLAS"]])
invisible(rma(single[, 1], single[, 2]))
out$single_k30 <- median_time(function() rma(single[, 1], single[, 2]), 50)
# a few data sets make Fisher scoring fail to converge (metafor stops with an error): try() as a user would
out$many_k30 <- elapsed(for (i in seq_len(nrow(many_y))) try(rma(many_y[i, ], many_v[i, ]), silent = TRUE))
out$many_k30_n <- nrow(many_y)
fit60 <- rma(loo[, 1], loo[, 2])
out$leave1out_k60 <- median_time(function() leave1out(fit60), 5)
fitp <- rma(perm[, 1], perm[, 2], mods = ~ perm[, 3])
set.seed(1)
out$permutest_1000 <- median_time(function() permutest(fitp, iter = 1000, progbar = FALSE), 3)
if (!skip_k5000) {
  big <- read("single_k5000.csv")
  out$single_k5000 <- elapsed(rma(big[, 1], big[, 2]))
}
cat(toJSON(out, auto_unbox = TRUE, digits = I(6)), "\n")
