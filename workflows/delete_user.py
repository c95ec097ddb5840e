"""delete-user (event user/deleted, retries 9 => at most 10 attempts per step).

| step                | what it does                                                 |
|---------------------|--------------------------------------------------------------|
| begin-user-deletion | erases the user's address and name and marks them deleted:   |
|                     | no welcome, notification or digest reaches them from here on;|
|                     | lists the workspaces they own                                |
| cancel-user-jobs    | cancels the imports and exports they started, in every       |
|                     | workspace, and discards their pending uploads                |
| remove-memberships  | they no longer belong to any workspace                       |
| DeleteWorkspace     | a child run (delete-workspace-<id>) for each workspace they  |
|                     | owned alone; owned ones with other members are kept, listed  |
|                     | in the result for the operator to hand over                  |
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.deletion import DeletionActivities
    from folksjobs.catalog import job_by_workflow
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_DELETE_USER,
        DeleteUserInput,
        DeleteUserResult,
        DeleteWorkspaceInput,
        delete_workspace_workflow_id,
    )
    from workflows.delete_workspace import DeleteWorkspace

RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_DELETE_USER).attempts,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
SHORT = timedelta(seconds=60)


@workflow.defn(name=WF_DELETE_USER)
class DeleteUser:
    @workflow.run
    async def run(self, inp: DeleteUserInput) -> DeleteUserResult:
        set_job_attributes(status="processing")
        owned = await workflow.execute_activity_method(
            DeletionActivities.begin_user_deletion,
            inp,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        if not owned.found:
            set_job_attributes(status="completed")
            return DeleteUserResult(user_id=inp.user_id, status="not_found")
        cancelled = await workflow.execute_activity_method(
            DeletionActivities.cancel_user_jobs,
            inp,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        removed = await workflow.execute_activity_method(
            DeletionActivities.remove_memberships,
            inp,
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        for ws in owned.sole_owned:
            try:
                await workflow.execute_child_workflow(
                    DeleteWorkspace.run,
                    DeleteWorkspaceInput(workspace_id=ws, user_id=inp.user_id),
                    id=delete_workspace_workflow_id(ws),
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                )
            except WorkflowAlreadyStartedError:
                # workspace/deleted came first: that run deletes it.
                workflow.logger.info("workspace %s is already being deleted", ws)
        set_job_attributes(status="completed")
        return DeleteUserResult(
            user_id=inp.user_id,
            status="deleted",
            jobs_cancelled=len(cancelled.workflow_ids),
            pending_uploads_discarded=cancelled.pending_uploads_discarded,
            memberships_removed=removed.count,
            workspaces_deleted=owned.sole_owned,
            workspaces_kept=owned.shared_owned,
        )
