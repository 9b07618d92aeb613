"""The workbook reader reads each sheet once (openpyxl read-only, saved values) plus a light scan of the
sheet's XML for formulas and merged ranges. Its answer must be the one of the former reader, which loaded the
whole workbook twice (with and without saved values) with openpyxl's full loader: the same header, rows, row
numbers and problems, for formulas (plain, shared, array; with and without a saved value), merged ranges
(in the data, over the header, past the last row), a wrong <dimension>, cells without coordinates, a
namespace prefix, dates and booleans. The oracle below is that former reader, kept here as the reference."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from metaexercise.extraction import sheets
from metaexercise.extraction.schema import SHEET_NAMES

VALID = Path(__file__).parent / "valid"


def oracle(path: Path) -> tuple[dict, list]:
    """The former reader: two full loads; formulas found on the second, their saved values on the first."""
    out = sheets._Problems()
    data = path.read_bytes()
    values = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    formulas = openpyxl.load_workbook(io.BytesIO(data), data_only=False)
    raws = {}
    for name in SHEET_NAMES:
        ws, wf = values[name], formulas[name]
        grid = [list(r) for r in ws.iter_rows(values_only=True)]
        for rng in ws.merged_cells.ranges:
            top = ws.cell(rng.min_row, rng.min_col).value
            out.add(path, ws.title, rng.min_row, None, rng.coord,
                    f"merged cells {rng.coord}: the top-left value is used for every cell of the range; "
                    "unmerge them", sheets.Severity.WARNING)
            for r in range(rng.min_row, rng.max_row + 1):
                for c in range(rng.min_col, rng.max_col + 1):
                    if r - 1 < len(grid) and c - 1 < len(grid[r - 1]):
                        grid[r - 1][c - 1] = top
        for row in wf.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cached = ws.cell(cell.row, cell.column).value
                    where = f"{get_column_letter(cell.column)}{cell.row}"
                    formula = getattr(cell.value, "text", cell.value)  # an ArrayFormula's text
                    if cached is None:
                        out.add(path, ws.title, cell.row, None, formula,
                                f"cell {where} holds a formula with no saved value; open and save the workbook "
                                "in Excel or LibreOffice, or type the value")
                    else:
                        out.add(path, ws.title, cell.row, None, formula,
                                f"cell {where} holds a formula; its saved value {cached!r} is read",
                                sheets.Severity.WARNING)
        grid = [[sheets._cell_text(v) for v in r] for r in grid]
        while grid and not any(grid[-1]):
            grid.pop()
        header = grid[0]
        while header and not header[-1]:
            header.pop()
        rows, numbers = [], []
        for i, r in enumerate(grid[1:], start=2):
            cells = (r + [""] * len(header))[: len(header)]
            if any(c for c in r[len(header):]):
                out.add(path, ws.title, i, None, [c for c in r[len(header):] if c][0],
                        "value in a column without a header")
            if any(cells):
                rows.append(cells)
                numbers.append(i)
        raws[name] = (header, rows, numbers)
    return raws, out.items


def one_pass(path: Path) -> tuple[dict, list]:
    out = sheets._Problems()
    raws = sheets._read_workbook(path, out)
    return {k: (v.header, v.rows, v.row_numbers) for k, v in raws.items()}, out.items


def _valid_book():
    import csv

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name in SHEET_NAMES:
        ws = wb.create_sheet(name)
        for r in csv.reader(open(VALID / f"{name}.csv", encoding="utf-8")):
            ws.append([(float(v) if re.fullmatch(r"-?\d+(\.\d+)?", v) else v) or None for v in r])
    return wb


def _edit(path: Path, sheet: str, edit) -> None:
    """Apply `edit(xml text) -> xml text` to one sheet's XML inside the saved workbook."""
    index = SHEET_NAMES.index(sheet) + 1
    part = f"xl/worksheets/sheet{index}.xml"
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items[part] = edit(items[part].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in items.items():
            z.writestr(n, data)


def _cached(ref: str, value: str):
    return lambda xml: re.sub(rf'(<c r="{ref}"[^>]*>)(<f[^>]*>[^<]*</f>|<f[^>]*/>)(<v\s*/>|<v></v>)?',
                              rf"\1\2<v>{value}</v>", xml)


def _case_plain(wb, path):
    wb["arms"]["G2"] = "=20*2"
    wb["arms"]["G3"] = "=SUM(G2:G2)"
    wb.save(path)
    _edit(path, "arms", _cached("G2", "40"))


def _case_shared_and_array(wb, path):
    wb["outcomes"]["L2"] = "=M2*2"  # mean from sd: the shared master
    wb["outcomes"]["L3"] = "=M3*2"
    wb["outcomes"]["K4"] = "=ROUND(40,0)"
    wb.save(path)

    def edit(xml):
        xml = xml.replace('<c r="L2"', '<c r="L2"').replace("<f>M2*2</f>", '<f t="shared" ref="L2:L3" si="0">M2*2</f>')
        xml = xml.replace("<f>M3*2</f>", '<f t="shared" si="0"/>')
        xml = xml.replace("<f>ROUND(40,0)</f>", '<f t="array" ref="K4">ROUND(40,0)</f>')
        for ref, v in (("L2", "36"), ("L3", "34"), ("K4", "40")):
            xml = _cached(ref, v)(xml)
        return xml

    _edit(path, "outcomes", edit)


def _case_merged(wb, path):
    wb["studies"].merge_cells("E2:E3")
    wb["arms"].merge_cells("M1:O1")  # the header's last cell spread past the header
    ws = wb["risk_of_bias"]
    ws.merge_cells(f"D{ws.max_row}:D{ws.max_row + 2}")  # past the last row
    wb.save(path)


def _case_dimension_and_coordinates(wb, path):
    wb.save(path)
    _edit(path, "studies", lambda xml: re.sub(r'<dimension ref="[^"]+"/>', '<dimension ref="A1"/>', xml))
    _edit(path, "arms", lambda xml: re.sub(r'<c r="[A-Z]+\d+"', "<c", xml))  # cells without coordinates


def _case_prefix_dates_booleans(wb, path):
    import datetime

    wb["studies"]["Z2"] = datetime.date(2020, 5, 1)  # notes
    wb["studies"]["V2"] = True  # synthetic
    wb["arms"]["G2"] = "=40"
    wb.save(path)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

    def prefixed(xml):
        xml = xml.replace(f'xmlns="{main}"', f'xmlns:x="{main}"')
        return re.sub(r"<(/?)(?!\?)([a-zA-Z]+)([\s/>])", r"<\1x:\2\3", xml)

    _edit(path, "arms", lambda xml: prefixed(_cached("G2", "40")(xml)))


CASES = {"plain_formulas": _case_plain, "shared_and_array_formulas": _case_shared_and_array,
         "merged_ranges": _case_merged, "wrong_dimension_no_coordinates": _case_dimension_and_coordinates,
         "prefix_dates_booleans": _case_prefix_dates_booleans}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_pass_reads_what_two_full_loads_read(case, tmp_path):
    path = tmp_path / f"{case}.xlsx"
    CASES[case](_valid_book(), path)
    expected, got = oracle(path), one_pass(path)
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert expected[1] or case == "wrong_dimension_no_coordinates"  # the case did produce problems


def test_the_workbook_is_loaded_once_read_only(tmp_path, monkeypatch):
    path = tmp_path / "book.xlsx"
    _case_plain(_valid_book(), path)
    loads = []
    real = openpyxl.load_workbook

    def counting(*args, **kwargs):
        loads.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(openpyxl, "load_workbook", counting)
    sheets._read_workbook(path, sheets._Problems())
    assert loads == [{"read_only": True, "data_only": True}]


def test_openpyxl_read_only_sheets_still_name_their_xml_part(tmp_path):
    """The light scan opens the sheet's XML part named by openpyxl's read-only worksheet; an openpyxl
    release that renames the attribute fails here rather than in a user's import."""
    path = tmp_path / "book.xlsx"
    _valid_book().save(path)
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        assert book["arms"]._worksheet_path == "xl/worksheets/sheet2.xml"
    finally:
        book.close()
