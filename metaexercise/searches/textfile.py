"""Reading an export's text: encoding detection in one streaming pass, then lines with their numbers.

Exports come as UTF-8, UTF-8 with a byte-order mark (Excel, Web of Science), UTF-16 with a byte-order
mark (Windows "Unicode" text) or Latin-1 (older EndNote and Windows tools), with Unix or Windows line ends. UTF-8 is tried first because Latin-1 decodes any byte string
without error and would silently garble a UTF-8 file; Latin-1 is the fallback, with a note saying where the
first non-UTF-8 byte sits.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from metaexercise.errors import SearchImportError
from metaexercise.searches.tables import MAX_FIELD_CHARS

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Encoding:
    """How an export is to be decoded, and a note for the user when that is not plain UTF-8."""

    name: str
    note: str | None = None


def detect_encoding(path: Path) -> Encoding:
    """Decode the file once in 1 MiB chunks (memory bounded) and choose utf-8-sig, utf-8 or latin-1.

    Raises SearchImportError for an empty file (no bytes, or only whitespace and a BOM)."""
    with open(path, "rb") as fh:
        head = fh.read(3)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return _check_utf16(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    content = False
    with open(path, "rb") as fh:
        bom = head == codecs.BOM_UTF8
        fh.seek(3 if bom else 0)
        while chunk := fh.read(_CHUNK):
            content = content or bool(chunk.strip())
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk[: exc.start].count(b"\n")
                if bom:
                    raise SearchImportError(
                        f"{path.name} line {bad_line}: the file starts with a UTF-8 byte-order mark but is not "
                        f"valid UTF-8 ({exc.reason}); re-export it as UTF-8"
                    ) from None
                return Encoding(
                    "latin-1",
                    f"{path.name} line {bad_line}: not valid UTF-8; the whole file was read as Latin-1 "
                    "(ISO-8859-1). Check accented names in the imported records.",
                )
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return Encoding("latin-1", f"{path.name} line {line}: truncated UTF-8 at the end; read as Latin-1")
    if not content:
        raise SearchImportError(f"{path.name} line 1: the file is empty; nothing was imported")
    return Encoding("utf-8-sig" if bom else "utf-8")


def _check_utf16(path: Path) -> Encoding:
    """UTF-16 with a byte-order mark (EndNote and Excel "Unicode text" on Windows): decoded as a whole
    stream; an odd byte or a lone surrogate is an error naming its line."""
    decoder = codecs.getincrementaldecoder("utf-16")()
    content = False
    line = 1
    with open(path, "rb") as fh:
        order = "utf-16-le" if fh.read(2) == codecs.BOM_UTF16_LE else "utf-16-be"
        fh.seek(0)
        try:
            while chunk := fh.read(_CHUNK):
                pending = decoder.getstate()[0]
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    good = (pending + chunk)[: exc.start - exc.start % 2]
                    line += codecs.decode(good, order, "replace").count("\n")
                    raise
                content = content or bool(text.strip())
                line += text.count("\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise SearchImportError(f"{path.name} line {line}: starts as UTF-16 but is not valid UTF-16 "
                                    f"({exc.reason}); re-export it as UTF-8") from None
    if not content:
        raise SearchImportError(f"{path.name} line 1: the file is empty; nothing was imported")
    return Encoding("utf-16", f"{path.name}: read as UTF-16 (byte-order mark at the start)")


def numbered_lines(path: Path, encoding: str, limit: int = MAX_FIELD_CHARS + 100) -> Iterator[tuple[int, str]]:
    """(line number, line without its line end), streaming; Windows and old Mac line ends are accepted.
    A line longer than `limit` characters (a field may hold at most MAX_FIELD_CHARS) is an error naming it,
    raised before the line is read whole, so a runaway line cannot stall an import or exhaust memory."""
    with open(path, encoding=encoding, newline=None) as fh:
        number = 0
        while line := fh.readline(limit + 1):
            number += 1
            if len(line) > limit and not (len(line) == limit + 1 and line.endswith("\n")):
                raise SearchImportError(
                    f"{path.name} line {number}: longer than {limit:,} characters (a field may hold at most "
                    f"{MAX_FIELD_CHARS:,}); the export is damaged or holds a runaway field")
            yield number, line.rstrip("\n")
