"""What both paths of process-csv's activities share: the clients, the record's file
(passed on by claim-import, read only in runs from before it), the blob, the chunk's
ledger totals and heartbeats that a local activity must not send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.base import ActivityClass
from folksjobs import errors
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.chunker import ChunkSpec
from folksjobs.imports.mapping import email_columns
from folksjobs.imports.repo import ImportRow
from folksjobs.infra.blob import BlobNotFound, BlobStore
from folksjobs.models import ChunkJob, ChunkResult, ImportFile
from folksjobs.notify.ai import Summarizer
from folksjobs.notify.gravatar import Gravatar
from folksjobs.notify.mailer import EmailSender
from folksjobs.settings import Settings

T = TypeVar("T")


def beat(*details: Any) -> None:
    """activity.heartbeat, but not in a local activity (import-small, finalize in a small
    import's run): the server knows no such task and the SDK logs each one as failed."""
    if not activity.info().is_local:
        activity.heartbeat(*details)


async def heartbeating(work: Awaitable[T], every: float, details: Callable[[], Any]) -> T:
    """Await `work`, heartbeating `details()` every `every` seconds meanwhile: a long step
    (slow Gravatar answers, a large file) must not look like a dead worker. On cancel, the
    work has stopped when this returns."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            beat(details())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return task.result()


async def until_worker_shutdown(work: Awaitable[T]) -> T:
    """`work`, unless the worker begins its graceful shutdown first (SIGTERM): then the work
    is stopped and a retryable WorkerShutdown raised at once, so another worker carries on
    within seconds. For a step that cannot finish within the grace period anyway (chunking
    a large file) and whose retry redoes only what was not committed."""
    task = asyncio.ensure_future(work)
    shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
    try:
        await asyncio.wait({task, shutdown}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, shutdown):
            if not t.done():
                t.cancel()
        await asyncio.wait({task, shutdown})
    if not task.cancelled():
        return task.result()  # its result or its own error, even when both ended at once
    raise ApplicationError(
        "the worker is shutting down; the step resumes on another worker",
        type=errors.WORKER_SHUTDOWN,
        # Expected on every stop: the SDK logs it at debug, not as a failure.
        category=ApplicationErrorCategory.BENIGN,
    )


def file_of(rec: ImportRow) -> ImportFile:
    return ImportFile(
        blob_key=rec.blob_key,
        encoding=rec.encoding,
        delimiter=rec.delimiter,
        sep_line=rec.sep_line,
        headers=rec.headers,
        column_mapping=rec.column_mapping,
        total_rows=rec.total_rows,
    )


def missing_blob(import_id: str) -> ApplicationError:
    return ApplicationError(
        f"the uploaded file of import {import_id} is missing from the blob store; upload it again",
        type=errors.INVALID_IMPORT,
        non_retryable=True,
    )


def truncated(rows: int, uploaded: int) -> ApplicationError:
    """The stored file's row count is the upload's, or the file changed since: one message
    for both paths."""
    return ApplicationError(
        f"the stored file has {rows:,} rows but {uploaded:,} were uploaded: "
        "it is truncated or was replaced; upload it again",
        type=errors.INVALID_IMPORT,
        non_retryable=True,
    )


class ImportSteps(ActivityClass):
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        blob: BlobStore,
        gravatar: Gravatar,
        summarizer: Summarizer,
        sender: EmailSender,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.blob = blob
        self.gravatar = gravatar
        self.summarizer = summarizer
        self.sender = sender
        self.settings = settings

    async def _record(self, workspace_id: str, import_id: str) -> ImportRow:
        rec = await imports_repo.get(self.pool, workspace_id, import_id)
        if rec is None:
            raise ApplicationError(
                f"import {import_id} not found in workspace {workspace_id}",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        return rec

    async def _file(self, job: Any) -> ImportFile:
        """The file claim-import passed on; a run from before CLAIM_IMPORT reads it."""
        f: ImportFile | None = job.file
        return f or file_of(await self._record(job.workspace_id, job.import_id))

    def _chunk_spec(self, f: ImportFile, chunk_rows: int, path: str | None) -> ChunkSpec:
        return ChunkSpec(
            encoding=f.encoding,
            delimiter=f.delimiter,
            sep_line=f.sep_line,
            field_limit=self.settings.csv_field_size_limit,
            email_columns=email_columns(f.column_mapping),
            chunk_rows=chunk_rows,
            path=path,
            email_test_domains=self.settings.email_test_domains,
        )

    async def _blob_bytes(self, import_id: str, f: ImportFile) -> AsyncIterator[bytes]:
        try:
            async for part in self.blob.read(f.blob_key):
                yield part
        except BlobNotFound as e:
            raise missing_blob(import_id) from e

    async def _chunk_result(self, job: ChunkJob) -> ChunkResult:
        t = await imports_repo.totals(self.pool, job.workspace_id, job.import_id, job.chunk_index)
        return ChunkResult(
            chunk_index=job.chunk_index,
            rows=t.rows,
            inserted=t.inserted,
            updated=t.updated,
            failed=t.failed,
            duplicates=t.duplicates,
        )
