"""CSV streaming: format detection, decoding and record iteration, in one place.

The upload (row count, preview) and the import (download-and-chunk) read files through
these same functions, so both see the same records with the same numbers.

- Encoding: the user's override, else a BOM (UTF-8, UTF-16 LE/BE) or UTF-16 without one,
  all before the binary sniff, which UTF-16 would otherwise trip. Else UTF-8 when the
  head is valid UTF-8, or the legacy encoding charset-normalizer finds plausible. Bytes
  that do not decode are read as Windows-1252 (never dropped) and counted, so the upload
  can warn.
- Header: blank lines, Excel's `sep=X` line and a preamble of notes (LinkedIn) before it
  are skipped; the line it starts on is reported.
- Delimiter: the one of `, ; TAB |` that reads the head most consistently (data rows as
  wide as the header), so `;` or `,` inside header names do not mislead it.
- vCard (.vcf): detected by its first line, read by folksjobs.imports.vcard as records
  of a fixed header, so everything after this module treats it as a CSV.
- Records: Python's csv in strict mode, `newline=''` (CR-only files work, and a quoted
  line break of any kind stays in its record whatever the file's own line ends), an
  explicit field-size limit; a malformed record becomes a row failure with its reason,
  numbered by record (row 1 is the header), and the reader goes on with the next line.
- Our own export (folksjobs.exports.layout's header) is read without its formula guard.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from folksjobs.exports import layout
from folksjobs.exports.csvsafe import GUARD, unguard
from folksjobs.imports import vcard

DELIMITERS = [",", ";", "\t", "|"]
_FALLBACK_ERRORS = "folksjobs-cp1252"

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
    encoding: str  # a Python codec name: utf-8-sig | utf-16 | utf-8 | cp1252 | shift_jis ...
    delimiter: str
    sep_line: bool = False  # an Excel `sep=X` line before the header, skipped
    # Where the header starts (1-based physical line), for the preview: blank lines, a
    # sep= line or a preamble may come before it. Readers find it again by the same rule.
    header_line: int = 1
    # Not Unicode: named by charset-normalizer or by the user; the preview says so.
    legacy: bool = False

    def to_record(self) -> dict[str, object]:
        return {"encoding": self.encoding, "delimiter": self.delimiter, "sep_line": self.sep_line}


# Legacy encodings charset-normalizer chooses among when the head is not UTF-8, in order
# of preference when it finds several equally plausible: a short Western head decodes
# cleanly as cp1252, cp1250 and latin-1 alike, and cp1252 is what Excel writes there.
LEGACY_ENCODINGS = ["cp1252", "cp1250", "cp1251", "latin_1", "shift_jis", "gb18030"]
# What a user may name (--encoding, the API's `encoding`): text encodings only, never one
# of Python's bytes-to-bytes codecs (zlib, base64 ...), by their codecs.lookup names.
ENCODINGS = [
    codecs.lookup(e).name
    for e in ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", *LEGACY_ENCODINGS,
              "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "iso8859-2",
              "iso8859-5", "iso8859-7", "iso8859-9", "iso8859-15", "koi8-r", "mac-roman",
              "euc-jp", "euc-kr", "big5", "gbk"]
]  # fmt: skip


def detect_format(head: bytes, sniff_bytes: int = 8192, encoding: str | None = None) -> CsvFormat:
    """Decide encoding, delimiter and header line from the first bytes, or refuse the file.

    `encoding` (the user's override) wins over any detection."""
    if not head:
        raise CsvRefused("The file is empty: there is no header row and no data.")
    if encoding:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            encoding = f"unknown: {encoding}"
        if encoding not in ENCODINGS:
            raise CsvRefused(
                f"Unknown encoding {encoding.removeprefix('unknown: ')!r}; "
                f"use one of {', '.join(ENCODINGS)}."
            )
    elif head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif bom_less := _utf16_without_bom(head[:sniff_bytes]):
        encoding = bom_less
    else:
        for sig, what in _BINARY_SIGNATURES:
            if head.startswith(sig):
                raise NotCsvText(f"This file is {what}, not a CSV text file. {_HINT}")
        if b"\x00" in head[:sniff_bytes]:
            raise NotCsvText(
                "This file looks binary (it has NUL bytes in its first "
                f"{sniff_bytes // 1024} KB), not a CSV text file. {_HINT}"
            )
        encoding = "utf-8" if _is_utf8(head) else _legacy_encoding(head)
    legacy = not encoding.startswith("utf")
    text = _decode_head(head, encoding)
    if vcard.is_vcard(text):
        return CsvFormat(encoding, vcard.VCARD, legacy=legacy)
    best: tuple[tuple[float, int, int], str, bool, int] | None = None
    for d in DELIMITERS:
        score, sep_line, line = _score(text, d)
        if best is None or score > best[0]:
            best = (score, d, sep_line, line)
    assert best is not None
    _, delimiter, sep_line, line = best
    if best[0][2] < 2:  # one column whatever the delimiter
        delimiter, sep_line, line = ",", *_score(text, ",")[1:]
    return CsvFormat(encoding, delimiter, sep_line, line, legacy)


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text without a BOM: ASCII characters leave a NUL in every other byte."""
    even, odd = sample[0:200:2], sample[1:200:2]
    if len(odd) < 4:
        return None
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _is_utf8(head: bytes) -> bool:
    """UTF-8, perhaps with a few stray bytes: more valid multi-byte characters than bytes
    that do not decode. Such a file stays UTF-8 (the stray bytes read as cp1252, counted
    in a warning); reading it as a legacy encoding would garble every valid character."""
    text = head[: head.rfind(b"\n") + 1 or len(head)].decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return bad == 0 or sum(1 for c in text if "\x7f" < c != "\ufffd") > bad


def _legacy_encoding(head: bytes) -> str:
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    # Whole lines only: a character cut at the head's end must not count against a guess.
    results = list(from_bytes(head[: head.rfind(b"\n") + 1] or head, cp_isolation=LEGACY_ENCODINGS))
    if not results:
        return "utf-8"  # read as UTF-8 with the cp1252 fallback, counted in a warning
    least = min(r.chaos for r in results)
    # could_be_from_charset: the encodings that decode the head to the same text as r's.
    plausible = {
        codecs.lookup(e).name
        for r in results
        if r.chaos <= least + 0.01
        for e in r.could_be_from_charset
    }
    return next(n for n in (codecs.lookup(e).name for e in LEGACY_ENCODINGS) if n in plausible)


def _decode_head(head: bytes, encoding: str) -> str:
    # The head may end mid-character: decode incrementally without the final flush.
    dec = codecs.getincrementaldecoder(encoding)(errors=_FALLBACK_ERRORS)
    return str(dec.decode(head, final=False))


# --- the header row -------------------------------------------------------------------

# At most this many lines of notes before a header (LinkedIn writes two, then a blank).
PREAMBLE_RECORDS = 10


def is_sep_line(cells: list[str], delimiter: str) -> bool:
    return delimiter.join(cells).strip().lstrip("\ufeff") == f"sep={delimiter}"


def _is_prose(cells: list[str]) -> bool:
    """A note before the header: one cell, ending in a colon or reading like a sentence."""
    filled = [c.strip() for c in cells if c.strip()]
    if len(filled) != 1:
        return False
    text = filled[0]
    return text.endswith(":") or (len(text) >= 40 and text.count(" ") >= 5)


def header_position(rows: list[list[str] | Malformed]) -> int | None:
    """Which of a file's first non-blank records (a sep= line removed) is the header:
    the first with two or more named cells when only notes come before it, else the
    first. None: undecided until another record is read."""
    for i, r in enumerate(rows):
        if not isinstance(r, Malformed) and sum(1 for c in r if c.strip()) >= 2:
            return i
        if isinstance(r, Malformed) or not _is_prose(r) or i == PREAMBLE_RECORDS:
            return 0
    return None


def _score(text: str, delimiter: str) -> tuple[tuple[float, int, int], bool, int]:
    """How well `delimiter` reads the head: (share of data rows as wide as the header,
    minus cells that start with a space (prose, not a delimiter), header width), whether
    a sep= line was seen, and the header's line number."""
    rows: list[list[str] | Malformed] = []
    starts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    sep_line = False
    while len(rows) < 60:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except (StopIteration, csv.Error):
            break
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if not rows and not sep_line and is_sep_line(cells, delimiter):
            sep_line = True
            continue
        rows.append(cells)
        starts.append(start)
    at = header_position(rows) or 0
    if not rows:
        return (0.0, 0, 0), sep_line, 1
    header, data = rows[at], rows[at + 1 :]
    width = len(header)
    if width < 2:
        return (0.0, 0, width), sep_line, starts[at]
    same = sum(1 for r in data if len(r) == width) / len(data) if data else 1.0
    spaced = sum(1 for r in rows[at:] for c in r[1:] if c.startswith(" "))
    return (round(same, 1) + (10.0 if sep_line else 0.0), -spaced, width), sep_line, starts[at]


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


class _Lines:
    """Feeds physical lines to csv.reader, remembering those of the current record.

    An unclosed quote makes csv read every following line into one field. When that field
    runs to the end of the file, or past the field-size limit over several lines, the
    record's first line is failed and the lines after it are fed again as records of their
    own: one bad quote costs one row, never the rest of the file. A closed quoted field
    of any length within the limit stays one field, whatever its number of lines.

    `max_chars`, while set, bounds each physical line (the lines up to the header): a
    file whose first line is hundreds of megabytes is refused after reading the limit.
    """

    def __init__(self, text: IO[str]) -> None:
        self.text = text
        self.max_chars: int | None = None
        self.read = 0
        self.replay: deque[tuple[int, str]] = deque()
        self.current: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.replay:
            number, line = self.replay.popleft()
        else:
            if self.max_chars is None:
                line = self.text.readline()
            else:
                line = self.text.readline(self.max_chars + 1)
                if len(line) > self.max_chars:
                    raise CsvRefused(
                        f"Line {self.read + 1} is longer than {self.max_chars:,} characters "
                        "before a header row was found; a header row must be shorter."
                    )
            if not line:
                raise StopIteration
            self.read += 1
            number = self.read
        self.current.append((number, line))
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


def iter_records(text: IO[str], fmt: CsvFormat, field_limit: int) -> Iterator[Record]:
    """Yield the header (row 1) and then every data record, blank lines skipped.

    A record that breaks the CSV rules (text after a closing quote, a field over the
    limit, an unclosed quote) is yielded with `error` set instead of cells.
    """
    return records(iter_cells(text, fmt, field_limit))


def records(items: Iterable[list[str] | Malformed]) -> Iterator[Record]:
    for row, item in enumerate(items, 1):
        yield Record(row, None, str(item)) if isinstance(item, Malformed) else Record(row, item)


def iter_cells(text: IO[str], fmt: CsvFormat, field_limit: int) -> Iterator[list[str] | Malformed]:
    """iter_records without the Record around each one (the chunker reads millions): the
    header's cells first, then the cells of every record in order, or the Malformed
    reason of one that breaks the rules.

    Before the header, records are read one at a time with each line bounded by the
    field-size limit: blank lines, a sep= line and a preamble of notes are skipped
    (header_position decides, as detect_format did on the head).

    Then two paths, one answer. The fast one hands csv a block of whole lines, so the C
    reader iterates them itself. A record it cannot finish cleanly inside the block (an
    error, quotes still open at the block's end) is handed with the rest of the block to
    the exact path, which feeds csv line by line and remembers each record's lines so
    that it can replay them; after that record the fast path resumes.

    A file whose header is our own export's (folksjobs.exports.layout) is read without
    the export's formula guard (folksjobs.exports.csvsafe.unguard), here, where the
    upload and the chunker both read it. The header is read when this is called; any
    other file's records then come straight from the reader (itertools.chain, no
    generator in between for millions of rows).
    """
    if fmt.delimiter == vcard.VCARD:
        return _vcard_cells(text, field_limit)
    items = _csv_cells(text, fmt, field_limit)
    header = next(items, None)
    if header is None:
        return iter(())
    if type(header) is list and layout.is_export_header(header):
        return _unguarded(header, items)
    return itertools.chain((header,), items)


def _vcard_cells(text: IO[str], field_limit: int) -> Iterator[list[str] | Malformed]:
    for item in vcard.iter_cells(text, field_limit):
        yield item if isinstance(item, list) else Malformed(item)


def _unguarded(
    header: list[str], items: Iterator[list[str] | Malformed]
) -> Iterator[list[str] | Malformed]:
    """Our own export: its formula guard comes off every cell (csvsafe's rule, exact, so a
    quote that is data stays), and the file reads back as the values it was made from."""
    yield list(map(unguard, header))
    for item in items:
        # Only a cell that starts with the guard can lose it: the others are not looked at.
        yield [unguard(c) if c[:1] == GUARD else c for c in item] if type(item) is list else item


def _csv_cells(text: IO[str], fmt: CsvFormat, field_limit: int) -> Iterator[list[str] | Malformed]:
    csv.field_size_limit(field_limit)
    lines = _Lines(text)

    def reader(source: Iterable[str]) -> Iterator[list[str]]:
        return csv.reader(source, delimiter=fmt.delimiter, quotechar='"', strict=True)

    def exact_record() -> list[str] | Malformed | None:
        while True:
            lines.current = []
            try:
                cells = next(reader(lines))
            except StopIteration:
                return None
            except csv.Error as e:
                start = lines.start_line
                if "unexpected end of data" in str(e):
                    lines.replay_after_first()
                    return Malformed(f"unterminated quoted field at line {start} "
                                     "(a quote opened there is never closed)")  # fmt: skip
                if "field larger than field limit" in str(e) and len(lines.current) > 1:
                    lines.replay_after_first()
                    return Malformed(f"unterminated quoted field at line {start} (a quote "
                                     f"opened there does not close within the "
                                     f"{field_limit:,}-character field limit)")  # fmt: skip
                return Malformed(_csv_reason(str(e), start, field_limit))
            if cells and (len(cells) > 1 or cells[0] != ""):  # else a blank line
                return cells

    lines.max_chars = field_limit
    head: list[list[str] | Malformed] = []
    at: int | None = None
    while at is None:
        rec = exact_record()
        if rec is None:
            at = 0
        elif not head and fmt.sep_line and type(rec) is list and is_sep_line(rec, fmt.delimiter):
            continue
        else:
            head.append(rec)
            at = header_position(head)
    lines.max_chars = None
    yield from head[at:]

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
                    done = records.line_num  # type: ignore[attr-defined]
                    if cells and (len(cells) > 1 or cells[0] != ""):
                        yield cells
                continue
            except csv.Error:
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


# Stored and shown warnings: the first ones, then how many more (a header of a million
# repeated names must not become a million warnings).
MAX_WARNINGS = 20


def cap_warnings(warnings: list[str]) -> list[str]:
    if len(warnings) <= MAX_WARNINGS:
        return warnings
    more = len(warnings) - MAX_WARNINGS
    return [*warnings[:MAX_WARNINGS], f"... and {more:,} more warning{'s' if more != 1 else ''}"]


def read_header(records: Iterator[Record], max_columns: int | None = None) -> Header:
    """The header's names, made unique, with a warning for each name it had to make.

    `max_columns`: refuse a wider header (the upload's check; the chunker reads files the
    upload accepted)."""
    first = next(records, None)
    if first is None:
        raise CsvRefused("The file has no header row.")
    if first.cells is None:
        raise CsvRefused(f"The header row cannot be read: {first.error}.")
    if max_columns is not None and len(first.cells) > max_columns:
        raise CsvRefused(
            f"The header row has {len(first.cells):,} columns; at most {max_columns:,} can "
            "be imported. Remove the columns you do not need and upload again."
        )
    names = [c.strip().lstrip("\ufeff") for c in first.cells]
    warnings: list[str] = []
    # Real names are reserved first, so a made-up name (a_2, column_3) never takes one.
    taken = set(names)
    seen: set[str] = set()
    suffix: dict[str, int] = {}
    for i, n in enumerate(names):
        if n and n not in seen:
            seen.add(n)
            continue
        base = n or f"column_{i + 1}"
        name = base
        if n or base in taken:
            k = suffix.get(base, 1)
            while (name := f"{base}_{(k := k + 1)}") in taken:
                pass
            suffix[base] = k
        taken.add(name)
        seen.add(name)
        names[i] = name
        if n:
            warnings.append(f"header {n!r} appears more than once; column {i + 1} is {name!r}")
        else:
            warnings.append(f"column {i + 1} has no header name; called it {name!r}")
    return Header(names, warnings)
