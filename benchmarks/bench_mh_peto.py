"""Mantel–Haenszel and Peto: metaexercise's `rma_mh`/`rma_peto` beside metafor's `rma.mh`/`rma.peto`, in one run.

    python benchmarks/bench_mh_peto.py            # writes benchmarks/mh_peto_results.md

Data: dat.bcg (13 trials; OR, RR, RD, Peto) and dat.nielweise2008 (9 trials; IRR, IRD), read from the fixture
tests/reference/mh.json (exported there from R's metadat), and synthetic sets drawn from a fixed seed (k = 100
and k = 10,000 2×2 tables, n per arm 20–200, risks 10 % and 15 %; k = 10,000 person-time pairs): synthetic, not
any trials' data. Each task is timed in batches of repeated calls (metafor inside R, by
benchmarks/mh_peto_bench.R called through Rscript; metaexercise here), wall clock; the median per-call time
is reported, and the ratio metafor / metaexercise. Both tools' beta, se and QE are compared, so the table also
shows they computed the same fit. This is not a test: nothing here asserts a time.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "tests" / "reference" / "mh.json"
SEED = 20240613


def _datasets() -> dict[str, dict[str, np.ndarray]]:
    fx = json.loads(FIXTURE.read_text())
    bcg = {k: np.asarray(v, float) for k, v in fx["counts"]["bcg"]["inputs"].items()}
    niel = {k: np.asarray(v, float) for k, v in fx["rates"]["nielweise2008"]["inputs"].items()}
    rng = np.random.default_rng(SEED)
    out = {"bcg": bcg, "nielweise2008": niel}
    for k in (100, 10_000):
        n1, n2 = rng.integers(20, 201, k), rng.integers(20, 201, k)
        a, c = rng.binomial(n1, 0.10), rng.binomial(n2, 0.15)
        out[f"syn_tables_k{k}"] = {"ai": a.astype(float), "bi": (n1 - a).astype(float), "ci": c.astype(float),
                                   "di": (n2 - c).astype(float)}
    t1, t2 = rng.uniform(100, 3000, 10_000).round(), rng.uniform(100, 3000, 10_000).round()
    out["syn_rates_k10000"] = {"x1i": rng.poisson(t1 * 0.004).astype(float),
                               "x2i": rng.poisson(t2 * 0.006).astype(float), "t1i": t1, "t2i": t2}
    return out


#: (task, data set, function, measure, calls per batch, batches)
TASKS: tuple[tuple[str, str, str, str, int, int], ...] = (
    ("MH OR, dat.bcg (k = 13)", "bcg", "rma.mh", "OR", 200, 7),
    ("MH RR, dat.bcg (k = 13)", "bcg", "rma.mh", "RR", 200, 7),
    ("MH RD, dat.bcg (k = 13)", "bcg", "rma.mh", "RD", 200, 7),
    ("Peto, dat.bcg (k = 13)", "bcg", "rma.peto", "PETO", 200, 7),
    ("MH IRR, dat.nielweise2008 (k = 9)", "nielweise2008", "rma.mh", "IRR", 200, 7),
    ("MH IRD, dat.nielweise2008 (k = 9)", "nielweise2008", "rma.mh", "IRD", 200, 7),
    ("MH OR, synthetic k = 100", "syn_tables_k100", "rma.mh", "OR", 100, 7),
    ("Peto, synthetic k = 100", "syn_tables_k100", "rma.peto", "PETO", 100, 7),
    ("MH OR, synthetic k = 10,000", "syn_tables_k10000", "rma.mh", "OR", 5, 5),
    ("MH RR, synthetic k = 10,000", "syn_tables_k10000", "rma.mh", "RR", 5, 5),
    ("Peto, synthetic k = 10,000", "syn_tables_k10000", "rma.peto", "PETO", 5, 5),
    ("MH IRR, synthetic k = 10,000", "syn_rates_k10000", "rma.mh", "IRR", 5, 5),
)
#: metaexercise is timed with this many more calls per batch (its calls are shorter; same number of batches)
PY_FACTOR = 10


def _call(fun: str, measure: str, data: dict[str, np.ndarray]):
    from metaexercise.engine.mh import rma_mh, rma_peto

    if fun == "rma.peto":
        return lambda: rma_peto(**data)
    return lambda: rma_mh(**data, measure=measure)


def _per_call(fn, calls: int, batches: int) -> float:
    fn()
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times)


def _metafor(data: dict[str, dict[str, np.ndarray]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for name, cols in data.items():
            with open(Path(tmp) / f"{name}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(list(cols))
                w.writerows(zip(*(np.asarray(v).tolist() for v in cols.values())))
        with open(Path(tmp) / "tasks.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["name", "file", "fun", "measure", "calls", "batches"])
            for task, ds, fun, measure, calls, batches in TASKS:
                w.writerow([task, f"{ds}.csv", fun, measure, calls, batches])
        proc = subprocess.run(["Rscript", str(HERE / "mh_peto_bench.R"), tmp], capture_output=True, text=True,
                              check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def main() -> int:
    from metaexercise._version import __version__

    data = _datasets()
    load_start = os.getloadavg()[0]
    ours: dict[str, tuple[float, object]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-cell tables: "Some yi/vi values are NA.", as metafor warns
        for task, ds, fun, measure, calls, batches in TASKS:
            fn = _call(fun, measure, data[ds])
            ours[task] = (_per_call(fn, calls * PY_FACTOR, batches), fn())
    theirs = _metafor(data)
    load_end = os.getloadavg()[0]
    rows = []
    for task, *_ in TASKS:
        t_ours, fit = ours[task]
        r = theirs["tasks"][task]
        agree = max(_rel(fit.beta, r["beta"]), _rel(fit.se, r["se"]), _rel(fit.QE, r["QE"]))
        rows.append(f"| {task} | {_fmt_time(t_ours)} | {_fmt_time(r['seconds'])} | "
                    f"{r['seconds'] / t_ours:,.0f}× | {agree:.1e} |")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join([
        "# Benchmarks: Mantel–Haenszel and Peto, metaexercise beside metafor",
        "",
        f"Generated by `python benchmarks/bench_mh_peto.py` on {stamp} (one run). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average at start / "
        f"end {load_start:.1f} / {load_end:.1f} (shared machine: absolute times are noisy; both tools ran in the "
        "same run, one after the other).",
        f"Versions: metaexercise {__version__}, numpy {np.__version__}, metafor {theirs['metafor']} "
        f"({theirs['R']}).",
        "",
        "Median wall-clock time per call over batches of repeated calls (metafor timed inside R by "
        "`benchmarks/mh_peto_bench.R`, metaexercise in Python), default arguments (`add=1/2`, `to=\"only0\"`, "
        "`drop00=TRUE`, `correct=TRUE`). dat.bcg and dat.nielweise2008 are metadat's data (via "
        "tests/reference/mh.json); the synthetic sets are drawn from a fixed seed (synthetic, not trials' data). "
        "*agreement*: the largest relative difference between the two tools' beta, se and QE.",
        "",
        "| task | metaexercise `rma_mh`/`rma_peto` | metafor `rma.mh`/`rma.peto` | metafor / ours | agreement |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])
    (HERE / "mh_peto_results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
