"""RIS exports (PubMed, CENTRAL, Embase, Scopus, EndNote, Zotero): a streaming pre-pass, then rispy.

rispy (`rispy.RisParser`) maps tags to fields, but it reads a whole file and silently drops a last record
that lacks its `ER  -` end tag. The pre-pass here walks the file line by line, so memory stays bounded by one
record, and it checks what rispy does not: every record starts with `TY  -` and ends with `ER  -`, tag lines
have the RIS form "XX  - value" (two characters, two spaces, a hyphen, a space), and every tag is one rispy
knows (`rispy.TAG_KEY_MAPPING`), and that no field (a tag line with its continuation lines) passes
`MAX_FIELD_CHARS` (100,000 characters) and no record `MAX_RECORD_CHARS`. Each error names the file and line. Each record is then handed to rispy.

RIS format: Research Information Systems, "RIS Format Specifications" (2012), as documented by rispy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import rispy

from metaexercise.errors import SearchImportError
from metaexercise.searches.normalise import normalise_doi
from metaexercise.searches.records import record_row
from metaexercise.searches.tables import MAX_FIELD_CHARS, MAX_RECORD_CHARS
from metaexercise.searches.textfile import numbered_lines

_TAG_LINE = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")
_TAG_LIKE = re.compile(r"^([A-Z][A-Z0-9]) {0,4}-(?:\s|$)")  # a known tag, mis-spaced
_NUMBER = re.compile(r"^\s*\d+\.\s*$")  # rispy's writer numbers records ("1.") between them
KNOWN_TAGS: frozenset[str] = frozenset(rispy.TAG_KEY_MAPPING)


def read_ris(
    path: Path, *, encoding: str = "utf-8", allow_unknown_tags: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line of the record's `TY` tag, records-table row) for each record, streaming.

    Raises SearchImportError naming file and line for: text outside a record (other than a record number
    such as "1.", which rispy's writer puts before each record), a record that does not end
    with `ER  -` (before the next `TY` or the end of the file), a malformed tag line, an unknown tag (unless
    `allow_unknown_tags`, which keeps it under rispy's `unknown_tag`), or a file with no record at all.
    """
    parser = rispy.RisParser(skip_unknown_tags=False)
    name = path.name
    start: int | None = None
    lines: list[str] = []
    count = 0
    number = 0
    field, field_size, record_size = "", 0, 0
    for number, line in numbered_lines(path, encoding):
        match = _TAG_LINE.match(line)
        tag = match.group(1) if match else None
        near = _TAG_LIKE.match(line) if tag is None else None
        if near and near.group(1) in KNOWN_TAGS or line.strip() == "ER":
            raise SearchImportError(
                f"{name} line {number}: malformed RIS tag line {line[:40]!r}; a tag line reads 'XX  - value' "
                "(two characters, two spaces, a hyphen, a space)"
            )
        if start is None:
            if tag == "TY":
                start, lines, field, field_size, record_size = number, [line], "TY", 0, len(line)
            elif line.strip() and not _NUMBER.match(line):
                raise SearchImportError(
                    f"{name} line {number}: text outside a record ({line[:40]!r}); every RIS record starts "
                    "with 'TY  - ' and ends with 'ER  - '"
                )
            continue
        if tag == "TY":
            raise SearchImportError(
                f"{name} line {number}: a new record starts ('TY  -') but the record that starts on line "
                f"{start} has no end tag 'ER  -'; add it before line {number}"
            )
        if tag is not None and tag not in KNOWN_TAGS and not allow_unknown_tags:
            raise SearchImportError(
                f"{name} line {number}: unknown RIS tag {tag!r} in the record that starts on line {start}; "
                "known tags are those of the RIS specification (see rispy.TAG_KEY_MAPPING). "
                "Re-export the file, or import with --allow-unknown-tags to keep it aside"
            )
        field, field_size = (tag, 0) if tag is not None else (field, field_size)
        field_size += len(line if tag is None else (match.group(2) or ""))
        record_size += len(line)
        if field_size > MAX_FIELD_CHARS:
            raise SearchImportError(
                f"{name} line {number}: the {field} field of the record that starts on line {start} passes "
                f"{MAX_FIELD_CHARS:,} characters, the most a field may hold; the export is damaged or holds a "
                "runaway field — fix or remove that record"
            )
        if record_size > MAX_RECORD_CHARS:
            raise SearchImportError(
                f"{name} line {number}: the record that starts on line {start} passes {MAX_RECORD_CHARS:,} "
                "characters, the most a record may hold; the export is damaged (a missing 'ER  -'?)"
            )
        lines.append(line)
        if tag == "ER":
            records = parser.parse_lines(iter(lines))
            count += 1
            yield start, _fields(records[0])
            start, lines, field, field_size, record_size = None, [], "", 0, 0
    if start is not None:
        raise SearchImportError(
            f"{name} line {start}: the record that starts on line {start} has no end tag 'ER  -' "
            f"(the file ends at line {start + len(lines) - 1}); the export is probably truncated"
        )
    if count == 0:
        raise SearchImportError(f"{name} line {max(number, 1)}: no RIS record found by the end of the file (no "
                                "line starts with 'TY  - ')")


def _first(record: dict, *keys: str) -> object:
    for key in keys:
        value = record.get(key)
        if value:
            return value
    return ""


def _fields(record: dict) -> dict[str, str]:
    """rispy's field names → records-table row. PMIDs travel in `AN` (PubMed, Ovid MEDLINE) when that
    holds 1–8 digits; a DOI missing from `DO` is taken from a doi.org link in `UR`."""
    accession = str(record.get("accession_number") or "").strip()
    doi = str(record.get("doi") or "")
    if not normalise_doi(doi):
        doi = next((u for u in record.get("urls", []) if normalise_doi(u)), "")
    return record_row(
        {
            "title": _first(record, "title", "primary_title", "translated_title"),
            "authors": _first(record, "authors", "first_authors"),
            "year": _first(record, "year", "publication_year", "date"),
            "journal": _first(
                record, "journal_name", "secondary_title", "alternate_title3", "alternate_title1",
                "alternate_title2",
            ),
            "doi": doi,
            "pmid": accession if re.fullmatch(r"\d{1,8}", accession) else "",
            "abstract": _first(record, "abstract", "notes_abstract"),
        }
    )
