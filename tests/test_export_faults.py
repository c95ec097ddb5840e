"""process-export under faults: a worker killed mid-stream, a cancel, a PostgreSQL crash."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.worker import Worker

from activities.exports import ExportActivities
from folksjobs import errors
from folksjobs.exports import repo as exports
from folksjobs.infra import db
from folksjobs.infra.blob import S3BlobStore, build_blob_store, export_key
from folksjobs.services import open_services
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import (
    ROOT,
    contact,
    new_bucket_settings,
    outbox,
    parse,
    run_export,
    seed_contacts,
    start_export,
    starter,
)
from workflows.export_csv import ProcessExport

# --- a worker killed in the middle of stream-export ------------------------------------


async def unfinished_uploads(settings: Settings, key: str) -> int:
    """What a dead writer left: temp files (directory) or open multipart uploads (S3)."""
    store = build_blob_store(settings)
    try:
        if isinstance(store, S3BlobStore):
            s3 = await store.client()
            resp = await s3.list_multipart_uploads(
                Bucket=store.bucket, Prefix=store.uri(key)[len(f"s3://{store.bucket}/") :]
            )
            return len(resp.get("Uploads", []))
        final = store.local_path(key)
        assert final is not None
        return len(list(final.parent.glob(f".{final.name}.*.part")))
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["directory", "s3"])
async def test_worker_killed_mid_stream_still_yields_complete_file(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    n = 600
    # Padded rows, so the COPY stream comes in many chunks and the kill lands mid-file;
    # through S3 padded further, so the dead attempt has uploaded a 5 MB part.
    pad = "p" * (20_000 if backend == "s3" else 2_000)
    ids = await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [contact(f"k{i:04d}@example.com", custom_fields={"i": i, "pad": pad}) for i in range(n)],
    )
    if backend == "s3":
        base = await new_bucket_settings(stack, request.getfixturevalue("moto_s3"))
    else:
        base = make_settings(stack)
    settings = base
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "BLOB_URL": settings.blob_url,
        "OUTBOX_DIR": str(settings.outbox_dir),
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
        "S3_MULTIPART_PART_BYTES": str(settings.s3_multipart_part_bytes),
        "CRASH_AFTER_ROWS": "300",
    }
    app_pool = await db.create_pool(settings.database_url or "", max_size=2)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "tests" / "export_crash_worker.py"),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        handle = await start_export(
            client, app_pool, task_queue, tenant.workspace_id, heartbeat=2.0
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        await app_pool.close()
    assert proc.returncode == -9, out.decode()
    killed_at = int(out.split(b"killing the worker after ")[1].split()[0])
    assert 300 <= killed_at < n, out.decode()
    key = export_key(tenant.workspace_id, handle.id.removeprefix("export-"))
    # The dead attempt left an unfinished upload, never a published (truncated) export.
    assert await unfinished_uploads(settings, key) == 1

    async with running_worker(client, settings, task_queue) as services:
        assert await services.blob.size(key) is None
        result = await handle.result()
        data = b"".join([c async for c in services.blob.read(key)])
    # The retry cleared the dead attempt's leftovers and wrote the whole file once.
    assert await unfinished_uploads(settings, key) == 0
    _, rows = parse(data)
    assert [r["email"] for r in rows] == sorted(ids)
    assert [int(r["i"]) for r in rows] == list(range(n))
    assert all(r["pad"] == pad for r in rows)
    assert result["row_count"] == n
    history = await handle.fetch_history()
    stream_attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert max(stream_attempts) == 2
    [msg] = outbox(settings.outbox_dir)
    assert msg["To"] == tenant.email


# --- cancel -----------------------------------------------------------------------------


class HoldingExportActivities(ExportActivities):
    """stream-export stops after its first chunk, heartbeating, until it is cancelled."""

    reached: asyncio.Event

    async def after_chunk(self, rows: int) -> None:
        self.reached.set()
        while True:
            activity.heartbeat({"held_at_rows": rows})
            await asyncio.sleep(0.1)


async def test_cancel_mid_stream_publishes_nothing(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    await seed_contacts(
        owner_pool, tenant.workspace_id, [contact(f"c{i}@example.com") for i in range(20)]
    )
    settings = make_settings(stack)
    async with open_services(settings, pool_size=4) as s:
        a = HoldingExportActivities(s.pool, s.blob, s.email, s.settings)
        a.reached = asyncio.Event()
        activities: list[Callable[..., Any]] = [
            a.resolve_tag_filter,
            a.upload_empty,
            a.resolve_export_metadata,
            a.stream_export,
            a.send_notification,
            a.mark_failed,
        ]
        async with Worker(
            client, task_queue=task_queue, workflows=[ProcessExport], activities=activities
        ):
            handle = await start_export(
                client, s.pool, task_queue, tenant.workspace_id, heartbeat=2.0
            )
            await asyncio.wait_for(a.reached.wait(), timeout=120)
            export_id = handle.id.removeprefix("export-")
            out = await asyncio.to_thread(
                starter, settings, task_queue, "export", "cancel", export_id, "--json"
            )
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["cancel_requested"] is True
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            desc = await handle.describe()
    assert "cancel" in errors.root_message(info.value).lower()
    assert desc.status == WorkflowExecutionStatus.CANCELED
    record = await exports.get_export(owner_pool, export_id)
    assert record["status"] == "cancelled"
    assert record["error_log"]["error"] == "cancelled by request"
    final = Path(settings.blob_url) / export_key(tenant.workspace_id, export_id)
    assert not final.exists()
    assert not list(final.parent.glob(f".{final.name}.*.part"))
    assert outbox(settings.outbox_dir) == []
    attrs = {p.key.name: p.value for p in desc.typed_search_attributes}
    assert attrs["JobStatus"] == "cancelled"


async def test_postgres_crash_mid_export_still_yields_complete_file(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL stops (immediate mode: a crash) and comes back while the file streams."""
    pg = stack.postgres
    if pg is None:
        pytest.skip("needs the embedded PostgreSQL, which the test restarts")
    n = 2000
    # ~2 KB rows: the COPY stream comes in many chunks, so the crash lands mid-file.
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [contact(f"r{i:05d}@example.com", custom_fields={"pad": "p" * 2000}) for i in range(n)],
    )
    settings = make_settings(stack)
    crashed: list[int] = []
    original = ExportActivities.after_chunk

    async def crash_once(self: ExportActivities, rows: int) -> None:
        if rows >= 500 and not crashed:
            crashed.append(rows)
            await asyncio.to_thread(pg.stop, "immediate")
            await asyncio.to_thread(pg.start)
        await original(self, rows)

    monkeypatch.setattr(ExportActivities, "after_chunk", crash_once)
    try:
        result, record, data = await run_export(client, settings, task_queue, tenant.workspace_id)
    finally:
        # The session's pool held connections to the crashed server: open new ones.
        await owner_pool.expire_connections()
    assert len(crashed) == 1 and 500 <= crashed[0] < n
    _, rows = parse(data)
    assert sorted(r["email"] for r in rows) == [f"r{i:05d}@example.com" for i in range(n)]
    assert (result["row_count"], record["status"], record["row_count"]) == (n, "completed", n)
