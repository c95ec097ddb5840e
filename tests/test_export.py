"""process-export end to end: real Temporal, PostgreSQL, directory store and S3 (moto)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.exports import ExportActivities
from activities.gate import GateActivities
from folksjobs import errors
from folksjobs.devtools import seed
from folksjobs.devtools.devstack import free_port
from folksjobs.exports import repo as exports
from folksjobs.exports.csvsafe import neutralise
from folksjobs.infra import db
from folksjobs.infra.blob import BlobKeyError, S3BlobStore, build_blob_store, check_key, export_key
from folksjobs.models import WF_PROCESS_EXPORT, ExportRows, ProcessExportInput, export_workflow_id
from folksjobs.services import open_services
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from workflows.export_csv import ProcessExport
from workflows.gate import EXPORT_GATE, SlotGate

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
STANDARD = [*exports.STANDARD_COLUMNS, "tags"]


# --- helpers ------------------------------------------------------------------------


def contact(email: str, **kw: Any) -> dict[str, Any]:
    return {
        "email": email,
        "first_name": None,
        "last_name": None,
        "company": None,
        "phone": None,
        "avatar_url": None,
        "custom_fields": {},
        "tags": [],
        **kw,
    }


async def seed_contacts(
    owner: asyncpg.Pool, workspace_id: str, contacts: Sequence[dict[str, Any]]
) -> dict[str, int]:
    """One multi-row INSERT (unnest), then the tags: returns email -> contact id."""
    cols = ["email", "first_name", "last_name", "company", "phone", "avatar_url"]
    recs = await owner.fetch(
        "INSERT INTO contacts (workspace_id, email, first_name, last_name, company, phone,"
        " avatar_url, custom_fields, created_at, updated_at)"
        " SELECT $1, u.* , $9, $9 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::jsonb[]) AS u RETURNING id, email",
        uuid.UUID(workspace_id),
        *([c[k] for c in contacts] for k in cols),
        [c["custom_fields"] for c in contacts],
        T0,
    )
    ids = {r["email"]: r["id"] for r in recs}
    names = sorted({t for c in contacts for t in c["tags"]})
    tag_ids = {}
    for name in names:
        tag_ids[name] = await owner.fetchval(
            "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (workspace_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            uuid.uuid4(),
            uuid.UUID(workspace_id),
            name,
        )
    links = [
        (uuid.UUID(workspace_id), ids[c["email"]], tag_ids[t]) for c in contacts for t in c["tags"]
    ]
    if links:
        await owner.executemany(
            "INSERT INTO contact_tags (workspace_id, contact_id, tag_id) VALUES ($1, $2, $3)",
            links,
        )
    return ids


async def add_tag(owner: asyncpg.Pool, workspace_id: str, name: str) -> None:
    await owner.execute(
        "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, $3)",
        uuid.uuid4(),
        uuid.UUID(workspace_id),
        name,
    )


async def start_export(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace_id: str,
    tags: Sequence[str] = (),
    user_id: str | None = None,
    heartbeat: float = 30.0,
) -> WorkflowHandle[Any, Any]:
    export_id, user = await exports.create_export(pool, workspace_id, user_id, tags)
    return await client.start_workflow(
        WF_PROCESS_EXPORT,
        ProcessExportInput(
            export_id=export_id,
            workspace_id=workspace_id,
            user_id=user,
            heartbeat_timeout_seconds=heartbeat,
        ),
        id=export_workflow_id(export_id),
        task_queue=task_queue,
    )


async def run_export(
    client: Client, settings: Settings, task_queue: str, workspace_id: str, tags: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Runs one export with a worker; returns (workflow result, export record, file)."""
    async with running_worker(client, settings, task_queue) as services:
        handle = await start_export(client, services.pool, task_queue, workspace_id, tags)
        result = await handle.result()
        data = b"".join([c async for c in services.blob.read(result["blob_key"])])
    owner = await db.create_owner_pool(settings.database_url or "", max_size=1)
    try:
        record = await exports.get_export(owner, result["export_id"])
    finally:
        await owner.close()
    return result, record, data


def parse(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    rows = list(reader)
    return rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def outbox(folder: Path) -> list[EmailMessage]:
    return [
        message_from_bytes(p.read_bytes(), _class=EmailMessage, policy=policy.default)
        for p in sorted(folder.glob("*.eml"))
    ]


def text_body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def activity_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


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


# --- safety: injection, text round trip, tenants, keys --------------------------------

PAYLOADS = [
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "\rCR",
    '=HYPERLINK("http://evil","x")',
    "-",
    "+.",
    "-1e5",
    "+١٢٣",  # not ASCII digits: not a plain number to a spreadsheet either
]
HARMLESS = [
    "-12.5",
    "+14155550100",
    "-.5",
    "+7.",
    "a=b",
    'say "hi", then\nleave',
    "line\r\nbreak",
    "Zoë Ærø 日本語 🚀",
    " =not first",
    "",
]


def pg_csv(rows: Sequence[Sequence[str]], end: str) -> bytes:
    """CSV as PostgreSQL's COPY writes it (quotes only where needed), with `end`."""

    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v

    return "".join(",".join(map(field, r)) + end for r in rows).encode("utf-8")


def test_crlf_records_wherever_the_chunks_are_cut() -> None:
    rows = [
        ["a@example.com", "", "Ada", 'say "hi", then\nleave', "x"],
        ["b@example.com", "line\r\nbreak", '"', "", ""],
        ["c@example.com", '""\n""', ",", "\n", "日本語 🚀"],
        ["d@example.com", "plain", "", "", ""],
    ]
    lf, crlf = pg_csv(rows, "\n"), pg_csv(rows, "\r\n")
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n").writerows(rows)
    assert again.getvalue().encode("utf-8") == crlf
    for size in [1, 2, 3, 5, 7, 11, len(lf)]:
        records = exports.CrlfRecords()
        out, counts = [], []
        for i in range(0, len(lf), size):
            out.append(records(lf[i : i + size]))
            counts.append(records.records)
        assert b"".join(out) == crlf, size
        assert counts == sorted(counts) and records.records == len(rows)


def test_neutralise_rules() -> None:
    for p in PAYLOADS:
        assert neutralise(p) == "'" + p
    for h in HARMLESS:
        assert neutralise(h) == h


async def test_injection_neutralised_and_text_round_trips(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    values = PAYLOADS + HARMLESS
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact(f"c{i}@example.com", first_name=v, company=v, custom_fields={"note": v})
            for i, v in enumerate(values)
        ],
    )
    _, _, data = await run_export(client, make_settings(stack), task_queue, tenant.workspace_id)
    head, rows = parse(data)
    # Byte for byte what the csv module writes for these cells: quoted only where needed,
    # empty cells unquoted, CRLF after each record, line breaks inside cells kept.
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n").writerows(
        [head, *([r[h] for h in head] for r in rows)]
    )
    assert again.getvalue().encode("utf-8") == data
    # The records, the header, and the CRLF inside one value's three cells.
    assert data.count(b"\r\n") == len(values) + 1 + 3
    expected = ["'" + p for p in PAYLOADS] + HARMLESS
    assert [r["first_name"] for r in rows] == expected
    assert [r["company"] for r in rows] == expected
    assert [r["note"] for r in rows] == expected

    # The setting turns it off: the raw values come back.
    raw = make_settings(stack, export_neutralise_formulas=False)
    _, _, data = await run_export(client, raw, task_queue, tenant.workspace_id)
    assert [r["note"] for r in parse(data)[1]] == values


async def test_other_workspaces_contacts_never_appear(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    uid = await seed.create_user(owner_pool, f"o-{uuid.uuid4().hex[:6]}@example.com")
    other = await seed.create_workspace(owner_pool, uid, "Other")
    # Same tag name in both workspaces: the filter resolves names inside the workspace only.
    await seed_contacts(
        owner_pool,
        other,
        [
            contact(f"other{i}@example.com", tags=["vip"], custom_fields={"secret": "x"})
            for i in range(5)
        ],
    )
    await seed_contacts(
        owner_pool, tenant.workspace_id, [contact("mine@example.com", tags=["vip"])]
    )
    settings = make_settings(stack)
    for tags in ([], ["vip"]):
        _, record, data = await run_export(client, settings, task_queue, tenant.workspace_id, tags)
        head, rows = parse(data)
        assert [r["email"] for r in rows] == ["mine@example.com"]
        assert "secret" not in head and b"other" not in data
        assert record["row_count"] == 1
    # Row-level security is the second wall: inside workspace A's transaction the export's
    # queries see nothing of B's, even when they ask for B by id.
    app = await db.create_pool(settings.database_url or "", max_size=1)
    try:
        async with db.tenant_tx(app, tenant.workspace_id) as conn:
            chunks: list[bytes] = []

            async def keep(data: bytes, rows: int) -> None:
                chunks.append(data)

            copied = await exports.copy_rows(
                conn, other, None, ["secret"], neutralise_formulas=True, output=keep
            )
            assert (copied, chunks) == (0, [])
            assert await exports.count_contacts(conn, other, None) == 0
            assert await exports.custom_keys(conn, other, None) == []
        async with db.tenant_tx(app, other) as conn:
            assert await exports.count_contacts(conn, other, None) == 5
    finally:
        await app.close()


async def test_bad_requests_are_refused(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    await add_tag(owner_pool, tenant.workspace_id, "vip")
    async with running_worker(client, settings, task_queue) as services:
        pool = services.pool
        with pytest.raises(exports.InvalidExportRequest, match="no tag named 'nope'"):
            await exports.create_export(pool, tenant.workspace_id, None, ["vip", "nope"])
        with pytest.raises(exports.InvalidExportRequest, match="does not exist"):
            await exports.create_export(pool, str(uuid.uuid4()), None, [])
        with pytest.raises(exports.InvalidExportRequest, match="is not a UUID"):
            await exports.create_export(pool, "not-a-uuid", None, [])
        with pytest.raises(exports.InvalidExportRequest, match="not found in the user directory"):
            await exports.create_export(pool, tenant.workspace_id, str(uuid.uuid4()), [])
        # A workflow started for an export that does not exist fails at once, no retries.
        missing = str(uuid.uuid4())
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                WF_PROCESS_EXPORT,
                ProcessExportInput(
                    export_id=missing, workspace_id=tenant.workspace_id, user_id=tenant.user_id
                ),
                id=export_workflow_id(missing),
                task_queue=task_queue,
            )
    assert "does not exist in workspace" in errors.root_message(info.value)
    for bad in ("../etc/passwd", "exports/../../x.csv", "/abs.csv", "exports//x.csv"):
        with pytest.raises(BlobKeyError):
            check_key(bad)


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


# --- S3 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_s3() -> Any:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


async def new_bucket_settings(stack: Stack, moto_url: str) -> Settings:
    """Settings for a fresh bucket on the moto server (BLOB_URL=s3://bucket/prefix)."""
    import aioboto3

    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    async with session.client("s3", endpoint_url=moto_url) as s3:
        await s3.create_bucket(Bucket=bucket)
    return make_settings(
        stack,
        blob_url=f"s3://{bucket}/tenant-files",
        s3_endpoint_url=moto_url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_multipart_part_bytes=5 * 1024 * 1024,
    )


@pytest.fixture
async def s3_settings(stack: Stack, moto_s3: str) -> Settings:
    return await new_bucket_settings(stack, moto_s3)


async def test_s3_blob_store_interface(s3_settings: Settings) -> None:
    store = build_blob_store(s3_settings)
    try:
        key = "exports/ws/one.csv"
        assert await store.size(key) is None
        w = await store.open_writer(key)
        await w.write(b"hello ")
        await w.write(b"world")
        assert await w.commit() == 11
        assert await store.size(key) == 11
        assert b"".join([c async for c in store.read(key, start=6)]) == b"world"
        assert store.uri(key).endswith("/tenant-files/exports/ws/one.csv")
        # An aborted writer publishes nothing.
        w = await store.open_writer("exports/ws/two.csv")
        await w.write(b"partial")
        await w.abort()
        assert await store.size("exports/ws/two.csv") is None
        await store.delete(key)
        assert await store.size(key) is None
        # A writer that dies after its first part leaves an open multipart upload: it is
        # not an object, and discard_unfinished aborts it.
        w = await store.open_writer(key)
        await w.write(b"x" * (5 * 1024 * 1024))
        assert await store.size(key) is None
        assert await store.discard_unfinished(key) == 1
        assert await store.discard_unfinished(key) == 0
        with pytest.raises(BlobKeyError):
            await store.open_writer("../escape.csv")
    finally:
        await store.close()


async def test_s3_export_equals_directory_export_byte_for_byte(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    s3_settings: Settings,
) -> None:
    # ~6 MB: more than one 5 MB part, so the multipart path is the one under test.
    filler = 'lorem ipsum, "dolor" sit amet\n' * 400
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact(
                f"p{i:04d}@example.com",
                first_name=f"Ana {i}",
                company="=evil" if i % 7 else "Ok",
                custom_fields={"n": i, "notes": filler} if i % 2 else {"odd": False},
                tags=["even"] if i % 2 == 0 else [],
            )
            for i in range(1000)
        ],
    )
    local = make_settings(stack)
    _, _, local_data = await run_export(client, local, task_queue, tenant.workspace_id)
    s3_result, s3_record, s3_data = await run_export(
        client, s3_settings, task_queue, tenant.workspace_id
    )
    assert len(local_data) > 5 * 1024 * 1024
    assert s3_data == local_data
    assert s3_record["row_count"] == 1000 and s3_record["file_bytes"] == len(s3_data)
    assert (
        s3_result["location"].startswith("s3://")
        and "tenant-files/exports/" in s3_result["location"]
    )
    # The email carries a presigned link that really downloads the file.
    [msg] = outbox(s3_settings.outbox_dir)
    body = text_body(msg)
    url = body.split("(", 1)[1].split(")", 1)[0]
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == local_data


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


# --- the starter ----------------------------------------------------------------------


def starter(settings: Settings, task_queue: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "BLOB_URL": settings.blob_url,
        "COLUMNS": "100",
    }
    return subprocess.run(
        [sys.executable, "-m", "starter", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
        # The export gate's activities and workflow, as worker.py registers them.
        gate = GateActivities({EXPORT_GATE: 2}).activities()
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ProcessExport, SlotGate],
            activities=[*activities, *gate],
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
