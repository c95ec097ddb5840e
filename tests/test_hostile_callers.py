"""Issue 19: a caller who may start workflows, but is hostile or wrong, against a real worker.

Each test starts workflows the way another service would (the `temporal` CLI, or raw
bytes over gRPC) and asserts what the tenant sees: records, contacts, emails, gates.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from email import message_from_bytes
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from folksjobs.confirm import confirm_import
from folksjobs.errors import INVALID_PAYLOAD
from folksjobs.events import EventError, dispatch, parse_event
from folksjobs.exports import repo as exports
from folksjobs.models import (
    WF_PROCESS_CSV,
    WF_PROCESS_EXPORT,
    WF_SEND_WELCOME,
    WF_WEEKLY_DIGEST,
    import_workflow_id,
)
from tests.callers import cli_start, failure_of, raw_start, result_of
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, import_row, upload
from tests.test_import import outbox_subjects

ROOT = Path(__file__).resolve().parent.parent
# Runs that must fail "at once": a bound far below any retry loop, generous for CI.
AT_ONCE = 20.0


@pytest.fixture
async def other(owner_pool: asyncpg.Pool) -> Tenant:
    from folksjobs.devtools import seed

    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    uid = await seed.create_user(owner_pool, email, "Other Owner")
    wid = await seed.create_workspace(owner_pool, uid, "Other workspace")
    return Tenant(uid, wid, email)


def _csv(n: int = 2) -> bytes:
    return csv_bytes([["email"], *[[f"p{i}@example.com"] for i in range(n)]])


def recipients(folder: Path) -> set[str]:
    return {str(message_from_bytes(p.read_bytes())["To"]) for p in folder.glob("*.eml")}


async def _contacts(owner: asyncpg.Pool, workspace_id: str) -> int:
    n = await owner.fetchval(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid", workspace_id
    )
    return int(n)


async def test_invalid_inputs_fail_at_once_naming_the_field(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    """Finding 5: malformed JSON, wrong types, missing fields, huge numbers and a 2 MB id
    fail the run at once (no workflow-task failure loop), and the message names the field."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    ids = {"import_id": str(uuid.uuid4()), "workspace_id": tenant.workspace_id,
           "user_id": tenant.user_id}  # fmt: skip
    export = {"export_id": str(uuid.uuid4()), "workspace_id": tenant.workspace_id,
              "user_id": tenant.user_id}  # fmt: skip
    cases: list[tuple[str, bytes, str]] = [
        (WF_PROCESS_CSV, b'{"import_id": ', "invalid"),
        (WF_PROCESS_CSV, b"[1, 2]", "ProcessCsvInput"),
        (WF_PROCESS_CSV, json.dumps({**ids, "import_id": 7}).encode(), "import_id"),
        (WF_PROCESS_CSV, json.dumps({"import_id": ids["import_id"]}).encode(), "workspace_id"),
        (WF_PROCESS_CSV, json.dumps({**ids, "extra": 1}).encode(), "extra"),
        (WF_PROCESS_CSV, json.dumps({**ids, "user_id": "x" * 100}).encode(), "user_id"),
        (WF_PROCESS_EXPORT, json.dumps({**export, "heartbeat_timeout_seconds": 1e308}).encode(),
         "heartbeat_timeout_seconds"),
        (WF_PROCESS_EXPORT, b'{"heartbeat_timeout_seconds": NaN}', "heartbeat_timeout_seconds"),
        (WF_SEND_WELCOME, json.dumps({"user_id": "a" * 2_000_000}).encode(), "user_id"),
        (WF_WEEKLY_DIGEST, json.dumps({"resume": {"after_workspace_id": "f" * 36, "runs": 0,
                                                  "totals": {}}}).encode(), "resume"),
    ]  # fmt: skip
    async with running_worker(client, settings, task_queue) as services:
        handles = [
            await raw_start(client, wf, f"bad-{i}-{uuid.uuid4().hex[:6]}", task_queue, data)
            for i, (wf, data, _) in enumerate(cases)
        ]
        failures = await asyncio.gather(*(failure_of(h, AT_ONCE) for h in handles))
        for (wf, _, field), h, err in zip(cases, handles, failures, strict=True):
            assert err.type == INVALID_PAYLOAD, (wf, field, err)
            assert err.non_retryable
            assert field in str(err), (wf, field, str(err))
            assert len(str(err)) < 2000  # the 2 MB value is never echoed back
            history = await h.fetch_history()
            # The run failed in its first workflow task: no task failure, nothing scheduled.
            assert not any(e.HasField("workflow_task_failed_event_attributes")
                           for e in history.events)  # fmt: skip
            assert not any(e.HasField("activity_task_scheduled_event_attributes")
                           for e in history.events)  # fmt: skip
        # The worker kept serving everyone: a canary import completes.
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, _csv())
        handle = await confirm_import(client, services.pool, settings, tenant.workspace_id,
                                      up.import_id)  # fmt: skip
        assert (await result_of(handle))["status"] == "completed"


async def test_a_cursor_from_a_caller_writes_nothing(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Finding 3: a `resume` cursor skipped fetch-import's state check and wrote contacts
    for an import nobody confirmed. Now only a continued run may carry one."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, _csv(3))
        before = await _contacts(owner_pool, tenant.workspace_id)
        cursor = {
            "chunk_count": 1, "total_rows": 3, "next_chunk": 0,
            "started_at": "2026-01-01T00:00:00Z",
            "options": {"chunk_rows": 10, "sub_batch_rows": 10, "parallel_chunks": 1,
                        "chunks_per_run": 10},
            "counts": {"total_rows": 3},
        }  # fmt: skip
        data = {"import_id": up.import_id, "workspace_id": tenant.workspace_id,
                "user_id": tenant.user_id, "resume": cursor}  # fmt: skip
        wid = import_workflow_id(up.import_id)
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, data)
        err = await failure_of(client.get_workflow_handle(wid), AT_ONCE)
        assert err.type == INVALID_PAYLOAD and "resume" in str(err)
        assert (await import_row(owner_pool, up.import_id))["status"] == "pending"
        assert await _contacts(owner_pool, tenant.workspace_id) == before
        # The owner's own confirm then runs it (the failed run does not hold the id).
        handle = await confirm_import(client, services.pool, settings, tenant.workspace_id,
                                      up.import_id)  # fmt: skip
        result = await result_of(handle)
    assert result["status"] == "completed" and result["inserted"] == 3


async def test_no_id_squatting_and_no_email_to_another_tenant(
    client: Client, stack: Stack, tenant: Tenant, other: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str,
) -> None:  # fmt: skip
    """Finding 4 (and 2 for imports): `import-<B's id>` started with workspace A fails in
    seconds, touches nothing of B's, emails nobody; B's confirm then starts a fresh run and
    B's record ends completed, never stuck in processing."""
    victim, attacker = tenant, other
    settings = make_settings(stack, temporal_task_queue=task_queue)
    outbox = Path(settings.outbox_dir)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, victim.workspace_id, victim.user_id, _csv(2))
        wid = import_workflow_id(up.import_id)
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, {
            "import_id": up.import_id, "workspace_id": attacker.workspace_id,
            "user_id": attacker.user_id,
        })  # fmt: skip
        err = await failure_of(client.get_workflow_handle(wid), AT_ONCE)
        assert err.type == "ImportRefused" and "not found" in str(err)
        assert (await import_row(owner_pool, up.import_id))["status"] == "pending"
        # The right workspace with the attacker as user: refused too, before anything.
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, {
            "import_id": up.import_id, "workspace_id": victim.workspace_id,
            "user_id": attacker.user_id,
        })  # fmt: skip
        err = await failure_of(client.get_workflow_handle(wid), AT_ONCE)
        assert "not a member" in str(err)
        assert (await import_row(owner_pool, up.import_id))["status"] == "pending"
        assert outbox_subjects(outbox) == []
        handle = await confirm_import(client, services.pool, settings, victim.workspace_id,
                                      up.import_id)  # fmt: skip
        result = await result_of(handle)
    assert result["status"] == "completed"
    row = await import_row(owner_pool, up.import_id)
    assert row["status"] == "completed" and row["inserted_rows"] == 2
    assert await _contacts(owner_pool, attacker.workspace_id) == 0
    assert outbox_subjects(outbox) == ["Your import of contacts.csv is complete"]
    assert recipients(outbox) == {victim.email}


async def test_an_open_squatter_does_not_hold_the_owners_import(
    client: Client, stack: Stack, tenant: Tenant, other: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str,
) -> None:  # fmt: skip
    """Finding 4, the race: `import-<B's id>` is still open (here on a task queue no worker
    polls, so forever) when B confirms. B's confirm ends it and runs B's import."""
    victim, attacker = tenant, other
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, victim.workspace_id, victim.user_id, _csv(2))
        wid = import_workflow_id(up.import_id)
        await cli_start(stack, WF_PROCESS_CSV, wid, f"nobody-{task_queue}", {
            "import_id": up.import_id, "workspace_id": attacker.workspace_id,
            "user_id": attacker.user_id,
        })  # fmt: skip
        handle = await confirm_import(client, services.pool, settings, victim.workspace_id,
                                      up.import_id)  # fmt: skip
        result = await result_of(handle)
    assert result["status"] == "completed"
    assert (await import_row(owner_pool, up.import_id))["status"] == "completed"


async def test_no_gate_for_a_workspace_that_does_not_exist(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    ghost = str(uuid.uuid4())
    async with running_worker(client, settings, task_queue):
        wid = f"import-{uuid.uuid4()}"
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, {
            "import_id": str(uuid.uuid4()), "workspace_id": ghost, "user_id": tenant.user_id,
        })  # fmt: skip
        err = await failure_of(client.get_workflow_handle(wid), AT_ONCE)
    assert "does not exist" in str(err)
    with pytest.raises(RPCError):
        await client.get_workflow_handle(f"import-gate-{ghost}").describe()


async def test_export_link_never_goes_to_another_workspace(
    client: Client, stack: Stack, tenant: Tenant, other: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str,
) -> None:  # fmt: skip
    """Finding 2: `export --workspace B --user <A's owner>`, or the same over gRPC."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    with pytest.raises(exports.InvalidExportRequest, match="not a member"):
        await exports.create_export(owner_pool, tenant.workspace_id, other.user_id, [])
    export_id, _ = await exports.create_export(owner_pool, tenant.workspace_id, None, [])
    async with running_worker(client, settings, task_queue):
        wid = f"export-{export_id}"
        await cli_start(stack, WF_PROCESS_EXPORT, wid, task_queue, {
            "export_id": export_id, "workspace_id": tenant.workspace_id,
            "user_id": other.user_id,
        })  # fmt: skip
        err = await failure_of(client.get_workflow_handle(wid), AT_ONCE)
        assert "not a member" in str(err)
        history = await client.get_workflow_handle(wid).fetch_history()
    names = [e.activity_task_scheduled_event_attributes.activity_type.name
             for e in history.events
             if e.HasField("activity_task_scheduled_event_attributes")]  # fmt: skip
    assert "stream-export" not in names and "send-notification" not in names
    assert outbox_subjects(Path(settings.outbox_dir)) == []
    rec = await exports.get_export(owner_pool, export_id)
    assert rec["blob_key"] is None


async def test_dispatch_refuses_ids_that_do_not_belong_together(
    client: Client, stack: Stack, tenant: Tenant, other: Tenant, task_queue: str
) -> None:
    """Item 6: dispatch checks the record against the workspace, and the user against
    it, before it starts anything."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, _csv())
        cases = {
            "not found in workspace": {"importId": up.import_id,
                                       "workspaceId": other.workspace_id, "userId": other.user_id},
            "not a member": {"importId": up.import_id, "workspaceId": tenant.workspace_id,
                             "userId": other.user_id},
            "does not exist": {"importId": up.import_id, "workspaceId": str(uuid.uuid4()),
                               "userId": tenant.user_id},
        }  # fmt: skip
        for why, data in cases.items():
            event = parse_event("import/csv.confirmed", data)
            with pytest.raises(EventError, match=why):
                await dispatch(client, settings, event, pool=services.pool)
        export_id, _ = await exports.create_export(services.pool, tenant.workspace_id, None, [])
        event = parse_event("export/csv.confirmed", {
            "exportId": export_id, "workspaceId": other.workspace_id, "userId": other.user_id,
        })  # fmt: skip
        with pytest.raises(EventError, match="not found in workspace"):
            await dispatch(client, settings, event, pool=services.pool)
    for wid in (import_workflow_id(up.import_id), f"export-{export_id}"):
        with pytest.raises(RPCError):
            await client.get_workflow_handle(wid).describe()


def _starter(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal.address,
               "DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url,
               "BLOB_URL": str(stack.root / "blobs")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "starter", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_starter_refuses_a_user_outside_the_workspace(
    stack: Stack, tenant: Tenant, other: Tenant, tmp_path: Path
) -> None:
    """Item 4: the starter's `--user` (export, import) and `dispatch` check membership
    before anything is created or started."""
    csv_file = tmp_path / "c.csv"
    csv_file.write_bytes(_csv())
    runs = {
        "export": ["export", "--workspace", tenant.workspace_id, "--user", other.user_id],
        "import": ["import", str(csv_file), "--workspace", tenant.workspace_id,
                   "--user", other.user_id, "--yes"],
        "dispatch": ["dispatch", "export/csv.confirmed", "--data", json.dumps({
            "exportId": str(uuid.uuid4()), "workspaceId": tenant.workspace_id,
            "userId": other.user_id})],
    }  # fmt: skip
    for name, argv in runs.items():
        proc = await asyncio.to_thread(_starter, stack, *argv)
        assert proc.returncode != 0, (name, proc.stdout)
        assert "not a member" in proc.stderr + proc.stdout, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
