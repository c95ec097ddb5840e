"""claim-import: process-csv's first step, the one way an import becomes `processing`.

check-import and fetch-import are the two steps it replaces (patch CLAIM_IMPORT): they
stay registered for the runs that were started before it, and check-import claims
through the same `lifecycle.claim`.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.imports.common import ImportSteps, file_of
from folksjobs import errors
from folksjobs.imports import lifecycle
from folksjobs.imports.repo import ImportRow
from folksjobs.models import ImportOptions, ImportRecord, ProcessCsvInput


class ClaimSteps(ImportSteps):
    @activity.defn(name="claim-import")
    async def claim_import(self, inp: ProcessCsvInput) -> ImportRecord:
        """Before the run queues or writes anything: the import is this workspace's, the
        user belongs to it, an email column is mapped, and it can start. A pending import
        becomes processing here: the confirmed event is the confirmation, whoever sends it
        (docs/contract.md). The record comes back, for every later step to use.

        Every refusal leaves the record as it was, so the rightful start (the owner's own
        confirm, or this one once the state is fixed) can still run it.
        """
        return self._record_of(await self._claim(inp))

    async def _claim(self, inp: ProcessCsvInput) -> ImportRow:
        try:
            return await lifecycle.claim(
                self.pool,
                inp.workspace_id,
                inp.import_id,
                inp.user_id,
                activity.info().workflow_id or "",
            )
        except lifecycle.ClaimRefused as e:
            raise ApplicationError(str(e), type=errors.INVALID_IMPORT, non_retryable=True) from e

    def _record_of(self, rec: ImportRow) -> ImportRecord:
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
            file=file_of(rec),
        )

    # --- the two steps of runs started before CLAIM_IMPORT --------------------------

    @activity.defn(name="check-import")
    async def check_import(self, inp: ProcessCsvInput) -> None:
        await self._claim(inp)

    @activity.defn(name="fetch-import")
    async def fetch_import(self, inp: ProcessCsvInput) -> ImportRecord:
        """The record check-import (or, before it, confirm) moved to processing; any other
        state means another run or a caller changed it, and this run must not touch it."""
        rec = await self._record(inp.workspace_id, inp.import_id)
        if rec.status != "processing":
            raise ApplicationError(
                f"Invalid import state: {rec.status} (expected processing)",
                type=errors.INVALID_IMPORT,
                non_retryable=True,
            )
        return self._record_of(rec)
