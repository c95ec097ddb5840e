"""discard-stale-uploads: pending imports nobody confirmed, removed with their files."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.base import ActivityClass
from folksjobs.imports import lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.infra.blob import BlobStore
from folksjobs.models import DiscardStaleUploadsInput, DiscardStaleUploadsResult
from folksjobs.settings import Settings


class UploadActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, blob: BlobStore, settings: Settings) -> None:
        self.pool = pool
        self.blob = blob
        self.settings = settings

    @activity.defn(name="discard-stale-uploads")
    async def discard_stale_uploads(
        self, inp: DiscardStaleUploadsInput
    ) -> DiscardStaleUploadsResult:
        ttl = inp.older_than_seconds
        if ttl is None:
            ttl = self.settings.pending_upload_ttl_seconds
        # `workspaces` is the tenant directory (no row-level security); each workspace's
        # imports are read in its own scope. A retry starts over: what is gone stays gone.
        workspaces = [str(r["id"]) for r in await self.pool.fetch("SELECT id FROM workspaces")]
        discarded = 0
        for ws in workspaces:
            for import_id in await imports_repo.stale_pending(self.pool, ws, ttl):
                if await lifecycle.discard(self.pool, ws, import_id, self.blob.delete):
                    discarded += 1
            activity.heartbeat(discarded)
        return DiscardStaleUploadsResult(workspaces=len(workspaces), discarded=discarded)

    ACTIVITIES = (discard_stale_uploads,)
