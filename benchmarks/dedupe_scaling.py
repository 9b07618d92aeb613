"""How de-duplication grows with the number of records: time and peak memory at 1,000, 8,000 and 100,000.

Each size runs in a fresh interpreter, which builds synthetic records (`tests/searches/synthetic_records.py`:
synthetic replica, 10 % duplicates, by default all of one year — the worst case of the hardening issue) and
times `deduplicate()` alone (wall clock, `time.perf_counter`, and the process's CPU time, steadier on a
shared machine). Memory is the growth of the process's peak
resident set (`ru_maxrss`) during `deduplicate()`, and, with ``--tracemalloc``, the peak of Python-traced
allocations (numpy, scipy and pandas buffers are traced; it slows the run). ``--import`` also times the
whole command `metaexercise search import` on one RIS export of the largest size, in a child process whose
peak resident memory is recorded. ``--module FILE`` runs another implementation of
`metaexercise/searches/dedupe.py` (e.g. an earlier commit's, from `git show`), for before/after numbers.
This is not a test: nothing here asserts a time (the test suite checks the growth ratio loosely, in
tests/searches/test_search_scaling.py).

    python benchmarks/dedupe_scaling.py                       # 1,000, 8,000 and 100,000 records
    python benchmarks/dedupe_scaling.py --sizes 1000 8000 --tracemalloc
    python benchmarks/dedupe_scaling.py --sizes 100000 --import
    python benchmarks/dedupe_scaling.py --authors none        # no first authors: titles only
    git show HEAD~1:metaexercise/searches/dedupe.py > /tmp/old.py
    python benchmarks/dedupe_scaling.py --sizes 1000 8000 --module /tmp/old.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "searches"

CHILD = r"""
import importlib.util, json, resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from synthetic_records import synthetic_records
n, module_path, trace, spread, authors = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5] == "1", sys.argv[6]
if module_path:
    spec = importlib.util.spec_from_file_location("dedupe_under_test", module_path)
    dedupe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dedupe)
else:
    from metaexercise.searches import dedupe
years = tuple(range(1995, 2026)) if spread else (2024,)
frame = synthetic_records(n, years=years)
if authors == "none":
    frame["authors"] = ""
elif authors == "one":
    frame["authors"] = "Smith J"
dedupe.deduplicate(frame.head(50))  # warm imports and caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if trace:
    tracemalloc.start()
t = time.perf_counter()
cpu = time.process_time()
result = dedupe.deduplicate(frame)
seconds = time.perf_counter() - t
cpu = time.process_time() - cpu
traced = tracemalloc.get_traced_memory()[1] if trace else None
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
truth = frame["truth"].to_numpy()
cluster = result.records["cluster"].to_numpy()
import pandas as pd
pairs = lambda labels: int(pd.Series(labels).value_counts().map(lambda k: k * (k - 1) // 2).sum())
both = int(pd.DataFrame({"t": truth, "c": cluster}).value_counts().map(lambda k: k * (k - 1) // 2).sum())
print(json.dumps({"n": n, "seconds": seconds, "cpu_seconds": cpu, "rss_growth": after - before, "peak_rss": after,
                  "traced_peak": traced, "duplicates": result.n_duplicates,
                  "precision": both / max(pairs(cluster), 1), "recall": both / max(pairs(truth), 1)}))
"""

IMPORT_CHILD = r"""
import json, resource, sys, time
from metaexercise.commands.cli import main
t = time.perf_counter()
code = main(["search", "--project", sys.argv[1], "import", sys.argv[2], "--database", "Embase",
             "--date", "2026-11-01"])
print(json.dumps({"exit": code, "seconds": time.perf_counter() - t,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_size(n: int, module: str, trace: bool, spread: bool, authors: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(TESTS), str(n), module, "1" if trace else "0",
                          "1" if spread else "0", authors], capture_output=True, text=True)
    if out.returncode != 0:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return {"n": n, "failed": out.stderr.strip().splitlines()[-1:] or [f"exit {out.returncode}"],
                "peak_rss_children": usage}
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_ris(path: Path, n: int) -> None:
    sys.path.insert(0, str(TESTS))
    from synthetic_records import synthetic_records

    frame = synthetic_records(n)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in frame.itertuples(index=False):
            lines = ["TY  - JOUR", f"TI  - {row.title}"]
            lines += [f"AU  - {a.strip()}" for a in row.authors.split(";")]
            lines += [f"PY  - {row.year}"]
            lines += [f"DO  - {row.doi}"] if row.doi else []
            lines += [f"AN  - {row.pmid}"] if row.pmid else []
            fh.write("\n".join([*lines, "ER  - ", "", ""]))


def run_import(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.ris"
        write_ris(export, n)
        out = subprocess.run([sys.executable, "-c", IMPORT_CHILD, tmp, str(export)], capture_output=True,
                             text=True)
        if out.returncode != 0:
            return {"n": n, "failed": out.stderr.strip().splitlines()[-1:]}
        return {"n": n, **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000, 100000])
    parser.add_argument("--module", default="", help="another dedupe.py to run instead of the installed one")
    parser.add_argument("--tracemalloc", action="store_true", help="also record Python-traced peak memory")
    parser.add_argument("--spread-years", action="store_true", help="years 1995-2025 instead of one year")
    parser.add_argument("--authors", choices=("generated", "none", "one"), default="generated",
                        help="worst cases: every first author missing, or all the same")
    parser.add_argument("--import", dest="do_import", action="store_true",
                        help="also time `search import` of one RIS export of the largest size")
    args = parser.parse_args(argv)
    results = []
    for n in args.sizes:
        r = run_size(n, args.module, args.tracemalloc, args.spread_years, args.authors)
        results.append(r)
        if "failed" in r:
            print(f"{n:>7} records: failed ({r['failed']})", flush=True)
            continue
        traced = f", traced peak {r['traced_peak'] / 1e6:7.1f} MB" if r["traced_peak"] is not None else ""
        print(f"{n:>7} records: {r['seconds']:8.2f} s (CPU {r['cpu_seconds']:.2f} s), peak RSS growth {r['rss_growth'] / 1e6:7.1f} MB "
              f"(process peak {r['peak_rss'] / 1e6:7.1f} MB){traced}; {r['duplicates']} duplicates, "
              f"precision {r['precision']:.4f}, recall {r['recall']:.4f}", flush=True)
    ok = [r for r in results if "failed" not in r]
    for small, large in zip(ok, ok[1:], strict=False):
        print(f"{large['n']}/{small['n']} records: time x{large['seconds'] / small['seconds']:.1f}, "
              f"RSS growth x{max(large['rss_growth'], 1) / max(small['rss_growth'], 1):.1f}")
    if args.do_import:
        r = run_import(max(args.sizes))
        results.append({"import": r})
        print(f"search import of {r['n']} records (RIS), with de-duplication: "
              + (f"failed ({r['failed']})" if "failed" in r else
                 f"{r['seconds']:.1f} s, peak RSS {r['peak_rss'] / 1e6:.0f} MB, exit {r['exit']}"))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
