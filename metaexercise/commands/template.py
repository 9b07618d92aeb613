"""`metaexercise template FORM.xlsx`: write an empty, documented extraction workbook
(`--fill extraction/` writes it with the existing rows, for editing and re-import).

One sheet per extraction sheet (header row with each column's meaning as a cell comment, drop-down
lists for coded and true/false columns, number checks for numeric columns), a README sheet (the
column dictionary from `metaexercise.extraction.schema`) and an Instruments sheet (the instrument registry).
The sheets, codes and instruments are the project's: its review.yaml's vocabulary (the generic one without
a review.yaml) and its registry (`metaexercise.commands.validate.project_sheets`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from metaexercise import atomic
from metaexercise.commands.validate import project_sheets
from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.instruments import Registry, load_registry
from metaexercise.extraction.schema import Column, form, type_text
from metaexercise.extraction.sheets import Extraction, load_extraction
from metaexercise.extraction.vocabulary import SheetVocabulary
from metaexercise.spreadsheet_safety import write_xlsx_cell

#: Rows of each data sheet that carry the drop-down lists and number checks.
FORM_ROWS = 2000


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the workbook to write (.xlsx)")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")
    parser.add_argument("--fill", type=Path, default=None, metavar="EXTRACTION",
                        help="fill the form with existing sheets (a CSV folder or workbook) for editing")


def _validation(col: Column, list_ref: str | None):
    from openpyxl.worksheet.datavalidation import DataValidation

    if list_ref is not None:
        dv = DataValidation(type="list", formula1=list_ref, allow_blank=True)
        dv.error, dv.errorTitle = f"Choose a value from the list ({col.name}).", "Not an allowed value"
    elif col.type in ("int", "float"):
        op_kw = {}
        if col.minimum is not None and col.maximum is not None:
            op_kw = {"operator": "between", "formula1": f"{col.minimum:g}", "formula2": f"{col.maximum:g}"}
        elif col.minimum is not None:
            op_kw = {"operator": "greaterThan" if col.open_minimum else "greaterThanOrEqual",
                     "formula1": f"{col.minimum:g}"}
        else:
            op_kw = {"operator": "between", "formula1": "-1E+300", "formula2": "1E+300"}
        dv = DataValidation(type="whole" if col.type == "int" else "decimal", allow_blank=True, **op_kw)
        dv.error, dv.errorTitle = f"{col.name}: {type_text(col)}", "Not a valid number"
    else:
        return None
    dv.showErrorMessage = True
    return dv


def build_workbook(registry: Registry, vocabulary: SheetVocabulary | None = None):
    """The empty extraction form of `vocabulary` (None: the generic one) as an openpyxl Workbook; its
    Instruments sheet lists the registry's instruments for the declared outcomes (all when none are)."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter, quote_sheetname

    sheets = form(vocabulary).sheets
    registry = registry.for_outcomes(form(vocabulary).vocabulary.outcome_ids)
    wb = Workbook()
    readme = wb.active
    readme.title = "README"
    readme.append(["metaexercise extraction form: fill one sheet per table; row 1 is the header. "
                   "Validate with `metaexercise validate FORM.xlsx`, import with `metaexercise import FORM.xlsx`."])
    readme.append([])
    readme.append(["sheet", "column", "required", "type / allowed values", "meaning", "example"])
    for cell in readme[3]:
        cell.font = Font(bold=True)
    row = 3
    for sh in sheets:
        for c in sh.columns:
            row += 1
            _put_row(readme, row, [sh.name, c.name, "yes" if c.required else "", type_text(c), c.description,
                                   c.example])
    for letter, width in zip("ABCDEF", (14, 28, 9, 50, 80, 30)):
        readme.column_dimensions[letter].width = width

    lists = wb.create_sheet("lists")
    list_refs: dict[str, str] = {}
    j = 0
    for sh in sheets:
        for c in sh.columns:
            values = c.codes if c.type == "code" else ("true", "false") if c.type == "bool" else ()
            if not values or c.name in list_refs:
                continue
            j += 1
            letter = get_column_letter(j)
            write_xlsx_cell(lists, 1, j, c.name)
            for i, v in enumerate(values, start=2):
                write_xlsx_cell(lists, i, j, v)
            list_refs[c.name] = f"{quote_sheetname('lists')}!${letter}$2:${letter}${len(values) + 1}"
    lists.sheet_state = "hidden"

    inst = wb.create_sheet("Instruments")
    inst.append(["id", "name", "outcome", "minimum", "maximum", "higher_is_worse", "rank", "source"])
    for cell in inst[1]:
        cell.font = Font(bold=True)
    for row, i in enumerate(sorted(registry.instruments.values(), key=lambda x: (x.outcome, x.rank, x.id)), start=2):
        _put_row(inst, row, [i.id, i.name, i.outcome, i.minimum, i.maximum, i.higher_is_worse, i.rank, i.source])
    list_refs["instrument"] = f"{quote_sheetname('Instruments')}!$A$2:$A${len(registry.instruments) + 1}"

    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for sh in sheets:
        ws = wb.create_sheet(sh.name)
        ws.append(list(sh.column_names))
        ws.freeze_panes = "A2"
        for j, c in enumerate(sh.columns, start=1):
            cell = ws.cell(1, j)
            cell.font = Font(bold=True)
            cell.fill = head_fill
            cell.alignment = Alignment(wrap_text=True)
            cell.comment = Comment(f"{c.description}\n{type_text(c)}{' (required)' if c.required else ''}",
                                   "metaexercise")
            ws.column_dimensions[get_column_letter(j)].width = max(12, min(40, len(c.name) + 4))
            dv = _validation(c, list_refs.get(c.name))
            if dv is not None:
                ws.add_data_validation(dv)
                dv.add(f"{get_column_letter(j)}2:{get_column_letter(j)}{FORM_ROWS + 1}")
    wb.move_sheet("lists", offset=len(wb.sheetnames))
    return wb


def _excel_value(v):
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return v


def _put_row(ws, row: int, values) -> None:
    """Write a row of cells, each through `spreadsheet_safety.write_xlsx_cell`: text is a string cell, never
    a formula, and text a spreadsheet would run gets a leading `'` (the sheets' readers undo it); numbers
    stay numbers."""
    for column, value in enumerate(values, start=1):
        write_xlsx_cell(ws, row, column, value)


def fill_workbook(wb, extraction: Extraction) -> None:
    """Append the extraction's rows under each sheet's header (typed cells: numbers as numbers; text
    neutralised against formula injection, `_put_row`)."""
    for sh in extraction.form.sheets:
        frame = getattr(extraction, sh.name)[list(sh.column_names)].astype(object)
        ws = wb[sh.name]
        for row, rec in enumerate(frame.itertuples(index=False, name=None), start=2):
            _put_row(ws, row, [_excel_value(v) for v in rec])


def write_template(path: Path, registry: Registry, extraction: Extraction | None = None,
                   vocabulary: SheetVocabulary | None = None) -> None:
    """Write the form to `path` (filled with `extraction`'s rows when given), whole or not at all."""
    if extraction is not None:
        vocabulary = extraction.vocabulary
    wb = build_workbook(registry, vocabulary)
    if extraction is not None:
        fill_workbook(wb, extraction)
    with atomic.atomic_path(path) as tmp:
        wb.save(tmp)


def run(args) -> int:
    path: Path = args.path
    if path.suffix.lower() != ".xlsx":
        print(f"error: {path}: the form is an .xlsx workbook; give a name ending in .xlsx", file=sys.stderr)
        return 2
    if path.exists() and not args.force:
        print(f"error: {path} exists; use --force to replace it", file=sys.stderr)
        return 2
    try:
        setup = project_sheets(args)
        registry = load_registry(setup.instruments, setup.vocabulary)
    except (SpecError, ExtractionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    extraction = None
    if args.fill is not None:
        try:
            extraction = load_extraction(args.fill, registry=registry, vocabulary=setup.vocabulary)
        except ExtractionError as exc:
            print(exc, file=sys.stderr)
            print(f"nothing written to {path}", file=sys.stderr)
            return 2
    write_template(path, registry, extraction, setup.vocabulary)
    print(f"wrote {path}" + (f" (filled from {args.fill})" if extraction is not None else ""))
    return 0
