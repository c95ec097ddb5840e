"""process-csv's side effects: fetch-import, download-and-chunk, process-batch, finalize,
mark-failed. Payloads carry ids and counts; rows travel through Redis, never Temporal."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.errors import email_error
from folksjobs import errors
from folksjobs.imports import chunker, dedup
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.chunker import ChunkSpec
from folksjobs.imports.contacts import Mapper, Values, upsert
from folksjobs.imports.mapping import email_columns
from folksjobs.imports.repo import ImportRow
from folksjobs.infra import metrics, rediskeys
from folksjobs.infra.blob import BlobNotFound, BlobStore
from folksjobs.infra.db import tenant_tx
from folksjobs.infra.memory import release_free_memory
from folksjobs.models import (
    ChunkJob,
    ChunkPlan,
    ChunkPlanResult,
    ChunkResult,
    ErrorSample,
    FinalizeImport,
    ImportFailure,
    ImportOptions,
    ImportRecord,
    ImportResult,
    MissingChunks,
    ProcessCsvInput,
)
from folksjobs.notify import emails
from folksjobs.notify.ai import Summarizer
from folksjobs.notify.directory import NotAMember, UserNotFound, get_user, require_member
from folksjobs.notify.gravatar import Gravatar
from folksjobs.notify.mailer import EmailSender, EmailSendError
from folksjobs.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors PostgreSQL raises for a value it can never store: retrying the statement is
# pointless, so the sub-batch falls back to row by row and fails just those rows.
POISON = (
    asyncpg.DataError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.CharacterNotInRepertoireError,
)


def _beat(*details: Any) -> None:
    """activity.heartbeat, but not in a local activity (import-small, finalize in a small
    import's run): the server knows no such task and the SDK logs each one as failed."""
    if not activity.info().is_local:
        activity.heartbeat(*details)


async def _heartbeating(work: Awaitable[T], every: float, details: Callable[[], Any]) -> T:
    """Await `work`, heartbeating `details()` every `every` seconds meanwhile: a long step
    (slow Gravatar answers, a large file) must not look like a dead worker. On cancel, the
    work has stopped when this returns."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            _beat(details())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    return task.result()


class ImportActivities(ActivityClass):
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

    async def _processing_record(self, workspace_id: str, import_id: str) -> ImportRow:
        """The record, which the run's check-import moved to processing; any other state
        means another run or a caller changed it, and this run must not touch its rows."""
        rec = await self._record(workspace_id, import_id)
        if rec.status != "processing":
            raise ApplicationError(
                f"Invalid import state: {rec.status} (expected processing)",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        return rec

    # --- check-import -------------------------------------------------------------

    @activity.defn(name="check-import")
    async def check_import(self, inp: ProcessCsvInput) -> None:
        """Before the run queues or writes anything: the import is this workspace's, the
        user belongs to it, and it can start. A pending import becomes processing here:
        the confirmed event is the confirmation, whoever sends it (docs/contract.md).

        Every refusal leaves the record as it was, so the rightful start (the owner's own
        confirm, or this one once the state is fixed) can still run it.
        """
        try:
            await require_member(self.pool, inp.workspace_id, inp.user_id)
        except NotAMember as e:
            raise ApplicationError(str(e), type=errors.INVALID_IMPORT, non_retryable=True) from e
        rec = await self._record(inp.workspace_id, inp.import_id)
        if rec.status not in ("pending", "processing"):
            raise ApplicationError(
                f"Invalid import state: {rec.status} (expected pending or processing)",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        if "email" not in rec.column_mapping:
            raise ApplicationError(
                "no column is mapped to email", type=errors.INVALID_IMPORT, non_retryable=True
            )
        wid = activity.info().workflow_id or ""
        if rec.status == "pending":
            if await imports_repo.confirm(
                self.pool, inp.workspace_id, inp.import_id, rec.column_mapping, wid
            ):
                return
            # Another run claimed it between the read and the update.
            rec = await self._record(inp.workspace_id, inp.import_id)
        if rec.status != "processing" or rec.workflow_id not in (None, wid):
            # One run per import: a second start under another workflow id would race the
            # first one over the same chunks and send its emails twice.
            raise ApplicationError(
                f"import {inp.import_id} is already {rec.status}"
                + (f" by {rec.workflow_id}" if rec.workflow_id else ""),
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )

    # --- fetch-import -------------------------------------------------------------

    @activity.defn(name="fetch-import")
    async def fetch_import(self, inp: ProcessCsvInput) -> ImportRecord:
        rec = await self._processing_record(inp.workspace_id, inp.import_id)
        if "email" not in rec.column_mapping:
            raise ApplicationError(
                "no column is mapped to email", type=errors.INVALID_IMPORT, non_retryable=True
            )
        s = self.settings
        return ImportRecord(
            import_id=rec.id,
            workspace_id=rec.workspace_id,
            user_id=rec.user_id,
            status=rec.status,
            blob_key=rec.blob_key,
            total_rows=rec.total_rows,
            options=ImportOptions(
                chunk_rows=s.import_chunk_rows,
                sub_batch_rows=s.import_sub_batch_rows,
                parallel_chunks=s.import_parallel_chunks,
                chunks_per_run=s.import_chunks_per_run,
                inline_max_rows=(
                    min(s.import_inline_max_rows, s.import_chunk_rows)
                    if rec.file_bytes <= s.import_inline_max_bytes
                    else 0
                ),
            ),
        )

    # --- download-and-chunk -------------------------------------------------------

    @activity.defn(name="download-and-chunk")
    async def download_and_chunk(self, plan: ChunkPlan) -> ChunkPlanResult:
        """Stream the blob through the CSV parser into Redis chunks of `chunk_rows` rows.

        Re-running it (a retry, or lost chunks) rebuilds every chunk not yet committed in
        the ledger, identically: same rows, same duplicate decisions.
        """
        rec = await self._record(plan.workspace_id, plan.import_id)
        complete = await imports_repo.complete_chunks(self.pool, plan.workspace_id, plan.import_id)
        local = self.blob.local_path(rec.blob_key)
        if local is not None and not local.exists():
            raise self._missing_blob(rec)
        spec = self._chunk_spec(rec, plan.chunk_rows, None if local is None else str(local))
        progress = {"chunks": 0, "rows": 0}

        async def store(frame: chunker.Frame) -> None:
            await self._store_chunk(plan, frame, complete)
            progress.update(chunks=frame.chunk_index + 1, rows=frame.rows)

        source = None if local is not None else self._blob_bytes(rec)
        try:
            done = await _heartbeating(chunker.run(spec, source, store), 1.0, lambda: progress)
        except chunker.ChunkerFailed as e:
            raise ApplicationError(str(e), type=errors.CHUNKER_FAILED) from e
        if done.rows != rec.total_rows:
            raise ApplicationError(
                f"the stored file has {done.rows:,} rows but {rec.total_rows:,} were uploaded: "
                "it is truncated or was replaced; upload it again",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        done_key = rediskeys.chunking_done(plan.import_id, plan.generation)
        await self.redis.set(done_key, done.chunks, ex=self.settings.chunk_ttl_seconds)
        return ChunkPlanResult(chunk_count=done.chunks, total_rows=done.rows)

    def _chunk_spec(self, rec: ImportRow, chunk_rows: int, path: str | None) -> ChunkSpec:
        return ChunkSpec(
            encoding=rec.encoding,
            delimiter=rec.delimiter,
            sep_line=rec.sep_line,
            field_limit=self.settings.csv_field_size_limit,
            email_columns=email_columns(rec.column_mapping),
            chunk_rows=chunk_rows,
            path=path,
            email_test_domains=self.settings.email_test_domains,
        )

    async def _store_chunk(self, plan: ChunkPlan, frame: chunker.Frame, complete: set[int]) -> None:
        """Claim the chunk's emails and store it (unless the ledger already has it), then
        move the progress marker process-batch waits on."""
        ttl = self.settings.chunk_ttl_seconds
        taken = await dedup.claim(
            self.redis, rediskeys.seen_emails(plan.import_id), frame.chunk_index, frame.digests, ttl
        )
        written = rediskeys.chunks_written(plan.import_id, plan.generation)
        if frame.chunk_index in complete:
            await self.redis.set(written, frame.chunk_index + 1, ex=ttl)
            return
        # An email an earlier chunk owns: its last row here is a duplicate too (the rows
        # before it already are).
        dups = sorted([*frame.superseded, *(frame.last_rows[i] for i in taken)])
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(
            rediskeys.chunk(plan.import_id, frame.chunk_index),
            chunker.pack(dups, frame.blob),
            ex=ttl,
        )
        pipe.set(written, frame.chunk_index + 1, ex=ttl)
        await pipe.execute()

    async def _blob_bytes(self, rec: ImportRow) -> AsyncIterator[bytes]:
        try:
            async for part in self.blob.read(rec.blob_key):
                yield part
        except BlobNotFound as e:
            raise self._missing_blob(rec) from e

    def _missing_blob(self, rec: ImportRow) -> ApplicationError:
        return ApplicationError(
            f"the uploaded file of import {rec.id} is missing from the blob store; upload it again",
            type=errors.INVALID_IMPORT,
            non_retryable=True,
        )

    # --- process-batch ------------------------------------------------------------

    @activity.defn(name="process-batch")
    async def process_batch(self, job: ChunkJob) -> ChunkResult:
        key = rediskeys.chunk(job.import_id, job.chunk_index)
        raw = await self._wait_for_chunk(job, key)
        if raw is None:
            return await self._chunk_result(job)
        rec = await self._record(job.workspace_id, job.import_id)
        chunk = chunker.unpack(raw)
        del raw
        await self._process(job, rec, chunk)
        del chunk
        # A chunk's ~100k small objects were just freed: hand the pages back now, or the
        # worker keeps the high-water mark of every arena for as long as it runs.
        release_free_memory()
        await self.redis.delete(key)
        return await self._chunk_result(job)

    async def _process(self, job: ChunkJob, rec: ImportRow, chunk: chunker.Chunk) -> None:
        """A chunk's rows, sub-batch by sub-batch, each committed with its ledger row."""
        mapper = Mapper(rec.column_mapping, rec.headers, self.settings.email_test_domains)
        size, total = job.sub_batch_rows, len(chunk.cells)
        for b, start in enumerate(range(0, total, size)):
            stop = min(start + size, total)
            await self._sub_batch(job, mapper, b, chunk, start, stop, total)
            # Committed rows are let go: four chunks in flight stay well under the
            # worker's memory target however large the file.
            chunk.release(start, stop)
            _beat(b)

    # --- import-small ---------------------------------------------------------------

    @activity.defn(name="import-small")
    async def import_small(self, job: ChunkJob) -> ChunkResult:
        """A file of one chunk (at most ImportOptions.inline_max_rows rows) in one activity:
        parsed here by the chunker's own code (`chunker.frames`, as its child process
        would) and processed by process-batch's (`_process`: same ledger rows, duplicates
        and failures), with no child process, no Redis and no waiting for a chunk. A
        retry parses again, identically, and the ledger skips what is committed."""
        rec = await self._processing_record(job.workspace_id, job.import_id)
        if job.chunk_index in await imports_repo.complete_chunks(
            self.pool, job.workspace_id, job.import_id
        ):
            return await self._chunk_result(job)
        local = self.blob.local_path(rec.blob_key)
        if local is not None:
            try:
                data = local.read_bytes()
            except FileNotFoundError:
                # Not chained: the reason the import's error gives is the missing upload.
                raise self._missing_blob(rec) from None
        else:
            data = b"".join([part async for part in self._blob_bytes(rec)])
        # One chunk of the whole file: more rows than uploaded show as a second frame.
        spec = self._chunk_spec(rec, max(rec.total_rows, 1), None)
        try:
            found = list(chunker.frames(io.BytesIO(data), spec))
        except Exception as e:
            raise ApplicationError(
                f"the CSV parser failed: {type(e).__name__}: {e}", type=errors.CHUNKER_FAILED
            ) from e
        del data
        rows = found[-1].rows if found else 0
        if len(found) != 1 or rows != rec.total_rows:
            raise ApplicationError(
                f"the stored file has {rows:,} rows but {rec.total_rows:,} were uploaded: "
                "it is truncated or was replaced; upload it again",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        (frame,) = found
        # A single chunk: no earlier chunk can own one of its emails (dedup.claim's job).
        await self._process(job, rec, chunker.unpack(chunker.pack(frame.superseded, frame.blob)))
        return await self._chunk_result(job)

    async def _wait_for_chunk(self, job: ChunkJob, key: str) -> bytes | None:
        """The chunk (marshal) once download-and-chunk has written it; None when the chunk is
        already committed; ChunkMissing when it was written and is gone (TTL, flush)."""
        written = rediskeys.chunks_written(job.import_id, job.generation)
        done = rediskeys.chunking_done(job.import_id, job.generation)
        first, idle_since, last_seen = True, time.monotonic(), None
        while True:
            raw, n, finished = await self.redis.mget(key, written, done)
            if raw is not None:
                return raw if isinstance(raw, bytes) else raw.encode()
            lost = (
                job.chunking_done
                or finished is not None
                or (n is not None and int(n) > job.chunk_index)
                # The progress marker was there and is gone: Redis lost its data.
                or (not first and n is None and last_seen is not None)
            )
            if (lost or first) and job.chunk_index in await imports_repo.complete_chunks(
                self.pool, job.workspace_id, job.import_id
            ):
                return None
            if lost:
                raise ApplicationError(
                    f"chunk {job.chunk_index} is no longer in Redis (expired or flushed)",
                    type=errors.CHUNK_MISSING,
                    non_retryable=True,
                )
            if first or n != last_seen:
                first, idle_since, last_seen = False, time.monotonic(), n
            elif time.monotonic() - idle_since > self.settings.chunk_wait_seconds:
                raise ApplicationError(
                    f"chunk {job.chunk_index} did not appear within "
                    f"{self.settings.chunk_wait_seconds:.0f} s of chunking progress",
                    type=errors.CHUNK_MISSING,
                    non_retryable=True,
                )
            activity.heartbeat("waiting for chunk")
            await asyncio.sleep(0.05)

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

    async def _sub_batch(
        self,
        job: ChunkJob,
        mapper: Mapper,
        batch: int,
        chunk: chunker.Chunk,
        start: int,
        stop: int,
        chunk_rows: int,
    ) -> None:
        failures: list[tuple[int, str]] = []
        parsed: list[tuple[int, list[str], str | None]] = []
        duplicates = 0
        cells, emails, dups = chunk.cells, chunk.emails, chunk.dups
        for i, row in enumerate(range(chunk.first_row + start, chunk.first_row + stop), start):
            if row in dups:
                duplicates += 1
            elif (c := cells[i]) is None:
                failures.append((row, chunk.errors[i]))
            else:
                parsed.append((row, c, emails[i]))
        valid_rows, values, invalid = mapper.map(parsed)
        failures += invalid
        lookup = self.gravatar.avatars([v[0] for v in values])
        avatars = await _heartbeating(lookup, 2.0, lambda: "gravatar")

        async def commit(row_by_row: bool) -> None:
            async with tenant_tx(self.pool, job.workspace_id) as conn:
                if await imports_repo.batch_done(conn, job.import_id, job.chunk_index, batch):
                    return
                if row_by_row:
                    inserted, updated, poisoned = await self._upsert_rows(
                        conn, job.workspace_id, mapper.custom_keys, valid_rows, values, avatars
                    )
                else:
                    poisoned = []
                    inserted, updated = await upsert(
                        conn, job.workspace_id, mapper.custom_keys, values, avatars
                    )
                failed = sorted(failures + poisoned)
                samples = [
                    ErrorSample(row=r, reason=why).model_dump()
                    for r, why in failed[: self.settings.error_samples_max]
                ]
                await imports_repo.record_batch(
                    conn,
                    import_id=job.import_id,
                    workspace_id=job.workspace_id,
                    chunk=job.chunk_index,
                    batch=batch,
                    chunk_rows=chunk_rows,
                    rows=stop - start,
                    inserted=inserted,
                    updated=updated,
                    failed=len(failed),
                    duplicates=duplicates,
                    samples=samples,
                )

        try:
            await commit(row_by_row=False)
        except POISON:
            # A value PostgreSQL cannot store: the transaction is gone, so the sub-batch
            # is done again row by row, failing just the rows it rejects.
            await commit(row_by_row=True)

    async def _upsert_rows(
        self,
        conn: asyncpg.Connection,
        workspace_id: str,
        custom_keys: list[str],
        rows: list[int],
        values: list[Values],
        avatars: dict[str, str | None],
    ) -> tuple[int, int, list[tuple[int, str]]]:
        ins = upd = 0
        poisoned: list[tuple[int, str]] = []
        for row, value in zip(rows, values, strict=True):
            try:
                async with conn.transaction():
                    i, u = await upsert(conn, workspace_id, custom_keys, [value], avatars)
                ins, upd = ins + i, upd + u
            except POISON as e:
                poisoned.append((row, f"rejected by the database: {str(e).splitlines()[0]}"))
        return ins, upd, poisoned

    @activity.defn(name="find-missing-chunks")
    async def find_missing_chunks(self, job: MissingChunks) -> list[int]:
        """Chunks whose rows are not all in the ledger (commits a database crash lost)."""
        complete = await imports_repo.complete_chunks(self.pool, job.workspace_id, job.import_id)
        return [i for i in range(job.chunk_count) if i not in complete]

    # --- finalize -----------------------------------------------------------------

    @activity.defn(name="finalize")
    async def finalize(self, job: FinalizeImport) -> ImportResult:
        rec = await self._record(job.workspace_id, job.import_id)
        t = await imports_repo.totals(self.pool, job.workspace_id, job.import_id)
        if t.rows != rec.total_rows:
            raise ApplicationError(
                f"ledger holds {t.rows:,} rows, the file {rec.total_rows:,}",
                type=errors.LEDGER_MISMATCH,
                non_retryable=True,
            )
        samples = await imports_repo.first_error_samples(
            self.pool, job.workspace_id, job.import_id, self.settings.error_samples_max
        )
        summary = rec.ai_summary or await self.summarizer.summarize(
            t.rows, t.inserted, t.updated, t.failed, t.duplicates
        )
        duration_ms = int((activity.info().started_time - job.started_at).total_seconds() * 1000)
        if rec.status == "processing":
            await imports_repo.complete(
                self.pool, job.workspace_id, job.import_id, t, samples, summary, duration_ms
            )
            metrics.rows_imported(t.inserted + t.updated)
            metrics.rows_failed(t.failed)
        else:
            duration_ms = rec.duration_ms or duration_ms
        await self._invalidate_stats(job.workspace_id)
        await self._send_finish_emails(job, rec, t, samples, summary)
        await self._cleanup(job.import_id)
        return ImportResult(
            import_id=job.import_id,
            status="completed",
            total_rows=t.rows,
            inserted=t.inserted,
            updated=t.updated,
            failed=t.failed,
            duplicates=t.duplicates,
            error_samples=[ErrorSample(**s) for s in samples],
            ai_summary=summary,
            duration_ms=duration_ms,
        )

    async def _send_finish_emails(
        self,
        job: FinalizeImport,
        rec: ImportRow,
        t: imports_repo.Totals,
        samples: list[dict[str, Any]],
        summary: str,
    ) -> None:
        # The workspace's setting decides both: the completion email and its error report.
        if not await imports_repo.notify_on_complete(self.pool, job.workspace_id):
            return
        try:
            await require_member(self.pool, job.workspace_id, job.user_id)
            user = await get_user(self.pool, job.user_id)
        except (UserNotFound, NotAMember) as e:
            log.warning("import %s: no completion email: %s", job.import_id, e)
            return
        msgs = [
            emails.import_completed(
                user.email,
                rec.file_name,
                t.rows,
                t.inserted,
                t.updated,
                t.failed,
                t.duplicates,
                summary,
                f"{job.workflow_id}/import-completed",
            )
        ]
        if t.rows and t.failed / t.rows > self.settings.error_report_threshold:
            msgs.append(
                emails.import_error_report(
                    user.email,
                    rec.file_name,
                    t.rows,
                    t.failed,
                    [(s["row"], s["reason"]) for s in samples],
                    f"{job.workflow_id}/import-error-report",
                )
            )
        for msg in msgs:
            try:
                await self.sender.send(msg)
            except EmailSendError as e:
                raise email_error(e) from e

    async def _invalidate_stats(self, workspace_id: str) -> None:
        await self._delete_pattern(rediskeys.stats_pattern(workspace_id))

    async def _cleanup(self, import_id: str) -> None:
        await self._delete_pattern(rediskeys.import_pattern(import_id))

    async def _delete_pattern(self, pattern: str) -> None:
        batch: list[bytes] = []
        async for k in self.redis.scan_iter(match=pattern, count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                await self.redis.delete(*batch)
                batch = []
        if batch:
            await self.redis.delete(*batch)

    # --- the failure path ---------------------------------------------------------

    @activity.defn(name="mark-failed")
    async def mark_failed(self, f: ImportFailure) -> None:
        """Status failed (or cancelled), caches invalidated, best-effort email, keys removed."""
        rec = await imports_repo.get(self.pool, f.workspace_id, f.import_id)
        if rec is None or rec.workflow_id != f.workflow_id:
            # Not an import this run holds (a caller paired the ids, or another run has
            # it): nothing of it (its record, its chunks in Redis) may be touched.
            log.warning("import %s: not held by %s; nothing marked", f.import_id,
                        f.workflow_id)  # fmt: skip
            return
        status = "cancelled" if f.cancelled else "failed"
        await imports_repo.end(
            self.pool,
            f.workspace_id,
            f.import_id,
            status,
            None if f.cancelled else {"message": f.error},
        )
        await self._invalidate_stats(f.workspace_id)
        await self._cleanup(f.import_id)
        if f.cancelled:
            return
        try:
            # Only about an import of the workspace, only to one of its members.
            await require_member(self.pool, f.workspace_id, f.user_id)
            user = await get_user(self.pool, f.user_id)
            await self.sender.send(
                emails.import_failed(
                    user.email, rec.file_name, f.error, f"{f.workflow_id}/import-failed"
                )
            )
        except Exception as e:  # best effort: must never hide the import's own error
            log.error("import %s: failure email not sent (%s)", f.import_id, type(e).__name__)

    ACTIVITIES = (
        check_import,
        fetch_import,
        download_and_chunk,
        process_batch,
        import_small,
        find_missing_chunks,
        finalize,
        mark_failed,
    )
