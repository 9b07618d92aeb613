"""The `metaexercise` command. Thin: each verb lives in `metaexercise/commands/<verb>.py`, which defines
`register(parser)` (adds the verb's arguments) and `run(args) -> int` (the exit code).

Every verb works on the project in the current directory (`extraction/`, `analyses/`, `results/`,
`searches/`, `book/`); `--project DIR` points elsewhere.

Exit codes: 0 done; 2 bad input (a file that cannot be read or does not follow its schema; the message on
stderr names the file and where in it: sheet, row and column, or line and key), never a traceback; other
codes as each verb documents. The readers locate their errors (`metaexercise.errors`); `main` turns any
`MetaexerciseError` or unreadable file that reaches it into that one message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from metaexercise._version import __version__
from metaexercise.errors import MetaexerciseError

#: verb -> (module, one-line help). Modules are imported only when their verb runs, so `--help` is fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("metaexercise.commands.init", "start a project (review.yaml, extraction/, analyses/) from a table of arms"),
    "template": ("metaexercise.commands.template", "write an empty, documented extraction workbook (XLSX)"),
    "validate": ("metaexercise.commands.validate", "check extraction sheets and report every problem at once"),
    "import": ("metaexercise.commands.import_workbook", "import a filled extraction workbook into extraction/*.csv"),
    "run": ("metaexercise.commands.run", "run every analysis in analyses/*.yaml and write results/"),
    "audit": ("metaexercise.commands.audit", "check published numbers for internal consistency"),
    "book": ("metaexercise.commands.book", "run the analyses and build the HTML book (book/_build/html)"),
    "report": ("metaexercise.commands.report", "write the manuscript's Word document (tables, forest plots) from results/"),
    "search": ("metaexercise.commands.search", "update the literature search: import, dedupe, screen, status"),
    "simulate": ("metaexercise.commands.simulate", "simulation study of tau^2 estimators and interval methods"),
    "replica": ("metaexercise.commands.replica", "generate the labelled synthetic replica of the review"),
    "multiverse": ("metaexercise.commands.multiverse",
                   "every combination of defensible analytic choices for one meta-analysis (results/multiverse/)"),
    "explain": ("metaexercise.commands.explain",
                "which convention (effect basis, tau^2 estimator, CI, I^2, PI) reproduces a published pooled number"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaexercise",
        description="Systematic reviews and meta-analysis as projects: extraction, analyses, GRADE, audit of "
        "published numbers, search updates and a book, for the review declared in the project's review.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"metaexercise {__version__}")
    parser.add_argument(
        "--project", type=Path, default=Path("."), help="project folder (default: current directory)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: given after the verb it wins; otherwise the top-level value (or ".") stands.
        sp.add_argument(
            "--project", type=Path, default=argparse.SUPPRESS, help="project folder (default: current directory)"
        )
        sp.set_defaults(_verb=name)
    return parser


def _find_verb(argv: list[str]) -> str | None:
    """The first bare word that is not the value of a top-level option (`--project DIR run`)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--project":
            skip = True
            continue
        if not a.startswith("-"):
            return a
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    # Let the verb's own module add its arguments before the full parse.
    verb = _find_verb(argv)
    if verb in COMMANDS:
        module = importlib.import_module(COMMANDS[verb][0])
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        module.register(sub_action.choices[verb])
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except MetaexerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:  # a file that cannot be read or written: name it
        where = exc.filename if exc.filename is not None else "a file"
        print(f"error: {where}: {exc.strerror or exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
