"""Reading CSV files strictly, with every problem located: file, line and, where it helps, column.

Both database exports (`csvexport`) and the files of the `searches/` folder (`store`, `screening`) are read
here. Python's `csv` module is used in strict mode, so a quote that is opened and not closed properly is an
error rather than a cell that silently swallows the following records. Limits, so that no input can stall
an import or exhaust memory:

- a cell (and an RIS or MEDLINE field) holds at most `MAX_FIELD_CHARS` = 100,000 characters — about 15
  times the longest abstracts PubMed holds; a longer one is refused with its file, line and column;
- a physical line of a CSV file holds at most `MAX_LINE_CHARS` = 2,000,000 characters, and an RIS or
  MEDLINE record at most `MAX_RECORD_CHARS` = 5,000,000 (thousands of authors with affiliations fit).

Cells are read back through `metaexercise.spreadsheet_safety.unescape_cell`, the inverse of the formula
escaping every writer of the searches wing applies.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

from metaexercise.errors import MetaexerciseError, SearchDataError
from metaexercise.spreadsheet_safety import unescape_cell

MAX_FIELD_CHARS = 100_000
MAX_LINE_CHARS = 2_000_000
#: An RIS or MEDLINE record (all its fields: thousands of authors with affiliations fit).
MAX_RECORD_CHARS = 5_000_000
_CHUNK = 1 << 20


def check_utf8(path: Path, error: type[MetaexerciseError] = SearchDataError, label: str | None = None) -> None:
    """Raise `error` naming the line of the first byte that is not UTF-8 (streaming, memory bounded).
    `label` names the file in messages (default: its name)."""
    name = label or path.name
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = line + chunk[: exc.start].count(b"\n")
                raise error(f"{name} line {bad}: not valid UTF-8 ({exc.reason}); save the file as UTF-8 "
                            "(in Excel: CSV UTF-8)") from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise error(f"{name} line {line}: the file ends inside a UTF-8 character (truncated?)") from None


def _limited_lines(fh, name: str, error: type[MetaexerciseError]) -> Iterator[str]:
    number = 0
    while line := fh.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise error(f"{name} line {number}: longer than {MAX_LINE_CHARS:,} characters; the file is damaged "
                        "or a cell runs away (an unclosed quote?)")
        yield line


def csv_rows(path: Path, *, encoding: str = "utf-8-sig", delimiter: str = ",",
             error: type[MetaexerciseError] = SearchDataError, header: list[str] | None = None,
             label: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line where the row starts, cells) for every row of a CSV file, the header row included,
    streaming. Cells are unescaped (see the module docstring). `header`, when given, names the columns in
    messages about oversized cells (else the first row read is used).

    Raises `error` naming the file and line for: a quote that is not closed (at the end of the file, or
    closing in the middle of a cell further on — records would merge), a stray quote after a quoted
    cell, a NUL byte, a cell longer than MAX_FIELD_CHARS, a line longer than MAX_LINE_CHARS."""
    name = label or path.name
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(_limited_lines(fh, name, error), delimiter=delimiter, strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise error(_located(name, start, reader.line_num, str(exc))) from None
            for k, cell in enumerate(row):
                if len(cell) > MAX_FIELD_CHARS:
                    column = f", column {header[k]!r}" if header is not None and k < len(header) else ""
                    raise error(f"{name} line {start}{column}: a cell of {len(cell):,} characters; a cell may "
                                f"hold at most {MAX_FIELD_CHARS:,}. The file is damaged or holds a runaway "
                                "field; fix or remove that row")
            if header is None:
                header = row
            yield start, [unescape_cell(cell) for cell in row]
            start = reader.line_num + 1


def _located(name: str, start: int, line: int, message: str) -> str:
    if "unexpected end of data" in message:
        return (f"{name} line {start}: a quoted cell opened in the row that starts here is never closed (the "
                f"file ends inside it, at line {line}); close the quote — an unclosed quote swallows the "
                "rows after it")
    if "expected after" in message:
        if line > start:
            return (f"{name} line {start}: a quoted cell opened in the row that starts here is not closed before "
                    f"the end of its line; the next quote, on line {line}, is followed by more text, so lines "
                    f"{start}-{line} would merge into one row. Close the quote on line {start}")
        return (f"{name} line {start}: a quote ends a quoted cell but more text follows in the same cell; "
                'a quote inside a quoted cell is written twice ("")')
    if "field larger than field limit" in message:
        return (f"{name} line {start}: a cell longer than {MAX_FIELD_CHARS:,} characters (the most a cell may "
                f"hold), detected at line {line}; the file is damaged or a quote is not closed")
    if "NUL" in message:
        return f"{name} line {line}: contains a NUL byte; the file is binary or damaged"
    return f"{name} line {line}: malformed CSV ({message})"


def read_csv_table(path: Path, *, error: type[MetaexerciseError] = SearchDataError,
                   required: tuple[str, ...] = (), wanted: tuple[str, ...] | None = None,
                   label: str | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A whole CSV table of this folder's kind (UTF-8, comma-separated, a header row): (header, rows as
    (line, cells) with only the `wanted` columns in that order, or all columns). Raises `error` naming file
    and line for a missing required column (row 1), a row with more or fewer cells than the header, or
    any problem of `csv_rows`. `label` names the file in messages (default: its name)."""
    name = label or path.name
    check_utf8(path, error, name)
    rows = csv_rows(path, error=error, label=name)
    try:
        _, header = next(rows)
    except StopIteration:
        raise error(f"{name} line 1: the file is empty; expected a header row"
                    + (f" with the columns {', '.join(required)}" if required else "")) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise error(f"{name} row 1: missing column(s) {', '.join(missing)}")
    take = [header.index(c) for c in wanted] if wanted is not None else list(range(len(header)))
    body = []
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue  # a blank line
        if len(cells) != len(header):
            raise error(f"{name} line {line}: {len(cells)} cells where the header has {len(header)}; "
                        "check the quoting and the commas in that row")
        body.append((line, [cells[k] for k in take]))
    return ([header[k] for k in take], body)
