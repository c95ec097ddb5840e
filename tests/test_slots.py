"""Worker slots never starve: many imports at once on a worker with few activity slots."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from temporalio.client import Client

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from tests.conftest import Stack, make_settings, running_worker
from tests.importing import contacts, csv_bytes, upload

IMPORTS = 20
ROWS = 40  # 8 chunks of 5 rows each
SLOTS = 4


def _file(n: int) -> tuple[bytes, int]:
    """ROWS rows: every 7th an invalid email, every 5th a repeat of an earlier one.
    Returns the CSV and its distinct valid emails."""
    rows, valid = [["email", "first_name"]], set()
    for i in range(ROWS):
        if i % 7 == 3:
            email = f"broken-{n}-{i}"
        elif i % 5 == 4:
            email = f"c{i - 2}@w{n}.example.com"
        else:
            email = f"c{i}@w{n}.example.com"
        rows.append([email, f"row {i}"])
        if "@" in email:
            valid.add(email)
    return csv_bytes(rows), len(valid)


# The activities that wait for each other: process-batch for the chunks download-and-chunk
# writes. A retried attempt of one of them means a wait ran out.
WAITING_PAIR = {"process-batch", "download-and-chunk"}


def _failures(history: Any) -> list[str]:
    """Activities that failed or timed out for good, retried attempts of the waiting pair,
    and download-and-chunk re-runs (a chunk declared lost after waiting is rebuilt)."""
    out, chunkings, names = [], 0, {}
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            names[e.event_id] = name
            chunkings += name == "download-and-chunk"
        started = e.activity_task_started_event_attributes
        if e.HasField("activity_task_started_event_attributes") and started.attempt != 1:
            name = names[started.scheduled_event_id]
            # The others (fetch-import, finalize, request-slot) wait for nothing, so their
            # retries are no starvation: on a machine at load 7, 2 of 17 runs had one (a
            # fetch-import past its 30 s start-to-close), which its retry policy absorbed.
            if name in WAITING_PAIR:
                out.append(f"{name} attempt {started.attempt}: {started.last_failure.message}")
        if e.HasField("activity_task_timed_out_event_attributes"):
            out.append("timed out")
        if e.HasField("activity_task_failed_event_attributes"):
            out.append(e.activity_task_failed_event_attributes.failure.message)
    if chunkings != 1:
        out.append(f"download-and-chunk scheduled {chunkings} times")
    return out


async def test_few_slots_many_imports_all_complete_exactly(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        worker_max_concurrent_activities=SLOTS,
        import_chunk_rows=5,
        import_sub_batch_rows=5,
        import_parallel_chunks=4,
        # A starved process-batch gives up after this long without chunking progress:
        # short, so starvation shows as a failure here rather than a slow test.
        chunk_wait_seconds=15.0,
    )
    async with running_worker(client, settings, task_queue) as services:
        tenants, expected, uploads = [], [], []
        for n in range(IMPORTS):
            uid = await seed.create_user(owner_pool, f"slots-{task_queue}-{n}@example.com", "T")
            wid = await seed.create_workspace(owner_pool, uid, f"slots {n}")
            data, distinct = _file(n)
            tenants.append(wid)
            expected.append(distinct)
            uploads.append(await upload(services, settings, wid, uid, data))
        # Confirmed together, so all 20 compete for the 4 slots from the start.
        handles = await asyncio.gather(
            *(
                confirm_import(client, services.pool, settings, wid, up.import_id)
                for wid, up in zip(tenants, uploads, strict=True)
            )
        )
        results: list[dict[str, Any]] = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)),  # type: ignore[arg-type]
            timeout=240,
        )
        histories = [await h.fetch_history() for h in handles]
    for wid, distinct, result, history in zip(tenants, expected, results, histories, strict=True):
        assert result["status"] == "completed"
        parts = result["inserted"] + result["updated"] + result["failed"] + result["duplicates"]
        assert result["total_rows"] == parts == ROWS
        assert result["inserted"] == distinct
        assert len(await contacts(owner_pool, wid)) == distinct
        assert _failures(history) == []
