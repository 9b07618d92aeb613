"""`metaexercise replica`: write the labelled synthetic replica's extraction sheets (replica/extraction/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.review import replica
from metaexercise.review.project import project_from_args
from metaexercise.review.run import extraction_folder
from metaexercise.vocabulary import DataSource


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=replica.SEED,
                        help=f"random seed (default: {replica.SEED}, the committed replica)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the CSV sheets (default: <project>/replica/extraction)")


def run(args) -> int:
    project = project_from_args(args)
    out = args.out or extraction_folder(project, DataSource.REPLICA)
    rep = replica.generate(args.seed, review=project.review)
    for path in replica.write(rep, out):
        print(path, file=sys.stderr)
    print(rep.summary())
    return 0
