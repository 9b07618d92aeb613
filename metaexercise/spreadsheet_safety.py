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
- In CSV, a carriage return inside a cell becomes a line feed (`one_line_ending`, applied by `csv_cell`,
  `escape_row` and `escape_frame`): with LF between records a CSV writer does not quote a bare CR, and a
  reader would split the record there.

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


def one_line_ending(value: Any) -> Any:
    """Text with its carriage returns (CR, CRLF) as line feeds. The toolkit's CSV files end records with LF,
    and a CSV writer then quotes a cell holding LF but not one holding a bare CR, which a reader takes for
    the end of the record: two records made of one."""
    if isinstance(value, str) and "\r" in value:
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def csv_cell(value: Any) -> Any:
    """A cell ready for one of the toolkit's CSV files: `one_line_ending`, then `escape_cell`."""
    return escape_cell(one_line_ending(value))


def escape_row(values: list[Any] | tuple[Any, ...]) -> list[Any]:
    """`csv_cell` applied to every cell of a row (a CSV row)."""
    return [csv_cell(v) for v in values]


def _is_text_column(series) -> bool:
    return series.dtype == object or str(series.dtype) in ("string", "str")


def _map_text(frame, function, headers: bool):
    """A copy of `frame` with `function` applied to every text cell (and to the column names when
    `headers`). A column is replaced only where a cell changes, and keeps its dtype: mapping a column of
    numbers stored as objects would otherwise turn it into floats and change how it is printed."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not _is_text_column(values):
            continue
        mapped = [function(v) for v in values]
        if any(a is not b for a, b in zip(mapped, values, strict=True)):
            out[column] = pd.Series(mapped, index=out.index, dtype=values.dtype)
    if headers:
        out.columns = [function(c) for c in out.columns]
    return out


def escape_frame(frame, *, headers: bool = False):
    """A copy of a pandas DataFrame ready to be written as CSV: `csv_cell` (carriage returns as line feeds,
    then `escape_cell`) applied to every text cell (numeric columns are left as they are), and to the column
    names when `headers`."""
    return _map_text(frame, csv_cell, headers)


def csv_text(frame, *, headers: bool = True, float_format: str | None = None) -> str:
    """The toolkit's CSV text of a DataFrame: `escape_frame` (column names too unless `headers=False`), no
    index, LF line ends; `float_format` as pandas' `to_csv`. `read_csv` reads it back unescaped."""
    return escape_frame(frame, headers=headers).to_csv(index=False, lineterminator="\n", float_format=float_format)


def unescape_frame(frame, *, headers: bool = False):
    """A copy of a pandas DataFrame with `unescape_cell` applied to every text cell (and to the column names
    when `headers`)."""
    return _map_text(frame, unescape_cell, headers)


def read_csv(source, **kwargs):
    """`pandas.read_csv(source, **kwargs)` of a CSV file the toolkit wrote, with `unescape_frame` applied to
    cells and column names: the table as it was before `escape_frame` (e.g. results/sof.csv's
    "-0.55 (-0.81 to -0.30) ...")."""
    import pandas as pd

    return unescape_frame(pd.read_csv(source, **kwargs), headers=True)


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
