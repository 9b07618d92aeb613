"""`metaexercise audit`: check published numbers for internal consistency.

Without `--reported`, audits the project's `analyses/published.yaml` and writes `results/audit.csv`.
With `--reported FILE.csv`, audits any table with columns label, estimate, ci_lb, ci_ub (optional k, i2, q,
p, scale; source and note are free text). The table is read strictly: a record with more or fewer fields
than the header, an unknown column, a number with a comma (decimal comma or thousands separator; a
semicolon-separated file is refused rather than guessed at), I² outside [0, 100], p outside [0, 1], Q < 0,
k not a whole number >= 1, or ci_lb > ci_ub is an input error naming file, line (header = line 1) and column.

Findings go to stdout (a table, or JSON with `--json`), logs to stderr. Exit codes: 2 when the input cannot be
read (message on stderr, never a traceback); with `--fail-on-findings`, 1 when the audit finds at least one
error-severity finding; 0 otherwise (without `--fail-on-findings`, whatever the audit finds).
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
    parser.add_argument(
        "--fail-on-findings",
        action="store_true",
        help="exit 1 when the audit finds an error in the numbers (a finding of severity error); "
        "default: exit 0 whatever the audit finds",
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
    except (OSError, UnicodeError, ValueError) as exc:  # belt and braces: an unreadable input never tracebacks
        log.error("%s: %s", args.reported if args.reported is not None else "audit", exc)
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
    if getattr(args, "fail_on_findings", False) and counts.get(Severity.ERROR, 0):
        return 1
    return 0
