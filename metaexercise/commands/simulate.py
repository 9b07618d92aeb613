"""`metaexercise simulate`: a simulation study of tau^2 estimators and interval methods on Dask.

    metaexercise simulate --preset review --reps 10000 --seed 1 --workers 2 --out sim.csv

Runs on a local Dask cluster of `--workers` processes (0: in this process), or on an existing cluster
with `--scheduler ADDRESS`. The same `--seed` gives the same table whatever the scheduler or worker count.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from metaexercise.atomic import write_text
from metaexercise.engine import simulate
from metaexercise.review.project import project_from_args
from metaexercise.spreadsheet_safety import csv_text


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=["review", "grid"], default="review",
                        help="'review': k=32, I2=73%%, mu=-0.28, median n 121 (the review's main contrast); "
                             "'grid': every combination of --k, --i2, --mu, --n")
    parser.add_argument("--reps", type=int, default=1000, help="replicates per scenario (default 1000)")
    parser.add_argument("--seed", type=int, default=20211216, help="random seed (default 20211216)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local Dask worker processes (default: one per core; 0 = run in this process)")
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://...)")
    parser.add_argument("--out", type=Path, default=None, help="CSV table (default: results/simulation.csv)")
    parser.add_argument("--plot", type=Path, default=None, help="also write the figure (PNG or SVG)")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 32], help="grid: numbers of studies")
    parser.add_argument("--i2", type=float, nargs="+", default=[0.0, 0.5, 0.73], help="grid: I^2 (fractions)")
    parser.add_argument("--mu", type=float, nargs="+", default=[simulate.REVIEW_MU], help="grid: true effects")
    parser.add_argument("--n", type=float, nargs="+", default=[simulate.REVIEW_N_MEDIAN],
                        help="grid: median trial sizes")
    parser.add_argument("--chunk-reps", type=int, default=500, help="replicates per task (default 500)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _scheduler(args):
    if args.scheduler:
        return args.scheduler, None
    if args.workers <= 0:
        return None, None
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def run(args) -> int:
    project = project_from_args(args)
    out = args.out or project.results / "simulation.csv"
    try:
        scenarios = (simulate.review_preset() if args.preset == "review"
                     else simulate.grid(args.k, args.i2, args.mu, args.n))
    except ValueError as exc:
        print(f"metaexercise simulate: {exc}", file=sys.stderr)
        return 2
    client, cluster = _scheduler(args)
    try:
        result = simulate.run_simulation(scenarios, args.reps, args.seed, chunk_reps=args.chunk_reps,
                                         scheduler=client, progress=not args.no_progress)
    except ValueError as exc:
        print(f"metaexercise simulate: {exc}", file=sys.stderr)
        return 2
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    write_text(out, csv_text(result.table, float_format="%.10g"))
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        from metaexercise.atomic import atomic_path
        from metaexercise.plots.simulation import plot_simulation

        fig = plot_simulation(result.table)
        with atomic_path(args.plot) as tmp:
            fig.savefig(tmp, format=args.plot.suffix.lstrip(".") or "png", dpi=120)
        print(f"wrote {args.plot}", file=sys.stderr)
    print(result.summary())
    return 0
