"""`metaexercise book`: run the analyses and build the offline HTML book to book/_build/html; `--serve` then
serves it on localhost and opens it in the browser."""

from __future__ import annotations

import argparse
import sys
import time
import webbrowser

from metaexercise.commands.search_counts import count_search_update
from metaexercise.errors import MetaexerciseError
from metaexercise.publish.book import build_book, serve_book
from metaexercise.review.project import project_from_args


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-run", action="store_true",
                        help="build from the results/ already there; do not re-run the analyses")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore every cache: run the analyses, execute every page and build all HTML again")
    parser.add_argument("--serve", action="store_true",
                        help="after the build, serve book/_build/html on localhost and open it in the browser "
                             "(Ctrl+C stops); the book also works opened from disk, search included")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")
    parser.add_argument("--no-browser", action="store_true", help="with --serve: do not open a browser")


def run(args) -> int:
    project = project_from_args(args)
    try:
        build = build_book(project, run_analyses=not args.no_run, search_counter=count_search_update,
                           fresh=args.fresh)
    except MetaexerciseError as exc:
        print(f"metaexercise book: {exc}", file=sys.stderr)
        return 1
    print(build.summary())
    if not args.serve:
        return 0
    try:
        server = serve_book(build.html, port=args.port)
    except MetaexerciseError as exc:
        print(f"metaexercise book: {exc}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    print(f"serving {build.html} at {url} (Ctrl+C stops)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        while True:  # the server runs in its own thread
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return 0

