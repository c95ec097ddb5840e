"""ProcessCsv's chunked path: download-and-chunk alongside process-batch, a sliding window
of `parallel_chunks` chunk activities (samples-python `batch_sliding_window`), the rebuild
of lost chunks, and the repair of chunks a database crash lost (find-missing-chunks).
A mixin of the workflow class, so the step table stays in `import_csv.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.imports import ImportActivities
    from folksjobs import errors
    from folksjobs.models import (
        ChunkJob,
        ChunkPlan,
        ChunkPlanResult,
        ChunkResult,
        ImportCursor,
        MissingChunks,
        ProcessCsvInput,
        chunking_task_queue,
    )
    from workflows import import_csv_before as before

MAX_RECHUNKS = 3
# download-and-chunk on its own queue (models.chunking_task_queue); runs started before
# this change keep scheduling it on the workflow's queue.
PATCH_CHUNKING_QUEUE = "chunking-task-queue"
# docs/deploys.md: chunk tasks are created as the window frees (runs started after this
# change); runs in flight before it keep creating them all up front.
CHUNKS_AS_SLOTS_FREE = "chunks-as-slots-free"


class ChunkedPath:
    RETRY: ClassVar[RetryPolicy]
    stage: str
    chunking: asyncio.Task[ChunkPlanResult] | None
    rechunk_lock: asyncio.Lock

    # --- download-and-chunk -------------------------------------------------------------

    async def _download_and_chunk(
        self, inp: ProcessCsvInput, cursor: ImportCursor
    ) -> ChunkPlanResult:
        queue = None
        if workflow.patched(PATCH_CHUNKING_QUEUE):
            queue = chunking_task_queue(workflow.info().task_queue)
        return await workflow.execute_activity_method(
            ImportActivities.download_and_chunk,
            ChunkPlan(
                import_id=inp.import_id,
                workspace_id=inp.workspace_id,
                chunk_rows=cursor.options.chunk_rows,
                generation=cursor.rechunks,
                file=cursor.file,
            ),
            task_queue=queue,
            start_to_close_timeout=timedelta(hours=2),
            # Heartbeats every second: a dead worker is noticed in seconds.
            heartbeat_timeout=timedelta(seconds=10),
            # On failure or cancel, wait until it has really stopped writing to Redis.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            retry_policy=self.RETRY,
        )

    # --- process-batch ------------------------------------------------------------------

    async def _process_chunks(
        self,
        inp: ProcessCsvInput,
        cursor: ImportCursor,
        indexes: Sequence[int],
        done: Callable[[ImportCursor, ChunkResult], None],
    ) -> None:
        """process-batch for each chunk of `indexes`, `parallel_chunks` at a time; `done`
        is told each chunk's result as it comes."""
        if not workflow.patched(CHUNKS_AS_SLOTS_FREE):
            await before.process_chunks_up_front(self, inp, cursor, indexes, done)
            return
        # A chunk's task is created only when a slot is free: a run holds
        # `parallel_chunks` tasks at a time, not one per chunk of the run.
        window = max(1, cursor.options.parallel_chunks)
        pending = iter(indexes)
        running: list[asyncio.Task[None]] = []
        # A failed chunking must stop the chunks waiting for it.
        chunking = [self.chunking] if self.chunking is not None else []

        async def one(i: int) -> None:
            done(cursor, await self._process_chunk(inp, cursor, i))

        try:
            while True:
                while len(running) < window and (i := next(pending, None)) is not None:
                    running.append(asyncio.create_task(one(i)))
                if not running:
                    return
                finished, _ = await workflow.wait(
                    [*running, *chunking], return_when=asyncio.FIRST_COMPLETED
                )
                # In creation order (`finished` is a set), so a replay raises the same failure.
                for t in [t for t in running if t in finished]:
                    running.remove(t)
                    t.result()
                for c in [c for c in chunking if c in finished]:
                    chunking.remove(c)
                    c.result()
        except BaseException:
            for left in [*running, *chunking]:
                left.cancel()
            await asyncio.gather(*running, *chunking, return_exceptions=True)
            raise

    async def _process_chunk(
        self, inp: ProcessCsvInput, cursor: ImportCursor, i: int
    ) -> ChunkResult:
        while True:
            generation = cursor.rechunks
            try:
                return await workflow.execute_activity_method(
                    ImportActivities.process_batch,
                    ChunkJob(
                        import_id=inp.import_id,
                        workspace_id=inp.workspace_id,
                        chunk_index=i,
                        sub_batch_rows=cursor.options.sub_batch_rows,
                        generation=generation,
                        chunking_done=self.chunking is None or self.chunking.done(),
                        file=cursor.file,
                    ),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(seconds=15),
                    # mark-failed reads the ledger: no chunk may commit after it.
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    retry_policy=self.RETRY,
                    summary=f"chunk {i + 1} of {cursor.chunk_count}",
                )
            except ActivityError as e:
                if not errors.failed_with(e, errors.CHUNK_MISSING):
                    raise
            await self._rechunk(inp, cursor, generation)

    async def _rechunk(self, inp: ProcessCsvInput, cursor: ImportCursor, lost_in: int) -> None:
        """The chunk expired or Redis lost it: rebuild the missing chunks from the blob,
        once for all the chunks that noticed in the same generation."""
        async with self.rechunk_lock:
            if lost_in != cursor.rechunks:
                return  # another chunk already rebuilt this generation
            if cursor.rechunks >= MAX_RECHUNKS:
                raise ApplicationError(
                    f"chunks were lost {cursor.rechunks} times; giving up",
                    type=errors.CHUNKS_LOST,
                    non_retryable=True,
                )
            if self.chunking is not None and not self.chunking.done():
                await workflow.wait([self.chunking])
            cursor.rechunks += 1
            self.stage = "download-and-chunk"
            self.chunking = None
            await self._download_and_chunk(inp, cursor)
            self.stage = "process-batch"

    # --- find-missing-chunks ------------------------------------------------------------

    async def _find_missing_chunks(self, inp: ProcessCsvInput, cursor: ImportCursor) -> None:
        """The database lost commits it had acknowledged (a crash with
        synchronous_commit=off): the ledger says which chunks; redo just those."""
        self.stage = "repair"
        missing = await workflow.execute_activity_method(
            ImportActivities.find_missing_chunks,
            MissingChunks(
                import_id=inp.import_id,
                workspace_id=inp.workspace_id,
                chunk_count=cursor.chunk_count,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=self.RETRY,
        )
        cursor.rechunks += 1
        await self._download_and_chunk(inp, cursor)
        await self._process_chunks(inp, cursor, missing, _already_counted)


def _already_counted(cursor: ImportCursor, r: ChunkResult) -> None:
    """A repaired chunk: progress already counted it once and must never pass the total."""
