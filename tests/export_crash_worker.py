"""A real worker process that kills itself (SIGKILL) in the middle of stream-export.

Run by tests/test_export_faults.py with the stack in its environment (DATABASE_URL, REDIS_URL,
TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, BLOB_URL) and CRASH_AFTER_ROWS: on the first
attempt, after the first chunk that brings the rows written to the unpublished file to
that many, the process dies without any cleanup, as a worker on a lost machine would.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from activities.exports import ExportActivities
from folksjobs.infra.temporal import connect
from folksjobs.services import open_services
from folksjobs.settings import Settings
from workflows.export_csv import ProcessExport

CRASH_AFTER_ROWS = int(os.environ["CRASH_AFTER_ROWS"])


class CrashingExportActivities(ExportActivities):
    async def after_chunk(self, rows: int) -> None:
        if activity.info().attempt == 1 and rows >= CRASH_AFTER_ROWS:
            print(f"killing the worker after {rows} rows", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    client = await connect(settings)
    async with open_services(settings, pool_size=4) as s:
        a = CrashingExportActivities(s.pool, s.blob, s.email, s.settings)
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[ProcessExport],
            activities=a.activities(),
            # The workflow's next task waits this long on the dead worker's sticky queue
            # before it goes to the shared one (the default 10 s only slows the test).
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
