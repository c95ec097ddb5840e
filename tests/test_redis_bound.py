"""Redis bounded by design (issue 27, item 4): download-and-chunk keeps at most
IMPORT_PARALLEL_CHUNKS + IMPORT_CHUNK_LEAD chunks of an import in Redis, and a Redis full
at `maxmemory` with `noeviction` fails an import clearly, never inexactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from temporalio.client import Client, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.devtools.devstack import EmbeddedValkey
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import contacts, csv_bytes, import_row, upload

ROWS = 3_000  # 30 chunks of 100 rows
DATA = csv_bytes([["email", "first_name"]] + [[f"b{i}@example.com", f"B{i}"] for i in range(ROWS)])


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedValkey]:
    """A Valkey of this test's own: its memory limit must not touch the session's."""
    vk = EmbeddedValkey(tmp_path / "valkey")
    vk.start(persist=False)
    try:
        yield vk
    finally:
        vk.stop()


def _settings(stack: Stack, task_queue: str, redis_url: str, lead: int) -> Settings:
    return make_settings(
        stack,
        temporal_task_queue=task_queue,
        redis_url=redis_url,
        import_chunk_rows=100,
        import_sub_batch_rows=50,
        import_parallel_chunks=1,
        import_chunk_lead=lead,
        import_inline_max_rows=0,
    )


async def _held_chunks(redis: Redis, import_id: str, stop: asyncio.Event) -> int:
    """The most chunk keys of the import seen in Redis at once."""
    most = 0
    while not stop.is_set():
        most = max(most, len(await redis.keys(f"import:{import_id}:chunk:*")))
        await asyncio.sleep(0.002)
    return most


async def _import(
    client: Client, settings: Settings, t: Tenant, watch: bool = False
) -> tuple[str, Any, int]:
    async with running_worker(client, settings, settings.temporal_task_queue) as services:
        up = await upload(services, settings, t.workspace_id, t.user_id, DATA)
        stop = asyncio.Event()
        watcher = asyncio.create_task(_held_chunks(services.redis, up.import_id, stop))
        try:
            handle = await confirm_import(
                client, services.pool, settings, t.workspace_id, up.import_id
            )
            try:
                result: Any = await handle.result()
            except WorkflowFailureError as e:
                result = e
        finally:
            stop.set()
        return up.import_id, result, await watcher


@pytest.mark.parametrize(("lead", "bounded"), [(1, True), (1000, False)])
async def test_the_chunker_stays_within_its_lead(
    stack: Stack, migrated: str, client: Client, tenant: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str, own_redis: EmbeddedValkey, lead: int, bounded: bool,
) -> None:  # fmt: skip
    """One chunk processed at a time, a lead of 1: never more than 2 chunks in Redis. A
    lead of 1000 (no bound) is the control: there the chunker runs ahead."""
    settings = _settings(stack, task_queue, own_redis.url, lead)
    _, result, most = await _import(client, settings, tenant)
    assert (result["total_rows"], result["inserted"]) == (ROWS, ROWS)
    assert len(await contacts(owner_pool, tenant.workspace_id)) == ROWS
    if bounded:
        assert 1 <= most <= 2
    else:
        assert most > 2  # the control: the watcher does see a chunker running ahead


async def test_redis_at_maxmemory_fails_the_import_clearly(
    stack: Stack, migrated: str, client: Client, tenant: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str, own_redis: EmbeddedValkey,
) -> None:  # fmt: skip
    settings = _settings(stack, task_queue, own_redis.url, 1)
    redis = Redis.from_url(own_redis.url)
    try:
        used = int((await redis.info("memory"))["used_memory"])
        # Room for the upload's bookkeeping, none for an import's chunks and claims.
        await redis.config_set("maxmemory", used + 64 * 1024)
        await redis.config_set("maxmemory-policy", "noeviction")
        import_id, result, _ = await _import(client, settings, tenant)
    finally:
        await redis.aclose()
    assert isinstance(result, WorkflowFailureError)
    rec = await import_row(owner_pool, import_id)
    assert rec["status"] == "failed"
    assert "maxmemory" in rec["error_log"]["message"], rec["error_log"]
    # What was committed before Redis filled up stays, and is no more than the file's.
    assert len(await contacts(owner_pool, tenant.workspace_id)) <= ROWS
