"""`metaexercise validate [PATH]`: check extraction sheets (a workbook, a CSV folder, default
`extraction/`) and report every problem at once. Exit 0 when valid (warnings allowed), 2 when not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise import atomic
from metaexercise.project import project_from_args
from metaexercise.sheets import format_problems, validate


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, nargs="?", default=None,
                        help="workbook (.xlsx) or folder of CSV sheets (default: <project>/extraction)")
    parser.add_argument("--csv", type=Path, default=None, dest="csv_out",
                        help="also write the problem table to this CSV file")


def run(args) -> int:
    path = args.path or project_from_args(args).extraction
    problems = validate(path)
    if args.csv_out is not None:
        atomic.write_text(args.csv_out, problems.to_csv(index=False))
    errors = int((problems["severity"] == "error").sum())
    warnings = len(problems) - errors
    print(format_problems(problems))
    print(f"{path}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 2 if errors else 0
