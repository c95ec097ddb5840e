"""enrich-avatars's side effects: avatars-owed, lookup-avatars, drop-avatars.

Payloads carry ids, contact-id cursors and counts; emails are read from the database by
the activity that asks about them and never travel through Temporal.
"""

from __future__ import annotations

import logging

import asyncpg
from temporalio import activity

from activities.base import ActivityClass
from folksjobs.imports import avatars as avatars_repo
from folksjobs.imports import repo as imports_repo
from folksjobs.models import AvatarBatch, AvatarBatchResult, AvatarPlan, AvatarsOf
from folksjobs.notify.gravatar import Gravatar
from folksjobs.settings import Settings

log = logging.getLogger(__name__)

# Contacts one lookup-avatars reads at most (cached ones included): bounds its time.
READ_MAX = 5000


class AvatarActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, gravatar: Gravatar, settings: Settings) -> None:
        self.pool = pool
        self.gravatar = gravatar
        self.settings = settings

    @activity.defn(name="avatars-owed")
    async def avatars_owed(self, job: AvatarsOf) -> AvatarPlan:
        """How many lookups the import still owes, and whether it can still add some (it
        is processing: its rows are being committed). The worker's settings come along."""
        s = self.settings
        rec = await imports_repo.get(self.pool, job.workspace_id, job.import_id)
        if not self.gravatar.enabled:
            # Switched off since the import started: nothing will be looked up.
            await avatars_repo.drop(self.pool, job.workspace_id, job.import_id)
        pending = await avatars_repo.owed_count(self.pool, job.workspace_id, job.import_id)
        return AvatarPlan(
            pending=pending,
            import_open=rec is not None and rec.status in ("pending", "processing"),
            lanes=s.gravatar_lanes,
            batch=s.gravatar_batch,
            poll_seconds=s.gravatar_poll_seconds,
            lookups_per_run=s.gravatar_lookups_per_run,
            lookup_timeout_seconds=s.gravatar_batch / s.gravatar_rate_per_second
            + s.gravatar_timeout_seconds
            + 30,
        )

    @activity.defn(name="lookup-avatars")
    async def lookup_avatars(self, job: AvatarBatch) -> AvatarBatchResult:
        """One lane's next contacts: cached answers written at once, up to `batch`
        addresses asked of Gravatar (the task queue's rate allows this activity at most
        rate/batch times a second across the cluster), each answer written with the guard
        of folksjobs/imports/avatars.py. Unanswered contacts stay owed for the next pass."""
        wait = await self.gravatar.paused()
        if wait:
            return AvatarBatchResult(next_after=job.after_id, retry_after=wait)
        out = AvatarBatchResult(next_after=job.after_id)
        budget, read = job.batch, 0
        # Cached addresses cost no request: read on (up to READ_MAX contacts) until the
        # budget is spent, so a re-import's cached lookups do not each take a turn of the
        # rate.
        while budget > 0 and read < READ_MAX:
            after = out.next_after or 0
            rows = await avatars_repo.owed(
                self.pool, job.workspace_id, job.import_id,
                lane=job.lane, lanes=job.lanes, after_id=after, limit=2 * job.batch,
            )  # fmt: skip
            if not rows:
                out.next_after = None
                break
            found = await self.gravatar.lookup([email for _, email in rows], budget)
            answered = [(rows[i][0], rows[i][1], url) for i, url in sorted(found.answers.items())]
            out.done += await avatars_repo.write(
                self.pool, job.workspace_id, job.import_id, answered
            )
            out.asked += found.asked
            out.deferred += found.deferred
            budget -= found.used
            read += found.considered
            if found.considered:
                out.next_after = rows[found.considered - 1][0]
            if found.retry_after:
                out.retry_after = found.retry_after
                break
            if found.considered < len(rows):
                break  # the budget ran out within these rows
        return out

    @activity.defn(name="drop-avatars")
    async def drop_avatars(self, job: AvatarsOf) -> int:
        """The import (and so its avatars job) was cancelled: it owes nothing any more."""
        n = await avatars_repo.drop(self.pool, job.workspace_id, job.import_id)
        log.info("import %s: %d avatar lookups dropped", job.import_id, n)
        return n

    ACTIVITIES = (avatars_owed, lookup_avatars, drop_avatars)
