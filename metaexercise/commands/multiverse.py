"""`metaexercise multiverse ANALYSIS [--source extraction|replica] [--workers N]`: every combination of
defensible analytic choices for one meta-analysis (`metaexercise.review.multiverse`).

Writes, as one set (`metaexercise.atomic.replace_folder`; the folder's files of other analyses are kept),
into results/multiverse/ (results/replica/multiverse/ for the replica):

* ``ANALYSIS.csv``  one row per specification: ``data`` (the data label), the choices, k, estimate, CI, PI,
  τ², the effect in points, status, and ``is_main`` for the specification that is the analysis as declared
  (its numbers are analyses.csv's);
* ``ANALYSIS.json`` the number of specifications and the shares whose CI excludes 0, whose PI excludes 0 and
  whose effect reaches the minimal important difference;
* ``ANALYSIS.png``  the specification curve (when at least one specification could be fitted).

`--workers N` builds the data sets on a local Dask cluster of N processes (`--scheduler ADDRESS`: an existing
one); the table is the same whatever the number of workers. Exit 2, with the reason on stderr and no
traceback, for an unknown analysis id, a meta-regression, or sheets that cannot be read.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time

from metaexercise.errors import MetaexerciseError
from metaexercise.review import multiverse
from metaexercise.review.multiverse_columns import CHOICE_LABELS, curve_options
from metaexercise.review.project import project_from_args
from metaexercise.vocabulary import DataSource, codes


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("analysis", metavar="ANALYSIS",
                        help="an analysis id of analyses/*.yaml (a meta-analysis, e.g. pain_active_short)")
    parser.add_argument("--source", choices=codes(DataSource), default=DataSource.EXTRACTION.value,
                        help="extraction/ (the real sheets, default) or the synthetic replica (results in "
                             "results/replica/multiverse/)")
    parser.add_argument("--workers", type=int, default=0,
                        help="local Dask worker processes that build the data sets (default 0: in this process)")
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://...)")


def _scheduler(args):
    if args.scheduler:
        return args.scheduler, None
    if args.workers <= 0:
        return None, None
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _png(mv: multiverse.Multiverse, info: dict) -> bytes | None:
    """The specification curve as PNG bytes, or None when no specification was fitted."""
    from metaexercise.plots.specification_curve import specification_curve
    from metaexercise.plots.style import RC, plot_style

    if not info["fitted"]:
        return None
    fig = specification_curve(mv.table, CHOICE_LABELS, **curve_options(mv.table, info, mv.measure))
    buffer = io.BytesIO()
    with plot_style():
        fig.savefig(buffer, format="png", dpi=int(RC["savefig.dpi"]) // 2, bbox_inches="tight")
    return buffer.getvalue()


def run(args) -> int:
    if args.workers < 0:
        print(f"metaexercise multiverse: --workers {args.workers}: give 0 (in this process) or more",
              file=sys.stderr)
        return 2
    try:
        project = project_from_args(args)
        source = DataSource.parse(args.source)
        spec = multiverse.find_spec(project, args.analysis)
        extraction = multiverse.load_source(project, source)
    except (MetaexerciseError, ValueError, OSError) as exc:
        print(f"metaexercise multiverse: {exc}", file=sys.stderr)
        return 2
    client, cluster = _scheduler(args)
    start = time.perf_counter()
    try:
        mv = multiverse.compute(spec, extraction, project.review, scheduler=client)
    except (MetaexerciseError, ValueError) as exc:
        print(f"metaexercise multiverse: {spec.id}: {exc}", file=sys.stderr)
        return 2
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    elapsed = time.perf_counter() - start
    info = multiverse.summary(mv)
    files = {f"{spec.id}.csv": multiverse.table_csv(mv, source.data_label),
             f"{spec.id}.json": (json.dumps({"data": source.data_label, **info}, indent=2, sort_keys=True,
                                            ensure_ascii=False) + "\n").encode("utf-8")}
    png = _png(mv, info)
    if png is not None:
        files[f"{spec.id}.png"] = png
    folder = multiverse.write(project, source, spec.id, files)
    for name in sorted(files):
        print(folder / name, file=sys.stderr)
    print(multiverse.describe(mv, info))
    print(f"  {len(mv.table)} specifications in {elapsed:.2f} s ({len(mv.table) / elapsed:,.0f} per second)"
          + (f"; {source.data_label}" if source.synthetic else ""))
    return 0
