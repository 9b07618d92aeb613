"""PubMed exports in MEDLINE format (PubMed "Save → Format: PubMed", `.nbib` / `.txt`), streaming.

Format (NLM, "MEDLINE/PubMed Data Element (Field) Descriptions"): each record starts with "PMID- ";
a field line is a tag of up to four characters padded to four, then "- ", then the value; a line starting
with six spaces continues the previous field; records are separated by blank lines. Fields used: PMID, TI,
AB, FAU (else AU), DP (year = its first four digits), JT (else TA), and the DOI from LID or AID
("10.1097/... [doi]").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from metaexercise.errors import SearchImportError
from metaexercise.searches.records import record_row
from metaexercise.searches.tables import MAX_FIELD_CHARS, MAX_RECORD_CHARS
from metaexercise.searches.textfile import numbered_lines

_FIELD = re.compile(r"^([A-Z][A-Z0-9]{1,3}) {0,2}- (.*)$")
_CONTINUATION = "      "


def read_nbib(path: Path, *, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line of the record's PMID, records-table row) for each record, streaming.

    Raises SearchImportError naming file and line for a record that does not start with "PMID- ", a line
    that is neither a field nor a continuation, a continuation with no field before it, a field longer
    than `MAX_FIELD_CHARS` (100,000 characters) or a record longer than `MAX_RECORD_CHARS`, or no record."""
    name = path.name
    fields: dict[str, list[str]] = {}
    start: int | None = None
    last: str | None = None
    count = 0
    number = 0
    record_size = 0
    for number, line in numbered_lines(path, encoding):
        if not line.strip():
            if start is not None:
                count += 1
                yield start, _row(fields)
            fields, start, last, record_size = {}, None, None, 0
            continue
        record_size += len(line)
        if record_size > MAX_RECORD_CHARS:
            raise SearchImportError(
                f"{name} line {number}: the record that starts on line {start} passes {MAX_RECORD_CHARS:,} "
                "characters, the most a record may hold; records are separated by one blank line"
            )
        if line.startswith(_CONTINUATION):
            if last is None:
                raise SearchImportError(
                    f"{name} line {number}: a continuation line (six leading spaces) with no field before it"
                )
            fields[last][-1] += " " + line.strip()
            if len(fields[last][-1]) > MAX_FIELD_CHARS:
                raise SearchImportError(
                    f"{name} line {number}: the {last} field of the record that starts on line {start} passes "
                    f"{MAX_FIELD_CHARS:,} characters, the most a field may hold; the export is damaged or holds "
                    "a runaway field — fix or remove that record"
                )
            continue
        match = _FIELD.match(line)
        if match is None:
            raise SearchImportError(
                f"{name} line {number}: not a MEDLINE field line ({line[:40]!r}); a field reads "
                "'TAG - value' with the tag padded to four characters, e.g. 'TI  - Title'"
            )
        tag, value = match.group(1), match.group(2).strip()
        if len(value) > MAX_FIELD_CHARS:
            raise SearchImportError(
                f"{name} line {number}: the {tag} field is longer than {MAX_FIELD_CHARS:,} characters, the most "
                "a field may hold; the export is damaged or holds a runaway field — fix or remove that record"
            )
        if start is None:
            if tag != "PMID":
                raise SearchImportError(
                    f"{name} line {number}: a MEDLINE record must start with 'PMID- ', found {tag!r}; "
                    "records are separated by one blank line"
                )
            start = number
        fields.setdefault(tag, []).append(value)
        last = tag
    if start is not None:
        count += 1
        yield start, _row(fields)
    if count == 0:
        raise SearchImportError(f"{name} line {max(number, 1)}: no MEDLINE record found by the end of the file "
                                "(no line starts with 'PMID- ')")


def _doi(values: list[str]) -> str:
    return next((v.rsplit(" [", 1)[0] for v in values if v.endswith("[doi]")), "")


def _row(fields: dict[str, list[str]]) -> dict[str, str]:
    def one(*tags: str) -> str:
        return next((fields[t][0] for t in tags if fields.get(t)), "")

    return record_row(
        {
            "title": one("TI", "BTI"),
            "authors": fields.get("FAU") or fields.get("AU") or [],
            "year": one("DP", "DEP"),
            "journal": one("JT", "TA"),
            "doi": _doi(fields.get("LID", []) + fields.get("AID", [])),
            "pmid": one("PMID"),
            "abstract": one("AB"),
        }
    )
