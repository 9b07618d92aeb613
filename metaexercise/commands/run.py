"""`metaexercise run [--source extraction|replica]`: run every analysis spec and write results/."""

from __future__ import annotations

import argparse
import sys

from metaexercise import atomic
from metaexercise.commands.search_counts import count_search_update
from metaexercise.review import run as runner
from metaexercise.review.project import project_from_args
from metaexercise.vocabulary import DataSource, codes


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=codes(DataSource), default=DataSource.EXTRACTION.value,
                        help="extraction/ (the real sheets, default) or the synthetic replica "
                             "(replica/extraction/, results in results/replica/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    project = project_from_args(args)
    # an `import` interrupted by a crash may have left extraction/ to finish (`atomic.recover_folder`)
    atomic.recover_folder(project.extraction)
    output = runner.run_project(project, source=args.source, progress=not args.quiet,
                                search_counter=count_search_update)
    for name in sorted(output.files):
        print(output.folder / name, file=sys.stderr)
    print(output.summary())
    return 0
