"""process-csv (event import/csv.confirmed, retries 3 => at most 4 attempts per activity).

| step                | what it does                                                     |
|---------------------|------------------------------------------------------------------|
| claim-import        | before the gate: record in the workspace, user a member, email   |
|                     | mapped, state pending (or processing by this run): pending ->    |
|                     | processing, the record passed on; else fails at once, untouched  |
| capture-start-time  | workflow.now(), for the duration, once the gate lets the run in  |
| download-and-chunk  | streams the blob through the CSV parser into Redis chunks (1 h   |
|                     | TTL), alongside process-batch; again for lost chunks (at most    |
|                     | MAX_RECHUNKS times) and for a repair                             |
| enrich-avatars      | the avatars job (child workflow `avatars-<import_id>`, started    |
|                     | before the first row is committed, signalled `rows-committed`    |
|                     | alongside finalize (or on failure), left running when the import |
|                     | completes, cancelled with it): Gravatar after the upsert         |
| process-batch (xN)  | per chunk: map, validate, dedup, upsert in sub-batches (each     |
|                     | contact marked as owed its avatar lookup), each committed with   |
|                     | its ledger row; fanned out `parallel_chunks`                     |
| import-small        | instead of the two above for a file of one chunk and at most     |
|                     | IMPORT_INLINE_MAX_ROWS rows: parsed in the worker by the         |
|                     | chunker's code, processed by process-batch's (same ledger row)   |
| find-missing-chunks | only when finalize finds the ledger short of the file (the       |
|                     | database lost acknowledged commits): the chunks to redo, which   |
|                     | are chunked and processed again before finalize runs once more   |
| finalize            | completed + counts from the ledger, stats caches, AI summary,    |
|                     | Redis cleanup                                                    |
| send-import-emails  | after the slot's release: completion email, error report above   |
|                     | 5 % failed; a provider down or busy makes them wait (a window)   |
| mark-failed         | on any failure: failed + error_log, caches, best-effort email;   |
|                     | cancelled on a cancellation. Its own failure is logged, never    |
|                     | reported instead of the import's                                 |

The avatars depart from the spec's order (lookup before upsert) on purpose: a lookup per
address inside process-batch bounded an import at ~10 / Gravatar's latency rows a
second. Contacts are usable as soon as the file is read; avatars follow at the cluster's
GRAVATAR_RATE_PER_SECOND (workflows/enrich_avatars.py), and the completion email does not
wait for them.

claim-import is a local activity (no task-queue round trip), and so are import-small and
finalize on the small path: a small import after the gate is one workflow task
(bench/notes.md, "Where a small import's time goes"). The branches that runs started
before a patch still take are in `workflows/import_csv_before.py`, each with the release
it can go in (docs/deploys.md).

History stays small: after `chunks_per_run` chunks the run continues as new with its cursor
and counts (a 10M-row file is many short runs of one id). Methods follow the table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.imports import ImportActivities
    from folksjobs import errors
    from folksjobs.catalog import job_by_workflow
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_PROCESS_CSV,
        ChunkJob,
        ChunkPlanResult,
        ChunkResult,
        FinalizeImport,
        ImportCounts,
        ImportCursor,
        ImportProgress,
        ImportRecord,
        ImportResult,
        ProcessCsvInput,
    )
    from folksjobs.notify.retry import EMAIL_RETRY
    from workflows import import_csv_before as before
    from workflows.gate import held_slot
    from workflows.import_chunks import ChunkedPath
    from workflows.import_failure import FailurePath

RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_PROCESS_CSV).attempts,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[
        errors.INVALID_IMPORT,
        errors.CHUNK_MISSING,
        errors.LEDGER_MISMATCH,
        errors.EMAIL_PERMANENT_FAILURE,
    ],
)
T = TypeVar("T")
# claim-import, one local activity returning the record, instead of check-import and
# fetch-import (and of the patches that made them local, moved them before the gate and
# chose the small path: CLAIM_IMPORT's runs take all three). Runs started before it keep
# those two steps: workflows/import_csv_before.py.
CLAIM_IMPORT = "claim-import"
# The emails a step after the slot's release; before it finalize sent them (an outage lost them).
IMPORT_EMAILS_APART = "import-emails-apart"


@workflow.defn(name=WF_PROCESS_CSV)
class ProcessCsv(ChunkedPath, FailurePath):  # FailurePath is an ImportAvatars
    RETRY: ClassVar[RetryPolicy] = RETRY  # for the chunked path and the old branches

    def __init__(self) -> None:
        self.import_id = ""
        self.stage = "starting"
        self.cursor: ImportCursor | None = None
        self.counts = ImportCounts()
        self.rechunk_lock = asyncio.Lock()
        self.chunking: asyncio.Task[ChunkPlanResult] | None = None
        self.small = False  # the file is one import-small activity (SMALL_IN_ONE_ACTIVITY)
        self.emails_after: FinalizeImport | None = None  # IMPORT_EMAILS_APART

    @workflow.query(name="progress")
    def progress(self) -> ImportProgress:
        return ImportProgress(
            import_id=self.import_id,
            stage=self._stage_shown(),
            chunks_total=self.cursor.chunk_count if self.cursor else 0,
            chunks_done=self.cursor.chunks_done if self.cursor else 0,
            counts=self.counts,
            avatars=self._avatars(),
        )

    def _stage_shown(self) -> str:
        # Chunks are processed while the file is still being chunked; until the first
        # one is done, chunking is what the run is doing.
        chunking = self.chunking is not None and not self.chunking.done()
        started = self.cursor is not None and self.cursor.chunks_done > 0
        if self.stage == "process-batch" and chunking and not started:
            return "download-and-chunk"
        return self.stage

    def _show_progress(self) -> None:
        """The UI's "current details": live progress without opening the Queries tab.
        Not part of history (an SDK-internal query answers it), so replays are unaffected."""
        if self.cursor is None:
            return
        c, n, a = self.cursor, self.counts, self._avatars()
        workflow.set_current_details(
            f"{self._stage_shown()} · chunk {c.chunks_done}/{c.chunk_count} · "
            f"{n.processed_rows:,} / {c.total_rows:,} rows · {n.failed:,} failed"
            + (f" · avatars {a.done:,} done, {a.pending:,} pending" if a else "")
        )

    @workflow.run
    async def run(self, inp: ProcessCsvInput) -> ImportResult:
        if inp.resume is not None and workflow.info().continued_run_id is None:
            # Only the server sets continued_run_id, on this workflow's own continue-as-new:
            # a cursor from anywhere else would skip claim-import's checks.
            raise ApplicationError(
                "invalid ProcessCsvInput: resume: internal state, not accepted from callers",
                type=errors.INVALID_PAYLOAD,
                non_retryable=True,
            )
        self.import_id = inp.import_id
        set_job_attributes(
            workspace_id=inp.workspace_id, import_id=inp.import_id, status="processing"
        )
        claimed = None
        if inp.resume is None:
            if workflow.patched(CLAIM_IMPORT):
                claimed = await self._refusing(inp, self._claim(inp))
            else:
                await before.check_before_gate(self, inp)
        try:
            # At most IMPORTS_PER_WORKSPACE_LIMIT imports of a workspace run at once; the
            # rest wait in confirmation order (spec 003). The slot is kept across continue-as-new.
            async with held_slot(inp.workspace_id):
                result = await self._run(inp, claimed)
        except asyncio.CancelledError:
            await self._mark_cancelled(inp)
            raise
        except (ActivityError, ApplicationError) as e:
            if is_cancelled_exception(e):
                await self._mark_cancelled(inp)
                raise
            message = errors.root_message(e)
            await self._mark_failed(inp, message)
            raise ApplicationError(
                f"import failed: {message}", type=errors.IMPORT_FAILED, non_retryable=True
            ) from e
        if self.emails_after is not None:
            await self._send_emails(self.emails_after)
        return result

    # --- claim-import -------------------------------------------------------------------

    async def _claim(self, inp: ProcessCsvInput) -> ImportRecord:
        """A local activity: one short statement needs no task-queue round trip."""
        self.stage = "claim-import"
        claim = asyncio.ensure_future(
            workflow.execute_local_activity_method(
                ImportActivities.claim_import,
                inp,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # A cancel that came right after the confirm: the claim ends first, so the
            # record ends cancelled by this run, not left pending (or moved meanwhile).
            await workflow.wait([claim])
            raise

    async def _refusing(self, inp: ProcessCsvInput, step: Awaitable[T]) -> T:
        """The run's first step, before it queues for a slot: a start naming another
        workspace's import, or a user outside the workspace, fails in seconds, touches no
        record and sends nothing, so it cannot hold the id while the owner confirms."""
        try:
            return await step
        except asyncio.CancelledError:
            await self._mark_cancelled(inp)
            raise
        except (ActivityError, ApplicationError) as e:
            # A local activity's failure comes as its ApplicationError.
            if is_cancelled_exception(e):
                # The record may already be this run's: it ends cancelled; mark-failed
                # touches only a record this run holds.
                await self._mark_cancelled(inp)
                raise
            self.stage = "refused"
            set_job_attributes(status="failed")
            raise ApplicationError(
                f"import refused: {errors.root_message(e)}",
                type=errors.IMPORT_REFUSED,
                non_retryable=True,
            ) from e

    async def _run(self, inp: ProcessCsvInput, claimed: ImportRecord | None) -> ImportResult:
        if inp.resume is not None:
            cursor = inp.resume
        elif claimed is not None:
            cursor = self._start(inp, claimed, lambda: True)
        else:
            cursor = await before.fetch_import(self, inp)
        if inp.resume is not None and self._by_range(cursor):
            # This run's range of chunks, from where the previous run stopped.
            self.chunking = asyncio.create_task(self._download_and_chunk(inp, cursor))
        self.cursor, self.counts = cursor, cursor.counts
        if inp.resume is None and cursor.options.avatars:
            await self._start_avatars(inp, cursor)
        self.stage = "process-batch"
        self._show_progress()
        end = min(cursor.chunk_count, cursor.next_chunk + cursor.options.chunks_per_run)
        if self.small:
            self._count(cursor, await self._import_small(inp, cursor))
        else:
            await self._process_chunks(inp, cursor, range(cursor.next_chunk, end), self._count)
        if self.chunking is not None:
            # Every chunk is in Redis before this run hands over or finalizes.
            await self.chunking
            self.chunking = None
        if end < cursor.chunk_count:
            cursor.next_chunk = end
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(inp.model_copy(update={"resume": cursor}))
        self.stage = "finalize"
        # The avatars job may start asking; the signal goes alongside finalize.
        committed = asyncio.create_task(self._rows_committed(inp))
        try:
            result = await self._finalize(inp, cursor)
        except (ActivityError, ApplicationError) as e:  # local on the small path
            if not errors.failed_with(e, errors.LEDGER_MISMATCH):
                raise
            await self._find_missing_chunks(inp, cursor)
            result = await self._finalize(inp, cursor)
        await committed
        self.stage = "completed"
        set_job_attributes(status="completed")
        if result.avatars is not None:
            self.avatars_at_end = result.avatars
            self._show_progress()
        return result

    # --- capture-start-time -------------------------------------------------------------

    def _start(
        self, inp: ProcessCsvInput, record: ImportRecord, small: Callable[[], bool]
    ) -> ImportCursor:
        """The run's cursor from the claimed record; `small()`: whether the small path may
        be taken (asked only of a file that fits it)."""
        started_at = workflow.now()  # capture-start-time
        rows, size = record.total_rows, record.options.chunk_rows
        cursor = ImportCursor(
            chunk_count=(rows + size - 1) // size,
            total_rows=rows,
            next_chunk=0,
            started_at=started_at,
            options=record.options,
            counts=ImportCounts(total_rows=rows),
            file=record.file,
        )
        if 0 < rows <= record.options.inline_max_rows and small():
            self.small = True
            return cursor
        # download-and-chunk runs alongside process-batch: each chunk is processed as soon
        # as it is in Redis (the upload already counted the rows, so the chunk count is known).
        self.chunking = asyncio.create_task(self._download_and_chunk(inp, cursor))
        return cursor

    # --- import-small -------------------------------------------------------------------

    async def _import_small(self, inp: ProcessCsvInput, cursor: ImportCursor) -> ChunkResult:
        """A local activity, like finalize after it: both are bounded (at most
        inline_max_rows rows; the AI summary, Gravatar and email calls have their own
        timeouts), so the whole import after the gate is one workflow task. A worker lost
        mid-way is a workflow task timeout: the next worker runs it again, and the ledger
        skips what is committed."""
        return await workflow.execute_local_activity_method(
            ImportActivities.import_small,
            ChunkJob(
                import_id=inp.import_id,
                workspace_id=inp.workspace_id,
                chunk_index=0,
                sub_batch_rows=cursor.options.sub_batch_rows,
                file=cursor.file,
                avatars=cursor.avatars,
            ),
            start_to_close_timeout=timedelta(minutes=2),
            # mark-failed reads the ledger: no row may commit after it.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            retry_policy=RETRY,
            summary="the whole file (one chunk)",
        )

    def _count(self, cursor: ImportCursor, r: ChunkResult) -> None:
        # Each chunk's ledger totals are added exactly once: the activity's result.
        self.counts.add(r)
        cursor.chunks_done += 1
        self._show_progress()

    # --- finalize -----------------------------------------------------------------------

    async def _finalize(self, inp: ProcessCsvInput, cursor: ImportCursor) -> ImportResult:
        apart = workflow.patched(IMPORT_EMAILS_APART)
        job = FinalizeImport(
            import_id=inp.import_id,
            workspace_id=inp.workspace_id,
            user_id=inp.user_id,
            workflow_id=workflow.info().workflow_id,
            started_at=cursor.started_at,
            avatars=cursor.avatars,
            emails=not apart,
        )
        if self.small:
            result = await workflow.execute_local_activity_method(
                ImportActivities.finalize,
                job,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
        else:
            result = await workflow.execute_activity_method(
                ImportActivities.finalize,
                job,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
        self.emails_after = job if apart else None
        return result

    async def _send_emails(self, job: FinalizeImport) -> None:
        self.stage = "send-import-emails"
        try:
            await workflow.execute_activity_method(
                ImportActivities.send_import_emails,
                job,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=EMAIL_RETRY,
            )
        except ActivityError as e:
            if is_cancelled_exception(e):
                raise
            # The import is completed: an email refused for good, or given up when its
            # window closed, is reported here and does not undo it.
            workflow.logger.warning("import %s: email not sent: %s", job.import_id, e.cause or e)
        self.stage = "completed"
