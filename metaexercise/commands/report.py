"""`metaexercise report FILE.docx`: the manuscript's Word document (title, summary-of-findings tables, main
results table, forest plots with captions) from the real extraction's results/ (`metaexercise.publish.report`).

Exit codes: 0 written; 2 when results/ (or a file in it) is missing, or the document cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.errors import MetaexerciseError
from metaexercise.review.project import project_from_args


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, metavar="FILE.docx", help="the Word document to write")


def run(args) -> int:
    from metaexercise.publish.report import build_report

    project = project_from_args(args)
    target = Path(args.output)
    if target.suffix.lower() != ".docx":
        print(f"metaexercise report: {target}: the document must be a .docx file", file=sys.stderr)
        return 2
    try:
        report = build_report(project, target)
    except MetaexerciseError as exc:
        print(f"metaexercise report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"metaexercise report: {target}: cannot write the document ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
