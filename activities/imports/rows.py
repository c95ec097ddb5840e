"""A chunk's rows into contacts, the same for both paths (process-batch, import-small):
map, validate, upsert in sub-batches, each committed with its ledger row.

Avatars are not looked up here: each contact is marked as owed a lookup by this import,
and the avatars job (workflows/enrich_avatars.py) fills them in after the commit. Only
runs started before that job (ChunkJob.avatars False) still ask Gravatar here."""

from __future__ import annotations

import asyncpg

from activities.imports.common import ImportSteps, beat, heartbeating
from folksjobs.imports import chunker, lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.contacts import Mapper, Upserted, Values, upsert
from folksjobs.infra.db import tenant_tx
from folksjobs.models import ChunkJob, ErrorSample, ImportFile

# Errors PostgreSQL raises for a value it can never store: retrying the statement is
# pointless, so the sub-batch falls back to row by row and fails just those rows.
POISON = (
    asyncpg.DataError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.CharacterNotInRepertoireError,
)


class RowSteps(ImportSteps):
    async def _process(self, job: ChunkJob, f: ImportFile, chunk: chunker.Chunk) -> None:
        """A chunk's rows, sub-batch by sub-batch, each committed with its ledger row."""
        mapper = Mapper(f.column_mapping, f.headers, self.settings.email_test_domains)
        size, total = job.sub_batch_rows, len(chunk.cells)
        for b, start in enumerate(range(0, total, size)):
            stop = min(start + size, total)
            await self._sub_batch(job, mapper, b, chunk, start, stop, total)
            # Committed rows are let go: four chunks in flight stay well under the
            # worker's memory target however large the file.
            chunk.release(start, stop)
            beat(b)

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
        avatars: dict[str, str | None] = {}
        owner = job.import_id if job.avatars else None
        if not job.avatars:
            lookup = self.gravatar.avatars([v[0] for v in values])
            avatars = await heartbeating(lookup, 2.0, lambda: "gravatar")

        async def commit(row_by_row: bool) -> None:
            async with tenant_tx(self.pool, job.workspace_id) as conn:
                if await imports_repo.batch_done(conn, job.import_id, job.chunk_index, batch):
                    return
                if row_by_row:
                    counts, poisoned = await self._upsert_rows(
                        conn, job.workspace_id, mapper.custom_keys, valid_rows, values, avatars,
                        owner,
                    )  # fmt: skip
                else:
                    poisoned = []
                    counts = await upsert(
                        conn, job.workspace_id, mapper.custom_keys, values, avatars, owner
                    )
                failed = sorted(failures + poisoned)
                samples = [
                    ErrorSample(row=r, reason=why).model_dump()
                    for r, why in failed[: self.settings.error_samples_max]
                ]
                await lifecycle.progress(
                    conn,
                    import_id=job.import_id,
                    workspace_id=job.workspace_id,
                    chunk=job.chunk_index,
                    batch=batch,
                    chunk_rows=chunk_rows,
                    rows=stop - start,
                    inserted=counts.inserted,
                    updated=counts.updated,
                    unchanged=counts.unchanged,
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
        owner: str | None,
    ) -> tuple[Upserted, list[tuple[int, str]]]:
        ins = upd = same = 0
        poisoned: list[tuple[int, str]] = []
        for row, value in zip(rows, values, strict=True):
            try:
                async with conn.transaction():
                    i, u, n = await upsert(conn, workspace_id, custom_keys, [value], avatars, owner)
                ins, upd, same = ins + i, upd + u, same + n
            except POISON as e:
                poisoned.append((row, f"rejected by the database: {str(e).splitlines()[0]}"))
        return Upserted(ins, upd, same), poisoned
