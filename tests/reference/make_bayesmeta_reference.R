#!/usr/bin/env Rscript
# Writes tests/reference/bayesmeta.json, the reference that tests/engine/test_bayes_reference.py compares
# metaexercise.engine.bayes.bayesmeta against: R's bayesmeta 3.4 (Roever 2020, J Stat Softw 93(6),
# doi:10.18637/jss.v093.i06) on its documented examples and on more priors.
#
# Usage, from the repository root (one command, no arguments; 10 to 30 minutes):
#     Rscript tests/reference/make_bayesmeta_reference.R
#
# Needs R with bayesmeta 3.4 (which needs forestplot, metafor, mvtnorm, numDeriv), metafor 3.8-1 and jsonlite.
# Nothing is random, so a re-run reproduces the file (but for the date).
#
# Two kinds of numbers per analysis:
#  * `bayesmeta`: the object's own $summary, $ML, $MAP, $marginal.likelihood, $bayesfactor and a few
#    function values, computed with a fine discretisation (delta = 1e-4, epsilon = 1e-9 instead of the
#    defaults 0.01 and 1e-4; the grid error of the mu/theta numbers is then a few 1e-5) and bayesmeta's
#    integration tolerance (rel.tol.integrate = 2^16 * .Machine$double.eps). bayesmeta locates modes and
#    shortest intervals with optimize() at its default tolerance (.Machine$double.eps^0.25, ~1e-4) and the
#    joint ML/MAP with Nelder-Mead, so those entries are accurate to about 1e-4 only.
#  * `refined`: the same quantities recomputed here to full accuracy from bayesmeta's exact pieces: its
#    marginal posterior density of tau ($dposterior(tau=)) and its conditional moments of mu | tau
#    ($cond.moment()), with the mixtures over tau done by integrate() (rel.tol 1e-12) instead of the
#    discrete grid; quantiles by uniroot (tol 1e-14), modes and shortest intervals by optimize (tol 1e-12);
#    the joint ML estimate by metafor's rma(method = "ML") at threshold 1e-12; the joint MAP estimate by
#    maximising the profile log posterior over tau (mu at its conditional mean) with optimize (tol 1e-12).

suppressPackageStartupMessages({
  library(bayesmeta)
  library(metafor)
  library(jsonlite)
})

script_path <- function() {
  arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(arg) == 0L) return(file.path(getwd(), "tests", "reference", "make_bayesmeta_reference.R"))
  normalizePath(sub("^--file=", "", arg[1L]))
}
OUTDIR <- dirname(script_path())

DELTA <- 1e-4
EPSILON <- 1e-9
RTOL <- 1e-12

num <- function(x) {
  x <- as.numeric(x)
  txt <- sprintf("%.17g", x)
  txt[is.na(x)] <- "NaN"
  txt[is.infinite(x) & x > 0] <- "Infinity"
  txt[is.infinite(x) & x < 0] <- "-Infinity"
  structure(paste0("[", paste(txt, collapse = ","), "]"), class = "json")
}
mat <- function(m) list(rownames = rownames(m), colnames = colnames(m),
                        values = lapply(seq_len(nrow(m)), function(i) num(m[i, ])))

# ---- data (bayesmeta's and metafor's data sets, effect sizes by escalc as in their documentation)
data("CrinsEtAl2014", package = "bayesmeta")
data("Rubin1981", package = "bayesmeta")
data("Peto1980", package = "bayesmeta")
crins <- escalc(measure = "OR", ai = exp.AR.events, n1i = exp.total, ci = cont.AR.events, n2i = cont.total,
                slab = publication, data = CrinsEtAl2014)
crins_rand <- crins[crins[, "randomized"] == "yes", ]
peto <- escalc(measure = "OR", ai = treat.events, n1i = treat.cases, ci = control.events, n2i = control.cases,
               slab = publication, data = Peto1980)
normand <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
                  slab = source, data = dat.normand1999)
data_sets <- list(
  crins = list(yi = as.numeric(crins$yi), vi = as.numeric(crins$vi), labels = as.character(crins$publication),
               origin = "bayesmeta::CrinsEtAl2014, escalc(measure='OR') (Roever 2020, Sec. 3.2, Table 3)"),
  crins_randomized = list(yi = as.numeric(crins_rand$yi), vi = as.numeric(crins_rand$vi),
                          labels = as.character(crins_rand$publication),
                          origin = "the two randomized studies of CrinsEtAl2014 (Roever 2020, Sec. 3.6)"),
  rubin1981 = list(yi = Rubin1981$effect, vi = Rubin1981$stderr^2, labels = Rubin1981$school,
                   origin = "bayesmeta::Rubin1981 (eight schools; Gelman et al. 1997, p. 143)"),
  peto1980 = list(yi = as.numeric(peto$yi), vi = as.numeric(peto$vi), labels = as.character(peto$publication),
                  origin = "bayesmeta::Peto1980, escalc(measure='OR') (bayesmeta's help(Peto1980))"),
  normand1999 = list(yi = as.numeric(normand$yi), vi = as.numeric(normand$vi), labels = as.character(normand$source),
                     origin = "metafor::dat.normand1999, escalc(measure='SMD')")
)

turner_surgical <- TurnerEtAlPrior("surgical", "pharma", "placebo / control")
rhodes_resource <- RhodesEtAlPrior("resource use", "non-pharma", "non-pharma")
rhodes_general <- RhodesEtAlPrior()

# ---- analyses: data set, tau prior (as bayesmeta gets it and as the Python test names it), mu prior
analyses <- list(
  list(name = "crins_hn05", data = "crins", prior = function(t) dhalfnormal(t, scale = 0.5),
       py = list(name = "halfnormal", scale = 0.5), mu = c(0, 4), note = "Roever 2020, Sec. 3.3 (ma01)"),
  list(name = "crins_hn05_central", data = "crins", prior = function(t) dhalfnormal(t, scale = 0.5),
       py = list(name = "halfnormal", scale = 0.5), mu = c(0, 4), interval = "central"),
  list(name = "crins_turner_surgical", data = "crins", prior = turner_surgical$dprior,
       py = list(name = "Turner2015:surgical:pharma:placebo"), mu = c(0, 4), note = "Roever 2020, Sec. 3.4 (ma02)"),
  list(name = "crins_jeffreys", data = "crins", prior = "Jeffreys", py = list(name = "Jeffreys"),
       mu = c(NA, NA), note = "Roever 2020, Sec. 3.4 (ma03)"),
  list(name = "crins_randomized_hn05", data = "crins_randomized", prior = function(t) dhalfnormal(t, scale = 0.5),
       py = list(name = "halfnormal", scale = 0.5), mu = c(0, 4), note = "Roever 2020, Sec. 3.6 (ma05)"),
  list(name = "crins_halfcauchy05", data = "crins", prior = function(t) dhalfcauchy(t, scale = 0.5),
       py = list(name = "halfcauchy", scale = 0.5), mu = c(NA, NA)),
  list(name = "crins_halft3", data = "crins", prior = function(t) dhalft(t, df = 3, scale = 0.5),
       py = list(name = "halft", df = 3, scale = 0.5), mu = c(0, 4)),
  list(name = "crins_exponential2", data = "crins", prior = function(t) dexp(t, rate = 2),
       py = list(name = "exponential", scale = 0.5), mu = c(NA, NA)),
  list(name = "crins_lognormal", data = "crins", prior = function(t) dlnorm(t, meanlog = -1.2, sdlog = 0.8),
       py = list(name = "lognormal", meanlog = -1.2, sdlog = 0.8), mu = c(-1, 2)),
  list(name = "crins_uniform_normalmu", data = "crins", prior = "uniform", py = list(name = "uniform"),
       mu = c(0, 4)),
  list(name = "crins_dumouchel", data = "crins", prior = "DuMouchel", py = list(name = "DuMouchel"), mu = c(NA, NA)),
  list(name = "crins_shrinkage", data = "crins", prior = "shrinkage", py = list(name = "shrinkage"), mu = c(NA, NA)),
  list(name = "crins_i2", data = "crins", prior = "I2", py = list(name = "I2"), mu = c(NA, NA)),
  list(name = "crins_conventional", data = "crins", prior = "conventional", py = list(name = "conventional"),
       mu = c(NA, NA)),
  list(name = "crins_sqrt", data = "crins", prior = "sqrt", py = list(name = "sqrt"), mu = c(0, 4)),
  list(name = "crins_overalljeffreys", data = "crins", prior = "overallJeffreys",
       py = list(name = "overallJeffreys"), mu = c(NA, NA)),
  list(name = "crins_bergerdeely", data = "crins", prior = "BergerDeely", py = list(name = "BergerDeely"),
       mu = c(NA, NA)),
  list(name = "rubin1981_uniform", data = "rubin1981", prior = "uniform", py = list(name = "uniform"),
       mu = c(NA, NA), note = "bayesmeta's help(bayesmeta) example"),
  list(name = "peto1980_uniform", data = "peto1980", prior = "uniform", py = list(name = "uniform"),
       mu = c(NA, NA), note = "bayesmeta's help(Peto1980) example (peto.ma01)"),
  list(name = "peto1980_hn1", data = "peto1980", prior = function(t) dhalfnormal(t, scale = 1),
       py = list(name = "halfnormal", scale = 1), mu = c(NA, NA), note = "help(Peto1980) (peto.ma02)"),
  # bayesmeta's help(RhodesEtAlPrior) example, bayesmeta(normand, tau.prior = RhodesEtAlPrior("resource use",
  # "non-pharma", "non-pharma")$dprior), stops in bayesmeta 3.4 ("the integral is probably divergent": R's
  # integrate() near tau = 0, where the log-t density has most of its mass on a log scale), as do the other
  # Rhodes et al. priors on these data and on CrinsEtAl2014; the SMD data are analysed with a half-normal prior.
  list(name = "normand1999_hn1", data = "normand1999", prior = function(t) dhalfnormal(t, scale = 1),
       py = list(name = "halfnormal", scale = 1), mu = c(NA, NA))
)

refine <- function(ma, level = 0.95) {
  dtau <- function(t) ma$dposterior(tau = t)
  cmix <- function(t, predict) {
    m <- ma$cond.moment(tau = t, predict = predict)
    list(mean = m[, "mean"], sd = m[, "sd"])
  }
  # over s = sqrt(tau) (dtau = 2 s ds), which removes the tau^(-1/2) singularity of the "sqrt" prior at 0
  integ <- function(f) integrate(function(s) f(s^2) * 2 * s, 0, Inf, rel.tol = RTOL, abs.tol = 0,
                                 subdivisions = 2000L)$value
  mcdf <- function(x, predict = FALSE, upper = FALSE)
    integ(function(t) { m <- cmix(t, predict); dtau(t) * pnorm(x, m$mean, m$sd, lower.tail = !upper) })
  mpdf <- function(x, predict = FALSE)
    integ(function(t) { m <- cmix(t, predict); dtau(t) * dnorm(x, m$mean, m$sd) })
  mean_mu <- integ(function(t) dtau(t) * cmix(t, FALSE)$mean)
  var_of <- function(predict) integ(function(t) { m <- cmix(t, predict); dtau(t) * (m$sd^2 + (m$mean - mean_mu)^2) })
  sd_mu <- sqrt(var_of(FALSE))
  sd_th <- sqrt(var_of(TRUE))
  mq <- function(p, predict = FALSE) {
    s <- if (predict) sd_th else sd_mu
    lo <- mean_mu - 12 * s
    hi <- mean_mu + 12 * s
    if (p > 0.5) uniroot(function(x) (1 - p) - mcdf(x, predict, upper = TRUE), c(lo, hi), tol = 1e-14)$root
    else uniroot(function(x) mcdf(x, predict) - p, c(lo, hi), tol = 1e-14)$root
  }
  mshortest <- function(predict) {
    width <- function(a) mq(min(mcdf(a, predict) + level, 1), predict) - a
    a <- optimize(width, lower = mq((1 - level) / 50, predict), upper = mq(1 - level, predict), tol = 1e-12)$minimum
    c(a, a + width(a))
  }
  mmode <- function(predict)
    optimize(function(x) mpdf(x, predict), lower = mq(0.1, predict), upper = mq(0.9, predict), maximum = TRUE,
             tol = 1e-12)$maximum
  tq <- function(p) ma$qposterior(tau.p = p)
  tshortest <- function() {
    width <- function(a) tq(min(ma$pposterior(tau = a) + level, 1)) - a
    a <- optimize(width, lower = 0, upper = tq(1 - level), tol = 1e-12)$minimum
    if (width(0) <= width(a)) c(0, tq(level)) else c(a, a + width(a))
  }
  tmode <- function() {
    if (!is.finite(ma$dposterior(tau = 0))) return(0)
    o <- optimize(function(t) ma$dposterior(tau = t), lower = 0, upper = tq(0.9), maximum = TRUE, tol = 1e-12)
    if (ma$dposterior(tau = 0) >= o$objective) 0 else o$maximum
  }
  shortest <- ma$interval.type == "shortest"
  s <- matrix(NA_real_, 6, 3, dimnames = list(c("mode", "median", "mean", "sd", "95% lower", "95% upper"),
                                              c("tau", "mu", "theta")))
  s["mode", ] <- c(tmode(), mmode(FALSE), mmode(TRUE))
  s["median", ] <- c(tq(0.5), mq(0.5), mq(0.5, TRUE))
  s["mean", ] <- c(ma$summary["mean", "tau"], mean_mu, mean_mu)
  s["sd", ] <- c(ma$summary["sd", "tau"], sd_mu, sd_th)
  if (shortest) {
    s[5:6, "tau"] <- tshortest()
    s[5:6, "mu"] <- mshortest(FALSE)
    s[5:6, "theta"] <- mshortest(TRUE)
  } else {
    s[5:6, "tau"] <- tq(c(0.025, 0.975))
    s[5:6, "mu"] <- c(mq(0.025), mq(0.975))
    s[5:6, "theta"] <- c(mq(0.025, TRUE), mq(0.975, TRUE))
  }
  # ML and MAP estimates
  y <- ma$y
  v <- ma$sigma^2
  ml <- rma(y, v, method = "ML", control = list(threshold = 1e-12, maxiter = 10000))
  upper <- 10 * max(1, sqrt(ml$tau2), diff(range(y)))
  lt <- function(t) ma$likelihood(tau = t, log = TRUE)
  o <- optimize(lt, c(0, upper), maximum = TRUE, tol = 1e-12)
  tml_marg <- if (lt(0) >= o$objective) 0 else o$maximum
  lm <- function(m) log(ma$likelihood(mu = m))
  mml_marg <- optimize(lm, c(mq(0.001), mq(0.999)), maximum = TRUE, tol = 1e-12)$maximum
  prof <- function(t) ma$dposterior(tau = t, mu = ma$cond.moment(tau = t)[, "mean"], log = TRUE)
  if (is.infinite(prof(0)) && prof(0) > 0) {
    tmap <- 0
  } else {
    o <- optimize(prof, c(0, tq(0.99)), maximum = TRUE, tol = 1e-12)
    tmap <- if (is.finite(prof(0)) && prof(0) >= o$objective) 0 else o$maximum
  }
  est <- rbind(ml_joint = c(sqrt(ml$tau2), as.numeric(ml$beta)), ml_marginal = c(tml_marg, mml_marg),
               map_joint = c(tmap, ma$cond.moment(tau = tmap)[, "mean"]), map_marginal = s["mode", c("tau", "mu")])
  colnames(est) <- c("tau", "mu")
  xs <- mean_mu + c(-2, -0.5, 0, 1) * sd_th
  list(summary = mat(s), estimates = mat(est),
       probes = list(x = num(xs),
                     mu_cdf = num(sapply(xs, function(x) mcdf(x))),
                     mu_pdf = num(sapply(xs, function(x) mpdf(x))),
                     theta_cdf = num(sapply(xs, function(x) mcdf(x, TRUE))),
                     theta_pdf = num(sapply(xs, function(x) mpdf(x, TRUE))),
                     mu_upper_tail_at_0 = num(mcdf(0, upper = TRUE))))
}

results <- list()
for (a in analyses) {
  d <- data_sets[[a$data]]
  cat(a$name, "... ")
  t0 <- proc.time()[3]
  ma <- bayesmeta(y = d$yi, sigma = sqrt(d$vi), labels = d$labels, tau.prior = a$prior,
                  mu.prior.mean = a$mu[1], mu.prior.sd = a$mu[2],
                  interval.type = if (is.null(a$interval)) "shortest" else a$interval,
                  delta = DELTA, epsilon = EPSILON)
  taus <- ma$qposterior(tau.p = c(0.01, 0.5, 0.99))
  taus_at <- c(0.05, 0.2, 0.5, 1) * max(ma$summary["median", "tau"], 1e-3) / 0.2
  own <- list(summary = mat(ma$summary),
              ML = mat(ma$ML), MAP = mat(ma$MAP),
              marginal_likelihood = num(ma$marginal.likelihood),
              bayesfactor = mat(ma$bayesfactor),
              tau_prior_proper = ma$tau.prior.proper,
              tau_quantiles = list(p = num(c(0.01, 0.5, 0.99)), q = num(taus)),
              tau_at = num(taus_at),
              tau_cdf = num(ma$pposterior(tau = taus_at)),
              tau_pdf = num(ma$dposterior(tau = taus_at)),
              tau_interval_99_shortest = num(ma$post.interval(tau.level = 0.99, method = "shortest")),
              tau_interval_99_central = num(ma$post.interval(tau.level = 0.99, method = "central")),
              joint_pdf = list(tau = num(taus_at[2:3]), mu = num(ma$summary["median", "mu"] + c(0, 0.1)),
                               value = num(ma$dposterior(tau = taus_at[2:3],
                                                          mu = ma$summary["median", "mu"] + c(0, 0.1)))),
              I2_at_median = num(ma$I2(tau = ma$summary["median", "tau"])),
              support_points = nrow(ma$support))
  ref <- tryCatch(refine(ma), error = function(e) {
    cat("refine failed:", conditionMessage(e), "\n")
    list(error = conditionMessage(e))
  })
  cat(sprintf("%.0f s\n", proc.time()[3] - t0))
  results[[a$name]] <- list(data = a$data, tau_prior = a$py, mu_prior = num(a$mu),
                            interval_type = ma$interval.type, note = if (is.null(a$note)) "" else a$note,
                            bayesmeta = own, refined = ref)
}

flatten_params <- function(arr) {
  out <- list()
  dn <- dimnames(arr)
  grid <- expand.grid(lapply(dn, seq_along))
  for (i in seq_len(nrow(grid))) {
    idx <- as.integer(grid[i, ])
    out[[i]] <- c(setNames(lapply(seq_along(idx), function(j) dn[[j]][idx[j]]), names(dn)),
                  list(value = num(arr[matrix(idx, nrow = 1)])))
  }
  out
}

out <- list(
  source = list(
    script = "tests/reference/make_bayesmeta_reference.R",
    R = R.version.string,
    bayesmeta = as.character(packageVersion("bayesmeta")),
    metafor = as.character(packageVersion("metafor")),
    jsonlite = as.character(packageVersion("jsonlite")),
    generated_on = as.character(Sys.Date()),
    call = paste0("bayesmeta(y, sigma = sqrt(vi), labels, tau.prior, mu.prior.mean, mu.prior.sd, interval.type, ",
                  "delta = ", DELTA, ", epsilon = ", EPSILON, ")"),
    control = paste0("bayesmeta: delta = ", DELTA, ", epsilon = ", EPSILON, ", rel.tol.integrate = 2^16 * eps ",
                     "(default); refined: integrate(rel.tol = 1e-12), uniroot(tol = 1e-14), optimize(tol = 1e-12), ",
                     "rma(method = 'ML', control = list(threshold = 1e-12, maxiter = 10000))")
  ),
  data = lapply(data_sets, function(d) list(yi = num(d$yi), vi = num(d$vi), labels = d$labels, origin = d$origin)),
  analyses = results,
  priors = list(
    TurnerEtAlParameters = flatten_params(TurnerEtAlParameters),
    RhodesEtAlParameters = flatten_params(RhodesEtAlParameters),
    turner_surgical_pharma_placebo = list(parameters = mat(turner_surgical$parameters),
                                          qprior = num(turner_surgical$qprior(c(0.025, 0.5, 0.975))),
                                          dprior_at = num(c(0.1, 0.5, 1)),
                                          dprior = num(turner_surgical$dprior(c(0.1, 0.5, 1)))),
    rhodes_resource_nonpharma = list(parameters = mat(rhodes_resource$parameters),
                                     qprior = num(rhodes_resource$qprior(c(0.025, 0.5, 0.975))),
                                     dprior_at = num(c(0.1, 0.5, 1)),
                                     dprior = num(rhodes_resource$dprior(c(0.1, 0.5, 1)))),
    rhodes_general = list(parameters = mat(rhodes_general$parameters),
                          qprior = num(rhodes_general$qprior(c(0.025, 0.5, 0.975)))),
    turner_general = list(parameters = mat(TurnerEtAlPrior()$parameters))
  )
)
json <- toJSON(out, auto_unbox = TRUE, null = "null", json_verbatim = TRUE, pretty = FALSE, digits = NA)
writeLines(json, file.path(OUTDIR, "bayesmeta.json"))
cat("wrote", file.path(OUTDIR, "bayesmeta.json"), "\n")
