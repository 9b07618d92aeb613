"""Agreement of the engine with R's metafor: refit every case stored in `tests/reference/rma.json` and
`metareg.json`, and rerun the default funnel-asymmetry tests of `bias.json` (`regtest`: mixed-effects
model, predictor sei, on the REML fit; `ranktest`), all written by `tests/reference/make_reference.R`
(metafor 3.8-1 with tightened convergence); report, per quantity, the largest absolute and relative
difference and where it occurred.

The relative difference is abs(ours - metafor) / abs(metafor); where metafor's value is below `floor` in
magnitude (e.g. tau^2 = 0, p-values near 0) the absolute difference is used instead, as metafor's own
tests do with their tolerances (tests/testthat/settings.r). `metaexercise run` computes it from the project's
fixtures (`Project.reference`, tests/reference by default) into results/validation.csv
(`metaexercise.review.exhibits.validation`), which the book's "Engine validation" page shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metaexercise.errors import ConvergenceError

#: Quantities compared, as (metafor JSON key, attribute of RMAResult).
QUANTITIES: tuple[tuple[str, str], ...] = (
    ("beta", "beta"), ("se", "se"), ("zval", "zval"), ("pval", "pval"), ("ci_lb", "ci_lb"),
    ("ci_ub", "ci_ub"), ("tau2", "tau2"), ("se_tau2", "se_tau2"), ("I2", "I2"), ("H2", "H2"), ("QE", "QE"),
    ("QEp", "QEp"), ("QM", "QM"), ("QMp", "QMp"), ("weights", "weights"), ("pi_lb", "pi_lb"),
    ("pi_ub", "pi_ub"),
)


@dataclass(frozen=True, slots=True)
class Agreement:
    """Per-quantity largest differences over all reference fits, and the number of fits compared."""

    table: pd.DataFrame
    fits: int
    failed: tuple[str, ...]
    source: str

    def summary(self) -> str:
        worst = self.table["max_rel_diff"].max()
        return (f"{self.fits} metafor results compared ({self.source}); largest relative difference "
                f"{worst:.2e}; {len(self.failed)} fits could not be refitted")

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()


def _cases(reference: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, str, str, dict]]:
    rma_json = json.loads((reference / "rma.json").read_text())
    for name, ds in rma_json["datasets"].items():
        for key, fit in ds["fits"].items():
            method, test = key.split("/")
            yield name, np.asarray(ds["yi"], float), np.asarray(ds["vi"], float), None, method, test, fit
    path = reference / "metareg.json"
    if path.exists():
        reg = json.loads(path.read_text())
        for name, model in reg["models"].items():
            mods = np.asarray(model["mods"], float)
            for key, fit in model["fits"].items():
                method, test = key.split("/")
                yield (name, np.asarray(model["yi"], float), np.asarray(model["vi"], float), mods, method, test,
                       fit)


def _diffs(ours, theirs, floor: float) -> tuple[float, float]:
    a = np.atleast_1d(np.asarray(ours, dtype=float)).ravel()
    b = np.atleast_1d(np.asarray(theirs, dtype=float)).ravel()
    if a.shape != b.shape:
        return np.inf, np.inf
    ok = np.isfinite(b)
    if not ok.any():
        return 0.0, 0.0
    if not np.isfinite(a[ok]).all():
        return np.inf, np.inf
    absd = np.abs(a[ok] - b[ok])
    scale = np.abs(b[ok])
    rel = np.where(scale >= floor, absd / np.maximum(scale, floor), absd)
    return float(absd.max()), float(rel.max())


def _record(worst: dict, name: str, ours, theirs, where: str, floor: float) -> None:
    absd, reld = _diffs(ours, theirs, floor)
    w = worst.setdefault(name, [0.0, 0.0, "", 0])
    w[3] += 1
    w[0] = max(w[0], absd)
    if reld > w[1]:
        w[1], w[2] = reld, where


def _bias_agreement(reference: Path, worst: dict, failed: list, floor: float) -> int:
    """regtest (REML/z/rma/sei: metafor's defaults) and ranktest on every data set of bias.json."""
    path = reference / "bias.json"
    if not path.exists():
        return 0
    from metaexercise.engine.bias import ranktest, regtest
    from metaexercise.engine.model import rma

    n = 0
    for name, ds in json.loads(path.read_text())["datasets"].items():
        ref = ds.get("regtest", {}).get("REML/z/rma/sei")
        rank = ds.get("ranktest")
        try:
            fit = rma(np.asarray(ds["yi"], float), np.asarray(ds["vi"], float))
            if ref and "error" not in ref:
                reg = regtest(fit)
                _record(worst, "regtest zval", reg.zval, ref["zval"], f"{name} regtest", floor)
                _record(worst, "regtest pval", reg.pval, ref["pval"], f"{name} regtest", floor)
                n += 1
            if rank and "error" not in rank:
                rk = ranktest(fit)
                _record(worst, "ranktest tau", rk.tau, rank["tau"], f"{name} ranktest", floor)
                _record(worst, "ranktest pval", rk.pval, rank["pval"], f"{name} ranktest", floor)
                n += 1
        except (ConvergenceError, ValueError) as exc:
            failed.append(f"{name} bias tests: {exc}")
    return n


def metafor_agreement(reference: str | Path, *, floor: float = 1e-8) -> Agreement:
    """Refit every stored metafor case with `metaexercise.rma` and tabulate the largest differences."""
    from metaexercise.engine.model import rma

    reference = Path(reference)
    worst: dict[str, list] = {attr: [0.0, 0.0, "", 0] for _key, attr in QUANTITIES}
    failed: list[str] = []
    n = 0
    for name, yi, vi, mods, method, test, ref in _cases(reference):
        if "error" in ref:
            continue
        where = f"{name} {method}/{test}"
        try:
            fit = rma(yi, vi, method=method, test=test, mods=mods)
        except (ConvergenceError, ValueError) as exc:
            failed.append(f"{where}: {exc}")
            continue
        n += 1
        for key, attr in QUANTITIES:
            if key not in ref or ref[key] is None:
                continue
            absd, reld = _diffs(getattr(fit, attr), ref[key], floor)
            w = worst[attr]
            w[3] += 1
            if reld > w[1]:
                w[0], w[1], w[2] = max(w[0], absd), reld, where
            else:
                w[0] = max(w[0], absd)
    n += _bias_agreement(reference, worst, failed, floor)
    rows = [{"quantity": attr, "comparisons": w[3], "max_abs_diff": w[0], "max_rel_diff": w[1], "worst_case": w[2]}
            for attr, w in worst.items() if w[3]]
    source = ", ".join(p.name for p in (reference / "rma.json", reference / "metareg.json",
                                         reference / "bias.json") if p.exists())
    return Agreement(pd.DataFrame(rows), n, tuple(failed), source)
