"""weekly-digest's side effects: the workspace pages and the digests, one by one or in
batches of EMAIL_BATCH_SIZE through the provider's batch endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.delivery import delivery, digest_deadline, settled
from folksjobs import errors
from folksjobs.catalog import job_by_workflow
from folksjobs.digest import stats as digest
from folksjobs.infra import metrics
from folksjobs.infra.logsafe import mask_email
from folksjobs.models import (
    DIGEST_WAITING_SIGNAL,
    WF_WEEKLY_DIGEST,
    DigestBatchJob,
    DigestBatchResult,
    DigestPage,
    DigestPageRequest,
    DigestWaiting,
    DigestWeek,
    WorkspaceDigestJob,
    WorkspaceDigestResult,
    digest_send_key,
)
from folksjobs.notify import emails
from folksjobs.notify.directory import UserDeleted, UserNotFound, get_user
from folksjobs.notify.mailer import DIGEST_TAG, Email, EmailSender, EmailSendError
from folksjobs.settings import Settings

ATTEMPTS = job_by_workflow(WF_WEEKLY_DIGEST).attempts
# Workspaces read at once by digest-batch, per worker (of its 20 database connections).
PREPARE_AT_ONCE = 8


class DigestActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, sender: EmailSender, settings: Settings) -> None:
        self.pool = pool
        self.sender = sender
        self.settings = settings
        # The workspaces of all batches are read a few at once, first come first served:
        # the first batch is ready to go while the others are still read, so the
        # provider's turns are not left idle (bench/results.md, "Email delivery").
        self.reading = asyncio.Semaphore(PREPARE_AT_ONCE)

    @activity.defn(name="get-workspaces")
    async def get_workspaces(self, req: DigestPageRequest) -> DigestPage:
        s = self.settings
        size = s.digest_page_size
        if s.email_batch_size > 1:
            # A page of DIGEST_CONCURRENCY full batches: the provider's turns are kept busy
            # by one page, where a 500-workspace page left them idle while the next one was
            # read (bench/results.md, "Email delivery": 2.2x the floor, against 1.3x).
            size = max(size, s.email_batch_size * s.digest_concurrency)
        ids = await digest.active_workspace_page(self.pool, req.after_workspace_id, size)
        return DigestPage(
            workspace_ids=ids,
            next_after=ids[-1] if len(ids) == size else None,
            # The worker's setting, recorded in history so the workflow stays deterministic.
            concurrency=s.digest_concurrency,
            batch_size=s.email_batch_size,
        )

    @activity.defn(name="digest-workspace")
    async def digest_workspace(self, job: WorkspaceDigestJob) -> WorkspaceDigestResult:
        s = self.settings
        deadline = digest_deadline(job.week, s)
        waits = _tell_waiting([job.workspace_id])
        async with delivery(DIGEST_TAG, deadline, ATTEMPTS, s.email_retry_max_seconds, waits):
            ready = await self._prepare(job.workspace_id, job.week, job.idempotency_key)
            if isinstance(ready, WorkspaceDigestResult):
                return ready
            await self.sender.send(ready.email)
        return await self._sent(ready)

    @activity.defn(name="digest-batch")
    async def digest_batch(self, job: DigestBatchJob) -> DigestBatchResult:
        """The digests of up to EMAIL_BATCH_SIZE workspaces in one request. Each keeps
        its own claim in the ledger and its own idempotency key; the request's key is
        made from theirs (mailer.batch_key), so a retry of an accepted batch is dropped."""
        s = self.settings
        deadline = digest_deadline(job.week, s)
        done: dict[str, WorkspaceDigestResult] = {}
        ready: list[_Ready] = []

        async def prepare(ws: str) -> WorkspaceDigestResult | _Ready:
            async with self.reading:
                try:
                    return await self._prepare(
                        ws, job.week, digest_send_key(ws, job.week.week_start)
                    )
                except ApplicationError as e:
                    # This workspace's own failure (owner gone...) never stops the others.
                    activity.logger.warning("digest for workspace %s failed: %s", ws, e)
                    return WorkspaceDigestResult(workspace_id=ws, outcome="failed")

        waits = _tell_waiting(job.workspace_ids)
        async with delivery(DIGEST_TAG, deadline, ATTEMPTS, s.email_retry_max_seconds, waits):
            for r in await asyncio.gather(*(prepare(ws) for ws in job.workspace_ids)):
                if isinstance(r, WorkspaceDigestResult):
                    done[r.workspace_id] = r
                else:
                    ready.append(r)
            if ready:
                try:
                    await self.sender.send_batch([r.email for r in ready])
                except EmailSendError as e:
                    verdict = settled(e, deadline, s.email_retry_max_seconds)
                    if verdict is None:
                        raise  # it waits: delivery() defers the attempt
                    # Refused for good, or the window closed: told per workspace.
                    activity.logger.warning("digest batch not sent (%s): %s", verdict, e)
                    if verdict == "given_up":
                        metrics.email_given_up(DIGEST_TAG)
                    for r in ready:
                        done[r.workspace_id] = WorkspaceDigestResult(
                            workspace_id=r.workspace_id,
                            outcome="given_up" if verdict == "given_up" else "failed",
                        )
                    ready = []

        async def sent(r: _Ready) -> WorkspaceDigestResult:
            async with self.reading:
                return await self._sent(r)

        for result in await asyncio.gather(*(sent(r) for r in ready)):
            done[result.workspace_id] = result
        return DigestBatchResult(results=[done[ws] for ws in job.workspace_ids])

    async def _prepare(self, ws: str, week: DigestWeek, key: str) -> WorkspaceDigestResult | _Ready:
        """The workspace's digest claimed and built, or why none is sent."""
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
        # attempt that ended between the two (worker crash, provider timeout after the
        # provider accepted, a refusal that waits): we send again under the SAME
        # idempotency key, so the outbox (file named by the key) or the provider
        # (Idempotency-Key header) keeps the first copy and drops this one. Two
        # concurrent runs for one week meet the same way.
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
            key,
        )
        return _Ready(ws, week, msg, stats.new_contacts)

    async def _sent(self, r: _Ready) -> WorkspaceDigestResult:
        await digest.mark_sent(self.pool, r.workspace_id, r.week)
        activity.logger.info(
            "digest for workspace %s sent to %s", r.workspace_id, mask_email(r.email.to)
        )
        return WorkspaceDigestResult(
            workspace_id=r.workspace_id, outcome="sent", new_contacts=r.new_contacts
        )

    ACTIVITIES = (
        get_workspaces,
        digest_workspace,
        digest_batch,
    )


def _tell_waiting(workspace_ids: list[str]) -> Callable[[], Awaitable[None]]:
    """Tells the run that started this activity that these digests wait for the provider
    (its progress and UI details count them)."""

    async def tell() -> None:
        info = activity.info()
        assert info.workflow_id is not None
        handle = activity.client().get_workflow_handle(
            info.workflow_id, run_id=info.workflow_run_id
        )
        await handle.signal(DIGEST_WAITING_SIGNAL, DigestWaiting(workspace_ids=workspace_ids))

    return tell


@dataclass(frozen=True)
class _Ready:
    """A claimed digest, built, not yet sent."""

    workspace_id: str
    week: DigestWeek
    email: Email
    new_contacts: int
