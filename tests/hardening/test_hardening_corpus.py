"""Every malformed input of the generated corpus (hardening_corpus.py: extraction sheets as CSV and XLSX,
analysis specs, the instrument registry, the project file, search files, reported tables) is answered by
every verb that reads it with exit code 2 and a message on stderr that names the file and the place in it
(`validate` prints its problem table, the report it exists for, on stdout), never a traceback; the inputs are left byte for byte as they were and nothing is written (no results/, no
imported sheets, no template, no staging folder). The CLI runs in this process (`main(argv)`), for speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import time
import traceback
from pathlib import Path

import pytest
from hardening_corpus import CASES, build_base, copy_base


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = build_base(tmp_path_factory.mktemp("hardening") / "base")
    for verbs in ((("validate",)), ("validate", str(root / "form.xlsx")), ("search", "status"),
                  ("audit", "--reported", str(root / "reported.csv"))):
        code, out, err = cli(root, list(verbs))
        assert code == 0, (verbs, err)  # the starting point is valid for every verb the corpus uses
    return root


def cli(root: Path, argv: list[str]) -> tuple[object, str, str]:
    from metaexercise.commands.cli import main

    argv = [a.replace("PROJECT", str(root)) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--project", str(root), *argv])
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # what a user must never see
            code = "traceback"
            err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under the project (folders as "dir"), hidden ones included."""
    return {p.relative_to(root).as_posix(): ("dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*"))}


def test_the_corpus_is_large_and_covers_every_kind_of_input():
    areas = {}
    for case in CASES:
        areas[case.area] = areas.get(case.area, 0) + 1
    assert len(CASES) >= 150, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)
    assert areas["extraction-csv"] >= 60 and areas["extraction-xlsx"] >= 15 and areas["spec"] >= 40
    assert areas["registry"] >= 15 and {"review", "search", "audit"} <= set(areas)


#: CPU seconds the commands of each case took (`test_the_corpus_ran_in_well_under_a_minute`).
SECONDS: dict[str, float] = {}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_exits_2_with_a_located_message(case, base, tmp_path):
    root = copy_base(base, tmp_path / "project")
    case.damage(root)
    before = snapshot(root)
    SECONDS[case.id] = 0.0
    for verb in case.verbs:
        start = time.process_time()  # CPU time: the machine's load does not count
        code, out, err = cli(root, list(verb))
        SECONDS[case.id] += time.process_time() - start
        assert "Traceback" not in err + out, f"{verb}:\n{err}"
        assert code == 2, f"{verb} exited {code}:\n{err[-3000:]}"
        report = err + out if verb[0] == "validate" else err  # validate's report (its table) is on stdout
        lines = [ln for ln in report.splitlines() if case.file in ln]
        assert lines, f"{verb}: the message does not name {case.file}:\n{report[-3000:]}"
        assert any(re.search(case.where, ln) for ln in lines), (
            f"{verb}: no line naming {case.file} says where ({case.where}):\n" + "\n".join(lines[:20]))
        assert snapshot(root) == before, f"{verb} changed or wrote files"


def test_the_corpus_ran_in_well_under_a_minute():
    """The command runs of the whole corpus, timed (CPU time of this process) as the test above ran them; this
    is the file's last test."""
    if len(SECONDS) < len(CASES):
        pytest.skip("only part of the corpus ran")
    total = sum(SECONDS.values())
    print(f"\n{len(CASES)} malformed inputs, {sum(len(c.verbs) for c in CASES)} command runs: {total:.1f} s CPU")
    assert total < 40
