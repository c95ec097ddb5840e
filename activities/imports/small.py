"""The small path, top to bottom: import-small, a file of one chunk (at most
ImportOptions.inline_max_rows rows, IMPORT_INLINE_MAX_BYTES bytes) in one activity."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.imports.common import file_of, missing_blob, truncated
from activities.imports.rows import RowSteps
from folksjobs import errors
from folksjobs.imports import chunker
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.chunker import ChunkSpec
from folksjobs.imports.repo import ImportRow
from folksjobs.models import ChunkJob, ChunkResult


class SmallSteps(RowSteps):
    @activity.defn(name="import-small")
    async def import_small(self, job: ChunkJob) -> ChunkResult:
        """Parsed here by the chunker's own code (`chunker.parse`, as its child process
        would), in a thread so the event loop keeps serving the worker's other tasks, and
        processed by process-batch's (`_process`: same ledger rows, duplicates and
        failures), with no child process, no Redis, no frames and no waiting for a chunk.
        A retry parses again, identically, and the ledger skips what is committed."""
        # None in a run from before CLAIM_IMPORT: its fetch-import result had no file.
        f = job.file or file_of(await self._processing(job))
        if job.chunk_index in await imports_repo.complete_chunks(
            self.pool, job.workspace_id, job.import_id
        ):
            return await self._chunk_result(job)
        local = self.blob.local_path(f.blob_key)
        data = None if local is not None else b"".join(
            [part async for part in self._blob_bytes(job.import_id, f)]
        )  # fmt: skip
        # One chunk of the whole file: more rows than uploaded show as a second chunk.
        spec = self._chunk_spec(f, max(f.total_rows, 1), None)
        try:
            found = await asyncio.to_thread(_parse, local, data, spec)
        except FileNotFoundError:
            # Not chained: the reason the import's error gives is the missing upload.
            raise missing_blob(job.import_id) from None
        except Exception as e:
            raise ApplicationError(
                f"the CSV parser failed: {type(e).__name__}: {e}", type=errors.CHUNKER_FAILED
            ) from e
        del data
        rows = found[-1].rows if found else 0
        if len(found) != 1 or rows != f.total_rows:
            raise truncated(rows, f.total_rows)
        # A single chunk: no earlier chunk can own one of its emails (dedup.Claims' job).
        await self._process(job, f, found[0].chunk)
        return await self._chunk_result(job)

    async def _processing(self, job: ChunkJob) -> ImportRow:
        rec = await self._record(job.workspace_id, job.import_id)
        if rec.status != "processing":
            raise ApplicationError(
                f"Invalid import state: {rec.status} (expected processing)",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        return rec


def _parse(path: Path | None, data: bytes | None, spec: ChunkSpec) -> list[chunker.Parsed]:
    raw = path.open("rb") if path is not None else io.BytesIO(data or b"")
    with raw:
        return list(chunker.parse(raw, spec))
