"""rma_batch REML throughput and non-convergence on random k = 30 meta-analyses (hardening issue).

    python benchmarks/robustness.py [--rows 100000] [--reps 9] [--threads N] [--save PREFIX]

Two generators, each with a fixed seed:
* "chisq": vi = chi^2(4) / 40, tau^2 ~ U(0, 0.5) per row, yi ~ N(0, vi + tau^2);
* "bench": benchmarks/run.py's data, vi ~ U(0.005, 0.2), yi ~ N(-0.3, vi + 0.05).
For each, `rma_batch(yi, vi, method)` with the default control (the safeguard of kernels.safeguard on) and
with BatchControl(safeguard=False) (metafor's Fisher scoring, as rma_batch ran before the safeguard): the
number of rows (REML and ML) that did not converge or took more than 200 steps, the mean number of steps,
and for REML the throughput: fits per second of wall time and per CPU-second (all threads), medians over
--reps calls that alternate between the two settings, after a warm-up call that also loads or compiles the
kernels. On a shared machine the CPU-time figure is the steadier one. --save writes per-row tau^2,
converged and iterations to PREFIX_<generator>_<method>.npz, to compare two versions of the code.
This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def chisq(n: int, k: int, seed: int = 20240601) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vi = rng.chisquare(4, (n, k)) / 40
    tau2 = rng.uniform(0, 0.5, (n, 1))
    return rng.normal(0.0, np.sqrt(vi + tau2)), vi


def bench(n: int, k: int, seed: int = 20211216) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.005, 0.2, (n, k))
    return rng.normal(-0.3, np.sqrt(vi + 0.05)), vi


GENERATORS = {"chisq": chisq, "bench": bench}


def _timed(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save", default=None)
    args = ap.parse_args(argv)
    from metaexercise.engine.batch import BatchControl, rma_batch, set_threads

    if args.threads:
        set_threads(args.threads)
    settings = {"safeguard": BatchControl(), "metafor's Fisher scoring": BatchControl(safeguard=False)}
    print(f"{args.rows:,} rows x k = 30; load average at start: {os.getloadavg()[0]:.2f}")
    for name, gen in GENERATORS.items():
        yi, vi = gen(args.rows, 30)
        for method in ("REML", "ML"):
            results = {label: rma_batch(yi, vi, method, control=c) for label, c in settings.items()}  # warm-up
            times: dict[str, list[tuple[float, float]]] = {label: [] for label in settings}
            for _ in range(args.reps if method == "REML" else 0):
                for label, c in settings.items():
                    times[label].append(_timed(lambda c=c, y=yi, v=vi, m=method: rma_batch(y, v, m, control=c)))
            for label, res in results.items():
                it = res.iterations
                line = (f"{name:5s} {method:4s} {label:24s} not converged {int((~res.converged).sum()):4d} | "
                        f"> 200 steps {int((it > 200).sum()):4d} | mean steps {it.mean():5.2f} | max {it.max():4d}")
                if times[label]:
                    wall = statistics.median(t[0] for t in times[label])
                    cpu = statistics.median(t[1] for t in times[label])
                    line += f" | {args.rows / wall:11,.0f} fits/s, {args.rows / cpu:11,.0f} fits/CPU-s"
                print(line)
            if args.save:
                res = results["safeguard"]
                np.savez(f"{args.save}_{name}_{method}.npz", tau2=res.tau2, converged=res.converged,
                         iterations=res.iterations, estimate=res.estimate)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
