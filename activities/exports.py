"""process-export's side effects: the export record, the CSV stream and the email."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.delivery import delivery, window_deadline
from folksjobs import errors
from folksjobs.catalog import job_by_workflow
from folksjobs.exports import repo as exports
from folksjobs.infra import metrics
from folksjobs.infra.blob import BlobStore, BlobWriter, export_key
from folksjobs.infra.db import tenant_tx
from folksjobs.models import (
    WF_PROCESS_EXPORT,
    ExportFailure,
    ExportFile,
    ExportJob,
    ExportMetadata,
    ExportNotification,
    ExportRows,
    MetadataJob,
    NotificationResult,
    StreamExportJob,
    TagFilter,
)
from folksjobs.notify import emails
from folksjobs.notify.directory import UserDeleted, UserNotFound, get_user
from folksjobs.notify.mailer import EmailSender
from folksjobs.settings import Settings
from folksjobs.tenancy import NotAMember, require_member

log = logging.getLogger("folksjobs.exports")

# The workflow's signal for rows written (see ProcessExport.rows_written).
ROWS_SIGNAL = "export-rows"


async def _abort(writer: BlobWriter) -> None:
    try:
        await writer.abort()
    except Exception as e:  # the failure that got us here is the one to report
        log.warning("could not discard a partial export file: %s", e)


# The spec's attempts for the job's own failures; a provider's refusal waits instead.
ATTEMPTS = job_by_workflow(WF_PROCESS_EXPORT).attempts


class ExportActivities(ActivityClass):
    def __init__(
        self, pool: asyncpg.Pool, blob: BlobStore, sender: EmailSender, settings: Settings
    ) -> None:
        self.pool = pool
        self.blob = blob
        self.sender = sender
        self.settings = settings

    @activity.defn(name="resolve-tag-filter")
    async def resolve_tag_filter(self, job: ExportJob) -> TagFilter:
        """Claims the export (processing) and turns its tag names into the workspace's ids.

        First of all, the user who will get the link must belong to the workspace."""
        if job.user_id is not None:
            try:
                await require_member(self.pool, job.workspace_id, job.user_id)
            except NotAMember as e:
                raise ApplicationError(
                    str(e), type=errors.INVALID_EXPORT, non_retryable=True
                ) from e
        async with tenant_tx(self.pool, job.workspace_id) as conn:
            tag_names = await exports.start(conn, job.export_id)
            if tag_names is None:
                status = await exports.status(conn, job.export_id)
                raise ApplicationError(
                    f"export {job.export_id} does not exist in workspace {job.workspace_id}"
                    if status is None
                    else f"export {job.export_id} is already {status}",
                    type=errors.INVALID_EXPORT,
                    non_retryable=True,
                )
            if job.tag_ids is not None:
                tag_ids: list[str] | None = await self._event_tags(conn, job, tag_names)
            else:
                tag_ids = (
                    await exports.tag_ids(conn, job.workspace_id, tag_names) if tag_names else None
                )
            any_match = await exports.any_contact(conn, job.workspace_id, tag_ids)
        return TagFilter(tag_ids=tag_ids, any_match=any_match)

    async def _event_tags(
        self, conn: asyncpg.Connection, job: ExportJob, record_names: list[str]
    ) -> list[str]:
        """The event's tagIds as the filter: each must be a tag of the workspace, and the
        record, when it names tags, must name the same ones; it is given their names."""
        ids = list(dict.fromkeys(job.tag_ids or []))
        try:
            names = await exports.names_of_tags(conn, job.workspace_id, ids)
        except exports.InvalidExportRequest as e:
            raise ApplicationError(str(e), type=errors.INVALID_EXPORT, non_retryable=True) from e
        if record_names and set(record_names) != set(names):
            raise ApplicationError(
                f"export {job.export_id}: tagIds name other tags than the export's"
                f" ({', '.join(sorted(record_names))})",
                type=errors.INVALID_EXPORT,
                non_retryable=True,
            )
        await exports.set_tag_names(conn, job.export_id, names)
        return ids

    @activity.defn(name="upload-empty")
    async def upload_empty(self, job: ExportJob) -> ExportFile:
        """Nothing matched: a header-only CSV, and the export is complete at once."""
        key = export_key(job.workspace_id, job.export_id)
        data = exports.header_line([], neutralise_formulas=False)
        writer = await self.blob.open_writer(key)
        try:
            await writer.write(data)
            size = await writer.commit()
        except BaseException:
            await _abort(writer)
            raise
        await self._complete(job.export_id, job.workspace_id, key, 0, size)
        return ExportFile(blob_key=key, row_count=0, file_bytes=size, uri=self.blob.uri(key))

    @activity.defn(name="resolve-export-metadata")
    async def resolve_export_metadata(self, job: MetadataJob) -> ExportMetadata:
        """The header's custom-field keys and the row count, on two connections at once."""

        async def keys() -> list[str]:
            async with tenant_tx(self.pool, job.workspace_id) as conn:
                return await exports.custom_keys(conn, job.workspace_id, job.tag_ids)

        async def count() -> int:
            async with tenant_tx(self.pool, job.workspace_id) as conn:
                return await exports.count_contacts(conn, job.workspace_id, job.tag_ids)

        custom_keys, total = await asyncio.gather(keys(), count())
        return ExportMetadata(custom_keys=custom_keys, total_rows=total)

    @activity.defn(name="stream-export")
    async def stream_export(self, job: StreamExportJob) -> ExportFile:
        """The header, then `COPY (SELECT ...) TO STDOUT` of the contacts -> the blob store.

        PostgreSQL renders the CSV (exports.copy_rows); the worker moves its chunks into the
        writer, one chunk in memory at a time. Every attempt writes the whole file again
        from the first contact: the blob store publishes a file only on commit (rename /
        CompleteMultipartUpload), so a crashed attempt leaves no visible file, and a retry
        can never append to or duplicate a partial one. Heartbeats (at most one a second)
        and the progress signal carry the rows written so far, counted exactly from the
        stream; the file's row count is the one COPY reports.
        """
        info = activity.info()
        key = export_key(job.workspace_id, job.export_id)
        # What a killed earlier attempt left behind (a temp file, an open multipart upload)
        # is never published; clear it so it does not linger.
        if discarded := await self.blob.discard_unfinished(key):
            log.info("export %s: discarded %d unfinished upload(s)", job.export_id, discarded)
        neutralise = self.settings.export_neutralise_formulas
        timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 4.0
        beat_every = min(1.0, timeout / 4)
        last_beat = last_signal = time.monotonic()

        async def write(data: bytes, rows: int) -> None:
            nonlocal last_beat, last_signal
            await writer.write(data)
            now = time.monotonic()
            if now - last_beat >= beat_every:
                last_beat = now
                activity.heartbeat({"rows": rows})
            await self.after_chunk(rows)
            if now - last_signal >= self.settings.export_progress_seconds:
                last_signal = now
                await self._report_rows(info, rows)

        writer = await self.blob.open_writer(key)
        try:
            await writer.write(exports.header_line(job.custom_keys, neutralise_formulas=neutralise))
            async with tenant_tx(self.pool, job.workspace_id) as conn:
                rows = await exports.copy_rows(
                    conn,
                    job.workspace_id,
                    job.tag_ids,
                    job.custom_keys,
                    neutralise_formulas=neutralise,
                    output=write,
                )
            size = await writer.commit()
        except BaseException:
            await _abort(writer)
            raise
        await self._complete(job.export_id, job.workspace_id, key, rows, size)
        return ExportFile(blob_key=key, row_count=rows, file_bytes=size, uri=self.blob.uri(key))

    async def after_chunk(self, rows: int) -> None:
        """A seam for fault-injection tests (a worker killed mid-file), called after each
        chunk of the COPY stream is written, with the rows written so far; nothing here."""

    async def _report_rows(self, info: activity.Info, rows: int) -> None:
        if info.workflow_id is None:  # run outside a workflow (standalone activity)
            return
        try:
            handle = activity.client().get_workflow_handle(info.workflow_id)
            await handle.signal(ROWS_SIGNAL, ExportRows(attempt=info.attempt, rows=rows))
        except Exception as e:  # progress is cosmetic: never fail the export over it
            log.warning("export %s: progress signal failed: %s", info.workflow_id, e)

    async def _complete(
        self, export_id: str, workspace_id: str, key: str, rows: int, size: int
    ) -> None:
        async with tenant_tx(self.pool, workspace_id) as conn:
            completed_now = await exports.complete(conn, workspace_id, export_id, key, rows, size)
        if completed_now:
            metrics.export_completed()

    @activity.defn(name="send-notification")
    async def send_notification(self, job: ExportNotification) -> NotificationResult:
        s = self.settings
        deadline = window_deadline(s.email_notification_window_seconds)
        async with delivery("export-completed", deadline, ATTEMPTS, s.email_retry_max_seconds):
            return await self._notify(job)

    async def _notify(self, job: ExportNotification) -> NotificationResult:
        async with tenant_tx(self.pool, job.workspace_id) as conn:
            notify = await exports.notify_on_complete(conn, job.workspace_id)
            file = await exports.file_of(conn, job.export_id)
        if not notify:
            return NotificationResult(sent=False)
        if file is None:
            raise ApplicationError(
                f"export {job.export_id} has no file to announce",
                type=errors.INVALID_EXPORT,
                non_retryable=True,
            )
        try:
            user = await get_user(self.pool, job.user_id)
            await require_member(self.pool, job.workspace_id, job.user_id)
        except UserDeleted:
            # user/deleted came while the file was written: the link goes to no one.
            return NotificationResult(sent=False)
        except NotAMember as e:
            raise ApplicationError(str(e), type=errors.INVALID_EXPORT, non_retryable=True) from e
        except UserNotFound as e:
            raise ApplicationError(str(e), type=errors.USER_NOT_FOUND, non_retryable=True) from e
        msg = emails.export_completed(
            user.email,
            file.row_count,
            await self.blob.location(file.blob_key),
            job.idempotency_key,
        )
        receipt = await self.sender.send(msg)
        return NotificationResult(sent=True, message_id=receipt.message_id)

    @activity.defn(name="mark-export-failed")
    async def mark_failed(self, failure: ExportFailure) -> None:
        """Records the error (named "mark-export-failed": process-csv already registers a
        "mark-failed" on the same worker). A completed export keeps its status: its file is
        good even when the notification afterwards failed."""
        async with tenant_tx(self.pool, failure.workspace_id) as conn:
            await exports.end(conn, failure.export_id, failure.error, cancelled=failure.cancelled)
        if failure.cancelled:
            # A cancelled export has no file: what an attempt left unfinished goes too
            # (one whose worker died never heard of the cancellation).
            key = export_key(failure.workspace_id, failure.export_id)
            await self.blob.discard_unfinished(key)

    ACTIVITIES = (
        resolve_tag_filter,
        upload_empty,
        resolve_export_metadata,
        stream_export,
        send_notification,
        mark_failed,
    )
