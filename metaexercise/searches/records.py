"""The records table: one row per bibliographic record imported from a database export.

Every reader (`ris`, `nbib`, `csvexport`) yields plain dicts with the columns below; `record_row` fills and
cleans one, so all readers agree on types: every cell is a string ("" when missing, control characters
turned into spaces), `year` is four digits or "", `authors` joins names with "; " in the order the
database gave them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from metaexercise.searches.normalise import normalise_text

#: Bibliographic fields a reader fills.
FIELDS: tuple[str, ...] = ("title", "authors", "year", "journal", "doi", "pmid", "abstract")
#: Provenance fields the importer adds: which export, which database, when searched, where in the file.
PROVENANCE: tuple[str, ...] = ("record_id", "database", "search_date", "source_file", "source_line")
#: Column order of every records CSV under `searches/records/`.
COLUMNS: tuple[str, ...] = ("record_id", *FIELDS, "database", "search_date", "source_file", "source_line")

_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")


#: Control characters (C0 and DEL) that are not whitespace: they carry no text, break XLSX files (which may
#: not hold them) and hide content, so `clean_text` turns them into spaces.
_CONTROL = {c: " " for c in [*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F]}


def clean_text(value: object) -> str:
    """Collapse runs of whitespace (line breaks of wrapped fields included) into single spaces; control
    characters count as whitespace."""
    if value is None:
        return ""
    # str.split() splits on exactly the characters that regex \s matches (str.isspace), three times faster.
    return " ".join(str(value).translate(_CONTROL).split())


def join_authors(authors: Iterable[str] | str | None) -> str:
    """Authors as one cell, "; "-separated, in the database's order."""
    if authors is None:
        return ""
    if isinstance(authors, str):
        return clean_text(authors)
    return "; ".join(a for a in (clean_text(x) for x in authors) if a)


def year_of(value: object) -> str:
    """The first four-digit year (1800–2099) in a date field such as "2012/05/01" or "2012 May", else ""."""
    match = _YEAR.search(str(value or ""))
    return match.group(1) if match else ""


def record_row(fields: dict[str, object]) -> dict[str, str]:
    """A reader's fields as a clean records-table row (bibliographic columns only)."""
    row = {name: clean_text(fields.get(name)) for name in FIELDS}
    row["authors"] = join_authors(fields.get("authors"))
    row["year"] = year_of(fields.get("year"))
    return row


def first_author_surname(authors: str) -> str:
    """The first author's surname, lower-case without accents or punctuation.

    Handles "Smith, John A", "Smith JA", "Smith J., Doe A.", "van Tulder MW" and "van Tulder, M. W.": the
    text before the first comma or semicolon, without trailing initials.
    """
    first = re.split(r"[;,]", authors, maxsplit=1)[0].strip()
    words = first.split()
    while len(words) > 1 and re.fullmatch(r"(?:[A-Z]\.?-?){1,4}", words[-1]):
        words.pop()
    surname = " ".join(words)
    return normalise_text(surname)
