"""The change policy (docs/deploys.md), proven once: a deploy in the middle of an import.

An import starts on the code before the `chunks-as-slots-free` change, its worker stops
mid-import, and a worker on today's code finishes it: the run in flight replays and keeps
the old path, the runs after it take the new one, and the result equals a clean run's.
Two activity changes ride along: the old code's dedup hash is kept to the import's end,
and the bounded chunker is not held by the whole file the old code chunked at once.
The corpus's histories recorded before the change replay too (tests/test_replay.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from folksjobs.confirm import confirm_import
from folksjobs.imports import dedup, lifecycle
from folksjobs.infra import rediskeys
from folksjobs.models import import_workflow_id
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.histories.record import runs
from tests.importing import contacts, csv_bytes, upload
from workflows.import_chunks import CHUNKS_AS_SLOTS_FREE

ROWS = [
    ["email", "first_name"],
    *[[f"u{i % 70}@example.com", f"U{i}"] for i in range(80)],  # 10 repeated addresses
    ["not-an-email", "X"],
]
COUNTS = ("total_rows", "inserted", "updated", "failed", "duplicates")


def patched_runs(histories: list[WorkflowHistory]) -> list[bool]:
    """Per run: did it take the patched branch (its history holds the patch's marker)."""
    return [
        any(
            e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and CHUNKS_AS_SLOTS_FREE.encode() in e.SerializeToString()
            for e in h.events
        )
        for h in histories
    ]


async def old_claims(
    cls: type[dedup.Claims], redis: Redis, import_id: str, total_rows: int
) -> dedup.Claims:
    return cls(redis, import_id, None, await redis.hexists(rediskeys.seen_emails(import_id), "_"))


def spied(
    open_claims: Callable[[Redis, str, int], Awaitable[dedup.Claims]], opened: list[dedup.Claims]
) -> Callable[..., Awaitable[dedup.Claims]]:
    async def open_and_note(
        cls: type[dedup.Claims], redis: Redis, import_id: str, total_rows: int
    ) -> dedup.Claims:
        opened.append(claims := await open_claims(redis, import_id, total_rows))
        return claims

    return open_and_note


def chunker_retries(histories: list[WorkflowHistory]) -> list[str]:
    """Why each retried download-and-chunk attempt failed."""
    out = []
    for h in histories:
        scheduled: dict[int, str] = {}
        for e in h.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[e.event_id] = name
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                a = e.activity_task_started_event_attributes
                if scheduled.get(a.scheduled_event_id) == "download-and-chunk" and a.attempt > 1:
                    out.append(a.last_failure.message)
    return out


async def run_import(
    client: Client, settings: Any, tenant: Tenant, task_queue: str
) -> dict[str, Any]:
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(ROWS))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    return result


async def test_import_started_on_the_old_code_finishes_on_the_new(
    client: Client,
    stack: Stack,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 81 one-row chunks, 30 a run: three runs; one second of drain when the worker stops.
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        import_chunk_rows=1,
        import_parallel_chunks=2,
        import_chunks_per_run=30,
        worker_graceful_shutdown_seconds=1,
    )
    # The code before the change is today's with the patch never taken: the old branch is
    # that code unchanged, and no marker is written, exactly as before the change.
    with monkeypatch.context() as old_code:
        old_code.setattr(workflow, "patched", lambda patch_id: False)
        # Its cross-chunk claim: the one hash (dedup.Claims with no bucket bits).
        old_code.setattr(dedup.Claims, "open", classmethod(old_claims))
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(
                services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(ROWS)
            )
            # That code's confirm moved the record itself (its first step only read it).
            await lifecycle.claim(
                services.pool,
                tenant.workspace_id,
                up.import_id,
                tenant.user_id,
                import_workflow_id(up.import_id),
            )
            handle = await confirm_import(
                client, services.pool, settings, tenant.workspace_id, up.import_id
            )
            while True:
                stopped_at = (await handle.query("progress"))["chunks_done"]
                if stopped_at >= 3:
                    break
                await asyncio.sleep(0.02)
        # The old worker is gone (its in-flight chunks handed back); the import waits.
    opened: list[dedup.Claims] = []
    monkeypatch.setattr(dedup.Claims, "open", classmethod(spied(dedup.Claims.open, opened)))
    async with running_worker(client, settings, task_queue):
        upgraded: dict[str, Any] = await handle.result()  # type: ignore[assignment]
        histories = await runs(client, handle.id)
    assert stopped_at < 30, "the old worker was to stop inside the first run"
    # The run in flight kept the old path on replay; the runs after it took the new one.
    assert patched_runs(histories) == [False, True, True]
    # The old code chunked the whole file in its first run; the bounded chunker of the
    # runs after it stored its range again beside those chunks, never held by a chunk
    # already processed from the old copy (it would wait out CHUNK_WAIT_SECONDS, 120 s).
    assert not [m for m in chunker_retries(histories) if "waiting in Redis" in m]
    # The old code's dedup hash was kept to the end by the new code's chunker.
    assert opened and all(c.bits is None for c in opened)

    other = Tenant(tenant.user_id, await new_workspace(owner_pool, tenant.user_id), tenant.email)
    clean = await run_import(client, settings, other, task_queue)
    assert {k: upgraded[k] for k in COUNTS} == {k: clean[k] for k in COUNTS}
    assert (upgraded["inserted"], upgraded["duplicates"], upgraded["failed"]) == (70, 10, 1)

    def rows(c: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {email: r["first_name"] for email, r in c.items()}

    assert rows(await contacts(owner_pool, tenant.workspace_id)) == rows(
        await contacts(owner_pool, other.workspace_id)
    )


async def new_workspace(owner: asyncpg.Pool, user_id: str) -> str:
    from folksjobs.devtools import seed

    return await seed.create_workspace(owner, user_id, "Clean run")
