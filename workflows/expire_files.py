"""expire-files (Schedule `45 * * * *` UTC, EXPIRE_FILES_CRON; retries 2 => at most 3
attempts).

| step         | what it does                                                          |
|--------------|-----------------------------------------------------------------------|
| expire-files | deletes each upload UPLOAD_RETENTION_HOURS (24 h) after its import     |
|              | ended and each export file EXPORT_RETENTION_HOURS (72 h) after it was  |
|              | written; the records, counts and error samples stay, with the time the |
|              | file went (a download then answers 410)                                |
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from folksjobs.catalog import job_by_workflow
    from folksjobs.models import WF_EXPIRE_FILES, ExpireFilesInput, ExpireFilesResult

# The next hourly run tries again anyway.
RETRY = RetryPolicy(maximum_attempts=job_by_workflow(WF_EXPIRE_FILES).attempts)


@workflow.defn(name=WF_EXPIRE_FILES)
class ExpireFiles:
    @workflow.run
    async def run(self, inp: ExpireFilesInput) -> ExpireFilesResult:
        return await workflow.execute_activity_method(
            RetentionActivities.expire_files,
            inp,
            start_to_close_timeout=timedelta(minutes=30),
            # It heartbeats after each workspace: a dead worker is noticed in a minute.
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
        )
