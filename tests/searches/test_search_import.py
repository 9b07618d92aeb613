"""Importing exports: round trips through RIS (rispy's writer), MEDLINE and CSV layouts; encodings and line
ends; bad input with pinned messages naming file and line; all-or-nothing imports; inputs never modified."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import rispy
from search_exports import NBIB_TWO, RIS_TWO, sha256

from metaexercise.errors import SearchImportError
from metaexercise.searches.csvexport import read_csv_export
from metaexercise.searches.importer import import_exports
from metaexercise.searches.nbib import read_nbib
from metaexercise.searches.records import COLUMNS, FIELDS
from metaexercise.searches.ris import read_ris
from metaexercise.searches.textfile import detect_encoding


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def _rows(reader) -> list[dict[str, str]]:
    return [row for _, row in reader]


def test_ris_round_trip_through_rispy_writer(tmp_path):
    entries = [
        {"type_of_reference": "JOUR", "title": "Graded activity: a trial", "authors": ["Roe, B.", "Doe, A."],
         "year": "2019", "journal_name": "Pain", "doi": "10.1097/j.pain.0000000000001234",
         "abstract": "An abstract.", "accession_number": "31234567"},
        {"type_of_reference": "JOUR", "primary_title": "Specific trunk exercise", "first_authors": ["Lee, M."],
         "publication_year": "2021///", "secondary_title": "Physiotherapy", "urls": ["https://doi.org/10.1016/j.physio.2021.03.006"]},
    ]
    path = _write(tmp_path, "export.ris", rispy.dumps(entries))
    rows = _rows(read_ris(path))
    assert rows[0] == {"title": "Graded activity: a trial", "authors": "Roe, B.; Doe, A.", "year": "2019",
                       "journal": "Pain", "doi": "10.1097/j.pain.0000000000001234", "pmid": "31234567",
                       "abstract": "An abstract."}
    assert rows[1] == {"title": "Specific trunk exercise", "authors": "Lee, M.", "year": "2021",
                       "journal": "Physiotherapy", "doi": "https://doi.org/10.1016/j.physio.2021.03.006",
                       "pmid": "", "abstract": ""}


def test_ris_line_numbers_and_wrapped_fields(tmp_path):
    records = list(read_ris(_write(tmp_path, "a.ris", RIS_TWO)))
    assert [line for line, _ in records] == [1, 12]
    assert records[0][1]["abstract"] == "Background: exercise helps. Methods: a randomised trial."
    assert records[0][1]["authors"] == "Müller, Anna; Smith, J."


def test_nbib_fields(tmp_path):
    records = list(read_nbib(_write(tmp_path, "pubmed.nbib", NBIB_TWO)))
    assert [line for line, _ in records] == [1, 14]
    first, second = records[0][1], records[1][1]
    assert first["title"] == ("A randomized controlled trial on the effectiveness of a classification-based "
                              "system for subacute and chronic low back pain.")
    assert first["authors"] == "Apeldoorn, Adri T; Ostelo, Raymond W"  # FAU preferred to AU
    assert (first["year"], first["journal"], first["doi"], first["pmid"]) == (
        "2012", "Spine", "10.1097/BRS.0b013e31824d9f2b", "22333955")
    assert (second["authors"], second["journal"], second["doi"]) == (
        "Descarreaux M", "J Manipulative Physiol Ther", "10.1067/mmt.2002.127078")


def _csv(tmp_path, name, header, rows, delimiter=",", encoding="utf-8"):
    path = tmp_path / name
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


EXPECTED = {"title": "Exercise, tailored: a trial", "authors": "Smith J.; Doe A.", "year": "2020",
            "journal": "Spine", "doi": "10.1097/BRS.0000000000003333", "pmid": "32000001",
            "abstract": "Text, with a comma."}


@pytest.mark.parametrize(("layout", "header", "delimiter", "encoding"), [
    ("scopus", ["Authors", "Title", "Year", "Source title", "DOI", "Abstract", "PubMed ID"], ",", "utf-8-sig"),
    ("wos", ["PT", "AU", "TI", "SO", "AB", "PY", "DI", "PM"], "\t", "utf-8-sig"),
    ("embase", ["Title", "Author Names", "Source", "Publication Year", "Abstract", "DOI", "Medline PMID"], ",",
     "utf-8"),
])
def test_csv_layouts(tmp_path, layout, header, delimiter, encoding):
    value = {"Authors": EXPECTED["authors"], "AU": EXPECTED["authors"], "Author Names": EXPECTED["authors"],
             "Title": EXPECTED["title"], "TI": EXPECTED["title"], "Year": "2020", "PY": "2020",
             "Publication Year": "2020", "Source title": "Spine", "SO": "Spine", "Source": "Spine",
             "DOI": EXPECTED["doi"], "DI": EXPECTED["doi"], "Abstract": EXPECTED["abstract"],
             "AB": EXPECTED["abstract"], "PubMed ID": "32000001", "PM": "32000001", "Medline PMID": "32000001",
             "PT": "J"}
    path = _csv(tmp_path, f"{layout}.csv", header, [[value[h] for h in header]], delimiter, encoding)
    enc = detect_encoding(path)
    rows = list(read_csv_export(path, encoding=enc.name))
    assert rows == [(2, EXPECTED)]


def test_import_round_trip_of_the_records_table(folder, tmp_path):
    """Importing our own records CSV (layout 'generic') gives back the same bibliographic fields."""
    first = import_exports(folder, [_write(tmp_path, "a.ris", RIS_TWO)], database="Embase",
                           search_date="2026-11-01")[0]
    records = pd.read_csv(folder.records_dir / f"{first.import_id}.csv", dtype=str, keep_default_na=False)
    assert list(records.columns) == list(COLUMNS)
    assert records["source_line"].tolist() == ["1", "12"]
    again = tmp_path / "again.csv"
    records[list(FIELDS)].to_csv(again, index=False)
    second = import_exports(folder, [again], database="Own", search_date="2026-11-02")[0]
    back = pd.read_csv(folder.records_dir / f"{second.import_id}.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back[list(FIELDS)], records[list(FIELDS)])


def test_windows_line_ends_and_bom_read_as_plain_utf8(tmp_path):
    plain = _rows(read_ris(_write(tmp_path, "lf.ris", RIS_TWO)))
    crlf = _write(tmp_path, "crlf.ris", RIS_TWO, newline="\r\n")
    bom = tmp_path / "bom.ris"
    bom.write_bytes(b"\xef\xbb\xbf" + RIS_TWO.replace("\n", "\r\n").encode("utf-8"))
    assert detect_encoding(crlf).name == "utf-8"
    assert detect_encoding(bom).name == "utf-8-sig"
    assert _rows(read_ris(crlf)) == plain
    assert _rows(read_ris(bom, encoding="utf-8-sig")) == plain


def test_utf16_with_byte_order_mark(tmp_path):
    plain = _rows(read_ris(_write(tmp_path, "lf.ris", RIS_TWO)))
    path = tmp_path / "unicode.ris"
    path.write_bytes(RIS_TWO.replace("\n", "\r\n").encode("utf-16"))  # Python writes the BOM first
    encoding = detect_encoding(path)
    assert encoding.name == "utf-16"
    assert _rows(read_ris(path, encoding=encoding.name)) == plain


def test_latin1_falls_back_with_a_note_naming_the_line(folder, tmp_path):
    path = _write(tmp_path, "old.ris", RIS_TWO, encoding="latin-1")
    encoding = detect_encoding(path)
    assert encoding.name == "latin-1"
    assert encoding.note.startswith("old.ris line 3: not valid UTF-8; the whole file was read as Latin-1")
    imported = import_exports(folder, [path], database="CENTRAL", search_date="2026-11-01")
    assert imported[0].notes == (encoding.note,)
    records = pd.read_csv(folder.records_dir / f"{imported[0].import_id}.csv", dtype=str)
    assert records["authors"].iloc[0] == "Müller, Anna; Smith, J."


BAD_INPUT = [
    ("missing_er_at_end.ris", RIS_TWO[: RIS_TWO.rindex("ER  -")],
     "missing_er_at_end.ris line 12: the record that starts on line 12 has no end tag 'ER  -' (the file ends "
     "at line 15); the export is probably truncated"),
    ("missing_er_inside.ris", RIS_TWO.replace("ER  - \n\nTY", "\nTY", 1),
     "missing_er_inside.ris line 11: a new record starts ('TY  -') but the record that starts on line 1 has "
     "no end tag 'ER  -'; add it before line 11"),
    ("unknown_tag.ris", RIS_TWO.replace("PY  - 2024", "XX  - 2024"),
     "unknown_tag.ris line 15: unknown RIS tag 'XX' in the record that starts on line 12"),
    ("malformed.ris", RIS_TWO.replace("PY  - 2023", "PY - 2023"),
     "malformed.ris line 5: malformed RIS tag line 'PY - 2023'"),
    ("outside.ris", "Exported from EndNote\n" + RIS_TWO,
     "outside.ris line 1: text outside a record ('Exported from EndNote')"),
    ("empty.ris", "", "empty.ris line 1: the file is empty; nothing was imported"),
    ("blank.ris", "\r\n  \n", "blank.ris line 1: the file is empty; nothing was imported"),
    ("orphan.nbib", "      continued\n", "orphan.nbib line 1: a continuation line (six leading spaces) with no "
     "field before it"),
    ("nopmid.nbib", "TI  - A title\n", "nopmid.nbib line 1: a MEDLINE record must start with 'PMID- ', found 'TI'"),
    ("badrow.csv", "title,year\nA,2020,extra\n", "badrow.csv line 2: 3 cells where the header has 2"),
    ("noheader.csv", "foo,bar\n1,2\n", "noheader.csv line 1: no known CSV layout matches the header"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_named_by_file_and_line_and_nothing_is_imported(folder, tmp_path, name, text, message):
    good = _write(tmp_path, "good.nbib", NBIB_TWO)
    bad = _write(tmp_path, name, text)
    before = {p: sha256(p) for p in (good, bad)}
    with pytest.raises(SearchImportError) as caught:
        import_exports(folder, [good, bad], database="PubMed", search_date="2026-11-01")
    assert str(caught.value).startswith(message)
    assert not [p for p in folder.root.rglob("*") if p.is_file()]  # nothing half-imported
    assert {p: sha256(p) for p in (good, bad)} == before  # inputs never modified


def test_unknown_tags_can_be_allowed(tmp_path):
    path = _write(tmp_path, "u.ris", RIS_TWO.replace("JO  - Spine", "XY  - Spine"))
    rows = _rows(read_ris(path, allow_unknown_tags=True))
    assert rows[0]["journal"] == ""


def test_an_export_is_imported_once(folder, tmp_path):
    path = _write(tmp_path, "a.ris", RIS_TWO)
    import_exports(folder, [path], database="Embase", search_date="2026-11-01")
    ledger = folder.ledger.read_text()
    with pytest.raises(SearchImportError, match=r"a.ris: this export was already imported \(as a.ris\)"):
        import_exports(folder, [path], database="Embase", search_date="2026-11-02")
    assert folder.ledger.read_text() == ledger


def test_bad_arguments(folder, tmp_path):
    path = _write(tmp_path, "a.ris", RIS_TWO)
    with pytest.raises(SearchImportError, match=r"--date '31.01.2022' is not a date in the form YYYY-MM-DD"):
        import_exports(folder, [path], database="Embase", search_date="31.01.2022")
    with pytest.raises(SearchImportError, match="--database must name the database"):
        import_exports(folder, [path], database=" ", search_date="2022-01-31")
