#!/usr/bin/env Rscript
# Writes tests/reference/gosh.json, the metafor fixture that tests/engine/test_reference_gosh.py compares
# metaexercise.engine.gosh_subsets against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_gosh_reference.R
#
# Needs R with metafor 3.8-1 and jsonlite. Takes about a minute (metafor's gosh refits rma.uni for each of
# the 8,191 subsets of dat.bcg under REML). No random numbers: every model is fitted to all 2^k - 1
# subsets, so a re-run reproduces the file byte for byte. Numbers are written with %.17g.
#
# Convergence: gosh.rma refits each subset with the fitted model's own control (.profile.rma.uni passes
# `control = obj$control` to rma.uni), so fitting the model with control=list(threshold=1e-12, tol=1e-12,
# maxiter=10000) makes every subset fit tight too. EE and DL fits take metafor's closed-form shortcut
# (no iteration). As a check of that, a sample of subsets is also refitted here with rma(..., subset=)
# at the same control; the script stops if any of them differs from gosh's row (recorded in the source
# block as the largest relative difference).
#
# Each model's subsets are identified by `code`: the sum of 2^(j-1) over the studies j in the subset, so
# that the tests can align rows by subset whatever the order.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("This fixture was made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_gosh_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)

# Numbers as %.17g text spliced in verbatim (jsonlite stops at 15 significant digits); NA -> null.
num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "null"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = dat.normand1999)
DATA <- list(
  bcg = list(origin = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)", yi = bcg$yi, vi = bcg$vi),
  normand1999 = list(origin = "dat.normand1999; escalc(\"SMD\", m1i, sd1i, n1i, m2i, sd2i, n2i)",
                     yi = nor$yi, vi = nor$vi)
)

# (name, data set, rma arguments)
MODELS <- list(
  list(name = "bcg_REML", data = "bcg", args = list(method = "REML")),
  list(name = "bcg_DL", data = "bcg", args = list(method = "DL")),
  list(name = "normand1999_EE", data = "normand1999", args = list(method = "EE")),
  list(name = "normand1999_ML", data = "normand1999", args = list(method = "ML")),
  list(name = "normand1999_PM", data = "normand1999", args = list(method = "PM")),
  list(name = "normand1999_REML", data = "normand1999", args = list(method = "REML")),
  list(name = "normand1999_REML_tau2_fixed", data = "normand1999", args = list(method = "REML", tau2 = 0.5)),
  # metafor's gosh takes its DL shortcut for every fit whose method is "DL", even with tau2 fixed
  list(name = "normand1999_DL_tau2_fixed", data = "normand1999", args = list(method = "DL", tau2 = 0.5)),
  # Paule-Mandel with a low tau2.max: subsets whose root lies above it fail (rma.uni stops; gosh's row is NA)
  list(name = "normand1999_PM_tau2max", data = "normand1999", args = list(method = "PM"), control = list(tau2.max = 1))
)

CHECK_SAMPLE <- 60L  # subsets per model refitted with rma(..., subset=) as a check of gosh's rows
worst_check <- 0

models <- list()
for (m in MODELS) {
  d <- DATA[[m$data]]
  ctrl <- modifyList(CTRL, if (is.null(m$control)) list() else m$control)
  fit <- do.call(rma, c(list(yi = d$yi, vi = d$vi, control = ctrl), m$args))
  t0 <- proc.time()[["elapsed"]]
  g <- gosh(fit, progbar = FALSE)
  secs <- proc.time()[["elapsed"]] - t0
  code <- as.vector(g$incl %*% 2^(seq_len(ncol(g$incl)) - 1))
  # check: rows of gosh against rma(..., subset=) refits (model "0" path of gosh: rma.uni itself)
  if (!(m$args$method %in% c("EE", "DL"))) {
    rows <- unique(round(seq(1, nrow(g$res), length.out = CHECK_SAMPLE)))
    for (r in rows) {
      sub <- which(g$incl[r, ])
      f1 <- try(suppressWarnings(do.call(rma, c(list(yi = d$yi, vi = d$vi, subset = sub, control = ctrl),
                                                 m$args))), silent = TRUE)
      ref <- if (inherits(f1, "try-error")) c(length(sub), rep(NA, 5)) else
        c(f1$k, f1$QE, f1$I2, f1$H2, f1$tau2, as.numeric(f1$beta))
      if (!identical(is.na(ref), is.na(as.numeric(g$res[r, ])))) stop(m$name, " row ", r, ": NA pattern differs")
      got <- as.numeric(g$res[r, ])
      rel <- max(c(0, abs(got - ref) / pmax(abs(ref), 1e-10)), na.rm = TRUE)
      worst_check <- max(worst_check, rel)
      if (rel > 1e-12) stop(m$name, " row ", r, ": gosh differs from rma(subset=) by ", rel)
    }
  }
  models[[m$name]] <- list(
    data = m$data,
    method = m$args$method,
    tau2_fixed = if (is.null(m$args$tau2)) NULL else num(m$args$tau2),
    control_extra = if (is.null(m$control)) NULL else lapply(m$control, num),
    call = paste0("gosh(rma(yi, vi, ", paste(names(m$args), m$args, sep = "=", collapse = ", "),
                  ", control=", paste(deparse(ctrl), collapse = ""), "), progbar=FALSE)"),
    n = num(nrow(g$res)),
    code = num(code),
    k = num(g$res$k), QE = num(g$res$QE), I2 = num(g$res$I2), H2 = num(g$res$H2), tau2 = num(g$res$tau2),
    estimate = num(g$res$estimate), fit = g$fit,
    printout = paste(capture.output(print(g)), collapse = "\n")
  )
  cat(m$name, nrow(g$res), "subsets,", round(secs, 1), "s\n")
}

out <- list(
  source = list(
    generator = "tests/reference/make_gosh_reference.R",
    R_version = R.version.string,
    metafor_version = as.character(packageVersion("metafor")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    control = "rma(..., control=list(threshold=1e-12, tol=1e-12, maxiter=10000)); gosh passes it to every subset",
    check = sprintf("gosh rows vs rma(subset=) refits (%d sampled subsets per iterative model): max rel. diff %.3g",
                    CHECK_SAMPLE, worst_check),
    generated_on = "see git log of this file"
  ),
  datasets = lapply(DATA, function(d) list(origin = d$origin, yi = num(d$yi), vi = num(d$vi))),
  models = models
)
txt <- toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "gosh.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
