"""process-export from outside: the starter CLI, and a round trip (export a workspace,
import the file into a new one, and into itself)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import (
    Client,
)

from folksjobs.devtools import seed
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import (
    contact,
    run_export,
    seed_contacts,
    starter,
)

# --- the starter ----------------------------------------------------------------------


async def test_starter_export_and_status(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [contact(f"s{i}@example.com", tags=["vip"] if i % 2 else []) for i in range(6)],
    )
    settings = make_settings(stack)
    ws = tenant.workspace_id
    async with running_worker(client, settings, task_queue):
        done = await asyncio.to_thread(
            starter, settings, task_queue, "export", "--workspace", ws, "--tag", "vip", "--json"
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert (out["status"], out["row_count"]) == ("completed", 3)
        assert (await asyncio.to_thread(Path(out["location"]).read_bytes)).count(b"\r\n") == 4

        bar = await asyncio.to_thread(starter, settings, task_queue, "export", "--workspace", ws)
        assert bar.returncode == 0, bar.stderr
        assert "6 contacts exported" in bar.stdout and "completed" in bar.stdout

        status = await asyncio.to_thread(
            starter, settings, task_queue, "export", "status", out["export_id"], "--json"
        )
        assert status.returncode == 0, status.stderr
        record = json.loads(status.stdout)
        assert (record["status"], record["row_count"], record["tag_names"]) == (
            "completed",
            3,
            ["vip"],
        )
        assert record["workflow_status"] == "COMPLETED"
        assert record["location"] == out["location"]

        later = await asyncio.to_thread(
            starter, settings, task_queue, "export", "--workspace", ws, "--no-wait", "--json"
        )
        assert later.returncode == 0, later.stderr
        started = json.loads(later.stdout)
        assert started["workflow_id"] == f"export-{started['export_id']}"
        result = await client.get_workflow_handle(started["workflow_id"]).result()
        assert result["row_count"] == 6

    for argv, message in [
        (["export", "--workspace", ws, "--tag", "nope"], "no tag named 'nope'"),
        (["export", "--workspace", str(uuid.uuid4())], "does not exist"),
        (["export"], "--workspace is required"),
        (["export", "status", str(uuid.uuid4())], "does not exist"),
    ]:
        bad = await asyncio.to_thread(starter, settings, task_queue, *argv)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


# --- round trip: export a workspace, import the file into a new one --------------------


async def test_round_trip_export_then_import(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    """Our own export imports as the contacts it was made from: into an empty workspace the
    same contacts, custom fields included (formula guards off, timestamps and the other
    export-only columns skipped, no override needed); into its own workspace 0 changes."""
    from tests.importing import contacts as imported_contacts
    from tests.importing import import_bytes

    source = [
        contact(
            "ada@example.com",
            first_name="Ada",
            last_name="Lovelace",
            company="Engines, Ltd",
            phone="+33 1 23 45 67 89",
            custom_fields={"plan": "pro", "seats": "5"},
            tags=["vip"],
        ),
        contact(
            "zoe@example.com",
            first_name="Zoë",
            last_name="Ærø 日本語 🚀",
            company='The "Best" Co',
            custom_fields={"notes": 'line one\nline two, "quoted"'},
        ),
        contact("neg@example.com", first_name="Neg", custom_fields={"balance": "-12.5"}),
        contact("min@example.com"),
        contact("evil@example.com", company="=SUM(A1:A2)", custom_fields={"plan": "@cmd"}),
        # Quotes that are data: kept on export and on import alike.
        contact(
            "quote@example.com",
            first_name="'90s",
            last_name="O'Brien",
            phone="'+14155550100",
            company="'=already guarded by hand",
            custom_fields={"note": "''-x", "q": "'"},
        ),
    ]
    await seed_contacts(owner_pool, tenant.workspace_id, source)
    settings = make_settings(stack, temporal_task_queue=task_queue)
    _, _, data = await run_export(client, settings, task_queue, tenant.workspace_id)
    assert b"'+33 1 23 45 67 89" in data and b"''=already" in data  # the guard was there

    target = await seed.create_workspace(owner_pool, tenant.user_id, "Round trip")
    stored = (
        "SELECT email, first_name, last_name, company, phone, avatar_url, custom_fields,"
        " created_at, updated_at FROM contacts WHERE workspace_id = $1::uuid ORDER BY email"
    )
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(client, services, settings, target, tenant.user_id, data)
        assert up.mapping[5:9] == ["", "", "", ""]  # avatar_url, created_at, updated_at, tags
        assert any(w.startswith("a folksjobs export") for w in up.warnings)
        assert (result["inserted"], result["failed"]) == (len(source), 0)
        before = await imported_contacts(owner_pool, tenant.workspace_id)
        assert await imported_contacts(owner_pool, target) == before

        # Into the workspace it came from: every contact matched, none written.
        rows = [dict(r) for r in await owner_pool.fetch(stored, tenant.workspace_id)]
        _, again = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
        assert (again["inserted"], again["updated"], again["failed"]) == (0, len(source), 0)
        assert [dict(r) for r in await owner_pool.fetch(stored, tenant.workspace_id)] == rows
