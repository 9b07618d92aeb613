"""The `metaexercise search` command's error paths: exit code 2, the message on stderr naming file and
line, and nothing written."""

from __future__ import annotations

import json

from search_exports import RIS_TWO, sha256

from metaexercise.commands.cli import main


def test_import_error_exits_2_and_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "truncated.ris"
    bad.write_text(RIS_TWO[: RIS_TWO.rindex("ER  -")])
    digest = sha256(bad)
    code = main(["search", "--project", str(tmp_path), "import", str(bad), "--database", "CENTRAL",
                 "--date", "2026-11-01"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: truncated.ris line 12: the record that starts on line 12 has no end tag")
    assert sha256(bad) == digest
    assert not (tmp_path / "searches").exists() or not [
        p for p in (tmp_path / "searches").rglob("*") if p.is_file()]


def test_latin1_import_warns_on_stderr(tmp_path, capsys):
    path = tmp_path / "old.ris"
    path.write_bytes(RIS_TWO.encode("latin-1"))
    assert main(["search", "import", str(path), "--database", "CENTRAL", "--date", "2026-11-01",
                 "--project", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: old.ris line 3: not valid UTF-8" in captured.err
    assert "old.ris: 2 records (ris, latin-1)" in captured.out


def test_status_of_a_project_without_imports(tmp_path, capsys):
    assert main(["search", "status", "--json", "--project", str(tmp_path)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert {k: counts[k] for k in ("records_identified", "duplicates_removed", "records_screened")} == {
        "records_identified": 0, "duplicates_removed": 0, "records_screened": 0}
    assert counts["total_studies"] == counts["previous_studies"] == 58


def test_bad_screening_log_is_reported(tmp_path, capsys):
    (tmp_path / "searches").mkdir()
    (tmp_path / "searches" / "screening.csv").write_text("record_id,title\nr1,A\n")
    assert main(["search", "status", "--project", str(tmp_path)]) == 2
    assert "screening.csv row 1: missing column(s) authors" in capsys.readouterr().err


def test_bad_previous_edition_is_reported(tmp_path, capsys):
    (tmp_path / "searches").mkdir()
    (tmp_path / "searches" / "previous_edition.csv").write_text("title,year\nA trial,2020\n")
    path = tmp_path / "a.ris"
    path.write_text(RIS_TWO)
    assert main(["search", "import", str(path), "--database", "PubMed", "--date", "2026-11-01",
                 "--project", str(tmp_path)]) == 2
    assert ("error: previous_edition.csv row 1: missing column(s) authors, doi, pmid, decision, edition"
            in capsys.readouterr().err)
    assert not (tmp_path / "searches" / "imports.csv").exists()  # checked before anything is imported
