"""What `import metaexercise` costs, next to the libraries it stands on.

Each statement runs in a fresh interpreter (so nothing is cached in `sys.modules`), timed inside it from just
before the statement to just after, so interpreter start-up is left out; the table gives the median (and the
fastest) of ``--runs`` runs and the ratio of each median to that of ``import pandas, scipy.stats``.

    python benchmarks/import_cost.py            # 9 runs each
    python benchmarks/import_cost.py --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap

FIT = "metaexercise.rma([0.1, 0.3, 0.35, 0.6], [0.01, 0.02, 0.015, 0.03])"

#: (label, statement); the first is the reference of the ratios.
STATEMENTS = (
    ("import pandas, scipy.stats", "import pandas, scipy.stats"),
    ("import numpy", "import numpy"),
    ("import metaexercise", "import metaexercise"),
    ("import metaexercise; metaexercise.rma(...)", f"import metaexercise; {FIT}"),
)

PROBE = """
import sys, time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
heavy = [m for m in ("numba", "dask", "matplotlib", "pandas", "scipy.stats", "statsmodels") if m in sys.modules]
print(t1 - t0, ",".join(heavy))
"""


def time_once(statement: str, cwd: str) -> tuple[float, str]:
    code = textwrap.dedent(PROBE).format(statement=statement)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    seconds, _, loaded = out.stdout.strip().partition(" ")
    return float(seconds), loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per statement (at least 7)")
    args = parser.parse_args(argv)
    runs = max(7, args.runs)
    rows = []
    with tempfile.TemporaryDirectory() as cwd:  # outside the checkout: only the installed package is seen
        for label, statement in STATEMENTS:
            times, loaded = [], ""
            for _ in range(runs):
                t, loaded = time_once(statement, cwd)
                times.append(t)
            rows.append((label, statistics.median(times), min(times), loaded))
    ref = rows[0][1]
    width = max(len(r[0]) for r in rows)
    print(f"Python {sys.version.split()[0]}; median and fastest of {runs} fresh interpreters each; "
          f"ratio = median / median of `{rows[0][0]}`\n")
    print(f"{'statement'.ljust(width)}  median ms  fastest ms  ratio  heavy modules loaded")
    for label, med, fastest, loaded in rows:
        print(f"{label.ljust(width)}  {1000 * med:9.1f}  {1000 * fastest:10.1f}  {med / ref:5.2f}  {loaded or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
