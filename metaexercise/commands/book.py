"""`metaexercise book`: run the analyses and build the offline HTML book to book/_build/html."""

from __future__ import annotations

import argparse
import sys

from metaexercise.commands.search_counts import count_search_update
from metaexercise.errors import MetaexerciseError
from metaexercise.publish.book import build_book
from metaexercise.review.project import project_from_args


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-run", action="store_true",
                        help="build from the results/ already there; do not re-run the analyses")


def run(args) -> int:
    project = project_from_args(args)
    try:
        build = build_book(project, run_analyses=not args.no_run, search_counter=count_search_update)
    except MetaexerciseError as exc:
        print(f"metaexercise book: {exc}", file=sys.stderr)
        return 1
    print(build.summary())
    return 0
