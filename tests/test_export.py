"""process-export end to end (real Temporal, PostgreSQL, directory store): the columns, the
tag filter, the empty short-circuit, the notification, a failure."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from folksjobs.devtools import seed
from folksjobs.exports import repo as exports
from folksjobs.infra.blob import export_key
from folksjobs.models import ExportRows
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import (
    STANDARD,
    T0,
    activity_types,
    add_tag,
    contact,
    outbox,
    parse,
    run_export,
    seed_contacts,
    start_export,
    text_body,
)
from workflows.export_csv import ProcessExport

# --- the columns, the tag filter, the empty short-circuit -----------------------------


async def test_export_all_contacts_with_custom_field_columns(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    # A progress report after every chunk of the COPY stream.
    settings = make_settings(stack, export_progress_seconds=0)
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact(
                "ada@example.com",
                first_name="Ada",
                last_name="Lovelace",
                company="Engines",
                phone="+441234567",
                custom_fields={"plan": "pro", "seats": 5},
                tags=["vip"],
            ),
            contact(
                "bob@example.com",
                first_name="Bob",
                custom_fields={"region": "EU"},
                tags=["lead", "vip"],
            ),
            contact(
                "cy@example.com",
                custom_fields={"plan": "free", "active": True, "meta": {"a": [1, 2]}},
            ),
            contact("di@example.com", avatar_url="https://gravatar.com/avatar/x"),
            contact("ed@example.com", last_name="Eddington"),
        ],
    )
    await owner_pool.execute(
        "UPDATE contacts SET updated_at = $2 WHERE workspace_id = $1 AND email = 'di@example.com'",
        uuid.UUID(tenant.workspace_id),
        T0.replace(microsecond=120500),
    )
    result, record, data = await run_export(client, settings, task_queue, tenant.workspace_id)

    head, rows = parse(data)
    assert head == [*STANDARD, "active", "meta", "plan", "region", "seats"]
    assert [r["email"] for r in rows] == [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
        "di@example.com",
        "ed@example.com",
    ]
    ada, bob, cy, di, ed = rows
    assert (ada["first_name"], ada["last_name"], ada["company"], ada["phone"]) == (
        "Ada",
        "Lovelace",
        "Engines",
        "+441234567",
    )
    assert (ada["plan"], ada["seats"], ada["region"], ada["tags"]) == ("pro", "5", "", "vip")
    assert (bob["region"], bob["tags"], bob["plan"]) == ("EU", "lead;vip", "")
    assert (cy["active"], json.loads(cy["meta"])) == ("true", {"a": [1, 2]})
    assert di["avatar_url"] == "https://gravatar.com/avatar/x"
    assert (
        datetime.fromisoformat(ed["created_at"]) == T0 == datetime.fromisoformat(ed["updated_at"])
    )
    # ISO 8601 in UTC: no fraction when it is zero, no trailing zeros when it is not.
    assert (ed["created_at"], di["updated_at"]) == (
        "2026-01-05T09:30:00+00:00",
        "2026-01-05T09:30:00.1205+00:00",
    )

    assert result["status"] == "completed" and result["row_count"] == 5
    assert result["location"] == str(Path(settings.blob_url) / result["blob_key"])
    assert record["status"] == "completed"
    assert record["row_count"] == 5
    assert record["file_bytes"] == len(data)
    assert record["blob_key"] == export_key(tenant.workspace_id, result["export_id"])
    assert record["started_at"] <= record["completed_at"] and record["duration_ms"] >= 0
    assert record["error_log"] is None
    history = await client.get_workflow_handle(f"export-{result['export_id']}").fetch_history()
    reports = [
        pydantic_data_converter.payload_converter.from_payload(p, ExportRows)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        for p in e.workflow_execution_signaled_event_attributes.input.payloads
    ]
    # Five short rows arrive in one chunk or a few: the count only grows, to all of them.
    counts = [r.rows for r in reports]
    assert counts and counts == sorted(counts) and counts[-1] == 5


async def test_tag_filter_exports_contacts_with_any_named_tag(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact("a@example.com", tags=["vip"], custom_fields={"only_vip": "1"}),
            contact("b@example.com", tags=["lead"]),
            contact("c@example.com", tags=["other"], custom_fields={"only_other": "x"}),
            contact("d@example.com", tags=["vip", "lead"]),
            contact("e@example.com"),
        ],
    )
    async with running_worker(client, settings, task_queue) as services:
        handle = await start_export(
            client, services.pool, task_queue, tenant.workspace_id, ["vip", "lead"]
        )
        result = await handle.result()
        data = b"".join([c async for c in services.blob.read(result["blob_key"])])
        progress = await handle.query(ProcessExport.progress)
    head, rows = parse(data)
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com", "d@example.com"]
    # Only the filtered contacts' custom fields make columns.
    assert head == [*STANDARD, "only_vip"]
    assert [r["tags"] for r in rows] == ["vip", "lead", "lead;vip"]
    assert result["row_count"] == 3
    assert (progress.rows_written, progress.total_rows, progress.stage) == (3, 3, "completed")
    desc = await handle.describe()
    attrs = {p.key.name: p.value for p in desc.typed_search_attributes}
    assert {k: attrs[k] for k in ("WorkspaceId", "ExportId", "JobStatus")} == {
        "WorkspaceId": tenant.workspace_id,
        "ExportId": result["export_id"],
        "JobStatus": "completed",
    }


async def test_tag_matching_nobody_uploads_header_only_at_once(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [contact("a@example.com", tags=["vip"], custom_fields={"k": "v"})],
    )
    await add_tag(owner_pool, tenant.workspace_id, "unused")
    async with running_worker(client, settings, task_queue) as services:
        handle = await start_export(
            client, services.pool, task_queue, tenant.workspace_id, ["unused"]
        )
        result = await handle.result()
        data = b"".join([c async for c in services.blob.read(result["blob_key"])])
        steps = await activity_types(handle)
    assert data == (",".join(STANDARD) + "\r\n").encode()
    assert result["row_count"] == 0 and result["status"] == "completed"
    assert steps == ["resolve-tag-filter", "upload-empty", "send-notification"]
    [msg] = outbox(settings.outbox_dir)
    assert "0 contacts were exported" in text_body(msg)


async def test_workspace_without_contacts_is_header_only(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    _, record, data = await run_export(
        client, make_settings(stack), task_queue, tenant.workspace_id
    )
    assert parse(data) == (STANDARD, [])
    assert (record["status"], record["row_count"], record["file_bytes"]) == (
        "completed",
        0,
        len(data),
    )


# --- the notification -----------------------------------------------------------------


async def test_notification_goes_to_the_requesting_user(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    other = await seed.create_user(owner_pool, f"member-{uuid.uuid4().hex[:6]}@example.com")
    await seed.add_member(owner_pool, tenant.workspace_id, other)
    await seed_contacts(owner_pool, tenant.workspace_id, [contact("a@example.com")])
    async with running_worker(client, settings, task_queue) as services:
        handle = await start_export(
            client, services.pool, task_queue, tenant.workspace_id, user_id=other
        )
        result = await handle.result()
    [msg] = outbox(settings.outbox_dir)
    assert msg["To"].startswith("member-")
    assert msg["Subject"] == "Your contacts export is ready"
    assert msg["X-Idempotency-Key"] == f"{handle.id}/export-complete"
    body = text_body(msg)
    assert "1 contacts were exported" in body and result["location"] in body


async def test_notification_off_sends_nothing(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    uid = await seed.create_user(owner_pool, f"quiet-{uuid.uuid4().hex[:6]}@example.com")
    wid = await seed.create_workspace(owner_pool, uid, "Quiet", notify_on_export_complete=False)
    await seed_contacts(owner_pool, wid, [contact("a@example.com")])
    settings = make_settings(stack)
    result, record, _ = await run_export(client, settings, task_queue, wid)
    assert record["status"] == "completed" and result["row_count"] == 1
    assert outbox(settings.outbox_dir) == []


async def test_failure_marks_export_failed_and_fails_workflow(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    tmp_path: Path,
) -> None:
    # A blob store that cannot be written (its root is a file): every attempt fails.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings = make_settings(stack, blob_url=str(blocker))
    await seed_contacts(owner_pool, tenant.workspace_id, [contact("a@example.com")])
    async with running_worker(client, settings, task_queue) as services:
        handle = await start_export(client, services.pool, task_queue, tenant.workspace_id)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        steps = await activity_types(handle)
        progress = await handle.query(ProcessExport.progress)
    export_id = handle.id.removeprefix("export-")
    record = await exports.get_export(owner_pool, export_id)
    assert record["status"] == "failed"
    assert record["error_log"]["error"].startswith("stream-export: ")
    assert steps[-1] == "mark-export-failed" and "send-notification" not in steps
    assert progress.stage == "failed"
    history = await handle.fetch_history()
    starts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert 3 in starts  # stream-export: retries 2 => three attempts
    assert outbox(settings.outbox_dir) == []
