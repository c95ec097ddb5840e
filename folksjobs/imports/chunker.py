"""Chunks of an import: the CPU half of download-and-chunk, and the chunk's stored form.

Parsing a large file, normalising its emails and hashing them for dedup keep a core
busy. In a thread of the worker that work would hold the GIL against the event loop that
commits the chunks: every socket call of the loop then waits out the parser's switch
interval (measured: a 1M-row import 33 s in a thread, 25 s with a 0.5 ms interval). So
it runs in a child process (`python -m folksjobs.imports.chunker SPEC`), which also puts the
second core to use. The child reads the file (a path, or the blob's bytes on stdin),
splits it into chunks of `chunk_rows` records, decides the duplicates inside each chunk
(dedup.last_wins) and writes every chunk to stdout. The worker claims the chunk's emails
in Redis and stores it; the pipe's buffer holds the child back while it does.

stdout carries frames: a 4-byte big-endian length, then a marshal payload, either
    (index, records read so far, records blob, superseded rows, digests, last row of each)
or, last, ("done", chunks, rows). Anything else (a crash) is a non-zero exit with the
reason on stderr.
"""

from __future__ import annotations

import json
import marshal
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from folksjobs.imports.csvstream import CsvFormat, iter_cells, open_text, read_header, records
from folksjobs.imports.dedup import last_wins

Frame = tuple[int, int, bytes, list[int], list[bytes], list[int]]


@dataclass(frozen=True)
class ChunkSpec:
    encoding: str
    delimiter: str
    sep_line: bool
    field_limit: int
    email_columns: list[int]  # mapping.email_columns: the first valid address wins
    chunk_rows: int
    path: str | None = None  # None: the file's bytes arrive on stdin
    email_test_domains: bool = False  # Settings.email_test_domains

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "folksjobs.imports.chunker", json.dumps(asdict(self))]

    @staticmethod
    def env() -> dict[str, str]:
        """The worker's environment, with this very package first on the child's path
        (a checkout run in place, not only an installed one)."""
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


@dataclass
class Chunk:
    """A chunk's records column by column: record i is row first_row + i."""

    first_row: int
    cells: list[list[str] | None]  # None: a malformed record, its reason in `errors`
    errors: dict[int, str]
    emails: list[str | None]  # normalised once by the chunker; None: not a valid email
    dups: set[int]  # rows that are duplicates, inside this chunk or of an earlier one

    def release(self, start: int, stop: int) -> None:
        """Let records [start, stop) go once committed (row numbers stay as they are)."""
        self.cells[start:stop] = [None] * (stop - start)


def frames(raw: BinaryIO, spec: ChunkSpec) -> Iterator[Frame]:
    fmt = CsvFormat(spec.encoding, spec.delimiter, spec.sep_line)
    items = iter_cells(open_text(raw, fmt), fmt, spec.field_limit)
    read_header(records(islice(items, 1)))
    index = rows = 0
    first_row = 2  # row 1 is the header
    cells: list[list[str] | None] = []
    errors: dict[int, str] = {}

    def frame() -> Frame:
        superseded, last, emails = last_wins(
            cells, first_row, spec.email_columns, spec.email_test_domains
        )
        # marshal: plain lists and strings, several times faster than JSON both ways;
        # chunks live an hour in our own Redis, read by workers of the same release.
        blob = marshal.dumps((first_row, cells, errors, emails))
        return index, rows, blob, superseded, list(last), list(last.values())

    for item in items:
        if type(item) is list:
            cells.append(item)
        else:
            errors[len(cells)] = str(item)
            cells.append(None)
        rows += 1
        if len(cells) == spec.chunk_rows:
            yield frame()
            index, first_row, cells, errors = index + 1, first_row + len(cells), [], {}
    if cells:
        yield frame()


def pack(dups: list[int], rows_blob: bytes) -> bytes:
    """A chunk as stored in Redis: its duplicate rows, and its records as the child wrote them."""
    return marshal.dumps((dups, rows_blob))


def unpack(raw: bytes) -> Chunk:
    dups, rows_blob = marshal.loads(raw)
    first_row, cells, errors, emails = marshal.loads(rows_blob)
    return Chunk(first_row, cells, errors, emails, set(dups))


def _write(out: BinaryIO, payload: Any) -> None:
    data = marshal.dumps(payload)
    out.write(len(data).to_bytes(4, "big"))
    out.write(data)


def main() -> None:
    spec = ChunkSpec(**json.loads(sys.argv[1]))
    out = sys.stdout.buffer
    chunks = rows = 0
    with open(spec.path, "rb") if spec.path else sys.stdin.buffer as raw:
        for f in frames(raw, spec):
            _write(out, f)
            chunks, rows = f[0] + 1, f[1]
    _write(out, ("done", chunks, rows))
    out.flush()


if __name__ == "__main__":
    main()
