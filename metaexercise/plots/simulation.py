"""Figure of a simulation study (`metaexercise.engine.simulate`): coverage of the confidence intervals for mu and
of the prediction intervals, per tau^2 estimator and interval method, with Monte Carlo 95% error bars and
the nominal level; and the RMSE of tau^2 per estimator. For the book's methods page."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from metaexercise.plots.style import INK, MUTED, new_figure, plain_text, styled

_MARKERS = {"DL": "o", "REML": "s", "ML": "^", "PM": "D"}


@styled
def plot_simulation(table: pd.DataFrame | object, *, level: float = 95) -> Figure:
    """Three panels per scenario row: CI coverage (mu), PI coverage (theta_new), RMSE of tau^2.

    `table`: `SimulationResult.table` (or the result itself)."""
    table = getattr(table, "table", table)
    scenarios = list(dict.fromkeys(table["scenario"]))
    fig = new_figure(10.5, 2.9 * len(scenarios) + 0.4)
    axes = fig.subplots(len(scenarios), 3, squeeze=False)
    nominal = level / 100
    for r, scen in enumerate(scenarios):
        t = table[table["scenario"] == scen]
        for c, (target, title) in enumerate((("mu", "CI for \u03bc"), ("theta_new", "PI for a new study"))):
            ax = axes[r, c]
            sub = t[(t["target"] == target) & t["coverage"].notna()]
            methods = list(dict.fromkeys(sub["interval"]))
            ests = list(dict.fromkeys(sub["estimator"]))
            for j, est in enumerate(ests):
                e = sub[sub["estimator"] == est].set_index("interval").reindex(methods)
                x = np.arange(len(methods)) + (j - (len(ests) - 1) / 2) * 0.15
                ax.errorbar(x, e["coverage"], yerr=1.96 * e["coverage_mcse"], fmt=_MARKERS.get(est, "o"),
                            color=INK, mfc="white" if j % 2 else INK, ms=4, lw=0.8, capsize=2, label=est)
            ax.axhline(nominal, color=MUTED, ls="--", lw=0.8)
            ax.set_xticks(np.arange(len(methods)), [plain_text(m) for m in methods])
            ax.set_ylabel("coverage")
            ax.set_title(f"{title}\n{plain_text(scen)}", fontsize=9)
            lo = np.nanmin(sub["coverage"] - 2 * sub["coverage_mcse"]) if len(sub) else nominal
            ax.set_ylim(min(lo, nominal) - 0.01, 1.0)
        ax = axes[r, 2]
        sub = t[(t["target"] == "tau2") & t["rmse"].notna()]
        x = np.arange(len(sub))
        ax.errorbar(x, sub["rmse"], yerr=1.96 * sub["rmse_mcse"], fmt="o", color=INK, ms=4, lw=0.8, capsize=2,
                    label="RMSE")
        ax.errorbar(x, sub["bias"], yerr=1.96 * sub["bias_mcse"], fmt="o", color=INK, mfc="white", ms=4, lw=0.8,
                    capsize=2, label="bias")
        ax.axhline(0, color=MUTED, lw=0.6)
        ax.set_xticks(x, list(sub["estimator"]))
        ax.set_title(f"\u03c4\u00b2 estimators (true \u03c4\u00b2 = {t['tau2'].iloc[0]:.4f})", fontsize=9)
        if r == 0:
            axes[r, 0].legend(fontsize=7, frameon=False, loc="lower right")
            ax.legend(fontsize=7, frameon=False)
    reps = int(table["reps"].iloc[0]) if len(table) else 0
    fig.suptitle(f"Simulation study, {reps:,} replicates per scenario (error bars: \u00b11.96 Monte Carlo SE)",
                 fontsize=10)
    fig.tight_layout()
    return fig
