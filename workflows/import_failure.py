"""ProcessCsv's failure path: mark-failed records the error (or the cancellation) and
sends the best-effort email; the avatars job is told or cancelled. A mixin of the
workflow class, so the step table stays in `import_csv.py`."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.imports import ImportActivities
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import ImportFailure, ProcessCsvInput
    from workflows.import_avatars import ImportAvatars

# Runs that reached mark-failed before this change let its failure replace the import's.
MARK_FAILED_GUARDED = "mark-failed-never-replaces-the-error"


# On ImportAvatars: a failed import's committed rows still get their avatars, and a
# cancelled one's avatars job is cancelled with it.
class FailurePath(ImportAvatars):
    RETRY: ClassVar[RetryPolicy]
    stage: str

    # --- mark-failed --------------------------------------------------------------------

    async def _mark_failed(self, inp: ProcessCsvInput, error: str) -> None:
        self.stage = "failed"
        set_job_attributes(status="failed")
        await self._record_failure(self._failure(inp, error))
        # The rows it did commit are contacts: their avatars are still looked up.
        await self._rows_committed(inp)

    async def _mark_cancelled(self, inp: ProcessCsvInput) -> None:
        self.stage = "cancelled"
        set_job_attributes(status="cancelled")
        failure = self._failure(inp, "cancelled by request")
        await self._record_failure(failure.model_copy(update={"cancelled": True}))
        await self._cancel_avatars(inp)

    @staticmethod
    def _failure(inp: ProcessCsvInput, error: str) -> ImportFailure:
        return ImportFailure(
            import_id=inp.import_id,
            workspace_id=inp.workspace_id,
            user_id=inp.user_id,
            workflow_id=workflow.info().workflow_id,
            error=error,
        )

    async def _record_failure(self, failure: ImportFailure) -> None:
        try:
            await workflow.execute_activity_method(
                ImportActivities.mark_failed,
                failure,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=self.RETRY,
            )
        except ActivityError as e:
            if not workflow.patched(MARK_FAILED_GUARDED):
                raise
            # The import's own error (or its cancellation) is the one to report.
            workflow.logger.error("could not mark import %s: %s", failure.import_id, e)
