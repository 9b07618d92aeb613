#!/usr/bin/env Rscript
# Writes the metafor reference fixtures that tests/engine/test_reference_*.py, test_bias.py and
# test_influence.py compare metaexercise against.
#
# Usage, from the repository root (one command, no arguments):
#     Rscript tests/reference/make_reference.R
#
# Needs R with metafor 3.8-1 and jsonlite (Debian: apt-get install r-cran-metafor r-cran-jsonlite).
# Runs from a clean session: every synthetic data set is drawn here from a fixed seed, so re-running the
# script reproduces the fixtures byte for byte. Numbers are written with sprintf("%.17g") (full double
# precision); NA becomes null, +-Inf becomes Infinity/-Infinity (Python's json module reads both).
# metafor's convergence is tightened (threshold and uniroot tol 1e-12, maxiter 10000) so that the
# fixtures hold the converged values rather than metafor's default 1e-5 approximation.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

if (packageVersion("metafor") != "3.8.1") {
  warning("These fixtures were made with metafor 3.8.1; this is ", packageVersion("metafor"), ".")
}

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

CTRL <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
CI_CTRL <- list(tol = 1e-12)
METHODS <- c("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
TESTS <- c("z", "knha")

# ---------------------------------------------------------------------------------------------------
# JSON writing with full precision: numeric leaves are pre-formatted and passed through verbatim.
# ---------------------------------------------------------------------------------------------------
fmt_num <- function(x) {
  out <- sprintf("%.17g", x)
  out[is.na(x)] <- "null"
  out[is.infinite(x) & x > 0] <- "Infinity"
  out[is.infinite(x) & x < 0] <- "-Infinity"
  out
}

# A numeric that must stay an array even when it has length 1 (per-coefficient or per-study values).
vec <- function(x) structure(as.numeric(x), class = "me_vec")

to_verbatim <- function(x) {
  if (inherits(x, "me_vec")) {
    return(structure(paste0("[", paste(fmt_num(unclass(x)), collapse = ","), "]"), class = "json"))
  }
  if (is.list(x)) return(lapply(x, to_verbatim))
  if (is.numeric(x) && !is.matrix(x)) {
    if (length(x) == 1L) return(structure(fmt_num(x), class = "json"))
    return(structure(paste0("[", paste(fmt_num(x), collapse = ","), "]"), class = "json"))
  }
  if (is.numeric(x) && is.matrix(x)) {
    rows <- apply(x, 1L, function(r) paste0("[", paste(fmt_num(r), collapse = ","), "]"))
    return(structure(paste0("[", paste(rows, collapse = ","), "]"), class = "json"))
  }
  x
}

SOURCE <- list(
  generator = "tests/reference/make_reference.R",
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  control = "control=list(threshold=1e-12, tol=1e-12, maxiter=10000); confint(..., control=list(tol=1e-12))",
  generated_on = "see git log of this file"
)

write_fixture <- function(name, call, body) {
  obj <- c(list(source = c(SOURCE, list(call = call))), body)
  txt <- toJSON(to_verbatim(obj), auto_unbox = TRUE, json_verbatim = TRUE, null = "null", na = "null",
                pretty = TRUE)
  path <- file.path(OUTDIR, paste0(name, ".json"))
  tmp <- paste0(path, ".tmp")
  writeLines(txt, tmp)
  file.rename(tmp, path)
  cat("wrote", path, "\n")
}

safely <- function(expr) {
  tryCatch(suppressWarnings(expr), error = function(e) structure(list(msg = conditionMessage(e)),
                                                                 class = "me_error"))
}
is_err <- function(x) inherits(x, "me_error")

# ---------------------------------------------------------------------------------------------------
# Data sets: five shipped with metafor, and seeded synthetic ones.
# ---------------------------------------------------------------------------------------------------
real_sets <- function() {
  out <- list()
  bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
  out$bcg <- list(origin = "dat.bcg; escalc(\"RR\", ai=tpos, bi=tneg, ci=cpos, di=cneg)",
                  yi = vec(bcg$yi), vi = vec(bcg$vi),
                  ni = vec(with(dat.bcg, tpos + tneg + cpos + cneg)),
                  ablat = vec(dat.bcg$ablat), alloc = dat.bcg$alloc, year = vec(dat.bcg$year))
  nor <- escalc("SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
                data = dat.normand1999)
  out$normand1999 <- list(origin = "dat.normand1999; escalc(\"SMD\", m1i, sd1i, n1i, m2i, sd2i, n2i)",
                          yi = vec(nor$yi), vi = vec(nor$vi),
                          ni = vec(dat.normand1999$n1i + dat.normand1999$n2i))
  hs <- dat.hackshaw1998
  out$hackshaw1998 <- list(origin = "dat.hackshaw1998; yi, vi as shipped (log odds ratios)",
                           yi = vec(hs$yi), vi = vec(hs$vi), year = vec(hs$year))
  mol <- escalc("ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
  out$molloy2014 <- list(origin = "dat.molloy2014; escalc(\"ZCOR\", ri, ni)",
                         yi = vec(mol$yi), vi = vec(mol$vi), ni = vec(dat.molloy2014$ni),
                         meanage = vec(dat.molloy2014$meanage))
  rb <- dat.raudenbush1985
  out$raudenbush1985 <- list(origin = "dat.raudenbush1985; yi, vi as shipped (standardized mean differences)",
                             yi = vec(rb$yi), vi = vec(rb$vi), ni = vec(rb$n1i + rb$n2i),
                             weeks = vec(rb$weeks))
  out
}

# Synthetic replica sets: labelled as such in the fixture ("synthetic": true). Three families:
#   gen: generic yi with vi = 10^U(lo, hi), spanning up to five orders of magnitude;
#   smd: two-arm trials with n per arm 10^U(log10 4, log10 2000), SMD by escalc (so ni is known);
#   tie: like gen but yi rounded to one decimal and vi to one significant digit (ties, so ranktest uses its
#        normal approximation, and trimfill meets tied ranks).
synthetic_sets <- function() {
  set.seed(20211216)
  ks <- c(2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 80, 120)
  tau2s <- c(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1)
  ranges <- list(c(-3, 0), c(-4, 1), c(-2, -1), c(-1, 0.5))
  out <- list()
  i <- 0
  for (family in c("gen", "smd", "tie")) {
    for (k in ks) {
      i <- i + 1
      tau2 <- tau2s[(i - 1) %% length(tau2s) + 1]
      mu <- round(runif(1, -1, 1), 2)
      if (family == "smd") {
        n1 <- round(10^runif(k, log10(4), log10(2000)))
        n2 <- pmax(3, round(n1 * runif(k, 0.7, 1.3)))
        theta <- rnorm(k, mu, sqrt(tau2))
        sd1 <- runif(k, 0.8, 3)
        sd2 <- sd1 * runif(k, 0.8, 1.25)
        m2 <- rnorm(k, 5, 1)
        m1 <- m2 + theta * sqrt((sd1^2 + sd2^2) / 2) + rnorm(k, 0, sd1 * sqrt(1 / n1 + 1 / n2))
        es <- escalc("SMD", m1i = m1, sd1i = sd1, n1i = n1, m2i = m2, sd2i = sd2, n2i = n2)
        yi <- as.numeric(es$yi)
        vi <- as.numeric(es$vi)
        extra <- list(ni = vec(n1 + n2))
      } else {
        r <- ranges[[(i - 1) %% length(ranges) + 1]]
        vi <- 10^runif(k, r[1], r[2])
        yi <- rnorm(k, mu, sqrt(vi + tau2))
        if (family == "tie") {
          yi <- round(yi, 1)
          vi <- signif(vi, 1)
        }
        extra <- list()
      }
      x <- round(runif(k, 0, 10), 1)
      g <- rep_len(c("a", "b", "c"), k)[sample.int(k)]
      name <- sprintf("syn%02d_%s_k%d", i, family, k)
      out[[name]] <- c(list(origin = paste0("synthetic replica - not the trials' data; family ", family,
                                            ", true tau2 ", tau2, ", true mu ", mu),
                            synthetic = TRUE, true_tau2 = tau2, true_mu = mu,
                            yi = vec(yi), vi = vec(vi), x = vec(x), group = g), extra)
    }
  }
  out
}

DATA <- c(real_sets(), synthetic_sets())

# ---------------------------------------------------------------------------------------------------
# Extractors
# ---------------------------------------------------------------------------------------------------
fit_values <- function(fit) {
  pr <- predict(fit)
  out <- list(k = fit$k, p = fit$p,
              beta = vec(fit$beta), se = vec(fit$se), zval = vec(fit$zval), pval = vec(fit$pval),
              ci_lb = vec(fit$ci.lb), ci_ub = vec(fit$ci.ub), vb = unclass(fit$vb),
              tau2 = fit$tau2, se_tau2 = fit$se.tau2, I2 = fit$I2, H2 = fit$H2,
              QE = fit$QE, QEp = fit$QEp, QM = fit$QM, QMp = fit$QMp,
              ddf = if (is.na(fit$ddf[1])) NULL else fit$ddf[1], s2w = fit$s2w,
              weights = vec(weights(fit)),
              ll_ML = unname(fit$fit.stats["ll", "ML"]), ll_REML = unname(fit$fit.stats["ll", "REML"]))
  if (fit$int.only) {
    out$pred <- pr$pred
    out$pi_lb <- pr$pi.lb
    out$pi_ub <- pr$pi.ub
    if (!is.element(fit$method, "EE")) {
      prr <- predict(fit, pi.type = "riley")
      out$pi_lb_riley <- prr$pi.lb
      out$pi_ub_riley <- prr$pi.ub
    }
  } else {
    out$R2 <- if (is.null(fit$R2)) NULL else fit$R2
  }
  out
}

confint_values <- function(fit) {
  ci <- safely(confint(fit, control = CI_CTRL))
  if (is_err(ci)) return(list(error = ci$msg))
  r <- ci$random
  list(tau2 = vec(r["tau^2", ]), tau = vec(r["tau", ]), I2 = vec(r["I^2(%)", ]), H2 = vec(r["H^2", ]))
}

fit_one <- function(d, method, test, mods = NULL) {
  args <- list(yi = as.numeric(d$yi), vi = as.numeric(d$vi), method = method, test = test, control = CTRL)
  if (!is.null(mods)) args$mods <- mods
  f <- safely(do.call(rma, args))
  if (is_err(f)) return(list(error = f$msg))
  out <- fit_values(f)
  if (is.null(mods) && method != "EE" && test == "z") out$confint <- confint_values(f)
  out
}

# ---------------------------------------------------------------------------------------------------
# 1. rma: every data set x method x test
# ---------------------------------------------------------------------------------------------------
rma_body <- list(methods = METHODS, tests = TESTS, datasets = list())
for (nm in names(DATA)) {
  d <- DATA[[nm]]
  fits <- list()
  for (m in METHODS) for (t in TESTS) fits[[paste0(m, "/", t)]] <- fit_one(d, m, t)
  rma_body$datasets[[nm]] <- list(origin = d$origin, synthetic = isTRUE(d$synthetic),
                                  yi = d$yi, vi = d$vi, fits = fits)
}
write_fixture("rma", "rma(yi, vi, method=<method>, test=<test>, control=CTRL); predict(fit); predict(fit, pi.type=\"riley\"); confint(fit, control=list(tol=1e-12)) (z fits, method != EE)", rma_body)

# ---------------------------------------------------------------------------------------------------
# 2. meta-regression: continuous and categorical moderators (X stored without the intercept column)
# ---------------------------------------------------------------------------------------------------
metareg_specs <- list(
  list(name = "bcg~ablat", set = "bcg", formula = ~ablat),
  list(name = "bcg~alloc", set = "bcg", formula = ~factor(alloc)),
  list(name = "bcg~ablat+year", set = "bcg", formula = ~ablat + year),
  list(name = "raudenbush1985~weeks", set = "raudenbush1985", formula = ~weeks),
  list(name = "molloy2014~meanage", set = "molloy2014", formula = ~meanage),
  list(name = "hackshaw1998~year", set = "hackshaw1998", formula = ~year),
  list(name = "syn10_gen_k50~x", set = "syn10_gen_k50", formula = ~x),
  list(name = "syn12_gen_k120~group", set = "syn12_gen_k120", formula = ~factor(group)),
  list(name = "syn21_smd_k30~x", set = "syn21_smd_k30", formula = ~x),
  list(name = "syn18_smd_k10~group", set = "syn18_smd_k10", formula = ~factor(group))
)
stopifnot(all(vapply(metareg_specs, function(s) s$set %in% names(DATA), logical(1))))
metareg_body <- list(methods = METHODS, tests = TESTS, models = list())
for (s in metareg_specs) {
  d <- DATA[[s$set]]
  cols <- setdiff(names(d), c("origin", "synthetic", "true_tau2", "true_mu"))
  df <- as.data.frame(lapply(d[cols], function(v) if (inherits(v, "me_vec")) unclass(v) else v))
  X <- model.matrix(s$formula, data = df)
  mods <- X[, -1, drop = FALSE]
  fits <- list()
  for (m in METHODS) for (t in TESTS) fits[[paste0(m, "/", t)]] <- fit_one(d, m, t, mods = mods)
  metareg_body$models[[s$name]] <- list(dataset = s$set, formula = paste(deparse(s$formula), collapse = ""),
                                        colnames = colnames(X), yi = d$yi, vi = d$vi, mods = unname(mods),
                                        fits = fits)
}
write_fixture("metareg", "rma(yi, vi, mods=<X without intercept column>, method=<method>, test=<test>, control=CTRL)",
              metareg_body)

# ---------------------------------------------------------------------------------------------------
# 3. escalc: SMD (Hedges' g, exact correction, vtype="LS"), SMD on change scores, MD
# ---------------------------------------------------------------------------------------------------
set.seed(4242)
arm_k <- 12
arms <- data.frame(n1i = round(10^runif(arm_k, log10(5), log10(300))), n2i = round(10^runif(arm_k, log10(5), log10(300))),
                   m1i = round(rnorm(arm_k, 4, 1.5), 2), m2i = round(rnorm(arm_k, 5, 1.5), 2),
                   sd1i = round(runif(arm_k, 0.5, 3), 2), sd2i = round(runif(arm_k, 0.5, 3), 2))
change <- data.frame(n1i = round(10^runif(arm_k, log10(8), log10(150))), n2i = round(10^runif(arm_k, log10(8), log10(150))),
                     m1i = round(rnorm(arm_k, -2.2, 1), 2), m2i = round(rnorm(arm_k, -0.8, 1), 2),
                     sd1i = round(runif(arm_k, 1, 2.5), 2), sd2i = round(runif(arm_k, 1, 2.5), 2))
escalc_case <- function(measure, d, origin) {
  es <- escalc(measure, m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = d)
  list(measure = measure, origin = origin,
       inputs = lapply(as.list(d[c("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")]), vec),
       yi = vec(es$yi), vi = vec(es$vi))
}
escalc_body <- list(cases = list(
  normand1999_SMD = escalc_case("SMD", dat.normand1999, "dat.normand1999"),
  normand1999_MD = escalc_case("MD", dat.normand1999, "dat.normand1999"),
  synthetic_arms_SMD = escalc_case("SMD", arms, "synthetic replica - not the trials' data; post-treatment means/SDs, set.seed(4242)"),
  synthetic_change_SMD = escalc_case("SMD", change,
                                     "synthetic replica - not the trials' data; change-from-baseline means/SDs given to plain escalc(\"SMD\"), as the review pooled change scores"),
  synthetic_arms_MD = escalc_case("MD", arms, "synthetic replica - not the trials' data; set.seed(4242)")
))
write_fixture("escalc", "escalc(<measure>, m1i, sd1i, n1i, m2i, sd2i, n2i)  # SMD: exact bias correction, vtype=\"LS\"",
              escalc_body)

# ---------------------------------------------------------------------------------------------------
# 4. publication bias: regtest, ranktest, trimfill, fsn
# ---------------------------------------------------------------------------------------------------
regtest_values <- function(r) {
  list(zval = r$zval, pval = r$pval, ddf = if (is.na(r$ddf[1])) NULL else r$ddf,
       est = if (is.null(r$est)) NULL else unname(r$est), ci_lb = if (is.null(r$ci.lb)) NULL else r$ci.lb,
       ci_ub = if (is.null(r$ci.ub)) NULL else r$ci.ub, method = r$method)
}
trimfill_values <- function(tf) {
  list(k0 = tf$k0, se_k0 = tf$se.k0, side = tf$side, p_k0 = tf$p.k0, k = tf$k,
       beta = tf$beta[1], se = tf$se, zval = tf$zval[1], pval = tf$pval[1], ci_lb = tf$ci.lb, ci_ub = tf$ci.ub,
       tau2 = tf$tau2, QE = tf$QE, yi = vec(tf$yi), vi = vec(tf$vi), fill = tf$fill)
}
fsn_values <- function(f) list(fsnum = f$fsnum, pval = f$pval, meanes = f$meanes, target = f$target, alpha = f$alpha)

bias_body <- list(datasets = list())
for (nm in names(DATA)) {
  d <- DATA[[nm]]
  yi <- as.numeric(d$yi)
  vi <- as.numeric(d$vi)
  k <- length(yi)
  entry <- list(yi = d$yi, vi = d$vi, ni = d$ni)
  rk <- safely(ranktest(yi, vi))
  entry$ranktest <- if (is_err(rk)) list(error = rk$msg) else
    list(tau = unname(rk$tau), pval = rk$pval, ties = any(duplicated(yi)) || any(duplicated(vi)))
  entry$fsn <- list(
    Rosenthal = fsn_values(fsn(yi, vi)),
    Orwin = fsn_values(fsn(yi, vi, type = "Orwin")),
    Orwin_target = fsn_values(fsn(yi, vi, type = "Orwin", target = 0.05)),
    Orwin_weighted = fsn_values(fsn(yi, vi, type = "Orwin", weighted = TRUE)),
    Rosenberg = fsn_values(fsn(yi, vi, type = "Rosenberg"))
  )
  if (k >= 3) {
    reg <- list()
    for (m in c("REML", "DL", "EE")) for (t in c("z", "knha")) {
      if (m == "EE" && t == "knha") next
      fit <- safely(rma(yi, vi, method = m, test = t, control = CTRL))
      if (is_err(fit)) next
      preds <- c("sei", "vi")
      if (!is.null(d$ni)) preds <- c(preds, "ni", "ninv", "sqrtni", "sqrtninv")
      for (pr in preds) for (mod in c("rma", "lm")) {
        if (mod == "lm" && !(m == "REML" && t == "z")) next
        key <- paste(m, t, mod, pr, sep = "/")
        rargs <- list(x = fit, model = mod, predictor = pr)
        if (!is.null(d$ni)) rargs$ni <- as.numeric(d$ni)
        r <- safely(do.call(regtest, rargs))
        reg[[key]] <- if (is_err(r)) list(error = r$msg) else regtest_values(r)
      }
    }
    entry$regtest <- reg
    tfs <- list()
    for (m in c("REML", "EE", "DL")) {
      fit <- safely(rma(yi, vi, method = m, control = CTRL))
      if (is_err(fit)) next
      for (est in c("L0", "R0", "Q0")) {
        tf <- safely(trimfill(fit, estimator = est, control = CTRL))
        tfs[[paste(m, est, "auto", sep = "/")]] <- if (is_err(tf)) list(error = tf$msg) else trimfill_values(tf)
      }
      for (side in c("left", "right")) {
        tf <- safely(trimfill(fit, side = side, control = CTRL))
        tfs[[paste(m, "L0", side, sep = "/")]] <- if (is_err(tf)) list(error = tf$msg) else trimfill_values(tf)
      }
    }
    entry$trimfill <- tfs
  }
  bias_body$datasets[[nm]] <- entry
}
# regtest on meta-regressions: the predictor joins the moderators; no limit estimate.
bias_body$metareg_regtest <- list()
for (nm in c("bcg~ablat", "raudenbush1985~weeks")) {
  set <- strsplit(nm, "~")[[1]]
  d <- DATA[[set[1]]]
  x <- as.numeric(d[[set[2]]])
  for (t in c("z", "knha")) {
    fit <- rma(as.numeric(d$yi), as.numeric(d$vi), mods = x, test = t, control = CTRL)
    for (mod in c("rma", "lm")) {
      bias_body$metareg_regtest[[paste(nm, t, mod, sep = "/")]] <- c(
        list(yi = d$yi, vi = d$vi, mods = vec(x)), regtest_values(regtest(fit, model = mod)))
    }
  }
}
write_fixture("bias", "regtest(rma(yi, vi, method=<m>, test=<t>, control=CTRL), model=<model>, predictor=<predictor>, ni=ni); ranktest(yi, vi); trimfill(fit, estimator=<L0|R0|Q0>, side=<auto|left|right>, control=CTRL) (control passed on to trimfill's internal rma() calls); fsn(yi, vi, type=<type>[, target=0.05 | weighted=TRUE]); metareg_regtest: regtest(rma(yi, vi, mods=x, test=<t>, control=CTRL), model=<model>)",
              bias_body)

# ---------------------------------------------------------------------------------------------------
# 5. influence diagnostics, leave-one-out and cumulative analyses
# ---------------------------------------------------------------------------------------------------
influence_values <- function(fit) {
  inf <- influence(fit)
  k <- fit$k
  crit <- qnorm(0.05 / (2 * k), lower.tail = FALSE)
  cd <- inf$inf$cook.d
  dfbs_all <- unclass(inf$dfbs)
  dfbs <- dfbs_all[setdiff(names(dfbs_all), c("slab", "digits"))]
  list(rstudent = vec(inf$inf$rstudent), dffits = vec(inf$inf$dffits), cooks_d = vec(cd),
       cov_r = vec(inf$inf$cov.r), tau2_del = vec(inf$inf$tau2.del), QE_del = vec(inf$inf$QE.del),
       hat = vec(inf$inf$hat), weight = vec(inf$inf$weight),
       dfbs = lapply(dfbs, vec), inf = inf$is.infl,
       outlier = abs(inf$inf$rstudent) >= crit,
       influential = cd > median(cd, na.rm = TRUE) + 6 * IQR(cd, na.rm = TRUE))
}
list_values <- function(l) {
  keep <- c("estimate", "se", "zval", "tval", "pval", "pvals", "ci.lb", "ci.ub", "Q", "Qp", "tau2", "I2", "H2")
  out <- list()
  for (n in intersect(keep, names(l))) {
    key <- switch(n, ci.lb = "ci_lb", ci.ub = "ci_ub", tval = "zval", pvals = "pval", n)
    out[[key]] <- vec(l[[n]])
  }
  out
}
influence_sets <- c("bcg", "normand1999", "hackshaw1998", "molloy2014", "raudenbush1985",
                    "syn05_gen_k7", "syn08_gen_k20", "syn10_gen_k50", "syn18_smd_k10", "syn21_smd_k30",
                    "syn28_tie_k5", "syn30_tie_k10")
stopifnot(all(influence_sets %in% names(DATA)))
infl_body <- list(datasets = list())
for (nm in influence_sets) {
  d <- DATA[[nm]]
  yi <- as.numeric(d$yi)
  vi <- as.numeric(d$vi)
  order_var <- rank(vi, ties.method = "first")
  entry <- list(yi = d$yi, vi = d$vi, cumul_order = vec(order_var), fits = list())
  for (m in c("REML", "DL", "EE", "PM", "ML")) for (t in c("z", "knha")) {
    if (m == "EE" && t == "knha") next
    fit <- safely(rma(yi, vi, method = m, test = t, control = CTRL))
    if (is_err(fit)) next
    entry$fits[[paste0(m, "/", t)]] <- list(
      influence = influence_values(fit),
      leave1out = list_values(leave1out(fit)),
      cumul = list_values(cumul(fit)),
      cumul_ordered = list_values(cumul(fit, order = order_var))
    )
  }
  infl_body$datasets[[nm]] <- entry
}
# Meta-regression influence (dfbs per coefficient). "bcg~study4" has a dummy for study 4 alone: deleting that
# study leaves a constant column, metafor skips the refit and reports NA for its row.
bcg <- DATA$bcg
bcg_x <- list(
  "bcg~ablat" = cbind(ablat = as.numeric(bcg$ablat)),
  "bcg~alloc" = model.matrix(~factor(bcg$alloc))[, -1, drop = FALSE],
  "bcg~study4" = cbind(study4 = as.numeric(seq_along(bcg$yi) == 4))
)
for (nm in names(bcg_x)) for (t in c("z", "knha")) {
  fit <- rma(as.numeric(bcg$yi), as.numeric(bcg$vi), mods = bcg_x[[nm]], test = t, control = CTRL)
  infl_body$metareg[[paste0(nm, "/REML/", t)]] <- list(yi = bcg$yi, vi = bcg$vi, mods = unname(bcg_x[[nm]]),
                                                         influence = influence_values(fit))
}
# Fixed tau^2 (rma(..., tau2=0.1)): the deleted-case refits keep tau^2 fixed, as metafor's do.
fit <- rma(as.numeric(bcg$yi), as.numeric(bcg$vi), tau2 = 0.1, control = CTRL)
infl_body$fixed_tau2 <- list(yi = bcg$yi, vi = bcg$vi, tau2 = 0.1, influence = influence_values(fit),
                             leave1out = list_values(leave1out(fit)), cumul = list_values(cumul(fit)))
write_fixture("influence", "influence(fit); leave1out(fit); cumul(fit); cumul(fit, order=rank(vi, ties.method=\"first\")); fit = rma(yi, vi, method=<m>, test=<t>, control=CTRL); outlier: abs(rstudent) >= qnorm(0.05/(2k), lower.tail=FALSE); influential: cook.d > median + 6*IQR (reporter.rma.uni)",
              infl_body)

# ---------------------------------------------------------------------------------------------------
# 6. printouts, for text snapshot tests
# ---------------------------------------------------------------------------------------------------
capture <- function(expr) paste(capture.output(print(expr)), collapse = "\n")
bcg_yi <- as.numeric(DATA$bcg$yi)
bcg_vi <- as.numeric(DATA$bcg$vi)
fit_bcg <- rma(bcg_yi, bcg_vi, control = CTRL)
print_body <- list(
  yi = DATA$bcg$yi, vi = DATA$bcg$vi, ablat = DATA$bcg$ablat, ni = DATA$bcg$ni,
  printouts = list(
    "bcg/REML/z" = list(call = "print(rma(yi, vi, control=CTRL))", text = capture(fit_bcg)),
    "bcg/DL/z" = list(call = "print(rma(yi, vi, method=\"DL\", control=CTRL))",
                      text = capture(rma(bcg_yi, bcg_vi, method = "DL", control = CTRL))),
    "bcg/EE/z" = list(call = "print(rma(yi, vi, method=\"EE\", control=CTRL))",
                      text = capture(rma(bcg_yi, bcg_vi, method = "EE", control = CTRL))),
    "bcg/REML/knha" = list(call = "print(rma(yi, vi, test=\"knha\", control=CTRL))",
                           text = capture(rma(bcg_yi, bcg_vi, test = "knha", control = CTRL))),
    "bcg~ablat/REML/knha" = list(call = "print(rma(yi, vi, mods=ablat, test=\"knha\", control=CTRL))",
                                 text = capture(rma(bcg_yi, bcg_vi, mods = as.numeric(DATA$bcg$ablat),
                                                    test = "knha", control = CTRL))),
    "bcg~ablat/REML/z" = list(call = "print(rma(yi, vi, mods=ablat, control=CTRL))",
                              text = capture(rma(bcg_yi, bcg_vi, mods = as.numeric(DATA$bcg$ablat),
                                                 control = CTRL))),
    "bcg/regtest" = list(call = "print(regtest(rma(yi, vi, control=CTRL)))", text = capture(regtest(fit_bcg))),
    "bcg/ranktest" = list(call = "print(ranktest(rma(yi, vi, control=CTRL)))", text = capture(ranktest(fit_bcg))),
    "bcg/trimfill" = list(call = "print(trimfill(rma(yi, vi, control=CTRL), control=CTRL))",
                          text = capture(trimfill(fit_bcg, control = CTRL))),
    "bcg/trimfill_R0" = list(call = "print(trimfill(rma(yi, vi, control=CTRL), estimator=\"R0\", control=CTRL))",
                             text = capture(trimfill(fit_bcg, estimator = "R0", control = CTRL))),
    "bcg/regtest_lm" = list(call = "print(regtest(rma(yi, vi, control=CTRL), model=\"lm\"))",
                            text = capture(regtest(fit_bcg, model = "lm"))),
    "bcg/regtest_knha_vi" = list(call = "print(regtest(rma(yi, vi, test=\"knha\", control=CTRL), predictor=\"vi\"))",
                                 text = capture(regtest(rma(bcg_yi, bcg_vi, test = "knha", control = CTRL),
                                                        predictor = "vi"))),
    "bcg/regtest_EE_ni" = list(call = "print(regtest(rma(yi, vi, method=\"EE\"), predictor=\"ni\", ni=ni))",
                               text = capture(regtest(rma(bcg_yi, bcg_vi, method = "EE", control = CTRL),
                                                      predictor = "ni", ni = as.numeric(DATA$bcg$ni)))),
    "bcg/fsn_Rosenthal" = list(call = "print(fsn(yi, vi))", text = capture(fsn(bcg_yi, bcg_vi))),
    "bcg/fsn_Orwin" = list(call = "print(fsn(yi, vi, type=\"Orwin\"))", text = capture(fsn(bcg_yi, bcg_vi, type = "Orwin"))),
    "bcg/fsn_Rosenberg" = list(call = "print(fsn(yi, vi, type=\"Rosenberg\"))",
                               text = capture(fsn(bcg_yi, bcg_vi, type = "Rosenberg")))
  )
)
write_fixture("printout", "capture.output(print(<object>)) with options(width=80) defaults", print_body)
