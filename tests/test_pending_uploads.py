"""Pending uploads are first-class: printed, confirmed or discarded by id, swept when stale."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from folksjobs.infra.blob import build_blob_store
from folksjobs.models import (
    WF_DISCARD_STALE_UPLOADS,
    DiscardStaleUploadsInput,
    DiscardStaleUploadsResult,
)
from folksjobs.settings import Settings
from tests.cli import starter
from tests.conftest import Tenant, running_worker
from tests.importing import upload

CSV = b"E-mail,Given name\nann@example.com,Ann\nbob@example.com,Bob\n"


async def _record(owner: asyncpg.Pool, import_id: str) -> asyncpg.Record | None:
    return await owner.fetchrow(
        "SELECT status, blob_key, column_mapping, inserted_rows FROM imports WHERE id = $1",
        uuid.UUID(import_id),
    )


async def _blob_exists(settings: Settings, key: str) -> bool:
    path = build_blob_store(settings).local_path(key)
    assert path is not None
    return path.exists()


async def test_upload_without_terminal_stays_pending_then_confirm_or_discard(
    client: Client, settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str, tmp_path: Path,
) -> None:  # fmt: skip
    settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    csv_file = tmp_path / "people.csv"
    csv_file.write_bytes(CSV)
    ws = ("--workspace", tenant.workspace_id)

    # No terminal, no --yes: the id and the two ways on, exit 1, the upload kept.
    text = await asyncio.to_thread(starter, settings, "import", str(csv_file), *ws)
    assert text.returncode == 1, text.stderr
    assert "is pending (no terminal to ask and no --yes)" in text.stdout
    line = next(x for x in text.stdout.splitlines() if x.startswith("import "))
    import_id = line.split()[1]
    assert f"python -m starter import confirm {import_id}" in text.stdout
    assert f"python -m starter import discard {import_id}" in text.stdout
    rec = await _record(owner_pool, import_id)
    assert rec is not None and rec["status"] == "pending"

    proc = await asyncio.to_thread(starter, settings, "import", str(csv_file), *ws, "--json")
    assert proc.returncode == 1, proc.stderr
    pending = json.loads(proc.stdout)
    assert pending["status"] == "pending" and pending["total_rows"] == 2
    second = pending["import_id"]

    # Discard: record and file gone; a second discard names the import as unknown.
    key = (await _record(owner_pool, second))["blob_key"]  # type: ignore[index]
    assert await _blob_exists(settings, key)
    proc = await asyncio.to_thread(starter, settings, "import", "discard", second, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"import_id": second, "status": "discarded"}
    assert await _record(owner_pool, second) is None
    assert not await _blob_exists(settings, key)
    proc = await asyncio.to_thread(starter, settings, "import", "discard", second)
    assert (proc.returncode, proc.stderr) == (2, f"error: import {second} not found\n")

    # Confirm with a mapping change, by id alone: it runs to completion.
    async with running_worker(client, settings, task_queue):
        proc = await asyncio.to_thread(
            starter, settings, "import", "confirm", import_id, "--map", "Given name=skip", "--json"
        )
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert (done["status"], done["inserted"]) == ("completed", 2)
    rec = await _record(owner_pool, import_id)
    assert rec is not None and rec["status"] == "completed"
    assert list(rec["column_mapping"]) == ["email", ""]  # skipped, though it suggested first_name
    # Confirming again is refused with the state it is in.
    proc = await asyncio.to_thread(starter, settings, "import", "confirm", import_id)
    assert proc.returncode == 2
    assert f"import {import_id} is completed, not pending" in proc.stderr


async def test_stale_pending_uploads_are_discarded_with_their_files(
    client: Client, settings: Settings, tenant: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str,
) -> None:  # fmt: skip
    async with running_worker(client, settings, task_queue) as services:
        old = await upload(services, settings, tenant.workspace_id, tenant.user_id, CSV)
        fresh = await upload(services, settings, tenant.workspace_id, tenant.user_id, CSV)
        await owner_pool.execute(
            "UPDATE imports SET created_at = now() - interval '25 hours' WHERE id = $1",
            uuid.UUID(old.import_id),
        )
        result = await client.execute_workflow(
            WF_DISCARD_STALE_UPLOADS,
            DiscardStaleUploadsInput(),  # PENDING_UPLOAD_TTL_SECONDS: 24 h
            id=f"discard-test-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=DiscardStaleUploadsResult,
        )
    assert result.discarded >= 1
    assert await _record(owner_pool, old.import_id) is None
    assert not await _blob_exists(settings, old.blob_key)
    kept = await _record(owner_pool, fresh.import_id)
    assert kept is not None and kept["status"] == "pending"
    assert await _blob_exists(settings, fresh.blob_key)
