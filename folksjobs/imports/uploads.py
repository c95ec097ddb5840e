"""The upload phase (spec 002 "Phase 1"): stream a CSV into the blob store.

One pass over the bytes: they go to the blob store as they are read (never the whole
file in memory), the byte limit is enforced on bytes actually read (the partial blob is
deleted), and the same bytes are decoded and parsed as CSV records to count rows and
take the header and preview rows. Only a complete, accepted upload creates an import.

The bytes come from an async source (`ByteSource`): an HTTP request body streams into it
as it arrives, and the CLI wraps a file with `file_source`. Parsing runs in a thread
that pulls each piece through the event loop, so neither side ever blocks the loop.
That thread is the upload's own, never one of the loop's shared executor: it waits on
the source, and a file source reads in that executor, so 40 uploads parsing in its 6
threads would each wait for a read that no free thread is left to run (issue 27).
Starting the workflow is the confirm step's (folksjobs/confirm.py), not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import threading
import unicodedata
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import asyncpg

from folksjobs.imports import repo as imports_repo
from folksjobs.imports.csvstream import (
    CsvFormat,
    CsvRefused,
    NotCsvText,
    cap_warnings,
    detect_format,
    fallback_count,
    iter_records,
    open_text,
    read_header,
    reset_fallback_count,
)
from folksjobs.imports.mapping import apply_overrides, mapping_notes, suggest_mapping
from folksjobs.infra.blob import BlobStore, BlobWriter, import_key
from folksjobs.settings import Settings

READ_SIZE = 1024 * 1024
T = TypeVar("T")

ByteSource = AsyncIterable[bytes]
FILE_NAME_MAX = 120


def clean_file_name(name: str | None) -> str:
    """The name a sender gave, made safe for the record, logs and the UI: no directories,
    no control characters, no shell or markup specials, at most FILE_NAME_MAX characters."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = "".join(c for c in base if c.isprintable() and c not in '"<>|*?:;`$')
    base = base.strip(" .")[:FILE_NAME_MAX].strip(" .")
    return base or "upload.csv"


async def file_source(fh: BinaryIO, size: int = READ_SIZE) -> AsyncIterator[bytes]:
    """A file as a ByteSource; each read runs in a thread."""
    while data := await asyncio.to_thread(fh.read, size):
        yield data


class UploadRefused(ValueError):
    """The upload was refused; nothing was stored."""


class UploadTooLarge(UploadRefused):
    """More bytes arrived than the upload limit allows (whatever the sender declared)."""


class NotCsvUpload(UploadRefused):
    """The content is binary (an archive, a PDF, an image), not CSV text."""


@dataclass
class UploadResult:
    import_id: str
    workspace_id: str
    user_id: str
    file_name: str
    blob_key: str
    file_bytes: int
    total_rows: int
    headers: list[str]
    preview: list[list[str]]
    mapping: list[str]
    format: CsvFormat
    warnings: list[str] = field(default_factory=list)


class _Intake:
    """Pulls the source's pieces on the event loop, counts them against the limit, and
    sends each one to the blob writer (once one is open) before the parser sees it."""

    def __init__(self, source: ByteSource, limit: int) -> None:
        self.pieces = aiter(source)
        self.limit = limit
        self.total = 0
        self.unread: list[bytes] = []
        self.writer: BlobWriter | None = None

    async def _pull(self) -> bytes:
        data = await anext(self.pieces, b"")
        self.total += len(data)
        if self.total > self.limit:
            raise UploadTooLarge(
                f"The file is larger than the {self.limit:,}-byte upload limit; "
                "split it into smaller files."
            )
        return data

    async def head(self, size: int) -> bytes:
        """At least `size` bytes (fewer only at the end); kept to be read again."""
        while sum(map(len, self.unread)) < size:
            data = await self._pull()
            if not data:
                break
            self.unread.append(data)
        return b"".join(self.unread)

    async def next_piece(self) -> bytes:
        data = self.unread.pop(0) if self.unread else await self._pull()
        if data and self.writer is not None:
            await self.writer.write(data)
        return data


class _TeeReader(io.RawIOBase):
    """The intake as a blocking file for the CSV parser's thread."""

    def __init__(self, intake: _Intake, loop: asyncio.AbstractEventLoop) -> None:
        self.intake = intake
        self.loop = loop
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if not self.pending:
            piece = asyncio.run_coroutine_threadsafe(self.intake.next_piece(), self.loop)
            self.pending = piece.result()
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


async def _in_own_thread(fn: Callable[[], T]) -> T:
    """`fn()` in a thread of its own (see the module's docstring). Like asyncio.to_thread,
    a cancelled caller leaves the thread to end on its own (its next read fails once the
    loop is gone); daemon, so it never holds the process open."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[Any], None], value: Any) -> None:
        if not done.done():
            outcome(value)

    def work() -> None:
        outcome: Callable[[Any], None]
        value: Any
        try:
            outcome, value = done.set_result, fn()
        except BaseException as e:  # handed to the awaiting task, which raises it
            outcome, value = done.set_exception, e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, outcome, value)

    threading.Thread(target=work, name="upload-parse", daemon=True).start()
    return await done


def _scan(
    tee: _TeeReader, fmt: CsvFormat, settings: Settings
) -> tuple[list[str], list[str], list[list[str]], int]:
    """(headers, warnings, preview rows, data rows); runs in a thread."""
    reset_fallback_count()
    text = open_text(io.BufferedReader(tee, buffer_size=READ_SIZE), fmt)
    records = iter_records(text, fmt, settings.csv_field_size_limit)
    header = read_header(records, settings.csv_max_columns)
    preview: list[list[str]] = []
    rows = 0
    for rec in records:
        rows += 1
        if len(preview) < settings.preview_rows:
            preview.append(rec.cells if rec.cells is not None else [f"<{rec.error}>"])
    # Drain whatever the CSV reader left unread so the blob gets every byte.
    while tee.readinto(memoryview(bytearray(READ_SIZE))):
        pass
    warnings = list(header.warnings)
    if fmt.header_line > 1:
        warnings.insert(0, f"the header row is line {fmt.header_line}; the lines before it "
                           "(blank, sep= or notes) are skipped")  # fmt: skip
    if fmt.legacy:
        warnings.insert(0, f"the file is not UTF-8: read as {fmt.encoding}; if accented "
                           "characters look wrong, upload again with the right encoding "
                           "(--encoding)")  # fmt: skip
    if n := fallback_count():
        warnings.append(
            f"{n:,} byte{'s' if n != 1 else ''} {'were' if n != 1 else 'was'} not valid "
            f"{fmt.encoding} and read as Windows-1252 (cp1252); "
            "check accented characters, or save the file as CSV UTF-8"
        )
    return header.names, warnings, preview, rows


async def upload_csv(
    pool: asyncpg.Pool,
    blob: BlobStore,
    settings: Settings,
    source: BinaryIO,
    file_name: str,
    workspace_id: str,
    user_id: str,
    overrides: list[str] | None = None,
    encoding: str | None = None,
) -> UploadResult:
    """An upload from an open file (the CLI's)."""
    return await upload_stream(
        pool, blob, settings, file_source(source), file_name, workspace_id, user_id, overrides,
        encoding,
    )  # fmt: skip


async def upload_stream(
    pool: asyncpg.Pool,
    blob: BlobStore,
    settings: Settings,
    source: ByteSource,
    file_name: str,
    workspace_id: str,
    user_id: str,
    overrides: list[str] | None = None,
    encoding: str | None = None,
) -> UploadResult:
    """`encoding` overrides the detected one (a Python codec name: cp1252, shift_jis,
    utf-16 ...); the delimiter and header are still detected."""
    import_id = str(uuid.uuid4())
    key = import_key(workspace_id, import_id)
    file_name = clean_file_name(file_name)
    intake = _Intake(source, settings.upload_max_bytes)
    head = await intake.head(settings.preview_bytes)
    try:
        fmt = detect_format(head[: settings.preview_bytes], settings.binary_sniff_bytes, encoding)
    except NotCsvText as e:
        raise NotCsvUpload(str(e)) from e
    except CsvRefused as e:
        raise UploadRefused(str(e)) from e
    writer = intake.writer = await blob.open_writer(key)
    tee = _TeeReader(intake, asyncio.get_running_loop())
    try:
        headers, warnings, preview, rows = await _in_own_thread(lambda: _scan(tee, fmt, settings))
        size = await writer.commit()
    except CsvRefused as e:
        await writer.abort()
        raise UploadRefused(str(e)) from e
    except BaseException:
        await writer.abort()
        raise
    mapping = apply_overrides(headers, suggest_mapping(headers), overrides or [])
    warnings = cap_warnings([*mapping_notes(headers, mapping, preview), *warnings])
    try:
        await imports_repo.create(
            pool,
            import_id=import_id,
            workspace_id=workspace_id,
            user_id=user_id,
            file_name=file_name,
            blob_key=key,
            file_bytes=size,
            encoding=fmt.encoding,
            delimiter=fmt.delimiter,
            sep_line=fmt.sep_line,
            headers=headers,
            mapping=mapping,
            total_rows=rows,
            warnings=warnings,
        )
    except BaseException:
        await blob.delete(key)
        raise
    return UploadResult(
        import_id,
        workspace_id,
        user_id,
        file_name,
        key,
        size,
        rows,
        headers,
        preview,
        mapping,
        fmt,
        warnings,
    )
