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

stdout carries frames: a 4-byte big-endian length, then a marshal payload, either a
`Frame` (one chunk) or, last, ("done", chunks, rows, eof). Anything else (a crash) is a
non-zero exit with the reason on stderr. This module writes them (`main`) and reads them
(`read_frames`, `run` for the worker's side): the format lives here only.

A spec can name a range of chunks (`first_chunk`, `stop_chunk`): one workflow run's share
of a large file. The chunks before it are parsed (records can span lines, so only a
parse finds where a chunk starts) but neither checked nor sent (a `skipped` frame marks
each); the child stops at the first record of `stop_chunk` (Done.eof False).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from folksjobs.imports.csvstream import CsvFormat, iter_cells, open_text, read_header, records
from folksjobs.imports.dedup import last_wins


class Frame(NamedTuple):
    """One chunk, as the child hands it to the worker."""

    chunk_index: int  # from 0
    rows: int  # records read so far, this chunk's included
    blob: bytes  # the chunk's records as stored (see pack / unpack)
    superseded: list[int]  # rows a later row of the same email in this chunk replaces
    digests: list[bytes]  # the chunk's email digests, for the claim across chunks
    last_rows: list[int]  # the last row of each digest, in the same order
    # Before spec.first_chunk: read past, nothing else (no records, no digests). Sent so
    # the worker's progress marker moves while the child reads up to its range.
    skipped: bool = False


class Done(NamedTuple):
    """The last frame: the totals of what was read."""

    chunks: int  # chunks read, those before first_chunk included
    rows: int  # records read
    eof: bool = True  # the whole file: False when the child stopped at spec.stop_chunk


_DONE = "done"


class ChunkerFailed(RuntimeError):
    """The child ended without its last frame; the message ends with its stderr's last line."""


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
    first_chunk: int = 0  # chunks before it are only parsed, not sent
    stop_chunk: int | None = None  # stop at its first record (None: read to the end)

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


class Parsed(NamedTuple):
    """One chunk as parsed, before it is framed for the pipe."""

    chunk_index: int
    rows: int  # records read so far, this chunk's included
    chunk: Chunk  # dups: the rows a later row of the same email in this chunk replaces
    superseded: list[int]
    last: dict[bytes, int]  # each email digest's last row


class Skipped(NamedTuple):
    """A chunk before spec.first_chunk: read past, nothing else."""

    chunk_index: int
    rows: int


def parse(raw: BinaryIO, spec: ChunkSpec) -> Iterator[Parsed]:
    """The chunks of spec's range, in order: the child frames them (`frames`); a file of one
    chunk is used as it is, in the worker (import-small), with no frame packed to be unpacked."""
    return (p for p in _Reader(spec).parse(raw) if isinstance(p, Parsed))


def frames(raw: BinaryIO, spec: ChunkSpec) -> Iterator[Frame]:
    return _Reader(spec).frames(raw)


class _Reader:
    """parse() and frames(), keeping count of what was read for the Done frame."""

    def __init__(self, spec: ChunkSpec) -> None:
        self.spec = spec
        self.done = Done(0, 0)

    def parse(self, raw: BinaryIO) -> Iterator[Parsed | Skipped]:
        spec = self.spec
        fmt = CsvFormat(spec.encoding, spec.delimiter, spec.sep_line)
        items = iter_cells(open_text(raw, fmt), fmt, spec.field_limit)
        read_header(records(islice(items, 1)))
        index = rows = 0
        first_row = 2  # row 1 is the header
        cells: list[list[str] | None] = []
        errors: dict[int, str] = {}

        def parsed() -> Parsed | Skipped:
            if index < spec.first_chunk:
                return Skipped(index, rows)
            superseded, last, emails = last_wins(
                cells, first_row, spec.email_columns, spec.email_test_domains
            )
            chunk = Chunk(first_row, cells, errors, emails, set(superseded))
            return Parsed(index, rows, chunk, superseded, last)

        for item in items:
            if index == spec.stop_chunk:
                self.done = Done(index, rows, eof=False)
                return
            if type(item) is list:
                cells.append(item)
            else:
                errors[len(cells)] = str(item)
                cells.append(None)
            rows += 1
            if len(cells) == spec.chunk_rows:
                yield parsed()
                index, first_row, cells, errors = index + 1, first_row + len(cells), [], {}
        if cells:
            yield parsed()
        self.done = Done(index + (1 if cells else 0), rows)

    def frames(self, raw: BinaryIO) -> Iterator[Frame]:
        for p in self.parse(raw):
            if isinstance(p, Skipped):
                yield Frame(p.chunk_index, p.rows, b"", [], [], [], skipped=True)
                continue
            c = p.chunk
            # marshal: plain lists and strings, several times faster than JSON both ways;
            # chunks live an hour in our own Redis, read by workers of the same release.
            blob = marshal.dumps((c.first_row, c.cells, c.errors, c.emails))
            yield Frame(
                p.chunk_index, p.rows, blob, p.superseded, list(p.last), list(p.last.values())
            )


def pack(dups: list[int], rows_blob: bytes) -> bytes:
    """A chunk as stored in Redis: its duplicate rows, and its records as the child wrote them."""
    return marshal.dumps((dups, rows_blob))


def unpack(raw: bytes) -> Chunk:
    dups, rows_blob = marshal.loads(raw)
    first_row, cells, errors, emails = marshal.loads(rows_blob)
    return Chunk(first_row, cells, errors, emails, set(dups))


# --- the pipe: the child writes frames (main), the worker reads them (run) ---------------


def _write(out: BinaryIO, payload: tuple[Any, ...]) -> None:
    data = marshal.dumps(tuple(payload))  # marshal takes plain tuples only
    out.write(len(data).to_bytes(4, "big"))
    out.write(data)


def main() -> None:
    spec = ChunkSpec(**json.loads(sys.argv[1]))
    out = sys.stdout.buffer
    reader = _Reader(spec)
    with open(spec.path, "rb") if spec.path else sys.stdin.buffer as raw:
        for f in reader.frames(raw):
            _write(out, f)
    _write(out, (_DONE, *reader.done))
    out.flush()


async def read_frames(stream: asyncio.StreamReader) -> AsyncIterator[Frame | Done]:
    """The frames `main` wrote, ending with Done; a stream that ends before Done (the
    child died) just ends."""
    while True:
        try:
            size = int.from_bytes(await stream.readexactly(4), "big")
            payload = marshal.loads(await stream.readexactly(size))
        except asyncio.IncompleteReadError:
            return
        if payload[0] == _DONE:
            yield Done(*payload[1:])
            return
        yield Frame(*payload)


async def run(
    spec: ChunkSpec,
    source: AsyncIterable[bytes] | None,
    store: Callable[[Frame], Awaitable[None]],
) -> Done:
    """Chunk a file in a child process: `source` is its bytes (None: the child reads
    `spec.path`); each chunk goes to `store` as it comes, and the pipe's buffer holds the
    child back meanwhile. When this returns or raises, the child has exited."""
    proc = await asyncio.create_subprocess_exec(
        *spec.argv(),
        env=spec.env(),
        stdin=asyncio.subprocess.DEVNULL if source is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A terminal's Ctrl-C is for the worker, which lets the activity finish or
        # cancels it (and then kills the child) within its grace period.
        start_new_session=True,
    )
    feeder = None if source is None else asyncio.ensure_future(_feed(proc, source))
    reading = asyncio.ensure_future(_read(proc, store))
    try:
        await asyncio.wait({reading})
        # A source that failed mid-read says so, not "truncated"; a feeder still writing
        # after the reader failed waits on a child nobody reads, so it is not waited for.
        if feeder is not None and (feeder.done() or reading.exception() is None):
            await feeder
        return reading.result()
    finally:
        await _stop(proc, reading, feeder)


async def _stop(proc: asyncio.subprocess.Process, *tasks: asyncio.Future[Any] | None) -> None:
    """End the child and what talks to it. The process counts as ended (`wait`) only once
    its pipes are closed, and a reader that stopped early (Redis failing mid-store) leaves
    stdout paused and full: the pipes are read to their end, or `wait` hangs forever."""
    pending = [t for t in tasks if t is not None and not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    if proc.stdin is not None:
        proc.stdin.close()  # a feeder cancelled before it ran never closed it
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    await proc.wait()


async def _feed(proc: asyncio.subprocess.Process, source: AsyncIterable[bytes]) -> None:
    assert proc.stdin is not None
    try:
        async for part in source:
            proc.stdin.write(part)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # the child stopped reading: its exit status tells why
    finally:
        proc.stdin.close()


async def _read(
    proc: asyncio.subprocess.Process, store: Callable[[Frame], Awaitable[None]]
) -> Done:
    assert proc.stdout is not None and proc.stderr is not None
    async for frame in read_frames(proc.stdout):
        if isinstance(frame, Done):
            return frame
        await store(frame)
    err = (await proc.stderr.read()).decode(errors="replace").strip()
    await proc.wait()
    raise ChunkerFailed(
        f"the CSV chunker exited with status {proc.returncode}: "
        f"{err.splitlines()[-1] if err else 'no message'}"
    )


if __name__ == "__main__":
    main()
