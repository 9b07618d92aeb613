"""Neutralising formula ("CSV") injection in the spreadsheets and CSV files the toolkit writes.

A cell whose text starts with `=`, `+`, `-` or `@` is taken by Excel, LibreOffice Calc and Google Sheets
as a formula, and a leading tab or carriage return can hide such a start; a title such as
`=cmd|' /C calc'!A0` or `=HYPERLINK("http://...", "click")` imported from a database export would run when
a reviewer opens the file. Source: OWASP, "CSV Injection"
(https://owasp.org/www-community/attacks/CSV_Injection), which recommends making sure no cell begins with
any of these characters by prepending a single quote (`'`), so the cell is read as text.

The rules here:

- `escape_cell(value)`: text whose first character, after any single quotes, is one of `TRIGGERS` gets one
  more leading `'`. Quotes already in front are counted so that the escape can always be undone (the
  text `'=x` is written `''=x`). Numbers stay numbers: a non-text value (int, float, ...) is returned
  unchanged, and so is text that is a plain decimal number ("-1.5", "+3", "2e-4"), which a spreadsheet
  reads as a number, not as a formula.
- `unescape_cell(value)`: the inverse, used wherever the toolkit reads back its own files: text that
  starts with one or more `'` followed by a trigger character loses exactly one `'`. For all text t,
  `unescape_cell(escape_cell(t)) == t`.
- In XLSX, text is written with the string data type (openpyxl `data_type = "s"`), never as a formula
  (`write_xlsx_cell`).

Limit: the escape protects the start of each cell. A comma-separated file opened by a spreadsheet set to
another list separator (";" in many European locales) is split at other places; such a program
mis-reads the file anyway. The toolkit's files are read correctly with "," as separator.
"""

from __future__ import annotations

import re
from typing import Any

#: First characters that make a spreadsheet cell a formula (OWASP, CSV Injection).
TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

_NEEDS_ESCAPE = re.compile(r"'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def is_number_text(text: str) -> bool:
    """True for a plain decimal number such as "-1.5", "+3", "2e-4" (no spaces, no formula)."""
    return _NUMBER.fullmatch(text) is not None


def escape_cell(value: Any) -> Any:
    """`value` safe to write into a CSV or spreadsheet cell: text a spreadsheet would run as a formula gets
    a leading `'`; numbers (and numeric text) and anything that is not text are returned unchanged."""
    if not isinstance(value, str) or not _NEEDS_ESCAPE.match(value) or is_number_text(value):
        return value
    return "'" + value


def unescape_cell(value: Any) -> Any:
    """The text `escape_cell` was given: one leading `'` removed when it (and any further quotes) is
    followed by a trigger character. Anything else is returned unchanged."""
    if isinstance(value, str) and _ESCAPED.match(value):
        return value[1:]
    return value


def escape_row(values: list[Any] | tuple[Any, ...]) -> list[Any]:
    """`escape_cell` applied to every cell of a row."""
    return [escape_cell(v) for v in values]


def escape_frame(frame):
    """A copy of a pandas DataFrame with `escape_cell` applied to every text cell (numeric columns are
    left as they are)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or str(out[column].dtype) in ("string", "str"):
            out[column] = out[column].map(escape_cell)
    return out


def unescape_frame(frame):
    """A copy of a pandas DataFrame with `unescape_cell` applied to every text cell."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or str(out[column].dtype) in ("string", "str"):
            out[column] = out[column].map(unescape_cell)
    return out


#: Characters an XLSX file cannot hold (C0 controls other than tab, line feed and carriage return).
_NOT_IN_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def write_xlsx_cell(sheet, row: int, column: int, value: Any):
    """Write `value` into an openpyxl worksheet cell, escaped; text is always stored as a string cell
    (data type "s"), so nothing written through here becomes a formula. Control characters an XLSX file
    cannot hold become U+FFFD (the replacement character), visibly, instead of failing the whole write.
    Returns the cell."""
    cell = sheet.cell(row=row, column=column)
    safe = escape_cell(value)
    if isinstance(safe, str):
        safe = _NOT_IN_XLSX.sub("\ufffd", safe)
    cell.value = safe
    if isinstance(safe, str):
        cell.data_type = "s"
    return cell
