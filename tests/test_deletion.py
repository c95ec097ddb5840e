"""workspace/deleted and user/deleted on real servers: nothing of the workspace is left in
any table or under its folders (directory store and S3), a killed deletion finishes, and
every refusal is clear and deletes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from folksjobs import errors
from folksjobs.api import keys
from folksjobs.confirm import confirm_import, start_export
from folksjobs.devtools import seed
from folksjobs.events import EventError, dispatch, parse_event
from folksjobs.infra.blob import BlobStore, workspace_prefixes
from folksjobs.models import (
    WF_DELETE_WORKSPACE,
    DeleteWorkspaceInput,
    DeleteWorkspaceResult,
    delete_workspace_workflow_id,
)
from folksjobs.services import Services
from folksjobs.settings import ROOT
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import new_bucket_settings
from tests.gate_holder import GateHolder
from tests.importing import csv_bytes, upload
from tests.test_gate import eventually, gate_state, gate_worker

CSV = csv_bytes([["email", "first_name"], *([f"p{i}@example.com", f"P{i}"] for i in range(5))])


async def workspace_rows(owner: asyncpg.Pool, workspace_id: str) -> dict[str, int]:
    """Rows naming the workspace, in every table that has a workspace_id (and workspaces)."""
    ws = uuid.UUID(workspace_id)
    tables = [
        r["table_name"]
        for r in await owner.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND column_name = 'workspace_id' ORDER BY table_name"
        )
    ]
    counts = {t: await owner.fetchval(f"SELECT count(*) FROM {t} WHERE workspace_id = $1", ws)
              for t in tables}  # fmt: skip
    counts["workspaces"] = await owner.fetchval("SELECT count(*) FROM workspaces WHERE id = $1", ws)
    return {t: n for t, n in counts.items() if n}


async def files_under(blob: BlobStore, workspace_id: str) -> list[str]:
    """Every stored object under the workspace's folders, unfinished writes included."""
    found: list[str] = []
    for prefix in workspace_prefixes(workspace_id):
        path = blob.local_path(prefix)
        if path is not None:
            found += [str(p) for p in path.rglob("*") if p.is_file()] if path.exists() else []
            continue
        s3: Any = blob
        client = await s3.client()
        resp = await client.list_objects_v2(Bucket=s3.bucket, Prefix=f"{s3.prefix}/{prefix}/")
        found += [o["Key"] for o in resp.get("Contents", [])]
    return found


async def fill(owner: asyncpg.Pool, services: Services, t: Tenant) -> None:
    """Tagged contacts, a completed export (its file), a pending upload and an API key."""
    ws = uuid.UUID(t.workspace_id)
    await owner.executemany(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1, $2)",
        [(ws, f"c{i}@example.com") for i in range(20)],
    )
    await seed.tag_contacts(owner, t.workspace_id, {"vip": ["c1@example.com", "c2@example.com"]})
    await upload(services, services.settings, t.workspace_id, t.user_id, CSV)
    await keys.create(services.pool, t.workspace_id, "backend", "service")


@asynccontextmanager
async def running_import(
    client: Client, services: Services, t: Tenant, queue: str
) -> AsyncIterator[str]:
    """An import that is running: confirmed, and waiting behind a gate slot held by
    another run of the workspace (the limit is 1)."""
    async with gate_worker(client, queue, 1):
        holder = await client.start_workflow(
            GateHolder.run, t.workspace_id, id=f"holder-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        await eventually(lambda: _holding(holder), "the holder holds the slot")
        up = await upload(services, services.settings, t.workspace_id, t.user_id, CSV)
        handle = await confirm_import(
            client, services.pool, services.settings, t.workspace_id, up.import_id
        )
        await eventually(lambda: _waiting(client, t.workspace_id, handle.id), "the import waits")
        yield handle.id
        await holder.signal(GateHolder.done, "ok")


async def _waiting(client: Client, workspace_id: str, import_wid: str) -> bool:
    return import_wid in (await gate_state(client, workspace_id)).waiting


async def _holding(h: Any) -> bool:
    return bool(await h.query(GateHolder.progress) == "holding")


async def _delete(client: Client, services: Services, t: Tenant) -> dict[str, Any]:
    event = parse_event("workspace/deleted", {"workspaceId": t.workspace_id, "userId": t.user_id})
    d = await dispatch(client, services.settings, event, pool=services.pool)
    result: dict[str, Any] = await client.get_workflow_handle(d.workflow_id).result()
    return result


@pytest.mark.parametrize("backend", ["directory", "s3"])
async def test_workspace_deleted_with_an_import_running_leaves_nothing(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str,
    backend: str, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if backend == "s3":
        base = await new_bucket_settings(stack, request.getfixturevalue("moto_s3"))
    else:
        base = make_settings(stack)
    # One import at a time per workspace: the confirmed import waits behind the holder.
    settings = base.model_copy(
        update={"temporal_task_queue": task_queue, "imports_per_workspace_limit": 1}
    )
    other = Tenant(tenant.user_id, await seed.create_workspace(owner_pool, tenant.user_id), "")
    async with running_worker(client, settings, task_queue) as services:
        await fill(owner_pool, services, tenant)
        await fill(owner_pool, services, other)
        _, started = await start_export(
            client, services.pool, settings, tenant.workspace_id, None, ["vip"]
        )
        await client.get_workflow_handle(started.workflow_id).result()
        async with running_import(client, services, tenant, f"{task_queue}-gate") as import_wid:
            before = await workspace_rows(owner_pool, tenant.workspace_id)
            assert {"contacts", "tags", "contact_tags", "imports", "exports", "api_keys"} <= set(
                before
            )
            # The pending upload, the running import's and the export's files.
            assert len(await files_under(services.blob, tenant.workspace_id)) == 3
            result = await _delete(client, services, tenant)
            import_run = await client.get_workflow_handle(import_wid).describe()
        assert await workspace_rows(owner_pool, tenant.workspace_id) == {}
        assert await files_under(services.blob, tenant.workspace_id) == []
        # The other workspace of the same owner is untouched.
        assert (await workspace_rows(owner_pool, other.workspace_id))["contacts"] == 20
        assert len(await files_under(services.blob, other.workspace_id)) == 1
    assert import_run.status == WorkflowExecutionStatus.CANCELED
    assert result == {
        "workspace_id": tenant.workspace_id, "status": "deleted", "contacts": 20,
        "imports": 2, "exports": 1, "jobs_cancelled": 1, "pending_uploads_discarded": 1,
    }  # fmt: skip


async def test_repeated_event_is_a_no_op_and_the_workspace_leaves_the_digest(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    from folksjobs.digest.stats import active_workspace_page

    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        assert tenant.workspace_id in await active_workspace_page(services.pool, None, 100_000)
        first = await _delete(client, services, tenant)
        event = parse_event(
            "workspace/deleted", {"workspaceId": tenant.workspace_id, "userId": tenant.user_id}
        )
        again = await dispatch(client, settings, event, pool=services.pool)
        assert tenant.workspace_id not in await active_workspace_page(services.pool, None, 100_000)
    assert first["status"] == "deleted"
    assert not again.started  # the completed run under the same id: nothing runs again


async def test_killed_deletion_resumes_exactly(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    n, batch = 600, 100
    ws = uuid.UUID(tenant.workspace_id)
    await owner_pool.executemany(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1, $2)",
        [(ws, f"k{i:04d}@example.com") for i in range(n)],
    )
    settings = make_settings(stack, temporal_task_queue=task_queue, deletion_batch_rows=batch)
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "", "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue, "BLOB_URL": settings.blob_url,
        "DELETION_BATCH_ROWS": str(batch), "CRASH_AFTER_BATCHES": "2",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "deletion_crash_worker.py"), env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    handle = await client.start_workflow(
        WF_DELETE_WORKSPACE,
        DeleteWorkspaceInput(
            workspace_id=tenant.workspace_id, user_id=tenant.user_id, heartbeat_timeout_seconds=2
        ),
        id=delete_workspace_workflow_id(tenant.workspace_id),
        task_queue=task_queue,
        result_type=DeleteWorkspaceResult,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == -9, out.decode()
    # Killed after two committed batches: those rows are gone, the rest still there.
    left = await owner_pool.fetchval("SELECT count(*) FROM contacts WHERE workspace_id = $1", ws)
    assert left == n - 2 * batch
    async with running_worker(client, settings, task_queue):
        result = await handle.result()
    assert await workspace_rows(owner_pool, tenant.workspace_id) == {}
    assert (result.status, result.contacts) == ("deleted", n)
    attempts = [
        e.activity_task_started_event_attributes.attempt
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert 2 in attempts  # the rows step was retried by the second worker


async def test_refusals_are_clear_and_delete_nothing(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    member = await seed.create_user(owner_pool, f"m-{uuid.uuid4().hex[:6]}@example.com")
    await seed.add_member(owner_pool, tenant.workspace_id, member)
    settings = make_settings(stack, temporal_task_queue=task_queue)
    data = {"workspaceId": tenant.workspace_id, "userId": member}
    async with running_worker(client, settings, task_queue) as services:
        await fill(owner_pool, services, tenant)
        before = await workspace_rows(owner_pool, tenant.workspace_id)
        # Through dispatch (the API, `starter dispatch`): refused before anything starts.
        with pytest.raises(EventError) as info:
            await dispatch(client, settings, parse_event("workspace/deleted", data),
                           pool=services.pool)  # fmt: skip
        assert str(info.value) == (
            f"workspace/deleted: user {member} is not the owner of workspace"
            f" {tenant.workspace_id}: only its owner may delete it"
        )
        # Started directly over gRPC: its first step refuses, before the keys go.
        handle = await client.start_workflow(
            WF_DELETE_WORKSPACE,
            DeleteWorkspaceInput(workspace_id=tenant.workspace_id, user_id=member),
            id=f"delete-refused-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert errors.failed_with(failed.value.cause, errors.DELETION_REFUSED)
        # The CLI: exit 2, the same words.
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "starter", "dispatch", "workspace/deleted",
             "--data", json.dumps(data), "--task-queue", task_queue],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "TEMPORAL_ADDRESS": stack.temporal.address,
                 "DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert "is not the owner of workspace" in proc.stderr
        assert await workspace_rows(owner_pool, tenant.workspace_id) == before
        assert len(await files_under(services.blob, tenant.workspace_id)) == 1


async def test_user_deleted_cancels_their_work_and_no_email_reaches_them(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    from folksjobs.digest.stats import active_workspace_page

    settings = make_settings(stack, temporal_task_queue=task_queue)
    user, sole = tenant.user_id, tenant.workspace_id
    shared = await seed.create_workspace(owner_pool, user, "Shared")
    member = await seed.create_user(owner_pool, f"m-{uuid.uuid4().hex[:6]}@example.com")
    await seed.add_member(owner_pool, shared, member)
    boss = await seed.create_user(owner_pool, f"b-{uuid.uuid4().hex[:6]}@example.com")
    elsewhere = await seed.create_workspace(owner_pool, boss, "Elsewhere")
    await seed.add_member(owner_pool, elsewhere, user)
    async with running_worker(client, settings, task_queue) as services:
        mine = await upload(services, settings, elsewhere, user, CSV)
        theirs = await upload(services, settings, elsewhere, boss, CSV)
        await upload(services, settings, sole, user, CSV)
        d = await dispatch(client, settings, parse_event("user/deleted", {"userId": user}),
                           pool=services.pool)  # fmt: skip
        result = await client.get_workflow_handle(d.workflow_id).result()
        # Afterwards: the welcome is skipped, the digest leaves out the workspace they own.
        welcome = await dispatch(
            client, settings, parse_event("user/signed.up", {"userId": user}), pool=services.pool
        )
        skipped = await client.get_workflow_handle(welcome.workflow_id).result()
        page = await active_workspace_page(services.pool, None, 100_000)
        with pytest.raises(EventError, match=f"user/signed.up: user {user} was deleted"):
            await dispatch(client, settings,
                           parse_event("user/signed.up", {"userId": user, "email": tenant.email}),
                           pool=services.pool)  # fmt: skip
    assert result == {
        "user_id": user, "status": "deleted", "jobs_cancelled": 0,
        "pending_uploads_discarded": 2, "memberships_removed": 1,
        "workspaces_deleted": [sole], "workspaces_kept": [shared],
    }  # fmt: skip
    assert await workspace_rows(owner_pool, sole) == {}
    assert (await workspace_rows(owner_pool, shared))["workspaces"] == 1
    row = await owner_pool.fetchrow("SELECT email, name, deleted_at FROM users WHERE id = $1",
                                    uuid.UUID(user))  # fmt: skip
    assert row is not None and (row["email"], row["name"]) == ("", None) and row["deleted_at"]
    left = {r["id"] for r in await owner_pool.fetch(
        "SELECT id FROM imports WHERE workspace_id = $1", uuid.UUID(elsewhere))}  # fmt: skip
    assert left == {uuid.UUID(theirs.import_id)} and mine.import_id not in map(str, left)
    assert skipped == {"message_id": "", "backend": "skipped: user deleted"}
    assert list(settings.outbox_dir.glob("*.eml")) == []
    assert shared not in page and elsewhere in page


async def test_signed_up_with_the_address(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    newcomer = str(uuid.uuid4())
    async with running_worker(client, settings, task_queue) as services:
        with pytest.raises(EventError) as info:
            await dispatch(client, settings, parse_event(
                "user/signed.up", {"userId": tenant.user_id, "email": "someone@example.com"}),
                pool=services.pool)  # fmt: skip
        assert str(info.value) == (
            f"user/signed.up: email: not the address user {tenant.user_id} has in the user"
            " directory"
        )
        # The directory's own address (any case) is fine; an unknown user is registered.
        known = parse_event("user/signed.up",
                            {"userId": tenant.user_id, "email": tenant.email.upper()})  # fmt: skip
        await dispatch(client, settings, known, pool=services.pool)
        event = parse_event("user/signed.up", {"userId": newcomer, "email": "New@Example.com"})
        d = await dispatch(client, settings, event, pool=services.pool)
        await client.get_workflow_handle(d.workflow_id).result()
    email = await owner_pool.fetchval("SELECT email FROM users WHERE id = $1", uuid.UUID(newcomer))
    assert email == "new@example.com"
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 2


async def test_a_workspace_being_deleted_starts_nothing_new(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, CSV)
        await owner_pool.execute(
            "UPDATE workspaces SET deleted_at = now() WHERE id = $1", uuid.UUID(tenant.workspace_id)
        )
        data = {"importId": up.import_id, "workspaceId": tenant.workspace_id,
                "userId": tenant.user_id}  # fmt: skip
        with pytest.raises(EventError) as info:
            await dispatch(client, settings, parse_event("import/csv.confirmed", data),
                           pool=services.pool)  # fmt: skip
    assert str(info.value) == (
        f"import/csv.confirmed: workspace {tenant.workspace_id} is being deleted"
    )


async def test_a_deleted_user_gets_no_export_link_and_no_digest(
    stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """The races the cancellation cannot close: an export finishing, a digest already
    paging, as the user is deleted. Each step skips them and sends nothing."""
    from datetime import UTC, datetime

    from temporalio.testing import ActivityEnvironment

    from activities.digest import DigestActivities
    from activities.exports import ExportActivities
    from folksjobs.digest.stats import digest_week
    from folksjobs.models import ExportNotification, WorkspaceDigestJob
    from folksjobs.services import open_services

    ws = uuid.UUID(tenant.workspace_id)
    export_id = uuid.uuid4()
    await owner_pool.execute(
        "INSERT INTO exports (id, workspace_id, user_id, status, blob_key, completed_at)"
        " VALUES ($1, $2, $3, 'completed', 'exports/x/y.csv', now())",
        export_id, ws, uuid.UUID(tenant.user_id),
    )  # fmt: skip
    await owner_pool.execute(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1, 'new@example.com')", ws
    )
    await owner_pool.execute(
        "UPDATE users SET deleted_at = now(), email = '' WHERE id = $1", uuid.UUID(tenant.user_id)
    )
    settings = make_settings(stack)
    env = ActivityEnvironment()
    # Scheduled now: the email's delivery window counts from it (activities/delivery.py).
    env.info = dataclasses.replace(env.info, scheduled_time=datetime.now(UTC))
    async with open_services(settings, pool_size=2) as s:
        sent = await env.run(
            ExportActivities(s.pool, s.blob, s.email, settings).send_notification,
            ExportNotification(export_id=str(export_id), workspace_id=tenant.workspace_id,
                               user_id=tenant.user_id, idempotency_key="k1"),
        )  # fmt: skip
        week = digest_week(datetime.now(UTC))
        digest = await env.run(
            DigestActivities(s.pool, s.email, settings).digest_workspace,
            WorkspaceDigestJob(workspace_id=tenant.workspace_id, week=week, idempotency_key="k2"),
        )
    assert sent.sent is False
    assert digest.outcome == "skipped_disabled"
    assert list(settings.outbox_dir.glob("*.eml")) == []
