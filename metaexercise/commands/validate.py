"""`metaexercise validate [PATH]`: check extraction sheets (a workbook, a CSV folder, default
`extraction/`) and report every problem at once. Exit 0 when valid (warnings allowed), 2 when not.
`--compare OTHER` also lists every cell where a second, independent extraction disagrees (exit 2 when
any does).

The sheets are read with the project's vocabulary (its `review.yaml`; the generic one when it has none)
and the project's instrument registry (`extraction/instruments.yaml` on top of the library), whatever
PATH is: `project_sheets` gives both to `validate`, `import` and `template` alike."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from metaexercise import atomic
from metaexercise.errors import ExtractionError, SpecError
from metaexercise.extraction.instruments import FILE_NAME as INSTRUMENTS_FILE
from metaexercise.extraction.schema import form
from metaexercise.extraction.sheets import (
    Severity,
    compare_extractions,
    format_problems,
    load_extraction,
    validate,
)
from metaexercise.extraction.vocabulary import DEFAULT_VOCABULARY, SheetVocabulary
from metaexercise.review.declaration import FILE_NAME as REVIEW_FILE
from metaexercise.review.declaration import load_review
from metaexercise.review.project import Project, project_from_args
from metaexercise.spreadsheet_safety import csv_text


@dataclass(frozen=True, slots=True)
class ProjectSheets:
    """What reading a project's sheets needs: the project, its vocabulary and its instruments file."""

    project: Project
    vocabulary: SheetVocabulary
    #: The project's `extraction/instruments.yaml` (read on top of the instrument library; may not exist).
    instruments: Path


def project_sheets(args) -> ProjectSheets:
    """The project's vocabulary (from its review.yaml, the generic default without one) and instruments
    file. Raises SpecError (file, line, key) when the review.yaml or its moderators are wrong."""
    project = project_from_args(args)
    declared = project.root / REVIEW_FILE
    if declared.exists() and not declared.is_file():
        raise SpecError(f"{declared}: a folder, not the project file; move it away")
    vocabulary = load_review(declared).sheet_vocabulary() if declared.is_file() else DEFAULT_VOCABULARY
    try:
        form(vocabulary)
    except ValueError as exc:
        raise SpecError(f"{declared}: {exc}") from None
    return ProjectSheets(project, vocabulary, project.extraction / INSTRUMENTS_FILE)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, nargs="?", default=None,
                        help="workbook (.xlsx) or folder of CSV sheets (default: <project>/extraction)")
    parser.add_argument("--csv", type=Path, default=None, dest="csv_out",
                        help="also write the problem table to this CSV file")
    parser.add_argument("--compare", type=Path, default=None, metavar="OTHER",
                        help="a second extractor's sheets: list every cell where they disagree")


def run(args) -> int:
    try:
        setup = project_sheets(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = args.path or setup.project.extraction
    read = {"registry": setup.instruments, "vocabulary": setup.vocabulary}
    problems = validate(path, **read)
    if args.csv_out is not None:
        # the problem table quotes the cells it complains about: neutralise formulas (a title "=cmd|...")
        atomic.write_text(args.csv_out, csv_text(problems, headers=False))
    errors = int((problems["severity"] == Severity.ERROR).sum())
    warnings = len(problems) - errors
    print(format_problems(problems))
    print(f"{path}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    if errors or args.compare is None:
        return 2 if errors else 0
    try:
        other = load_extraction(args.compare, **read)
    except ExtractionError as exc:
        print(exc, file=sys.stderr)
        return 2
    diff = compare_extractions(load_extraction(path, **read), other)
    print(f"\n{len(diff)} disagreement(s) between {path} (A) and {args.compare} (B)")
    if len(diff):
        print(diff.astype("string").fillna("").to_string(index=False))
    return 2 if len(diff) else 0
