"""Write the malformed-input corpus: each file is the valid fixture (`../valid/`) with ONE defect.

`<sheet>__<case>.csv` replaces that sheet of the valid CSV folder; `*.xlsx` and other files are whole
workbooks. The message each file must produce is pinned in `test_sheets_malformed.py`, written by hand,
not by this script. Run from anywhere: `python tests/sheets/malformed/make_corpus.py`.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
VALID = HERE.parent / "valid"
SHEETS = ("studies", "arms", "outcomes", "risk_of_bias")


def read(sheet: str) -> list[list[str]]:
    return list(csv.reader((VALID / f"{sheet}.csv").open(encoding="utf-8", newline="")))


def text(rows: list[list[str]], sep: str = ",") -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def put(rows, row: int, column: str, value: str):
    """Set spreadsheet row `row` (header = 1) of `column`."""
    rows = [list(r) for r in rows]
    rows[row - 1][rows[0].index(column)] = value
    return rows


def drop_column(rows, column: str):
    j = rows[0].index(column)
    return [r[:j] + r[j + 1:] for r in rows]


def csv_case(name: str, rows, sep: str = ",") -> None:
    (HERE / f"{name}.csv").write_text(text(rows, sep), encoding="utf-8", newline="")


def csv_cases() -> None:
    s, a, o, rob = (read(x) for x in SHEETS)
    csv_case("studies__missing_column", drop_column(s, "year"))
    csv_case("studies__extra_column", [r + [v] for r, v in zip(s, ["colour", "blue", "red"], strict=True)])
    csv_case("studies__duplicate_header", [r + [r[1]] for r in s])
    csv_case("studies__text_in_year", put(s, 2, "year", "2020a"))
    csv_case("studies__year_not_whole", put(s, 2, "year", "2020.5"))
    csv_case("studies__decimal_comma", put(s, 2, "mean_age", "45,5"))
    csv_case("studies__duplicate_id", put(s, 3, "study_id", "alpha2020"))
    csv_case("studies__bad_code", put(s, 2, "design", "paralel"))
    csv_case("studies__cluster_without_icc", put(s, 3, "icc", ""))
    csv_case("studies__excluded_without_reason", put(s, 2, "inclusion_status", "excluded"))
    csv_case("studies__required_blank", put(s, 2, "first_author", ""))
    csv_case("studies__bad_bool", put(s, 2, "synthetic", "maybe"))
    csv_case("studies__percent_over_100", put(s, 2, "percent_female", "120"))
    csv_case("studies__related_above_total",
             put(put(s, 2, "adverse_events_total", "3"), 2, "adverse_events_related", "5"))
    csv_case("studies__mixed_synthetic", put(s, 3, "synthetic", "false"))
    csv_case("studies__header_only", s[:1])
    csv_case("studies__study_without_arms", s + [put(s, 2, "study_id", "gamma2019")[1]])
    csv_case("studies__semicolons", s, sep=";")
    csv_case("studies__tabs", s, sep="\t")
    ragged = text(s).splitlines()
    ragged[1] += ",surplus"
    (HERE / "studies__ragged_row.csv").write_text("\n".join(ragged) + "\n", encoding="utf-8")
    (HERE / "studies__empty.csv").write_bytes(b"")
    (HERE / "studies__latin1.csv").write_bytes(text(put(s, 2, "first_author", "Pérez")).encode("cp1252"))
    (HERE / "studies__utf16.csv").write_bytes(text(s).encode("utf-16"))
    csv_case("arms__unknown_study", put(a, 2, "study_id", "gamma2019"))
    csv_case("arms__control_without_type", put(a, 3, "control_type", ""))
    csv_case("arms__individualized_with_type", put(a, 2, "control_type", "passive"))
    csv_case("arms__n_below_2", put(a, 2, "n_randomised", "1"))
    csv_case("outcomes__sd_negative", put(o, 2, "sd", "-18"))
    csv_case("outcomes__sd_zero", put(o, 2, "sd", "0"))
    csv_case("outcomes__n_one", put(o, 2, "n", "1"))
    csv_case("outcomes__mean_outside_range", put(o, 4, "mean", "130"))
    csv_case("outcomes__ci_excludes_estimate", put(put(o, 8, "ci_low", "0.2"), 8, "ci_high", "0.8"))
    csv_case("outcomes__ci_reversed", put(put(o, 8, "ci_low", "-0.4"), 8, "ci_high", "-1.6"))
    csv_case("outcomes__ci_one_limit", put(o, 8, "ci_high", ""))
    csv_case("outcomes__estimate_off_centre", put(o, 8, "mean", "-1.5"))
    csv_case("outcomes__as_printed_override",
             put(put(put(o, 8, "mean", "1.0"), 8, "as_printed", "sign probably lost"), 8, "as_printed_use", "negate"))
    csv_case("outcomes__unknown_arm", put(o, 3, "arm_id", "xyz"))
    csv_case("outcomes__unknown_study", put(o, 2, "study_id", "gamma2019"))
    csv_case("outcomes__negative_timepoint", put(o, 4, "timepoint_weeks", "-4"))
    csv_case("outcomes__unknown_instrument", put(o, 6, "instrument", "Oswestry"))
    csv_case("outcomes__instrument_other_outcome", put(o, 2, "instrument", "ODI"))
    csv_case("outcomes__duplicate_key", put(o, 3, "arm_id", "ind"))
    csv_case("outcomes__contrast_without_comparator", put(o, 8, "comparator_arm_id", ""))
    csv_case("outcomes__contrast_arm_is_control", put(put(o, 8, "arm_id", "uc"), 8, "comparator_arm_id", "ind"))
    csv_case("outcomes__baseline_not_at_zero", put(o, 2, "timepoint_weeks", "2"))
    csv_case("outcomes__quartiles_disordered", put(o, 9, "q3", "-4"))
    csv_case("outcomes__no_numbers", put(put(o, 6, "mean", ""), 6, "se", ""))
    csv_case("outcomes__change_exceeds_width", put(o, 6, "mean", "-140"))
    csv_case("outcomes__n_on_contrast", put(o, 8, "n", "107"))
    csv_case("outcomes__p_zero", put(o, 8, "p_value", "0"))
    csv_case("outcomes__unclear_orientation", put(o, 8, "reported_as", "unclear"))
    csv_case("outcomes__use_without_reason", put(o, 8, "as_printed_use", "negate"))
    csv_case("outcomes__final_as_improvement", put(o, 4, "reported_as", "improvement"))
    csv_case("risk_of_bias__bad_judgement", put(rob, 2, "judgement", "unclear"))
    csv_case("risk_of_bias__unknown_domain", put(rob, 3, "domain", "blinding of outcome assessors"))


def workbook_from_valid():
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in SHEETS:
        ws = wb.create_sheet(sheet)
        for r in read(sheet):
            ws.append([_value(v) for v in r])
    return wb


def _value(v: str):
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v else f


def _set_cached_value(path: Path, sheet_xml: str, ref: str, value: str) -> None:
    """openpyxl never saves a formula's value; add one, as Excel would."""
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    xml = items[sheet_xml].decode()
    xml, count = re.subn(rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v\s*/>|<v></v>)?', rf"\1\2<v>{value}</v>", xml)
    assert count == 1, "formula cell not found"
    items[sheet_xml] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in items.items():
            z.writestr(n, data)


def xlsx_cases() -> None:
    wb = workbook_from_valid()
    wb["studies"].merge_cells("E2:E3")  # design column: "parallel" spread over both studies
    wb.save(HERE / "merged_cells.xlsx")

    wb = workbook_from_valid()
    wb["arms"]["G2"] = "=20*2"  # n_randomised
    wb.save(HERE / "formula_cached.xlsx")
    _set_cached_value(HERE / "formula_cached.xlsx", "xl/worksheets/sheet2.xml", "G2", "40")

    wb = workbook_from_valid()
    wb["arms"]["G2"] = "=20*2"
    wb.save(HERE / "formula_uncached.xlsx")

    wb = workbook_from_valid()
    wb.remove(wb["risk_of_bias"])
    wb.save(HERE / "missing_sheet.xlsx")

    wb = workbook_from_valid()
    wb.create_sheet("my notes")["A1"] = "to do"
    wb.save(HERE / "extra_sheet.xlsx")

    wb = workbook_from_valid()
    wb["outcomes"]["K2"] = "n/a"  # n
    wb.save(HERE / "text_in_numeric.xlsx")

    wb = workbook_from_valid()
    wb["arms"].cell(2, 40, "stray note")
    wb.save(HERE / "value_without_header.xlsx")

    wb = workbook_from_valid()
    wb["studies"].delete_rows(1, 3)
    wb.save(HERE / "empty_sheet.xlsx")

    (HERE / "not_a_workbook.xlsx").write_text((VALID / "studies.csv").read_text(encoding="utf-8"), encoding="utf-8")
    (HERE / "corrupt_zip.xlsx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (HERE / "old_format.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))


if __name__ == "__main__":
    csv_cases()
    xlsx_cases()
    print(len(list(HERE.glob("*.csv"))) + len(list(HERE.glob("*.xls*"))), "files")
