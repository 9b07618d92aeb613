"""`metaexercise explain LABEL`: which convention reproduces a published pooled number from the extraction.

LABEL is a pooled-effect entry of the project's published registry (e.g. ``pain_active_short.results``) or a
contrast with a single such entry. Every combination of effect basis (exact g, RevMan 5's approximate g, Cohen's
d), τ² estimator, CI method, I² definition and PI method is computed from the real extraction and compared with
the printed digits (`metaexercise.review.explain`). `--all` lists every convention tried; `--csv FILE` writes
them. Exit 2 (message on stderr, no traceback) when the label is unknown or the data cannot be pooled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaexercise.atomic import write_bytes
from metaexercise.errors import MetaexerciseError
from metaexercise.review.project import project_from_args
from metaexercise.spreadsheet_safety import csv_text


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("label", nargs="?", help="registry entry id (or contrast id); omit to list the entries")
    parser.add_argument("--all", action="store_true", help="print every convention tried, best first")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write every convention tried")


def run(args) -> int:
    from metaexercise.review.explain import explain_entry, registry_effects

    project = project_from_args(args)
    try:
        if not args.label:
            for e in registry_effects(project):
                shown = ", ".join(f"{f} {v.text}" for f, v in _printed(e).items())
                print(f"{e.id}: {shown}")
            return 0
        explanation = explain_entry(project, args.label)
    except (MetaexerciseError, ValueError, OSError) as exc:
        print(f"metaexercise explain: {exc}", file=sys.stderr)
        return 2
    print(explanation.summary())
    table = explanation.table
    if args.all:
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.csv is not None:
        write_bytes(args.csv, csv_text(table, float_format="%.12g").encode("utf-8"))
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def _printed(entry):
    from metaexercise.review.explain import printed_numbers

    return printed_numbers(entry)
