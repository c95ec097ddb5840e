"""A real worker process that kills itself (SIGKILL) in the middle of delete-workspace-rows.

Run by tests/test_deletion.py with the stack in its environment (DATABASE_URL, REDIS_URL,
TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, BLOB_URL, DELETION_BATCH_ROWS) and CRASH_AFTER_BATCHES:
on the first attempt, after that many committed batches of contacts, the process dies
without any cleanup, as a worker on a lost machine would.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from activities.deletion import DeletionActivities
from folksjobs.infra.temporal import connect
from folksjobs.services import open_services
from folksjobs.settings import Settings
from workflows.delete_workspace import DeleteWorkspace

CRASH_AFTER_BATCHES = int(os.environ["CRASH_AFTER_BATCHES"])


class CrashingDeletionActivities(DeletionActivities):
    batches = 0

    async def after_batch(self, table: str, deleted: int) -> None:
        if table == "contacts" and activity.info().attempt == 1:
            self.batches += 1
            if self.batches >= CRASH_AFTER_BATCHES:
                print(f"killing the worker after {self.batches} batches", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    client = await connect(settings)
    async with open_services(settings, pool_size=4) as s:
        a = CrashingDeletionActivities(s.pool, s.blob, s.settings)
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[DeleteWorkspace],
            activities=a.activities(),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )
        print("worker ready", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
