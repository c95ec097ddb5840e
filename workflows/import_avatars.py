"""ProcessCsv's part in the avatars (issue 25): it starts the avatars job (EnrichAvatars,
`avatars-<import_id>`) before its first chunk, tells it when every row is committed (it
looks nothing up before: an import never shares the worker with its own lookups), and
cancels it with the import. A mixin of the workflow class, so the step table stays in
`import_csv.py`."""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from folksjobs.models import (
        AvatarCounts,
        EnrichAvatarsInput,
        ImportCounts,
        ImportCursor,
        ProcessCsvInput,
        avatars_workflow_id,
    )
    from workflows.enrich_avatars import ROWS_COMMITTED_SIGNAL, EnrichAvatars

# The avatars job started as a child before the first chunk, the chunks marking contacts
# instead of asking Gravatar. Runs started before it (and any run whose claim-import said
# Gravatar is off) keep the lookup inside process-batch.
AVATARS_AFTER_COMMIT = "avatars-after-commit"


class ImportAvatars:
    cursor: ImportCursor | None
    counts: ImportCounts
    # The import's avatars as finalize counted them (None until then).
    avatars_at_end: AvatarCounts | None = None

    def _avatars(self) -> AvatarCounts | None:
        if self.cursor is None or not self.cursor.avatars:
            return None
        if self.avatars_at_end is not None:
            return self.avatars_at_end
        # Every committed contact is owed its lookup until the rows are all in.
        n = self.counts
        return AvatarCounts(done=0, pending=n.inserted + n.updated + n.unchanged)

    async def _start_avatars(self, inp: ProcessCsvInput, cursor: ImportCursor) -> None:
        """The avatars job, before any row is committed. It outlives this run (ABANDON):
        it keeps going after the import completes, and across a continue-as-new."""
        if not workflow.patched(AVATARS_AFTER_COMMIT):
            return
        cursor.avatars = True
        # Already started: this run was reset past its start, and the job is there.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                EnrichAvatars.run,
                EnrichAvatarsInput(import_id=inp.import_id, workspace_id=inp.workspace_id),
                id=avatars_workflow_id(inp.import_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary="avatars: Gravatar lookups after the upsert",
            )

    async def _rows_committed(self, inp: ProcessCsvInput) -> None:
        """Before finalize (and on failure): the job may start asking."""
        if self.cursor is None or not self.cursor.avatars:
            return
        job = workflow.get_external_workflow_handle(avatars_workflow_id(inp.import_id))
        try:
            await job.signal(ROWS_COMMITTED_SIGNAL)
        except FailureError as e:  # it ended already (it was cancelled on its own)
            workflow.logger.info("avatars of import %s: %s", inp.import_id, e)

    async def _cancel_avatars(self, inp: ProcessCsvInput) -> None:
        if self.cursor is None or not self.cursor.avatars:
            return
        try:
            await workflow.get_external_workflow_handle(avatars_workflow_id(inp.import_id)).cancel()
        except FailureError as e:
            # It already ended (nothing was owed): there is nothing left to cancel.
            workflow.logger.info("avatars of import %s: %s", inp.import_id, e)
