"""ProcessCsv's part in the avatars (issue 25): it starts the avatars job (EnrichAvatars,
`avatars-<import_id>`) before its first chunk, shows what the job reports while the
import runs, and cancels it with the import. A mixin of the workflow class, so the step
table stays in `import_csv.py`."""

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
    from workflows.enrich_avatars import AVATARS_PENDING_SIGNAL, EnrichAvatars

# The avatars job started as a child before the first chunk, the chunks marking contacts
# instead of asking Gravatar. Runs started before it (and any run whose claim-import said
# Gravatar is off) keep the lookup inside process-batch.
AVATARS_AFTER_COMMIT = "avatars-after-commit"


class ImportAvatars:
    cursor: ImportCursor | None
    counts: ImportCounts
    # As the avatars job last reported it (None: Gravatar off, or no report yet).
    avatars_pending: int | None = None

    def _show_progress(self) -> None: ...

    @workflow.signal(name=AVATARS_PENDING_SIGNAL)
    def avatars_reported(self, pending: int) -> None:
        """The avatars job's count of lookups still owed, while this import runs."""
        self.avatars_pending = pending
        self._show_progress()

    def _avatars(self) -> AvatarCounts | None:
        if self.avatars_pending is None:
            return None
        written = self.counts.inserted + self.counts.updated
        return AvatarCounts(
            done=max(0, written - self.avatars_pending), pending=self.avatars_pending
        )

    async def _start_avatars(self, inp: ProcessCsvInput, cursor: ImportCursor) -> None:
        """The avatars job, before any row is committed so it can follow the chunks. It
        outlives this run (ABANDON): it keeps going after the import completes, and after
        a continue-as-new; a cancel of the import cancels it (_cancel_avatars)."""
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

    async def _cancel_avatars(self, inp: ProcessCsvInput) -> None:
        if self.cursor is None or not self.cursor.avatars:
            return
        try:
            await workflow.get_external_workflow_handle(avatars_workflow_id(inp.import_id)).cancel()
        except FailureError as e:
            # It already ended (nothing was owed): there is nothing left to cancel.
            workflow.logger.info("avatars of import %s: %s", inp.import_id, e)
