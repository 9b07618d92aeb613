"""`metaexercise init DIR [--data ARMS.csv] [--title TITLE]`: start a project from a long table of arms
(one row per study x arm x outcome x time point; `metaexercise.review.init_project`). Exit 0 when written,
2 when the table or the folder is refused (every problem listed with file, row and column; nothing written)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.review.init_project import COLUMNS, InitError, init_project


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="the new project's folder (absent or empty)")
    parser.add_argument("--data", type=Path, default=None, metavar="ARMS.csv",
                        help=f"long table of arms, columns {', '.join(COLUMNS)} (without it: an empty project)")
    parser.add_argument("--title", default=None, help="the review's title (default: the folder's name)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder, replacing the files init writes there")


def run(args) -> int:
    try:
        result = init_project(args.folder, data=args.data, title=args.title, force=args.force)
    except InitError as exc:
        for problem in exc.problems:
            print(f"metaexercise init: {problem}", file=sys.stderr)
        print(f"metaexercise init: {len(exc.problems)} problem(s); nothing written", file=sys.stderr)
        return 2
    for name in result.files:
        print(result.root / name, file=sys.stderr)
    print(result.summary())
    print("next: metaexercise --project " + str(result.root) + " book", file=sys.stderr)
    return 0
