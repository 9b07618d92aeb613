#!/usr/bin/env Rscript
# Writes tests/reference/selmodel.json, the metafor fixture that tests/engine/test_reference_selmodel.py compares
# metaexercise.engine.selection_models against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_selmodel_reference.R
#
# Needs R with metafor 3.8-1, numDeriv and jsonlite. Takes a few minutes. No random numbers; numbers %.17g.
#
# Models: the examples of metafor's help(selmodel) (Citkowicz & Vevea 2017 beta model on dat.baskerville2012,
# also with the moderator 'blind'; Preston et al. 2004 half-normal, negative-exponential, logistic and power
# models on dat.hahn2001, EE fit, alternative = "less", also with prec = "sei", scaleprec = FALSE; the step
# function on dat.hackshaw1998, steps = (.025, .10, .50, 1); dat.cohen1981 with Vevea & Woods' a-priori
# weights), plus the beta model on dat.hackshaw1998, a two-sided step function on dat.bcg fitted by REML (which
# selmodel refits by ML), and a negative-exponential model with a step (steps = 0.05).
#
# Convergence. metafor maximises with optim(BFGS) and finite-difference gradients and stops at reltol
# (1e-8): its estimates are then up to ~1e-5 from the maximum, and its integrals (R's integrate, rel.tol
# eps^0.25 ~ 1.2e-4) are approximate. This script therefore
#   1. runs selmodel() with control=list(intCtrl=list(rel.tol=1e-10, subdivisions=1000)) (tighter integrals;
#      where R's integrate then stops with a roundoff error, 1e-8, else 1e-6, else metafor's default: the call
#      is recorded per model)
#      and records its results as they are ("metafor");
#   2. maximises metafor's own log-likelihood function (metafor:::.selmodel.ll.cont / .selmodel.ll.stepfun,
#      on the natural scale, integrals with rel.tol 1e-12, or the tightest of 1e-11 ... 1e-8 that integrate
#      accepts at that point) further by Newton steps with numDeriv's Richardson
#      gradient and Hessian (r = 6, as selmodel's hessianCtrl), from metafor's estimates, until the step is
#      below 1e-11 relative or no longer raises ll beyond rounding (the gradient's noise level) ("polished": ll, beta, tau2, delta, and the SEs from
#      chol2inv(chol(-Hessian)) at that point, the Hessian by numDeriv on parameters scaled by their SEs, over the parameters metafor estimates; where tau2 is estimated at its bound 0 it is held at
#      0 and left out of the Hessian). The same for the model with tau2 = 0, for the LRT of heterogeneity.
# The source block records, per model, the log-likelihood gained by step 2 and the size of its last step.

suppressPackageStartupMessages({
  library(metafor)
  library(numDeriv)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("This fixture was made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_selmodel_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "null"
  txt[is.infinite(x) & x > 0] <- "Infinity"
  txt[is.infinite(x) & x < 0] <- "-Infinity"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}

RMA_CTRL <- list(threshold = 1e-12, maxiter = 10000)
INT_TIGHT <- list(lower = -Inf, upper = Inf, subdivisions = 1000L, rel.tol = 1e-12)
INT_TOLS <- c(1e-12, 1e-11, 1e-10, 1e-9, 1e-8)
SEL_TOLS <- c(1e-10, 1e-8, 1e-6, NA)  # NA: metafor's default (rel.tol eps^0.25, 100 subdivisions)

hahn <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.hahn2001, drop00 = TRUE)
hahn <- hahn[!is.na(hahn$yi), ]
coh <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.cohen1981)
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bask <- dat.baskerville2012
DATA <- list(
  hackshaw1998 = list(origin = "dat.hackshaw1998; yi, vi as shipped (log odds ratios)",
                      yi = dat.hackshaw1998$yi, vi = dat.hackshaw1998$vi, mods = NULL),
  baskerville2012 = list(origin = "dat.baskerville2012; yi = smd, vi = se^2", yi = bask$smd, vi = bask$se^2,
                         mods = NULL),
  baskerville2012_blind = list(origin = "dat.baskerville2012; yi = smd, vi = se^2; mods = ~ blind",
                               yi = bask$smd, vi = bask$se^2, mods = cbind(blind = bask$blind)),
  hahn2001 = list(origin = "dat.hahn2001; escalc(\"OR\", ai, n1i, ci, n2i, drop00=TRUE), studies with NA dropped",
                  yi = hahn$yi, vi = hahn$vi, mods = NULL),
  cohen1981 = list(origin = "dat.cohen1981; escalc(\"ZCOR\", ri, ni)", yi = coh$yi, vi = coh$vi, mods = NULL),
  bcg = list(origin = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)", yi = bcg$yi, vi = bcg$vi,
             mods = NULL)
)
VW_STEPS <- c(0.005, 0.01, 0.05, 0.10, 0.25, 0.35, 0.50, 0.65, 0.75, 0.90, 0.95, 0.99, 0.995, 1)
VW_DELTA <- c(1, 0.99, 0.95, 0.80, 0.75, 0.65, 0.60, 0.55, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50)

MODELS <- list(
  list(name = "hackshaw1998_stepfun", data = "hackshaw1998", method = "ML",
       args = list(type = "stepfun", alternative = "greater", steps = c(.025, .10, .50, 1))),
  list(name = "hackshaw1998_beta", data = "hackshaw1998", method = "ML", args = list(type = "beta")),
  list(name = "baskerville2012_beta", data = "baskerville2012", method = "ML", args = list(type = "beta")),
  list(name = "baskerville2012_blind_beta", data = "baskerville2012_blind", method = "ML", args = list(type = "beta")),
  list(name = "hahn2001_halfnorm", data = "hahn2001", method = "EE", args = list(type = "halfnorm", alternative = "less")),
  list(name = "hahn2001_negexp", data = "hahn2001", method = "EE", args = list(type = "negexp", alternative = "less")),
  list(name = "hahn2001_logistic", data = "hahn2001", method = "EE", args = list(type = "logistic", alternative = "less")),
  list(name = "hahn2001_power", data = "hahn2001", method = "EE", args = list(type = "power", alternative = "less")),
  list(name = "hahn2001_halfnorm_prec", data = "hahn2001", method = "EE",
       args = list(type = "halfnorm", alternative = "less", prec = "sei", scaleprec = FALSE)),
  list(name = "hahn2001_power_prec", data = "hahn2001", method = "EE",
       args = list(type = "power", alternative = "less", prec = "sei", scaleprec = FALSE)),
  list(name = "cohen1981_stepfun_fixed", data = "cohen1981", method = "ML",
       args = list(type = "stepfun", steps = VW_STEPS, delta = VW_DELTA)),
  list(name = "bcg_REML_stepfun_two_sided", data = "bcg", method = "REML",
       args = list(type = "stepfun", alternative = "two.sided", steps = c(0.05, 1))),
  list(name = "hackshaw1998_negexp_step", data = "hackshaw1998", method = "ML",
       args = list(type = "negexp", alternative = "greater", steps = 0.05))
)

# metafor's log-likelihood at natural-scale parameters (beta, tau2, delta), as selmodel evaluates it
make_ll <- function(sel, preci, tau2_val) {
  fun <- if (sel$type == "stepfun") metafor:::.selmodel.ll.stepfun else metafor:::.selmodel.ll.cont
  delta_val <- ifelse(sel$delta.fix, sel$delta, NA)
  ll_at <- make_ll_at(sel, preci, tau2_val, fun, delta_val)
  function(beta, tau2, delta) {
    # R's integrate stops with "roundoff error" when asked for more than the integrand allows: use the tightest
    # tolerance that works at this point
    for (rt in INT_TOLS) {
      val <- try(ll_at(beta, tau2, delta, modifyList(INT_TIGHT, list(rel.tol = rt))), silent = TRUE)
      if (!inherits(val, "try-error")) return(val)
    }
    stop("integration failed")
  }
}

make_ll_at <- function(sel, preci, tau2_val, fun, delta_val) {
  function(beta, tau2, delta, intCtrl) {
    fun(par = c(beta, tau2, delta), yi = c(sel$yi), vi = sel$vi, X = sel$X, preci = preci, k = sel$k, pX = sel$p,
        pvals = sel$pvals, deltas = sel$deltas, delta.val = delta_val, delta.transf = FALSE,
        mapfun = rep(NA, sel$deltas), delta.min = sel$delta.min, delta.max = sel$delta.max,
        tau2.val = tau2_val, tau2.transf = FALSE, tau2.max = Inf, beta.val = rep(NA, sel$p),
        wi.fun = sel$wi.fun, steps = sel$steps, pgrp = sel$pgrp, alternative = sel$alternative,
        pval.min = sel$pval.min, intCtrl = intCtrl, verbose = FALSE, digits = sel$digits, dofit = TRUE)$ll
  }
}

# Newton steps on the free parameters (numDeriv, r = 6) from (beta, tau2, delta)
polish <- function(sel, preci, beta, tau2, delta, tau2_fixed) {
  p <- sel$p
  free_d <- !sel$delta.fix
  est_tau2 <- !tau2_fixed
  ll <- make_ll(sel, preci, if (tau2_fixed) tau2 else NA)
  unpack <- function(x) {
    b <- x[seq_len(p)]
    t2 <- if (est_tau2) x[p + 1] else tau2
    d <- delta
    d[free_d] <- x[(p + est_tau2 + 1):length(x)]
    list(b = b, t2 = t2, d = d)
  }
  f <- function(x) { u <- unpack(x); ll(u$b, u$t2, u$d) }
  x <- c(beta, if (est_tau2) tau2, delta[free_d])
  f0 <- f(x)
  last <- NA
  for (it in 1:40) {
    g <- numDeriv::grad(f, x, method.args = list(r = 6))
    H <- numDeriv::hessian(f, x, method.args = list(r = 6))
    # far from the maximum (metafor's fit with tau2 = 0 can stop there) -H need not be positive definite:
    # shift its spectrum (Levenberg-Marquardt) so that the step goes uphill
    N <- -H
    ev <- min(eigen(N, symmetric = TRUE, only.values = TRUE)$values)
    if (ev <= 0) N <- N + (abs(ev) + 1e-3 * max(abs(diag(N)))) * diag(length(x))
    step <- solve(N, g)
    lam <- 1
    repeat {
      xn <- x + lam * step
      if (f(xn) >= f(x) - 1e-14 * abs(f(x)) || lam < 1e-10) break
      lam <- lam / 2
    }
    last <- max(abs(xn - x) / pmax(abs(x), 1e-4))
    gain <- f(xn) - f(x)
    x <- xn
    # done when the step is below 1e-11 relative, or (after the first steps) no longer raises ll beyond
    # rounding: then the steps are the gradient's numerical noise
    if (last < 1e-11 || (it >= 3 && gain < 1e-13 * max(1, abs(f(x))))) break
  }
  # numDeriv's steps are 10% of |x| (then halved r = 6 times): for a parameter near 0 (hackshaw's beta, 0.002)
  # they are tiny against the likelihood's curvature and rounding noise enters the Hessian (~1e-6 relative).
  # So the final Hessian is taken on a shifted, scaled parameter u = 1 + (x - xhat)/s, s = the SEs from a first
  # Hessian: numDeriv's steps are then 10% of each SE.
  H0 <- numDeriv::hessian(f, x, method.args = list(r = 6))
  sc <- sqrt(diag(chol2inv(chol(-H0))))
  xhat <- x
  fu <- function(u) f(xhat + (u - 1) * sc)
  H <- numDeriv::hessian(fu, rep(1, length(x)), method.args = list(r = 6)) / outer(sc, sc)
  cov <- chol2inv(chol(-H))
  u <- unpack(x)
  se_all <- sqrt(diag(cov))
  se_beta <- se_all[seq_len(p)]
  se_tau2 <- if (est_tau2) se_all[p + 1] else NA
  se_delta <- rep(NA, length(delta))
  se_delta[free_d] <- se_all[(p + est_tau2 + 1):length(x)]
  list(ll = f(x), beta = u$b, tau2 = u$t2, delta = u$d, se = se_beta, se_tau2 = se_tau2, se_delta = se_delta,
       gained = f(x) - f0, last_step = last)
}

models <- list()
checks <- character(0)
for (m in MODELS) {
  cat(m$name, "... ")
  d <- DATA[[m$data]]
  fit_as <- function(method) if (is.null(d$mods)) rma(d$yi, d$vi, method = method, control = RMA_CTRL) else
    rma(d$yi, d$vi, mods = d$mods, method = method, control = RMA_CTRL)
  fit <- fit_as(m$method)
  t0 <- proc.time()[["elapsed"]]
  # the tightest integration tolerance with which selmodel's optimisation runs through
  sel <- NULL
  for (rt in SEL_TOLS) {
    ctrl <- if (is.na(rt)) list() else list(intCtrl = list(rel.tol = rt, subdivisions = 1000L))
    sel <- try(suppressWarnings(do.call(selmodel, c(list(fit), m$args, list(control = ctrl)))), silent = TRUE)
    if (!inherits(sel, "try-error")) break
  }
  if (inherits(sel, "try-error")) stop(m$name, ": selmodel failed at every tolerance")
  secs <- proc.time()[["elapsed"]] - t0
  preci <- if (!is.null(m$args$prec)) sqrt(d$vi) else rep(1, length(d$yi))
  if (!is.null(m$args$prec) && !isFALSE(m$args$scaleprec)) preci <- preci / max(preci)
  ee <- m$method == "EE"
  # tau2 at its bound 0 (metafor's exp(par) only approaches it): tiny against the sampling variances, and the
  # likelihood falls as tau2 leaves 0 (one-sided difference at metafor's other estimates)
  boundary <- FALSE
  if (!ee && sel$tau2 < 1e-2 * min(d$vi)) {
    ll_free <- make_ll(sel, preci, NA)
    boundary <- ll_free(c(sel$beta), 1e-6 * min(d$vi), sel$delta) <= ll_free(c(sel$beta), 0, sel$delta)
  }
  pol <- polish(sel, preci, c(sel$beta), if (ee || boundary) 0 else sel$tau2, sel$delta, ee || boundary)
  ll0 <- c(logLik(if (ee) fit else fit_as("ML"), REML = FALSE))
  LRT_pol <- max(0, -2 * (ll0 - pol$ll))
  het <- NULL
  if (!ee) {
    # the selection model with tau2 = 0, from metafor's fit with tau2 = 0 (selmodel's own heterogeneity refit)
    sel0 <- suppressWarnings(do.call(selmodel, c(list(fit), m$args, list(control = ctrl, tau2 = 0))))
    pol0 <- polish(sel0, preci, c(sel0$beta), 0, sel0$delta, TRUE)
    het <- list(ll = num(pol0$ll), LRT = num(max(0, -2 * (pol0$ll - pol$ll))),
                LRTp = num(pchisq(max(0, -2 * (pol0$ll - pol$ll)), df = 1, lower.tail = FALSE)))
  }
  checks <- c(checks, sprintf("%s: ll gained by polishing %.3g, last step %.2g", m$name, pol$gained, pol$last_step))
  models[[m$name]] <- list(
    data = m$data, method = m$method,
    args = lapply(m$args, function(a) if (is.numeric(a)) num(a) else a),
    call = paste0("selmodel(rma(yi, vi", if (!is.null(d$mods)) ", mods=~blind", ", method='", m$method,
                  "'), ", paste(names(m$args), sapply(m$args, function(a) paste(deparse(a), collapse = "")),
                               sep = "=", collapse = ", "), ", control=", paste(deparse(ctrl), collapse = ""), ")"),
    tau2_boundary = boundary,
    metafor = list(ll = num(sel$ll), beta = num(sel$beta), se = num(sel$se), zval = num(sel$zval),
                   pval = num(sel$pval), ci_lb = num(sel$ci.lb), ci_ub = num(sel$ci.ub), tau2 = num(sel$tau2),
                   se_tau2 = num(sel$se.tau2), delta = num(sel$delta), se_delta = num(sel$se.delta),
                   zval_delta = num(sel$zval.delta), pval_delta = num(sel$pval.delta),
                   ci_lb_delta = num(sel$ci.lb.delta), ci_ub_delta = num(sel$ci.ub.delta),
                   LRT = num(sel$LRT), LRTdf = num(sel$LRTdf), LRTp = num(sel$LRTp), LRT_tau2 = num(sel$LRT.tau2),
                   LRTp_tau2 = num(sel$LRTp.tau2), ll0 = num(sel$ll0), QM = num(sel$QM), QMp = num(sel$QMp),
                   parms = num(sel$parms), pvals = num(sel$pvals),
                   ptable_k = if (is.data.frame(sel$ptable)) num(sel$ptable$k) else NULL,
                   fit_stats = num(sel$fit.stats$ML),
                   printout = paste(capture.output(print(sel)), collapse = "\n")),
    polished = list(ll = num(pol$ll), beta = num(pol$beta), tau2 = num(pol$tau2), delta = num(pol$delta),
                    se = num(pol$se), se_tau2 = num(pol$se_tau2), se_delta = num(pol$se_delta),
                    ll0 = num(ll0), LRT = num(LRT_pol), last_step = num(pol$last_step), gained = num(pol$gained)),
    heterogeneity = het
  )
  cat("metafor ", round(secs, 1), " s; ", tail(checks, 1), "\n", sep = "")
}

out <- list(
  source = list(
    generator = "tests/reference/make_selmodel_reference.R",
    R_version = R.version.string,
    metafor_version = as.character(packageVersion("metafor")),
    numDeriv_version = as.character(packageVersion("numDeriv")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    control = paste("rma(..., control=list(threshold=1e-12, maxiter=10000)); selmodel(..., control=list(intCtrl=",
                    "list(rel.tol=1e-10 (or 1e-8, 1e-6), subdivisions=1000))); polished: Newton steps with numDeriv",
                    "(r = 6) on metafor's log-likelihood with integrate(rel.tol = 1e-12 or the tightest that works)",
                    "until the step is < 1e-11 relative"),
    checks = checks,
    generated_on = "see git log of this file"
  ),
  datasets = lapply(DATA, function(d) list(origin = d$origin, yi = num(d$yi), vi = num(d$vi),
                                           mods = if (is.null(d$mods)) NULL else num(d$mods[, 1]))),
  models = models
)
txt <- toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null", pretty = TRUE)
path <- file.path(OUTDIR, "selmodel.json")
tmp <- paste0(path, ".tmp")
writeLines(txt, tmp)
invisible(file.rename(tmp, path))
cat("wrote", path, "\n")
