"""What an operator sees without a click: a running import's summary and current details
in the Temporal UI, and the CLI's progress while download-and-chunk runs.

The real worker runs, with download-and-chunk and process-batch held at chosen points
so the running states can be looked at without a race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.gate import GateActivities
from activities.imports import ImportActivities
from folksjobs.confirm import confirm_import
from folksjobs.models import (
    ChunkJob,
    ChunkPlan,
    ChunkPlanResult,
    ChunkResult,
    chunking_task_queue,
)
from folksjobs.services import open_services
from starter.imports import chunking_progress
from tests.conftest import Stack, Tenant, make_settings
from tests.importing import csv_bytes, upload
from workflows.gate import IMPORT_GATE, SlotGate
from workflows.import_csv import ProcessCsv


async def _until(probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool]) -> Any:
    value = None
    for _ in range(200):
        value = await probe()
        if ok(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached; last seen {value!r}")


async def _details(handle: WorkflowHandle[Any, Any]) -> str:
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def test_running_import_shows_its_progress(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, import_chunk_rows=10, import_parallel_chunks=1,
                             temporal_task_queue=task_queue)  # fmt: skip
    chunking_may_start, chunk_two_may_run = asyncio.Event(), asyncio.Event()
    data = csv_bytes([["email"], *[[f"p{i}@example.com"] for i in range(30)]])
    async with open_services(settings, pool_size=5) as s:
        real = ImportActivities(s.pool, s.redis, s.blob, s.gravatar, s.ai, s.email, settings)

        @activity.defn(name="download-and-chunk")
        async def held_chunking(plan: ChunkPlan) -> ChunkPlanResult:
            await chunking_may_start.wait()
            return await real.download_and_chunk(plan)

        @activity.defn(name="process-batch")
        async def held_batch(job: ChunkJob) -> ChunkResult:
            if job.chunk_index >= 1:
                await chunk_two_may_run.wait()
            return await real.process_batch(job)

        gate = GateActivities({IMPORT_GATE: 5})
        activities: list[Callable[..., Any]] = [
            real.claim_import, held_batch, real.find_missing_chunks,
            real.finalize, real.send_import_emails, real.mark_failed, gate.request_slot,
            gate.find_closed_holders,
            gate.request_slot_now, gate.release_slot, real.import_small,
        ]  # fmt: skip
        async with (
            Worker(client, task_queue=task_queue, workflows=[ProcessCsv, SlotGate],
                   activities=activities),
            # download-and-chunk has its own queue (worker.build_chunk_workers): the small
            # one, for a file of 3 chunks.
            Worker(client, task_queue=chunking_task_queue(task_queue, small=True),
                   activities=[held_chunking]),
        ):  # fmt: skip
            up = await upload(s, settings, tenant.workspace_id, tenant.user_id, data,
                              name="people.csv")  # fmt: skip
            handle = await confirm_import(client, s.pool, settings, tenant.workspace_id,
                                          up.import_id)  # fmt: skip
            desc = await handle.describe()
            assert await desc.static_summary() == (
                f"CSV import {up.import_id} (30 rows) into workspace {tenant.workspace_id}"
            )
            # Chunking has not written a chunk: that is the stage, with its own count.
            progress = await _until(lambda: handle.query("progress"),
                                    lambda p: p["stage"] == "download-and-chunk")  # fmt: skip
            assert progress["chunks_done"] == 0
            assert await chunking_progress(client, handle.id) == 0
            chunking_may_start.set()
            # The first chunk done, the second held: the details line says so.
            details = await _until(lambda: _details(handle), lambda d: "chunk 1/3" in d)
            assert details == "process-batch · chunk 1/3 · 10 / 30 rows · 0 failed"
            assert await chunking_progress(client, handle.id) is None  # chunking is over
            chunk_two_may_run.set()
            result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    assert result["status"] == "completed" and result["inserted"] == 30
