"""expire-files: upload and export files past their retention time, deleted; records kept."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.base import ActivityClass
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.infra.blob import BlobStore
from folksjobs.models import ExpireFilesInput, ExpireFilesResult
from folksjobs.settings import Settings


class RetentionActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, blob: BlobStore, settings: Settings) -> None:
        self.pool = pool
        self.blob = blob
        self.settings = settings

    @activity.defn(name="expire-files")
    async def expire_files(self, inp: ExpireFilesInput) -> ExpireFilesResult:
        uploads_s = inp.upload_retention_seconds
        if uploads_s is None:
            uploads_s = self.settings.upload_retention_hours * 3600
        exports_s = inp.export_retention_seconds
        if exports_s is None:
            exports_s = self.settings.export_retention_hours * 3600
        # Whoever asks, a link already sent keeps working until it expires.
        exports_s = max(exports_s, float(self.settings.s3_presign_seconds))
        # `workspaces` is the tenant directory (no row-level security); each workspace's
        # records are read in its own scope. A retry starts over: a deleted file is
        # recorded as such in the same transaction, so it is not counted twice.
        workspaces = [str(r["id"]) for r in await self.pool.fetch("SELECT id FROM workspaces")]
        uploads = exports = 0
        for ws in workspaces:
            for import_id in await imports_repo.expired_uploads(self.pool, ws, uploads_s):
                uploads += await lifecycle.expire_file(self.pool, ws, import_id, self.blob.delete)
            for export_id in await exports_repo.expired_files(self.pool, ws, exports_s):
                exports += await exports_repo.expire_file(
                    self.pool, ws, export_id, self.blob.delete
                )
            activity.heartbeat(uploads, exports)
        return ExpireFilesResult(
            workspaces=len(workspaces), upload_files_deleted=uploads, export_files_deleted=exports
        )

    ACTIVITIES = (expire_files,)
