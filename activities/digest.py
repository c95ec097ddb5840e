"""weekly-digest's side effects: the workspace pages and one workspace's digest."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.errors import email_error
from folksjobs import errors
from folksjobs.digest import stats as digest
from folksjobs.infra.logsafe import mask_email
from folksjobs.models import (
    DigestPage,
    DigestPageRequest,
    WorkspaceDigestJob,
    WorkspaceDigestResult,
)
from folksjobs.notify import emails
from folksjobs.notify.directory import UserDeleted, UserNotFound, get_user
from folksjobs.notify.mailer import EmailSender, EmailSendError
from folksjobs.settings import Settings


class DigestActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, sender: EmailSender, settings: Settings) -> None:
        self.pool = pool
        self.sender = sender
        self.settings = settings

    @activity.defn(name="get-workspaces")
    async def get_workspaces(self, req: DigestPageRequest) -> DigestPage:
        size = self.settings.digest_page_size
        ids = await digest.active_workspace_page(self.pool, req.after_workspace_id, size)
        return DigestPage(
            workspace_ids=ids,
            next_after=ids[-1] if len(ids) == size else None,
            # The worker's setting, recorded in history so the workflow stays deterministic.
            concurrency=self.settings.digest_concurrency,
        )

    @activity.defn(name="digest-workspace")
    async def digest_workspace(self, job: WorkspaceDigestJob) -> WorkspaceDigestResult:
        ws, week = job.workspace_id, job.week
        info = await digest.workspace_info(self.pool, ws)
        if info is None:
            raise ApplicationError(
                f"workspace {ws} not found", type=errors.WORKSPACE_NOT_FOUND, non_retryable=True
            )
        if not info.digest_enabled:
            return WorkspaceDigestResult(workspace_id=ws, outcome="skipped_disabled")
        if await digest.send_state(self.pool, ws, week) == "sent":
            return WorkspaceDigestResult(workspace_id=ws, outcome="already_sent")
        # The owner by the owner's user id, never the workspace id (spec 001).
        try:
            owner = await get_user(self.pool, info.owner_user_id)
        except UserDeleted:
            # A deleted owner gets nothing; the workspace stays for its other members.
            return WorkspaceDigestResult(workspace_id=ws, outcome="skipped_disabled")
        except UserNotFound as e:
            raise ApplicationError(
                f"workspace {ws}: owner {e}", type=errors.OWNER_NOT_FOUND, non_retryable=True
            ) from e
        stats = await digest.gather_stats(self.pool, ws, week)
        if stats.new_contacts == 0:
            return WorkspaceDigestResult(workspace_id=ws, outcome="skipped_no_activity")
        # Claim before sending, mark after. A claim found still "claimed" was left by an
        # attempt that died between the two (worker crash, provider timeout after the
        # provider accepted): we send again under the SAME idempotency key, so the outbox
        # (file named by the key) or the provider (Idempotency-Key header) keeps the first
        # copy and drops this one. Two concurrent runs for one week meet the same way.
        if await digest.claim(self.pool, ws, week) == "sent":
            return WorkspaceDigestResult(workspace_id=ws, outcome="already_sent")
        msg = emails.weekly_digest(
            owner.email,
            info.name,
            week.week_start,
            stats.total_contacts,
            stats.new_contacts,
            stats.imports_completed,
            stats.top_domains,
            self.settings.app_url,
            job.idempotency_key,
        )
        try:
            receipt = await self.sender.send(msg)
        except EmailSendError as e:
            raise email_error(e) from e
        await digest.mark_sent(self.pool, ws, week)
        activity.logger.info(
            "digest for workspace %s sent to %s (%s%s)",
            ws,
            mask_email(owner.email),
            receipt.backend,
            ", duplicate dropped" if receipt.duplicate else "",
        )
        return WorkspaceDigestResult(
            workspace_id=ws, outcome="sent", new_contacts=stats.new_contacts
        )

    ACTIVITIES = (
        get_workspaces,
        digest_workspace,
    )
