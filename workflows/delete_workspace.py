"""delete-workspace (event workspace/deleted, retries 9 => at most 10 attempts per step).

| step                     | what it does                                            |
|--------------------------|---------------------------------------------------------|
| begin-workspace-deletion | refuses unless the user owns the workspace; marks it    |
|                          | deleted (never in a digest again) and deletes its API   |
|                          | keys; counts its contacts, imports and exports          |
| cancel-workspace-jobs    | cancels its running imports, exports and avatars jobs,  |
|                          | waits until closed; discards its pending uploads        |
| delete-workspace-rows    | contacts, tags, imports, exports, keys, settings... in  |
|                          | committed batches with heartbeats, the workspace last   |
| delete-workspace-files   | every file under imports/<id>/ and exports/<id>/        |

Each step finds only what is left, so a killed worker's retry finishes the deletion, and
a workspace already gone only has its folders checked. A repeated event after the run
completed is refused by the workflow id (`dispatch`): a no-op.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.deletion import DeletionActivities
    from folksjobs import errors
    from folksjobs.catalog import job_by_workflow
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_DELETE_WORKSPACE,
        DeleteWorkspaceInput,
        DeleteWorkspaceResult,
    )

# A deletion is a duty: it keeps trying for about an hour before it fails for an operator.
RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_DELETE_WORKSPACE).attempts,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=[errors.DELETION_REFUSED],
)
SHORT = timedelta(seconds=60)
# Rows and files go in batches, each heartbeat: a big workspace takes long, a dead
# worker is noticed within the heartbeat timeout (the input's, 30 s by default).
LONG = timedelta(hours=6)


@workflow.defn(name=WF_DELETE_WORKSPACE)
class DeleteWorkspace:
    @workflow.run
    async def run(self, inp: DeleteWorkspaceInput) -> DeleteWorkspaceResult:
        set_job_attributes(workspace_id=inp.workspace_id, status="processing")
        heartbeat = timedelta(seconds=inp.heartbeat_timeout_seconds)
        begun = await workflow.execute_activity_method(
            DeletionActivities.begin_workspace_deletion,
            inp,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        result = DeleteWorkspaceResult(workspace_id=inp.workspace_id, status="not_found")
        if begun.found:
            cancelled = await workflow.execute_activity_method(
                DeletionActivities.cancel_workspace_jobs,
                inp,
                start_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=heartbeat,
                retry_policy=RETRY,
            )
            await workflow.execute_activity_method(
                DeletionActivities.delete_workspace_rows,
                inp,
                start_to_close_timeout=LONG,
                heartbeat_timeout=heartbeat,
                retry_policy=RETRY,
            )
            result = DeleteWorkspaceResult(
                workspace_id=inp.workspace_id,
                status="deleted",
                contacts=begun.contacts,
                imports=begun.imports,
                exports=begun.exports,
                jobs_cancelled=len(cancelled.workflow_ids),
                pending_uploads_discarded=cancelled.pending_uploads_discarded,
            )
        # Also when the row was already gone: an earlier run may have died before this step.
        await workflow.execute_activity_method(
            DeletionActivities.delete_workspace_files,
            inp,
            start_to_close_timeout=LONG,
            heartbeat_timeout=heartbeat,
            retry_policy=RETRY,
        )
        set_job_attributes(status="completed")
        return result
