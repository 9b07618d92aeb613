"""`metaexercise audit`: check published numbers for internal consistency.

Without `--reported`, audits the project's `analyses/published.yaml` and writes `results/audit.csv`.
With `--reported FILE.csv`, audits any table with columns label, estimate, ci_lb, ci_ub (optional k, i2, q,
p, scale). Findings go to stdout (a table, or JSON with `--json`), logs to stderr; the exit code is 0
whatever the audit finds, 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from metaexercise.errors import MetaexerciseError
from metaexercise.extraction.sheets import Severity
from metaexercise.review.audit import audit_reported, findings_frame, run_audit
from metaexercise.review.project import project_from_args

log = logging.getLogger("metaexercise.review.audit")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reported",
        type=Path,
        default=None,
        metavar="FILE.csv",
        help="audit this table (label, estimate, ci_lb, ci_ub; optional k, i2, q, p, scale) "
        "instead of the project's published registry",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="write findings to stdout as a JSON list of {label, check, severity, detail}",
    )


def run(args) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    package_log = logging.getLogger("metaexercise")
    package_log.addHandler(handler)
    old_level = package_log.level
    package_log.setLevel(logging.INFO)
    try:
        return _run(args)
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(old_level)


def _run(args) -> int:
    try:
        if args.reported is not None:
            frame = findings_frame(audit_reported(args.reported))
            source = str(args.reported)
        else:
            project = project_from_args(args)
            frame = run_audit(project)
            source = str(project.analyses / "published.yaml")
            log.info("wrote %s", project.results / "audit.csv")
    except MetaexerciseError as exc:
        log.error("%s", exc)
        return 2
    counts = frame["severity"].value_counts()
    log.info(
        "%s: %d finding(s): %d error(s), %d warning(s)",
        source,
        len(frame),
        counts.get(Severity.ERROR, 0),
        counts.get(Severity.WARNING, 0),
    )
    if args.json:
        json.dump(frame.to_dict("records"), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for row in frame.itertuples(index=False):
            print(f"[{row.severity}] {row.check}: {row.label}\n    {row.detail}")
    return 0
