"""delete-workspace and delete-user: cancel the jobs, delete the rows and the files.

Each step can be retried from anywhere: what is gone stays gone, and the next attempt
finds only what is left (folksjobs/deletion/repo.py).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.base import ActivityClass
from folksjobs import errors
from folksjobs.deletion import repo
from folksjobs.imports import lifecycle
from folksjobs.infra.blob import BlobStore, workspace_prefixes
from folksjobs.infra.search_attributes import WORKSPACE_ID
from folksjobs.models import (
    WF_PROCESS_CSV,
    WF_PROCESS_EXPORT,
    DeleteUserInput,
    DeleteWorkspaceInput,
    JobsCancelled,
    Removed,
    UserWorkspaces,
    WorkspaceDeletion,
)
from folksjobs.settings import Settings

log = logging.getLogger("folksjobs.deletion")
POLL_SECONDS = 0.5


class DeletionActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, blob: BlobStore, settings: Settings) -> None:
        self.pool = pool
        self.blob = blob
        self.settings = settings

    # --- workspace ------------------------------------------------------------------

    @activity.defn(name="begin-workspace-deletion")
    async def begin_workspace_deletion(self, inp: DeleteWorkspaceInput) -> WorkspaceDeletion:
        """The owner check, then the mark: out of the digest, its API keys gone."""
        try:
            marked = await repo.mark_workspace_deleted(self.pool, inp.workspace_id, inp.user_id)
        except repo.NotTheOwner as e:
            raise ApplicationError(
                str(e), type=errors.DELETION_REFUSED, non_retryable=True
            ) from None
        if marked is None:
            return WorkspaceDeletion(found=False)
        return WorkspaceDeletion(
            found=True, contacts=marked.contacts, imports=marked.imports, exports=marked.exports
        )

    @activity.defn(name="cancel-workspace-jobs")
    async def cancel_workspace_jobs(self, inp: DeleteWorkspaceInput) -> JobsCancelled:
        """Cancels the workspace's running imports, exports and avatars jobs and waits
        until each has closed (so none writes after its rows are gone); discards its
        pending uploads."""
        ids = set(await repo.running_job_ids(self.pool, inp.workspace_id))
        ids.update(await repo.avatar_job_ids(self.pool, inp.workspace_id))
        # A run whose record already ended may still be sending its email.
        query = (
            f"{WORKSPACE_ID.name} = '{inp.workspace_id}' AND ExecutionStatus = 'Running'"
            f" AND WorkflowType IN ('{WF_PROCESS_CSV}', '{WF_PROCESS_EXPORT}')"
        )
        async for wf in activity.client().list_workflows(query):
            ids.add(wf.id)
        cancelled = await self._cancel_and_wait(sorted(ids))
        discarded = await self._discard_uploads(inp.workspace_id, None)
        return JobsCancelled(workflow_ids=cancelled, pending_uploads_discarded=discarded)

    @activity.defn(name="delete-workspace-rows")
    async def delete_workspace_rows(self, inp: DeleteWorkspaceInput) -> None:
        """Every row of the workspace, in committed batches (DELETION_BATCH_ROWS) with a
        heartbeat after each: a killed worker's retry carries on with what is left. The
        workspace row goes last."""
        ws, limit = inp.workspace_id, self.settings.deletion_batch_rows
        for table in repo.WORKSPACE_TABLES:
            while (deleted := await repo.delete_batch(self.pool, ws, table, limit)) > 0:
                activity.heartbeat(table)
                await self.after_batch(table, deleted)
        await repo.delete_workspace_row(self.pool, ws)

    async def after_batch(self, table: str, deleted: int) -> None:
        """A seam for the kill test (tests/deletion_crash_worker.py); nothing here."""

    @activity.defn(name="delete-workspace-files")
    async def delete_workspace_files(self, inp: DeleteWorkspaceInput) -> None:
        """Every file under the workspace's folders: uploads, exports, unfinished writes."""
        for prefix in workspace_prefixes(inp.workspace_id):
            files = await self.blob.delete_prefix(prefix)
            activity.heartbeat(prefix)
            log.info("workspace %s: %d file(s) deleted under %s", inp.workspace_id, files, prefix)

    # --- user -----------------------------------------------------------------------

    @activity.defn(name="begin-user-deletion")
    async def begin_user_deletion(self, inp: DeleteUserInput) -> UserWorkspaces:
        """Erases the user's address and name (no email reaches them from here on) and
        lists the workspaces they own."""
        owned = await repo.mark_user_deleted(self.pool, inp.user_id)
        if owned is None:
            return UserWorkspaces(found=False)
        return UserWorkspaces(found=True, sole_owned=owned.sole, shared_owned=owned.shared)

    @activity.defn(name="cancel-user-jobs")
    async def cancel_user_jobs(self, inp: DeleteUserInput) -> JobsCancelled:
        """The imports and exports the user started, in every workspace, cancelled; their
        pending uploads discarded."""
        cancelled: list[str] = []
        discarded = 0
        for ws in await repo.workspaces_of(self.pool, inp.user_id):
            ids = await repo.running_job_ids(self.pool, ws, inp.user_id)
            cancelled += await self._cancel_and_wait(ids)
            discarded += await self._discard_uploads(ws, inp.user_id)
        return JobsCancelled(workflow_ids=cancelled, pending_uploads_discarded=discarded)

    @activity.defn(name="remove-memberships")
    async def remove_memberships(self, inp: DeleteUserInput) -> Removed:
        return Removed(count=await repo.remove_memberships(self.pool, inp.user_id))

    # --- shared ---------------------------------------------------------------------

    async def _discard_uploads(self, workspace_id: str, user_id: str | None) -> int:
        discarded = 0
        for import_id in await repo.pending_upload_ids(self.pool, workspace_id, user_id):
            discarded += await lifecycle.discard(
                self.pool, workspace_id, import_id, self.blob.delete
            )
        return discarded

    async def _cancel_and_wait(self, workflow_ids: list[str]) -> list[str]:
        """Cancel each open run and wait for all to close; a run still open after
        DELETION_CANCEL_WAIT_SECONDS is terminated (its data is about to go anyway)."""
        client = activity.client()
        open_ids: list[str] = []
        for wid in workflow_ids:
            handle = client.get_workflow_handle(wid)
            try:
                await handle.cancel()
            except RPCError as e:
                # Gone, or already closed: nothing to stop.
                if e.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                    continue
                raise
            open_ids.append(wid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.deletion_cancel_wait_seconds
        for wid in open_ids:
            handle = client.get_workflow_handle(wid)
            while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                if loop.time() > deadline:
                    await handle.terminate(reason="its workspace or user was deleted")
                    break
                activity.heartbeat(wid)
                await asyncio.sleep(POLL_SECONDS)
        return open_ids

    ACTIVITIES = (
        begin_workspace_deletion,
        cancel_workspace_jobs,
        delete_workspace_rows,
        delete_workspace_files,
        begin_user_deletion,
        cancel_user_jobs,
        remove_memberships,
    )
