"""Benchmarks of metaexercise beside metafor (through Rscript) and PyMARE, in one run.

    python benchmarks/run.py                 # everything; writes benchmarks/results.md and scaling.png
    python benchmarks/run.py --skip-metafor-k5000   # metafor's k = 5,000 fit takes minutes (reference BLAS)

Tasks (issues #2 and #7): one REML fit with k = 30; 10,000 REML fits with k = 30; one REML fit with
k = 5,000; leave-one-out with k = 60; a permutation test of a meta-regression (k = 30, one moderator)
with 1,000 permutations; and the throughput of `rma_batch` on 1,000,000 fits, plus 10,000,000 fits
streamed in chunks in a child process whose peak memory is recorded. Times are medians over repeats
(wall clock, `time.perf_counter`); metafor's 10,000-fit loop and its k = 5,000 fit run once.
All data are synthetic, drawn from a fixed seed: y ~ N(-0.3, v + 0.05), v ~ U(0.005, 0.2).
This is not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20211216
TAU2 = 0.05


def _data(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    vi = rng.uniform(0.005, 0.2, (n, k))
    yi = rng.normal(-0.3, np.sqrt(vi + TAU2))
    return yi, vi


def _median_time(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------
# 10 million fits, streamed, in a child process (so that its peak RSS is its own)
# ------------------------------------------------------------------------------------------------


def _stream_child(n_total: int, chunk: int) -> None:
    from metaexercise.engine.batch import rma_batch

    rng = np.random.default_rng(SEED)
    gen_time = [0.0]

    def chunks():
        # yi and vi must come from the same draw: generate pairs once and hand out each half.
        for start in range(0, n_total, chunk):
            t = time.perf_counter()
            yi, vi = _data(min(chunk, n_total - start), 30, rng)
            gen_time[0] += time.perf_counter() - t
            yield yi, vi

    pairs = chunks()
    ys, vs = _split_pairs(pairs)
    # Compile or load the kernels first (both the one-thread and the parallel one); then reset the
    # peak-memory mark (Linux: "5" > /proc/self/clear_refs) so the peak is the streaming run's, not LLVM's.
    rma_batch(*_data(10, 30, np.random.default_rng(0)))
    rma_batch(*_data(5000, 30, np.random.default_rng(0)))
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    t = time.perf_counter()
    res = rma_batch(ys, vs, chunk_size=chunk)
    total = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if reset:
        status = Path("/proc/self/status").read_text()
        peak_mb = int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1]) / 1024
    print(json.dumps({"n": len(res), "seconds": total, "generate_seconds": gen_time[0],
                      "fit_seconds": total - gen_time[0], "peak_rss_mb": peak_mb,
                      "converged": int(res.converged.sum())}))


def _split_pairs(pairs):
    """Two iterators (yi chunks, vi chunks) over one iterator of (yi, vi) pairs; rma_batch zips them, so
    each vi chunk is queued by the time it is asked for."""
    pending: list[np.ndarray] = []

    def ys():
        for y, v in pairs:
            pending.append(v)
            yield y

    return ys(), _VIter(pending)


class _VIter:
    """The vi half of `_split_pairs`: rma_batch zips (yi, vi), so each vi chunk is ready when asked for."""

    def __init__(self, pending: list):
        self.pending = pending

    def __iter__(self):
        return self

    def __next__(self):
        if not self.pending:
            raise StopIteration
        return self.pending.pop(0)


# ------------------------------------------------------------------------------------------------
# the three tools
# ------------------------------------------------------------------------------------------------


def _scale_n(k: int) -> int:
    """Fits per timing in the k-scaling run: enough work (about 3 million studies) to time reliably."""
    return int(min(100_000, max(300, 3_000_000 // k)))


def bench_metaexercise(d: dict) -> dict:
    from metaexercise.engine.batch import leave1out_batch, rma_batch
    from metaexercise.engine.model import rma
    from metaexercise.engine.permutation import permutest_arrays

    out = {}
    y, v = d["single_k30"]
    out["single_k30"] = _median_time(lambda: rma(y, v), 500, warmup=5)
    out["single_k30_batch"] = _median_time(lambda: rma_batch(y[None], v[None]), 500, warmup=5)
    ym, vm = d["many_k30"]
    out["many_k30"] = _median_time(lambda: rma_batch(ym, vm), 11)
    yb, vb = d["single_k5000"]
    out["single_k5000"] = _median_time(lambda: rma(yb, vb), 21)
    out["single_k5000_batch"] = _median_time(lambda: rma_batch(yb[None], vb[None]), 21)
    yl, vl = d["loo_k60"]
    out["leave1out_k60"] = _median_time(lambda: leave1out_batch(yl, vl), 200)
    yp, vp, xp = d["perm_k30"]
    out["permutest_1000"] = _median_time(lambda: permutest_arrays(yp, vp, xp, iter=1000, seed=1), 11)
    y1m, v1m = d["million_k30"]
    out["million_k30"] = _median_time(lambda: rma_batch(y1m, v1m), 3)
    res = rma_batch(y1m, v1m)
    out["million_iter"] = float(res.iterations.mean())
    out["million_nonconv"] = int((~res.converged).sum())
    out["million_k30_dl"] = _median_time(lambda: rma_batch(y1m, v1m, "DL"), 3)
    cpu = []
    for _ in range(3):  # CPU seconds of all threads: what the fits cost when the machine is shared
        t = time.process_time()
        rma_batch(y1m, v1m)
        cpu.append(time.process_time() - t)
    out["million_k30_cpu"] = statistics.median(cpu)
    out["threads"] = __import__("numba").get_num_threads()
    # scaling: number of fits (k = 30) and k (one fit)
    out["scale_n"] = {}
    for n in (10, 100, 1_000, 10_000, 100_000, 1_000_000):
        reps = 21 if n <= 10_000 else 3
        out["scale_n"][n] = _median_time(lambda n=n: rma_batch(y1m[:n], v1m[:n]), reps)
    out["scale_k"] = {}
    rng = np.random.default_rng(SEED + 1)
    for k in (5, 10, 30, 100, 300, 1_000, 3_000, 5_000, 10_000):
        yk, vk = _data(1, k, rng)
        yr, vr = np.repeat(yk, _scale_n(k), 0), np.repeat(vk, _scale_n(k), 0)
        out["scale_k"][k] = {
            "rma": _median_time(lambda yk=yk, vk=vk: rma(yk[0], vk[0]), 21),
            "batch": _median_time(lambda yr=yr, vr=vr: rma_batch(yr, vr), 5) / yr.shape[0],
        }
    return out


def bench_pymare(d: dict) -> dict:
    warnings.simplefilter("ignore")
    from pymare import Dataset
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    def reml():
        return VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald")

    def fit(est, y, v):  # y, v: (k, n_datasets)
        est.fit(y=y, v=v, X=np.ones((y.shape[0], 1)))
        return est

    out = {"version": __import__("pymare").__version__}
    y, v = d["single_k30"]
    out["single_k30"] = _median_time(lambda: fit(reml(), y[:, None], v[:, None]), 50)
    ym, vm = d["many_k30"]
    out["many_k30"] = _median_time(lambda: fit(reml(), ym.T, vm.T), 3)
    out["many_k30_dl"] = _median_time(lambda: fit(DerSimonianLaird(), ym.T, vm.T), 11)
    yb, vb = d["single_k5000"]
    out["single_k5000"] = _median_time(lambda: fit(reml(), yb[:, None], vb[:, None]), 11)
    yl, vl = d["loo_k60"]
    k = yl.shape[0]
    mask = ~np.eye(k, dtype=bool)
    yloo = np.stack([yl[mask[i]] for i in range(k)], axis=1)  # (k - 1) x k: one data set per column
    vloo = np.stack([vl[mask[i]] for i in range(k)], axis=1)
    out["leave1out_k60"] = _median_time(lambda: fit(reml(), yloo, vloo), 21)
    yp, vp, xp = d["perm_k30"]

    def perm():
        est = reml()
        est.fit_dataset(Dataset(y=yp, v=vp, X=xp[:, None]))
        return est.summary().permutation_test(n_perm=1000)

    out["permutest_1000"] = _median_time(perm, 5)
    out["scale_n"] = {}
    y1m, v1m = d["million_k30"]
    for n in (10, 100, 1_000, 10_000, 100_000):
        out["scale_n"][n] = _median_time(lambda n=n: fit(reml(), y1m[:n].T, v1m[:n].T), 3 if n < 100_000 else 1)
    return out


def bench_metafor(d: dict, skip_k5000: bool) -> dict:
    rscript = shutil.which("Rscript")
    if rscript is None:
        print("metafor column skipped: Rscript not found on PATH", file=sys.stderr)
        return {"skipped": "Rscript not found on PATH"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savetxt(tmp / "single_k30.csv", np.column_stack(d["single_k30"]), delimiter=",", fmt="%.17g")
        np.savetxt(tmp / "many_k30_yi.csv", d["many_k30"][0], delimiter=",", fmt="%.17g")
        np.savetxt(tmp / "many_k30_vi.csv", d["many_k30"][1], delimiter=",", fmt="%.17g")
        np.savetxt(tmp / "single_k5000.csv", np.column_stack(d["single_k5000"]), delimiter=",", fmt="%.17g")
        np.savetxt(tmp / "loo_k60.csv", np.column_stack(d["loo_k60"]), delimiter=",", fmt="%.17g")
        np.savetxt(tmp / "perm_k30.csv", np.column_stack(d["perm_k30"]), delimiter=",", fmt="%.17g")
        cmd = [rscript, str(HERE / "metafor_bench.R"), str(tmp)] + (["--skip-k5000"] if skip_k5000 else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"metafor column skipped: Rscript failed:\n{proc.stderr}", file=sys.stderr)
        return {"skipped": "Rscript failed (metafor or jsonlite missing?)"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_stream(n_total: int) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--stream-child", str(n_total)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _fmt_t(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _ratio(other: float | None, ours: float | None) -> str:
    if other is None or ours is None:
        return "—"
    r = other / ours
    return f"{r:,.0f}×" if r >= 10 else f"{r:.2f}×"


def write_report(me: dict, pm: dict, mf: dict, stream: dict, meta: dict) -> str:
    mf_ok = "skipped" not in mf
    many_n = meta["many_n"]
    rows = [
        ("one REML fit, k = 30", me["single_k30"], mf.get("single_k30"), pm["single_k30"], "`rma`"),
        ("one REML fit, k = 30, via `rma_batch`", me["single_k30_batch"], mf.get("single_k30"),
         pm["single_k30"], "`rma_batch` with one row"),
        (f"{many_n:,} REML fits, k = 30", me["many_k30"], mf.get("many_k30"), pm["many_k30"],
         "`rma_batch`; metafor: R loop, run once; PyMARE: vectorised REML"),
        ("one REML fit, k = 5,000", me["single_k5000"], mf.get("single_k5000"), pm["single_k5000"],
         "`rma`; metafor run once" if mf.get("single_k5000") else "`rma`; metafor skipped (--skip-metafor-k5000)"),
        ("leave-one-out, k = 60", me["leave1out_k60"], mf.get("leave1out_k60"), pm["leave1out_k60"],
         "`leave1out_batch`; metafor `leave1out`; PyMARE: 60 data sets vectorised"),
        ("permutation test, 1,000 permutations (k = 30, one moderator)", me["permutest_1000"],
         mf.get("permutest_1000"), pm["permutest_1000"],
         "`permutest_arrays`; metafor `permutest(iter = 1000)`; PyMARE `permutation_test(1000)`"),
    ]
    fps = 1e6 / me["million_k30"]
    mf_fps = many_n / mf["many_k30"] if mf_ok else None
    pm_fps = many_n / pm["many_k30"]
    pm_dl_fps = many_n / pm["many_k30_dl"]
    lines = [
        "# Benchmarks: metaexercise beside metafor and PyMARE",
        "",
        f"Generated by `python benchmarks/run.py` on {meta['date']} (one run). Machine: {meta['machine']}. "
        f"Load average at start / end: {meta['load_start']} / {meta['load_end']} "
        "(the machine was shared with other jobs during the run, so absolute times are noisy; all three tools "
        "ran in the same run, one after the other).",
        f"Versions: metaexercise {meta['metaexercise']}, numpy {np.__version__}, numba {meta['numba']}, "
        f"PyMARE {pm['version']}, "
        + (f"metafor {mf['metafor']} ({mf['R']}; BLAS {mf['blas']})." if mf_ok else f"metafor: {mf['skipped']}."),
        "",
        "Medians of wall-clock times over repeats. metafor runs with its defaults (threshold 1e-5); metaexercise "
        "with its defaults (threshold 1e-12, maxiter 1,000); PyMARE's REML (`VarianceBasedLikelihoodEstimator(method='REML')`) "
        "with its defaults. Ratios are the other tool's time divided by metaexercise's.",
        "",
        "| task | metaexercise | metafor | PyMARE | metafor / ours | PyMARE / ours | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ours, mfv, pmv, note in rows:
        lines.append(f"| {name} | {_fmt_t(ours)} | {_fmt_t(mfv)} | {_fmt_t(pmv)} | {_ratio(mfv, ours)} | "
                     f"{_ratio(pmv, ours)} | {note} |")
    lines += [
        "",
        "## Throughput of `rma_batch` (REML, k = 30)",
        "",
        f"- 1,000,000 fits: {_fmt_t(me['million_k30'])} → **{fps:,.0f} fits/s** "
        f"(target ≥ 1,000,000 fits/s: {'met' if fps >= 1e6 else 'NOT met'} in wall-clock time). "
        f"CPU time of all {me['threads']} threads: {me['million_k30_cpu']:.2f} s, i.e. "
        f"{1e6 / me['million_k30_cpu']:,.0f} fits per CPU-second, {me['threads'] * 1e6 / me['million_k30_cpu']:,.0f} "
        f"fits/s on {me['threads']} cores when no other job competes for them.",
        f"- metafor's loop: {mf_fps:,.0f} fits/s → rma_batch is {fps / mf_fps:,.0f}× faster (target ≥ 3,000×)."
        if mf_ok else "- metafor: skipped.",
        f"- PyMARE's vectorised REML estimator: {pm_fps:,.0f} fits/s → rma_batch (REML) is {fps / pm_fps:,.0f}× "
        "faster (target ≥ 20× PyMARE's vectorised estimator).",
        f"- DerSimonian–Laird, the non-iterative estimator: rma_batch {1e6 / me['million_k30_dl']:,.0f} fits/s, "
        f"PyMARE's vectorised `DerSimonianLaird` {pm_dl_fps:,.0f} fits/s "
        f"(rma_batch is {(1e6 / me['million_k30_dl']) / pm_dl_fps:.1f}× PyMARE's speed).",
        f"- The 1,000,000 REML fits took {me['million_iter']:.1f} Fisher-scoring steps on average (threshold "
        f"1e-12, as `rma`); {me['million_nonconv']:,} of them ({me['million_nonconv'] / 1e4:.2f} %) did not "
        "converge within 1,000 steps (scoring oscillates; `rma` raises ConvergenceError on the same data, "
        "metafor stops with 'Fisher scoring algorithm did not converge').",
    ]
    if "error" in stream:
        lines.append(f"- 10,000,000 fits streamed: failed: {stream['error']}")
    else:
        lines.append(
            f"- {stream['n']:,} fits streamed in chunks of 100,000 from a generator (child process): "
            f"{stream['seconds']:.1f} s in all, of which {stream['generate_seconds']:.1f} s drawing the random "
            f"data and {stream['fit_seconds']:.1f} s fitting ({stream['n'] / stream['fit_seconds']:,.0f} fits/s); "
            f"peak resident memory {stream['peak_rss_mb']:,.0f} MB (target < 2 GB); "
            f"{stream['converged']:,} converged.")
    lines += [
        "",
        "## Targets of issue #2 (single fit)",
        "",
        f"- `rma`, k = 30: {_fmt_t(me['single_k30'])} (target ≤ 1 ms: "
        f"{'met' if me['single_k30'] <= 1e-3 else 'NOT met'}).",
        "- cost linear in k: see the right panel of `scaling.png` (time per fit against k, log–log) and the "
        "table below.",
        "",
        "| k | `rma` | `rma_batch`, per fit (many identical fits, min(100,000, 3,000,000 / k) of them) |",
        "|---|---|---|",
    ]
    for k, t in me["scale_k"].items():
        lines.append(f"| {k:,} | {_fmt_t(t['rma'])} | {_fmt_t(t['batch'])} |")
    lines += ["", "![scaling](scaling.png)", ""]
    return "\n".join(lines)


def plot_scaling(me: dict, pm: dict, mf: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from metaexercise.atomic import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = np.array(list(me["scale_n"].keys()))
    ax1.loglog(ns, ns / np.array(list(me["scale_n"].values())), "o-", label="metaexercise rma_batch (REML)")
    pns = np.array(list(pm["scale_n"].keys()))
    ax1.loglog(pns, pns / np.array(list(pm["scale_n"].values())), "s-", label="PyMARE vectorised REML")
    if "single_k30" in mf:
        ax1.axhline(mf["many_k30_n"] / mf["many_k30"], color="C2", ls="--", label="metafor (R loop)")
    ax1.set_xlabel("number of meta-analyses (k = 30 each)")
    ax1.set_ylabel("fits per second")
    ax1.set_title("Throughput against the number of fits")
    ax1.legend(fontsize=8)
    ks = np.array(list(me["scale_k"].keys()))
    ax2.loglog(ks, [t["rma"] for t in me["scale_k"].values()], "o-", label="metaexercise rma (one fit)")
    ax2.loglog(ks, [t["batch"] for t in me["scale_k"].values()], "^-", label="rma_batch, per fit")
    ref = np.array([t["batch"] for t in me["scale_k"].values()])
    ax2.loglog(ks, ref[-1] * ks / ks[-1], ":", color="grey", label="slope 1 (linear in k)")
    if "single_k30" in mf:
        mk = [30] + ([5000] if "single_k5000" in mf else [])
        mt = [mf["single_k30"]] + ([mf["single_k5000"]] if "single_k5000" in mf else [])
        ax2.loglog(mk, mt, "D", color="C2", label="metafor")
    ax2.loglog([30, 5000], [pm["single_k30"], pm["single_k5000"]], "s", color="C1", label="PyMARE")
    ax2.set_xlabel("k (studies in the meta-analysis)")
    ax2.set_ylabel("seconds per fit")
    ax2.set_title("Cost against k")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-metafor-k5000", action="store_true", help="do not time metafor's k = 5,000 fit")
    ap.add_argument("--no-metafor", action="store_true", help="skip the metafor column")
    ap.add_argument("--stream-n", type=int, default=10_000_000, help="fits in the streaming run (0: skip)")
    ap.add_argument("--many-n", type=int, default=10_000, help="fits in the many-fits task")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--stream-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stream_child is not None:
        _stream_child(args.stream_child, 100_000)
        return 0
    import numba

    import metaexercise
    from metaexercise.atomic import write_text

    rng = np.random.default_rng(SEED)
    d = {}
    y, v = _data(1, 30, rng)
    d["single_k30"] = (y[0], v[0])
    d["many_k30"] = _data(args.many_n, 30, rng)
    y, v = _data(1, 5000, rng)
    d["single_k5000"] = (y[0], v[0])
    y, v = _data(1, 60, rng)
    d["loo_k60"] = (y[0], v[0])
    y, v = _data(1, 30, rng)
    x = rng.uniform(4, 16, 30)
    d["perm_k30"] = (y[0] + 0.02 * (x - 10), v[0], x)
    d["million_k30"] = _data(1_000_000, 30, rng)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "load_start": f"{os.getloadavg()[0]:.1f}",
        "metaexercise": metaexercise.__version__,
        "numba": numba.__version__,
        "many_n": args.many_n,
    }
    print("metaexercise ...", file=sys.stderr)
    me = bench_metaexercise(d)
    print("PyMARE ...", file=sys.stderr)
    pm = bench_pymare(d)
    print("metafor (minutes) ...", file=sys.stderr)
    mf = {"skipped": "--no-metafor"} if args.no_metafor else bench_metafor(d, args.skip_metafor_k5000)
    del d["million_k30"]
    print("streaming ...", file=sys.stderr)
    stream = bench_stream(args.stream_n) if args.stream_n else {"error": "skipped (--stream-n 0)"}
    meta["load_end"] = f"{os.getloadavg()[0]:.1f}"
    raw = {"metaexercise": me, "pymare": pm, "metafor": mf, "stream": stream, "meta": meta}
    write_text(args.out.with_suffix(".json"), json.dumps(raw, indent=1, default=str))
    plot_scaling(me, pm, mf, args.out.parent / "scaling.png")
    write_text(args.out, write_report(me, pm, mf, stream, meta))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
