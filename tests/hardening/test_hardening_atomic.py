"""Outputs replaced as a whole: a crash at any moment of `metaexercise run`'s write (results/, results/replica/)
or of `metaexercise import` (extraction/) leaves the folder holding exactly the previous set or exactly the
new one, and the next write (or `atomic.recover_folder`) removes whatever the crash left behind.

The crash is simulated by failing the k-th filesystem call (rename, link, mkdir, unlink, rmdir, fsync, open,
chmod, copy, the atomic exchange) for k = 1, 2, ... until the write completes; after the crash every further
call fails too (the process is dead: no clean-up code runs), and the crash is a `BaseException`, which no
`except Exception` in the code under test can swallow. Both ways of swapping are covered: the Linux
renameat2(RENAME_EXCHANGE) and the fallback through an `.old-` folder.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from metaexercise import atomic
from metaexercise.extraction.schema import csv_name, form
from metaexercise.extraction.sheets import load_extraction, write_csv_folder
from metaexercise.review import run as runner
from metaexercise.vocabulary import DataSource


class Crash(BaseException):
    """The simulated crash (a BaseException: nothing under test may catch it)."""


#: The calls that change the filesystem (and `open`, which creates files), each a possible crash point.
MUTATING = [(os, "rename"), (os, "replace"), (os, "link"), (os, "mkdir"), (os, "makedirs"), (os, "unlink"),
            (os, "remove"), (os, "rmdir"), (os, "fsync"), (os, "open"), (os, "chmod"), (os, "symlink"),
            (os, "utime"), (shutil, "copy2"), (shutil, "copystat"), (io, "open"), (builtins, "open"),
            (atomic, "exchange")]


class CrashAt:
    """Fail the `k`-th mutating call and every call after it (`calls` counts them all)."""

    def __init__(self, monkeypatch, k: int):
        self.k, self.calls, self.crashed = k, 0, False
        for owner, name in MUTATING:
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, function):
        def wrapper(*args, **kwargs):
            self.calls += 1
            if self.crashed or self.calls == self.k:
                self.crashed = True
                raise Crash(f"crash at call {self.k}")
            return function(*args, **kwargs)
        return wrapper


def tree(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` (relative path -> bytes; a folder as "name/"), None when it does not exist."""
    if not folder.is_dir():
        return None
    out: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        out[rel + ("/" if path.is_dir() else "")] = b"" if path.is_dir() else path.read_bytes()
    return out


def leftovers(parent: Path) -> list[str]:
    """Anything `replace_folder` leaves behind, anywhere under `parent`."""
    return sorted(p.relative_to(parent).as_posix() for p in parent.rglob(".*")
                  if atomic.leftover_base(p.name) is not None or p.name.startswith(".run-"))


def crash_every_step(monkeypatch, operation, target: Path, old: dict | None, new: dict, *,
                     exchange: bool, also_unchanged: tuple[Path, dict] | None = None) -> int:
    """Run `operation()` with a crash at call k = 1, 2, ... (each from a fresh copy of the starting state,
    restored by `operation`'s own set-up); check the folder after each crash and after recovery. Returns the
    number of steps of a complete operation."""
    k = 0
    while True:
        k += 1
        with monkeypatch.context() as m:
            if not exchange:
                m.setattr(atomic, "exchange", lambda a, b: False)
            crash = CrashAt(m, k)
            try:
                operation.run()
            except Crash:
                pass
        if not crash.crashed:
            break
        state = tree(target)
        if exchange or state is not None:  # the fallback has one moment without the folder; see below
            assert state in (old, new), f"mixed folder after a crash at call {k}: {sorted(state or {})}"
        if also_unchanged is not None:
            assert tree(also_unchanged[0]) == also_unchanged[1], f"a folder beside was touched (call {k})"
        atomic.recover_folder(target)
        assert tree(target) in (old, new), f"recovery after a crash at call {k} did not give a whole folder"
        assert leftovers(target.parent) == [], f"left behind after recovery (call {k})"
        if state is not None:
            assert tree(target) == state, "recovery changed a whole folder"
        operation.reset()
    assert tree(target) == new
    assert leftovers(target.parent) == []
    return k


# ------------------------------------------------------------------------------------------ results/
def _output(folder: Path, source: DataSource, files: dict[str, bytes]) -> runner.RunOutput:
    return runner.RunOutput(source=source, folder=folder, results=(), files=files)


def _manifest(files: dict[str, bytes]) -> bytes:
    return json.dumps({"outputs": {n: "x" for n in files}}).encode()


class ResultsWrite:
    """results/ with a previous run's files (one of which the new run no longer writes), results/replica/
    and a file of another command (simulation.csv); `run()` writes a new run's results."""

    def __init__(self, root: Path):
        self.root, self.results = root, root / "results"
        old = {"analyses.csv": b"old analyses\n", "studies.csv": b"old studies\n", "validation.csv": b"stale\n"}
        self.old_files = {**old, "manifest.json": _manifest(old)}
        self.replica = {"analyses.csv": b"replica analyses\n", "manifest.json": b"{}\n"}
        self.other = {"simulation.csv": b"kept\n"}
        new = {"analyses.csv": b"new analyses\n", "studies.csv": b"new studies\n", "forest.csv": b"new forest\n"}
        self.new_files = {**new, "manifest.json": _manifest(new)}
        self.reset()

    def reset(self) -> None:
        if self.results.exists():
            shutil.rmtree(self.results)
        for p in self.root.glob(".results.*"):
            shutil.rmtree(p)
        (self.results / "replica").mkdir(parents=True)
        for name, data in {**self.old_files, **self.other}.items():
            (self.results / name).write_bytes(data)
        for name, data in self.replica.items():
            (self.results / "replica" / name).write_bytes(data)

    def run(self) -> None:
        runner.write(_output(self.results, DataSource.EXTRACTION, self.new_files))

    @property
    def before(self) -> dict:
        return {**self.old_files, **self.other, "replica/": b"",
                **{f"replica/{n}": d for n, d in self.replica.items()}}

    @property
    def after(self) -> dict:
        return {**self.new_files, **self.other, "replica/": b"",
                **{f"replica/{n}": d for n, d in self.replica.items()}}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-fallback"])
def test_results_are_old_or_new_after_a_crash_at_every_step(tmp_path, monkeypatch, exchange):
    op = ResultsWrite(tmp_path)
    steps = crash_every_step(monkeypatch, op, op.results, op.before, op.after, exchange=exchange)
    assert steps > 15  # every file written, synced and the folders swapped: the crash points were many
    assert "validation.csv" not in tree(op.results)  # the previous run's file this run no longer writes


class ReplicaWrite(ResultsWrite):
    """The replica's results: only results/replica/ is replaced; results/ itself is never touched."""

    def run(self) -> None:
        runner.write(_output(self.results / "replica", DataSource.REPLICA, self.new_replica))

    new_replica = {"analyses.csv": b"new replica analyses\n", "sof.csv": b"new sof\n", "manifest.json": b"{ }\n"}

    def reset(self) -> None:
        super().reset()
        for p in self.results.glob(".replica.*"):
            shutil.rmtree(p)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-fallback"])
def test_replica_results_are_old_or_new_and_results_stay_as_they_were(tmp_path, monkeypatch, exchange):
    op = ReplicaWrite(tmp_path)
    around = {**op.old_files, **op.other}
    k = 0
    while True:  # as crash_every_step, checking results/'s own files at each crash as well
        k += 1
        with monkeypatch.context() as m:
            if not exchange:
                m.setattr(atomic, "exchange", lambda a, b: False)
            crash = CrashAt(m, k)
            try:
                op.run()
            except Crash:
                pass
        state = tree(op.results / "replica")
        assert state is None and not exchange or state in (op.replica, op.new_replica), f"call {k}"
        assert {n: (op.results / n).read_bytes() for n in around} == around
        if not crash.crashed:
            break
        # the next *real* run finds the replica's leftovers inside results/ and resolves them first
        ResultsWrite.run(op)
        assert tree(op.results / "replica") in (op.replica, op.new_replica)
        assert leftovers(tmp_path) == []
        op.reset()
    assert k > 10
    assert tree(op.results / "replica") == op.new_replica


def test_a_crash_between_the_fallback_renames_is_completed_by_the_next_run(tmp_path, monkeypatch):
    """The fallback's one window without results/: the old folder moved aside, the new one not yet in place.
    The next run's recovery moves the complete new folder in (it was marked ready before the old one moved)."""
    op = ResultsWrite(tmp_path)
    renames = []

    def rename(src, dst, _real=os.rename):
        renames.append((Path(src).name, Path(dst).name))
        if Path(dst).name == "results":  # new -> ready, results -> old, then (crash) ready -> results
            raise Crash("between the renames")
        return _real(src, dst)

    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(Crash):
        op.run()
    monkeypatch.undo()
    assert not op.results.exists()
    assert [atomic.leftover_base(n) for n in os.listdir(tmp_path) if n.startswith(".")] == ["results", "results"]
    atomic.recover_folder(op.results)
    assert tree(op.results) == op.after and leftovers(tmp_path) == []


def test_the_next_run_removes_the_staging_folders_of_earlier_versions(tmp_path):
    op = ResultsWrite(tmp_path)
    (op.results / ".run-abc123").mkdir()
    (op.results / ".run-abc123" / "analyses.csv").write_bytes(b"half\n")
    op.run()
    assert tree(op.results) == op.after


def test_carried_files_are_hard_links_or_copies_with_the_same_bytes(tmp_path, monkeypatch):
    op = ResultsWrite(tmp_path)
    before = (op.results / "simulation.csv").stat().st_ino
    op.run()
    assert (op.results / "simulation.csv").stat().st_ino == before  # linked, not copied
    op.reset()

    def no_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    op.run()
    assert tree(op.results) == op.after


def test_a_failed_build_changes_nothing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old", encoding="utf-8")

    def build(folder: Path) -> None:
        (folder / "a.txt").write_text("new", encoding="utf-8")
        raise ValueError("the run failed half-way")

    with pytest.raises(ValueError, match="half-way"):
        atomic.replace_folder(target, build)
    assert tree(target) == {"a.txt": b"old"} and leftovers(tmp_path) == []


def test_exchange_swaps_two_folders_on_linux(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "1").write_text("a", encoding="utf-8")
    (b / "2").write_text("b", encoding="utf-8")
    if not atomic.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here; the fallback is tested above")
    assert sorted(os.listdir(a)) == ["2"] and sorted(os.listdir(b)) == ["1"]
    with pytest.raises(FileNotFoundError):
        atomic.exchange(a, tmp_path / "missing")


# ------------------------------------------------------------------------------------------ import
class ImportWrite:
    """extraction/ holding the previous sheets, instruments.yaml and a note; `run()` writes new sheets as
    `metaexercise import` does (`write_csv_folder`)."""

    def __init__(self, root: Path, extraction):
        self.root, self.folder, self.extraction = root, root / "extraction", extraction
        names = [csv_name(sh.name) for sh in form(extraction.vocabulary).sheets]
        self.old = {n: f"old {n}\n".encode() for n in names} | {"instruments.yaml": b"- id: x\n",
                                                                   "notes/": b"", "notes/todo.txt": b"to do\n"}
        self.reset()
        write_csv_folder(extraction, self.folder)
        self.new = tree(self.folder)
        self.reset()

    def reset(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        for p in self.root.glob(".extraction.*"):
            shutil.rmtree(p)
        (self.folder / "notes").mkdir(parents=True)
        for name, data in self.old.items():
            if not name.endswith("/"):
                (self.folder / name).write_bytes(data)

    def run(self) -> None:
        write_csv_folder(self.extraction, self.folder)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-fallback"])
def test_import_is_old_or_new_after_a_crash_at_every_step(tmp_path, monkeypatch, exchange,
                                                          back_pain_vocabulary):
    valid = Path(__file__).resolve().parents[1] / "sheets" / "valid"
    op = ImportWrite(tmp_path, load_extraction(valid, vocabulary=back_pain_vocabulary))
    assert op.new["instruments.yaml"] == b"- id: x\n" and op.new["notes/todo.txt"] == b"to do\n"
    steps = crash_every_step(monkeypatch, op, op.folder, op.old, op.new, exchange=exchange)
    assert steps > 12


def test_import_neutralises_formulas_and_reads_them_back(tmp_path, back_pain_vocabulary):
    """Text a spreadsheet would run gets a leading ' in the written CSV; reading the sheets undoes it, so an
    import round-trips; numbers (a negative mean) stay numbers."""
    valid = Path(__file__).resolve().parents[1] / "sheets" / "valid"
    shutil.copytree(valid, tmp_path / "in")
    studies = pd.read_csv(tmp_path / "in" / "studies.csv", dtype=str, keep_default_na=False)
    studies.loc[0, "notes"] = "=HYPERLINK(\"http://x\",\"click\")"
    studies.loc[1, "notes"] = "-1+2"
    studies.to_csv(tmp_path / "in" / "studies.csv", index=False)
    extraction = load_extraction(tmp_path / "in", vocabulary=back_pain_vocabulary)
    write_csv_folder(extraction, tmp_path / "out")
    written = pd.read_csv(tmp_path / "out" / "studies.csv", dtype=str, keep_default_na=False)
    assert list(written["notes"][:2]) == ["'=HYPERLINK(\"http://x\",\"click\")", "'-1+2"]
    outcomes = pd.read_csv(tmp_path / "out" / "outcomes.csv", dtype=str, keep_default_na=False)
    assert any(v.startswith("-") and float(v) < 0 for v in outcomes["mean"] if v)  # a number, not quoted
    again = load_extraction(tmp_path / "out", vocabulary=back_pain_vocabulary)
    assert list(again.studies["notes"][:2]) == list(extraction.studies["notes"][:2])
    pd.testing.assert_frame_equal(again.outcomes, extraction.outcomes)


def test_run_finishes_an_import_cut_between_the_fallback_renames(tmp_path, monkeypatch):
    """`metaexercise import` cut after moving the old extraction/ aside and before moving the new one in
    (the fallback's one window without the folder): the next `metaexercise run` completes it first."""
    from metaexercise.commands.cli import main

    metadat = Path(__file__).resolve().parents[1] / "reference" / "metadat" / "normand1999_arms.csv"
    root = tmp_path / "p"
    assert main(["init", str(root), "--data", str(metadat)]) == 0
    form = tmp_path / "form.xlsx"
    assert main(["--project", str(root), "template", str(form), "--fill", str(root / "extraction")]) == 0
    expected = tree(root / "extraction")

    def rename(src, dst, _real=os.rename):
        if Path(dst) == root / "extraction":
            raise Crash("between the renames")
        return _real(src, dst)

    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(Crash):
        main(["--project", str(root), "import", str(form)])
    monkeypatch.undo()
    assert not (root / "extraction").exists()
    assert main(["--project", str(root), "run", "--quiet"]) == 0
    assert tree(root / "extraction") == expected  # the form holds the same sheets
    assert leftovers(root) == []
