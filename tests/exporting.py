"""What the export tests share: seeding contacts and tags, starting and running an export,
reading its file and its email."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
)

from folksjobs.exports import repo as exports
from folksjobs.infra import db
from folksjobs.models import WF_PROCESS_EXPORT, ProcessExportInput, export_workflow_id
from folksjobs.settings import Settings
from tests.conftest import Stack, make_settings, running_worker

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
STANDARD = [*exports.STANDARD_COLUMNS, "tags"]


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
