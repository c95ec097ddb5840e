"""The upload phase (spec 002 "Phase 1"): stream a CSV into the blob store, then confirm.

One pass over the bytes: they go to the blob store as they are read (never the whole
file in memory), the byte limit is enforced on bytes actually read (the partial blob is
deleted), and the same bytes are decoded and parsed as CSV records to count rows and
take the header and preview rows. Only a complete, accepted upload creates an import.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass, field
from typing import BinaryIO
from uuid import UUID

import asyncpg
from temporalio.client import Client, WorkflowHandle

from folksjobs.events import ImportCsvConfirmed, dispatch
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.csvstream import (
    CsvFormat,
    CsvRefused,
    cap_warnings,
    detect_format,
    fallback_count,
    iter_records,
    open_text,
    read_header,
    reset_fallback_count,
)
from folksjobs.imports.mapping import (
    apply_overrides,
    mapping_notes,
    suggest_mapping,
    validate_mapping,
)
from folksjobs.infra.blob import BlobStore, BlobWriter, import_key
from folksjobs.models import import_workflow_id
from folksjobs.settings import Settings

READ_SIZE = 1024 * 1024


class UploadRefused(ValueError):
    """The upload was refused; nothing was stored."""


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


class _TeeReader(io.RawIOBase):
    """Reads the source, sends every byte to the blob writer, and stops past the limit."""

    def __init__(
        self,
        source: BinaryIO,
        head: bytes,
        writer: BlobWriter,
        loop: asyncio.AbstractEventLoop,
        limit: int,
    ) -> None:
        self.source = source
        self.head: bytes | None = head
        self.pending = b""
        self.writer = writer
        self.loop = loop
        self.limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def _next_piece(self) -> bytes:
        if self.head is not None:
            data, self.head = self.head, None
        else:
            data = self.source.read(READ_SIZE)
        if data:
            self.total += len(data)
            if self.total > self.limit:
                raise UploadRefused(
                    f"The file is larger than the {self.limit:,}-byte upload limit; "
                    "split it into smaller files."
                )
            asyncio.run_coroutine_threadsafe(self.writer.write(data), self.loop).result()
        return data

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if not self.pending:
            self.pending = self._next_piece()
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


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
    """`encoding` overrides the detected one (a Python codec name: cp1252, shift_jis ...)."""
    import_id = str(uuid.uuid4())
    key = import_key(workspace_id, import_id)
    head = source.read(settings.preview_bytes)
    try:
        fmt = detect_format(head, settings.binary_sniff_bytes, encoding)
    except CsvRefused as e:
        raise UploadRefused(str(e)) from e
    writer = await blob.open_writer(key)
    tee = _TeeReader(source, head, writer, asyncio.get_running_loop(), settings.upload_max_bytes)
    try:
        headers, warnings, preview, rows = await asyncio.to_thread(_scan, tee, fmt, settings)
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


async def confirm_import(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    workspace_id: str,
    import_id: str,
    mapping: list[str] | None = None,
) -> WorkflowHandle[object, object]:
    """The event import/csv.confirmed: pending -> processing, then start ProcessCsv.

    The workflow id is the import id's, so a repeated confirmation finds the same run.
    """
    rec = await imports_repo.get(pool, workspace_id, import_id)
    if rec is None:
        raise UploadRefused(f"import {import_id} not found in workspace {workspace_id}")
    chosen = mapping if mapping is not None else rec.column_mapping
    validate_mapping(chosen)
    wid = import_workflow_id(import_id)
    await imports_repo.confirm(pool, workspace_id, import_id, chosen, wid)
    # The event catalog starts it: deterministic id, duplicate-safe, job flag checked,
    # search attributes and summary set, exactly as for a gRPC or `starter dispatch` caller.
    event = ImportCsvConfirmed(
        import_id=UUID(import_id), workspace_id=UUID(workspace_id), user_id=UUID(rec.user_id)
    )
    started = await dispatch(client, settings, event)
    return client.get_workflow_handle(started.workflow_id)
