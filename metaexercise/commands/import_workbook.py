"""`metaexercise import FORM.xlsx`: validate a filled extraction workbook and write its sheets as
`extraction/*.csv`, all files or none. Nothing is written when the workbook has errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.errors import ExtractionError
from metaexercise.extraction.sheets import format_problems, load_extraction, write_csv_folder
from metaexercise.review.project import project_from_args


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workbook", type=Path, help="the filled extraction workbook (.xlsx)")
    parser.add_argument("--to", type=Path, default=None, help="folder for the CSV files (default: <project>/extraction)")


def run(args) -> int:
    target = args.to or project_from_args(args).extraction
    try:
        extraction = load_extraction(args.workbook)
    except ExtractionError as exc:
        print(exc, file=sys.stderr)
        print(f"nothing written to {target}", file=sys.stderr)
        return 2
    if not extraction.problems.empty:
        print(format_problems(extraction.problems), file=sys.stderr)
    for path in write_csv_folder(extraction, target):
        print(f"wrote {path}")
    return 0
