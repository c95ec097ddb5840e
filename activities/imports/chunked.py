"""The chunked path, top to bottom: download-and-chunk streams the file through the
chunker's child process into Redis; process-batch, alongside it, takes each chunk as it
appears and commits its rows; find-missing-chunks names the chunks a database crash lost.
Rows travel through Redis, never Temporal."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from redis.exceptions import ResponseError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.imports.common import (
    heartbeating,
    missing_blob,
    truncated,
    until_worker_shutdown,
)
from activities.imports.rows import RowSteps
from folksjobs import errors
from folksjobs.imports import chunker, dedup
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.backlog import BacklogStuck, ChunkBacklog
from folksjobs.infra import rediskeys
from folksjobs.infra.memory import release_free_memory
from folksjobs.models import ChunkJob, ChunkPlan, ChunkPlanResult, ChunkResult, MissingChunks


class ChunkedSteps(RowSteps):
    # --- download-and-chunk -------------------------------------------------------

    @activity.defn(name="download-and-chunk")
    async def download_and_chunk(self, plan: ChunkPlan) -> ChunkPlanResult:
        """Stream the blob through the CSV parser into Redis chunks of `chunk_rows` rows.

        Re-running it (a retry, or lost chunks) rebuilds every chunk not yet committed in
        the ledger, identically: same rows, same duplicate decisions.
        """
        f = await self._file(plan)
        complete = await imports_repo.complete_chunks(self.pool, plan.workspace_id, plan.import_id)
        local = self.blob.local_path(f.blob_key)
        if local is not None and not local.exists():
            raise missing_blob(plan.import_id)
        spec = self._chunk_spec(f, plan.chunk_rows, None if local is None else str(local))
        # The chunks before the plan's range were claimed by the runs before; only a Redis
        # that lost them (no start marker) needs them claimed again, from chunk 0.
        claims = await dedup.Claims.open(self.redis, plan.import_id, f.total_rows)
        if plan.first_chunk and claims.has_state:
            spec = replace(spec, first_chunk=plan.first_chunk)
        spec = replace(spec, stop_chunk=plan.stop_chunk)
        backlog = ChunkBacklog(self.redis, plan.max_held, self.settings.chunk_wait_seconds)
        progress = {"chunks": 0, "rows": 0}

        async def store(frame: chunker.Frame) -> None:
            await backlog.room()
            if await self._store_chunk(plan, frame, complete, claims):
                backlog.stored(rediskeys.chunk(plan.import_id, frame.chunk_index))
            progress.update(chunks=frame.chunk_index + 1, rows=frame.rows)

        source = None if local is not None else self._blob_bytes(plan.import_id, f)
        try:
            done = await until_worker_shutdown(
                heartbeating(chunker.run(spec, source, store), 1.0, lambda: progress)
            )
        except (chunker.ChunkerFailed, BacklogStuck) as e:
            raise ApplicationError(str(e), type=errors.CHUNKER_FAILED) from e
        if not done.eof:
            # The run's range is in Redis; the next run's plan reads on from there.
            return ChunkPlanResult(chunk_count=done.chunks, total_rows=done.rows)
        if done.rows != f.total_rows:
            raise truncated(done.rows, f.total_rows)
        done_key = rediskeys.chunking_done(plan.import_id, plan.generation)
        await self.redis.set(done_key, done.chunks, ex=self.settings.chunk_ttl_seconds)
        return ChunkPlanResult(chunk_count=done.chunks, total_rows=done.rows)

    async def _store_chunk(
        self, plan: ChunkPlan, frame: chunker.Frame, complete: set[int], claims: dedup.Claims
    ) -> bool:
        """Claim the chunk's emails and store it (unless the ledger already has it), then
        move the progress marker process-batch waits on. True when it was stored."""
        ttl = self.settings.chunk_ttl_seconds
        written = rediskeys.chunks_written(plan.import_id, plan.generation)
        if frame.skipped:  # committed by an earlier run, which claimed its emails
            await self.redis.set(written, frame.chunk_index + 1, ex=ttl)
            return False
        taken = await claims.claim(frame.chunk_index, frame.digests, ttl)
        if frame.chunk_index in complete or frame.chunk_index < plan.first_chunk:
            await self.redis.set(written, frame.chunk_index + 1, ex=ttl)
            return False
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
        try:
            await pipe.execute()
        except ResponseError as e:
            # redis-py chains a command's own error (a full Redis: OOM) to the
            # transaction's abort, which the failure would then name as its root cause.
            raise e from None
        # A copy stored before (by an earlier attempt or generation, or by a release that
        # chunked the whole file at once) may have been processed since `complete` was
        # read: then this one waits for no process-batch, and would hold the backlog's
        # place until its patience ran out. Checked after the store, so a commit at any
        # moment is seen (process-batch deletes the key only once committed).
        if await imports_repo.complete_chunks(
            self.pool, plan.workspace_id, plan.import_id, only=frame.chunk_index
        ):
            await self.redis.delete(rediskeys.chunk(plan.import_id, frame.chunk_index))
            return False
        return True

    # --- process-batch ------------------------------------------------------------

    @activity.defn(name="process-batch")
    async def process_batch(self, job: ChunkJob) -> ChunkResult:
        key = rediskeys.chunk(job.import_id, job.chunk_index)
        raw = await self._wait_for_chunk(job, key)
        if raw is None:
            return await self._chunk_result(job)
        f = await self._file(job)
        chunk = chunker.unpack(raw)
        del raw
        await self._process(job, f, chunk)
        del chunk
        # A chunk's ~100k small objects were just freed: hand the pages back now, or the
        # worker keeps the high-water mark of every arena for as long as it runs.
        release_free_memory()
        await self.redis.delete(key)
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

    # --- find-missing-chunks -----------------------------------------------------

    @activity.defn(name="find-missing-chunks")
    async def find_missing_chunks(self, job: MissingChunks) -> list[int]:
        """Chunks whose rows are not all in the ledger (commits a database crash lost)."""
        complete = await imports_repo.complete_chunks(self.pool, job.workspace_id, job.import_id)
        return [i for i in range(job.chunk_count) if i not in complete]
