"""process-export (event export/csv.confirmed, retries 2 => at most 3 attempts per step).

| step                    | what it does                                                 |
|-------------------------|--------------------------------------------------------------|
| (gate)                  | at most EXPORTS_PER_WORKSPACE_LIMIT exports of a workspace   |
|                         | run at once; the rest wait in confirmation order             |
| resolve-tag-filter      | marks the export processing; its tag names (or the event's   |
|                         | tagIds) -> the workspace's tag ids (contacts carrying ANY of |
|                         | them); none named, no filter                                 |
| upload-empty            | nothing to export (the tags match no contact, or the work-    |
|                         | space has none): a header-only CSV, export completed at once |
| resolve-export-metadata | distinct custom-field keys and the row count, concurrently   |
| stream-export           | COPY (SELECT ...) TO STDOUT (csv) -> blob store, streamed;   |
|                         | heartbeats rows written; a retry rewrites the whole file     |
| send-notification       | notify_on_export_complete on => the user gets the link       |
| mark-export-failed      | on any failure: status failed with the error; then re-raise  |
|                         | (cancelled on a workflow cancellation, which waits for       |
|                         | stream-export to discard its unfinished file first)          |

Only ids, tag ids, column names and counts cross Temporal: the contacts stay in SQL.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.exports import ROWS_SIGNAL, ExportActivities
    from folksjobs import errors
    from folksjobs.catalog import job_by_workflow
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_PROCESS_EXPORT,
        ExportFailure,
        ExportFile,
        ExportJob,
        ExportNotification,
        ExportProgress,
        ExportResult,
        ExportRows,
        MetadataJob,
        ProcessExportInput,
        StreamExportJob,
    )
    from folksjobs.notify.retry import EMAIL_DELIVERY, EMAIL_RETRY
    from workflows.gate import EXPORT_GATE, held_slot

RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_PROCESS_EXPORT).attempts,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    non_retryable_error_types=[
        errors.INVALID_EXPORT,
        errors.USER_NOT_FOUND,
        errors.EMAIL_PERMANENT_FAILURE,
    ],
)
SHORT = timedelta(seconds=60)
STREAM = timedelta(hours=2)
# Runs started after this change queue at the workspace's export gate, and a cancellation
# waits for stream-export to discard its unfinished file before the record is marked.
EXPORT_GATED = "export-gate"


@workflow.defn(name=WF_PROCESS_EXPORT)
class ProcessExport:
    def __init__(self) -> None:
        self._export_id = ""
        self._stage = "starting"
        self._rows = 0
        self._rows_attempt = 0
        self._total: int | None = None

    @workflow.run
    async def run(self, inp: ProcessExportInput) -> ExportResult:
        self._export_id = inp.export_id
        set_job_attributes(
            workspace_id=inp.workspace_id, export_id=inp.export_id, status="processing"
        )
        try:
            if workflow.patched(EXPORT_GATED):
                self._stage = "waiting"
                async with held_slot(inp.workspace_id, gate=EXPORT_GATE):
                    file = await self._export(inp)
            else:
                file = await self._export(inp)
        except (asyncio.CancelledError, ActivityError) as e:
            # A workflow cancellation reaches us either directly or as the cancelled
            # activity's ActivityError, depending on where the run was waiting.
            if is_cancelled_exception(e):
                self._stage = "cancelled"
                set_job_attributes(status="cancelled")
                await self._mark_failed(inp, "cancelled by request", cancelled=True)
                raise
            failed_stage = self._stage
            self._stage = "failed"
            set_job_attributes(status="failed")
            await self._mark_failed(inp, f"{failed_stage}: {errors.root_message(e)}")
            raise
        self._stage = "completed"
        set_job_attributes(status="completed")
        return ExportResult(
            export_id=inp.export_id,
            status="completed",
            row_count=file.row_count,
            blob_key=file.blob_key,
            location=file.uri,
        )

    async def _mark_failed(
        self, inp: ProcessExportInput, error: str, cancelled: bool = False
    ) -> None:
        failure = ExportFailure(
            export_id=inp.export_id, workspace_id=inp.workspace_id, error=error, cancelled=cancelled
        )
        try:
            await workflow.execute_activity_method(
                ExportActivities.mark_failed,
                failure,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as mark_error:  # the original failure is the one to report
            workflow.logger.error("could not mark export %s: %s", inp.export_id, mark_error)

    async def _export(self, inp: ProcessExportInput) -> ExportFile:
        job = ExportJob(
            export_id=inp.export_id,
            workspace_id=inp.workspace_id,
            user_id=inp.user_id,
            tag_ids=inp.tag_ids,
        )
        self._stage = "resolve-tag-filter"
        flt = await workflow.execute_activity_method(
            ExportActivities.resolve_tag_filter,
            job,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        if not flt.any_match:
            self._stage = "upload-empty"
            file = await workflow.execute_activity_method(
                ExportActivities.upload_empty,
                job,
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        else:
            self._stage = "resolve-export-metadata"
            meta = await workflow.execute_activity_method(
                ExportActivities.resolve_export_metadata,
                MetadataJob(workspace_id=inp.workspace_id, tag_ids=flt.tag_ids),
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RETRY,
            )
            self._total = meta.total_rows
            self._stage = "stream-export"
            file = await workflow.execute_activity_method(
                ExportActivities.stream_export,
                StreamExportJob(
                    export_id=inp.export_id,
                    workspace_id=inp.workspace_id,
                    tag_ids=flt.tag_ids,
                    custom_keys=meta.custom_keys,
                    total_rows=meta.total_rows,
                ),
                start_to_close_timeout=STREAM,
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RETRY,
                cancellation_type=(
                    ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                    if workflow.patched(EXPORT_GATED)
                    else ActivityCancellationType.TRY_CANCEL
                ),
            )
        # The file is the durable truth: progress ends at what was really written.
        self._rows = self._total = file.row_count
        self._stage = "send-notification"
        await workflow.execute_activity_method(
            ExportActivities.send_notification,
            ExportNotification(
                export_id=inp.export_id,
                workspace_id=inp.workspace_id,
                user_id=inp.user_id,
                idempotency_key=f"{workflow.info().workflow_id}/export-complete",
            ),
            start_to_close_timeout=SHORT,
            # Before it, a provider outage used up the spec's attempts and lost the email.
            retry_policy=EMAIL_RETRY if workflow.patched(EMAIL_DELIVERY) else RETRY,
        )
        return file

    @workflow.signal(name=ROWS_SIGNAL)
    def rows_written(self, report: ExportRows) -> None:
        # A retry restarts the file, so its count restarts too; a late report from an
        # earlier (dead) attempt must not move the bar.
        if self._stage != "stream-export" or report.attempt < self._rows_attempt:
            return
        self._rows_attempt = report.attempt
        self._rows = report.rows

    @workflow.query
    def progress(self) -> ExportProgress:
        return ExportProgress(
            export_id=self._export_id,
            stage=self._stage,
            rows_written=self._rows,
            total_rows=self._total,
        )
