"""discard-stale-uploads (Schedule `15 * * * *` UTC, DISCARD_UPLOADS_CRON; retries 2 => at
most 3 attempts).

| step                  | what it does                                                  |
|-----------------------|---------------------------------------------------------------|
| discard-stale-uploads | deletes every pending import older than                       |
|                       | PENDING_UPLOAD_TTL_SECONDS (24 h) with its file in the blob    |
|                       | store; an import confirmed meanwhile is no longer pending      |
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.uploads import UploadActivities
    from folksjobs.catalog import job_by_workflow
    from folksjobs.models import (
        WF_DISCARD_STALE_UPLOADS,
        DiscardStaleUploadsInput,
        DiscardStaleUploadsResult,
    )

# The next hourly run tries again anyway.
RETRY = RetryPolicy(maximum_attempts=job_by_workflow(WF_DISCARD_STALE_UPLOADS).attempts)


@workflow.defn(name=WF_DISCARD_STALE_UPLOADS)
class DiscardStaleUploads:
    @workflow.run
    async def run(self, inp: DiscardStaleUploadsInput) -> DiscardStaleUploadsResult:
        return await workflow.execute_activity_method(
            UploadActivities.discard_stale_uploads,
            inp,
            start_to_close_timeout=timedelta(minutes=30),
            # It heartbeats after each workspace: a dead worker is noticed in a minute.
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
        )
