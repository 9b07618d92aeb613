"""`metaexercise import FORM.xlsx`: validate a filled extraction workbook and write its sheets as
`extraction/*.csv`, all files or none: the folder is rebuilt beside itself, its other files carried over,
and swapped in atomically (`metaexercise.extraction.sheets.write_csv_folder`), so a crash leaves the
previous sheets or the new ones. Nothing is written when the workbook has errors. The workbook is read
with the project's vocabulary and instrument registry (`metaexercise.commands.validate.project_sheets`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.commands.validate import project_sheets
from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.sheets import format_problems, load_extraction, write_csv_folder


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workbook", type=Path, help="the filled extraction workbook (.xlsx)")
    parser.add_argument("--to", type=Path, default=None, help="folder for the CSV files (default: <project>/extraction)")


def run(args) -> int:
    try:
        setup = project_sheets(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = args.to or setup.project.extraction
    try:
        extraction = load_extraction(args.workbook, registry=setup.instruments, vocabulary=setup.vocabulary)
    except ExtractionError as exc:
        print(exc, file=sys.stderr)
        print(f"nothing written to {target}", file=sys.stderr)
        return 2
    if not extraction.problems.empty:
        print(format_problems(extraction.problems), file=sys.stderr)
    for path in write_csv_folder(extraction, target):
        print(f"wrote {path}")
    return 0
