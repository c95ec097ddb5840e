"""process-export from outside: the starter CLI, and a round trip (export a workspace,
import the file into a new one, and into itself)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
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


TAGGED = (
    "SELECT c.email, array_agg(t.name ORDER BY t.name) AS tags FROM contacts c"
    " JOIN contact_tags x ON x.contact_id = c.id JOIN tags t ON t.id = x.tag_id"
    " WHERE c.workspace_id = $1::uuid GROUP BY c.email"
)
STORED = (
    "SELECT email, first_name, last_name, company, phone, avatar_url, custom_fields,"
    " created_at, updated_at FROM contacts WHERE workspace_id = $1::uuid ORDER BY email"
)


@pytest.mark.parametrize("path", ["small", "chunked"])
async def test_round_trip_export_then_import(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    path: str,
) -> None:
    """Our own export imports as the contacts it was made from: into an empty workspace the
    same contacts, custom fields and tags included (formula guards off, timestamps and the
    other export-only columns skipped, no override needed); into its own workspace 0
    changes (every row unchanged, no updated_at moved), on the small path and on the
    chunked one (several chunks of several sub-batches). One row changed: 1 update."""
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
            tags=["vip", "big client"],
        ),
        contact(
            "zoe@example.com",
            first_name="Zoë",
            last_name="Ærø 日本語 🚀",
            company='The "Best" Co',
            custom_fields={"notes": 'line one\nline two, "quoted"'},
            tags=["日本"],
        ),
        contact("neg@example.com", first_name="Neg", custom_fields={"balance": "-12.5"}),
        contact("min@example.com"),
        contact(
            "evil@example.com",
            company="=SUM(A1:A2)",
            custom_fields={"plan": "@cmd"},
            tags=["=danger"],
        ),
        # Quotes that are data: kept on export and on import alike.
        contact(
            "quote@example.com",
            first_name="'90s",
            last_name="O'Brien",
            phone="'+14155550100",
            company="'=already guarded by hand",
            custom_fields={"note": "''-x", "q": "'"},
            tags=["vip"],
        ),
    ]
    await seed_contacts(owner_pool, tenant.workspace_id, source)
    small = {"import_chunk_rows": 3, "import_sub_batch_rows": 2} if path == "chunked" else {}
    settings = make_settings(stack, temporal_task_queue=task_queue, **small)
    _, _, data = await run_export(client, settings, task_queue, tenant.workspace_id)
    assert b"'+33 1 23 45 67 89" in data and b"''=already" in data  # the guard was there
    assert b"'=danger" in data

    target = await seed.create_workspace(owner_pool, tenant.user_id, "Round trip")
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(client, services, settings, target, tenant.user_id, data)
        assert up.mapping[5:9] == ["", "", "", "tags"]  # avatar_url, created_at, updated_at
        assert any(w.startswith("a folksjobs export") for w in up.warnings)
        assert (result["inserted"], result["failed"]) == (len(source), 0)
        history = await client.get_workflow_handle(f"import-{up.import_id}").fetch_history()
        steps = {e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events}  # fmt: skip
        assert ("process-batch" in steps) is (path == "chunked")
        before = await imported_contacts(owner_pool, tenant.workspace_id)
        assert await imported_contacts(owner_pool, target) == before
        tags = dict(await owner_pool.fetch(TAGGED, tenant.workspace_id))
        assert tags["ada@example.com"] == ["big client", "vip"]
        assert dict(await owner_pool.fetch(TAGGED, target)) == tags

        # Into the workspace it came from, and into the one it made: every contact
        # matched, none written (its updated_at stays), no tag added.
        for ws in (tenant.workspace_id, target):
            rows = [dict(r) for r in await owner_pool.fetch(STORED, ws)]
            _, again = await import_bytes(client, services, settings, ws, tenant.user_id, data)
            counts = ("inserted", "updated", "unchanged", "failed", "duplicates")
            assert tuple(again[k] for k in counts) == (0, 0, len(source), 0, 0)
            assert [dict(r) for r in await owner_pool.fetch(STORED, ws)] == rows
            assert dict(await owner_pool.fetch(TAGGED, ws)) == tags
            assert again["ai_summary"].startswith(f"Processed {len(source)} rows: 0 new")

        if path == "chunked":
            # One row changed in an otherwise identical file: exactly one update.
            changed = data.replace(b"Engines, Ltd", b"Engines, Inc")
            assert changed != data
            _, once = await import_bytes(
                client, services, settings, target, tenant.user_id, changed
            )
            assert (once["inserted"], once["updated"], once["unchanged"]) == (
                0, 1, len(source) - 1)  # fmt: skip
