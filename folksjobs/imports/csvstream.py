"""CSV streaming: format detection, decoding and record iteration, in one place.

The upload (row count, preview) and the import (download-and-chunk) read files through
these same functions, so both see the same records with the same numbers.

- Encoding: a BOM decides first (UTF-8, UTF-16 LE/BE), before the binary sniff, which a
  UTF-16 file would otherwise trip. Without a BOM the text is UTF-8; bytes that are not
  valid UTF-8 are read as Windows-1252 (never dropped) and counted, so the upload can warn.
- Delimiter: Excel's `sep=X` first line, else the most frequent of `, ; TAB |` in the header.
- Records: Python's csv in strict mode, `newline=''` (CR-only files work), an explicit
  field-size limit; a malformed record becomes a row failure with its reason, numbered by
  record (row 1 is the header), and the reader goes on with the next line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

DELIMITERS = [",", ";", "\t", "|"]
_FALLBACK_ERRORS = "folksjobs-cp1252"
_SEP_LINE = re.compile(r"^sep=(.)\r?\n?$")

# (signature, what it is): refused before any work, with a hint.
_BINARY_SIGNATURES: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\xd0\xcf\x11\xe0", "a legacy Excel/Office document (.xls)"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
]
_HINT = "Open it in your spreadsheet and use File > Save As > CSV (UTF-8), then upload that."


class CsvRefused(ValueError):
    """The file cannot be imported at all; the message says why, for a person."""


class NotCsvText(CsvRefused):
    """The bytes are a binary format (an archive, a PDF, NUL bytes), not text at all."""


# --- decoding -----------------------------------------------------------------------

_fallback_counts = threading.local()


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    bad = err.object[err.start : err.end]
    _fallback_counts.n = getattr(_fallback_counts, "n", 0) + len(bad)
    if getattr(_fallback_counts, "first", None) is None:
        _fallback_counts.first = err.start
    # cp1252 leaves five bytes undefined; latin-1 maps them, so no byte is ever lost.
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad), err.end


codecs.register_error(_FALLBACK_ERRORS, _cp1252_fallback)


def reset_fallback_count() -> None:
    _fallback_counts.n = 0
    _fallback_counts.first = None


def fallback_count() -> int:
    """Bytes of this thread's reads so far that were not UTF-8 and were read as cp1252."""
    return int(getattr(_fallback_counts, "n", 0))


@dataclass(frozen=True)
class CsvFormat:
    encoding: str  # utf-8-sig | utf-16 | utf-8
    delimiter: str
    sep_line: bool = False  # an Excel `sep=X` first line to skip

    def to_record(self) -> dict[str, object]:
        return {"encoding": self.encoding, "delimiter": self.delimiter, "sep_line": self.sep_line}


def detect_format(head: bytes, sniff_bytes: int = 8192) -> CsvFormat:
    """Decide encoding and delimiter from the first bytes, or refuse the file."""
    if not head:
        raise CsvRefused("The file is empty: there is no header row and no data.")
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8"
        for sig, what in _BINARY_SIGNATURES:
            if head.startswith(sig):
                raise NotCsvText(f"This file is {what}, not a CSV text file. {_HINT}")
        if b"\x00" in head[:sniff_bytes]:
            raise NotCsvText(
                "This file looks binary (it has NUL bytes in its first "
                f"{sniff_bytes // 1024} KB), not a CSV text file. {_HINT}"
            )
    text = _decode_head(head, encoding)
    first_line = text.splitlines()[0] if text.splitlines() else ""
    if m := _SEP_LINE.match(first_line.strip("\ufeff")):
        return CsvFormat(encoding, m.group(1), sep_line=True)
    return CsvFormat(encoding, _guess_delimiter(first_line))


def _decode_head(head: bytes, encoding: str) -> str:
    # The head may end mid-character: decode incrementally without the final flush.
    dec = codecs.getincrementaldecoder(encoding)(errors=_FALLBACK_ERRORS)
    return str(dec.decode(head, final=False))


def _guess_delimiter(header_line: str) -> str:
    counts = {d: _count_outside_quotes(header_line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] > 0 else ","


def _count_outside_quotes(line: str, ch: str) -> int:
    n, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            n += 1
    return n


def open_text(raw: BinaryIO, fmt: CsvFormat) -> IO[str]:
    return io.TextIOWrapper(raw, encoding=fmt.encoding, errors=_FALLBACK_ERRORS, newline="")


# --- records ------------------------------------------------------------------------


@dataclass
class Record:
    """One CSV record: `row` counts records (the header is row 1), never physical lines."""

    row: int
    cells: list[str] | None
    error: str | None = None


@dataclass
class Header:
    names: list[str]
    warnings: list[str] = field(default_factory=list)


class _RecordTooLong(Exception):
    pass


class _Lines:
    """Feeds physical lines to csv.reader, remembering those of the current record.

    An unclosed quote makes csv read every following line into one field. When a record
    runs past `max_lines` lines, or to the end of the file inside quotes, its first line
    is failed and the lines after it are fed again as records of their own: one bad
    quote costs one row, never the rest of the file.
    """

    def __init__(self, text: IO[str], max_lines: int) -> None:
        self.text = text
        self.max_lines = max_lines
        self.read = 0
        self.replay: deque[tuple[int, str]] = deque()
        self.current: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.replay:
            number, line = self.replay.popleft()
        else:
            line = self.text.readline()
            if not line:
                raise StopIteration
            self.read += 1
            number = self.read
        self.current.append((number, line))
        if len(self.current) > self.max_lines:
            raise _RecordTooLong
        return line

    @property
    def start_line(self) -> int:
        return self.current[0][0] if self.current else self.read + 1

    def replay_after_first(self) -> None:
        self.replay.extendleft(reversed(self.current[1:]))


# Lines read at a time by the fast path (a size hint for readlines).
_BLOCK_CHARS = 256 * 1024


class Malformed(str):
    """A record the CSV rules reject, as its reason (iter_cells yields it for the cells)."""


def iter_records(text: IO[str], fmt: CsvFormat, field_limit: int,
                 max_record_lines: int = 1000) -> Iterator[Record]:  # fmt: skip
    """Yield the header (row 1) and then every data record, blank lines skipped.

    A record that breaks the CSV rules (text after a closing quote, a field over the
    limit, an unclosed quote) is yielded with `error` set instead of cells.
    """
    return records(iter_cells(text, fmt, field_limit, max_record_lines))


def records(items: Iterable[list[str] | Malformed]) -> Iterator[Record]:
    for row, item in enumerate(items, 1):
        yield Record(row, None, str(item)) if isinstance(item, Malformed) else Record(row, item)


def iter_cells(text: IO[str], fmt: CsvFormat, field_limit: int,
               max_record_lines: int = 1000) -> Iterator[list[str] | Malformed]:  # fmt: skip
    """iter_records without the Record around each one (the chunker reads millions): the
    cells of every record in order, or the Malformed reason of one that breaks the rules.

    Two paths, one answer. The fast one hands csv a block of whole lines, so the C
    reader iterates them itself. A record it cannot finish cleanly inside the block (an
    error, quotes still open at the block's end, too many lines) is handed with the rest
    of the block to the exact path, which feeds csv line by line and remembers each
    record's lines so that it can replay them; after that record the fast path resumes.
    """
    csv.field_size_limit(field_limit)
    lines = _Lines(text, max_record_lines)
    if fmt.sep_line:
        next(lines, None)

    def reader(source: Iterable[str]) -> Iterator[list[str]]:
        return csv.reader(source, delimiter=fmt.delimiter, quotechar='"', strict=True)

    def exact_record() -> list[str] | Malformed | None:
        while True:
            lines.current = []
            try:
                cells = next(reader(lines))
            except StopIteration:
                return None
            except (csv.Error, _RecordTooLong) as e:
                start = lines.start_line
                if isinstance(e, _RecordTooLong) or "unexpected end of data" in str(e):
                    lines.replay_after_first()
                    return Malformed(f"unterminated quoted field at line {start} "
                                     "(a quote opened there is never closed)")  # fmt: skip
                return Malformed(_csv_reason(str(e), start, field_limit))
            if cells and (len(cells) > 1 or cells[0] != ""):  # else a blank line
                return cells

    while True:
        if lines.replay and lines.replay[-1][0] - lines.replay[0][0] + 1 == len(lines.replay):
            base = lines.replay[0][0] - 1
            block = [line for _, line in lines.replay]
            lines.replay.clear()
        elif not lines.replay:
            base = lines.read
            block = text.readlines(_BLOCK_CHARS)
            if not block:
                return
            lines.read += len(block)
        else:
            block = []
        done = 0  # lines of the block that whole records used
        if block:
            records = reader(block)
            try:
                for cells in records:
                    if records.line_num - done > max_record_lines:  # type: ignore[attr-defined]
                        raise _RecordTooLong
                    done = records.line_num  # type: ignore[attr-defined]
                    if cells and (len(cells) > 1 or cells[0] != ""):
                        yield cells
                continue
            except (csv.Error, _RecordTooLong):
                lines.replay.extendleft(
                    (base + i + 1, block[i]) for i in range(len(block) - 1, done - 1, -1)
                )
        rec = exact_record()
        if rec is None:
            return
        yield rec


def _csv_reason(message: str, line: int, field_limit: int) -> str:
    if "field larger than field limit" in message:
        return f"a field is larger than the {field_limit:,}-character limit"
    if "expected after" in message:
        return f"malformed quoting at line {line}: text after a closing quote"
    return f"malformed CSV at line {line}: {message}"


def read_header(records: Iterator[Record]) -> Header:
    first = next(records, None)
    if first is None:
        raise CsvRefused("The file has no header row.")
    if first.cells is None:
        raise CsvRefused(f"The header row cannot be read: {first.error}.")
    names = [c.strip().lstrip("\ufeff") for c in first.cells]
    warnings: list[str] = []
    for i, n in enumerate(names):
        if not n:
            names[i] = f"column_{i + 1}"
            warnings.append(f"column {i + 1} has no header name; called it {names[i]!r}")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            seen[n] += 1
            names[i] = f"{n}_{seen[n]}"
            warnings.append(f"header {n!r} appears more than once; column {i + 1} is {names[i]!r}")
        else:
            seen[n] = 1
    return Header(names, warnings)
