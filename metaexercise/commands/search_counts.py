"""The search update's PRISMA counts, handed to `run` and `book`: the review floor does not import the
searches wing, so the command line (which may import every floor and wing) counts and passes them down."""

from __future__ import annotations

from pathlib import Path


def count_search_update(folder: Path) -> dict:
    """PRISMA 2020 counts of the search update in `folder` (searches/), as `metaexercise search status`."""
    from metaexercise.searches.store import SearchFolder
    from metaexercise.searches.workflow import run_status

    return run_status(SearchFolder(folder)).to_dict()
