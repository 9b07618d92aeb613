"""`metaexercise multiverse`: the grid, the intervals against metafor, the main specification against
`metaexercise run`, the shares, Dask, the files and bad input.

Independent numbers: tests/reference/multiverse.json, written by tests/reference/make_multiverse_reference.R
(metafor 3.8.1: rma with each estimator and test, predict, and the t(k-2) interval). The replica is the
seeded synthetic replica of review.yaml (`metaexercise.review.replica`), generated afresh.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaexercise.commands import multiverse as command
from metaexercise.engine.batch import rma_batch
from metaexercise.engine.model import rma
from metaexercise.extraction.comparisons import FollowUpWindow
from metaexercise.review import multiverse as mv
from metaexercise.review.analyses import ANALYSIS_COLUMNS, baseline_sd, run_analysis
from metaexercise.review.multiverse_columns import CHOICE_COLUMNS, CHOICE_LABELS, curve_options
from metaexercise.review.project import Project
from metaexercise.review.run import _csv
from metaexercise.vocabulary import SYNTHETIC_LABEL, DataSource

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "reference" / "multiverse.json"
RTOL, ATOL = 1e-6, 1e-10


def _close(label: str, ours, ref, rtol: float = RTOL) -> str | None:
    a = np.asarray(ours, dtype=float).ravel()
    b = np.asarray([np.nan if v is None else v for v in (ref if isinstance(ref, list) else [ref])], dtype=float)
    if np.array_equal(np.isnan(a), np.isnan(b)) and np.all(np.isnan(b) | (np.abs(a - b) <= ATOL + rtol * np.abs(b))):
        return None
    return f"{label}: ours {a.tolist()} vs metafor {b.tolist()}"


# ------------------------------------------------------------------------------------------- shared fits
@pytest.fixture(scope="module")
def project() -> Project:
    return Project(ROOT)


@pytest.fixture(scope="module")
def replica_sheets(project):
    return mv.load_source(project, DataSource.REPLICA)


@pytest.fixture(scope="module")
def spec(project):
    return mv.find_spec(project, "pain_active_short")


@pytest.fixture(scope="module")
def universe(project, replica_sheets, spec):
    """The full multiverse of pain_active_short on the replica (every value of every choice)."""
    return mv.compute(spec, replica_sheets, project.review)


# ------------------------------------------------------------------------------------------- window rule
def test_window_rule_default_unchanged_and_alternatives():
    short = FollowUpWindow(12, 1, 32)
    assert short.rule == "closest"
    assert short.choose([8, 16, 26]) == 16  # tie at 4 weeks: the later (today's rule)
    assert FollowUpWindow(12, 1, 32, rule="latest").choose([8, 16, 26, 52]) == 26  # 52 is outside
    assert FollowUpWindow(12, 1, 32, rule="earliest").choose([0.5, 8, 16]) == 8  # 0.5 is outside
    assert FollowUpWindow(12, 1, 32, rule="latest").choose([40]) is None
    with pytest.raises(ValueError, match="rule 'last'"):
        FollowUpWindow(12, 1, 32, rule="last")


# ------------------------------------------------------------------------------------------- intervals vs metafor
def test_intervals_equal_metafor():
    """Every CI x PI method from one z-test rma_batch fit per estimator equals metafor's rma(test=) and
    predict(), and the hand-formed z / t(k-1) / t(k-2) prediction intervals of the fixture."""
    ref = json.loads(FIXTURE.read_text())
    assert ref["source"]["metafor_version"] == "3.8.1"
    problems, checked = [], 0
    for f in ref["fits"]:
        d = ref["datasets"][f["data"]]
        yi, vi = np.asarray(d["yi"], float)[None, :], np.asarray(d["vi"], float)[None, :]
        fit = rma_batch(yi, vi, f["method"])
        k = fit.k.astype(float)
        where = f"{f['data']} {f['method']} test={f['test']}"
        for pi_method, lo, hi in (("z", "pi_z_lb", "pi_z_ub"), ("t(k-1)", "pi_t1_lb", "pi_t1_ub"),
                                  ("t(k-2)", "pi_t2_lb", "pi_t2_ub")):
            iv = mv.intervals(fit.estimate, fit.se, fit.tau2, k, fit.kh_factor, [f["test"]], [pi_method])
            problems += [_close(f"{where} {name}", iv[name], f[key]) for name, key in
                         (("se", "se"), ("ci_lb", "ci_lb"), ("ci_ub", "ci_ub"), ("pi_lb", lo), ("pi_ub", hi))]
            checked += 5
        own = {"z": "z", "knha": "t(k-1)", "t": "t(k-1)"}[f["test"]]  # metafor's predict() under that test
        iv = mv.intervals(fit.estimate, fit.se, fit.tau2, k, fit.kh_factor, [f["test"]], [own])
        problems += [_close(f"{where} predict {a}", iv[a], f[b]) for a, b in
                     (("pi_lb", "predict_pi_lb"), ("pi_ub", "predict_pi_ub"))]
        problems += [_close(f"{where} estimate", fit.estimate, f["estimate"]),
                     _close(f"{where} tau2", fit.tau2, f["tau2"])]
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
    assert checked == 48 * 15


def test_intervals_reject_unknown_methods():
    with pytest.raises(ValueError, match="unknown CI or PI method"):
        mv.intervals([0.1], [0.1], [0.0], [5], [1.0], ["wald"], ["z"])


# ------------------------------------------------------------------------------------------- the grid
def test_specification_count_is_the_product(universe):
    grid = universe.grid
    counts = {name: len(v) for name, v in grid.levels().items()}
    assert counts == {"estimator": 4, "ci_method": 3, "pi_method": 3, "correlation": 4, "window_rule": 3,
                      "outliers": 2, "rob_filter": 2, "multiarm": 2, "effect_basis": 3}
    assert len(universe.table) == grid.size == math.prod(counts.values()) == 10368
    assert not universe.table.duplicated(list(CHOICE_COLUMNS)).any()  # every combination once
    assert universe.table["is_main"].sum() == 1
    assert (universe.table["status"] == "ok").all()


def test_grid_holds_todays_choice_and_fixes_what_cannot_vary(project, spec):
    review = project.review
    small = mv.Grid(estimator=("DL",), ci_method=("knha",))
    g = mv.grid_for(spec, review, small)
    assert g.estimator == ("REML", "DL") and g.ci_method == ("z", "knha")
    nowindow = mv.grid_for(replace(spec, window=None), review)
    assert nowindow.window_rule == ("closest",)
    with pytest.raises(ValueError, match="Grid.ci_method: 'wald'"):
        mv.Grid(ci_method=("wald",))
    with pytest.raises(TypeError, match="non-empty tuple"):
        mv.Grid(estimator="REML")


# ------------------------------------------------------------------------------------------- main = run
def test_main_specification_equals_metaexercise_run(universe, project, replica_sheets, spec):
    """The is_main row holds exactly the floats run_analysis puts in analyses.csv, and writes the same text."""
    main = universe.main
    assert main["estimator"] == "REML" and main["ci_method"] == "z" and main["pi_method"] == "z"
    assert (main["correlation"], main["window_rule"], main["multiarm"], main["effect_basis"]) == (
        "estimated", "closest", "combine", "exact")
    row = run_analysis(spec, replica_sheets, project.review).row()
    for name in ("k", "estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "vas_points", "vas_sd"):
        assert main[name] == row[name], name  # same floats, not merely close
    ours = pd.read_csv(io.BytesIO(mv.table_csv(universe, SYNTHETIC_LABEL)), dtype=str)
    ours = ours[ours["is_main"] == "True"].iloc[0]
    frame = pd.DataFrame([row], columns=list(ANALYSIS_COLUMNS))
    theirs = pd.read_csv(io.BytesIO(_csv(frame)), dtype=str).iloc[0]
    for name in ("k", "estimate", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub", "tau2", "vas_points", "vas_sd"):
        assert ours[name] == theirs[name], name
    assert ours["data"] == SYNTHETIC_LABEL
    # the batched fit of the main data set agrees with run's rma to rounding (the row itself is run's)
    at = universe.table.index[universe.table["is_main"]][0]
    assert at == 0  # today's value comes first in every choice


def test_a_dl_z_specification_equals_rma(universe, project, replica_sheets, spec):
    """DL / z / z (and DL / knha) on a non-main data set: the same numbers as rma(yi, vi, method="DL")."""
    pick = {"estimator": "DL", "correlation": "0.2", "window_rule": "latest", "outliers": "all",
            "rob_filter": "without high", "multiarm": "split", "effect_basis": "revman5"}
    sets = mv.build_data_sets(spec, replica_sheets, project.review, universe.grid, "latest", "split")
    ds = next(d for d in sets if d.key == ("0.2", "latest", "split", "without high", "all", "revman5"))
    t = universe.table
    rows = t.loc[np.logical_and.reduce([t[c].eq(v) for c, v in pick.items()])].set_index(["ci_method", "pi_method"])
    z = rma(ds.yi, ds.vi, method="DL")
    kh = rma(ds.yi, ds.vi, method="DL", test="knha")
    r = rows.loc[("z", "z")]
    assert r["k"] == z.k == ds.k < 32
    for ours, theirs in ((r["estimate"], z.estimate), (r["se"], z.se[0]), (r["ci_lb"], z.ci_lb[0]),
                         (r["ci_ub"], z.ci_ub[0]), (r["pi_lb"], z.pi_lb), (r["pi_ub"], z.pi_ub), (r["tau2"], z.tau2)):
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-14)
    r = rows.loc[("knha", "t(k-1)")]
    for ours, theirs in ((r["se"], kh.se[0]), (r["ci_lb"], kh.ci_lb[0]), (r["ci_ub"], kh.ci_ub[0]),
                         (r["pi_lb"], kh.pi_lb), (r["pi_ub"], kh.pi_ub)):
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-14)


def test_basis_changes_the_data_and_rob_filter_drops_high(universe, project, replica_sheets, spec):
    sets = {d.key: d for d in mv.build_data_sets(spec, replica_sheets, project.review, universe.grid,
                                                  "closest", "combine")}
    exact = sets[("estimated", "closest", "combine", "all", "all", "exact")]
    cohen = sets[("estimated", "closest", "combine", "all", "all", "cohen")]
    revman = sets[("estimated", "closest", "combine", "all", "all", "revman5")]
    assert np.all(np.abs(cohen.yi) > np.abs(exact.yi))  # Hedges' correction shrinks d
    assert not np.array_equal(revman.yi, exact.yi)
    rated = replica_sheets.studies.set_index("study_id")["rob_overall"]
    low = sets[("estimated", "closest", "combine", "without high", "all", "exact")]
    assert all(rated[s] != "high" for s in low.study_ids) and low.k < exact.k
    assert set(exact.study_ids) - set(low.study_ids) == {s for s in exact.study_ids if rated[s] == "high"}


def test_baseline_sd_is_the_runs(universe, project, replica_sheets, spec):
    """The multiverse's cached baseline SD equals analyses.baseline_sd on the same comparisons, to the bit."""
    rules = [("closest", "combine", "all"), ("latest", "split", "without high")]
    helper = mv._BaselineSD(replica_sheets, project.review, spec.outcome)
    outcome = project.review.outcome(spec.outcome)
    for window_rule, multiarm, rob in rules:
        frame = mv._stacked(spec, replica_sheets, project.review, window_rule, multiarm, None)
        if rob != "all":
            frame = frame[frame["rob_overall"].ne("high")].reset_index(drop=True)
        assert helper.sd(frame) == baseline_sd(replica_sheets, frame, outcome).sd


# ------------------------------------------------------------------------------------------- shares
def _hand_case() -> mv.Multiverse:
    """Five specifications whose shares can be checked by eye (MID 1.5 points, lower is better)."""
    table = pd.DataFrame({
        "estimate": [-0.40, -0.10, 0.30, -0.80, np.nan],
        "ci_lb": [-0.60, -0.30, 0.20, -1.00, np.nan],
        "ci_ub": [-0.20, 0.10, 0.40, -0.60, np.nan],
        "pi_lb": [-1.00, -0.90, -0.10, -1.20, np.nan],
        "pi_ub": [0.20, 0.70, 0.70, np.nan, np.nan],  # the 4th: t(k-2) at k = 2
        "vas_points": [-0.80, -0.20, 0.60, -1.60, np.nan],
        "vas_sd": [2.0, 2.0, 2.0, 2.0, np.nan],
        "tau2": [0.1, 0.1, 0.1, 0.0, np.nan],
        "status": ["ok", "ok", "ok", "ok", "insufficient data (k=1)"],
        "is_main": [True, False, False, False, False],
        "k": [5, 5, 5, 2, 1],
    })
    spec = type("S", (), {"id": "toy", "label": "toy analysis"})()
    return mv.Multiverse(spec, mv.Grid(), mv.Choices(), table, lower_is_better=True, mid=1.5, synthetic=True)


def test_shares_on_a_hand_checkable_case():
    s = mv.summary(_hand_case())
    assert s["specifications"] == 5 and s["fitted"] == 4
    assert s["not_fitted"] == {"insufficient data (k=1)": 1}
    assert s["ci_excludes_0"] == {"count": 3, "of": 4, "share": 0.75}  # rows 1, 3 and 4
    assert s["pi_excludes_0"] == {"count": 0, "of": 3, "share": 0.0}  # row 4 has no PI
    mid = s["reaches_mid"]
    assert (mid["count"], mid["of"], mid["share"]) == (1, 4, 0.25)  # only -1.6 points reaches -1.5
    assert s["estimate"] == {"min": -0.8, "median": pytest.approx(-0.25), "max": 0.3}
    higher = _hand_case()
    higher = mv.Multiverse(higher.spec, higher.grid, higher.today, higher.table, lower_is_better=False, mid=0.5,
                           synthetic=True)
    assert mv.summary(higher)["reaches_mid"]["count"] == 1  # +0.6 points, in the direction of benefit


def test_summary_of_the_replica(universe):
    s = mv.summary(universe)
    t = universe.table
    assert s["ci_excludes_0"]["count"] == int(((t["ci_lb"] > 0) | (t["ci_ub"] < 0)).sum())
    assert s["main"]["estimate"] == universe.main["estimate"]
    assert s["reaches_mid"]["mid"] == 1.5 and s["reaches_mid"]["lower_is_better"] is True


def test_real_extraction_without_data_is_insufficient_not_an_error(project):
    sheets = mv.load_source(project, DataSource.EXTRACTION)
    small = mv.Grid(estimator=("REML",), ci_method=("z",), pi_method=("z", "t(k-2)"), correlation=("estimated",),
                    window_rule=("closest",), outliers=("all",), rob_filter=("all",), multiarm=("combine",),
                    effect_basis=("exact",))
    out = mv.compute(mv.find_spec(project, "pain_active_short"), sheets, project.review, small)
    assert out.table["status"].str.startswith("insufficient data").all()
    s = mv.summary(out)
    assert s["fitted"] == 0 and s["ci_excludes_0"]["share"] is None and s["estimate"] is None


# ------------------------------------------------------------------------------------------- Dask
SMALL = mv.Grid(estimator=("REML", "DL"), ci_method=("z", "knha"), pi_method=("z", "t(k-2)"),
                correlation=("estimated", "0.2"), window_rule=("closest", "latest"), outliers=("all", "without flagged"),
                rob_filter=("all",), multiarm=("combine", "split"), effect_basis=("exact", "cohen"))


def test_same_table_for_one_and_two_workers(project, replica_sheets, spec):
    from distributed import Client, LocalCluster

    one = mv.compute(spec, replica_sheets, project.review, SMALL)
    threads = mv.compute(spec, replica_sheets, project.review, SMALL, scheduler="threads")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        two = mv.compute(spec, replica_sheets, project.review, SMALL, scheduler=client)
    assert len(one.table) == SMALL.size == 256
    for other in (threads, two):
        pd.testing.assert_frame_equal(one.table, other.table, check_exact=True)
        assert mv.table_csv(one, "x") == mv.table_csv(other, "x")


# ------------------------------------------------------------------------------------------- files, plot, command
def test_write_keeps_other_analyses_and_drops_a_stale_figure(tmp_path):
    p = Project(tmp_path)
    mv.write(p, DataSource.REPLICA, "a", {"a.csv": b"1", "a.json": b"{}", "a.png": b"png"})
    mv.write(p, DataSource.REPLICA, "b", {"b.csv": b"2", "b.json": b"{}"})
    folder = tmp_path / "results" / "replica" / "multiverse"
    assert sorted(x.name for x in folder.iterdir()) == ["a.csv", "a.json", "a.png", "b.csv", "b.json"]
    mv.write(p, DataSource.REPLICA, "a", {"a.csv": b"3", "a.json": b"{}"})
    assert sorted(x.name for x in folder.iterdir()) == ["a.csv", "a.json", "b.csv", "b.json"]
    assert (folder / "a.csv").read_bytes() == b"3" and (folder / "b.csv").read_bytes() == b"2"
    assert mv.output_folder(p, DataSource.EXTRACTION) == tmp_path / "results" / "multiverse"


def _overlaps():
    """The project's text-overlap check of the book's figures (tests/plots/test_figure_overlaps.py)."""
    import importlib.util

    path = ROOT / "tests" / "plots" / "test_figure_overlaps.py"
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("figure_overlaps", path))
    module.__spec__.loader.exec_module(module)
    return module.overlaps


def test_specification_curve_draws_and_refuses_nothing(universe):
    from metaexercise.plots.specification_curve import DENSE_FROM, specification_curve

    info = mv.summary(universe)
    fig = specification_curve(universe.table, CHOICE_LABELS, **curve_options(universe.table, info))
    texts = [t.get_text() for t in fig.texts]
    assert any("SYNTHETIC" in t for t in texts)
    # no text on text or data (checked on the 864 specifications with today's correlation and window rule:
    # still the dense drawing, and the check's cost grows with the number of lines)
    t = universe.table
    part = t[t["correlation"].eq("estimated") & t["window_rule"].eq("closest")]
    assert len(part) == 864 >= DENSE_FROM
    assert _overlaps()(specification_curve(part, CHOICE_LABELS, **curve_options(part, info))) == []
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert len(labels) == sum(len(v) for v in universe.grid.levels().values())
    with pytest.raises(ValueError, match="none was fitted"):
        specification_curve(_hand_case().table.iloc[4:].assign(**{c: "x" for c in CHOICE_LABELS}),
                            CHOICE_LABELS)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, default=ROOT)
    command.register(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv, words", [
    (("nope",), "no analysis 'nope'"),
    (("metareg_pain", "--source", "replica"), "analyses/metaregression.yaml, analysis 'metareg_pain': a meta-regression"),
    (("pain_active_short", "--workers", "-1"), "--workers -1"),
])
def test_bad_input_exits_2_with_a_located_message(argv, words, capsys):
    assert command.run(_args(*argv)) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_the_book_has_a_multiverse_page_when_one_is_stored(tmp_path):
    import shutil

    from metaexercise.publish.generate import plan_book

    root = tmp_path / "p"
    (root / "analyses").mkdir(parents=True)
    shutil.copy(ROOT / "review.yaml", root / "review.yaml")
    shutil.copy(ROOT / "analyses" / "main.yaml", root / "analyses" / "main.yaml")
    assert "multiverse" not in plan_book(Project(root)).pages
    for folder in ("results/replica/multiverse", "results/multiverse"):
        (root / folder).mkdir(parents=True)
    (root / "results/replica/multiverse/pain_active_short.csv").write_text("x\n")
    page = plan_book(Project(root)).pages["multiverse"]
    assert 'bp.multiverse_report("pain_active_short", "replica")' in page.text
    assert "bp.synthetic_banner()" in page.text and "## Real extraction" not in page.text
    (root / "results/multiverse/pain_passive_short.csv").write_text("x\n")
    plan = plan_book(Project(root))
    text = plan.pages["multiverse"].text
    assert text.index("## Real extraction") < text.index('"pain_passive_short", "real"') < text.index(
        "## Synthetic replica") < text.index('"pain_active_short", "replica"')
    assert any({"file": "multiverse"} in part["chapters"] for part in plan.toc["parts"])


def test_a_data_set_the_engine_refuses_fails_alone():
    """One study outweighing the others 1e10-fold: that data set's fits fail with the engine's reason; the
    other data set of the same batched call is fitted as on its own."""
    good = mv.DataSet(("a",), ("s1", "s2", "s3"), np.array([0.1, 0.3, -0.2]), np.array([0.04, 0.05, 0.06]),
                      0.5, 2.0)
    bad = mv.DataSet(("b",), ("s1", "s2"), np.array([0.1, 0.3]), np.array([1e-11, 0.1]), 0.5, 2.0)
    fits = mv.fit_data_sets([good, bad], ("REML", "DL"))
    assert fits.status[0].tolist() == ["", ""]
    assert all(s.startswith("fit failed: rma_batch: row 0: the study in column 0") for s in fits.status[1])
    assert np.isnan(fits.estimate[1]).all()
    alone = rma_batch(good.yi[None, :], good.vi[None, :], "DL")
    assert fits.estimate[0, 1] == alone.estimate[0] and fits.tau2[0, 1] == alone.tau2[0]
