"""`metaexercise search`: update the literature search.

    search import FILE... --database NAME --date YYYY-MM-DD   import exports (all or none), then de-duplicate
    search dedupe                                           re-run de-duplication (after editing overrides)
    search screen [--xlsx]                                  create or update the screening log
    search included                                         write searches/new_studies.csv for extraction
    search status [--json]                                  PRISMA 2020 counts of the update
    search diff OLD NEW [--studies FILE] [--json]           edition diff of two results/analyses.csv tables
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from metaexercise.errors import MetaexerciseError
from metaexercise.review.project import project_from_args
from metaexercise.searches.csvexport import LAYOUTS
from metaexercise.searches.importer import FORMATS
from metaexercise.searches.store import SearchFolder


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="search_command", metavar="STEP", required=True)
    p = sub.add_parser("import", help="import database exports (RIS, PubMed MEDLINE/nbib, CSV) into searches/")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--database", required=True, help="database searched, e.g. PubMed, CENTRAL, Embase")
    p.add_argument("--date", required=True, help="date the search was run, YYYY-MM-DD")
    p.add_argument("--format", choices=FORMATS, help="export format (default: detected from the content)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help="CSV column layout (default: from the header)")
    p.add_argument("--allow-unknown-tags", action="store_true", help="keep unknown RIS tags instead of failing")
    sub.add_parser("dedupe", help="re-run de-duplication (e.g. after editing searches/overrides.csv)")
    p = sub.add_parser("screen", help="create or update the screening log with the new unique records")
    p.add_argument("--xlsx", action="store_true", help="write searches/screening.xlsx instead of .csv")
    sub.add_parser("included", help="write searches/new_studies.csv: included studies, ready for extraction")
    p = sub.add_parser("status", help="PRISMA 2020 counts of the update")
    p.add_argument("--json", action="store_true", help="print the counts as JSON on stdout")
    p = sub.add_parser("diff", help="edition diff: old vs new k, SMD, CI and certainty per analysis")
    p.add_argument("old", type=Path, help="the earlier edition's results/analyses.csv")
    p.add_argument("new", type=Path, help="the new edition's results/analyses.csv")
    p.add_argument("--studies", type=Path, help="per-study table (analysis_id, study, year, yi, vi) for a "
                   "cumulative meta-analysis by publication year")
    p.add_argument("--json", action="store_true", help="print the diff as JSON on stdout")
    for step in sub.choices.values():  # `search STEP ... --project DIR` as well as `search --project DIR STEP`
        step.add_argument("--project", type=Path, default=argparse.SUPPRESS, help="project folder")


def run(args) -> int:
    """Run one step; a bad input (a malformed export or file of searches/) ends with exit code 2 and a
    message naming the file and line on stderr."""
    from metaexercise.searches import workflow

    folder = SearchFolder(project_from_args(args).searches)
    try:
        if args.search_command == "import":
            imported, dedup = workflow.run_import(
                folder, args.files, database=args.database, search_date=args.date, fmt=args.format,
                layout=args.layout, allow_unknown_tags=args.allow_unknown_tags)
            for item in imported:
                for note in item.notes:
                    print(f"warning: {note}", file=sys.stderr)
                print(f"{item.file}: {item.records} records ({item.format}, {item.encoding}) as {item.import_id}")
            print(dedup.summary())
        elif args.search_command == "dedupe":
            print(workflow.run_dedupe(folder).summary())
        elif args.search_command == "screen":
            path, added = workflow.run_screen(folder, ".xlsx" if args.xlsx else None)
            print(f"{path}: {added} new record(s) added for screening")
        elif args.search_command == "included":
            project = project_from_args(args)
            path, studies = workflow.run_included(folder, project.extraction / "studies.csv")
            print(f"{path}: {len(studies)} new included stud{'y' if len(studies) == 1 else 'ies'}")
            if len(studies):
                print(studies[["extraction_id", "first_author", "year", "source"]].to_string(index=False))
        elif args.search_command == "status":
            counts = workflow.run_status(folder)
            print(counts.to_json() if args.json else counts.summary())
            for broken in counts.check():
                print(f"error: counts do not add up: {broken}", file=sys.stderr)
            return 1 if counts.check() else 0
        elif args.search_command == "diff":
            return _diff(args)
    except MetaexerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable or unwritable files: name the file, never a traceback
        where = exc.filename if exc.filename is not None else "a file"
        print(f"error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _diff(args) -> int:
    from metaexercise.searches.edition import cumulative_by_year, edition_diff, read_results, read_studies

    diff = edition_diff(read_results(args.old), read_results(args.new))
    cumulative = {}
    if args.studies:
        studies = read_studies(args.studies)
        for analysis_id, group in studies.groupby("analysis_id", sort=False):
            cumulative[analysis_id] = cumulative_by_year(group)
    if args.json:
        payload = {"diff": json.loads(diff.to_frame().to_json(orient="records")),
                   "cumulative": {k: json.loads(v.to_json(orient="records")) for k, v in cumulative.items()}}
        print(json.dumps(payload, indent=2))
    else:
        print(diff.summary())
        for analysis_id, table in cumulative.items():
            print(f"\nCumulative meta-analysis by publication year: {analysis_id}")
            print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0
