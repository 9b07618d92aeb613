"""`metaexercise validate [PATH]`: check extraction sheets (a workbook, a CSV folder, default
`extraction/`) and report every problem at once. Exit 0 when valid (warnings allowed), 2 when not.
`--compare OTHER` also lists every cell where a second, independent extraction disagrees (exit 2 when
any does)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise import atomic
from metaexercise.errors import ExtractionError
from metaexercise.extraction.sheets import (
    Severity,
    compare_extractions,
    format_problems,
    load_extraction,
    validate,
)
from metaexercise.review.project import project_from_args


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, nargs="?", default=None,
                        help="workbook (.xlsx) or folder of CSV sheets (default: <project>/extraction)")
    parser.add_argument("--csv", type=Path, default=None, dest="csv_out",
                        help="also write the problem table to this CSV file")
    parser.add_argument("--compare", type=Path, default=None, metavar="OTHER",
                        help="a second extractor's sheets: list every cell where they disagree")


def run(args) -> int:
    path = args.path or project_from_args(args).extraction
    problems = validate(path)
    if args.csv_out is not None:
        atomic.write_text(args.csv_out, problems.to_csv(index=False))
    errors = int((problems["severity"] == Severity.ERROR).sum())
    warnings = len(problems) - errors
    print(format_problems(problems))
    print(f"{path}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    if errors or args.compare is None:
        return 2 if errors else 0
    try:
        other = load_extraction(args.compare)
    except ExtractionError as exc:
        print(exc, file=sys.stderr)
        return 2
    diff = compare_extractions(load_extraction(path), other)
    print(f"\n{len(diff)} disagreement(s) between {path} (A) and {args.compare} (B)")
    if len(diff):
        print(diff.astype("string").fillna("").to_string(index=False))
    return 2 if len(diff) else 0
