"""process-export from outside: the starter CLI, and a round trip (export a workspace,
import the file into a new one)."""

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
    from tests.importing import contacts as imported_contacts
    from tests.importing import import_bytes

    source = [
        contact(
            "ada@example.com",
            first_name="Ada",
            last_name="Lovelace",
            company="Engines, Ltd",
            phone="+441234567",
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
    ]
    await seed_contacts(owner_pool, tenant.workspace_id, source)
    settings = make_settings(stack, temporal_task_queue=task_queue)
    _, _, data = await run_export(client, settings, task_queue, tenant.workspace_id)

    target = await seed.create_workspace(owner_pool, tenant.user_id, "Round trip")
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client,
            services,
            settings,
            target,
            tenant.user_id,
            data,
            overrides=["avatar_url=skip", "created_at=skip", "updated_at=skip", "tags=skip"],
        )
    assert result["inserted"] == len(source) and result["failed"] == 0
    before = await imported_contacts(owner_pool, tenant.workspace_id)
    after = await imported_contacts(owner_pool, target)
    assert after.keys() == before.keys()
    # Formula-like cells come back with the neutralising quote: that is the protection.
    evil = before.pop("evil@example.com")
    got = after.pop("evil@example.com")
    assert got["company"] == "'" + evil["company"]
    assert got["custom_fields"] == {"plan": "'@cmd"}
    assert after == before
