"""Retention on real servers: files past UPLOAD_RETENTION_HOURS / EXPORT_RETENTION_HOURS
are deleted by expire-files (directory store and S3); the records, counts and error
samples stay."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.client import Client

from folksjobs.confirm import start_export
from folksjobs.models import WF_EXPIRE_FILES, ExpireFilesInput, ExpireFilesResult
from folksjobs.settings import Settings
from tests.cli import settings_env, starter
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import new_bucket_settings
from tests.importing import csv_bytes, import_bytes, upload

CSV = csv_bytes([["email"], ["ann@example.com"], ["not an address"], ["bob@example.com"]])
# 1.8 s: short enough to wait out.
HOURS = 0.0005


async def _expire(client: Client, task_queue: str, inp: ExpireFilesInput) -> ExpireFilesResult:
    return await client.execute_workflow(
        WF_EXPIRE_FILES,
        inp,
        id=f"expire-files-test-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ExpireFilesResult,
    )


@pytest.mark.parametrize("backend", ["directory", "s3"])
async def test_files_go_after_their_retention_and_the_records_stay(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str,
    backend: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    short = {
        "temporal_task_queue": task_queue,
        "upload_retention_hours": HOURS,
        "export_retention_hours": HOURS,
        "s3_presign_seconds": 1,
    }
    if backend == "s3":
        base = await new_bucket_settings(stack, request.getfixturevalue("moto_s3"))
        settings = Settings(**{**base.model_dump(), **short})
    else:
        settings = make_settings(stack, **short)
    async with running_worker(client, settings, task_queue) as services:
        done, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, CSV
        )
        export_id, started = await start_export(
            client, services.pool, settings, tenant.workspace_id, None, []
        )
        await client.get_workflow_handle(started.workflow_id).result()
        pending = await upload(services, settings, tenant.workspace_id, tenant.user_id, CSV)
        export_key = await owner_pool.fetchval(
            "SELECT blob_key FROM exports WHERE id = $1", uuid.UUID(export_id)
        )
        keys = [done.blob_key, export_key, pending.blob_key]
        assert [await services.blob.size(k) is not None for k in keys] == [True] * 3
        # Younger than an hour: kept. (The sweep covers every workspace of the suite's
        # database, which may take longer than the short setting: the first one is told.)
        await _expire(client, task_queue, ExpireFilesInput(
            upload_retention_seconds=3600, export_retention_seconds=3600))  # fmt: skip
        assert [await services.blob.size(k) is not None for k in keys] == [True] * 3
        await asyncio.sleep(HOURS * 3600 + 0.5)
        swept = await _expire(client, task_queue, ExpireFilesInput())  # the settings
        stored = [await services.blob.size(k) is not None for k in keys]
    assert swept.upload_files_deleted >= 1 and swept.export_files_deleted >= 1
    # The ended import's and the export's files are gone; a pending upload is not theirs
    # to take (PENDING_UPLOAD_TTL_SECONDS is).
    assert stored == [False, False, True]
    imp = await owner_pool.fetchrow(
        "SELECT status, inserted_rows, failed_rows, error_samples, file_deleted_at"
        " FROM imports WHERE id = $1",
        uuid.UUID(done.import_id),
    )
    assert imp is not None and result["status"] == imp["status"] == "completed"
    assert (imp["inserted_rows"], imp["failed_rows"]) == (2, 1)
    assert imp["error_samples"] and imp["file_deleted_at"] is not None
    exp = await owner_pool.fetchrow(
        "SELECT status, row_count, blob_key, file_deleted_at FROM exports WHERE id = $1",
        uuid.UUID(export_id),
    )
    assert exp is not None and (exp["status"], exp["row_count"]) == ("completed", 2)
    assert exp["blob_key"] == export_key and exp["file_deleted_at"] is not None


def test_export_retention_never_shorter_than_the_link() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, export_retention_hours=0.5)  # type: ignore[call-arg]
    assert (
        "EXPORT_RETENTION_HOURS=0.5 is shorter than the download link's lifetime"
        " (S3_PRESIGN_SECONDS=3600): a link would outlive its file"
    ) in str(info.value)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.upload_retention_hours, defaults.export_retention_hours) == (24, 72)


async def test_the_sweep_schedule_is_applied_once(client: Client, stack: Stack) -> None:
    sid = f"expire-files-{uuid.uuid4().hex[:8]}"
    settings = make_settings(stack)
    env = settings_env(settings, EXPIRE_FILES_SCHEDULE_ID=sid)
    apply = ("schedule", "--schedule-id", sid, "apply", "--json")
    first, again = [await asyncio.to_thread(starter, settings, *apply, env=env) for _ in (1, 2)]
    show = await asyncio.to_thread(
        starter, settings, "schedule", "--schedule-id", sid, "show", "--json", env=env
    )
    await client.get_schedule_handle(sid).delete()
    assert [json.loads(p.stdout)["outcome"] for p in (first, again)] == ["created", "unchanged"]
    shown = json.loads(show.stdout)
    assert (shown["workflow_type"], shown["calendars"]) == ("ExpireFiles", ["45 * * * *"])
