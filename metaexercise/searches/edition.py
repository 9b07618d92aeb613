"""What an update changed: per analysis, the earlier and the new edition's k, pooled SMD, CI and certainty;
and a cumulative meta-analysis by publication year showing how an estimate moved as studies appeared.

Inputs are the `results/analyses.csv` tables `metaexercise run` writes (columns analysis_id, k, estimate,
ci_lb, ci_ub, and certainty when GRADE judgements exist), one from each edition, and for the cumulative
analysis a per-study table (analysis_id, study, year, yi, vi).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metaexercise.errors import SearchDataError
from metaexercise.searches.tables import read_csv_table

RESULT_COLUMNS = ("analysis_id", "k", "estimate", "ci_lb", "ci_ub")
STUDY_COLUMNS = ("analysis_id", "study", "year", "yi", "vi")
DIFF_COLUMNS = (
    "analysis_id", "change", "k_old", "k_new", "estimate_old", "estimate_new", "shift", "ci_lb_old",
    "ci_ub_old", "ci_lb_new", "ci_ub_new", "certainty_old", "certainty_new",
)


def _read(path: Path, required: tuple[str, ...], what: str) -> tuple[pd.DataFrame, list[int]]:
    """A CSV table as strings, with the line of each row; SearchDataError names file and line."""
    path = Path(path)
    if not path.is_file():
        raise SearchDataError(f"{path}: no such {what}")
    header, rows = read_csv_table(path, required=required)
    frame = pd.DataFrame([cells for _, cells in rows], columns=header, dtype=object)
    return frame, [line for line, _ in rows]


def _numbers(frame: pd.DataFrame, lines: list[int], column: str, name: str, *, blank_ok: bool) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & ((frame[column].str.strip() != "") | (not blank_ok))
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise SearchDataError(f"{name} row {lines[k]}, column {column}: {frame[column].iloc[k]!r} is not a number")
    return values.astype(float)


def read_results(path: Path) -> pd.DataFrame:
    """A results table with numeric k, estimate, ci_lb, ci_ub and a certainty column ("" if absent);
    SearchDataError names the file, line and column of a missing column or a non-number."""
    path = Path(path)
    if not path.is_file():
        raise SearchDataError(f"{path}: no such results table; run `metaexercise run` first")
    frame, lines = _read(path, RESULT_COLUMNS, "results table")
    out = pd.DataFrame({"analysis_id": frame["analysis_id"].astype(object)})
    for column in RESULT_COLUMNS[1:]:
        out[column] = _numbers(frame, lines, column, path.name, blank_ok=True)
    out["certainty"] = frame["certainty"].astype(object) if "certainty" in frame else ""
    duplicated = out["analysis_id"].duplicated()
    if duplicated.any():
        k = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise SearchDataError(f"{path.name} row {lines[k]}: analysis_id {out['analysis_id'].iloc[k]!r} appears "
                              "more than once")
    return out


@dataclass(frozen=True, slots=True)
class EditionDiff:
    """Per analysis, the earlier (`_old`) and new (`_new`) edition's results, side by side. `change` is
    "new analysis", "dropped", "k changed", "certainty changed", "estimate moved" (by more than 5e-5) or
    "unchanged": the first that applies."""

    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def summary(self) -> str:
        def ci(lb, ub):
            return "" if np.isnan(lb) else f"[{lb:.2f}, {ub:.2f}]"

        lines = [f"{'analysis':<28} {'k':>9}  {'SMD old':>22}  {'SMD new':>22}  certainty"]
        for r in self.table.itertuples(index=False):
            k = f"{_int(r.k_old)} → {_int(r.k_new)}"
            old = "" if np.isnan(r.estimate_old) else f"{r.estimate_old:.2f} {ci(r.ci_lb_old, r.ci_ub_old)}"
            new = "" if np.isnan(r.estimate_new) else f"{r.estimate_new:.2f} {ci(r.ci_lb_new, r.ci_ub_new)}"
            cert = f"{r.certainty_old or '–'} → {r.certainty_new or '–'}"
            lines.append(f"{r.analysis_id:<28} {k:>9}  {old:>22}  {new:>22}  {cert} ({r.change})")
        return "\n".join(lines)


def _int(value: float) -> str:
    return "–" if np.isnan(value) else str(int(value))


def edition_diff(old: pd.DataFrame, new: pd.DataFrame) -> EditionDiff:
    """Compare two results tables (see `read_results`) analysis by analysis, keeping the new table's order
    and appending analyses only the old edition had."""
    merged = new.merge(old, on="analysis_id", how="outer", suffixes=("_new", "_old"), indicator=True, sort=False)
    order: dict[str, int] = {}
    for analysis_id in list(new["analysis_id"]) + list(old["analysis_id"]):
        order.setdefault(analysis_id, len(order))
    merged = merged.sort_values("analysis_id", key=lambda s: s.map(order)).reset_index(drop=True)
    for column in ("certainty_old", "certainty_new"):
        merged[column] = merged[column].fillna("").astype(object)
    merged["shift"] = merged["estimate_new"] - merged["estimate_old"]
    change = np.select(
        [merged["_merge"] == "left_only", merged["_merge"] == "right_only", merged["k_old"] != merged["k_new"],
         merged["certainty_old"] != merged["certainty_new"],
         ~np.isclose(merged["estimate_old"], merged["estimate_new"], rtol=0, atol=5e-5)],
        ["new analysis", "dropped", "k changed", "certainty changed", "estimate moved"], default="unchanged")
    merged["change"] = change
    return EditionDiff(merged[list(DIFF_COLUMNS)])


def cumulative_by_year(studies: pd.DataFrame, *, method: str = "REML", level: float = 95) -> pd.DataFrame:
    """Cumulative meta-analysis in order of publication year (ties in the table's order), as metafor's
    `cumul(rma(yi, vi), order = year)`: row i is the model fitted to the first i studies.

    `studies` has columns study, year, yi, vi. Returns study, year, k, estimate, se, ci_lb, ci_ub, tau2, I2.
    Lau et al. (1992, N Engl J Med 327:248, doi:10.1056/NEJM199207233270406) introduced the display."""
    from metaexercise.engine.model import rma

    ordered = studies.assign(_pos=np.arange(len(studies))).sort_values(["year", "_pos"], kind="stable")
    yi = ordered["yi"].to_numpy(dtype=float)
    vi = ordered["vi"].to_numpy(dtype=float)
    rows = []
    for k in range(1, len(ordered) + 1):
        fit = rma(yi[:k], vi[:k], method=method, level=level)
        rows.append((k, fit.estimate, float(fit.se[0]), float(fit.ci_lb[0]), float(fit.ci_ub[0]),
                     float(fit.tau2), float(fit.I2)))
    out = pd.DataFrame(rows, columns=["k", "estimate", "se", "ci_lb", "ci_ub", "tau2", "I2"])
    out.insert(0, "year", ordered["year"].to_numpy())
    out.insert(0, "study", ordered["study"].to_numpy())
    return out


def read_studies(path: Path) -> pd.DataFrame:
    """A per-study effect table (analysis_id, study, year, yi, vi); SearchDataError names file, line and
    column of a problem."""
    path = Path(path)
    frame, lines = _read(path, STUDY_COLUMNS, "per-study table")
    out = frame[list(STUDY_COLUMNS)].astype(object)
    for column in ("year", "yi", "vi"):
        out[column] = _numbers(frame, lines, column, path.name, blank_ok=False)
    return out
